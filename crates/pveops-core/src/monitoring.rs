//! Monitoring outputs of an assess: the Nagios/Icinga plugin format (`--format nagios`) and the
//! Prometheus text exposition format for node_exporter's textfile collector
//! (`--format prometheus`, `--prom-file`). Pure functions of the snapshot; docs/monitoring.md
//! is their contract.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;

/// What the outputs need besides the snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The assess's exit status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), which is also the
    /// plugin's state.
    pub exit_code: i32,
    /// Unix time of the end of the assess, for backup ages and the run's timestamp.
    pub now: i64,
    /// Wall time of the assess.
    pub duration_seconds: f64,
    /// The storage usage warning and critical levels in percent (the `storage.usage`
    /// check's), for perfdata.
    pub storage_thresholds_pct: Option<(f64, f64)>,
}

/// At most this many findings are named on the status line; the rest follow as long output.
const STATUS_LINE_FINDINGS: usize = 3;

fn state_word(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "OK",
        1 => "WARNING",
        2 => "CRITICAL",
        _ => "UNKNOWN",
    }
}

/// Findings worst first, in their order otherwise.
fn worst_first(snap: &Snapshot) -> Vec<&Finding> {
    let mut f: Vec<&Finding> = snap.findings.iter().collect();
    f.sort_by_key(|f| std::cmp::Reverse(f.severity.rank()));
    f
}

/// Text for plugin output: `|` separates perfdata, so it never appears in text; one line.
fn plugin_text(s: &str) -> String {
    s.replace('|', "/").replace(['\n', '\r'], " ")
}

/// A perfdata label, single-quoted (a quote inside doubled), as the plugin guidelines say.
fn perf_label(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The age in seconds of the oldest of the guests' newest backups.
fn worst_backup_age(snap: &Snapshot, now: i64) -> Option<i64> {
    snap.newest_backups
        .iter()
        .map(|b| (now - b.epoch).max(0))
        .max()
}

/// `--format nagios`: the status line (`PVEOPS CRITICAL - 2 critical, 5 warnings: ...`) with
/// the performance data after `|`, then one line per finding, worst first.
pub fn nagios(snap: &Snapshot, run: &Run) -> String {
    let findings = worst_first(snap);
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let mut parts = Vec::new();
    for (sev, one, many) in [
        (Severity::Critical, "critical", "critical"),
        (Severity::Unknown, "unknown", "unknown"),
        (Severity::Warning, "warning", "warnings"),
    ] {
        match count(sev) {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        }
    }
    let reachable = snap.nodes.iter().filter(|n| n.reachable).count();
    let mut line = format!("PVEOPS {} - ", state_word(run.exit_code));
    if parts.is_empty() {
        let _ = write!(
            line,
            "{reachable} of {} nodes answered, no findings",
            snap.nodes.len()
        );
    } else {
        line.push_str(&parts.join(", "));
        let named: Vec<String> = findings
            .iter()
            .take(STATUS_LINE_FINDINGS)
            .map(|f| plugin_text(&f.message))
            .collect();
        let _ = write!(line, ": {}", named.join("; "));
        if findings.len() > STATUS_LINE_FINDINGS {
            let _ = write!(line, " (+{} more)", findings.len() - STATUS_LINE_FINDINGS);
        }
    }
    let mut perf = vec![format!(
        "nodes_reachable={reachable};;;0;{}",
        snap.nodes.len()
    )];
    if let Some(age) = worst_backup_age(snap, run.now) {
        perf.push(format!("backup_age_hours={:.1}", age as f64 / 3600.0));
    }
    let thresholds = run
        .storage_thresholds_pct
        .map(|(warn, crit)| format!("{warn};{crit}"))
        .unwrap_or_else(|| ";".into());
    let shared = snap.shared_storages();
    // A shared storage is one value: the highest any node reports.
    let mut shared_used: BTreeMap<&str, f64> = BTreeMap::new();
    for n in snap.nodes.iter().filter(|n| n.reachable) {
        // An inactive storage reports no usage: pve-storage `PVE::Storage::storage_info` leaves
        // its total, used and avail at 0 unless the plugin's status call says it is active.
        for s in n.storages.iter().filter(|s| s.status == "active") {
            let Some(pct) = s.used_pct else { continue };
            if shared.contains(s.name.as_str()) {
                let v = shared_used.entry(&s.name).or_insert(pct);
                *v = v.max(pct);
            } else {
                perf.push(format!(
                    "{}={pct:.2}%;{thresholds};0;100",
                    perf_label(&format!("storage_used_pct {}/{}", n.name, s.name))
                ));
            }
        }
    }
    for (name, pct) in shared_used {
        perf.push(format!(
            "{}={pct:.2}%;{thresholds};0;100",
            perf_label(&format!("storage_used_pct {name}"))
        ));
    }
    perf.extend(node_perfdata(snap, run.now));
    let mut out = format!("{line} | {}\n", perf.join(" "));
    for f in findings {
        let _ = writeln!(
            out,
            "{} {} {}: {}",
            f.severity.word().to_uppercase(),
            f.check,
            f.node.as_deref().unwrap_or("(cluster)"),
            plugin_text(&f.message)
        );
    }
    out
}

/// Failed tasks of the last day on a node (what the `tasks-failed` rule judges by default).
fn failed_tasks(n: &crate::snapshot::NodeSnapshot, now: i64) -> usize {
    n.tasks
        .iter()
        .flatten()
        .filter(|t| t.outcome == "error" && now - t.endtime.unwrap_or(t.starttime) <= 86400)
        .count()
}

/// The nodes' own numbers as perfdata: memory and swap use, failed tasks, days until the
/// first certificate expires, each SSD's life left, each replication job's failures.
fn node_perfdata(snap: &Snapshot, now: i64) -> Vec<String> {
    let mut perf = Vec::new();
    for n in snap.nodes.iter().filter(|n| n.reachable) {
        if let Some(st) = &n.node_status {
            for (what, m) in [("memory", &st.memory), ("swap", &st.swap)] {
                if let Some(pct) = m.as_ref().and_then(|m| m.used_pct()) {
                    perf.push(format!(
                        "{}={pct:.2}%;;;0;100",
                        perf_label(&format!("{what}_used_pct {}", n.name))
                    ));
                }
            }
        }
        if let Some(load) = &n.load {
            for (what, v) in [("cpu_used_pct", load.cpu), ("io_wait_pct", load.iowait)] {
                if let Some(v) = v {
                    perf.push(format!(
                        "{}={:.2}%;;;0;100",
                        perf_label(&format!("{what} {}", n.name)),
                        v * 100.0
                    ));
                }
            }
        }
        if n.tasks.is_some() {
            perf.push(format!(
                "{}={};;;0",
                perf_label(&format!("tasks_failed {}", n.name)),
                failed_tasks(n, now)
            ));
        }
        if let Some(days) = n
            .certificates
            .iter()
            .flatten()
            .filter_map(|c| c.notafter)
            .min()
            .map(|t| (t - now) as f64 / 86400.0)
        {
            perf.push(format!(
                "{}={days:.1}",
                perf_label(&format!("cert_days_left {}", n.name))
            ));
        }
        if let Some(sub) = &n.subscription {
            perf.push(format!(
                "{}={};;;0;1",
                perf_label(&format!("subscription_active {}", n.name)),
                u8::from(sub.status.eq_ignore_ascii_case("active"))
            ));
        }
        for d in n.disks.iter().flatten() {
            if let Some(passed) = d.smart_passed() {
                perf.push(format!(
                    "{}={};;;0;1",
                    perf_label(&format!(
                        "disk_smart_passed {}/{}",
                        n.name,
                        d.devpath.trim_start_matches("/dev/")
                    )),
                    u8::from(passed)
                ));
            }
            if let Some(left) = d.wearout {
                perf.push(format!(
                    "{}={left:.0}%;;;0;100",
                    perf_label(&format!(
                        "disk_life_left_pct {}/{}",
                        n.name,
                        d.devpath.trim_start_matches("/dev/")
                    ))
                ));
            }
        }
        for j in n.replication.iter().flatten() {
            perf.push(format!(
                "{}={};;;0",
                perf_label(&format!("replication_fail_count {}/{}", n.name, j.job_id)),
                j.fail_count
            ));
        }
    }
    perf
}

/// The nodes' own numbers in the exposition format (see `node_perfdata`).
fn node_metrics(out: &mut String, snap: &Snapshot, now: i64) {
    let up = || snap.nodes.iter().filter(|n| n.reachable);
    type Ratio = fn(&crate::snapshot::NodeSnapshot) -> Option<f64>;
    let ratios: [(&str, &str, Ratio); 4] = [
        (
            "pveops_node_memory_used_ratio",
            "Used share of the node's memory (/nodes/N/status), 0 to 1.",
            |n| {
                n.node_status
                    .as_ref()?
                    .memory
                    .as_ref()?
                    .used_pct()
                    .map(|p| p / 100.0)
            },
        ),
        (
            "pveops_node_swap_used_ratio",
            "Used share of the node's swap (/nodes/N/status), 0 to 1; absent without swap.",
            |n| {
                n.node_status
                    .as_ref()?
                    .swap
                    .as_ref()?
                    .used_pct()
                    .map(|p| p / 100.0)
            },
        ),
        (
            "pveops_node_cpu_ratio",
            "CPU in use on the node in the newest minute pvestatd recorded (/nodes/N/rrddata), 0 to 1.",
            |n| n.load.as_ref()?.cpu,
        ),
        (
            "pveops_node_io_wait_ratio",
            "IO wait on the node in the newest minute pvestatd recorded (/nodes/N/rrddata), 0 to 1.",
            |n| n.load.as_ref()?.iowait,
        ),
    ];
    for (name, help, value) in ratios {
        family(out, name, help);
        for n in up() {
            if let Some(v) = value(n) {
                let _ = writeln!(out, "{name}{} {v}", labels(&[("node", &n.name)]));
            }
        }
    }
    family(
        out,
        "pveops_node_tasks_failed",
        "Tasks of the node that failed in the last day.",
    );
    for n in up().filter(|n| n.tasks.is_some()) {
        let _ = writeln!(
            out,
            "pveops_node_tasks_failed{} {}",
            labels(&[("node", &n.name)]),
            failed_tasks(n, now)
        );
    }
    family(
        out,
        "pveops_certificate_expiry_timestamp_seconds",
        "Unix time a node certificate (pvenode cert info) expires.",
    );
    for n in up() {
        for c in n.certificates.iter().flatten() {
            if let Some(t) = c.notafter {
                let _ = writeln!(
                    out,
                    "pveops_certificate_expiry_timestamp_seconds{} {t}",
                    labels(&[("node", &n.name), ("file", &c.filename)])
                );
            }
        }
    }
    let (mut smart, mut life) = (String::new(), String::new());
    for n in up() {
        for d in n.disks.iter().flatten() {
            let l = labels(&[("node", &n.name), ("device", &d.devpath)]);
            if let Some(passed) = d.smart_passed() {
                let _ = writeln!(smart, "pveops_disk_smart_passed{l} {}", u8::from(passed));
            }
            if let Some(left) = d.wearout {
                let _ = writeln!(life, "pveops_disk_life_left_ratio{l} {}", left / 100.0);
            }
        }
    }
    family(
        out,
        "pveops_disk_smart_passed",
        "1 when the disk's SMART health is PASSED or OK, 0 when it is anything else.",
    );
    out.push_str(&smart);
    family(
        out,
        "pveops_disk_life_left_ratio",
        "Share of an SSD's rated life left (PVE's wearout), 0 to 1.",
    );
    out.push_str(&life);
    family(
        out,
        "pveops_replication_failures",
        "Consecutive failures of a replication job (pvesr status).",
    );
    for n in up() {
        for j in n.replication.iter().flatten() {
            let _ = writeln!(
                out,
                "pveops_replication_failures{} {}",
                labels(&[("node", &n.name), ("job", &j.job_id), ("target", &j.target)]),
                j.fail_count
            );
        }
    }
    family(
        out,
        "pveops_subscription_active",
        "1 when the node's subscription is active, else 0 (status label as pvesubscription says).",
    );
    for n in up() {
        if let Some(sub) = &n.subscription {
            let status = sub.status.to_lowercase();
            let _ = writeln!(
                out,
                "pveops_subscription_active{} {}",
                labels(&[("node", &n.name), ("status", &status)]),
                u8::from(status == "active")
            );
        }
    }
}

/// The status line of a run that could not do its job (bad checks, a bad inventory, no output
/// file): `PVEOPS UNKNOWN - <reason>`, no perfdata.
pub fn nagios_unknown(reason: &str) -> String {
    format!("PVEOPS UNKNOWN - {}", plugin_text(reason))
}

/// The exposition of a run that could not do its job: the reason as a comment, the status 3
/// and the time, so an alert on `pveops_assess_status` or on the timestamp's age still fires.
pub fn prometheus_unknown(reason: &str, now: i64) -> String {
    let mut out = format!("# PVEOPS UNKNOWN - {}\n", plugin_text(reason));
    family(
        &mut out,
        "pveops_assess_status",
        "Exit status of the last assess: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    out.push_str("pveops_assess_status 3\n");
    family(
        &mut out,
        "pveops_assess_timestamp_seconds",
        "Unix time the last assess ended (alert when it grows old).",
    );
    let _ = writeln!(out, "pveops_assess_timestamp_seconds {now}");
    out
}

/// A label value of the exposition format: backslash, double quote and newline escaped.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Labels as `{a="x",b="y"}`.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// `--format prometheus`: the text exposition format, every metric a gauge with its HELP and
/// TYPE, as node_exporter's textfile collector reads it.
pub fn prometheus(snap: &Snapshot, run: &Run) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "pveops_finding",
        "Findings of the last assess by check, node, subject and severity (the number of them).",
    );
    // Two findings may share every label; a series appears once, counting them.
    let mut findings: BTreeMap<(String, String, String, String), u32> = BTreeMap::new();
    for f in &snap.findings {
        *findings
            .entry((
                f.check.clone(),
                f.node.clone().unwrap_or_default(),
                f.subject.clone().unwrap_or_default(),
                f.severity.word().to_string(),
            ))
            .or_default() += 1;
    }
    for ((check, node, subject, severity), n) in &findings {
        let _ = writeln!(
            out,
            "pveops_finding{} {n}",
            labels(&[
                ("check", check),
                ("node", node),
                ("subject", subject),
                ("severity", severity)
            ])
        );
    }
    family(
        &mut out,
        "pveops_node_reachable",
        "1 when the node answered over SSH in the last assess, else 0.",
    );
    for n in &snap.nodes {
        let _ = writeln!(
            out,
            "pveops_node_reachable{} {}",
            labels(&[("node", &n.name)]),
            u8::from(n.reachable)
        );
    }
    family(
        &mut out,
        "pveops_storage_used_ratio",
        "Used share of a storage as the node reports it (pvesm status), 0 to 1.",
    );
    let shared = snap.shared_storages();
    for n in snap.nodes.iter().filter(|n| n.reachable) {
        // An inactive storage reports no usage: pve-storage `PVE::Storage::storage_info` leaves
        // its total, used and avail at 0 unless the plugin's status call says it is active.
        for s in n.storages.iter().filter(|s| s.status == "active") {
            let Some(pct) = s.used_pct else { continue };
            let is_shared = if shared.contains(s.name.as_str()) {
                "true"
            } else {
                "false"
            };
            let _ = writeln!(
                out,
                "pveops_storage_used_ratio{} {}",
                labels(&[
                    ("node", &n.name),
                    ("storage", &s.name),
                    ("shared", is_shared)
                ]),
                pct / 100.0
            );
        }
    }
    family(
        &mut out,
        "pveops_guest_backup_age_seconds",
        "Age of each guest's newest backup at the end of the last assess.",
    );
    for b in &snap.newest_backups {
        let _ = writeln!(
            out,
            "pveops_guest_backup_age_seconds{} {}",
            labels(&[("vmid", &b.vmid.to_string()), ("storage", &b.storage)]),
            (run.now - b.epoch).max(0)
        );
    }
    node_metrics(&mut out, snap, run.now);
    family(
        &mut out,
        "pveops_assess_duration_seconds",
        "Wall time of the last assess.",
    );
    let _ = writeln!(
        out,
        "pveops_assess_duration_seconds {:.3}",
        run.duration_seconds
    );
    family(
        &mut out,
        "pveops_assess_status",
        "Exit status of the last assess: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    );
    let _ = writeln!(out, "pveops_assess_status {}", run.exit_code);
    family(
        &mut out,
        "pveops_assess_timestamp_seconds",
        "Unix time the last assess ended (alert when it grows old).",
    );
    let _ = writeln!(out, "pveops_assess_timestamp_seconds {}", run.now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{NewestBackup, NodeSnapshot};
    use std::collections::BTreeSet;

    fn snap() -> Snapshot {
        let storage = |name: &str, pct: f64| crate::facts::pvesm_status::Storage {
            name: name.into(),
            kind: "dir".into(),
            status: "active".into(),
            used_pct: Some(pct),
            ..Default::default()
        };
        let node = |name: &str, reachable: bool, storages| NodeSnapshot {
            name: name.into(),
            reachable,
            storages,
            ..Default::default()
        };
        let finding = |check: &str, sev, node: &str, subject: &str, msg: &str| Finding {
            check: check.into(),
            severity: sev,
            node: Some(node.into()),
            subject: Some(subject.into()),
            message: msg.into(),
        };
        Snapshot {
            format: 1,
            taken_at: String::new(),
            status: Severity::Critical,
            pveops_version: String::new(),
            nodes: vec![
                node(
                    "pve1",
                    true,
                    vec![storage("local", 45.5), storage("ceph", 60.0)],
                ),
                node(
                    "pve2",
                    true,
                    vec![storage("local", 91.0), storage("ceph", 61.25)],
                ),
                node("pve3", false, vec![]),
            ],
            resources: vec![crate::facts::pvesh::Resource {
                id: "storage/pve1/ceph".into(),
                kind: "storage".into(),
                storage: Some("ceph".into()),
                shared: Some(true),
                ..Default::default()
            }],
            backups: vec![],
            newest_backups: vec![NewestBackup {
                vmid: 100,
                epoch: 1_000_000 - 7200,
                volid: "pbs:backup/vm/100/x".into(),
                storage: "pbs".into(),
            }],
            ceph: None,
            findings: vec![
                finding(
                    "storage.usage",
                    Severity::Warning,
                    "pve2",
                    "local",
                    "local 91% | full",
                ),
                finding(
                    "node.reachable",
                    Severity::Critical,
                    "pve3",
                    "pve3",
                    "pve3 is down",
                ),
                finding("x.y", Severity::Warning, "pve1", "a\"b", "one"),
                finding("x.y", Severity::Warning, "pve1", "a\"b", "two"),
            ],
        }
    }

    fn run() -> Run {
        Run {
            exit_code: 2,
            now: 1_000_000,
            duration_seconds: 1.5,
            storage_thresholds_pct: Some((80.0, 90.0)),
        }
    }

    #[test]
    fn nagios_status_line_then_perfdata_then_findings_worst_first() {
        let out = nagios(&snap(), &run());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "PVEOPS CRITICAL - 1 critical, 3 warnings: pve3 is down; local 91% / full; one (+1 more) \
             | nodes_reachable=2;;;0;3 backup_age_hours=2.0 \
             'storage_used_pct pve1/local'=45.50%;80;90;0;100 \
             'storage_used_pct pve2/local'=91.00%;80;90;0;100 \
             'storage_used_pct ceph'=61.25%;80;90;0;100"
        );
        assert_eq!(lines[1], "CRITICAL node.reachable pve3: pve3 is down");
        assert_eq!(lines[2], "WARNING storage.usage pve2: local 91% / full");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn nagios_ok_names_the_nodes() {
        let mut s = snap();
        s.findings.clear();
        let out = nagios(
            &s,
            &Run {
                exit_code: 0,
                ..run()
            },
        );
        assert!(
            out.starts_with("PVEOPS OK - 2 of 3 nodes answered, no findings | "),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn prometheus_series_are_unique_and_labels_escaped() {
        let out = prometheus(&snap(), &run());
        assert!(out.contains(
            "pveops_finding{check=\"x.y\",node=\"pve1\",subject=\"a\\\"b\",severity=\"warning\"} 2\n"
        ));
        assert!(out.contains("pveops_node_reachable{node=\"pve3\"} 0\n"));
        assert!(out.contains(
            "pveops_storage_used_ratio{node=\"pve2\",storage=\"ceph\",shared=\"true\"} 0.6125\n"
        ));
        assert!(
            out.contains("pveops_guest_backup_age_seconds{vmid=\"100\",storage=\"pbs\"} 7200\n")
        );
        assert!(out.contains("pveops_assess_duration_seconds 1.500\n"));
        let series: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        let unique: BTreeSet<&str> = series
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(unique.len(), series.len(), "a series appears twice:\n{out}");
    }
}
