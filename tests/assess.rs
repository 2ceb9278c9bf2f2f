//! `pveops assess` end to end: the lab's scenarios behind real OpenSSH sshd, the evidence
//! bundle, the exit status, the findings, and that only read-only commands were sent.

use pveops_lab::scenario;

use crate::support::cluster::SimCluster;
use crate::support::{pveops, stderr, stdout};

/// The commands an assessment may send: reads only.
const READ_ONLY: &[&str] = &[
    "pvecm status",
    "pvesm status",
    "pvesh get /nodes/localhost/storage/",
    "qm list",
    "pct list",
    "ha-manager status",
    "pveversion -v",
    "systemctl is-active ",
    "cat /proc/sys/kernel/random/boot_id",
    "cat /proc/uptime",
    "hostname",
    "date +%z",
    "zpool status -x",
    "pvesh get /cluster/resources --output-format json",
    "apt-get -s dist-upgrade",
    "stat -c %Y %n /var/lib/apt/lists /var/cache/apt/pkgcache.bin",
    "stat -c %n /etc/pve/ceph.conf /etc/pve/ceph /var/lib/ceph/osd/",
    "ceph health --format json --connect-timeout 15",
    "dpkg --audit",
    "apt-cache policy",
    "pvesh get /nodes/localhost/status --output-format json",
    "pvesh get /nodes/localhost/disks/list --output-format json",
    "pvesh get /nodes/localhost/tasks --errors 1 --since ",
    "pvesh get /nodes/localhost/tasks --source active ",
    "pvesr status",
    "pvesubscription get",
    "pvenode cert info --output-format json",
    "pvesh get /nodes/pve",
];

struct Run {
    code: Option<i32>,
    snapshot: serde_json::Value,
    report: String,
    stdout: String,
    stderr: String,
    dir: std::path::PathBuf,
}

fn assess(sim: &SimCluster, extra: &[&str]) -> Run {
    let inv = sim.inventory();
    let out_dir = sim
        .lab
        .dir
        .path()
        .join(format!("evidence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut args = vec![
        "assess",
        "-I",
        inv.to_str().unwrap(),
        "lab",
        "--out",
        out_dir.to_str().unwrap(),
        "--connect-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    let out = pveops(sim.lab.home(), &args, &[]);
    let snapshot = std::fs::read_to_string(out_dir.join("snapshot.json"))
        .unwrap_or_else(|e| panic!("no snapshot.json ({e}): {}{}", stdout(&out), stderr(&out)));
    Run {
        code: out.status.code(),
        snapshot: serde_json::from_str(&snapshot).unwrap(),
        report: std::fs::read_to_string(out_dir.join("report.md")).unwrap(),
        stdout: stdout(&out),
        stderr: stderr(&out),
        dir: out_dir,
    }
}

fn findings(run: &Run) -> Vec<(String, String, Option<String>, Option<String>)> {
    run.snapshot["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["node"].as_str().map(str::to_string),
                f["subject"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn has(run: &Run, check: &str, node: Option<&str>, subject: Option<&str>) -> bool {
    findings(run)
        .iter()
        .any(|(c, _, n, s)| c == check && n.as_deref() == node && s.as_deref() == subject)
}

#[test]
fn healthy_cluster_passes_and_only_reads() {
    let sim = SimCluster::start(scenario::healthy(3));
    let run = assess(&sim, &[]);
    assert_eq!(run.code, Some(0), "{:?}\n{}", findings(&run), run.stderr);
    assert_eq!(run.snapshot["status"], "ok");
    assert_eq!(run.snapshot["format"], 1);
    let nodes = run.snapshot["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["name"], format!("pve{}", i + 1));
        assert_eq!(n["pve_node"], format!("pve{}", i + 1));
        assert_eq!(n["reachable"], true);
        assert_eq!(n["cluster"]["quorate"], true);
        assert_eq!(n["services"]["pve-cluster"], "active");
        assert!(!n["storages"].as_array().unwrap().is_empty());
    }
    assert!(
        run.report.contains("## Findings\n\nEvery check passed."),
        "{}",
        run.report
    );
    // No USER or LOGNAME in the environment (as under some cron jobs): the password
    // database names the operator.
    assert!(run.report.contains("| Who | root@"), "{}", run.report);
    for (node, line) in sim.commands() {
        assert!(
            READ_ONLY.iter().any(|r| line.starts_with(r)),
            "{node} ran a command that is not read-only: {line}"
        );
    }
    // Cluster-wide facts are read once per cluster, not once per node.
    let resources = sim
        .commands()
        .iter()
        .filter(|(_, l)| l.starts_with("pvesh get /cluster/resources"))
        .count();
    assert_eq!(resources, 1);
    // The evidence layout of PRODUCT.md: `<name>.stdout`, `<name>.stderr` only when not
    // empty, one `meta.json` per node.
    for node in ["pve1", "pve2", "pve3"] {
        let dir = run.dir.join("raw").join(node);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let pvecm = &meta["pvecm-status"];
        assert_eq!(pvecm["command"], "pvecm status", "{meta}");
        assert_eq!(pvecm["exit_code"], 0);
        assert!(pvecm["started_at"].is_string() && pvecm["duration_ms"].is_u64());
        assert_eq!(pvecm["truncated"], false);
        assert!(pvecm["error"].is_null());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            assert!(!name.ends_with(".meta.json"), "{name}");
            if name.ends_with(".stderr") {
                assert!(std::fs::metadata(&path).unwrap().len() > 0, "empty {name}");
            }
            if let Some(stem) = name.strip_suffix(".stdout") {
                assert!(meta.get(stem).is_some(), "{stem} missing from meta.json");
            }
        }
        let stdout = std::fs::read_to_string(dir.join("pvecm-status.stdout")).unwrap();
        assert!(stdout.contains("Quorate:          Yes"), "{stdout}");
    }
}

#[test]
fn degraded_cluster_names_every_problem() {
    let sim = SimCluster::start(scenario::degraded());
    let run = assess(&sim, &[]);
    assert_eq!(run.code, Some(2), "{:?}", findings(&run));
    assert!(
        has(&run, "storage.active", Some("pve2"), Some("nfs-backup")),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(&run, "storage.usage", Some("pve3"), Some("local-lvm")),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(&run, "guest.unlocked", Some("pve1"), Some("102")),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(
            &run,
            "cluster.versions-consistent",
            None,
            Some("pve-manager")
        ),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(
            &run,
            "node.reboot-not-pending",
            Some("pve2"),
            Some("kernel")
        ),
        "{:?}",
        findings(&run)
    );
    assert!(
        run.report
            .contains("| CRITICAL | storage.active | pve2 | nfs-backup |"),
        "{}",
        run.report
    );
    assert!(
        run.report.contains("## Follow-ups\n\n- [ ] **CRITICAL**"),
        "{}",
        run.report
    );
}

#[test]
fn a_cluster_without_quorum_is_critical() {
    let sim = SimCluster::start(scenario::noquorum());
    let run = assess(&sim, &[]);
    assert_eq!(run.code, Some(2), "{:?}", findings(&run));
    assert!(
        has(&run, "node.reachable", Some("pve3"), None),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(&run, "cluster.quorate", Some("pve1"), None),
        "{:?}",
        findings(&run)
    );
    assert!(
        has(&run, "cluster.quorate", Some("pve2"), None),
        "{:?}",
        findings(&run)
    );
    let pve3 = &run.snapshot["nodes"][2];
    assert_eq!(pve3["reachable"], false);
    assert!(
        pve3["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{pve3}"
    );
}

#[test]
fn hostile_names_cannot_break_the_report() {
    let mut c = scenario::healthy(1);
    c.guests[0].name = Some("web|prod*<b>".into());
    c.guests[1].lock = Some("backup".into());
    c.guests[1].name = Some("db`$(reboot)`".into());
    let sim = SimCluster::start(c);
    let run = assess(&sim, &[]);
    assert!(
        run.report
            .contains("| 100 | VM | web\\|prod\\*&lt;b> | pve1 |"),
        "{}",
        run.report
    );
    assert!(!run.report.contains("<b>"));
    for line in run.report.lines().filter(|l| l.starts_with("| 10")) {
        assert_eq!(
            line.matches(" | ").count(),
            7,
            "a table row lost its shape (8 columns: VMID to Lock): {line}"
        );
    }
}

#[test]
fn from_re_evaluates_a_saved_snapshot_without_ssh() {
    let sim = SimCluster::start(scenario::degraded());
    let run = assess(&sim, &[]);
    let saved = sim.lab.dir.path().join("saved.json");
    std::fs::write(&saved, serde_json::to_string(&run.snapshot).unwrap()).unwrap();
    let before = sim.commands().len();
    let checks = sim.lab.dir.path().join("checks");
    std::fs::create_dir_all(&checks).unwrap();
    std::fs::write(
        checks.join("quiet.toml"),
        "[[check]]\nid = \"storage.usage\"\ntitle = \"t\"\nseverity = \"critical\"\nrule = \"storage-usage\"\nenabled = false\n",
    )
    .unwrap();
    let out_dir = sim.lab.dir.path().join("from");
    let out = pveops(
        sim.lab.home(),
        &[
            "assess",
            "--from",
            saved.to_str().unwrap(),
            "--checks",
            checks.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(sim.commands().len(), before, "no command was sent");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert!(
        !checks.contains(&"storage.usage") && checks.contains(&"storage.active"),
        "{checks:?}"
    );
}

/// The snapshot document with the values that change from run to run (times, durations,
/// ports) replaced, for a reviewed snapshot of its shape and values.
fn normalized(mut v: serde_json::Value) -> serde_json::Value {
    v["taken_at"] = "<time>".into();
    for n in v["nodes"].as_array_mut().unwrap() {
        n["address"] = "<address>".into();
        // `date +%z` is this machine's own zone.
        if n["utc_offset_seconds"].is_number() {
            n["utc_offset_seconds"] = "<offset>".into();
        }
        // The lists were refreshed an hour before the lab started; the assess runs a moment
        // later, which a second boundary can fall into.
        if let Some(age) = n["apt_lists_age_seconds"].as_i64() {
            n["apt_lists_age_seconds"] = ((age + 30) / 60 * 60).into();
        }
        for c in n["commands"].as_array_mut().unwrap() {
            c["duration_ms"] = 0.into();
            c["started_at"] = "<time>".into();
        }
        // Times counted from the lab's start: kept as spans.
        if n["node_status"].is_object() {
            n["node_status"]["uptime"] = 0.into();
        }
        if n["load"].is_object() {
            n["load"]["time"] = "<time>".into();
        }
        for c in n["certificates"].as_array_mut().into_iter().flatten() {
            let span = c["notafter"].as_i64().unwrap() - c["notbefore"].as_i64().unwrap();
            c["notafter"] = format!("notbefore + {span}").into();
            c["notbefore"] = "<time>".into();
            // The lab's CA carries its start time in its name, as PVE's carries a UUID.
            c["fingerprint"] = "<fingerprint>".into();
            for k in ["issuer", "subject"] {
                let dn = c[k].as_str().unwrap().to_string();
                let dn: Vec<&str> = dn.split('/').filter(|p| !p.starts_with("OU=0")).collect();
                c[k] = dn.join("/").into();
            }
        }
    }
    for b in v["backups"].as_array_mut().unwrap() {
        b["epoch"] = 0.into();
        b["backup_time"] = "<time>".into();
        b["volid"] = "<volid>".into();
    }
    for b in v["newest_backups"].as_array_mut().unwrap() {
        b["epoch"] = 0.into();
        b["volid"] = "<volid>".into();
    }
    v
}

#[test]
fn the_snapshot_document_of_a_healthy_cluster() {
    let sim = SimCluster::start(scenario::healthy(2));
    let run = assess(&sim, &["--upgrade-checklist"]);
    let v = normalized(run.snapshot);
    insta::assert_json_snapshot!(v);
}

#[test]
fn the_upgrade_checklist_becomes_findings() {
    let sim = SimCluster::start(scenario::degraded());
    let run = assess(&sim, &["--upgrade-checklist"]);
    assert!(
        findings(&run)
            .iter()
            .any(|(c, s, n, _)| c == "upgrade.checklist"
                && s == "warning"
                && n.as_deref() == Some("pve2")),
        "{:?}",
        findings(&run)
    );
    let logged = sim
        .commands()
        .iter()
        .filter(|(_, l)| l == "pve8to9 --full")
        .count();
    assert_eq!(logged, 3, "once per node");
}

#[test]
fn garbage_output_is_an_unknown_finding_naming_the_line() {
    let mut c = scenario::healthy(2);
    c.node_mut("pve2").unwrap().faults.garbage = vec!["pvesm status".into()];
    let sim = SimCluster::start(c);
    let run = assess(&sim, &[]);
    assert_eq!(
        run.code,
        Some(3),
        "a parse failure with nothing critical is UNKNOWN: {:?}",
        findings(&run)
    );
    let f = run.snapshot["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "pveops.output-readable")
        .unwrap()
        .clone();
    assert_eq!(
        (
            f["node"].as_str(),
            f["subject"].as_str(),
            f["severity"].as_str()
        ),
        (Some("pve2"), Some("pvesm-status"), Some("unknown"))
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("pvesm-status: line 1:"),
        "{f}"
    );
}

#[test]
fn a_failing_command_is_diagnosed_from_its_stderr_not_called_unreadable() {
    let mut c = scenario::healthy(2);
    // What `pvesm status` prints when pmxcfs is down (PVE::IPCC, as in the captured
    // pvecm-status.pmxcfs-down.stderr.txt), exit 255 from Perl's die.
    c.node_mut("pve2").unwrap().faults.fail.insert(
        "pvesm status".into(),
        pveops_lab::state::Failure {
            exit: 255,
            stderr: "ipcc_send_rec[1] failed: Connection refused\nipcc_send_rec[2] failed: Connection refused\n".into(),
        },
    );
    let sim = SimCluster::start(c);
    let run = assess(&sim, &[]);
    assert_eq!(run.code, Some(2), "{:?}", findings(&run));
    let f = run.snapshot["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "pveops.command-failed")
        .unwrap_or_else(|| panic!("{:?}", findings(&run)));
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["node"], "pve2");
    assert_eq!(f["subject"], "pvesm-status");
    let m = f["message"].as_str().unwrap();
    assert!(
        m.starts_with("pve2: the cluster filesystem (pmxcfs")
            && m.contains("`pvesm status` failed (exit 255"),
        "{m}"
    );
    assert!(
        !has(
            &run,
            "pveops.output-readable",
            Some("pve2"),
            Some("pvesm-status")
        ),
        "{:?}",
        findings(&run)
    );
    let cmd = run.snapshot["nodes"][1]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pvesm-status")
        .unwrap()
        .clone();
    assert_eq!(cmd["diagnosis"]["code"], "pmxcfs-down", "{cmd}");
}

#[test]
fn monitoring_formats_of_the_degraded_cluster() {
    let promtool = crate::support::promtool();
    let sim = SimCluster::start(scenario::degraded());
    let run = assess(&sim, &["--format", "nagios"]);
    assert_eq!(run.code, Some(2));
    let findings = run.snapshot["findings"].as_array().unwrap().len();
    let nagios = &run.stdout;
    let lines: Vec<&str> = nagios.lines().collect();
    let (status, perf) = lines[0].split_once(" | ").expect("perfdata after |");
    assert!(status.starts_with("PVEOPS CRITICAL - "), "{nagios}");
    assert!(
        status.contains(" critical") && status.contains(" warning"),
        "{status}"
    );
    assert!(perf.starts_with("nodes_reachable=3;;;0;3 "), "{perf}");
    assert!(
        perf.contains("'storage_used_pct pve3/local-lvm'="),
        "{perf}"
    );
    assert!(perf.contains("backup_age_hours="), "{perf}");
    assert_eq!(lines.len(), 1 + findings, "{nagios}");
    for l in &lines[1..] {
        assert!(
            ["CRITICAL ", "WARNING ", "UNKNOWN "]
                .iter()
                .any(|w| l.starts_with(w)),
            "{l}"
        );
    }
    assert!(
        !run.stderr.contains("finding(s); status"),
        "no summary table: {}",
        run.stderr
    );

    // The textfile collector's file is replaced, never rewritten in place: a hard link to the
    // old one keeps the old content.
    let prom = sim.lab.dir.path().join("textfile").join("pveops.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    std::fs::write(&prom, "old\n").unwrap();
    let old = prom.with_extension("old");
    std::fs::hard_link(&prom, &old).unwrap();
    let run = assess(
        &sim,
        &[
            "--format",
            "prometheus",
            "--prom-file",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, Some(2));
    let written = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(written, run.stdout, "stdout and the file are the same text");
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "old\n");
    let mut names: Vec<String> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["pveops.old", "pveops.prom"],
        "no temporary file left"
    );
    for want in [
        "pveops_finding{check=\"storage.active\",node=\"pve2\",subject=\"nfs-backup\",severity=\"critical\"} 1",
        "pveops_node_reachable{node=\"pve1\"} 1",
        "pveops_storage_used_ratio{node=\"pve3\",storage=\"local-lvm\",",
        "pveops_guest_backup_age_seconds{vmid=\"",
        "pveops_assess_duration_seconds ",
    ] {
        assert!(written.contains(want), "{want} missing from\n{written}");
    }
    let check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Spawns `assess` of `sim` into `out`; returns the child.
fn spawn_assess(sim: &SimCluster, out: &std::path::Path) -> std::process::Child {
    let inv = sim.inventory();
    crate::support::command(
        sim.lab.home(),
        &[
            "assess",
            "-I",
            inv.to_str().unwrap(),
            "lab",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

/// Files below `dir` whose name ends in `.tmp` (a write cut short).
fn temp_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    crate::support::files_below(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[test]
fn raw_outputs_are_written_while_a_slow_node_still_answers_and_kept_when_interrupted() {
    let mut c = scenario::healthy(3);
    c.node_mut("pve3")
        .unwrap()
        .faults
        .slow
        .insert("pvesm status".into(), 6.0);
    let sim = SimCluster::start(c);
    for interrupt in [false, true] {
        let out = sim.lab.dir.path().join(format!("streamed-{interrupt}"));
        let mut child = spawn_assess(&sim, &out);
        let early = crate::support::poll_until(20, || out.join("raw/pve2/meta.json").exists());
        assert!(early, "pve2's raw outputs were written");
        assert!(
            child.try_wait().unwrap().is_none() && !out.join("raw/pve3").exists(),
            "…while pve3 still answered"
        );
        if interrupt {
            crate::support::sh("kill", &["-INT", &child.id().to_string()]);
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(130));
            assert!(out.join("raw/pve2/qm-list.stdout").exists());
            assert!(
                !out.join("report.md").exists(),
                "no report of a run cut short"
            );
        } else {
            let status = child.wait().unwrap();
            assert!(status.code().is_some_and(|c| c <= 2), "{status:?}");
            let meta: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("raw/pve3/meta.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(meta["pvesm-status"]["exit_code"], 0, "{meta}");
            // The first node's meta.json holds its catalog and the cluster-wide reads that came
            // after it.
            let first: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("raw/pve1/meta.json")).unwrap(),
            )
            .unwrap();
            assert!(
                first.get("qm-list").is_some() && first.get("storage-content").is_some(),
                "{first}"
            );
            assert!(out.join("report.md").exists() && out.join("snapshot.json").exists());
        }
        assert!(temp_files(&out).is_empty(), "{:?}", temp_files(&out));
    }
}
