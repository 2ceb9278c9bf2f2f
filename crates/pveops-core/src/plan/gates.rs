//! The gates several operations share: quorum, HA health, a node online, the nodes a step
//! runs on reachable, HA maintenance supported, and why a backup listing failed.

use super::{Gate, Step, Verify, gate, lrm_state, node_resource, read_ok, unread, unread_on};
use crate::snapshot::Snapshot;

/// The node names an operation acts on (operands, `--to`) that are not cluster members: the
/// gate refuses before anything else is judged or sent, names the members and suggests the
/// member a wrong case or a typo meant. `None` when every name is a member, or when the
/// snapshot names no members at all.
pub fn membership_gate(op: &super::Operation, snap: &Snapshot) -> Option<Gate> {
    use super::Operation;
    let members = snap.members();
    if members.is_empty() {
        return None;
    }
    let names: Vec<&String> = match op {
        Operation::Migrate { to, .. } => vec![to],
        Operation::Drain { node, to } => std::iter::once(node).chain(to.iter()).collect(),
        Operation::Maintenance { node, .. } => vec![node],
        Operation::Reboot { nodes } | Operation::Update { nodes, .. } => nodes.iter().collect(),
        Operation::Restore { .. } => Vec::new(),
    };
    let strangers: Vec<String> = names
        .into_iter()
        .filter(|n| !members.contains(&super::pve_name(snap, n)))
        .map(|n| match suggestion(n, &members) {
            Some(m) => format!("{n} (did you mean {m}?)"),
            None => n.clone(),
        })
        .collect();
    if strangers.is_empty() {
        return None;
    }
    Some(gate(
        "node-member",
        false,
        format!(
            "{} {} not a member of the cluster; its members are {}",
            strangers.join(", "),
            if strangers.len() == 1 { "is" } else { "are" },
            members.join(", ")
        ),
    ))
}

/// The member `name` most likely meant: the same but for case, else one within two edits.
fn suggestion<'a>(name: &str, members: &'a [String]) -> Option<&'a String> {
    members
        .iter()
        .find(|m| m.eq_ignore_ascii_case(name))
        .or_else(|| {
            members
                .iter()
                .map(|m| {
                    (
                        strsim::levenshtein(&m.to_lowercase(), &name.to_lowercase()),
                        m,
                    )
                })
                .filter(|(d, _)| *d <= 2)
                .min_by_key(|(d, _)| *d)
                .map(|(_, m)| m)
        })
}

/// Ceph where PVE has it configured: a reboot or an update takes OSDs down, which a cluster in
/// `HEALTH_ERR` (or one no node gets an answer from) cannot afford. No gate where there is no
/// Ceph.
pub(super) fn ceph_gate(snap: &Snapshot) -> Option<Gate> {
    use crate::facts::ceph_status::CephState;
    let ceph = snap.ceph.as_ref()?;
    Some(match (ceph.state, &ceph.health) {
        (CephState::NotConfigured, _) => return None,
        (CephState::Configured, Some(h)) if h.status != "HEALTH_ERR" => {
            gate("ceph-health", true, format!("Ceph reports {}", h.status))
        }
        (CephState::Configured, Some(h)) => gate(
            "ceph-health",
            false,
            format!(
                "Ceph reports HEALTH_ERR ({}); bring it back to HEALTH_OK or HEALTH_WARN before taking OSDs down (`ceph health detail`)",
                h.checks
                    .iter()
                    .map(|c| c.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        _ => gate(
            "ceph-health",
            false,
            format!(
                "Ceph is configured (/etc/pve/ceph.conf) but no node got its health ({}); check the monitors with `ceph -s`",
                ceph.error.as_deref().unwrap_or("no answer")
            ),
        ),
    })
}

/// Quorum gates: the cluster is quorate now, and stays quorate without the votes of `without`.
pub(super) fn quorum_gates(snap: &Snapshot, without: Option<&str>) -> Vec<Gate> {
    let mut out = Vec::new();
    let Some(cl) = snap
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .find_map(|n| n.cluster.as_ref())
    else {
        out.push(gate(
            "cluster-quorate",
            false,
            format!(
                "no reachable node reported its quorum: {}",
                unread(snap, "pvecm-status")
            ),
        ));
        return out;
    };
    if cl.state == "no-cluster" {
        out.push(gate(
            "cluster-quorate",
            true,
            "standalone node: no quorum to keep".into(),
        ));
        return out;
    }
    let quorate = snap
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .filter_map(|n| n.cluster.as_ref())
        .all(|c| c.quorate == Some(true));
    let (total, quorum) = (cl.total_votes.unwrap_or(0), cl.quorum.unwrap_or(0));
    // A node whose `pvecm status` failed (pmxcfs or corosync down, FORMATS.md §1) has no vote
    // counts to show: say what it reported instead of "0 votes, quorum 0".
    let failures: Vec<String> = snap
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .filter_map(|n| Some((n, n.cluster.as_ref()?.error.as_ref()?)))
        .map(|(n, e)| format!("{}: {e}", n.pve_node.as_deref().unwrap_or(&n.name)))
        .collect();
    out.push(gate(
        "cluster-quorate",
        quorate,
        if quorate {
            format!("quorate: {total} votes, quorum {quorum}")
        } else if !failures.is_empty() {
            format!(
                "the cluster's quorum cannot be confirmed: {}",
                failures.join("; ")
            )
        } else {
            format!("the cluster is not quorate ({total} votes, quorum {quorum})")
        },
    ));
    if let Some(node) = without {
        let votes = cl
            .members
            .iter()
            .find(|m| {
                m.name == node
                    || snap
                        .node(node)
                        .is_some_and(|n| n.address.starts_with(&format!("{}:", m.name)))
            })
            .map(|m| m.votes)
            .unwrap_or(1);
        let left = total.saturating_sub(votes);
        let ok = left >= quorum;
        out.push(gate(
            "quorum-without-node",
            ok,
            if ok {
                format!("without {node}'s {votes} vote(s) the cluster keeps {left} votes, quorum {quorum}")
            } else {
                format!("without {node}'s {votes} vote(s) the cluster would have {left} votes, below quorum {quorum}: with HA armed the survivors would self-fence")
            },
        ));
    }
    out
}

pub(super) fn ha_gate(snap: &Snapshot) -> Gate {
    if !snap
        .nodes
        .iter()
        .any(|n| n.ha.is_some() && read_ok(n, "ha-manager-status"))
    {
        return gate(
            "ha-healthy",
            false,
            format!(
                "no reachable node reported the HA state: {}",
                unread(snap, "ha-manager-status")
            ),
        );
    }
    let bad: Vec<String> = snap
        .nodes
        .iter()
        .filter_map(|n| n.ha.as_ref())
        .flat_map(|h| h.services.iter())
        .filter(|s| s.state == "error" || s.state == "fence")
        .map(|s| format!("{} ({})", s.sid, s.state))
        .collect();
    if bad.is_empty() {
        gate("ha-healthy", true, "no HA service in error or fence".into())
    } else {
        gate(
            "ha-healthy",
            false,
            format!("HA services in error or fence: {}", bad.join(", ")),
        )
    }
}

pub(super) fn node_gate(snap: &Snapshot, node: &str, role: &str) -> Gate {
    let online = node_resource(snap, node).is_some_and(|r| r.status.as_deref() == Some("online"));
    let maint = lrm_state(snap, node).is_some_and(|s| s.contains("maintenance"));
    let name = format!("{role}-online");
    match (online, maint) {
        (false, _) => gate(&name, false, format!("node {node} is not online")),
        (true, true) => gate(
            &name,
            false,
            format!("node {node} is in HA maintenance mode"),
        ),
        _ => gate(&name, true, format!("node {node} is online")),
    }
}

/// The gates that go first, because every other gate and step stands on them: the cluster state
/// (`/cluster/resources`) was read; every node a step runs its command on answered the
/// before-snapshot; every node to reboot reported its boot id. Without them an unreachable
/// source node failed step 1 instead of refusing, a rolling reboot drained guests onto a node
/// it could not reach to bring them back from, and a reboot with an unknown boot id could not
/// be verified (found by the fault suite, tests/faults.rs).
pub(super) fn reach_gates(snap: &Snapshot, steps: &[Step]) -> Vec<Gate> {
    let mut out = Vec::new();
    if !snap.resources.iter().any(|r| r.kind == "node") {
        out.push(gate(
            "cluster-state",
            false,
            format!(
                "the cluster state (/cluster/resources) could not be read: {}",
                unread(snap, "cluster-resources")
            ),
        ));
    }
    let answered = |node: &str| {
        snap.nodes
            .iter()
            .any(|n| n.reachable && (n.pve_node.as_deref() == Some(node) || n.name == node))
    };
    let mut seen: Vec<&str> = Vec::new();
    for st in steps.iter().filter(|s| s.command.is_some()) {
        let unknown_boot_id =
            matches!(&st.verify, Some(Verify::NodeBack { boot_id, .. }) if boot_id.is_empty());
        if unknown_boot_id && answered(&st.on) {
            out.push(gate(
                "boot-id-known",
                false,
                format!(
                    "the boot id of {} could not be read, so its reboot could not be verified: {}",
                    st.on,
                    unread_on(snap, Some(&st.on), "boot-id")
                ),
            ));
        }
        if seen.contains(&st.on.as_str()) {
            continue;
        }
        seen.push(&st.on);
        if !answered(&st.on) {
            let why = snap
                .nodes
                .iter()
                .find(|n| n.name == st.on)
                .and_then(|n| n.error.clone())
                .unwrap_or_else(|| format!("no target reaches node {}", st.on));
            out.push(gate(
                "node-reachable",
                false,
                format!(
                    "step {} runs on {}, which did not answer: {why}",
                    st.seq, st.on
                ),
            ));
        }
    }
    if !seen.is_empty() && out.iter().all(|g| g.name != "node-reachable") {
        out.push(gate(
            "node-reachable",
            true,
            "every node a step runs on answered".into(),
        ));
    }
    out
}

/// A backup listing that failed is not "no backup": the gate's message says so.
pub(super) fn listing_failed(snap: &Snapshot) -> String {
    let failed = snap
        .nodes
        .iter()
        .any(|n| !read_ok(n, "storage-content") && n.reachable);
    if failed {
        format!(
            "; the backup listing could not be read: {}",
            unread(snap, "storage-content")
        )
    } else {
        String::new()
    }
}

pub(super) fn version_gate(snap: &Snapshot, node: &str) -> Gate {
    let v = snap
        .node(node)
        .or_else(|| {
            snap.nodes
                .iter()
                .find(|n| n.pve_node.as_deref() == Some(node))
        })
        .and_then(|n| n.version.as_ref())
        .and_then(|v| v.manager_version.clone());
    // pve-manager 7.3 brought `ha-manager crm-command node-maintenance`.
    let ok = v
        .as_deref()
        .is_some_and(|v| crate::facts::version_cmp(v, "7.3") != std::cmp::Ordering::Less);
    gate(
        "ha-maintenance-supported",
        ok,
        match v {
            Some(v) if ok => format!("pve-manager {v} has HA node maintenance (>= 7.3)"),
            Some(v) => {
                format!("pve-manager {v} on {node} has no HA node maintenance (needs >= 7.3)")
            }
            None => format!(
                "the pve-manager version of {node} is unknown: {}",
                unread_on(snap, Some(node), "pveversion-v")
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::pvecm_status::ClusterHealth;
    use crate::snapshot::NodeSnapshot;

    fn node(name: &str, cluster: ClusterHealth) -> NodeSnapshot {
        NodeSnapshot {
            name: name.into(),
            reachable: true,
            pve_node: Some(name.into()),
            cluster: Some(cluster),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_pvecm_status_is_named_in_the_quorum_gate() {
        let quorate = ClusterHealth {
            state: "quorate".into(),
            quorate: Some(true),
            total_votes: Some(3),
            quorum: Some(2),
            ..Default::default()
        };
        let down = ClusterHealth {
            state: "pmxcfs-down".into(),
            error: Some("the cluster filesystem (pmxcfs) is not running".into()),
            ..Default::default()
        };
        let mut snap = Snapshot {
            format: crate::snapshot::FORMAT,
            taken_at: "2026-11-27T09:00:00Z".into(),
            status: crate::finding::Severity::Ok,
            pveops_version: String::new(),
            nodes: vec![node("pve1", quorate), node("pve2", down)],
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        };
        let g = &quorum_gates(&snap, None)[0];
        assert!(!g.passed);
        assert_eq!(
            g.message,
            "the cluster's quorum cannot be confirmed: pve2: the cluster filesystem (pmxcfs) is not running"
        );
        snap.nodes.truncate(1);
        let g = &quorum_gates(&snap, None)[0];
        assert!(g.passed, "{}", g.message);
        assert_eq!(g.message, "quorate: 3 votes, quorum 2");
    }
}
