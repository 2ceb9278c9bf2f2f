//! The report's rows: each section's table rows built from the snapshot (findings, cluster,
//! nodes, storages, guests, evidence), with identical neighbours folded into one row.

use serde::Serialize;

use crate::finding::Finding;
use crate::snapshot::Snapshot;

#[derive(Serialize)]
pub(super) struct FindingRow {
    pub(super) severity: String,
    pub(super) check: String,
    pub(super) node: String,
    pub(super) subject: String,
    pub(super) message: String,
    /// `new` or `unchanged` against a verify's baseline; empty otherwise.
    pub(super) since: String,
}

#[derive(Serialize)]
pub(super) struct ClusterRow {
    pub(super) name: String,
    pub(super) quorate: String,
    pub(super) members: String,
    pub(super) votes: String,
}

#[derive(Serialize)]
pub(super) struct NodeRow {
    pub(super) name: String,
    pub(super) address: String,
    pub(super) reachable: bool,
    pub(super) error: String,
    pub(super) pve_node: String,
    pub(super) manager_version: String,
    pub(super) kernel: String,
    pub(super) services: String,
}

#[derive(Clone, Serialize)]
pub(super) struct StorageRow {
    pub(super) node: String,
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) status: String,
    pub(super) used_pct: String,
    pub(super) used: String,
    pub(super) total: String,
}

impl StorageRow {
    /// Everything a node reports about the storage: two rows with the same state read alike.
    fn state(&self) -> (&str, &str, &str, &str, &str, &str) {
        (
            &self.name,
            &self.kind,
            &self.status,
            &self.used_pct,
            &self.used,
            &self.total,
        )
    }
}

#[derive(Serialize)]
pub(super) struct GuestRow {
    pub(super) vmid: u64,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) node: String,
    pub(super) status: String,
    pub(super) lock: String,
    /// The HA manager's state from `/cluster/resources`, `-` for a guest HA does not manage.
    pub(super) ha: String,
    /// The newest backup: its age at the snapshot and its storage, or `none`.
    pub(super) backup: String,
}

/// An age as an admin reads it: minutes, hours up to two days, then days.
pub(super) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 48 * 3600 {
        format!("{} h", s / 3600)
    } else {
        format!("{} d", s / 86400)
    }
}

/// The cluster's nodes by name from `/cluster/resources` (pmxcfs' view, with the offline
/// ones marked), or `None` when it was not read: `pvecm status` names members by ring address.
pub(super) fn members(snap: &Snapshot) -> Option<String> {
    let mut nodes: Vec<(&str, bool)> = snap
        .resources
        .iter()
        .filter(|r| r.kind == "node")
        .filter_map(|r| Some((r.node.as_deref()?, r.status.as_deref() == Some("online"))))
        .collect();
    if nodes.is_empty() {
        return None;
    }
    nodes.sort();
    Some(
        nodes
            .iter()
            .map(|(n, online)| {
                if *online {
                    n.to_string()
                } else {
                    format!("{n} (offline)")
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The storage table: a shared storage (`shared` in `/cluster/resources`) once, for the nodes
/// that agree on its state, then a row for each node that differs; local storages per node.
pub(super) fn storage_rows(snap: &Snapshot) -> Vec<StorageRow> {
    let shared = snap.shared_storages();
    let one = |node: String, s: &crate::facts::pvesm_status::Storage| StorageRow {
        node,
        name: s.name.clone(),
        kind: s.kind.clone(),
        status: s.status.clone(),
        used_pct: s
            .used_pct
            .map(|p| format!("{p:.2} %"))
            .unwrap_or_else(|| "n/a".into()),
        used: crate::units::human_bytes(s.used_bytes),
        total: crate::units::human_bytes(s.total_bytes),
    };
    let mut rows = Vec::new();
    for name in &shared {
        let per_node: Vec<StorageRow> = snap
            .nodes
            .iter()
            .flat_map(|n| {
                n.storages
                    .iter()
                    .filter(|s| s.name == *name)
                    .map(|s| one(n.name.clone(), s))
            })
            .collect();
        // The state most nodes report (the first one seen on a tie) is the storage's row.
        let mut counts: Vec<(&StorageRow, usize)> = Vec::new();
        for r in &per_node {
            match counts.iter_mut().find(|(k, _)| k.state() == r.state()) {
                Some((_, n)) => *n += 1,
                None => counts.push((r, 1)),
            }
        }
        // `max_by_key` keeps the last of equal maxima; reversed, that is the first seen.
        let Some(&(first, agree)) = counts.iter().rev().max_by_key(|(_, n)| *n) else {
            continue;
        };
        let label = if agree == per_node.len() {
            format!("all {agree} nodes (shared)")
        } else {
            format!("{agree} of {} nodes (shared)", per_node.len())
        };
        rows.push(StorageRow {
            node: label,
            ..first.clone()
        });
        rows.extend(
            per_node
                .iter()
                .filter(|r| r.state() != first.state())
                .cloned(),
        );
    }
    let mut local: Vec<StorageRow> = snap
        .nodes
        .iter()
        .flat_map(|n| {
            n.storages
                .iter()
                .filter(|s| !shared.contains(s.name.as_str()))
                .map(|s| one(n.name.clone(), s))
        })
        .collect();
    local.sort_by(|a, b| (&a.name, natural(&a.node)).cmp(&(&b.name, natural(&b.node))));
    rows.extend(fold(
        local,
        |r| r.node.clone(),
        |r, label| r.node = label,
        |a, b| a.state() == b.state(),
    ));
    rows
}

/// A name's sort key with its digit runs as numbers: pve2 before pve10.
pub(super) fn natural(s: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

/// Runs shorter than this stay row by row.
const FOLD_MIN: usize = 3;

/// Folds runs of at least [`FOLD_MIN`] consecutive rows that `joins` pairwise into the run's
/// first row, labelled "first – last (N nodes)": at 50 nodes the identical rows would hide
/// the one that differs.
fn fold<R>(
    rows: Vec<R>,
    name: impl Fn(&R) -> String,
    relabel: impl Fn(&mut R, String),
    joins: impl Fn(&R, &R) -> bool,
) -> Vec<R> {
    let mut out: Vec<R> = Vec::new();
    let mut run: Vec<R> = Vec::new();
    let flush = |run: &mut Vec<R>, out: &mut Vec<R>| {
        if run.len() >= FOLD_MIN {
            let last = name(run.last().unwrap());
            let n = run.len();
            let mut first = run.drain(..).next().unwrap();
            let label = format!("{} – {last} ({n} nodes)", name(&first));
            relabel(&mut first, label);
            out.push(first);
        } else {
            out.append(run);
        }
    };
    for r in rows {
        if run.last().is_some_and(|l| !joins(l, &r)) {
            flush(&mut run, &mut out);
        }
        run.push(r);
    }
    flush(&mut run, &mut out);
    out
}

/// The report's Ceph line, from the snapshot's derived `ceph`.
pub(super) fn ceph_line(snap: &Snapshot) -> String {
    use crate::facts::ceph_status::CephState;
    let Some(c) = &snap.ceph else {
        return String::new();
    };
    match (c.state, &c.health) {
        (CephState::NotConfigured, _) => "not configured (no /etc/pve/ceph.conf)".into(),
        (CephState::Configured, Some(h)) => {
            let mut line = h.status.clone();
            let checks: Vec<&str> = h.checks.iter().map(|k| k.message.as_str()).collect();
            if !checks.is_empty() {
                line.push_str(&format!(" ({})", checks.join("; ")));
            }
            let osds: Vec<String> = c
                .osds
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(n, o)| format!("{n}: {}", o.len()))
                .collect();
            if osds.is_empty() {
                line.push_str("; no OSD on the nodes read");
            } else {
                line.push_str(&format!("; OSDs on {}", osds.join(", ")));
            }
            line
        }
        _ => format!(
            "configured, but no node got its health: {}",
            c.error.as_deref().unwrap_or("no answer")
        ),
    }
}

/// The node table with runs of healthy nodes that agree on everything folded into one row.
pub(super) fn fold_nodes(rows: Vec<NodeRow>) -> Vec<NodeRow> {
    // A row folds only when nothing about it needs reading: reachable, no error, its PVE name
    // its target name; the address is left out of a folded row.
    let foldable = |r: &NodeRow| r.reachable && r.error.is_empty() && r.pve_node == r.name;
    fold(
        rows,
        |r| r.name.clone(),
        |r, label| {
            r.name = label;
            r.address = String::new();
            r.pve_node = "(same)".into();
        },
        |a, b| {
            foldable(a)
                && foldable(b)
                && (&a.manager_version, &a.kernel, &a.services)
                    == (&b.manager_version, &b.kernel, &b.services)
        },
    )
}

#[derive(Serialize)]
pub(super) struct EvidenceRow {
    pub(super) path: String,
    pub(super) command: String,
    pub(super) exit_code: String,
}

pub(super) fn row(f: &Finding) -> FindingRow {
    FindingRow {
        severity: f.severity.word().to_uppercase(),
        check: f.check.clone(),
        node: f.node.clone().unwrap_or_else(|| "(cluster)".into()),
        subject: f.subject.clone().unwrap_or_default(),
        message: f.message.clone(),
        since: String::new(),
    }
}
