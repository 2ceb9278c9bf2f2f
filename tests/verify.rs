//! `pveops snapshot`, `diff` and `verify` against the lab behind real sshd: a change made
//! between two snapshots shows up as typed differences, regressions exit 2.

use pveops_lab::scenario;

use crate::support::cluster::SimCluster;
use crate::support::{pveops, stderr, stdout};

fn kinds(v: &serde_json::Value) -> Vec<(String, String, String, bool)> {
    v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["node"].as_str().unwrap_or("").to_string(),
                d["subject"].as_str().unwrap_or("").to_string(),
                d["regression"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn verify_reports_what_changed_and_what_regressed() {
    let mut c = scenario::healthy(3);
    c.timing.migrate_secs = 0.2;
    let sim = SimCluster::start(c);
    let inv = sim.inventory();
    let inv = inv.to_str().unwrap();
    let dir = sim.lab.dir.path();
    let before = dir.join("before.json");
    let out = pveops(
        sim.lab.home(),
        &["snapshot", "-I", inv, "lab", "-o", before.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The change: a VM moves (fine), a VM stops and a storage goes inactive (regressions).
    assert_eq!(
        sim.exec("pve1", "qm migrate 100 pve2 --online", &[])["exit_code"],
        0
    );
    assert_eq!(sim.exec("pve3", "qm stop 301", &[])["exit_code"], 0);
    sim.edit(|c| {
        let nfs = c
            .storages
            .iter_mut()
            .find(|s| s.id == "nfs-backup")
            .unwrap();
        nfs.per_node.insert(
            "pve3".into(),
            pveops_lab::state::StorageOnNode {
                inactive: true,
                ..Default::default()
            },
        );
    });

    let ev = dir.join("verify-evidence");
    let out = pveops(
        sim.lab.home(),
        &[
            "verify",
            "-I",
            inv,
            "lab",
            "--against",
            before.to_str().unwrap(),
            "--out",
            ev.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = kinds(&v);
    assert!(
        k.contains(&("guest-moved".into(), "pve2".into(), "100".into(), false)),
        "{k:?}"
    );
    assert!(
        k.contains(&("guest-stopped".into(), "pve3".into(), "301".into(), true)),
        "{k:?}"
    );
    assert!(
        k.contains(&(
            "storage-state".into(),
            "pve3".into(),
            "nfs-backup".into(),
            true
        )),
        "{k:?}"
    );
    assert!(
        k.contains(&(
            "finding-new".into(),
            "pve3".into(),
            "storage.active".into(),
            true
        )),
        "{k:?}"
    );
    let report = std::fs::read_to_string(ev.join("report.md")).unwrap();
    assert!(
        report.contains("| guest-stopped | pve3 | 301 | running | stopped | yes |"),
        "{report}"
    );
    assert!(ev.join("before.json").exists() && ev.join("snapshot.json").exists());

    // The same through `diff`: markdown by default, JSON on request, exit 2 on a regression.
    let after = ev.join("snapshot.json");
    let out = pveops(
        sim.lab.home(),
        &["diff", before.to_str().unwrap(), after.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).starts_with("| Kind | Node | Subject | Before | After | Regression |\n"),
        "{}",
        stdout(&out)
    );
    let out = pveops(
        sim.lab.home(),
        &[
            "diff",
            before.to_str().unwrap(),
            before.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["differences"].as_array().unwrap().len(), 0);
}

#[test]
fn unreadable_snapshots_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": 1}").unwrap();
    let out = pveops(
        dir.path(),
        &["diff", bad.to_str().unwrap(), bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: not a pveops snapshot", bad.display()))
            && err.lines().count() == 1,
        "{err}"
    );
}
