//! The renderers against the real and constructed PVE captures of `tests/fixtures/pve/`: every
//! scenario in `tests/lab-fixtures/<fixture-stem>.json` holds a cluster state, the asking node,
//! the command's arguments and time, and which fixture(s) the reply must equal. Fixtures of the
//! rendered commands that no scenario reproduces are listed in `NOT_REPRODUCED` with the reason;
//! a fixture in neither place fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::*;
use crate::lab::state::Cluster;

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
];

/// Fixtures of rendered commands that are deliberately not reproduced, with the reason.
const NOT_REPRODUCED: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
                all.extend(backup_entries(c, sid));
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
