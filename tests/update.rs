//! `pveops update` end to end against the lab's apt behind real OpenSSH sshd: a rolling update
//! of three nodes (two with a new kernel), the dry run, a failing `dist-upgrade`, a held dpkg
//! lock; the lab's command log says what really ran.

use pveops_lab::scenario;
use pveops_lab::state::{AptLock, Cluster};

use crate::support::cluster::SimCluster;
use crate::support::{pveops, stderr};

use crate::support::ops::{fast, journal};

struct Run {
    code: Option<i32>,
    dir: std::path::PathBuf,
    changelog: std::path::PathBuf,
    stderr: String,
}

fn update(sim: &SimCluster, tag: &str, args: &[&str]) -> Run {
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join(format!("update-{tag}"));
    let changelog = sim.lab.dir.path().join(format!("changelog-{tag}.md"));
    let mut a = vec!["update", "-I", inv.to_str().unwrap()];
    a.extend_from_slice(args);
    a.extend_from_slice(&[
        "--out",
        dir.to_str().unwrap(),
        "--changelog",
        changelog.to_str().unwrap(),
        "--migrate-timeout",
        "30",
        "--reboot-timeout",
        "30",
        "--upgrade-timeout",
        "60",
    ]);
    let out = pveops(sim.lab.home(), &a, &[]);
    Run {
        code: out.status.code(),
        dir,
        changelog,
        stderr: stderr(&out),
    }
}

/// The `apt-get` lines each node ran, in order.
fn apt_lines(sim: &SimCluster) -> Vec<(String, String)> {
    sim.commands()
        .into_iter()
        .filter(|(_, l)| l.starts_with("apt-get"))
        .collect()
}

fn upgraded_nodes(sim: &SimCluster) -> Vec<String> {
    apt_lines(sim)
        .into_iter()
        .filter(|(_, l)| l.contains("dist-upgrade") && !l.contains(" -s"))
        .map(|(n, _)| n)
        .collect()
}

fn guests(c: &Cluster) -> Vec<(u32, String, String)> {
    c.guests
        .iter()
        .map(|g| (g.vmid, g.node.clone(), g.status.clone()))
        .collect()
}

/// The findings of an assess of the whole lab: (check, node).
fn assess_findings(sim: &SimCluster) -> Vec<(String, String, String)> {
    let inv = sim.inventory();
    let out_dir = sim.lab.dir.path().join("assess-after");
    let out = pveops(
        sim.lab.home(),
        &[
            "assess",
            "-I",
            inv.to_str().unwrap(),
            "lab",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        &[],
    );
    let snap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("snapshot.json"))
            .unwrap_or_else(|e| panic!("no snapshot ({e}): {}", stderr(&out))),
    )
    .unwrap();
    snap["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("").to_string(),
                f["node"].as_str().unwrap_or("").to_string(),
                f["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_rolling_update_reboots_only_the_nodes_with_a_new_kernel_and_puts_every_guest_back() {
    let sim = SimCluster::start(fast(scenario::updates()));
    let pending = assess_findings(&sim);
    let pending: Vec<&(String, String, String)> = pending
        .iter()
        .filter(|(c, _, _)| c == "updates.pending")
        .collect();
    assert_eq!(
        pending
            .iter()
            .map(|(_, n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["pve1", "pve2", "pve3"],
        "{pending:?}"
    );
    assert!(
        pending[0].2.contains("new kernel 6.17.4-1-pve") && pending[0].2.contains("3 upgraded"),
        "counts and the kernel are named: {}",
        pending[0].2
    );
    let before = sim.state();
    let r = update(&sim, "all", &["pve1", "pve2", "pve3", "--yes"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let after = sim.state();

    assert_eq!(guests(&after), guests(&before), "every guest back, running");
    let boot = |c: &Cluster, n: &str| c.node(n).unwrap().boot_id.clone();
    for n in ["pve1", "pve2"] {
        assert_ne!(boot(&after, n), boot(&before, n), "{n} rebooted");
        assert_eq!(after.node(n).unwrap().kernel_running, "6.17.4-1-pve");
        assert_eq!(after.node(n).unwrap().manager_version, "9.1.2");
    }
    for n in ["pve3", "pve4"] {
        assert_eq!(boot(&after, n), boot(&before, n), "{n} kept its boot id");
    }
    assert_eq!(sim.nodes_that_ran("reboot"), ["pve1", "pve2"]);
    assert_eq!(
        upgraded_nodes(&sim),
        ["pve1", "pve2", "pve3"],
        "one node after the other, pve4 untouched"
    );
    // apt-get update ran on every node before the first change.
    let apt = apt_lines(&sim);
    let first_upgrade = apt
        .iter()
        .position(|(_, l)| l.contains("dist-upgrade") && !l.contains(" -s"))
        .unwrap();
    let refreshed: Vec<&str> = apt[..first_upgrade]
        .iter()
        .filter(|(_, l)| l == "apt-get update")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(refreshed, ["pve1", "pve2", "pve3"]);
    // pve-qemu-kvm only appeared in pve1's lists with that refresh, and was installed.
    assert_eq!(
        after
            .node("pve1")
            .unwrap()
            .packages
            .get("pve-qemu-kvm")
            .map(String::as_str),
        Some("10.1.2-5")
    );

    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    let updates = report
        .split("## Updates")
        .nth(1)
        .and_then(|s| s.split("## ").next())
        .unwrap_or_else(|| panic!("no Updates section: {report}"));
    let row = |n: &str| {
        updates
            .lines()
            .find(|l| l.starts_with(&format!("| {n} |")))
            .unwrap_or_else(|| panic!("no row for {n}: {updates}"))
            .to_string()
    };
    assert!(
        row("pve1").contains("pve-manager 9.1.1 → 9.1.2"),
        "{}",
        row("pve1")
    );
    assert!(
        row("pve1").contains("running kernel 6.17.2-2-pve → 6.17.4-1-pve")
            && row("pve1").contains("rebooted"),
        "{}",
        row("pve1")
    );
    assert!(row("pve3").contains("libpve-common-perl 9.0.15 → 9.0.16"));
    assert!(row("pve3").contains("not needed"), "{}", row("pve3"));
    let log = std::fs::read_to_string(r.dir.join("raw/pve1/apt-dist-upgrade.log")).unwrap();
    assert!(
        log.contains("Setting up pve-manager (9.1.2)"),
        "apt's full output is kept: {log}"
    );
    assert!(r.dir.join("raw/pve1/apt-get-update.txt").exists());
    let cl = std::fs::read_to_string(r.changelog.with_file_name("changelog-all.md.jsonl")).unwrap();
    assert_eq!(cl.lines().count(), 1, "one entry for the rollout: {cl}");
    let entry: serde_json::Value = serde_json::from_str(cl.lines().next().unwrap()).unwrap();
    assert_eq!(entry["outcome"], "success");
    let per_node: Vec<&str> = entry["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node[0].starts_with("pve1: updated"), "{per_node:?}");
    let j = journal(&r.dir);
    let skipped = j
        .iter()
        .find(|e| e["phase"] == "end" && e["outcome"] == "skipped")
        .expect("pve3's reboot is journaled as skipped");
    assert!(
        skipped["step"].as_str().unwrap().starts_with("reboot pve3")
            && skipped["message"]
                .as_str()
                .unwrap()
                .contains("needs no reboot"),
        "{skipped}"
    );

    let left = assess_findings(&sim);
    assert!(
        !left.iter().any(|(c, _, _)| c == "updates.pending"),
        "nothing pending afterwards: {left:?}"
    );
}

#[test]
fn the_dry_run_shows_packages_and_reboots_and_installs_nothing() {
    let sim = SimCluster::start(fast(scenario::updates()));
    let before = sim.state();
    let r = update(&sim, "dry", &["pve1", "pve2", "pve3", "pve4", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for line in [
        "update pve1: 5 to install, 0 to remove; reboot: yes (new kernel 6.17.4-1-pve)",
        "pve-manager 9.1.1 → 9.1.2",
        "pve-qemu-kvm 10.1.2-4 → 10.1.2-5",
        "kept back by apt: zfsutils-linux",
        "update pve3: 3 to install, 0 to remove; reboot: if-needed",
        "libc6 2.41-12 → 2.41-12+deb13u1",
        "pve4 has nothing to install: skipped",
    ] {
        assert!(r.stderr.contains(line), "`{line}` missing:\n{}", r.stderr);
    }
    assert!(upgraded_nodes(&sim).is_empty(), "{:?}", apt_lines(&sim));
    assert!(sim.nodes_that_ran("reboot").is_empty());
    assert!(
        r.stderr.lines().any(|l| l.contains("gate disk-space")
            && l.contains("ok")
            && l.contains("pve1 has room: / needs ")
            && l.contains(" GiB free")),
        "{}",
        r.stderr
    );
    let after = sim.state();
    assert_eq!(guests(&after), guests(&before));
    for n in &before.nodes {
        let a = after.node(&n.name).unwrap();
        assert_eq!(
            (&a.manager_version, &a.kernels_installed, &a.boot_id),
            (&n.manager_version, &n.kernels_installed, &n.boot_id)
        );
    }
    let runbook = std::fs::read_to_string(r.dir.join("runbook.md")).unwrap();
    let pve2 = runbook
        .split("### pve2: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{runbook}"));
    assert!(
        pve2.starts_with("4 to install, 0 to remove; reboot: yes"),
        "{pve2}"
    );
    assert!(pve2.contains("| pve-manager | 9.1.1 | 9.1.2 |"), "{pve2}");
    assert!(runbook.contains("No automatic downgrade"), "{runbook}");
    assert!(
        runbook.contains("pve1 before the update: ") && runbook.contains("pve-manager 9.1.1"),
        "the previous versions are listed: {runbook}"
    );
}

#[test]
fn a_failed_upgrade_stops_the_rollout_with_the_node_drained() {
    let mut c = fast(scenario::updates());
    c.node_mut("pve2").unwrap().apt.fail_package = Some("pve-manager".into());
    let sim = SimCluster::start(c);
    let before = sim.state();
    let r = update(&sim, "fail", &["pve1", "pve2", "pve3", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(upgraded_nodes(&sim), ["pve1", "pve2"], "pve3 untouched");
    assert_eq!(
        sim.nodes_that_ran("reboot"),
        ["pve1"],
        "pve2 is not rebooted"
    );
    let after = sim.state();
    assert_eq!(
        after.node("pve3").unwrap().boot_id,
        before.node("pve3").unwrap().boot_id
    );
    assert_eq!(
        after
            .node("pve3")
            .unwrap()
            .packages
            .get("libpve-common-perl"),
        before
            .node("pve3")
            .unwrap()
            .packages
            .get("libpve-common-perl"),
        "nothing installed on pve3"
    );
    let on_pve2: Vec<u32> = after
        .guests
        .iter()
        .filter(|g| g.node == "pve2" && g.status == "running")
        .map(|g| g.vmid)
        .collect();
    assert!(on_pve2.is_empty(), "pve2 stays drained: {on_pve2:?}");
    let j = journal(&r.dir);
    let failed = j
        .iter()
        .find(|e| e["outcome"] == "failed")
        .unwrap_or_else(|| panic!("{j:?}"));
    let msg = failed["message"].as_str().unwrap();
    assert!(
        failed["step"].as_str().unwrap().starts_with("upgrade pve2"),
        "{failed}"
    );
    assert!(
        msg.contains("pve-manager") && msg.contains("failed on the node"),
        "apt's error is named: {msg}"
    );
    let report = std::fs::read_to_string(r.dir.join("report.md")).unwrap();
    assert!(report.contains("| pve2 | FAILED"), "{report}");
    assert!(report.contains("| pve3 | not reached"), "{report}");
    let cl = std::fs::read_to_string(&r.changelog).unwrap();
    assert!(
        cl.contains("pve2 stays drained") && cl.contains("pveops restore --journal"),
        "{cl}"
    );
    assert!(r.dir.join("raw/pve2/apt-dist-upgrade.log").exists());
}

#[test]
fn a_held_dpkg_lock_refuses_before_any_change() {
    let mut c = fast(scenario::updates());
    c.node_mut("pve2").unwrap().apt.lock = Some(AptLock {
        pid: 4242,
        command: "unattended-upgr".into(),
    });
    let sim = SimCluster::start(c);
    let before = sim.state();
    let r = update(&sim, "lock", &["pve1", "pve2", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let refusal = r
        .stderr
        .lines()
        .find(|l| l.contains("refused by gate dpkg-lock-free"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        refusal.contains("pve2") && refusal.contains("unattended-upgr") && refusal.contains("4242"),
        "{refusal}"
    );
    assert!(upgraded_nodes(&sim).is_empty());
    assert_eq!(guests(&sim.state()), guests(&before), "no guest moved");
}

#[test]
fn too_little_room_in_boot_for_the_new_kernel_refuses_before_any_change() {
    let mut c = fast(scenario::updates());
    c.node_mut("pve2")
        .unwrap()
        .apt
        .disk_avail
        .insert("/boot".into(), 40 << 20);
    let sim = SimCluster::start(c);
    let before = sim.state();
    let r = update(&sim, "space", &["pve1", "pve2", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let refusal = r
        .stderr
        .lines()
        .find(|l| l.contains("refused by gate disk-space"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        refusal.contains("pve2")
            && refusal.contains("/boot needs 128.0 MiB")
            && refusal.contains("40.0 MiB free"),
        "{refusal}"
    );
    assert!(upgraded_nodes(&sim).is_empty());
    assert_eq!(guests(&sim.state()), guests(&before), "no guest moved");
    let sizes = std::fs::read_to_string(r.dir.join("raw/pve2/apt-package-sizes.txt")).unwrap();
    assert!(
        sizes.contains("Package: proxmox-kernel-6.17.4-1-pve-signed"),
        "{sizes}"
    );
}
