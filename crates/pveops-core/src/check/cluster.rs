//! Cluster and node-level checks: reachability, quorum, membership, versions, a pending reboot.

use crate::finding::Finding;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;

use super::{Check, finding, reachable};

pub(super) fn node_reachable(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in snap.nodes.iter().filter(|n| !n.reachable) {
        let why = n.error.clone().unwrap_or_else(|| "no answer".into());
        out.push(finding(
            c,
            sev,
            Some(&n.name),
            None,
            format!("node {} is unreachable: {why}", n.name),
        ));
    }
    out
}

pub(super) fn cluster_quorate(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(cl) = &n.cluster else { continue };
        if cl.quorate == Some(false) {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                None,
                format!(
                    "node {} is not quorate: {} of {} expected votes, quorum is {}",
                    n.name,
                    cl.total_votes.unwrap_or(0),
                    cl.expected_votes.unwrap_or(0),
                    cl.quorum.unwrap_or(0)
                ),
            ));
        } else if cl.state == "corosync-down" {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some("corosync".into()),
                format!(
                    "node {}: corosync is not running, so its quorum is unknown",
                    n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn cluster_members_online(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    let offline: Vec<String> = snap
        .resources
        .iter()
        .filter(|r| r.kind == "node" && r.status.as_deref() != Some("online"))
        .filter_map(|r| r.node.clone())
        .collect();
    for name in offline {
        out.push(finding(
            c,
            sev,
            None,
            Some(name.clone()),
            format!("cluster member {name} is not online"),
        ));
    }
    if snap.resources.is_empty() {
        for n in reachable(snap) {
            let Some(cl) = &n.cluster else { continue };
            if let (Some(t), Some(e)) = (cl.total_votes, cl.expected_votes)
                && t < e
            {
                out.push(finding(
                    c,
                    sev,
                    Some(&n.name),
                    None,
                    format!(
                        "node {} sees {t} of {e} expected votes: a cluster member is missing",
                        n.name
                    ),
                ));
            }
        }
    }
    out
}

pub(super) fn versions_consistent(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    let mut pkgs = vec!["pve-manager".to_string()];
    pkgs.extend(p.packages.iter().cloned());
    for pkg in pkgs {
        let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in reachable(snap) {
            let Some(v) = &n.version else { continue };
            let ver = if pkg == "pve-manager" {
                v.manager_version.clone()
            } else {
                v.packages.get(&pkg).cloned().flatten()
            };
            if let Some(ver) = ver {
                by_version.entry(ver).or_default().push(n.name.clone());
            }
        }
        if by_version.len() > 1 {
            let list: Vec<String> = by_version
                .iter()
                .map(|(v, ns)| format!("{v} on {}", ns.join(", ")))
                .collect();
            out.push(finding(
                c,
                sev,
                None,
                Some(pkg.clone()),
                format!(
                    "{pkg} versions differ across the cluster: {}",
                    list.join("; ")
                ),
            ));
        }
    }
    out
}

pub(super) fn reboot_not_pending(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(v) = &n.version else { continue };
        if let (Some(running), Some(newest)) = (&v.running_kernel, &v.newest_kernel)
            && !running.starts_with(newest.as_str())
            && !newest.starts_with(running.as_str())
        {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some("kernel".into()),
                format!(
                    "node {} runs kernel {running} but {newest} is installed: a reboot is pending",
                    n.name
                ),
            ));
        }
    }
    out
}
