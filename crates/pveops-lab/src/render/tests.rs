//! The renderers against the real and constructed PVE captures of `tests/fixtures/pve/`: every
//! scenario in `tests/lab-fixtures/<fixture-stem>.json` holds a cluster state, the asking node,
//! the command's arguments and time, and which fixture(s) the reply must equal. Fixtures of the
//! rendered commands that no scenario reproduces are listed in `NOT_REPRODUCED` with the reason;
//! a fixture in neither place fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::*;
use crate::state::Cluster;

/// Fixture name prefixes of the commands this module renders.
const RENDERED: &[&str] = &[
    "pvecm-status",
    "pvecm-nodes",
    "pvesm-status",
    "pvesm-list",
    "qm-list",
    "pct-list",
    "qm-config",
    "pct-config",
    "qm-status",
    "qm-status-verbose",
    "pct-status",
    "pct-status-verbose",
    "ha-manager-status",
    "pveversion",
    "pveversion-v",
    "systemctl-is-active",
    "zpool-status-x",
    "corosync-cfgtool-s",
    "pvesh-get-cluster-status",
    "pvesh-get-cluster-resources",
    "pvesh-get-nodes-storage",
    "pvesh-get-cluster-ha-status",
    "pvesh-get-cluster-options",
];

/// Fixtures of rendered commands that are deliberately not reproduced, with the reason.
const NOT_REPRODUCED: &[(&str, &str)] = &[(
    "pvesh-get-cluster-options.json-migration.constructed.txt",
    "the lab models only max_workers of datacenter.cfg, not keyboard or migration",
)];

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn fixture(name: &str) -> String {
    let p = root().join("tests/fixtures/pve").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Node fields every scenario may leave out (a PVE 9.1.1 node).
fn base_node_defaults() -> Map<String, Value> {
    let v = serde_json::json!({
        "manager_version": "9.1.1",
        "repoid": "42db4a6cf33dac83",
        "kernel_running": "6.17.2-2-pve",
        "kernels_installed": ["6.17.2-2-pve"],
        "memory_total": 68719476736u64,
        "boot_id": "8e0b7c1a-3c55-4a55-9d1e-1f5b0c6f0a01",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

struct Scenario {
    name: String,
    command: String,
    node: String,
    now: jiff::Timestamp,
    args: Map<String, Value>,
    expect: Map<String, Value>,
    state: Cluster,
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path).unwrap();
    let mut v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut defaults = base_node_defaults();
    if let Some(Value::Object(d)) = v.get("node_defaults") {
        defaults.extend(d.clone());
    }
    if let Some(Value::Array(nodes)) = v.pointer_mut("/state/nodes") {
        for n in nodes {
            let n = n.as_object_mut().unwrap();
            for (k, d) in &defaults {
                n.entry(k.clone()).or_insert_with(|| d.clone());
            }
        }
    }
    let state: Cluster = serde_json::from_value(v["state"].clone())
        .unwrap_or_else(|e| panic!("{}: state: {e}", path.display()));
    let now = v
        .get("now")
        .and_then(Value::as_str)
        .unwrap_or("2026-03-03T10:15:42Z")
        .parse()
        .unwrap();
    let obj = |k: &str| {
        v.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    Scenario {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        command: v["command"].as_str().unwrap().to_string(),
        node: v["node"].as_str().unwrap().to_string(),
        now,
        args: obj("args"),
        expect: obj("expect"),
        state,
    }
}

fn run(s: &Scenario) -> Reply {
    let (c, n) = (&s.state, s.node.as_str());
    let b = |k: &str| s.args.get(k).and_then(Value::as_bool).unwrap_or(false);
    let vmid = || s.args.get("vmid").and_then(Value::as_u64).unwrap() as u32;
    let st = |k: &str| {
        s.args
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match s.command.as_str() {
        "pvecm_status" => pvecm_status(c, n, s.now),
        "pvecm_nodes" => pvecm_nodes(c, n),
        "pvesm_status" => pvesm_status(c, n),
        "pvesm_list_backup" => pvesm_list_backup(c, n, &st("storage")),
        // The fixture combines two storages into one listing (its .src says so): render the
        // union of both storages' entries with the same printer.
        "pvesm_list_backup_combined" => {
            let mut all = Vec::new();
            for sid in s.args["storages"].as_array().unwrap() {
                let sid = sid.as_str().unwrap();
                let single = pvesm_list_backup(c, n, sid);
                assert_eq!(single.exit, 0, "{sid}: {}", single.stderr);
                all.extend(backup_entries(c, sid, n));
            }
            Reply {
                stdout: print_content(&all),
                stderr: String::new(),
                exit: 0,
            }
        }
        "qm_list" => qm_list(c, n, b("full")),
        "pct_list" => pct_list(c, n),
        "qm_config" => qm_config(c, n, vmid()),
        "pct_config" => pct_config(c, n, vmid()),
        "qm_status" => qm_status(c, n, vmid(), b("verbose")),
        "pct_status" => pct_status(c, n, vmid(), b("verbose")),
        "ha_manager_status" => ha_manager_status(c, n, s.now),
        "pveversion" => pveversion(c, n, b("verbose")),
        "systemctl_is_active" => {
            let units: Vec<String> = s.args["units"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_string())
                .collect();
            systemctl_is_active(c, n, &units)
        }
        "zpool_status_x" => zpool_status_x(c, n),
        "corosync_cfgtool_s" => corosync_cfgtool_s(c, n),
        "pvesh_get" => pvesh_get(c, n, &st("path"), s.now),
        other => panic!("unknown command {other}"),
    }
}

fn trim_lines(s: &str) -> String {
    s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// JSON with numbers-as-strings turned into numbers (Perl may emit either, FORMATS §0.2),
/// floats rounded to 6 significant digits, arrays of objects sorted by `id`/`storage` (Perl hash
/// order), and the scenario's `ignore_keys` removed.
fn lenient(v: &Value, ignore: &[&str]) -> Value {
    match v {
        Value::String(s) => match s.parse::<f64>() {
            Ok(f) => lenient(&serde_json::json!(f), ignore),
            Err(_) => v.clone(),
        },
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            serde_json::json!(format!("{f:.5e}").parse::<f64>().unwrap())
        }
        Value::Array(a) => {
            let mut a: Vec<Value> = a.iter().map(|x| lenient(x, ignore)).collect();
            let key = |x: &Value| {
                let k = x
                    .get("id")
                    .or_else(|| x.get("storage"))
                    .cloned()
                    .unwrap_or_default();
                k.to_string()
            };
            a.sort_by_key(key);
            Value::Array(a)
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !ignore.contains(&k.as_str()))
                .map(|(k, x)| (k.clone(), lenient(x, ignore)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Compares one stream; returns the fixture names it covered.
fn check_stream(s: &Scenario, stream: &str, got: &str, covered: &mut BTreeSet<String>) {
    let Some(spec) = s.expect.get(stream).and_then(Value::as_str) else {
        return;
    };
    let want = if spec.ends_with(".txt") {
        covered.insert(spec.to_string());
        fixture(spec)
    } else {
        spec.to_string()
    };
    let compare = if stream == "stdout" {
        s.expect.get("compare").and_then(Value::as_str)
    } else {
        None
    };
    let ctx = format!("{} ({stream}, {spec})", s.name);
    match compare {
        None => assert_eq!(got, want, "{ctx}"),
        // The capture lost trailing spaces in a paste (see the fixture's .src): compare with each
        // line's trailing whitespace trimmed.
        Some("trim-trailing") => assert_eq!(trim_lines(got), trim_lines(&want), "{ctx}"),
        // A partial capture (.src: excerpt, trailing spaces lost): its lines appear as one block.
        Some("excerpt-trim-trailing") => {
            let (g, w) = (trim_lines(got), trim_lines(&want));
            assert!(g.contains(&w), "{ctx}: excerpt not found:\n{w}\nin:\n{g}");
        }
        // The capture's markdown turned TABs into 4 spaces (.src says so).
        Some("tabs-as-4-spaces") => assert_eq!(got.replace('\t', "    "), want, "{ctx}"),
        // Semantic JSON equality: see `lenient` (order, Perl strings-for-numbers, float digits).
        Some("json-lenient") => {
            let g: Value = serde_json::from_str(got).unwrap();
            let w: Value = serde_json::from_str(&want).unwrap();
            let ignore: Vec<&str> = s
                .expect
                .get("ignore_keys")
                .and_then(Value::as_array)
                .map_or(Vec::new(), |a| {
                    a.iter().map(|k| k.as_str().unwrap()).collect()
                });
            assert_eq!(lenient(&g, &ignore), lenient(&w, &ignore), "{ctx}");
            assert!(
                got.ends_with("]\n") && got.lines().count() == 1,
                "{ctx}: one line"
            );
        }
        // Byte comparison after dropping entries the model does not express (fixture) or that
        // the constructed fixture left out (rendered).
        Some("json-drop") => {
            let drop_types: Vec<&str> = s.expect["drop_fixture_types"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let drop_ids: Vec<&str> = s.expect["drop_rendered_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let mut w: Value = serde_json::from_str(&want).unwrap();
            w.as_array_mut()
                .unwrap()
                .retain(|e| !drop_types.contains(&e["type"].as_str().unwrap()));
            let mut g: Value = serde_json::from_str(got).unwrap();
            g.as_array_mut()
                .unwrap()
                .retain(|e| !drop_ids.contains(&e["id"].as_str().unwrap()));
            let line = |v: &Value| format!("{}\n", serde_json::to_string(v).unwrap());
            assert_eq!(line(&g), line(&w), "{ctx}");
            // The rendered bytes themselves are exactly this serialisation.
            let back: Value = serde_json::from_str(got).unwrap();
            assert_eq!(line(&back), got, "{ctx}: compact sorted one-line JSON");
        }
        Some(other) => panic!("{ctx}: unknown compare mode {other}"),
    }
}

fn scenarios() -> Vec<Scenario> {
    let dir = root().join("tests/lab-fixtures");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

#[test]
fn every_fixture_of_a_rendered_command_is_reproduced_or_listed() {
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for s in scenarios() {
        let r = run(&s);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cov = BTreeSet::new();
            if let Some(spec) = s.expect.get("combined").and_then(Value::as_str) {
                // A terminal capture of both streams: stderr came first (its .src says so).
                cov.insert(spec.to_string());
                assert_eq!(
                    format!("{}{}", r.stderr, r.stdout),
                    fixture(spec),
                    "{} (combined)",
                    s.name
                );
            } else {
                check_stream(&s, "stdout", &r.stdout, &mut cov);
                if s.expect.contains_key("stderr") {
                    check_stream(&s, "stderr", &r.stderr, &mut cov);
                } else {
                    assert_eq!(r.stderr, "", "{}: unexpected stderr", s.name);
                }
            }
            let exit = s.expect.get("exit").and_then(Value::as_i64).unwrap_or(0);
            assert_eq!(i64::from(r.exit), exit, "{}: exit status", s.name);
            cov
        }));
        match res {
            Ok(cov) => covered.extend(cov),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                failures.push(format!("{}: {}", s.name, msg.unwrap_or_default()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    let listed: BTreeSet<&str> = NOT_REPRODUCED.iter().map(|(f, _)| *f).collect();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root().join("tests/fixtures/pve")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".txt") || !RENDERED.iter().any(|p| name.starts_with(&format!("{p}."))) {
            continue;
        }
        assert!(
            !(covered.contains(&name) && listed.contains(name.as_str())),
            "{name} both reproduced and listed"
        );
        if !covered.contains(&name) && !listed.contains(name.as_str()) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures neither reproduced nor listed: {missing:?}"
    );
}

/// A three-node PVE 9.1 cluster: shared NFS, local-lvm on every node, `fast` only on pve1/pve2.
fn lab() -> Cluster {
    let v = serde_json::json!({
        "cluster": {"name": "lab", "config_version": 3, "ring_seq": 8},
        "nodes": [
            {"name": "pve1", "nodeid": 1, "ip": "10.0.0.1"},
            {"name": "pve2", "nodeid": 2, "ip": "10.0.0.2"},
            {"name": "pve3", "nodeid": 3, "ip": "10.0.0.3", "kernels_installed": ["6.17.2-2-pve", "6.17.4-1-pve"]}
        ],
        "storages": [
            {"id": "nfs", "type": "nfs", "shared": true, "total": 1000, "used": 100},
            {"id": "local-lvm", "type": "lvmthin", "total": 1000, "used": 10},
            {"id": "fast", "type": "zfspool", "nodes": ["pve1", "pve2"], "total": 1000, "used": 1}
        ],
        "guests": [
            {"vmid": 100, "type": "qemu", "name": "web", "node": "pve1", "status": "running", "pid": 10,
             "maxmem": 2147483648u64, "maxdisk": 34359738368u64, "disks": ["local-lvm", "nfs"],
             "config": {"hostpci0": "0000:01:00.0"}},
            {"vmid": 101, "type": "qemu", "name": "db", "node": "pve1", "status": "stopped",
             "maxmem": 1073741824, "maxdisk": 1073741824, "disks": ["fast"]},
            {"vmid": 200, "type": "lxc", "name": "ct", "node": "pve2", "status": "running",
             "maxmem": 536870912, "maxdisk": 8589934592u64, "disks": ["nfs"]}
        ]
    });
    let mut v = v;
    for n in v["nodes"].as_array_mut().unwrap() {
        for (k, d) in base_node_defaults() {
            n.as_object_mut().unwrap().entry(k).or_insert(d);
        }
    }
    serde_json::from_value(v).unwrap()
}

fn now() -> jiff::Timestamp {
    "2026-03-03T10:15:42Z".parse().unwrap()
}

fn json_of(r: &Reply) -> Value {
    assert_eq!((r.exit, r.stderr.as_str()), (0, ""), "{r:?}");
    assert!(r.stdout.ends_with('\n') && r.stdout.lines().count() == 1);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn migrate_preflight_follows_storages_and_local_disks() {
    let c = lab();
    let v = json_of(&pvesh_get(
        &c,
        "pve2",
        "/nodes/pve1/qemu/100/migrate",
        now(),
    ));
    assert_eq!(v["running"], 1);
    assert_eq!(v["allowed_nodes"], serde_json::json!(["pve2", "pve3"]));
    // PVE >= 8.4: every other node is listed, `{}` where nothing blocks it
    // (check_local_storage_availability pre-fills each node).
    assert_eq!(
        v["not_allowed_nodes"],
        serde_json::json!({"pve2": {}, "pve3": {}})
    );
    // local-lvm is not shared: a local disk; the NFS disk is not.
    assert_eq!(
        v["local_disks"],
        serde_json::json!([{"drivename": "scsi0", "size": 34359738368u64, "volid": "local-lvm:vm-100-disk-0"}])
    );
    assert_eq!(v["local_resources"], serde_json::json!(["hostpci0"]));

    let v = json_of(&pvesh_get(
        &c,
        "pve1",
        "/nodes/pve1/qemu/101/migrate",
        now(),
    ));
    assert_eq!(v["running"], 0);
    assert_eq!(v["allowed_nodes"], serde_json::json!(["pve2"]));
    assert_eq!(
        v["not_allowed_nodes"],
        serde_json::json!({"pve2": {}, "pve3": {"unavailable_storages": ["fast"]}})
    );

    let v = json_of(&pvesh_get(&c, "pve1", "/nodes/pve2/lxc/200/migrate", now()));
    // The container endpoint (PVE 9) spells its keys with hyphens and checks no storages.
    assert_eq!(v["allowed-nodes"], serde_json::json!(["pve1", "pve3"]));
    assert_eq!(v["not-allowed-nodes"], serde_json::json!({}));

    // The guest lives elsewhere: its config does not exist on that node.
    let r = pvesh_get(&c, "pve1", "/nodes/pve2/qemu/100/migrate", now());
    assert_eq!(
        r.stderr,
        "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist\n"
    );
    assert_eq!(r.exit, 255);
}

#[test]
fn pvesh_node_status_resources_and_unknown_paths() {
    let mut c = lab();
    c.node_mut("pve1").unwrap().memory_base = 1 << 30;
    let v = json_of(&pvesh_get(&c, "pve1", "/nodes/pve1/status", now()));
    assert_eq!(v["memory"]["used"], (1u64 << 30) + 2147483648);
    assert_eq!(v["memory"]["total"], 68719476736u64);
    assert_eq!(v["cpuinfo"]["cpus"], 8);
    assert!(
        v["kversion"]
            .as_str()
            .unwrap()
            .starts_with("Linux 6.17.2-2-pve ")
    );

    let v = json_of(&pvesh_get(&c, "pve1", "/cluster/resources?type=vm", now()));
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["qemu/100", "qemu/101", "lxc/200"]);
    let v = json_of(&pvesh_get(
        &c,
        "pve1",
        "/cluster/resources?type=storage",
        now(),
    ));
    // nfs and local-lvm on three nodes, fast on two.
    assert_eq!(v.as_array().unwrap().len(), 8);

    let r = pvesh_get(&c, "pve1", "/nodes/pve1/bogus", now());
    assert_eq!(
        r,
        Reply::err("No 'get' handler defined for '/nodes/pve1/bogus'", 2)
    );

    c.node_mut("pve3").unwrap().online = false;
    let v = json_of(&pvesh_get(&c, "pve1", "/cluster/status", now()));
    assert_eq!(v[0]["quorate"], 1);
    assert_eq!(v[3]["online"], 0);
    assert_eq!(pvesh_get(&c, "pve1", "/nodes/pve3/status", now()).exit, 255);
}

#[test]
fn version_variants_of_pvecm_and_pveversion() {
    let mut c = lab();
    // PVE 6.0: no Cluster information block, decimal ring id (FORMATS §1.1).
    for n in &mut c.nodes {
        n.manager_version = "6.0-4".into();
    }
    let r = pvecm_status(&c, "pve2", now());
    assert!(r.stdout.starts_with("Quorum information\n"));
    assert!(r.stdout.contains("Ring ID:          1/8\n"));
    assert!(
        r.stdout
            .contains("0x00000002          1 10.0.0.2 (local)\n")
    );
    // PVE 7: pve-kernel-* names.
    let n = c.node_mut("pve1").unwrap();
    n.manager_version = "7.3-3".into();
    n.kernels_installed = vec!["5.15.74-1-pve".into(), "5.15.30-2-pve".into()];
    n.kernel_running = "5.15.74-1-pve".into();
    n.packages
        .insert("pve-kernel-helper".into(), "7.3-1".into());
    let r = pveversion(&c, "pve1", true);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "proxmox-ve: 7.3-1 (running kernel: 5.15.74-1-pve)",
            "pve-manager: 7.3-3 (running version: 7.3-3/42db4a6cf33dac83)",
            "pve-kernel-5.15: 7.3-1",
            "pve-kernel-helper: 7.3-1",
            "pve-kernel-5.15.74-1-pve: 5.15.74-1",
            "pve-kernel-5.15.30-2-pve: 5.15.30-2",
        ]
    );
}

#[test]
fn errors_and_empty_outputs() {
    let mut c = lab();
    assert_eq!(qm_list(&c, "pve3", false), Reply::default());
    assert_eq!(pct_list(&c, "pve1",), Reply::default());
    let r = qm_config(&c, "pve2", 100);
    assert_eq!(
        r.stderr,
        "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist\n"
    );
    assert_eq!(r.exit, 255);
    assert_eq!(pct_status(&c, "pve1", 200, false).exit, 255);
    let units = vec!["foo".to_string(), "corosync".to_string()];
    assert_eq!(
        systemctl_is_active(&c, "pve1", &units).stdout,
        "inactive\nactive\n"
    );
    let units = vec!["foo".to_string()];
    assert_eq!(systemctl_is_active(&c, "pve1", &units).exit, 3);
    // qm config synthesises the disks from the state when the config carries none.
    let cfg = qm_config(&c, "pve1", 100).stdout;
    assert!(
        cfg.contains("scsi0: local-lvm:vm-100-disk-0,size=32G\nscsi1: nfs:vm-100-disk-1\n"),
        "{cfg}"
    );
    assert!(cfg.contains("memory: 2048\nname: web\n"), "{cfg}");
    // Not quorate: pvecm nodes lists the partition and exits 2; HA says so.
    c.node_mut("pve2").unwrap().online = false;
    c.node_mut("pve3").unwrap().online = false;
    let r = pvecm_nodes(&c, "pve1");
    assert_eq!(r.exit, 2);
    assert!(
        r.stdout
            .ends_with("    Nodeid      Votes Name\n         1          1 pve1 (local)\n")
    );
    c.ha.master = Some("pve1".into());
    let r = ha_manager_status(&c, "pve1", now());
    assert!(r.stdout.starts_with(
        "quorum No quorum on node 'pve1'!\nmaster pve1 (active, Tue Mar  3 10:15:42 2026)\n"
    ));
    assert!(r.stdout.contains("lrm pve2 (unable to read lrm status)\n"));
    // Unknown storage for pvesm list.
    assert_eq!(pvesm_list_backup(&c, "pve1", "nope").exit, 255);
    assert_eq!(pvesm_list_backup(&c, "pve3", "fast").exit, 255);
}

#[test]
fn ha_new_format_has_fencing_and_watchdog_fields() {
    let mut c = lab();
    c.ha.master = Some("pve1".into());
    for n in &mut c.nodes {
        n.manager_version = "9.2.4".into();
        n.lrm = Some(if n.name == "pve1" { "active" } else { "idle" }.into());
    }
    c.guest_mut(100).unwrap().ha = Some("started".into());
    let r = ha_manager_status(&c, "pve1", now());
    let want = "quorum OK\n\
        master pve1 (active, Tue Mar  3 10:15:42 2026)\n\
        fencing armed (CRM watchdog active)\n\
        lrm pve1 (active, watchdog active, Tue Mar  3 10:15:42 2026)\n\
        lrm pve2 (idle, watchdog standby, Tue Mar  3 10:15:42 2026)\n\
        lrm pve3 (idle, watchdog standby, Tue Mar  3 10:15:42 2026)\n\
        service vm:100 (pve1, started)\n";
    assert_eq!(r.stdout, want);
}

#[test]
fn pve8to9_reflects_the_state() {
    let mut c = lab();
    for n in &mut c.nodes {
        n.manager_version = "8.4.1".into();
    }
    c.storages[0].per_node.insert(
        "pve3".into(),
        crate::state::StorageOnNode {
            inactive: true,
            ..Default::default()
        },
    );
    c.node_mut("pve1").unwrap().online = false;
    let r = pve8to9(&c, "pve3", false);
    assert_eq!(r.exit, 0);
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&r.stdout, "")
        .into_owned();
    assert!(plain.starts_with(
        "= CHECKING VERSION INFORMATION FOR PVE PACKAGES =\n\nChecking for package updates..\n"
    ));
    // pve3 runs an older kernel than it has installed.
    assert!(
        plain.contains("WARN: a suitable kernel (6.17.4-1-pve) is installed"),
        "{plain}"
    );
    assert!(plain.contains("WARN: storage 'nfs' enabled but not active!\n"));
    assert!(plain.contains("WARN: 1 node(s) offline: pve1\n"));
    assert!(plain.contains("SKIP: storage 'fast' disabled.\n"));
    assert!(plain.contains("PASS: Cluster Filesystem is quorate.\n"));
    assert!(plain.contains("\nATTENTION: Please check the output for detailed information!\n"));
    assert!(!plain.contains("Try to solve"));
    // Every log line ends with a reset (FORMATS §0.7).
    assert!(
        r.stdout
            .contains("\x1b[33mWARN: storage 'nfs' enabled but not active!\n\x1b[0m")
    );
    assert!(r.stdout.ends_with(
        "\x1b[33m\nATTENTION: Please check the output for detailed information!\n\x1b[0m"
    ));
    c.node_mut("pve2").unwrap().online = false;
    let plain = pve8to9(&c, "pve3", true).stdout;
    assert!(plain.contains("FAIL: Cluster Filesystem readonly, lost quorum?!\n"));
    assert!(plain.contains(
        "Try to solve the problems one at a time and then run this checklist tool again.\n"
    ));
}

#[test]
fn storage_content_ctime_is_the_name_read_in_the_listing_nodes_zone() {
    let mut c = lab();
    // pve1 (where 100 runs and vzdump names the file) at UTC+2, pve2 at UTC.
    c.node_mut("pve1").unwrap().utc_offset_minutes = 120;
    c.guests[0].backups.push(crate::state::Backup {
        storage: "nfs".into(),
        time: "2026-03-03T08:15:42Z".into(),
        size: 7,
    });
    let path = "/nodes/localhost/storage/nfs/content?content=backup";
    let v = json_of(&pvesh_get(&c, "pve1", path, now()));
    assert_eq!(
        v,
        serde_json::json!([{"content": "backup", "ctime": 1772525742, "format": "vma.zst",
            "size": 7, "subtype": "qemu", "vmid": 100,
            "volid": "nfs:backup/vzdump-qemu-100-2026_03_03-10_15_42.vma.zst"}])
    );
    // archive_info's `timelocal` runs on the listing node: listed from UTC pve2 the same name
    // reads two hours later.
    let v = json_of(&pvesh_get(&c, "pve2", path, now()));
    assert_eq!(v[0]["ctime"], 1772525742 + 7200);
    // `pvesm list` is the same API call, as a table.
    assert!(pvesm_list_backup(&c, "pve1", "nfs").stdout.contains(
        "nfs:backup/vzdump-qemu-100-2026_03_03-10_15_42.vma.zst vma.zst backup    7 100\n"
    ));
    // Other content types: nothing (the lab keeps backups only); errors as pvesm list.
    let v = json_of(&pvesh_get(
        &c,
        "pve1",
        "/nodes/pve1/storage/nfs/content?content=iso",
        now(),
    ));
    assert_eq!(v, serde_json::json!([]));
    assert_eq!(
        pvesh_get(&c, "pve3", "/nodes/localhost/storage/fast/content", now()).exit,
        255
    );
}

#[test]
fn ha_groups_on_pve8_rules_on_pve9() {
    let mut c = lab();
    c.guests[0].ha = Some("started".into());
    c.ha_rules = vec![crate::state::HaRule {
        rule: "san".into(),
        kind: "node-affinity".into(),
        resources: vec!["vm:100".into()],
        nodes: vec!["pve2".into(), "pve1:2".into()],
        strict: true,
        affinity: None,
    }];
    for n in &mut c.nodes {
        n.manager_version = "8.4.14".into();
    }
    let g = json_of(&pvesh_get(&c, "pve1", "/cluster/ha/groups", now()));
    assert_eq!(g[0]["group"], "san");
    assert_eq!(g[0]["nodes"], "pve1:2,pve2");
    assert_eq!(g[0]["restricted"], 1);
    let r = json_of(&pvesh_get(&c, "pve1", "/cluster/ha/resources", now()));
    assert_eq!(
        r,
        serde_json::json!([{"digest": "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c", "group": "san",
            "sid": "vm:100", "state": "started", "type": "vm"}])
    );
    assert_eq!(pvesh_get(&c, "pve1", "/cluster/ha/rules", now()).exit, 2);
    for n in &mut c.nodes {
        n.manager_version = "9.1.1".into();
    }
    let g = pvesh_get(&c, "pve1", "/cluster/ha/groups", now());
    assert_eq!(g.exit, 255);
    assert!(g.stderr.contains("ha groups have been migrated to rules"));
    let r = json_of(&pvesh_get(&c, "pve1", "/cluster/ha/resources", now()));
    assert!(r[0].get("group").is_none());
}

#[test]
fn cluster_options_print_datacenter_cfg_as_parse_config_keeps_it() {
    let mut c = crate::scenario::healthy(3);
    let plain = pvesh_get(&c, "pve1", "/cluster/options", now());
    assert_eq!(
        plain.stdout,
        "{\"allowed-tags\":[],\"description\":\"\",\"mac_prefix\":\"BC:24:11\"}\n"
    );
    c.datacenter.max_workers = Some(3);
    let v = json_of(&pvesh_get(&c, "pve1", "/cluster/options", now()));
    // The file's text, not a number (pve-common `parse_config`).
    assert_eq!(v["max_workers"], "3");
}
