//! The markdown evidence report, rendered from `templates/report/*.hbs` (embedded, overridable
//! with `--templates DIR/report/`). Every value is escaped for markdown by the registry's escape
//! function, so a guest named `web|prod*<b>` can neither break a table nor inject markup.
//! Pure: the context is built from the snapshot, findings and bundle listing passed in.

use std::path::Path;

use handlebars::Handlebars;
use rust_embed::RustEmbed;
use serde::Serialize;

use crate::finding::Severity;
use crate::markdown::md;
use crate::snapshot::Snapshot;

mod rollout;
mod rows;

pub use rollout::{RolloutRow, rollout_rows};
use rows::{
    ClusterRow, EvidenceRow, FindingRow, GuestRow, NodeRow, StorageRow, age, ceph_line, fold_nodes,
    members, natural, row, storage_rows,
};

#[derive(RustEmbed)]
#[folder = "../../templates/report/"]
struct Embedded;

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

#[derive(Serialize)]
struct Context<'a> {
    summary: &'a Summary,
    findings: Vec<FindingRow>,
    followups: Vec<FindingRow>,
    cluster: Option<ClusterRow>,
    /// One line on Ceph: `not configured`, its health and where its OSDs are, or why it gave
    /// none; empty when it was not read.
    ceph: String,
    nodes: Vec<NodeRow>,
    storages: Vec<StorageRow>,
    guests: Vec<GuestRow>,
    changes: Vec<serde_json::Value>,
    rollout: Vec<RolloutRow>,
    differences: Vec<serde_json::Value>,
    evidence: Vec<EvidenceRow>,
    /// A verify: each finding says whether it is new or was there before.
    compared: bool,
    /// A verify: the baseline's findings that are gone (resolved) or could not be read again.
    resolved: Vec<FindingRow>,
    unverified: Vec<FindingRow>,
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

/// Renders `report.md` for a verify: each finding marked new or unchanged against the
/// baseline, the resolved ones listed after them.
pub fn render_verify(
    hb: &Handlebars,
    summary: &Summary,
    snap: &Snapshot,
    differences: &[crate::diff::Difference],
    findings: &crate::diff::FindingChanges,
    evidence: &[(String, String, Option<u32>)],
) -> Result<String, crate::Error> {
    render_all(
        hb,
        summary,
        snap,
        differences,
        &[],
        &[],
        evidence,
        Some(findings),
    )
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
    render_all(
        hb,
        summary,
        snap,
        differences,
        changes,
        rollout,
        evidence,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn render_all(
    hb: &Handlebars,
    summary: &Summary,
    snap: &Snapshot,
    differences: &[crate::diff::Difference],
    changes: &[serde_json::Value],
    rollout: &[RolloutRow],
    evidence: &[(String, String, Option<u32>)],
    compared: Option<&crate::diff::FindingChanges>,
) -> Result<String, crate::Error> {
    let findings: Vec<FindingRow> = snap
        .findings
        .iter()
        .map(|f| {
            let mut r = row(f);
            if let Some(c) = compared {
                r.since = if c.new.contains(f) {
                    "new"
                } else {
                    "unchanged"
                }
                .into();
            }
            r
        })
        .collect();
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
            members: members(snap).unwrap_or_else(|| {
                c.members
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            votes: format!(
                "{} of {} (quorum {})",
                c.total_votes.unwrap_or(0),
                c.expected_votes.unwrap_or(0),
                c.quorum.unwrap_or(0)
            ),
        });
    let mut nodes: Vec<NodeRow> = snap
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
    nodes.sort_by_key(|n| natural(&n.name));
    let nodes = fold_nodes(nodes);
    let storages = storage_rows(snap);
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
                ha: String::new(),
                backup: String::new(),
            });
            let cts = n.containers.iter().map(move |c| GuestRow {
                vmid: c.vmid,
                kind: "CT".into(),
                name: c.name.clone(),
                node: n.name.clone(),
                status: c.status.clone(),
                lock: c.lock.clone().unwrap_or_default(),
                ha: String::new(),
                backup: String::new(),
            });
            vms.chain(cts)
        })
        .collect();
    let taken = snap.taken_at.parse::<jiff::Timestamp>().ok();
    for g in guests.iter_mut() {
        let resource = snap.resources.iter().find(|r| r.vmid == Some(g.vmid));
        if let Some(lock) = resource.and_then(|r| r.lock.clone()) {
            g.lock = lock;
        }
        g.ha = resource
            .and_then(|r| r.hastate.clone())
            .unwrap_or_else(|| "-".into());
        g.backup = match snap.newest_backups.iter().find(|b| b.vmid == g.vmid) {
            None => "none".into(),
            Some(b) => match taken {
                Some(t) => format!("{} ago, {}", age(t.as_second() - b.epoch), b.storage),
                None => b.storage.clone(),
            },
        };
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
        ceph: ceph_line(snap),
        nodes,
        storages,
        guests,
        changes: changes.to_vec(),
        rollout: rollout.to_vec(),
        differences,
        evidence,
        compared: compared.is_some(),
        resolved: compared
            .map(|c| c.resolved.iter().map(row).collect())
            .unwrap_or_default(),
        unverified: compared
            .map(|c| c.unverified.iter().map(row).collect())
            .unwrap_or_default(),
    };
    hb.render("report.md", &ctx)
        .map_err(|e| crate::Error::Template {
            name: "report.md".into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::facts::pct_list::Container;
    use crate::facts::pvesm_status::Storage;
    use crate::facts::qm_list::Vm;
    use crate::finding::Finding;
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
        let ceph = |status: &str, pct: f64| Storage {
            name: "ceph-vm".into(),
            kind: "rbd".into(),
            status: status.into(),
            used_pct: Some(pct),
            used_bytes: 400 << 30,
            total_bytes: 1000 << 30,
            ..Default::default()
        };
        n1.storages.insert(0, ceph("active", 40.0));
        // pvecm status names members by ring address; the report names them by node.
        n1.cluster = Some(crate::facts::pvecm_status::ClusterHealth {
            cluster_name: Some("prod".into()),
            quorate: Some(true),
            total_votes: Some(3),
            expected_votes: Some(4),
            quorum: Some(3),
            members: ["10.0.0.11", "10.0.0.13", "10.0.0.14"]
                .iter()
                .map(|a| crate::facts::pvecm_status::Member {
                    name: a.to_string(),
                    votes: 1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        let other = |name: &str, status: &str| NodeSnapshot {
            name: name.into(),
            address: format!("{name}:22"),
            reachable: true,
            pve_node: Some(name.into()),
            storages: vec![ceph(status, 40.0)],
            ..Default::default()
        };
        let (n3, n4) = (other("pve3", "active"), other("pve4", "inactive"));
        let resource = |id: &str, kind: &str| crate::facts::pvesh::Resource {
            id: id.into(),
            kind: kind.into(),
            ..Default::default()
        };
        let mut resources = vec![
            crate::facts::pvesh::Resource {
                vmid: Some(100),
                hastate: Some("started".into()),
                ..resource("qemu/100", "qemu")
            },
            crate::facts::pvesh::Resource {
                storage: Some("ceph-vm".into()),
                shared: Some(true),
                ..resource("storage/pve1/ceph-vm", "storage")
            },
        ];
        for (n, status) in [
            ("pve1", "online"),
            ("pve2", "offline"),
            ("pve3", "online"),
            ("pve4", "online"),
        ] {
            resources.push(crate::facts::pvesh::Resource {
                node: Some(n.into()),
                status: Some(status.into()),
                ..resource(&format!("node/{n}"), "node")
            });
        }
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
            nodes: vec![n1, n2, n3, n4],
            resources,
            backups: Vec::new(),
            newest_backups: vec![crate::snapshot::NewestBackup {
                vmid: 100,
                // 2026-11-26T01:00:00Z, 26 hours before the snapshot.
                epoch: 1_795_654_800,
                volid: "pbs:backup/vm/100/2026-11-26T01:00:00Z".into(),
                storage: "pbs".into(),
            }],
            ceph: None,
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

    /// At 50 nodes identical rows fold, so the node that differs stands out.
    #[test]
    fn fifty_nodes_fold_into_the_rows_that_differ() {
        let nodes: Vec<NodeSnapshot> = (1..=50)
            .map(|i| {
                let mut n = NodeSnapshot {
                    name: format!("pve{i}"),
                    address: format!("10.0.0.{i}:22"),
                    reachable: true,
                    pve_node: Some(format!("pve{i}")),
                    ..Default::default()
                };
                let state = if i == 17 { "failed" } else { "active" };
                n.services.insert("pveproxy".into(), state.into());
                n.storages.push(Storage {
                    name: "local".into(),
                    kind: "dir".into(),
                    status: "active".into(),
                    used_pct: Some(if i == 3 { 91.0 } else { 20.0 }),
                    ..Default::default()
                });
                n
            })
            .rev()
            .collect();
        let snap = Snapshot {
            format: 1,
            taken_at: "2026-11-27T03:00:00Z".into(),
            status: Severity::Ok,
            pveops_version: String::new(),
            nodes,
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        };
        let summary = Summary {
            command: "assess".into(),
            operator: "ops@jump".into(),
            targets: "prod".into(),
            started_at: snap.taken_at.clone(),
            outcome: String::new(),
            status: "OK".into(),
            exit_status: 0,
            pveops_version: String::new(),
        };
        let report = render(&registry(None).unwrap(), &summary, &snap, &[], &[]).unwrap();
        let rows = |section: &str| -> Vec<String> {
            let start = report.find(&format!("## {section}\n")).unwrap();
            report[start..]
                .lines()
                .skip(4)
                .take_while(|l| l.starts_with('|'))
                .map(|l| {
                    l.split(" | ")
                        .next()
                        .unwrap()
                        .trim_start_matches("| ")
                        // Markdown escapes off, as a reader sees the cell.
                        .replace('\\', "")
                })
                .collect()
        };
        assert_eq!(
            rows("Nodes"),
            [
                "pve1 – pve16 (16 nodes)",
                "pve17",
                "pve18 – pve50 (33 nodes)"
            ],
            "{report}"
        );
        assert_eq!(
            rows("Storage"),
            ["pve1", "pve2", "pve3", "pve4 – pve50 (47 nodes)"],
            "{report}"
        );
        assert!(
            report.contains("| pve17 | 10.0.0.17:22 | yes | pve17 |"),
            "{report}"
        );
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
