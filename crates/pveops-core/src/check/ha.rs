//! HA checks: the HA manager's quorum, its services, node maintenance, the CRM and LRMs.

use super::{Check, finding, reachable, target_of};
use crate::finding::Finding;
use crate::snapshot::Snapshot;

pub(super) fn ha_quorum(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        if n.ha.as_ref().is_some_and(|h| !h.quorum_ok) {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                None,
                format!("the HA manager on {} has no quorum", n.name),
            ));
        }
    }
    out
}

pub(super) fn ha_services_healthy(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    let bad: Vec<String> = if p.bad_states.is_empty() {
        ["error", "fence", "recovery", "freeze"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        p.bad_states.clone()
    };
    let mut seen = std::collections::BTreeSet::new();
    for n in reachable(snap) {
        let Some(ha) = &n.ha else { continue };
        for s in ha.services.iter().filter(|s| bad.contains(&s.state)) {
            if seen.insert(s.sid.clone()) {
                let vmid = s.sid.split_once(':').map(|(_, id)| id.to_string());
                out.push(finding(
                    c,
                    sev,
                    target_of(snap, Some(&s.node)).as_deref(),
                    vmid,
                    format!("HA service {} on {} is in state {}", s.sid, s.node, s.state),
                ));
            }
        }
    }
    out
}

pub(super) fn ha_node_maintenance(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for n in reachable(snap) {
        let Some(ha) = &n.ha else { continue };
        for l in ha.lrms.iter().filter(|l| l.state == "maintenance mode") {
            if !seen.insert(l.node.clone()) {
                continue;
            }
            let node = target_of(snap, Some(&l.node));
            out.push(finding(
                c,
                sev,
                node.as_deref(),
                Some("ha-maintenance".into()),
                format!(
                    "node {} is in HA maintenance mode: HA keeps its guests elsewhere; `pveops maintenance exit {}` (ha-manager crm-command node-maintenance disable {}) ends it",
                    l.node,
                    node.as_deref().unwrap_or(&l.node),
                    l.node
                ),
            ));
        }
    }
    out
}

pub(super) fn ha_managers_healthy(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    // pve-ha-manager `src/PVE/HA/Tools.pm`/`ha-manager status`: an LRM is `active`,
    // `idle` (no service) or in `maintenance mode` (its own check); the master CRM is
    // `active` or `idle`. Anything else (`old timestamp - dead?`, `wait_for_agent_lock`,
    // `lost_agent_lock`) means a manager stopped doing its job.
    let mut seen = std::collections::BTreeSet::new();
    for n in reachable(snap) {
        let Some(ha) = &n.ha else { continue };
        if let Some(m) = &ha.master
            && !matches!(m.state.as_str(), "active" | "idle")
            && seen.insert(format!("crm {}", m.node))
        {
            let node = target_of(snap, Some(&m.node));
            out.push(finding(
                c,
                sev,
                node.as_deref(),
                Some("pve-ha-crm".into()),
                format!(
                    "the HA master (CRM) on {} is `{}`: `systemctl status pve-ha-crm` on {} shows why, `systemctl restart pve-ha-crm` restarts it",
                    m.node, m.state, m.node
                ),
            ));
        }
        for l in &ha.lrms {
            if matches!(l.state.as_str(), "active" | "idle" | "maintenance mode")
                || !seen.insert(format!("lrm {}", l.node))
            {
                continue;
            }
            let node = target_of(snap, Some(&l.node));
            out.push(finding(
                c,
                sev,
                node.as_deref(),
                Some("pve-ha-lrm".into()),
                format!(
                    "the HA local resource manager (LRM) on {} is `{}`: `systemctl status pve-ha-lrm` on {} shows why, `systemctl restart pve-ha-lrm` restarts it",
                    l.node, l.state, l.node
                ),
            ));
        }
    }
    out
}
