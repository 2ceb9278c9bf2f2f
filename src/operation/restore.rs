//! Planning `restore`: undo what a journal recorded, waiting first for steps in flight.

use serde_json::json;

use super::{
    Condition, Options, Plan, Step, Verify, any_other, guests, lrm_state, maintenance_step, noop,
};
use crate::command::Templates;
use crate::snapshot::Snapshot;

/// What the journal says happened to each step: started, ended ok, or in flight.
fn journal_steps(
    journal: &[crate::journal::Entry],
) -> Vec<(u32, serde_json::Value, Option<String>)> {
    let mut out: Vec<(u32, serde_json::Value, Option<String>)> = Vec::new();
    for e in journal {
        let detail = e.detail.clone().unwrap_or_default();
        match e.phase.as_str() {
            "start" => out.push((e.seq, detail, None)),
            _ => {
                if let Some(s) = out.iter_mut().rev().find(|s| s.0 == e.seq) {
                    s.2 = e.outcome.clone();
                }
            }
        }
    }
    out
}

/// Restore: wait for steps in flight, then undo, newest first, what is still to undo: guests
/// back to the node they left (unless HA moved them: leaving maintenance brings those back),
/// maintenance left. A step whose effect is gone already is a no-op, so restoring twice does
/// nothing the second time.
pub(super) fn plan_restore(
    p: &mut Plan,
    journal: &[crate::journal::Entry],
    snap: &Snapshot,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let steps = journal_steps(journal);
    let where_is = |vmid: u64| {
        guests(snap)
            .into_iter()
            .find(|g| g.vmid == Some(vmid))
            .cloned()
    };
    for (seq, detail, outcome) in &steps {
        if outcome.as_deref().is_some_and(|o| o != "aborted") {
            continue;
        }
        if detail["kind"] == "migrate" {
            let vmid = detail["vmid"].as_u64().unwrap_or(0);
            let n = p.steps.len() as u32 + 1;
            let on = detail["from"].as_str().unwrap_or("").to_string();
            p.steps.push(Step {
                seq: n,
                title: format!("wait for the migration of guest {vmid} (step {seq}, in flight when the journal ends)"),
                on,
                command: None,
                detached: false,
                verify: Some(Verify::GuestUnlocked { vmid }),
                timeout: o.choices.migrate_timeout,
                timeout_secs: o.choices.migrate_timeout.as_secs(),
                undo: None,
                noop: None,
                only_if: None,
                detail: json!({"kind": "wait", "vmid": vmid}),
            });
        }
    }
    for (seq, detail, outcome) in steps.iter().rev() {
        let n = p.steps.len() as u32 + 1;
        let in_flight = outcome.is_none() || outcome.as_deref() == Some("aborted");
        if outcome.as_deref() != Some("ok") && !in_flight {
            continue;
        }
        match detail["kind"].as_str() {
            Some("migrate") => {
                let vmid = detail["vmid"].as_u64().unwrap_or(0);
                let (from, to) = (
                    detail["from"].as_str().unwrap_or(""),
                    detail["to"].as_str().unwrap_or(""),
                );
                let Some(g) = where_is(vmid) else {
                    p.steps.push(noop(n, from, format!("guest {vmid} is gone from the cluster: nothing to move back (step {seq})")));
                    continue;
                };
                let now_on = g.node.clone().unwrap_or_default();
                let running = g.status.as_deref() == Some("running");
                let tool = if g.kind == "qemu" {
                    "qm-migrate"
                } else {
                    "pct-migrate"
                };
                // Still on its source while its migration runs (PVE moves the guest's config
                // only at the end, qemu-server `src/PVE/QemuMigrate.pm` `phase3_cleanup`): where it ends up
                // is known only after the wait, so the move back is decided then.
                let moving = in_flight && now_on == from && g.lock.is_some();
                if now_on == from && !moving {
                    p.steps.push(noop(
                        n,
                        from,
                        format!("guest {vmid} is on {from} already (step {seq})"),
                    ));
                    continue;
                }
                if now_on != to && !in_flight {
                    p.steps.push(noop(
                        n,
                        &now_on,
                        format!(
                            "guest {vmid} was moved on to {now_on} since; left there (step {seq})"
                        ),
                    ));
                    continue;
                }
                let (on, title, only_if) = if moving {
                    (
                        to.to_string(),
                        format!(
                            "move guest {vmid} back from {to} to {from} once its migration has ended there (undo of step {seq})"
                        ),
                        Some(Condition::GuestOn {
                            vmid,
                            node: to.to_string(),
                        }),
                    )
                } else {
                    (
                        now_on.clone(),
                        format!(
                            "move guest {vmid} back from {now_on} to {from} (undo of step {seq})"
                        ),
                        None,
                    )
                };
                let data = json!({"vmid": vmid, "target": from, "online": running, "restart": running, "with_local_disks": o.choices.with_local_disks});
                p.steps.push(Step {
                    seq: n,
                    title,
                    on: on.clone(),
                    command: Some(templates.render(tool, &data)?),
                    detached: true,
                    verify: Some(Verify::GuestOn {
                        vmid,
                        node: from.to_string(),
                        status: g.status.clone().unwrap_or_default(),
                    }),
                    timeout: o.choices.migrate_timeout,
                    timeout_secs: o.choices.migrate_timeout.as_secs(),
                    undo: None,
                    noop: None,
                    only_if,
                    detail: json!({"kind": "migrate", "vmid": vmid, "from": on, "to": from}),
                });
            }
            Some("maintenance") => {
                let node = detail["node"].as_str().unwrap_or("").to_string();
                let entered = detail["enter"].as_bool().unwrap_or(true);
                let now_in = lrm_state(snap, &node).is_some_and(|s| s.contains("maintenance"));
                if now_in != entered {
                    p.steps.push(noop(
                        n,
                        &node,
                        format!(
                            "{node} is {} maintenance already (step {seq})",
                            if entered { "out of" } else { "in" }
                        ),
                    ));
                    continue;
                }
                p.steps.push(maintenance_step(
                    n,
                    format!(
                        "{} HA maintenance on {node} (undo of step {seq})",
                        if entered { "leave" } else { "re-enter" }
                    ),
                    any_other(snap, &node),
                    &node,
                    !entered,
                    false,
                    templates,
                    o,
                )?);
            }
            // `noout` the operation set and did not unset: cleared once Ceph has its OSDs back.
            Some("ceph-noout") if detail["set"] == true => {
                let unset_later = steps.iter().any(|(s, d, o)| {
                    s > seq
                        && d["kind"] == "ceph-noout"
                        && d["set"] == false
                        && o.as_deref() == Some("ok")
                });
                if unset_later {
                    continue;
                }
                let node = detail["node"].as_str().unwrap_or("").to_string();
                let on = if snap.node(&node).is_some_and(|n| n.reachable) {
                    node.clone()
                } else {
                    any_other(snap, &node)
                };
                let noout = snap
                    .ceph
                    .as_ref()
                    .and_then(|c| c.health.as_ref())
                    .map(|h| h.noout);
                if noout == Some(false) {
                    p.steps.push(noop(
                        n,
                        &on,
                        format!("the Ceph noout flag is not set (step {seq})"),
                    ));
                    continue;
                }
                p.steps.push(Step {
                    seq: n,
                    title: format!(
                        "unset the Ceph noout flag set for {node}'s reboot and wait until its OSDs are back (undo of step {seq})"
                    ),
                    on: on.clone(),
                    command: Some(templates.render("ceph-noout", &json!({"action": "unset"}))?),
                    detached: false,
                    verify: Some(Verify::CephNoout {
                        node: on,
                        set: false,
                    }),
                    timeout: o.choices.reboot_timeout,
                    timeout_secs: o.choices.reboot_timeout.as_secs(),
                    undo: None,
                    noop: None,
                    only_if: None,
                    detail: json!({"kind": "ceph-noout", "set": false, "node": node}),
                });
            }
            _ => {}
        }
    }
    if p.steps.is_empty() {
        p.steps.push(noop(
            1,
            &any_other(snap, ""),
            "the journal records nothing to undo".into(),
        ));
    }
    p.success_criteria.push(
        "every guest the journal moved is back where it was; maintenance left; Ceph noout unset"
            .into(),
    );
    Ok(())
}
