//! What an operation refuses before its first change, against the lab behind real sshd: names
//! that are not cluster members, a locked guest, outputs that cannot be written.

use pveops::lab::scenario;

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
