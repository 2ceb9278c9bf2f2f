//! Planning a node drain: every running guest off the node, HA guests through node
//! maintenance, the others by free memory.

use std::collections::BTreeMap;

use super::gates::{ha_gate, node_gate, quorum_gates};
use super::migrate::{add_ha_maintenance, add_moves};
use super::targets::sid;
use super::{
    Options, Plan, Prechecks, free_memory, gate, guests, lrm_state, node_resource, noop, pve_name,
};
use crate::command::Templates;
use crate::facts::pvesh::Resource;
use crate::snapshot::Snapshot;

/// The gates and steps that move every running guest off `node`.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_drain(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    to: &[String],
    avoid: &[String],
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let node = pve_name(snap, node);
    let first_step = p.steps.len();
    p.gates.extend(quorum_gates(snap, Some(&node)));
    p.gates.push(ha_gate(snap));
    let targets: Vec<String> = if to.is_empty() {
        snap.resources
            .iter()
            .filter(|r| r.kind == "node" && r.node.as_deref() != Some(node.as_str()))
            .filter_map(|r| r.node.clone())
            .collect()
    } else {
        to.iter().map(|t| pve_name(snap, t)).collect()
    };
    for t in &targets {
        if !to.is_empty() {
            p.gates.push(node_gate(snap, t, "target"));
        }
    }
    let usable: Vec<String> = targets
        .iter()
        .filter(|t| {
            node_resource(snap, t).is_some_and(|r| r.status.as_deref() == Some("online"))
                && !lrm_state(snap, t).is_some_and(|s| s.contains("maintenance"))
        })
        .cloned()
        .collect();
    if usable.is_empty() {
        p.gates.push(gate(
            "targets-available",
            false,
            format!("no online node outside maintenance can take {node}'s guests"),
        ));
        return Ok(());
    }
    let on_node: Vec<&Resource> = guests(snap)
        .into_iter()
        .filter(|g| g.node.as_deref() == Some(node.as_str()) && g.template != Some(true))
        .collect();
    let (running, stopped): (Vec<&Resource>, Vec<&Resource>) = on_node
        .into_iter()
        .partition(|g| g.status.as_deref() == Some("running"));
    // A drain empties the node of what runs; stopped guests stay unless asked (a node about
    // to be reinstalled must lose them too). Either way the runbook says so.
    if !stopped.is_empty() {
        let ids: Vec<String> = stopped
            .iter()
            .map(|g| g.vmid.unwrap_or(0).to_string())
            .collect();
        p.gates.push(gate(
            "stopped-guests",
            true,
            if o.choices.include_stopped {
                format!(
                    "the stopped guests of {node} move too (offline, --include-stopped): {}",
                    ids.join(", ")
                )
            } else {
                format!(
                    "the stopped guests of {node} stay there: {} (--include-stopped moves them too, e.g. before a reinstall)",
                    ids.join(", ")
                )
            },
        ));
    }
    let running: Vec<&Resource> = if o.choices.include_stopped {
        running.into_iter().chain(stopped).collect()
    } else {
        running
    };
    // HA guests go through node maintenance (HA picks targets, and brings them back on
    // exit), the others by free memory, biggest guest first.
    let (ha, plain): (Vec<&Resource>, Vec<&Resource>) = running
        .into_iter()
        .partition(|g| o.choices.ha_maintenance && g.hastate.is_some());
    let mut free: BTreeMap<String, u64> = usable
        .iter()
        .map(|t| (t.clone(), free_memory(snap, t)))
        .collect();
    let mut plain = plain;
    plain.sort_by_key(|g| std::cmp::Reverse(g.maxmem_bytes.unwrap_or(0)));
    let mut moves = Vec::new();
    let mut twice: Vec<String> = Vec::new();
    let mut placed: BTreeMap<String, String> = BTreeMap::new();
    for g in plain {
        // A stopped guest takes no memory where it lands until it is started.
        let need = if g.status.as_deref() == Some("running") {
            g.maxmem_bytes.unwrap_or(0)
        } else {
            0
        };
        let refusals: Vec<(String, String)> = free
            .keys()
            .filter_map(|t| pre.refusal(snap, g, t, &placed).map(|w| (t.clone(), w)))
            .collect();
        // A node later in the same rollout is taken only when no other fits: a guest parked
        // there would have to move again when that node's turn comes. When none fits, the
        // roomiest is named and the memory gate judges it, as before.
        let open: Vec<(&String, u64)> = free
            .iter()
            .filter(|(t, _)| !refusals.iter().any(|(r, _)| r == *t))
            .map(|(t, f)| (t, *f))
            .collect();
        let roomiest = |later: Option<bool>| {
            open.iter()
                .filter(|(t, f)| later.is_none_or(|l| avoid.contains(t) == l && *f >= need))
                .max_by_key(|(_, f)| *f)
                .map(|(t, f)| ((*t).clone(), *f))
        };
        let best = roomiest(Some(false))
            .or_else(|| roomiest(Some(true)))
            .or_else(|| roomiest(None));
        if let Some((t, _)) = &best
            && avoid.contains(t)
        {
            twice.push(format!("guest {} to {t}", g.vmid.unwrap_or(0)));
        }
        match best {
            Some((t, f)) => {
                free.insert(t.clone(), f.saturating_sub(need));
                placed.insert(sid(g), t.clone());
                moves.push((g, t));
            }
            None => {
                let why: Vec<String> = refusals.iter().map(|(_, w)| w.clone()).collect();
                p.gates.push(gate(
                    "migrate-preflight",
                    false,
                    format!(
                        "guest {} has no node it may move to: {}",
                        g.vmid.unwrap_or(0),
                        why.join("; ")
                    ),
                ))
            }
        }
    }
    if !avoid.is_empty() {
        p.gates.push(gate(
            "moves-once",
            true,
            if twice.is_empty() {
                format!("{node}'s guests go to nodes outside the rest of the rollout")
            } else {
                format!(
                    "no other node fits, so these go to a node later in the rollout and will move again there: {}",
                    twice.join(", ")
                )
            },
        ));
    }
    add_moves(p, snap, &moves, pre, templates, o)?;
    if !ha.is_empty() {
        add_ha_maintenance(p, snap, &node, &ha, templates, o)?;
    }
    if p.steps.len() == first_step {
        let seq = p.steps.len() as u32 + 1;
        p.steps.push(noop(
            seq,
            &node,
            format!("no running guest on {node}: nothing to drain"),
        ));
    }
    p.success_criteria.push(if o.choices.include_stopped {
        format!("no guest is left on {node}")
    } else {
        format!("no running guest is left on {node}")
    });
    Ok(())
}
