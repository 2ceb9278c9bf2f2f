//! Planning a rolling reboot: per node drain, reboot (Ceph noout around it), wait until it
//! is back, move its guests back.

use std::time::Duration;

use serde_json::json;

use super::drain::add_drain;
use super::{Action, Condition, Options, Plan, Prechecks, Step, Verify, pve_name};
use crate::command::Templates;
use crate::snapshot::Snapshot;

/// Drain `node`, reboot it, wait until it is back, move its guests back.
/// `later`: the nodes after this one in the rollout, which its guests avoid.
pub(super) fn add_reboot(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    later: &[String],
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let node = pve_name(snap, node);
    add_cycle(p, snap, &node, later, None, None, pre, templates, o)?;
    p.success_criteria.push(format!(
        "{node} rebooted (new boot id), quorate, services active, its guests back"
    ));
    Ok(())
}

/// Drain `node`, run `work` there (an upgrade), reboot it (only when `reboot_if` holds then,
/// if given), wait until it is back, move its guests back.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_cycle(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    later: &[String],
    work: Option<Step>,
    reboot_if: Option<Condition>,
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let node = node.to_string();
    let boot_id = snap
        .node(&node)
        .and_then(|n| n.boot_id.clone())
        .unwrap_or_default();
    let first = p.steps.len();
    add_drain(p, snap, &node, &[], later, pre, templates, o)?;
    let drained: Vec<Step> = p.steps[first..]
        .iter()
        .filter(|s| s.command.is_some())
        .cloned()
        .collect();
    if let Some(mut w) = work {
        w.seq = p.steps.len() as u32 + 1;
        p.steps.push(w);
    }
    // Where this node hosts OSDs of the cluster's own Ceph, keep Ceph from marking them out
    // and rebalancing while the node is down (`ceph osd set noout`); the HEALTH_WARN this
    // raises is expected (PRODUCT.md "Operations"). Not where PVE has no Ceph configured, nor
    // for an external cluster (RBD/CephFS with `monhost`): it hosts no OSD here.
    let ceph = snap.ceph.as_ref().is_some_and(|c| c.noout_wanted(&node));
    if ceph {
        let seq = p.steps.len() as u32 + 1;
        p.steps.push(Step {
            seq,
            title: format!("set the Ceph noout flag while {node}'s OSDs are down"),
            on: node.clone(),
            command: Some(templates.render("ceph-noout", &json!({"action": "set"}))?),
            detached: false,
            verify: Some(Verify::CephNoout {
                node: node.clone(),
                set: true,
            }),
            timeout: Duration::from_secs(60),
            timeout_secs: 60,
            undo: Some(templates.render("ceph-noout", &json!({"action": "unset"}))?),
            noop: None,
            only_if: reboot_if.clone(),
            detail: Action::CephNoout {
                node: node.clone(),
                set: true,
            },
        });
    }
    let seq = p.steps.len() as u32 + 1;
    p.steps.push(Step {
        seq,
        title: format!(
            "reboot {node} and wait until it is back (new boot id, SSH, quorate, services active)"
        ),
        on: node.clone(),
        command: Some(templates.render("reboot", &json!({}))?),
        detached: true,
        verify: Some(Verify::NodeBack {
            node: node.clone(),
            boot_id,
        }),
        timeout: o.choices.reboot_timeout,
        timeout_secs: o.choices.reboot_timeout.as_secs(),
        undo: None,
        noop: None,
        only_if: reboot_if.clone(),
        detail: Action::Reboot { node: node.clone() },
    });
    if ceph {
        let seq = p.steps.len() as u32 + 1;
        p.steps.push(Step {
            seq,
            title: format!(
                "unset the Ceph noout flag and wait until {node}'s OSDs are back (no OSD down, no PG degraded)"
            ),
            on: node.clone(),
            command: Some(templates.render("ceph-noout", &json!({"action": "unset"}))?),
            detached: false,
            verify: Some(Verify::CephNoout {
                node: node.clone(),
                set: false,
            }),
            timeout: o.choices.reboot_timeout,
            timeout_secs: o.choices.reboot_timeout.as_secs(),
            undo: None,
            noop: None,
            only_if: reboot_if.clone(),
            detail: Action::CephNoout {
                node: node.clone(),
                set: false,
            },
        });
    }
    for s in drained.iter().rev() {
        let seq = p.steps.len() as u32 + 1;
        let back = match &s.detail {
            Action::Migrate { vmid, from, to, .. } => {
                let vmid = *vmid;
                let Some(undo) = s.undo.clone() else { continue };
                let status = match &s.verify {
                    Some(Verify::GuestOn { status, .. }) => status.clone(),
                    _ => "running".into(),
                };
                Step {
                    seq,
                    title: format!("move guest {vmid} back from {to} to {from}"),
                    on: to.to_string(),
                    command: Some(undo),
                    detached: true,
                    verify: Some(Verify::GuestOn {
                        vmid,
                        node: from.to_string(),
                        status,
                    }),
                    timeout: o.choices.migrate_timeout,
                    timeout_secs: o.choices.migrate_timeout.as_secs(),
                    undo: None,
                    noop: None,
                    only_if: None,
                    detail: Action::Migrate {
                        vmid,
                        from: to.clone(),
                        to: from.clone(),
                        ha: None,
                    },
                }
            }
            Action::Maintenance { .. } => Step {
                seq,
                title: format!("leave HA maintenance on {node} (HA brings its guests back)"),
                on: s.on.clone(),
                command: s.undo.clone(),
                detached: false,
                verify: Some(Verify::Maintenance {
                    node: node.clone(),
                    enter: false,
                }),
                timeout: o.choices.migrate_timeout,
                timeout_secs: o.choices.migrate_timeout.as_secs(),
                undo: None,
                noop: None,
                only_if: None,
                detail: Action::Maintenance {
                    node: node.clone(),
                    enter: false,
                },
            },
            _ => continue,
        };
        p.steps.push(back);
    }
    Ok(())
}
