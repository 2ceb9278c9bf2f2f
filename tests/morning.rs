//! The morning after a maintenance night (issue 31): what a night leaves behind is a finding,
//! check_pve's checks have their pveops counterpart (with perfdata and metrics), a monitoring
//! run costs what a probe costs, and verify keeps what the baseline read. Real sshd, the lab.

use std::path::Path;

use pveops_lab::scenario;
use pveops_lab::state::Cluster;
use serde_json::{Value, json};

use crate::support::cluster::SimCluster;
use crate::support::{command, pveops, stderr, stdout};

/// One assess with `extra`, evidence in `out` (none with `out = None`), from `cwd`.
struct Assess {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    snapshot: Option<Value>,
}

fn assess_in(sim: &SimCluster, cwd: &Path, out: Option<&Path>, extra: &[&str]) -> Assess {
    let inv = sim.inventory();
    let mut args = vec![
        "assess",
        "-I",
        inv.to_str().unwrap(),
        "lab",
        "--connect-timeout",
        "5",
    ];
    if let Some(o) = out {
        args.extend(["--out", o.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    let o = command(sim.lab.home(), &args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let snapshot = out
        .and_then(|o| std::fs::read_to_string(o.join("snapshot.json")).ok())
        .map(|s| serde_json::from_str(&s).unwrap());
    Assess {
        code: o.status.code(),
        stdout: stdout(&o),
        stderr: stderr(&o),
        snapshot,
    }
}

fn findings(snap: &Value) -> Vec<(String, String, String, String, String)> {
    snap["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            (
                s("check"),
                s("severity"),
                s("node"),
                s("subject"),
                s("message"),
            )
        })
        .collect()
}

fn scratch(sim: &SimCluster, name: &str) -> std::path::PathBuf {
    let d = sim.lab.dir.path().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[test]
fn maintenance_and_a_broken_package_are_findings() {
    // HA on every running guest, the CRM master on pve1.
    let mut c = scenario::ha(3);
    c.nodes[0].lrm = Some("maintenance mode".into());
    c.nodes[1].apt.broken = vec!["pve-manager".into()];
    c.nodes[2].apt.broken = vec!["libc-bin".into()];
    let sim = SimCluster::start(c);
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, sim.lab.dir.path(), Some(&out), &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let f = findings(run.snapshot.as_ref().unwrap());
    let maint = f
        .iter()
        .find(|f| f.0 == "ha.node-not-in-maintenance")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!((maint.1.as_str(), maint.2.as_str()), ("warning", "pve1"));
    assert!(
        maint.4.contains("maintenance") && maint.4.contains("pveops maintenance exit pve1"),
        "{maint:?}"
    );
    let pkg = f
        .iter()
        .find(|f| f.0 == "packages.configured" && f.3 == "pve-manager")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!((pkg.1.as_str(), pkg.2.as_str()), ("critical", "pve2"));
    assert!(pkg.4.contains("dpkg --configure -a"), "{pkg:?}");
    // Not one of Proxmox's own packages: a warning.
    assert!(
        f.iter().any(|f| f.0 == "packages.configured"
            && f.3 == "libc-bin"
            && f.1 == "warning"
            && f.2 == "pve3"),
        "{f:#?}"
    );
    let nagios = assess_in(&sim, sim.lab.dir.path(), None, &["--format", "nagios"]);
    assert_eq!(nagios.code, Some(2));
    assert!(
        nagios.stdout.starts_with("PVEOPS CRITICAL - "),
        "{}",
        nagios.stdout
    );
    assert!(
        nagios
            .stdout
            .contains("WARNING ha.node-not-in-maintenance pve1:")
    );
}

#[test]
fn kept_back_packages_are_named() {
    // pve1 of the update cycle keeps zfsutils-linux back (its lists have a version apt will
    // not install on its own).
    let sim = SimCluster::start(scenario::updates());
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, sim.lab.dir.path(), Some(&out), &[]);
    let f = findings(run.snapshot.as_ref().unwrap());
    let kept: Vec<_> = f.iter().filter(|f| f.0 == "updates.kept-back").collect();
    assert_eq!(kept.len(), 1, "{f:#?}");
    assert_eq!(
        (kept[0].1.as_str(), kept[0].2.as_str(), kept[0].3.as_str()),
        ("warning", "pve1", "zfsutils-linux")
    );
    assert!(
        kept[0].4.contains("apt-get install zfsutils-linux"),
        "{kept:?}"
    );
}

#[test]
fn a_noout_left_set_is_named_once() {
    let mut c = scenario::hyperconverged();
    c.ceph.as_mut().unwrap().noout = true;
    let sim = SimCluster::start(c);
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, sim.lab.dir.path(), Some(&out), &[]);
    let f = findings(run.snapshot.as_ref().unwrap());
    let noout: Vec<_> = f.iter().filter(|f| f.0 == "ceph.noout-unset").collect();
    assert_eq!(noout.len(), 1, "{f:#?}");
    assert_eq!(noout[0].1, "warning");
    assert!(noout[0].4.contains("ceph osd unset noout"), "{noout:?}");
    // The flag alone is that finding, not a second one from ceph.health.
    assert!(!f.iter().any(|f| f.0 == "ceph.health"), "{f:#?}");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
}

/// Every check_pve mode pveops lacked, driven by a lab knob: each a finding of the right
/// severity, each number in the perfdata and in the Prometheus text (promtool accepts it).
#[test]
fn check_pve_parity() {
    let promtool = crate::support::promtool();
    let mut c: Cluster = scenario::healthy(3);
    let now = jiff::Timestamp::now().as_second();
    // pve1: memory at 95 %, a replication job of guest 100 failing.
    let total = c.nodes[0].memory_total;
    c.nodes[0].memory_used = Some(total / 100 * 96);
    // pve1's CPU busy, pve3 waiting on its disks (the RRD pvestatd writes).
    c.nodes[0].cpu_usage = 0.97;
    c.nodes[2].io_wait = 0.25;
    c.replication = vec![typed(json!({
        "id": "100-0", "target": "pve2", "last_sync": now - 3 * 3600, "last_try": now - 600,
        "fail_count": 3,
        "error": "command 'zfs snapshot rpool/data/vm-100-disk-0@__replicate_100-0_1765000000__' failed: exit code 1"
    }))];
    // pve2: an expired subscription on the enterprise repository, a disk failing SMART.
    c.nodes[1].subscription_info = typed(json!({
        "status": "expired", "key": "pve2c-0123456789", "nextduedate": "2026-11-30",
        "productname": "Proxmox VE Community Subscription 2 CPUs/year",
        "message": "subscription expired"
    }));
    c.nodes[1].disks = Some(typed(json!([
        {"dev": "nvme0n1", "type": "nvme", "model": "SAMSUNG MZVL21T0HCLR-00B00",
         "serial": "S676NF0R512345", "size": 1024209543168u64, "health": "PASSED", "wearout": 98},
        {"dev": "sda", "type": "hdd", "model": "ST4000NM000A-2HZ100",
         "serial": "WJG0ABCD", "size": 4000787030016u64, "health": "FAILED!", "rpm": 7200}
    ])));
    // pve3: last night's backup job failed; its certificate expires in 5 days.
    c.nodes[2].tasks = vec![typed(json!({
        "type": "vzdump", "id": "", "user": "root@pam", "starttime": now - 9 * 3600,
        "endtime": now - 8 * 3600, "status": "job errors"
    }))];
    c.nodes[2].certs = typed(json!({ "ssl_notafter": now + 5 * 86400 }));
    let sim = SimCluster::start(c);
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, sim.lab.dir.path(), Some(&out), &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let f = findings(run.snapshot.as_ref().unwrap());
    for (check, severity, node, needle) in [
        ("node.memory", "critical", "pve1", "96.0 %"),
        ("replication.healthy", "critical", "pve1", "100-0"),
        ("subscription.valid", "warning", "pve2", "expired"),
        ("disks.healthy", "critical", "pve2", "FAILED!"),
        ("tasks.no-recent-failures", "critical", "pve3", "vzdump"),
        ("certificates.valid", "critical", "pve3", "pve-ssl.pem"),
        ("node.cpu", "critical", "pve1", "97.0 %"),
        ("node.io-wait", "critical", "pve3", "25.0 %"),
    ] {
        assert!(
            f.iter()
                .any(|x| x.0 == check && x.1 == severity && x.2 == node && x.4.contains(needle)),
            "{check} {severity} on {node} with {needle:?}: {f:#?}"
        );
    }
    // Nothing else on a healthy lab.
    assert_eq!(f.len(), 8, "{f:#?}");

    let nagios = assess_in(&sim, sim.lab.dir.path(), None, &["--format", "nagios"]);
    let perf = nagios
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_once(" | ")
        .unwrap()
        .1
        .to_string();
    for want in [
        "'memory_used_pct pve1'=96.00%",
        "'cpu_used_pct pve1'=97.00%",
        "'io_wait_pct pve3'=25.00%",
        "'swap_used_pct pve1'=",
        "'replication_fail_count pve1/100-0'=3",
        "'subscription_active pve2'=0",
        "'disk_smart_passed pve2/sda'=0",
        "'disk_life_left_pct pve2/nvme0n1'=98%",
        "'tasks_failed pve3'=1",
        "'cert_days_left pve3'=",
    ] {
        assert!(perf.contains(want), "{want}: {perf}");
    }
    let days: f64 = perf
        .split("'cert_days_left pve3'=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((4.8..=5.0).contains(&days), "{days}");

    let prom = assess_in(&sim, sim.lab.dir.path(), None, &["--format", "prometheus"]);
    for want in [
        "pveops_node_memory_used_ratio{node=\"pve1\"} 0.9",
        "pveops_node_cpu_ratio{node=\"pve1\"} 0.97",
        "pveops_node_io_wait_ratio{node=\"pve3\"} 0.25",
        "pveops_replication_failures{node=\"pve1\",job=\"100-0\",target=\"local/pve2\"} 3",
        "pveops_subscription_active{node=\"pve2\",status=\"expired\"} 0",
        "pveops_disk_smart_passed{node=\"pve2\",device=\"/dev/sda\"} 0",
        "pveops_disk_life_left_ratio{node=\"pve2\",device=\"/dev/nvme0n1\"} 0.98",
        "pveops_node_tasks_failed{node=\"pve3\"} 1",
        "pveops_certificate_expiry_timestamp_seconds{node=\"pve3\",file=\"pve-ssl.pem\"} ",
    ] {
        assert!(prom.stdout.contains(want), "{want}:\n{}", prom.stdout);
    }
    let file = sim.lab.dir.path().join("parity.prom");
    std::fs::write(&file, &prom.stdout).unwrap();
    let check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        stdout(&check),
        stderr(&check)
    );
}

/// A stale backup lock (no task holds it) and one a running backup holds are told apart.
#[test]
fn a_lock_is_judged_by_its_task() {
    let mut c = scenario::healthy(3);
    let now = jiff::Timestamp::now().as_second();
    let g = c.guests.iter_mut().find(|g| g.vmid == 100).unwrap();
    g.lock = Some("backup".into());
    g.lock_since = Some(now - 600);
    let g = c.guests.iter_mut().find(|g| g.vmid == 202).unwrap();
    g.lock = Some("backup".into());
    g.lock_stale = true;
    let sim = SimCluster::start(c);
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, sim.lab.dir.path(), Some(&out), &[]);
    let f = findings(run.snapshot.as_ref().unwrap());
    let locks: Vec<_> = f.iter().filter(|f| f.0 == "guest.unlocked").collect();
    assert_eq!(
        locks.len(),
        1,
        "the running backup is work, not a finding: {f:#?}"
    );
    assert_eq!(locks[0].3, "202");
    assert!(locks[0].4.contains("stale lock"), "{locks:?}");
}

#[test]
fn a_monitoring_run_writes_no_evidence_and_always_says_why() {
    let sim = SimCluster::start(scenario::healthy(2));
    let empty = scratch(&sim, "cwd");
    let run = assess_in(&sim, &empty, None, &["--format", "nagios"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("PVEOPS OK - "), "{}", run.stdout);
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "a monitoring run leaves its working directory empty"
    );
    // With --out it writes the bundle as any assess does.
    let out = scratch(&sim, "ev");
    let run = assess_in(&sim, &empty, Some(&out), &["--format", "prometheus"]);
    assert_eq!(run.code, Some(0));
    assert!(out.join("report.md").exists() && out.join("snapshot.json").exists());

    // A broken check file, an unreadable inventory, an unwritable --prom-file: the status line
    // says so, exit 3.
    let checks = scratch(&sim, "checks");
    std::fs::write(checks.join("bad.toml"), "[[check]]\nid = \"x\"\n").unwrap();
    let run = assess_in(
        &sim,
        &empty,
        None,
        &["--format", "nagios", "--checks", checks.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    let first = run.stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("PVEOPS UNKNOWN - "), "{}", run.stdout);
    assert!(first.contains("bad.toml"), "{first}");
    let o = pveops(
        sim.lab.home(),
        &[
            "assess",
            "-I",
            "/nonexistent/inv.toml",
            "lab",
            "--format",
            "nagios",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).starts_with("PVEOPS UNKNOWN - "),
        "{}",
        stdout(&o)
    );
    let run = assess_in(
        &sim,
        &empty,
        None,
        &["--format", "nagios", "--prom-file", "/proc/pveops.prom"],
    );
    assert_eq!(run.code, Some(3));
    assert!(
        run.stdout.starts_with("PVEOPS UNKNOWN - "),
        "{}",
        run.stdout
    );
    let run = assess_in(
        &sim,
        &empty,
        None,
        &[
            "--format",
            "prometheus",
            "--checks",
            checks.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(3));
    assert!(
        run.stdout.starts_with("# PVEOPS UNKNOWN - "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\npveops_assess_status 3\n"),
        "{}",
        run.stdout
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // --format json is --json.
    let out = scratch(&sim, "ev2");
    let run = assess_in(&sim, &empty, Some(&out), &["--format", "json"]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc, run.snapshot.unwrap());
}

/// One unreachable target: nothing was assessed, so the status is UNKNOWN, as the exit (3).
#[test]
fn nothing_reachable_is_unknown_everywhere() {
    let mut sim = SimCluster::start(scenario::healthy(1));
    sim.nodes[0].1.kill();
    let out = scratch(&sim, "ev");
    let inv = sim.inventory();
    let o = pveops(
        sim.lab.home(),
        &[
            "assess",
            "-I",
            inv.to_str().unwrap(),
            "lab",
            "--out",
            out.to_str().unwrap(),
            "--connect-timeout",
            "3",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("status UNKNOWN"), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| Exit status | 3 (UNKNOWN) |"), "{report}");
    let run = assess_in(&sim, sim.lab.dir.path(), None, &["--format", "nagios"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("PVEOPS UNKNOWN - "),
        "{}",
        run.stdout
    );
}

/// verify re-runs the upgrade checklist the baseline ran: a WARN still there is unchanged, not
/// resolved; the exit status and the Outcome say the same.
#[test]
fn verify_keeps_the_upgrade_checklist() {
    let sim = SimCluster::start(scenario::degraded());
    let base = scratch(&sim, "base");
    let run = assess_in(
        &sim,
        sim.lab.dir.path(),
        Some(&base),
        &["--upgrade-checklist"],
    );
    let warn = findings(run.snapshot.as_ref().unwrap())
        .into_iter()
        .find(|f| f.0 == "upgrade.checklist" && f.4.contains("nfs-backup"))
        .expect("the baseline has the checker's WARN on the inactive NFS storage");
    let inv = sim.inventory();
    for flag in [None, Some("--upgrade-checklist")] {
        let out = scratch(&sim, "after");
        let mut args = vec!["verify", "-I", inv.to_str().unwrap(), "lab", "--against"];
        let against = base.join("snapshot.json");
        args.push(against.to_str().unwrap());
        args.extend(["--out", out.to_str().unwrap(), "--json"]);
        args.extend(flag);
        let o = pveops(sim.lab.home(), &args, &[]);
        let doc: Value =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        let listed = |k: &str| {
            doc["findings"][k]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["check"] == warn.0.as_str() && f["subject"] == warn.3.as_str())
        };
        assert!(listed("unchanged"), "{flag:?}: {:#}", doc["findings"]);
        assert!(!listed("resolved") && !listed("new"), "{flag:?}");
        // Nothing changed: the degraded cluster's findings were all there before.
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}\n{:#}\n{:#}",
            stderr(&o),
            doc["differences"],
            doc["findings"]["new"]
        );
        assert_eq!(doc["exit_status"], 0);
        let outcome = doc["outcome"].as_str().unwrap();
        assert!(
            outcome.starts_with("no regression and no new finding"),
            "{outcome}"
        );
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(report.contains("| Exit status | 0 (OK) |"), "{report}");
        assert!(report.contains("| unchanged |"), "{report}");
    }
    // A new critical finding: exit 2, and the Outcome says why.
    sim.edit(|c| {
        c.nodes[2]
            .services
            .insert("pveproxy".into(), "failed".into());
    });
    let out = scratch(&sim, "after2");
    let against = base.join("snapshot.json");
    let o = pveops(
        sim.lab.home(),
        &[
            "verify",
            "-I",
            inv.to_str().unwrap(),
            "lab",
            "--against",
            against.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(doc["exit_status"], 2);
    assert!(
        doc["outcome"]
            .as_str()
            .unwrap()
            .contains("new critical finding(s)"),
        "{}",
        doc["outcome"]
    );
}

/// A closed stdout ends a read-only command quietly (SIGPIPE, as any filter), never a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two valid descriptors; the read end is closed before the child
    // writes, the write end is handed to the child and closed here.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
    }
    let home = tempfile::tempdir().unwrap();
    let write_end =
        unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let o = command(home.path(), &["completions", "bash"])
        .stdout(std::process::Stdio::from(write_end))
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// A port where a web server listens: named as not SSH, at once, without retries.
#[test]
fn a_port_that_does_not_speak_ssh_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(3) {
            use std::io::{Read, Write};
            let mut s = s.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let home = tempfile::tempdir().unwrap();
    let target = format!("root@127.0.0.1:{port}");
    let o = pveops(
        home.path(),
        &[
            "exec",
            &target,
            "--connect-timeout",
            "5",
            "--json",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let error = doc[0]["error"].as_str().unwrap();
    assert!(
        error.contains("does not speak SSH") && error.contains("HTTP/1.1 400 Bad Request"),
        "{error}"
    );
}

/// Logs are plain text off a terminal (and with NO_COLOR).
#[test]
fn warnings_carry_no_colour_codes_off_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join("ssh_config");
    std::fs::write(&cfg, "Match all\n  User nobody\nHost *\n  Port 1\n").unwrap();
    let o = pveops(
        home.path(),
        &[
            "exec",
            "root@127.0.0.1:1",
            "--ssh-config",
            cfg.to_str().unwrap(),
            "--connect-timeout",
            "2",
            "--",
            "true",
        ],
        &[("NO_COLOR", "1")],
    );
    let err = stderr(&o);
    assert!(err.contains("WARN") && err.contains("Match"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// Evidence directory names keep to [A-Za-z0-9._-], whatever the target looks like.
#[test]
fn evidence_names_are_portable() {
    let sim = SimCluster::start(scenario::healthy(1));
    let cwd = scratch(&sim, "cwd");
    let inv = sim.inventory();
    let target = format!("root@{}", sim.node("pve1").target());
    assert!(target.contains(':'), "{target}");
    let o = command(
        sim.lab.home(),
        &[
            "assess",
            "-I",
            inv.to_str().unwrap(),
            &target,
            "--connect-timeout",
            "5",
        ],
    )
    .current_dir(&cwd)
    .output()
    .unwrap();
    assert!(o.status.code().unwrap() <= 3, "{}", stderr(&o));
    let names: Vec<String> = crate::support::files_below(&cwd.join("pveops-evidence"))
        .iter()
        .flat_map(|p| {
            p.strip_prefix(&cwd)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!names.is_empty());
    for n in names {
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "{n}"
        );
    }
}

/// The drain's runbook: the rollback of a move runs where the guest went; stopped guests stay
/// (said so), or move offline with --include-stopped. A no-op step is said once. The report of
/// a verified operation says OK even on a cluster with a critical finding.
#[test]
fn runbook_and_report_say_it_right() {
    let mut c = crate::support::ops::fast(scenario::healthy(3));
    c.nodes[2]
        .services
        .insert("pveproxy".into(), "failed".into());
    let sim = SimCluster::start(c);
    let inv = sim.inventory();
    let out = scratch(&sim, "plan");
    let o = pveops(
        sim.lab.home(),
        &[
            "plan",
            "drain",
            "pve1",
            "-I",
            inv.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let runbook = std::fs::read_to_string(out.join("runbook.md")).unwrap();
    assert!(
        runbook.contains(
            "- migrate CT 102 (dns01) from pve1 to pve2 (on pve2): pct migrate 102 pve1 --restart"
        ),
        "{runbook}"
    );
    assert!(
        runbook.contains(
            "the stopped guests of pve1 stay there: 103 (--include-stopped moves them too"
        ),
        "{runbook}"
    );
    let out = scratch(&sim, "plan2");
    let o = pveops(
        sim.lab.home(),
        &[
            "plan",
            "drain",
            "pve1",
            "--include-stopped",
            "-I",
            inv.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        stderr(&o).contains("$ qm migrate 103 pve2\n")
            || stderr(&o).contains("$ qm migrate 103 pve3\n"),
        "{}",
        stderr(&o)
    );

    let o = pveops(
        sim.lab.home(),
        &[
            "maintenance",
            "exit",
            "pve1",
            "-I",
            inv.to_str().unwrap(),
            "--yes",
            "--no-backup-gate",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(
        err.matches("out of maintenance mode already").count(),
        2,
        "plan and run: {err}"
    );
    assert_eq!(err.matches("skipped").count(), 1, "{err}");

    let out = scratch(&sim, "drain");
    let o = pveops(
        sim.lab.home(),
        &[
            "drain",
            "pve1",
            "--to",
            "pve2",
            "-I",
            inv.to_str().unwrap(),
            "--yes",
            "--no-backup-gate",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| Exit status | 0 (OK) |"), "{report}");
    assert!(!report.contains("\\("), "no needless escapes: {report}");
}

/// On a terminal, anything but `y` at the prompt declines: nothing changes, exit 4 (documented),
/// not 64 (nothing was wrong with the command line). `script` (util-linux, in every Debian)
/// gives the run a terminal.
#[test]
fn declining_at_the_prompt_changes_nothing() {
    let sim = SimCluster::start(crate::support::ops::fast(scenario::healthy(3)));
    let inv = sim.inventory();
    let line = format!(
        "{} drain pve1 -I {} --no-backup-gate --out {}",
        crate::support::bin().display(),
        inv.display(),
        sim.lab.dir.path().join("declined").display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("HOME", sim.lab.home())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PVEOPS_LOG", "warn,russh=error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"n\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("Run these steps? [y/N]"), "{all}");
    assert!(
        all.contains("declined at the prompt, nothing changed (exit 4)"),
        "{all}"
    );
    assert_eq!(o.status.code(), Some(4), "{all}");
    assert!(
        !sim.commands()
            .iter()
            .any(|(_, l)| l.contains(" migrate ") || l.contains("node-maintenance")),
        "{:?}",
        sim.commands()
    );
}

/// Without any HA resource no CRM is master, so node maintenance would never take effect: it is
/// refused before any change instead of being waited for until its timeout.
#[test]
fn maintenance_without_active_ha_is_refused_at_once() {
    let sim = SimCluster::start(crate::support::ops::fast(scenario::healthy(3)));
    let started = std::time::Instant::now();
    let r = crate::support::ops::op(&sim, &["maintenance", "enter", "pve3", "--yes"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("refused by gate ha-active"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pveops drain pve3"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        !sim.commands()
            .iter()
            .any(|(_, l)| l.contains("node-maintenance")),
        "{:?}",
        sim.commands()
    );
}
