//! Planning moves of guests: migrations with their preflight and memory gates, and HA node
//! maintenance that lets HA move a node's HA guests.

use std::collections::BTreeMap;

use serde_json::json;

use super::gates::version_gate;
use super::targets::sid;
use super::{
    Action, Affected, Options, Plan, Prechecks, Preflight, Step, Verify, any_other, gate,
    maintenance_step, memory_needed, noop,
};
use crate::command::Templates;
use crate::facts::pvesh::Resource;
use crate::snapshot::Snapshot;

fn newest_backup_hours(snap: &Snapshot, vmid: u64, now: i64) -> Option<f64> {
    snap.newest_backup(vmid)
        .map(|b| (now - b.epoch) as f64 / 3600.0)
}

pub(super) fn add_moves(
    p: &mut Plan,
    snap: &Snapshot,
    moves: &[(&Resource, String)],
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    // Targets chosen so far, by HA id: a negative-affinity partner moved onto a node blocks it.
    let mut placed: BTreeMap<String, String> = BTreeMap::new();
    for (g, to) in moves {
        let vmid = g.vmid.unwrap_or(0);
        let from = g.node.clone().unwrap_or_default();
        let running = g.status.as_deref() == Some("running");
        let kind = g.kind.clone();
        p.affected.push(Affected {
            vmid,
            kind: if kind == "qemu" {
                "VM".into()
            } else {
                "CT".into()
            },
            name: g.name.clone().unwrap_or_default(),
            node: from.clone(),
            status: g.status.clone().unwrap_or_default(),
            ha: g.hastate.is_some(),
            target: Some(to.clone()),
            backup_age_hours: newest_backup_hours(snap, vmid, o.now),
        });
        let seq = p.steps.len() as u32 + 1;
        if &from == to {
            p.steps
                .push(noop(seq, &from, format!("guest {vmid} is on {to} already")));
            continue;
        }
        if let Some(why) = pre.refusal(snap, g, to, &placed) {
            p.gates.push(gate("migrate-preflight", false, why));
        } else if let Some(Preflight::Read(pf)) = pre.preflight.get(&vmid) {
            let disks: Vec<&str> = pf
                .local_disks
                .iter()
                .filter(|d| !d.cdrom && !d.is_unused)
                .map(|d| d.volid.as_str())
                .collect();
            if !disks.is_empty() && !o.choices.with_local_disks && kind == "qemu" && running {
                // Only a live migration needs --with-local-disks; offline, PVE copies them.
                p.gates.push(gate(
                    "migrate-preflight",
                    false,
                    format!(
                        "guest {vmid} has local disks ({}); pass --with-local-disks",
                        disks.join(", ")
                    ),
                ));
            } else if !pf.local_resources.is_empty() {
                p.gates.push(gate(
                    "migrate-preflight",
                    false,
                    format!(
                        "guest {vmid} uses local resources ({})",
                        pf.local_resources.join(", ")
                    ),
                ));
            } else {
                p.gates.push(gate(
                    "migrate-preflight",
                    true,
                    format!("guest {vmid} may move to {to}"),
                ));
            }
        }
        placed.insert(sid(g), to.clone());
        let tool = if kind == "qemu" {
            "qm-migrate"
        } else {
            "pct-migrate"
        };
        let data = json!({"vmid": vmid, "target": to, "online": running, "restart": running, "with_local_disks": o.choices.with_local_disks});
        let back = json!({"vmid": vmid, "target": from, "online": running, "restart": running, "with_local_disks": o.choices.with_local_disks});
        p.steps.push(Step {
            seq,
            title: format!(
                "migrate {} {vmid} ({}) from {from} to {to}",
                if kind == "qemu" { "VM" } else { "CT" },
                g.name.clone().unwrap_or_default()
            ),
            on: from.clone(),
            command: Some(templates.render(tool, &data)?),
            detached: true,
            verify: Some(Verify::GuestOn {
                vmid,
                node: to.clone(),
                status: g.status.clone().unwrap_or_default(),
            }),
            timeout: o.choices.migrate_timeout,
            timeout_secs: o.choices.migrate_timeout.as_secs(),
            undo: Some(templates.render(tool, &back)?),
            noop: None,
            only_if: None,
            detail: Action::Migrate {
                vmid,
                from: from.clone(),
                to: to.clone(),
                ha: Some(g.hastate.is_some()),
            },
        });
        p.success_criteria
            .push(format!("guest {vmid} runs on {to}, unlocked"));
    }
    let moved: Vec<(u64, String)> = moves
        .iter()
        .filter(|(g, to)| g.node.as_deref() != Some(to.as_str()))
        .filter_map(|(g, to)| Some((g.vmid?, to.clone())))
        .collect();
    for (t, (free, bytes)) in memory_needed(&snap.resources, &moved) {
        let ok = free >= bytes;
        p.gates.push(gate(
            "memory",
            ok,
            format!(
                "{t} has {} free for {} of guests",
                crate::units::human_bytes(free),
                crate::units::human_bytes(bytes)
            ),
        ));
    }
    Ok(())
}

pub(super) fn add_ha_maintenance(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    ha: &[&Resource],
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    p.gates.push(version_gate(snap, node));
    for g in ha {
        let vmid = g.vmid.unwrap_or(0);
        p.affected.push(Affected {
            vmid,
            kind: if g.kind == "qemu" {
                "VM".into()
            } else {
                "CT".into()
            },
            name: g.name.clone().unwrap_or_default(),
            node: node.into(),
            status: g.status.clone().unwrap_or_default(),
            ha: true,
            target: None,
            backup_age_hours: newest_backup_hours(snap, vmid, o.now),
        });
    }
    let seq = p.steps.len() as u32 + 1;
    let title = format!(
        "enter HA maintenance on {node} (HA moves its {} HA guest(s) away)",
        ha.len()
    );
    p.steps.push(maintenance_step(
        seq,
        title,
        any_other(snap, node),
        node,
        true,
        true,
        templates,
        o,
    )?);
    p.success_criteria.push(format!(
        "the HA LRM of {node} is in maintenance mode and no HA guest is left on it"
    ));
    Ok(())
}
