//! Operations end to end against the lab behind real OpenSSH sshd: the exact commands sent, in
//! order; the state afterwards; gates that refuse and change nothing; journal, change log,
//! runbook and report.

use pveops_lab::scenario;
use pveops_lab::state::Cluster;

use crate::support::cluster::SimCluster;
use crate::support::ops::{Op, fast, journal, op, restore};
use crate::support::{pveops, stderr};

/// The commands that change something, in the order the lab received them.
fn changes(sim: &SimCluster) -> Vec<String> {
    sim.commands()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| {
            l.contains(" migrate ")
                || l.starts_with("ha-manager crm-command")
                || l.starts_with("reboot")
                || l.contains(" start ")
                || l.contains(" shutdown ")
        })
        .collect()
}

/// The `outcome` of every entry of a change log's JSONL, in order.
fn outcomes(jsonl: &str) -> Vec<String> {
    jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn drain_moves_every_running_guest_with_exactly_the_planned_commands() {
    let mut c = fast(scenario::healthy(3));
    c.guest_mut(100).unwrap().ha = Some("started".into());
    c.ha.master = Some("pve2".into());
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let state = sim.state();
    let left: Vec<u32> = state
        .guests
        .iter()
        .filter(|g| g.node == "pve1" && g.status == "running")
        .map(|g| g.vmid)
        .collect();
    assert!(left.is_empty(), "still running on pve1: {left:?}");
    let sent = changes(&sim);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent[0].starts_with("qm migrate 101 pve") && sent[0].ends_with(" --online"),
        "{sent:?}"
    );
    assert!(
        sent[1].starts_with("pct migrate 102 pve") && sent[1].ends_with(" --restart"),
        "{sent:?}"
    );
    assert_eq!(
        sent[2],
        "ha-manager crm-command node-maintenance enable pve1"
    );
    // The runbook names the same commands, in the same order.
    // The before- and after-snapshot's outputs both stay: the second gets `-2`.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("raw/pve1/meta.json")).unwrap())
            .unwrap();
    assert!(
        meta.get("qm-list").is_some() && meta.get("qm-list-2").is_some(),
        "{meta}"
    );
    let before = std::fs::read_to_string(r.dir.join("raw/pve1/qm-list.stdout")).unwrap();
    let after = std::fs::read_to_string(r.dir.join("raw/pve1/qm-list-2.stdout")).unwrap();
    assert_ne!(before, after, "the drained node's qm list changed");
    let runbook = std::fs::read_to_string(r.dir.join("runbook.md")).unwrap();
    let planned: Vec<&str> = runbook
        .lines()
        .filter(|l| {
            l.starts_with("   qm ") || l.starts_with("   pct ") || l.starts_with("   ha-manager ")
        })
        .map(str::trim)
        .collect();
    assert_eq!(planned, sent.iter().map(String::as_str).collect::<Vec<_>>());
    let mut j = journal(&r.dir);
    // First the home line: where each guest the drain may touch ran before it.
    let home = j.remove(0);
    assert_eq!(home["phase"], "home", "{home}");
    let mut homes: Vec<(u64, &str)> = home["detail"]["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["vmid"].as_u64().unwrap(), g["node"].as_str().unwrap()))
        .collect();
    homes.sort();
    assert_eq!(homes, [(100, "pve1"), (101, "pve1"), (102, "pve1")]);
    assert_eq!(j.len(), 6, "start and end of three steps");
    assert!(
        j.iter()
            .filter(|e| e["phase"] == "end")
            .all(|e| e["outcome"] == "ok" && e["verified"] == true),
        "{j:?}"
    );
    assert_eq!(
        j[1]["undo"]
            .as_str()
            .map(|u| u.starts_with("qm migrate 101 pve1 --online")),
        Some(true),
        "{j:?}"
    );
    for f in [
        "before.json",
        "after.json",
        "journal.jsonl",
        "runbook.md",
        "report.md",
    ] {
        assert!(r.dir.join(f).exists(), "{f} missing");
    }
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(
        report.contains("| guest-moved |"),
        "the report has the differences"
    );
    let log = std::fs::read_to_string(sim.lab.dir.path().join("changelog.md.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1);
    let entry: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(
        (entry["operation"].as_str(), entry["outcome"].as_str()),
        (Some("drain pve1"), Some("success"))
    );
}

#[test]
fn a_failed_migration_stops_the_drain_at_that_step() {
    let mut c = fast(scenario::healthy(3));
    c.node_mut("pve1").unwrap().faults.migration_fails = vec![101];
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let sent = changes(&sim);
    assert_eq!(sent.len(), 1, "nothing after the failed step: {sent:?}");
    let j = journal(&r.dir);
    let end = j.iter().find(|e| e["phase"] == "end").unwrap();
    assert_eq!(
        (end["seq"].as_u64(), end["outcome"].as_str()),
        (Some(1), Some("failed")),
        "{j:?}"
    );
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(report.contains("step 1 failed"), "{report}");
    assert_eq!(
        sim.state().guest(101).unwrap().node,
        "pve1",
        "the guest stayed"
    );
    let end_msg = end["message"].as_str().unwrap();
    assert!(
        end_msg.contains("failed on the node: online migrate failure")
            && end_msg.contains("exit 255"),
        "the failure is read from the exit status and the task log, not waited out: {end_msg}"
    );
}

#[test]
fn the_quorum_gate_refuses_and_changes_nothing() {
    // A 2-node cluster without qdevice, and a 3-node cluster with a node down.
    let two = fast(scenario::healthy(2));
    let mut down = fast(scenario::healthy(3));
    down.node_mut("pve3").unwrap().online = false;
    for c in [two, down] {
        let sim = SimCluster::start(c);
        let r = op(&sim, &["drain", "pve1", "--yes"]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(
            r.stderr.contains("refused by gate quorum-without-node"),
            "{}",
            r.stderr
        );
        assert!(changes(&sim).is_empty());
        assert!(!r.dir.join("journal.jsonl").exists());
    }
}

#[test]
fn other_gates_refuse_and_change_nothing() {
    let mut c = fast(scenario::healthy(3));
    c.guests
        .iter_mut()
        .filter(|g| g.vmid == 101)
        .for_each(|g| g.backups.clear());
    c.node_mut("pve3").unwrap().lrm = Some("maintenance mode".into());
    c.ha.master = Some("pve1".into());
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert!(
        r.stderr.contains("refused by gate backup-recent") && r.stderr.contains("101 (no backup)"),
        "{}",
        r.stderr
    );
    let r = op(&sim, &["migrate", "100", "--to", "pve3", "--yes"]);
    assert!(
        r.stderr.contains("refused by gate target-online") && r.stderr.contains("maintenance"),
        "{}",
        r.stderr
    );
    let r = op(
        &sim,
        &[
            "migrate",
            "103",
            "--to",
            "pve2",
            "--yes",
            "--no-backup-gate",
        ],
    );
    assert_eq!(
        r.code,
        Some(0),
        "a stopped guest on local storage may move: {}",
        r.stderr
    );
    let r = op(&sim, &["migrate", "100", "--to", "pve2"]);
    assert_eq!(r.code, Some(64), "no terminal and no --yes: {}", r.stderr);
    let r = op(&sim, &["migrate", "100", "--to", "pve2", "--dry-run"]);
    assert_eq!(r.code, Some(0));
    assert!(r.dir.join("runbook.md").exists());
    assert_eq!(
        changes(&sim),
        vec!["qm migrate 103 pve2".to_string()],
        "only the one operation that ran changed anything"
    );
}

#[test]
fn maintenance_enter_and_exit() {
    let sim = SimCluster::start(fast(scenario::ha(3)));
    let r = op(&sim, &["maintenance", "enter", "pve2", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        sim.state().node("pve2").unwrap().lrm.as_deref(),
        Some("maintenance mode")
    );
    let r = op(&sim, &["maintenance", "enter", "pve2", "--yes"]);
    assert_eq!(r.code, Some(0), "a second enter is a no-op: {}", r.stderr);
    let r = op(&sim, &["maintenance", "exit", "pve2", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        sim.state().node("pve2").unwrap().lrm.as_deref(),
        Some("active")
    );
    assert_eq!(
        changes(&sim),
        vec![
            "ha-manager crm-command node-maintenance enable pve2".to_string(),
            "ha-manager crm-command node-maintenance disable pve2".into()
        ]
    );
}

#[test]
fn restore_brings_the_guests_back_and_is_idempotent() {
    let mut c = fast(scenario::healthy(3));
    c.guest_mut(100).unwrap().ha = Some("started".into());
    c.ha.master = Some("pve2".into());
    let sim = SimCluster::start(c);
    let before: Vec<(u32, String)> = sim
        .state()
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone()))
        .collect();
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let journal = r.dir.join("journal.jsonl");
    let first = restore(&sim, &journal, "1");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let wait = |want: &[(u32, String)]| {
        crate::support::poll_until(20, || {
            sim.state()
                .guests
                .iter()
                .map(|g| (g.vmid, g.node.clone()))
                .collect::<Vec<_>>()
                == want
        })
    };
    assert!(
        wait(&before),
        "every guest is back where it was: {:?}",
        sim.state()
            .guests
            .iter()
            .map(|g| (g.vmid, &g.node))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        sim.state().node("pve1").unwrap().lrm.as_deref(),
        Some("active")
    );
    let n = changes(&sim).len();
    let second = restore(&sim, &journal, "2");
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(changes(&sim).len(), n, "a second restore changes nothing");
    let log = std::fs::read_to_string(sim.lab.dir.path().join("changelog.md.jsonl")).unwrap();
    let outcomes = outcomes(&log);
    assert_eq!(outcomes, ["success", "rolled-back", "rolled-back"]);
}

/// Starts a drain, waits until its first migration is journaled as started, then kills it.
fn interrupted_drain(sim: &SimCluster, signal: &str) -> (Option<i32>, std::path::PathBuf) {
    interrupted_drain_with(sim, signal, &[])
}

fn interrupted_drain_with(
    sim: &SimCluster,
    signal: &str,
    extra: &[&str],
) -> (Option<i32>, std::path::PathBuf) {
    let inv = sim.inventory();
    let dir = sim
        .lab
        .dir
        .path()
        .join(format!("drain-{signal}{}", extra.join("")));
    let changelog = sim.lab.dir.path().join("changelog.md");
    let mut args = vec![
        "-I",
        inv.to_str().unwrap(),
        "drain",
        "pve1",
        "--yes",
        "--out",
        dir.to_str().unwrap(),
        "--changelog",
        changelog.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut child = crate::support::command(sim.lab.home(), &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.join("journal.jsonl");
    let started = crate::support::poll_until(30, || {
        std::fs::read_to_string(&journal).is_ok_and(|t| t.contains("\"phase\":\"start\""))
    });
    assert!(started, "the drain never started a step");
    // Kill it while the first migration runs on the node.
    let migrating = crate::support::poll_until(30, || {
        sim.state()
            .guest(101)
            .is_some_and(|g| g.lock.as_deref() == Some("migrate"))
    });
    assert!(migrating, "the first migration never started");
    crate::support::sh("kill", &[&format!("-{signal}"), &child.id().to_string()]);
    let status = child.wait().unwrap();
    (status.code(), journal)
}

#[test]
fn ctrl_c_and_sigkill_mid_drain_leave_a_journal_restore_recovers_from() {
    for signal in ["INT", "KILL"] {
        let mut c = fast(scenario::healthy(3));
        c.timing.migrate_secs = 2.0;
        let sim = SimCluster::start(c);
        let (code, journal) = interrupted_drain(&sim, signal);
        let text = std::fs::read_to_string(&journal).unwrap();
        if signal == "INT" {
            assert_eq!(code, Some(130));
            assert!(text.contains("\"outcome\":\"aborted\""), "{text}");
        } else {
            assert_eq!(code, None, "killed");
            assert!(!text.contains("\"phase\":\"end\""), "{text}");
        }
        // The migration in flight is not killed: it completes on the node.
        assert!(
            crate::support::poll_until(20, || sim
                .state()
                .guest(101)
                .is_some_and(|g| g.node != "pve1" && g.lock.is_none())),
            "{signal}"
        );
        let r = restore(&sim, &journal, signal);
        assert_eq!(r.code, Some(0), "{signal}: {}", r.stderr);
        assert!(
            crate::support::poll_until(20, || sim
                .state()
                .guest(101)
                .is_some_and(|g| g.node == "pve1" && g.lock.is_none())),
            "{signal}: back on pve1"
        );
    }
}

#[test]
fn a_rolling_reboot_puts_every_guest_back_and_stops_at_a_node_that_does_not_return() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let before: Vec<(u32, String, String)> = sim
        .state()
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone(), g.status.clone()))
        .collect();
    let boot_ids: Vec<String> = sim
        .state()
        .nodes
        .iter()
        .map(|n| n.boot_id.clone())
        .collect();
    let r = op(
        &sim,
        &[
            "reboot",
            "pve1",
            "pve2",
            "pve3",
            "--yes",
            "--reboot-timeout",
            "20",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let after = sim.state();
    let now: Vec<(u32, String, String)> = after
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone(), g.status.clone()))
        .collect();
    assert_eq!(
        now, before,
        "every guest back in place and running as before"
    );
    for (n, old) in after.nodes.iter().zip(&boot_ids) {
        assert_ne!(&n.boot_id, old, "{} rebooted", n.name);
    }
    assert_eq!(
        sim.nodes_that_ran("reboot"),
        ["pve1", "pve2", "pve3"],
        "one node after the other"
    );

    let mut c = fast(scenario::healthy(3));
    c.node_mut("pve2").unwrap().faults.no_return_after_reboot = true;
    let sim = SimCluster::start(c);
    let r = op(
        &sim,
        &["reboot", "pve2", "pve3", "--yes", "--reboot-timeout", "3"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(
        sim.nodes_that_ran("reboot"),
        ["pve2"],
        "pve3 is not touched"
    );
    let j = journal(&r.dir);
    let failed = j.iter().find(|e| e["outcome"] == "failed").unwrap();
    assert!(
        failed["step"].as_str().unwrap().starts_with("reboot pve2"),
        "{failed}"
    );
}

#[test]
fn the_demo_runs_the_main_job_end_to_end() {
    // The README's first command: a lab, assess, drain, verify, restore, evidence on disk.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["demo", "--listen", "127.0.52.1", "--state-dir", "lab"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = std::fs::read_dir(dir.path().join("pveops-evidence"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for part in [
        "1-assess/report.md",
        "2-drain/journal.jsonl",
        "2-drain/runbook.md",
        "3-verify/report.md",
        "4-restore/report.md",
    ] {
        assert!(root.join(part).exists(), "{part} missing");
    }
    let log = std::fs::read_to_string(dir.path().join("pveops-changelog.md.jsonl")).unwrap();
    let outcomes = outcomes(&log);
    assert_eq!(outcomes, ["success", "rolled-back"]);
}

#[test]
fn each_gate_refuses_on_its_own_and_plan_changes_nothing() {
    let mut c = fast(scenario::healthy(3));
    c.ha.master = Some("pve1".into());
    let sim = SimCluster::start(c);
    let plan = |args: &[&str]| {
        let mut a = vec!["plan"];
        a.extend_from_slice(args);
        a.push("--no-backup-gate");
        op(&sim, &a)
    };
    let refused = |r: &Op, gate: &str| {
        assert_eq!(r.code, Some(2), "{gate}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("refused by gate {gate}:")),
            "{gate}: {}",
            r.stderr
        );
    };
    // Baseline: the plan passes and writes its runbook.
    let r = plan(&["migrate", "100", "--to", "pve2"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.dir.join("runbook.md").exists());

    sim.edit(|c| c.guest_mut(101).unwrap().ha = Some("error".into()));
    refused(&plan(&["migrate", "100", "--to", "pve2"]), "ha-healthy");
    sim.edit(|c| c.guest_mut(101).unwrap().ha = None);

    sim.edit(|c| {
        c.storages
            .iter_mut()
            .find(|s| s.id == "ceph-vm")
            .unwrap()
            .nodes = Some(vec!["pve1".into(), "pve2".into()])
    });
    refused(
        &plan(&["migrate", "100", "--to", "pve3"]),
        "migrate-preflight",
    );
    sim.edit(|c| {
        c.storages
            .iter_mut()
            .find(|s| s.id == "ceph-vm")
            .unwrap()
            .nodes = None
    });

    sim.edit(|c| {
        let n = c.node_mut("pve2").unwrap();
        n.memory_total = 12 << 30;
        n.memory_base = 6 << 30;
    });
    refused(&plan(&["migrate", "101", "--to", "pve2"]), "memory");

    sim.edit(|c| c.node_mut("pve1").unwrap().manager_version = "7.2-3".into());
    refused(
        &plan(&["maintenance", "enter", "pve1"]),
        "ha-maintenance-supported",
    );

    refused(
        &plan(&[
            "migrate",
            "100",
            "--to",
            "pve3",
            "--window",
            "2000-01-01 00:00/1h",
        ]),
        "maintenance-window",
    );
    let r = plan(&[
        "migrate",
        "100",
        "--to",
        "pve3",
        "--window",
        "2000-01-01 00:00/1h",
        "--force-window",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    sim.edit(|c| c.node_mut("pve3").unwrap().online = false);
    refused(&plan(&["migrate", "100", "--to", "pve3"]), "target-online");

    assert!(
        changes(&sim).is_empty(),
        "plan never changes anything: {:?}",
        changes(&sim)
    );
}

#[test]
fn restore_after_a_failed_drain_undoes_the_steps_that_succeeded() {
    let mut c = fast(scenario::healthy(3));
    c.node_mut("pve1").unwrap().faults.migration_fails = vec![102];
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_ne!(
        sim.state().guest(101).unwrap().node,
        "pve1",
        "step 1 succeeded"
    );
    let back = restore(&sim, &r.dir.join("journal.jsonl"), "after-failure");
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert!(crate::support::poll_until(20, || sim
        .state()
        .guest(101)
        .is_some_and(|g| g.node == "pve1" && g.lock.is_none())));
}

/// Nodes at UTC+2 with vzdump backups on NFS, named in that local time as vzdump names them:
/// a backup made 2 hours ago is 2 hours old in the check, the gate and the snapshot; one made
/// 9 days ago fails the 7-day gate, naming guest and age.
#[test]
fn vzdump_backups_are_aged_in_the_nodes_local_time() {
    let mut c = scenario::healthy(3);
    for n in c.nodes.iter_mut() {
        n.utc_offset_minutes = 120;
    }
    for g in c.guests.iter_mut() {
        let age = match g.vmid {
            101 => "-216h",
            _ => "-2h",
        };
        g.backups = vec![pveops_lab::state::Backup {
            storage: "nfs-backup".into(),
            time: age.into(),
            size: 1 << 30,
        }];
    }
    let sim = SimCluster::start(c);
    let state = sim.state();
    let r = op(&sim, &["drain", "pve1", "--dry-run"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("refused by gate backup-recent")
            && r.stderr.contains("of: 101 (216 h old) (or pass"),
        "{}",
        r.stderr
    );
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.dir.join("before.json")).unwrap()).unwrap();
    let newest = before["newest_backups"].as_array().unwrap();
    let g100 = newest.iter().find(|b| b["vmid"] == 100).unwrap();
    let made: jiff::Timestamp = state.guests.iter().find(|g| g.vmid == 100).unwrap().backups[0]
        .time
        .parse()
        .unwrap();
    assert_eq!(g100["epoch"], made.as_second(), "{g100}");
    // The file name carries the wall clock at UTC+2, as vzdump's localtime() gives it.
    let local = made
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap()
        .strftime("%Y_%m_%d-%H_%M_%S")
        .to_string();
    assert!(g100["volid"].as_str().unwrap().contains(&local), "{g100}");
    assert_eq!(before["nodes"][0]["utc_offset_seconds"], 7200);
}

/// Where each guest is, by VMID.
fn placement(sim: &SimCluster) -> std::collections::BTreeMap<u32, String> {
    sim.state()
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone()))
        .collect()
}

#[test]
fn a_pve9_cluster_drains_restores_reboots_and_verifies() {
    // PVE 9.1 as a new user meets it: pre-filled `not_allowed_nodes`, HA rules, a storage only
    // pve1 and pve2 have, vzdump backups named in UTC+1.
    let sim = SimCluster::start(fast(scenario::pve9()));
    let start = placement(&sim);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let after = placement(&sim);
    // erp01 is on san-a (pve1, pve2 only); web01 is pinned to pve1/pve2 by a strict rule; db01
    // stays apart from db02 (pve2).
    assert_eq!(after[&104], "pve2", "{after:?}");
    assert_eq!(after[&100], "pve2", "{after:?}");
    assert_eq!(after[&101], "pve3", "{after:?}");
    assert!(
        !sim.state()
            .guests
            .iter()
            .any(|g| g.node == "pve1" && g.status == "running"),
        "{after:?}"
    );
    let back = restore(&sim, &r.dir.join("journal.jsonl"), "pve9");
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert_eq!(placement(&sim), start);

    let rb = op(&sim, &["reboot", "pve1", "pve2", "--yes"]);
    assert_eq!(rb.code, Some(0), "{}", rb.stderr);
    assert_eq!(placement(&sim), start, "every guest ends where it started");
    let reboots: Vec<String> = changes(&sim)
        .into_iter()
        .filter(|l| l.starts_with("reboot"))
        .collect();
    assert_eq!(reboots.len(), 2, "{reboots:?}");

    let inv = sim.inventory();
    let before = r.dir.join("before.json");
    let out = pveops(
        sim.lab.home(),
        &[
            "verify",
            "-I",
            inv.to_str().unwrap(),
            "lab",
            "--against",
            before.to_str().unwrap(),
            "--out",
            sim.lab.dir.path().join("verify").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_pve8_restricted_ha_group_binds_as_a_strict_node_affinity_rule() {
    // PVE 8.4: no /cluster/ha/rules; the node-affinity rule is served as the restricted HA
    // group it was migrated from, with vm:100 in it (/cluster/ha/resources).
    let mut c = scenario::pve9();
    for n in &mut c.nodes {
        n.manager_version = "8.4.14".into();
    }
    c.ha_rules.retain(|r| r.kind == "node-affinity");
    let sim = SimCluster::start(fast(c));
    let r = op(&sim, &["migrate", "100", "--to", "pve3", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("HA rule ha-group-web01-san keeps vm:100 on pve1, pve2"),
        "{}",
        r.stderr
    );
    assert!(changes(&sim).is_empty(), "{:?}", changes(&sim));
    let cmds = sim.commands();
    assert!(
        cmds.iter().any(|(_, c)| c.contains("/cluster/ha/groups"))
            && cmds
                .iter()
                .any(|(_, c)| c.contains("/cluster/ha/resources")),
        "{cmds:?}"
    );
    // A drain choosing targets itself (no HA node maintenance) puts 100 on pve2, the group's
    // other node, and the CRM keeps it there.
    let r = op(&sim, &["drain", "pve1", "--no-ha-maintenance", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let after = placement(&sim);
    assert_eq!(after[&100], "pve2", "{after:?} {:?}", changes(&sim));
    assert!(
        changes(&sim)
            .iter()
            .any(|c| c.starts_with("qm migrate 100 pve2")),
        "{:?}",
        changes(&sim)
    );
}

#[test]
fn targets_pve_or_ha_would_refuse_or_undo_are_refused_before_any_change() {
    let sim = SimCluster::start(fast(scenario::pve9()));
    for (vmid, to, why) in [
        ("104", "pve3", "storage san-a not available there"),
        (
            "100",
            "pve3",
            "HA rule web01-san keeps vm:100 on pve1, pve2 (strict node affinity)",
        ),
        ("101", "pve2", "HA resource vm:201 is there"),
    ] {
        let r = op(&sim, &["migrate", vmid, "--to", to, "--yes"]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains(why), "{vmid} → {to}: {}", r.stderr);
    }
    assert!(changes(&sim).is_empty(), "{:?}", changes(&sim));
    // The dry run of a drain PVE accepts exits 0.
    let r = op(&sim, &["drain", "pve1", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// `healthy(3)` with six running guests on pve1, none HA-managed: 101 (8 GiB), 100, 104,
/// 105, 106 (4 GiB each, VMs on Ceph) and container 102 (1 GiB). A drain orders them biggest
/// first: 101, 100, 104 | 105, 106, 102.
fn six_on_pve1() -> Cluster {
    let mut c = fast(scenario::healthy(3));
    let web = c.guest(100).unwrap().clone();
    for vmid in [104, 105, 106] {
        let mut g = web.clone();
        g.vmid = vmid;
        g.name = Some(format!("app{vmid}"));
        c.guests.push(g);
    }
    c
}

/// (seq, phase) of every journal entry, in the order written.
fn phases(j: &[serde_json::Value]) -> Vec<(u64, String)> {
    j.iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Position of the first entry of `seq` in `phase`.
fn at(p: &[(u64, String)], seq: u64, phase: &str) -> usize {
    p.iter()
        .position(|(s, ph)| *s == seq && ph == phase)
        .unwrap_or_else(|| panic!("no {phase} of step {seq} in {p:?}"))
}

#[test]
fn max_migrations_drains_in_waves_each_verified_and_restore_undoes_them() {
    let sim = SimCluster::start(six_on_pve1());
    let before: Vec<(u32, String)> = sim
        .state()
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone()))
        .collect();
    let r = op(&sim, &["drain", "pve1", "--max-migrations", "3", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        sim.state()
            .guests
            .iter()
            .all(|g| g.node != "pve1" || g.status != "running"),
        "pve1 is drained"
    );
    assert_eq!(changes(&sim).len(), 6, "{:?}", changes(&sim));
    let j = journal(&r.dir);
    let p = phases(&j);
    // Wave 1 (steps 1-3) all started before any of them ended; wave 2 (4-6) started only when
    // every step of wave 1 had ended verified.
    let last_start_1 = (1..=3).map(|s| at(&p, s, "start")).max().unwrap();
    let first_end_1 = (1..=3).map(|s| at(&p, s, "end")).min().unwrap();
    let last_end_1 = (1..=3).map(|s| at(&p, s, "end")).max().unwrap();
    let first_start_2 = (4..=6).map(|s| at(&p, s, "start")).min().unwrap();
    let last_start_2 = (4..=6).map(|s| at(&p, s, "start")).max().unwrap();
    let first_end_2 = (4..=6).map(|s| at(&p, s, "end")).min().unwrap();
    assert!(last_start_1 < first_end_1, "wave 1 ran at once: {p:?}");
    assert!(
        last_end_1 < first_start_2,
        "wave 2 waited for wave 1: {p:?}"
    );
    assert!(last_start_2 < first_end_2, "wave 2 ran at once: {p:?}");
    assert!(
        j.iter()
            .filter(|e| e["phase"] == "end")
            .all(|e| e["outcome"] == "ok" && e["verified"] == true),
        "{j:?}"
    );
    let runbook = std::fs::read_to_string(r.dir.join("runbook.md")).unwrap();
    assert!(
        runbook.contains("Up to 3 migrations at once (--max-migrations)")
            && runbook.contains("**Wave 1**: steps 1, 2, 3 at once.")
            && runbook.contains("**Wave 2**: steps 4, 5, 6 at once."),
        "{runbook}"
    );
    assert!(
        r.stderr
            .contains("wave 1: 3 migrations at once (steps 1, 2, 3)")
            && r.stderr.contains("wave 2: every migration verified"),
        "{}",
        r.stderr
    );
    let back = restore(&sim, &r.dir.join("journal.jsonl"), "waves");
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert!(
        crate::support::poll_until(20, || sim
            .state()
            .guests
            .iter()
            .map(|g| (g.vmid, g.node.clone()))
            .collect::<Vec<_>>()
            == before),
        "restore put every guest back"
    );
}

#[test]
fn a_failed_migration_lets_its_wave_finish_and_starts_nothing_after_it() {
    let mut c = six_on_pve1();
    // Guest 100 is the second step of wave 1.
    c.node_mut("pve1").unwrap().faults.migration_fails = vec![100];
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--max-migrations", "3", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let sent = changes(&sim);
    assert_eq!(sent.len(), 3, "only wave 1 was sent: {sent:?}");
    let j = journal(&r.dir);
    let ends: Vec<(u64, String)> = j
        .iter()
        .filter(|e| e["phase"] == "end")
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = ends.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [(1, "ok".into()), (2, "failed".into()), (3, "ok".into())],
        "the others of wave 1 ran to their end, nothing of wave 2 started: {j:?}"
    );
    let state = sim.state();
    assert_eq!(
        state.guest(100).unwrap().node,
        "pve1",
        "the failed one stayed"
    );
    for vmid in [101, 104] {
        assert_ne!(state.guest(vmid).unwrap().node, "pve1", "{vmid} moved");
    }
    for vmid in [105, 106, 102] {
        assert_eq!(state.guest(vmid).unwrap().node, "pve1", "{vmid} untouched");
    }
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(report.contains("step 2 failed"), "{report}");
    let back = restore(&sim, &r.dir.join("journal.jsonl"), "failed-wave");
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert!(crate::support::poll_until(20, || {
        let s = sim.state();
        [101, 104].iter().all(|v| {
            s.guest(*v)
                .is_some_and(|g| g.node == "pve1" && g.lock.is_none())
        })
    }));
}

#[test]
fn without_max_migrations_a_drain_runs_datacenter_cfg_max_workers_at_once() {
    let mut c = six_on_pve1();
    c.datacenter.max_workers = Some(4);
    let sim = SimCluster::start(c);
    let r = op(&sim, &["plan", "drain", "pve1"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let runbook = std::fs::read_to_string(r.dir.join("runbook.md")).unwrap();
    assert!(
        runbook.contains("Up to 4 migrations at once (max_workers in /etc/pve/datacenter.cfg)")
            && runbook.contains("**Wave 1**: steps 1, 2, 3, 4 at once.")
            && runbook.contains("**Wave 2**: steps 5, 6 at once."),
        "{runbook}"
    );
    assert!(changes(&sim).is_empty(), "plan changes nothing");
    // --max-migrations wins over datacenter.cfg; 1 means one at a time, no waves.
    let one = op(&sim, &["plan", "drain", "pve1", "--max-migrations", "1"]);
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    let runbook = std::fs::read_to_string(one.dir.join("runbook.md")).unwrap();
    assert!(!runbook.contains("Wave"), "{runbook}");
    // A rolling reboot drains in waves and brings the guests back in waves; the reboot
    // (step 7) is no part of one.
    let reboot = op(&sim, &["plan", "reboot", "pve1", "--max-migrations", "3"]);
    assert_eq!(reboot.code, Some(0), "{}", reboot.stderr);
    let runbook = std::fs::read_to_string(reboot.dir.join("runbook.md")).unwrap();
    for wave in [
        "**Wave 1**: steps 1, 2, 3 at once.",
        "**Wave 2**: steps 4, 5, 6 at once.",
        "**Wave 3**: steps 8, 9, 10 at once.",
        "**Wave 4**: steps 11, 12, 13 at once.",
    ] {
        assert!(runbook.contains(wave), "{wave}\n{runbook}");
    }
    assert!(runbook.contains("7. reboot pve1"), "{runbook}");
}

#[test]
fn ctrl_c_mid_wave_journals_every_migration_in_flight_and_restore_recovers() {
    let mut c = six_on_pve1();
    c.timing.migrate_secs = 2.0;
    let sim = SimCluster::start(c);
    let (code, journal) = interrupted_drain_with(&sim, "INT", &["--max-migrations", "3"]);
    assert_eq!(code, Some(130));
    let text = std::fs::read_to_string(&journal).unwrap();
    let j: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let aborted: Vec<u64> = j
        .iter()
        .filter(|e| e["outcome"] == "aborted")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(aborted, [1, 2, 3], "every step of wave 1 in flight: {text}");
    assert!(!text.contains("\"seq\":4"), "wave 2 never started: {text}");
    let r = restore(&sim, &journal, "mid-wave");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        crate::support::poll_until(30, || {
            let s = sim.state();
            s.guests
                .iter()
                .all(|g| g.node == "pve1" || !matches!(g.vmid, 100..=106))
                && s.guests.iter().all(|g| g.lock.is_none())
        }),
        "every guest of the wave is back on pve1: {:?}\n{}",
        sim.state()
            .guests
            .iter()
            .map(|g| (g.vmid, g.node.clone(), g.lock.clone()))
            .collect::<Vec<_>>(),
        r.stderr
    );
}
