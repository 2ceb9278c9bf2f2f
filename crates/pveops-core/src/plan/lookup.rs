//! What a plan reads of the before-snapshot, shared by every operation's planning: a node's
//! resources and free memory, the guests, each guest's home, the locks, the LRM's state, and
//! why a fact the plan needs was not read (so a gate refuses instead of judging nothing).

use std::collections::BTreeMap;

use super::{Affected, Gate, Home, targets};
use crate::facts::pvesh::Resource;
use crate::snapshot::Snapshot;

pub(super) fn gate(name: &str, passed: bool, message: String) -> Gate {
    Gate {
        name: name.into(),
        passed,
        message,
    }
}

/// Why no answering node gave the fact of `template`: every node that did not answer, and every
/// run of the command that failed, timed out or printed what its parser could not read, each as
/// `node: cause`. A gate that lacks its fact refuses with this instead of judging an empty state
/// (which passed the HA gate, called an online node "not online", or a listed backup missing).
pub(super) fn unread(snap: &Snapshot, template: &str) -> String {
    unread_on(snap, None, template)
}

/// `unread` over one node (`Some(name)`) or all.
pub(super) fn unread_on(snap: &Snapshot, only: Option<&str>, template: &str) -> String {
    let mut why = Vec::new();
    for n in snap
        .nodes
        .iter()
        .filter(|n| only.is_none_or(|o| n.name == o || n.pve_node.as_deref() == Some(o)))
    {
        if !n.reachable {
            why.push(
                n.error
                    .clone()
                    .unwrap_or_else(|| format!("{} did not answer", n.name)),
            );
            continue;
        }
        for c in n.commands.iter().filter(|c| c.name == template) {
            if let Some(e) = &c.error {
                why.push(format!("`{}` on {}: {e}", c.command, n.name));
            } else if c.exit_code != Some(0) {
                // The failure, not what its (empty) output then failed to parse as.
                why.push(format!(
                    "`{}` on {} {}",
                    c.command,
                    n.name,
                    crate::output::exited(c.exit_code)
                ));
            } else if let Some(e) = &c.parse_error {
                why.push(format!(
                    "the output of `{}` on {} could not be read: {e}",
                    c.command, n.name
                ));
            }
        }
    }
    if why.is_empty() {
        format!("no answering node gave it ({template})")
    } else {
        why.join("; ")
    }
}

/// Whether no run of `template` on an answering node failed, timed out or was unreadable.
pub(super) fn read_ok(n: &crate::snapshot::NodeSnapshot, template: &str) -> bool {
    n.reachable
        && !n.commands.iter().any(|c| {
            c.name == template
                && (c.error.is_some() || c.parse_error.is_some() || c.exit_code != Some(0))
        })
}

pub(super) fn guests(snap: &Snapshot) -> Vec<&Resource> {
    snap.resources
        .iter()
        .filter(|r| r.is_guest() && r.template != Some(true))
        .collect()
}

pub(super) fn node_resource<'a>(snap: &'a Snapshot, node: &str) -> Option<&'a Resource> {
    snap.resources
        .iter()
        .find(|r| r.kind == "node" && r.node.as_deref() == Some(node))
}

/// Free memory of a node, in bytes, from `/cluster/resources`.
pub(super) fn free_memory(snap: &Snapshot, node: &str) -> u64 {
    free_in(&snap.resources, node)
}

pub(super) fn free_in(resources: &[Resource], node: &str) -> u64 {
    resources
        .iter()
        .find(|r| r.kind == "node" && r.node.as_deref() == Some(node))
        .map(|r| {
            r.maxmem_bytes
                .unwrap_or(0)
                .saturating_sub(r.mem_bytes.unwrap_or(0))
        })
        .unwrap_or(0)
}

/// Per target node, its free memory and what the running guests of `moves` (VMID, target)
/// need there, from `/cluster/resources`: a guest's configured memory (`maxmem`), which a live
/// migration allocates on the target while the guest still runs on its source. Moves started
/// at once need their sum at once: the plan's `memory` gate judges every move of the plan, and
/// each wave is judged again on the live state before it starts.
pub fn memory_needed(
    resources: &[Resource],
    moves: &[(u64, String)],
) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (vmid, to) in moves {
        let Some(g) = resources
            .iter()
            .find(|r| r.vmid == Some(*vmid) && r.is_guest())
        else {
            continue;
        };
        if g.status.as_deref() != Some("running") {
            continue;
        }
        let e = out
            .entry(to.clone())
            .or_insert_with(|| (free_in(resources, to), 0));
        e.1 += g.maxmem_bytes.unwrap_or(0);
    }
    out
}

/// The home of every guest the plan touches, from the before-snapshot.
pub(super) fn homes(snap: &Snapshot, affected: &[Affected]) -> Vec<Home> {
    let mut out: Vec<Home> = Vec::new();
    for a in affected {
        if out.iter().any(|h| h.vmid == a.vmid) {
            continue;
        }
        let g = guests(snap).into_iter().find(|g| g.vmid == Some(a.vmid));
        out.push(Home {
            vmid: a.vmid,
            node: g
                .and_then(|g| g.node.clone())
                .unwrap_or_else(|| a.node.clone()),
            status: g
                .and_then(|g| g.status.clone())
                .unwrap_or_else(|| a.status.clone()),
            ha: g.and_then(|g| g.hastate.clone()),
        });
    }
    out
}

/// The guests the plan moves that are locked; `None` when it moves none.
pub(super) fn lock_gate(snap: &Snapshot, affected: &[Affected]) -> Option<Gate> {
    if affected.is_empty() {
        return None;
    }
    let locked: Vec<String> = affected
        .iter()
        .filter(|a| a.target.as_deref() != Some(a.node.as_str()))
        .filter_map(|a| {
            let r = guests(snap).into_iter().find(|g| g.vmid == Some(a.vmid))?;
            let lock = r.lock.as_deref()?;
            Some(targets::locked_sentence(a.vmid, r, lock))
        })
        .collect();
    Some(if locked.is_empty() {
        gate(
            "guests-unlocked",
            true,
            format!("none of the {} guest(s) to move is locked", affected.len()),
        )
    } else {
        gate("guests-unlocked", false, locked.join("; "))
    })
}

/// The PVE node name of a target name (or the name itself).
pub fn pve_name(snap: &Snapshot, name: &str) -> String {
    snap.node(name)
        .and_then(|n| n.pve_node.clone())
        .unwrap_or_else(|| name.to_string())
}

pub(super) fn lrm_state(snap: &Snapshot, node: &str) -> Option<String> {
    snap.nodes
        .iter()
        .filter_map(|n| n.ha.as_ref())
        .flat_map(|h| h.lrms.iter())
        .find(|l| l.node == node)
        .map(|l| l.state.clone())
}
