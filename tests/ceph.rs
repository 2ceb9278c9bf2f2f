//! Ceph as PVE has it, against the lab behind real sshd: a cluster without Ceph (the ceph CLI
//! present and failing, as on every PVE node), an external Ceph cluster (RBD with `monhost`), a
//! hyper-converged one (`/etc/pve/ceph.conf`, OSDs on every node) and one in `HEALTH_ERR`.

use pveops_lab::scenario;
use pveops_lab::state::{CephCheck, Cluster};

use crate::support::cluster::SimCluster;
use crate::support::ops::{fast, journal, op, restore};
use crate::support::{pveops, stderr, stdout};

/// Every `ceph …` command the nodes received, in order: (node, line).
fn ceph_commands(sim: &SimCluster) -> Vec<(String, String)> {
    sim.commands()
        .into_iter()
        .filter(|(_, l)| l.starts_with("ceph "))
        .collect()
}

/// `assess --json` of the whole cluster: exit status and the snapshot.
fn assess(sim: &SimCluster) -> (Option<i32>, serde_json::Value) {
    let inv = sim.inventory();
    let out_dir = sim.lab.dir.path().join("assess");
    let o = pveops(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "assess",
            "lab",
            "--json",
            "-o",
            out_dir.to_str().unwrap(),
        ],
        &[],
    );
    let snap = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!("assess --json: {e}\n{}", stderr(&o));
    });
    (o.status.code(), snap)
}

fn ceph_findings(snap: &serde_json::Value) -> Vec<serde_json::Value> {
    snap["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "ceph.health")
        .cloned()
        .collect()
}

fn placement(c: &Cluster) -> Vec<(u32, String, String)> {
    c.guests
        .iter()
        .map(|g| (g.vmid, g.node.clone(), g.status.clone()))
        .collect()
}

#[test]
fn without_ceph_assess_is_ok_and_reboot_and_update_send_no_ceph_osd_command() {
    // healthy-3node: PVE 9.1, the ceph CLI on every node, no /etc/pve/ceph.conf; its RBD
    // storage is an external cluster's (monhost), which makes no node hyper-converged.
    let c = fast(scenario::healthy(3));
    assert!(c.ceph.is_none());
    assert!(
        c.storages
            .iter()
            .any(|s| s.kind == "rbd" && s.monhost.is_some())
    );
    let sim = SimCluster::start(c);

    let (code, snap) = assess(&sim);
    assert_eq!(code, Some(0), "{snap}");
    assert!(ceph_findings(&snap).is_empty(), "{snap}");
    assert_eq!(snap["ceph"]["state"], "not-configured");
    assert_eq!(snap["nodes"][0]["ceph"]["state"], "not-configured");
    let report = std::fs::read_to_string(sim.lab.dir.path().join("assess/report.md")).unwrap();
    assert!(report.contains("Ceph: not configured"), "{report}");

    let plan = op(&sim, &["plan", "reboot", "pve1", "pve2"]);
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    assert!(plan.stderr.contains("reboot pve1"), "{}", plan.stderr);
    assert!(!plan.stderr.contains("noout"), "{}", plan.stderr);

    let before = placement(&sim.state());
    let r = op(
        &sim,
        &["reboot", "pve1", "pve2", "--yes", "--reboot-timeout", "20"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(placement(&sim.state()), before);
    let r = op(&sim, &["update", "pve3", "--yes", "--reboot-timeout", "20"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let osd: Vec<_> = ceph_commands(&sim)
        .into_iter()
        .filter(|(_, l)| l.starts_with("ceph osd"))
        .collect();
    assert!(osd.is_empty(), "{osd:?}");
}

#[test]
fn a_hyperconverged_rolling_reboot_sets_noout_around_each_node_and_unsets_it() {
    let sim = SimCluster::start(fast(scenario::hyperconverged()));
    let (code, snap) = assess(&sim);
    assert_eq!(code, Some(0), "{snap}");
    assert_eq!(snap["ceph"]["state"], "configured");
    assert_eq!(snap["ceph"]["osds"]["pve2"], serde_json::json!([2, 3]));

    let before = placement(&sim.state());
    let r = op(
        &sim,
        &["reboot", "pve1", "pve2", "--yes", "--reboot-timeout", "20"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(placement(&sim.state()), before, "every guest back");
    assert!(!sim.state().ceph.unwrap().noout, "noout unset at the end");
    // set before each node's reboot, unset after it, node by node.
    let changes: Vec<String> = sim
        .commands()
        .into_iter()
        .filter(|(_, l)| l.starts_with("ceph osd") || l == "reboot")
        .map(|(n, l)| format!("{n}: {l}"))
        .collect();
    assert_eq!(
        changes,
        [
            "pve1: ceph osd set noout",
            "pve1: reboot",
            "pve1: ceph osd unset noout",
            "pve2: ceph osd set noout",
            "pve2: reboot",
            "pve2: ceph osd unset noout",
        ]
    );
    // The noout HEALTH_WARN inside the window failed nothing: every step verified.
    let j = journal(&r.dir);
    assert!(
        j.iter()
            .filter(|e| e["phase"] == "end")
            .all(|e| e["outcome"] == "ok"),
        "{j:?}"
    );
}

#[test]
fn an_interrupted_hyperconverged_reboot_is_restored_with_noout_unset() {
    let mut c = fast(scenario::hyperconverged());
    c.timing.reboot_secs = 4.0;
    let sim = SimCluster::start(c);
    let before = placement(&sim.state());
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join("reboot-int");
    let changelog = sim.lab.dir.path().join("changelog.md");
    let mut child = crate::support::command(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "reboot",
            "pve1",
            "--yes",
            "--reboot-timeout",
            "30",
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // Interrupted while pve1 is down with noout set.
    let down = crate::support::poll_until(60, || {
        let s = sim.state();
        s.ceph.as_ref().is_some_and(|c| c.noout) && !s.node("pve1").unwrap().online
    });
    assert!(down, "pve1 never went down with noout set");
    crate::support::sh("kill", &["-INT", &child.id().to_string()]);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        sim.state().ceph.unwrap().noout,
        "still set when interrupted"
    );

    let r = restore(&sim, &dir.join("journal.jsonl"), "int");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let s = sim.state();
    assert!(!s.ceph.as_ref().unwrap().noout, "restore unset noout");
    assert_eq!(placement(&s), before, "every guest home");
    let osd: Vec<String> = ceph_commands(&sim)
        .into_iter()
        .filter(|(_, l)| l.starts_with("ceph osd"))
        .map(|(_, l)| l)
        .collect();
    assert_eq!(
        osd.last().map(String::as_str),
        Some("ceph osd unset noout"),
        "{osd:?}"
    );
}

#[test]
fn health_err_is_critical_and_refuses_a_reboot_before_any_change() {
    let mut c = fast(scenario::hyperconverged());
    c.ceph.as_mut().unwrap().checks.push(CephCheck {
        code: "OSD_FULL".into(),
        severity: "HEALTH_ERR".into(),
        message: "1 full osd(s)".into(),
    });
    let sim = SimCluster::start(c);
    let (code, snap) = assess(&sim);
    assert_eq!(code, Some(2), "{snap}");
    let f = ceph_findings(&snap);
    assert_eq!(f.len(), 1, "{snap}");
    assert_eq!(f[0]["severity"], "critical");
    assert!(
        f[0]["message"].as_str().unwrap().contains("1 full osd(s)"),
        "{f:?}"
    );

    let r = op(&sim, &["reboot", "pve1", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("ceph-health"), "{}", r.stderr);
    let changed: Vec<_> = sim
        .commands()
        .into_iter()
        .filter(|(_, l)| l.contains(" migrate ") || l.starts_with("ceph osd") || l == "reboot")
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}
