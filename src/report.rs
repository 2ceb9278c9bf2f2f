//! The markdown evidence report, rendered from `templates/report/*.hbs` (embedded, overridable
//! with `--templates DIR/report/`). Every value is escaped for markdown by the registry's escape
//! function, so a guest named `web|prod*<b>` can neither break a table nor inject markup.
//! Pure: the context is built from the snapshot, findings and bundle listing passed in.

use std::path::Path;

use handlebars::Handlebars;
use rust_embed::RustEmbed;
use serde::Serialize;

use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;

#[derive(RustEmbed)]
#[folder = "templates/report/"]
struct Embedded;

/// Escapes text for a markdown table cell or paragraph.
pub fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '!' | '|'
            | '~' | '$' => {
                o.push('\\');
                o.push(ch);
            }
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\n' => o.push_str("<br>"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// The summary block.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub command: String,
    pub operator: String,
    pub targets: String,
    pub started_at: String,
    pub outcome: String,
    pub status: String,
    pub exit_status: i32,
    pub pveops_version: String,
}

/// One node of a rolling update, as the report's Updates section and the change log show it.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutRow {
    pub node: String,
    /// `updated`, `FAILED: …`, `skipped: nothing to install`, `not reached: …`.
    pub outcome: String,
    /// `pve-manager 9.1.1 → 9.1.2, kernel 6.17.2-1-pve → 6.17.4-1-pve`, from the diff.
    pub versions: String,
    /// `rebooted (new boot id)`, `not needed: …`, `no`.
    pub reboot: String,
}

impl RolloutRow {
    /// The row as one change-log line.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.node, self.outcome);
        if !self.versions.is_empty() {
            s.push_str(&format!("; {}", self.versions));
        }
        s.push_str(&format!("; reboot: {}", self.reboot));
        s
    }
}

/// The rows of a rolling update: per node what the plan meant to do, what the executed steps
/// did, and what the before/after diff shows (versions, kernel, boot id).
pub fn rollout_rows(
    plan: &crate::operation::Plan,
    done: &[crate::execute::Done],
    differences: &[crate::diff::Difference],
    snap: &Snapshot,
) -> Vec<RolloutRow> {
    let target_of = |pve: &str| {
        snap.nodes
            .iter()
            .find(|n| n.pve_node.as_deref() == Some(pve) || n.name == pve)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| pve.to_string())
    };
    let step_of = |kind: &str, node: &str| {
        plan.steps
            .iter()
            .find(|s| s.detail["kind"] == kind && s.detail["node"] == node)
            .map(|s| (s, done.iter().find(|d| d.seq == s.seq)))
    };
    plan.updates
        .iter()
        .map(|u| {
            let target = target_of(&u.node);
            let mine = |d: &&crate::diff::Difference| {
                d.node.as_deref() == Some(target.as_str()) || d.node.as_deref() == Some(&u.node)
            };
            let mut versions: Vec<String> = differences
                .iter()
                .filter(mine)
                .filter(|d| d.kind == "package")
                .map(|d| {
                    format!(
                        "{} {} → {}",
                        d.subject.as_deref().unwrap_or("?"),
                        d.before.as_deref().unwrap_or("(none)"),
                        d.after.as_deref().unwrap_or("(none)")
                    )
                })
                .collect();
            if let Some(k) = differences.iter().filter(mine).find(|d| d.kind == "kernel") {
                versions.push(format!(
                    "running kernel {} → {}",
                    k.before.as_deref().unwrap_or("?"),
                    k.after.as_deref().unwrap_or("?")
                ));
            }
            let rebooted = differences
                .iter()
                .filter(mine)
                .any(|d| d.kind == "node-rebooted");
            let (outcome, reboot) = match step_of("upgrade", &u.node) {
                None => (
                    "skipped: nothing to install".to_string(),
                    if u.reboot_reason.contains("reboot is due") {
                        format!("no ({})", u.reboot_reason)
                    } else {
                        "no".to_string()
                    },
                ),
                Some((_, None)) => (
                    "not reached: the rollout stopped before this node".to_string(),
                    "no".to_string(),
                ),
                Some((_, Some(d))) if d.outcome != "ok" => (
                    format!("FAILED: {}", d.message),
                    "no (the upgrade failed first)".to_string(),
                ),
                Some((_, Some(_))) => {
                    let reboot = match step_of("reboot", &u.node) {
                        Some((_, Some(r))) if r.outcome == "ok" => {
                            "rebooted (new boot id)".to_string()
                        }
                        Some((_, Some(r))) if r.outcome == "skipped" => {
                            format!("not needed ({})", r.message)
                        }
                        Some((_, Some(r))) => format!("FAILED: {}", r.message),
                        Some((_, None)) => "not reached".to_string(),
                        None => "no".to_string(),
                    };
                    (
                        format!(
                            "updated ({} package(s))",
                            u.installs.len() + u.removals.len()
                        ),
                        reboot,
                    )
                }
            };
            let reboot = if rebooted && !reboot.starts_with("rebooted") {
                format!("{reboot}; the node rebooted (its boot id changed)")
            } else {
                reboot
            };
            RolloutRow {
                node: u.node.clone(),
                outcome,
                versions: versions.join(", "),
                reboot,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Context<'a> {
    summary: &'a Summary,
    findings: Vec<FindingRow>,
    followups: Vec<FindingRow>,
    cluster: Option<ClusterRow>,
    nodes: Vec<NodeRow>,
    storages: Vec<StorageRow>,
    guests: Vec<GuestRow>,
    changes: Vec<serde_json::Value>,
    rollout: Vec<RolloutRow>,
    differences: Vec<serde_json::Value>,
    evidence: Vec<EvidenceRow>,
}

#[derive(Serialize)]
struct FindingRow {
    severity: String,
    check: String,
    node: String,
    subject: String,
    message: String,
}

#[derive(Serialize)]
struct ClusterRow {
    name: String,
    quorate: String,
    members: String,
    votes: String,
}

#[derive(Serialize)]
struct NodeRow {
    name: String,
    address: String,
    reachable: bool,
    error: String,
    pve_node: String,
    manager_version: String,
    kernel: String,
    services: String,
}

#[derive(Serialize)]
struct StorageRow {
    node: String,
    name: String,
    kind: String,
    status: String,
    used_pct: String,
    used: String,
    total: String,
}

#[derive(Serialize)]
struct GuestRow {
    vmid: u64,
    kind: String,
    name: String,
    node: String,
    status: String,
    lock: String,
}

#[derive(Serialize)]
struct EvidenceRow {
    path: String,
    command: String,
    exit_code: String,
}

fn row(f: &Finding) -> FindingRow {
    FindingRow {
        severity: f.severity.word().to_uppercase(),
        check: f.check.clone(),
        node: f.node.clone().unwrap_or_else(|| "(cluster)".into()),
        subject: f.subject.clone().unwrap_or_default(),
        message: f.message.clone(),
    }
}

/// The report registry: strict, markdown-escaping, embedded templates then `dir/report/`.
pub fn registry(dir: Option<&Path>) -> Result<Handlebars<'static>, crate::Error> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(md);
    for name in Embedded::iter() {
        let (Some(file), Some(stem)) = (Embedded::get(&name), name.strip_suffix(".hbs")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&file.data).into_owned();
        crate::command::register(&mut hb, stem, &text, Path::new(name.as_ref()))?;
    }
    if let Some(dir) = dir.map(|d| d.join("report")).filter(|d| d.is_dir()) {
        crate::command::register_dir(&mut hb, &dir)?;
    }
    Ok(hb)
}

/// Renders `report.md` for an assessment.
pub fn render(
    hb: &Handlebars,
    summary: &Summary,
    snap: &Snapshot,
    differences: &[crate::diff::Difference],
    evidence: &[(String, String, Option<u32>)],
) -> Result<String, crate::Error> {
    render_with_changes(hb, summary, snap, differences, &[], &[], evidence)
}

/// Renders `report.md` with the Changes section of an operation (one object per step:
/// `step`, `command`, `started`, `duration`, `exit`, `verified`).
pub fn render_with_changes(
    hb: &Handlebars,
    summary: &Summary,
    snap: &Snapshot,
    differences: &[crate::diff::Difference],
    changes: &[serde_json::Value],
    rollout: &[RolloutRow],
    evidence: &[(String, String, Option<u32>)],
) -> Result<String, crate::Error> {
    let findings: Vec<FindingRow> = snap.findings.iter().map(row).collect();
    let followups = snap
        .findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Warning | Severity::Critical))
        .map(row)
        .collect();
    let cluster = snap
        .nodes
        .iter()
        .filter_map(|n| n.cluster.as_ref())
        .find(|c| c.cluster_name.is_some())
        .map(|c| ClusterRow {
            name: c.cluster_name.clone().unwrap_or_default(),
            quorate: match c.quorate {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "unknown".into(),
            },
            members: c
                .members
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            votes: format!(
                "{} of {} (quorum {})",
                c.total_votes.unwrap_or(0),
                c.expected_votes.unwrap_or(0),
                c.quorum.unwrap_or(0)
            ),
        });
    let nodes = snap
        .nodes
        .iter()
        .map(|n| NodeRow {
            name: n.name.clone(),
            address: n.address.clone(),
            reachable: n.reachable,
            error: n.error.clone().unwrap_or_default(),
            pve_node: n.pve_node.clone().unwrap_or_default(),
            manager_version: n
                .version
                .as_ref()
                .and_then(|v| v.manager_version.clone())
                .unwrap_or_default(),
            kernel: n
                .version
                .as_ref()
                .and_then(|v| v.running_kernel.clone())
                .unwrap_or_default(),
            services: {
                let down: Vec<String> = n
                    .services
                    .iter()
                    .filter(|(_, s)| *s != "active")
                    .map(|(u, s)| format!("{u}={s}"))
                    .collect();
                if down.is_empty() && n.reachable {
                    "all active".into()
                } else {
                    down.join(", ")
                }
            },
        })
        .collect();
    let storages = snap
        .nodes
        .iter()
        .flat_map(|n| {
            n.storages.iter().map(move |s| StorageRow {
                node: n.name.clone(),
                name: s.name.clone(),
                kind: s.kind.clone(),
                status: s.status.clone(),
                used_pct: s
                    .used_pct
                    .map(|p| format!("{p:.2} %"))
                    .unwrap_or_else(|| "n/a".into()),
                used: crate::check::human_bytes(s.used_bytes),
                total: crate::check::human_bytes(s.total_bytes),
            })
        })
        .collect();
    let mut guests: Vec<GuestRow> = snap
        .nodes
        .iter()
        .flat_map(|n| {
            let vms = n.vms.iter().map(move |v| GuestRow {
                vmid: v.vmid,
                kind: "VM".into(),
                name: v.name.clone(),
                node: n.name.clone(),
                status: v.status.clone(),
                lock: String::new(),
            });
            let cts = n.containers.iter().map(move |c| GuestRow {
                vmid: c.vmid,
                kind: "CT".into(),
                name: c.name.clone(),
                node: n.name.clone(),
                status: c.status.clone(),
                lock: c.lock.clone().unwrap_or_default(),
            });
            vms.chain(cts)
        })
        .collect();
    for g in guests.iter_mut() {
        if let Some(lock) = snap
            .resources
            .iter()
            .find(|r| r.vmid == Some(g.vmid))
            .and_then(|r| r.lock.clone())
        {
            g.lock = lock;
        }
    }
    guests.sort_by_key(|g| g.vmid);
    let evidence = evidence
        .iter()
        .map(|(p, c, code)| EvidenceRow {
            path: p.clone(),
            command: c.clone(),
            exit_code: code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        })
        .collect();
    let differences = differences
        .iter()
        .map(|x| {
            serde_json::json!({
                "kind": x.kind,
                "node": x.node.clone().unwrap_or_else(|| "(cluster)".into()),
                "subject": x.subject.clone().unwrap_or_default(),
                "before": x.before.clone().unwrap_or_default(),
                "after": x.after.clone().unwrap_or_default(),
                "regression": if x.regression { "yes" } else { "no" },
            })
        })
        .collect();
    let ctx = Context {
        summary,
        findings,
        followups,
        cluster,
        nodes,
        storages,
        guests,
        changes: changes.to_vec(),
        rollout: rollout.to_vec(),
        differences,
        evidence,
    };
    hb.render("report.md", &ctx)
        .map_err(|e| crate::Error::Template {
            name: "report.md".into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cannot_be_injected() {
        assert_eq!(md("web|prod*<b>"), "web\\|prod\\*&lt;b&gt;");
        assert_eq!(md("a\nb"), "a<br>b");
        assert_eq!(
            md("[x](javascript:alert(1))"),
            "\\[x\\]\\(javascript:alert\\(1\\)\\)"
        );
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::finding::Finding;
    use crate::health::{Container, Storage, Vm};
    use crate::snapshot::NodeSnapshot;

    /// Markdown and HTML metacharacters, tags, control characters and anything printable.
    const HOSTILE: &str = r"([|*_<>`\\\[\]()#!&~$\n\r\t-]|<b>|</table>|<script>|[a-z ]|\PC){1,40}";

    /// The report of a small snapshot in which every value a node reports is `hostile` (the
    /// reviewed snapshot uses fixed names).
    fn small_report(hostile: Option<&str>) -> String {
        let name = |fixed: &str| hostile.unwrap_or(fixed).to_string();
        let mut n1 = NodeSnapshot {
            name: "pve1".into(),
            address: "10.0.0.11:22".into(),
            reachable: true,
            pve_node: Some("pve1".into()),
            ..Default::default()
        };
        n1.storages.push(Storage {
            name: name("local|lvm"),
            kind: "lvmthin".into(),
            status: "active".into(),
            used_pct: Some(93.5),
            used_bytes: 935 << 30,
            total_bytes: 1000 << 30,
            ..Default::default()
        });
        n1.vms.push(Vm {
            vmid: 100,
            name: name("web|prod*<b>"),
            status: "running".into(),
            ..Default::default()
        });
        n1.containers.push(Container {
            vmid: 101,
            status: "stopped".into(),
            lock: Some("backup".into()),
            name: name("dns_1"),
        });
        n1.services.insert("pveproxy".into(), "failed".into());
        let n2 = NodeSnapshot {
            name: "pve2".into(),
            address: "10.0.0.12:22".into(),
            error: Some(format!(
                "pve2 (10.0.0.12:22): {}",
                name("connection refused")
            )),
            ..Default::default()
        };
        let snap = Snapshot {
            format: 1,
            taken_at: "2026-11-27T03:00:00Z".into(),
            status: Severity::Critical,
            pveops_version: "0.1.0".into(),
            nodes: vec![n1, n2],
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            findings: vec![
                Finding {
                    check: "node.reachable".into(),
                    severity: Severity::Critical,
                    node: Some("pve2".into()),
                    subject: None,
                    message: "node pve2 is unreachable: connection refused".into(),
                },
                Finding {
                    check: "storage.usage".into(),
                    severity: Severity::Critical,
                    node: Some("pve1".into()),
                    subject: Some(name("local|lvm")),
                    message: format!("storage {} on pve1 is 93.50 % full", name("local|lvm")),
                },
            ],
        };
        let summary = Summary {
            command: "assess".into(),
            operator: "ops@jump".into(),
            targets: "pve1, pve2".into(),
            started_at: "2026-11-27T03:00:00Z".into(),
            outcome: "2 finding(s) to follow up".into(),
            status: "CRITICAL".into(),
            exit_status: 2,
            pveops_version: "0.1.0".into(),
        };
        let evidence = vec![(
            "raw/pve1/pvecm-status.stdout".to_string(),
            "pvecm status".to_string(),
            Some(0),
        )];
        render(&registry(None).unwrap(), &summary, &snap, &[], &evidence).unwrap()
    }

    /// The whole report for a small fixed snapshot, reviewed as an insta snapshot.
    #[test]
    fn report_of_a_small_cluster() {
        insta::assert_snapshot!(small_report(None));
    }

    /// `|` not preceded by a backslash: a markdown table's column separators.
    fn separators(line: &str) -> usize {
        let mut n = 0;
        let mut escaped = false;
        for c in line.chars() {
            if c == '|' && !escaped {
                n += 1;
            }
            escaped = c == '\\' && !escaped;
        }
        n
    }

    /// The shape of a report: per line its kind (table row, heading, list, text, blank), its
    /// column separators and its raw `<` outside our own `<br>`.
    fn shape(report: &str) -> Vec<(char, usize, usize)> {
        report
            .lines()
            .map(|l| {
                let kind = l.chars().next().unwrap_or(' ');
                let kind = if "|#->".contains(kind) { kind } else { 't' };
                (
                    kind,
                    separators(l),
                    l.replace("<br>", "").matches('<').count(),
                )
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, .. Default::default() })]

        /// Any name a node reports (guest, storage, error text) leaves the report's structure
        /// as it is with plain names: same lines, same table columns, no markup of its own.
        #[test]
        fn hostile_names_keep_the_report_shape(
            hostile in HOSTILE
        ) {
            let plain = shape(&small_report(Some("plain")));
            let got = small_report(Some(&hostile));
            proptest::prop_assert_eq!(plain, shape(&got), "{:?} gave:\n{}", &hostile, &got);
        }
    }
}
