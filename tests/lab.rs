//! The lab: simulated PVE tools behind real OpenSSH sshd (state changes, faults, command log),
//! and `pveops lab`'s own SSH servers used by OpenSSH's `ssh` client.

use pveops_lab::scenario;
use pveops_lab::state::Cluster;

use crate::support::cluster::SimCluster;
use crate::support::{poll_until, sshd::free_port};

fn fast(mut c: Cluster) -> Cluster {
    c.timing.migrate_secs = 0.6;
    c.timing.ha_delay_secs = 0.2;
    c.timing.reboot_secs = 1.0;
    c.timing.shutdown_secs = 0.1;
    c
}

fn stdout(v: &serde_json::Value) -> &str {
    v["stdout"].as_str().unwrap_or("")
}

#[test]
fn simulated_tools_answer_from_the_shared_state() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let v = sim.exec("pve2", "pvecm status", &[]);
    assert_eq!(v["exit_code"], 0, "{v}");
    let text = stdout(&v);
    assert!(
        text.starts_with("Cluster information\n-------------------\nName:             lab\n"),
        "{text}"
    );
    assert!(text.contains("Quorate:          Yes\n"), "{text}");
    assert!(
        text.contains("0x00000002          1 10.10.10.12 (local)\n"),
        "{text}"
    );
    let v = sim.exec("pve1", "qm list | awk 'NR>1 {print $1}'", &[]);
    assert_eq!(stdout(&v), "100\n101\n103\n");
    let v = sim.exec("pve1", "nosuchtool --version", &[]);
    assert_eq!(
        v["exit_code"], 127,
        "unknown commands fail as a shell would"
    );
    let log = sim.commands();
    assert_eq!(
        log,
        vec![
            ("pve2".to_string(), "pvecm status".to_string()),
            ("pve1".into(), "qm list".into())
        ]
    );
}

#[test]
fn qm_migrate_moves_the_vm_and_prints_the_task_log() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let v = sim.exec("pve1", "qm migrate 100 pve2 --online", &[]);
    assert_eq!(v["exit_code"], 0, "{v}");
    let log = stdout(&v);
    assert!(
        log.contains(" starting migration of VM 100 to node 'pve2' (10.10.10.12)\n"),
        "{log}"
    );
    assert!(
        log.lines()
            .last()
            .unwrap()
            .contains("migration finished successfully (duration 00:00:0"),
        "{log}"
    );
    let g = sim.state().guest(100).cloned().unwrap();
    assert_eq!((g.node.as_str(), g.lock), ("pve2", None));
    // Running without --online is refused, as PVE does.
    let v = sim.exec("pve1", "qm migrate 101 pve3", &[]);
    assert_eq!(v["exit_code"], 255);
    assert_eq!(v["stderr"], "can't migrate running VM without --online\n");
}

#[test]
fn a_failed_migration_leaves_the_guest_where_it_was() {
    let mut c = fast(scenario::healthy(3));
    c.node_mut("pve1").unwrap().faults.migration_fails = vec![100];
    let sim = SimCluster::start(c);
    let v = sim.exec("pve1", "qm migrate 100 pve2 --online", &[]);
    assert_eq!(v["exit_code"], 255, "{v}");
    assert!(stdout(&v).contains("ERROR: migration aborted"), "{v}");
    let g = sim.state().guest(100).cloned().unwrap();
    assert_eq!(
        (g.node.as_str(), g.lock, g.status.as_str()),
        ("pve1", None, "running")
    );
}

#[test]
fn a_detached_migration_outlives_its_channel() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let v = sim.exec(
        "pve1",
        "setsid nohup pct migrate 102 pve3 --restart >/dev/null 2>&1 &",
        &[],
    );
    assert_eq!(v["exit_code"], 0);
    assert!(poll_until(5, || sim
        .state()
        .guest(102)
        .is_some_and(|g| g.lock.as_deref() == Some("migrate"))));
    assert!(poll_until(10, || sim
        .state()
        .guest(102)
        .is_some_and(|g| g.node == "pve3" && g.lock.is_none())));
    assert_eq!(
        sim.state().guest(102).unwrap().status,
        "running",
        "restarted on the target"
    );
}

#[test]
fn ha_migration_and_node_maintenance_are_asynchronous() {
    let sim = SimCluster::start(fast(scenario::ha(3)));
    let v = sim.exec("pve1", "qm migrate 100 pve2 --online", &[]);
    assert_eq!(
        stdout(&v),
        "Requesting HA migration for VM 100 to node pve2\n"
    );
    assert_eq!(
        sim.state().guest(100).unwrap().node,
        "pve1",
        "HA only takes the request"
    );
    assert!(poll_until(10, || sim
        .state()
        .guest(100)
        .is_some_and(|g| g.node == "pve2" && g.lock.is_none())));

    let v = sim.exec(
        "pve1",
        "ha-manager crm-command node-maintenance enable pve3",
        &[],
    );
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(
        sim.state().node("pve3").unwrap().lrm.as_deref(),
        Some("maintenance mode")
    );
    let ha_on_pve3 = |c: &Cluster| {
        c.guests
            .iter()
            .filter(|g| g.node == "pve3" && g.ha.is_some())
            .count()
    };
    assert!(
        poll_until(10, || ha_on_pve3(&sim.state()) == 0),
        "HA moved every HA guest away"
    );
    sim.exec(
        "pve1",
        "ha-manager crm-command node-maintenance disable pve3",
        &[],
    );
    assert!(
        poll_until(10, || ha_on_pve3(&sim.state()) == 3),
        "and back on disable"
    );
}

#[test]
fn reboot_takes_the_node_away_and_brings_it_back_with_a_new_boot_id() {
    let sim = SimCluster::start(fast(scenario::healthy(3)));
    let before = stdout(&sim.exec("pve3", "cat /proc/sys/kernel/random/boot_id", &[])).to_string();
    assert_eq!(before.len(), 37, "{before:?}");
    let v = sim.exec("pve3", "reboot", &[]);
    assert_eq!(v["exit_code"], 0);
    let s = sim.state();
    assert!(!s.node("pve3").unwrap().online);
    let v = sim.exec(
        "pve1",
        "pvecm status | grep -E '^(Nodes|Total votes):'",
        &[],
    );
    assert_eq!(stdout(&v), "Nodes:            2\nTotal votes:      2\n");
    assert!(poll_until(10, || sim.state().node("pve3").unwrap().online));
    let after = stdout(&sim.exec("pve3", "cat /proc/sys/kernel/random/boot_id", &[])).to_string();
    assert_ne!(before, after);
}

#[test]
fn fault_knobs_hang_fail_and_garble() {
    let mut c = fast(scenario::healthy(2));
    let f = &mut c.node_mut("pve1").unwrap().faults;
    f.hang = vec!["pvesm status".into()];
    f.fail.insert(
        "ha-manager status".into(),
        pveops_lab::state::Failure {
            exit: 255,
            stderr: "ipcc_send_rec[1] failed: Unknown error -1".into(),
        },
    );
    f.garbage = vec!["qm list".into()];
    let sim = SimCluster::start(c);
    let v = sim.exec("pve1", "pvesm status", &["--command-timeout", "1"]);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .ends_with("command timed out after 1 s (killed on the node)"),
        "{v}"
    );
    let v = sim.exec("pve1", "ha-manager status", &[]);
    assert_eq!(
        (v["exit_code"].as_u64(), v["stderr"].as_str()),
        (
            Some(255),
            Some("ipcc_send_rec[1] failed: Unknown error -1\n")
        )
    );
    let v = sim.exec("pve1", "qm list", &[]);
    assert!(stdout(&v).contains("garbage"));
    let v = sim.exec("pve2", "pvesm status", &["--command-timeout", "5"]);
    assert_eq!(v["exit_code"], 0, "the knobs are per node");
}

#[test]
fn lab_serves_openssh_clients() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut lab = std::process::Command::new(crate::support::bin())
        .args([
            "lab",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.77.1",
            "--ssh-port",
            &port.to_string(),
        ])
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = poll_until(20, || {
        (1..=3)
            .all(|i| std::net::TcpStream::connect((format!("127.0.77.{i}").as_str(), port)).is_ok())
    });
    let ssh = |host: &str, cmd: &str| {
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                dir.path().join("known_hosts").display()
            ))
            .args(["-o", "GlobalKnownHostsFile=/dev/null", "-i"])
            .arg(dir.path().join("id_ed25519"))
            .args(["-p", &port.to_string(), &format!("root@{host}"), cmd])
            .output()
            .unwrap()
    };
    let out = if up {
        Some(ssh("127.0.77.2", "pvecm status; echo exit=$?"))
    } else {
        None
    };
    let exec = std::process::Command::new(crate::support::bin())
        .args([
            "exec",
            "-I",
            dir.path().join("inventory.toml").to_str().unwrap(),
            "lab",
            "--json",
            "--",
            "pveversion",
        ])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let _ = lab.kill();
    let _ = lab.wait();
    assert!(up, "the lab did not listen");
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("Cluster information\n"), "{text}");
    assert!(
        text.contains("0x00000002          1 127.0.77.2 (local)\n"),
        "{text}"
    );
    assert!(text.ends_with("exit=0\n"), "{text}");
    let v: Vec<serde_json::Value> = serde_json::from_slice(&exec.stdout).unwrap();
    assert_eq!(v.len(), 3);
    for r in &v {
        assert!(
            r["stdout"]
                .as_str()
                .unwrap()
                .starts_with("pve-manager/9.1.1/"),
            "{r}"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("commands.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");
}

#[test]
fn ha_moves_a_guest_outside_its_strict_rule_back() {
    // pve9-3node: a strict node-affinity rule keeps vm:100 on pve1/pve2. PVE 9's CRM accepts a
    // request to pve3 and then moves the guest back to a rule node.
    let sim = SimCluster::start(fast(scenario::pve9()));
    let v = sim.exec("pve1", "qm migrate 100 pve3 --online", &[]);
    assert_eq!(
        stdout(&v),
        "Requesting HA migration for VM 100 to node pve3\n"
    );
    // Two moves are due: the one asked for, then HA's own back to a rule node.
    let due: Vec<String> = sim
        .state()
        .events
        .iter()
        .filter_map(|e| match &e.what {
            pveops_lab::state::EventKind::HaMove { vmid: 100, target } => Some(target.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(due, ["pve3", "pve1"]);
    assert!(poll_until(10, || sim
        .state()
        .guest(100)
        .is_some_and(|g| g.node == "pve1" && g.lock.is_none())));
    let rules = sim.exec(
        "pve2",
        "pvesh get /cluster/ha/rules --output-format json",
        &[],
    );
    assert!(stdout(&rules).contains("\"rule\":\"web01-san\""), "{rules}");
}
