//! What an operation refuses before its first change, against the lab behind real sshd: names
//! that are not cluster members, a locked guest, outputs that cannot be written.

use pveops_lab::scenario;

use crate::support::cluster::SimCluster;
use crate::support::ops::{fast, op};
use crate::support::pveops;

/// The commands that change something, in order.
fn changes(sim: &SimCluster) -> Vec<String> {
    sim.commands()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| {
            l.contains(" migrate ")
                || l.starts_with("ha-manager crm-command")
                || l.starts_with("reboot")
                || l.starts_with("ceph osd")
                || l.starts_with("apt-get update")
                || l.contains("dist-upgrade") && !l.contains("-s")
        })
        .collect()
}

#[test]
fn names_that_are_not_members_are_refused_before_anything_is_sent() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let cases: &[(&[&str], &str)] = &[
        (&["drain", "pve9", "--yes"], "pve9"),
        (&["reboot", "pve9", "pve2", "--yes"], "pve9"),
        (&["migrate", "300", "--to", "pve9", "--yes"], "pve9"),
        (&["drain", "PVE1", "--yes"], "PVE1 (did you mean pve1?)"),
        (&["update", "pve4", "--yes"], "pve4 (did you mean pve1?)"),
        (&["drain", "pve1", "--to", "pve7", "--yes"], "pve7"),
    ];
    for (args, named) in cases {
        let r = op(&sim, args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("refused by gate node-member"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(named), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("its members are pve1, pve2, pve3"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains(" may "), "{args:?}: {}", r.stderr);
        assert!(changes(&sim).is_empty(), "{args:?}: {:?}", changes(&sim));
    }
    let log = std::fs::read_to_string(sim.lab.dir.path().join("changelog.md.jsonl")).unwrap();
    assert!(!log.contains("\"success\""), "{log}");
}

#[test]
fn a_locked_guest_on_the_node_to_drain_refuses_the_drain_before_any_change() {
    let mut c = fast(scenario::healthy(3));
    // A backup holds the container: PVE's preflight would refuse it, and a drain that moved
    // the others first would stop half-way at it.
    c.guest_mut(102).unwrap().lock = Some("backup".into());
    let sim = SimCluster::start(c);
    let r = op(&sim, &["drain", "pve1", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("guest 102 on pve1 is locked (backup)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pct unlock 102"), "{}", r.stderr);
    assert!(changes(&sim).is_empty(), "{:?}", changes(&sim));

    // The lab's preflight refuses a locked VM as PVE does (`VM is locked (backup)`).
    let pf = sim.exec(
        "pve1",
        "pvesh get /nodes/pve1/qemu/100/migrate --output-format json",
        &[],
    );
    assert_eq!(pf["exit_code"], 0, "{pf}");
    sim.edit(|c| c.guest_mut(100).unwrap().lock = Some("backup".into()));
    let pf = sim.exec(
        "pve1",
        "pvesh get /nodes/pve1/qemu/100/migrate --output-format json",
        &[],
    );
    assert_ne!(pf["exit_code"], 0, "{pf}");
    assert_eq!(pf["stderr"], "VM is locked (backup)\n", "{pf}");
}

#[test]
fn outputs_that_cannot_be_written_end_the_run_before_any_change() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let inv = sim.inventory();
    let file = sim.lab.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_a_file = file.join("x");
    let good_out = sim.lab.dir.path().join("out-ok");
    let good_log = sim.lab.dir.path().join("changelog.md");
    for (out, log) in [(&good_out, &under_a_file), (&under_a_file, &good_log)] {
        let o = pveops(
            sim.lab.home(),
            &[
                "-I",
                inv.to_str().unwrap(),
                "drain",
                "pve1",
                "--yes",
                "--out",
                out.to_str().unwrap(),
                "--changelog",
                log.to_str().unwrap(),
            ],
            &[],
        );
        let err = crate::support::stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains(under_a_file.to_str().unwrap()), "{err}");
        assert!(changes(&sim).is_empty(), "{:?}", changes(&sim));
    }
}

#[test]
fn reusing_an_out_directory_keeps_the_earlier_evidence() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let first = op(&sim, &["migrate", "100", "--to", "pve2", "--yes"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let journal = std::fs::read_to_string(first.dir.join("journal.jsonl")).unwrap();
    // The same arguments, so the same --out directory.
    let again = op(&sim, &["migrate", "100", "--to", "pve2", "--yes"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("held an earlier run's evidence"),
        "{}",
        again.stderr
    );
    let kept: Vec<_> = std::fs::read_dir(&again.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("earlier-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(kept[0].path().join("journal.jsonl")).unwrap(),
        journal
    );
    assert!(again.dir.join("report.md").exists());
}

#[test]
fn sighup_and_sigterm_mid_drain_are_recorded_and_restore_brings_every_guest_home() {
    for (signal, code) in [("HUP", 129), ("TERM", 143)] {
        let mut c = fast(scenario::healthy(3));
        c.timing.migrate_secs = 2.0;
        let sim = SimCluster::start(c);
        let home: Vec<(u32, String)> = sim
            .state()
            .guests
            .iter()
            .map(|g| (g.vmid, g.node.clone()))
            .collect();
        let inv = sim.inventory();
        let dir = sim.lab.dir.path().join(format!("drain-{signal}"));
        let changelog = sim.lab.dir.path().join("changelog.md");
        let err_path = sim.lab.dir.path().join(format!("stderr-{signal}"));
        let mut child = crate::support::command(
            sim.lab.home(),
            &[
                "-I",
                inv.to_str().unwrap(),
                "drain",
                "pve1",
                "--yes",
                "--out",
                dir.to_str().unwrap(),
                "--changelog",
                changelog.to_str().unwrap(),
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
        let migrating = crate::support::poll_until(30, || {
            sim.state()
                .guests
                .iter()
                .any(|g| g.lock.as_deref() == Some("migrate"))
        });
        assert!(migrating, "{signal}: no migration started");
        crate::support::sh("kill", &[&format!("-{signal}"), &child.id().to_string()]);
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(&err_path).unwrap();
        assert_eq!(status.code(), Some(code), "{signal}: {err}");
        let journal = dir.join("journal.jsonl");
        let text = std::fs::read_to_string(&journal).unwrap();
        assert!(text.contains("\"outcome\":\"aborted\""), "{signal}: {text}");
        assert!(text.contains(&format!("SIG{signal}")), "{signal}: {text}");
        let log = std::fs::read_to_string(sim.lab.dir.path().join("changelog.md.jsonl")).unwrap();
        assert!(log.contains("\"outcome\":\"aborted\""), "{signal}: {log}");
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            err.lines()
                .rev()
                .take(4)
                .any(|l| l.contains(&format!("pveops restore --journal {}", journal.display()))),
            "{signal}: the way back is not among the last lines: {last}\n{err}"
        );
        assert!(dir.join("report.md").exists(), "{signal}: no report");

        let r = crate::support::ops::restore(&sim, &journal, signal);
        assert_eq!(r.code, Some(0), "{signal}: {}", r.stderr);
        let now: Vec<(u32, String)> = sim
            .state()
            .guests
            .iter()
            .map(|g| (g.vmid, g.node.clone()))
            .collect();
        assert_eq!(now, home, "{signal}: every guest home");
    }
}

/// (vmid, node) of every guest.
fn placement(sim: &SimCluster) -> Vec<(u32, String, String)> {
    sim.state()
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.clone(), g.status.clone()))
        .collect()
}

/// The VMIDs the migrations sent since command `from` of the lab's log moved.
fn migrated_since(sim: &SimCluster, from: usize) -> Vec<u32> {
    sim.commands()
        .into_iter()
        .skip(from)
        .filter(|(_, l)| l.contains(" migrate "))
        .filter_map(|(_, l)| l.split_whitespace().nth(2)?.parse().ok())
        .collect()
}

/// Restores `journal` twice: the first brings every guest home moving only guests in `may_move`,
/// the second sends nothing and says so.
fn restore_converges(
    sim: &SimCluster,
    journal: &std::path::Path,
    home: &[(u32, String, String)],
    may_move: &[u32],
    what: &str,
) {
    let n = sim.commands().len();
    let r = crate::support::ops::restore(sim, journal, &format!("{what}-1"));
    assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
    // The runbook says, per guest, where it is, where it belongs and what will happen.
    let runbook = std::fs::read_to_string(r.dir.join("runbook.md")).unwrap();
    assert!(runbook.contains("## Placement"), "{what}: {runbook}");
    for (vmid, node, _) in home.iter().filter(|(v, _, _)| may_move.contains(v)) {
        assert!(
            runbook.lines().any(
                |l| l.starts_with(&format!("| {vmid} |")) && l.contains(&format!("| {node} |"))
            ),
            "{what}: no placement row for {vmid}: {runbook}"
        );
    }
    assert_eq!(
        placement(sim),
        home,
        "{what}: every guest home, in the state it had"
    );
    let moved = migrated_since(sim, n);
    assert!(
        moved.iter().all(|v| may_move.contains(v)),
        "{what}: restore moved {moved:?}, only {may_move:?} were away from home"
    );
    let n = sim.commands().len();
    let again = crate::support::ops::restore(sim, journal, &format!("{what}-2"));
    assert_eq!(again.code, Some(0), "{what}: {}", again.stderr);
    assert!(
        migrated_since(sim, n).is_empty(),
        "{what}: the second restore moved guests"
    );
    assert!(
        again
            .stderr
            .contains("nothing to restore: every guest is home"),
        "{what}: {}",
        again.stderr
    );
}

#[test]
fn a_rolling_reboot_that_fails_on_its_second_node_is_restored_without_moving_the_first_nodes_guests()
 {
    let mut c = fast(scenario::healthy(3));
    // pve3's smallest guest is drained last: 301 and 300 have moved when 302 fails.
    c.node_mut("pve3").unwrap().faults.migration_fails = vec![302];
    let sim = SimCluster::start(c);
    let home = placement(&sim);
    let r = op(
        &sim,
        &["reboot", "pve2", "pve3", "--yes", "--reboot-timeout", "20"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("pveops restore --journal"),
        "{}",
        r.stderr
    );
    sim.edit(|c| c.node_mut("pve3").unwrap().faults.migration_fails.clear());
    restore_converges(
        &sim,
        &r.dir.join("journal.jsonl"),
        &home,
        &[300, 301],
        "reboot",
    );
}

#[test]
fn each_step_of_a_rolling_reboot_failing_in_turn_is_restored_to_the_home_placement() {
    type Break = fn(&mut pveops_lab::state::Cluster);
    let cases: Vec<(&str, Break, Vec<u32>)> = vec![
        // The drain: pve1's second migration fails.
        (
            "drain",
            |c| c.node_mut("pve1").unwrap().faults.migration_fails = vec![100],
            vec![101, 102],
        ),
        // HA maintenance is refused.
        (
            "maintenance",
            |c| {
                c.node_mut("pve2").unwrap().faults.fail.insert(
                    "ha-manager crm-command node-maintenance".into(),
                    pveops_lab::state::Failure {
                        exit: 255,
                        stderr: "simulated: cannot enter maintenance".into(),
                    },
                );
            },
            vec![101, 102, 200, 201, 202],
        ),
        // The reboot command fails.
        (
            "reboot",
            |c| {
                c.node_mut("pve1").unwrap().faults.fail.insert(
                    "reboot".into(),
                    pveops_lab::state::Failure {
                        exit: 1,
                        stderr: "simulated: reboot refused".into(),
                    },
                );
            },
            vec![100, 101, 102],
        ),
        // The node takes longer than --reboot-timeout to come back.
        ("wait", |c| c.timing.reboot_secs = 6.0, vec![100, 101, 102]),
        // A move back fails.
        (
            "move back",
            |c| {
                c.node_mut("pve2").unwrap().faults.migration_fails = vec![101];
                c.node_mut("pve3").unwrap().faults.migration_fails = vec![101];
            },
            vec![100, 101, 102],
        ),
    ];
    for (what, breaks, may_move) in cases {
        let mut c = fast(scenario::healthy(3));
        c.guest_mut(200).unwrap().ha = Some("started".into());
        breaks(&mut c);
        let sim = SimCluster::start(c);
        let home = placement(&sim);
        let r = op(
            &sim,
            &["reboot", "pve1", "pve2", "--yes", "--reboot-timeout", "3"],
        );
        assert_eq!(r.code, Some(2), "{what}: {}", r.stderr);
        // The fault is gone (repaired); the node that was rebooting is back or coming back.
        sim.edit(|c| {
            for n in c.nodes.iter_mut() {
                n.faults = Default::default();
            }
        });
        restore_converges(&sim, &r.dir.join("journal.jsonl"), &home, &may_move, what);
    }
}

#[test]
fn restore_right_after_ctrl_c_during_a_reboot_waits_for_the_node_and_brings_every_guest_home() {
    let mut c = fast(scenario::healthy(3));
    c.timing.reboot_secs = 4.0;
    let sim = SimCluster::start(c);
    let home = placement(&sim);
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join("reboot-int");
    let changelog = sim.lab.dir.path().join("changelog.md");
    let mut child = crate::support::command(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "reboot",
            "pve3",
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
    assert!(
        crate::support::poll_until(60, || !sim.state().node("pve3").unwrap().online),
        "pve3 never went down"
    );
    crate::support::sh("kill", &["-INT", &child.id().to_string()]);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        !sim.state().node("pve3").unwrap().online,
        "restore starts while pve3 is down"
    );
    restore_converges(
        &sim,
        &dir.join("journal.jsonl"),
        &home,
        &[300, 301, 302],
        "ctrl-c",
    );
}

#[test]
fn a_rolling_update_that_fails_on_pve2_after_pve1_is_restored_without_moving_pve1s_guests() {
    let mut c = fast(scenario::updates());
    c.timing.upgrade_secs = 0.3;
    c.node_mut("pve2").unwrap().apt.fail_package = Some("pve-manager".into());
    let sim = SimCluster::start(c);
    let home = placement(&sim);
    let on_pve2: Vec<u32> = home
        .iter()
        .filter(|(_, n, st)| n == "pve2" && st == "running")
        .map(|(v, _, _)| *v)
        .collect();
    let r = op(
        &sim,
        &["update", "pve1", "pve2", "--yes", "--reboot-timeout", "20"],
    );
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let tail: Vec<&str> = r.stderr.lines().rev().take(3).collect();
    assert!(
        tail.iter().any(|l| l.contains("dpkg --configure -a")),
        "the repair is among the last lines: {tail:?}"
    );
    restore_converges(
        &sim,
        &r.dir.join("journal.jsonl"),
        &home,
        &on_pve2,
        "update",
    );
}

#[test]
fn detached_logs_leave_the_node_once_their_step_is_verified_and_stay_in_the_evidence() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join("drain-logs");
    let changelog = sim.lab.dir.path().join("changelog.md");
    let child = crate::support::command(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "drain",
            "pve1",
            "--yes",
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
        ],
    )
    .spawn()
    .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The lab's nodes share this machine's /tmp; the logs carry the pveops process id.
    let left: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pveops-step-") && n.contains(&format!("-{pid}-")))
        .collect();
    assert!(left.is_empty(), "left on the node: {left:?}");
    let kept: Vec<_> = crate::support::files_below(&dir.join("raw/pve1"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("migrate.log"))
        .collect();
    assert!(!kept.is_empty(), "the migration logs are in the evidence");
}

#[test]
fn a_rollout_parks_each_nodes_guests_outside_the_rest_of_the_rollout() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let r = op(&sim, &["plan", "reboot", "pve1", "pve2"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let away: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains(": migrate ") && l.contains(" from pve1 to "))
        .collect();
    assert!(!away.is_empty(), "{}", r.stderr);
    assert!(away.iter().all(|l| l.ends_with("to pve3")), "{away:?}");
    assert!(
        r.stderr
            .contains("pve1's guests go to nodes outside the rest of the rollout"),
        "{}",
        r.stderr
    );
}
