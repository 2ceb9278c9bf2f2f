//! Planning `restore`: converge to the placement recorded before the operation. The journal's
//! `home` line says where each guest the operation touched ran, and in which state; the live
//! state says where it is now. Restore waits for what is still moving (migrations in flight, a
//! home node that is rebooting), leaves the HA maintenance and clears the Ceph `noout` the
//! operation set, and moves back only the guests that are not home. A guest that is home is
//! never moved, so restoring twice sends nothing the second time.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    Action, Condition, Home, Options, Plan, Step, Verify, any_other, guests, lrm_state,
    maintenance_step, noop,
};
use crate::command::Templates;
use crate::journal::StepOutcome;
use crate::snapshot::Snapshot;

/// One step of the journal: its seq, what it did and how it ended (`None`: it never ended).
struct Journaled {
    seq: u32,
    action: Action,
    outcome: Option<StepOutcome>,
}

impl Journaled {
    /// Started and not ended, or ended by a signal: it may still be running on the node.
    fn in_flight(&self) -> bool {
        matches!(self.outcome, None | Some(StepOutcome::Aborted))
    }

    fn ok(&self) -> bool {
        self.outcome == Some(StepOutcome::Ok)
    }
}

/// The journal's steps (start lines, with how they ended) and its home placement.
fn read_journal(journal: &[crate::journal::Entry]) -> (Vec<Journaled>, Option<Vec<Home>>) {
    let mut steps: Vec<Journaled> = Vec::new();
    let mut home = None;
    for e in journal {
        let action = e.detail.clone().unwrap_or(Action::Unknown);
        match (e.phase.as_str(), action) {
            ("home", Action::Home { guests }) => home = Some(guests),
            ("start", action) => steps.push(Journaled {
                seq: e.seq,
                action,
                outcome: None,
            }),
            _ => {
                if let Some(s) = steps.iter_mut().rev().find(|s| s.seq == e.seq) {
                    s.outcome = e.outcome;
                }
            }
        }
    }
    (steps, home)
}

/// A journal written before `home` lines existed: each moved guest's home is the source of its
/// first migration.
fn home_from_steps(steps: &[Journaled], snap: &Snapshot) -> Vec<Home> {
    let mut home: BTreeMap<u64, Home> = BTreeMap::new();
    for s in steps {
        let Action::Migrate { vmid, from, .. } = &s.action else {
            continue;
        };
        let (vmid, from) = (*vmid, from.clone());
        home.entry(vmid).or_insert_with(|| {
            let live = guests(snap).into_iter().find(|g| g.vmid == Some(vmid));
            Home {
                vmid,
                node: from,
                status: live
                    .and_then(|g| g.status.clone())
                    .unwrap_or_else(|| "running".into()),
                ha: live.and_then(|g| g.hastate.clone()),
            }
        });
    }
    home.into_values().collect()
}

/// Restore: converge every guest of the journal's home placement back to its home.
pub(super) fn plan_restore(
    p: &mut Plan,
    journal: &[crate::journal::Entry],
    snap: &Snapshot,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let (steps, recorded) = read_journal(journal);
    let home = recorded.unwrap_or_else(|| home_from_steps(&steps, snap));
    p.home = home.clone();
    let next = |p: &Plan| p.steps.len() as u32 + 1;
    let live = |vmid: u64| {
        guests(snap)
            .into_iter()
            .find(|g| g.vmid == Some(vmid))
            .cloned()
    };

    // 1. Migrations still in flight end first, one way or the other.
    // (step, guest, from, to) of each migration still in flight.
    let in_flight: Vec<(&Journaled, u64, &String, &String)> = steps
        .iter()
        .filter(|s| s.in_flight())
        .filter_map(|s| match &s.action {
            Action::Migrate { vmid, from, to, .. } => Some((s, *vmid, from, to)),
            _ => None,
        })
        .collect();
    for (s, vmid, from, _) in &in_flight {
        let vmid = *vmid;
        let seq = next(p);
        p.steps.push(Step {
            seq,
            title: format!(
                "wait for the migration of guest {vmid} (step {}, in flight when the journal ends)",
                s.seq
            ),
            on: from.to_string(),
            command: None,
            detached: false,
            verify: Some(Verify::GuestUnlocked { vmid }),
            timeout: o.choices.migrate_timeout,
            timeout_secs: o.choices.migrate_timeout.as_secs(),
            undo: None,
            noop: None,
            only_if: None,
            detail: Action::Wait { vmid },
        });
    }

    // 2. A home node that does not answer (rebooting) is waited for, as a reboot step would.
    let mut down: Vec<String> = home
        .iter()
        .map(|h| h.node.clone())
        .filter(|n| !node_up(snap, n))
        .collect();
    down.sort();
    down.dedup();
    for node in &down {
        let seq = next(p);
        p.steps.push(Step {
            seq,
            title: format!(
                "wait until {node} is back (SSH, quorate, services active): guests belong there"
            ),
            on: node.clone(),
            command: None,
            detached: false,
            verify: Some(Verify::NodeUp { node: node.clone() }),
            timeout: o.choices.reboot_timeout,
            timeout_secs: o.choices.reboot_timeout.as_secs(),
            undo: None,
            noop: None,
            only_if: None,
            detail: Action::WaitNode { node: node.clone() },
        });
    }

    // 3. HA maintenance the operation entered and did not leave: leaving it brings the HA
    //    guests back (HA chooses), so restore does not move those itself.
    let mut ha_returns: Vec<String> = Vec::new();
    for s in &steps {
        let Action::Maintenance { node, enter: true } = &s.action else {
            continue;
        };
        let node = node.clone();
        if !(s.ok() || s.in_flight()) {
            continue;
        }
        let left_later = steps.iter().any(|l| {
            l.seq > s.seq
                && l.ok()
                && matches!(&l.action, Action::Maintenance { node: n, enter: false } if *n == node)
        });
        if left_later || ha_returns.contains(&node) {
            continue;
        }
        let now_in = lrm_state(snap, &node).is_some_and(|st| st.contains("maintenance"));
        if !now_in {
            continue;
        }
        ha_returns.push(node.clone());
        let seq = next(p);
        p.steps.push(maintenance_step(
            seq,
            format!(
                "leave HA maintenance on {node} (entered at step {}; HA brings its guests back)",
                s.seq
            ),
            any_other(snap, &node),
            &node,
            false,
            false,
            templates,
            o,
        )?);
    }

    // 4. Every guest not home goes home; a guest home stays.
    let mut home_already = Vec::new();
    for h in &home {
        let vmid = h.vmid;
        let Some(g) = live(vmid) else {
            p.steps.push(noop(
                next(p),
                &h.node,
                format!("guest {vmid} is gone from the cluster: nothing to bring home"),
            ));
            continue;
        };
        let now_on = g.node.clone().unwrap_or_default();
        let flight = in_flight.iter().rev().find(|(_, v, _, _)| *v == vmid);
        // Where it may be once the waits are over: its migration's two ends, or where it is.
        let ends: Vec<String> = match flight {
            Some((_, _, from, to)) if g.lock.as_deref() == Some("migrate") => {
                vec![from.to_string(), to.to_string()]
            }
            _ => vec![now_on.clone()],
        };
        let away: Vec<&String> = ends.iter().filter(|n| **n != h.node).collect();
        if away.is_empty() {
            home_already.push(vmid);
            continue;
        }
        // HA brings it back when its home node leaves maintenance.
        if h.ha.is_some() && ha_returns.contains(&h.node) {
            let seq = next(p);
            p.steps.push(Step {
                seq,
                title: format!("guest {vmid} back on {} (HA brings it home)", h.node),
                on: h.node.clone(),
                command: None,
                detached: false,
                verify: Some(Verify::GuestOn {
                    vmid,
                    node: h.node.clone(),
                    status: h.status.clone(),
                }),
                timeout: o.choices.migrate_timeout,
                timeout_secs: o.choices.migrate_timeout.as_secs(),
                undo: None,
                noop: None,
                only_if: None,
                detail: Action::Wait { vmid },
            });
            continue;
        }
        let tool = if g.kind == "qemu" {
            "qm-migrate"
        } else {
            "pct-migrate"
        };
        let running = h.status == "running";
        let decided_later = ends.len() > 1;
        for from in away {
            let data = json!({"vmid": vmid, "target": h.node, "online": running,
                "restart": running, "with_local_disks": o.choices.with_local_disks});
            let seq = next(p);
            p.steps.push(Step {
                seq,
                title: if decided_later {
                    format!(
                        "move guest {vmid} home from {from} to {} if its migration ended on {from}",
                        h.node
                    )
                } else {
                    format!("move guest {vmid} home from {from} to {}", h.node)
                },
                on: from.clone(),
                command: Some(templates.render(tool, &data)?),
                detached: true,
                verify: Some(Verify::GuestOn {
                    vmid,
                    node: h.node.clone(),
                    status: h.status.clone(),
                }),
                timeout: o.choices.migrate_timeout,
                timeout_secs: o.choices.migrate_timeout.as_secs(),
                undo: None,
                noop: None,
                only_if: decided_later.then(|| Condition::GuestOn {
                    vmid,
                    node: from.clone(),
                }),
                detail: Action::Migrate {
                    vmid,
                    from: from.clone(),
                    to: h.node.clone(),
                    ha: None,
                },
            });
        }
    }

    // The moves home face what a forward move faces, where it can be judged now: a guest held
    // by another task (a backup) refuses, and a home node that is up must have the memory
    // for the running guests coming back (a node still rebooting is judged when it is back,
    // by PVE itself).
    let moving_home: Vec<(u64, String)> = p
        .steps
        .iter()
        .filter(|st| st.command.is_some() && st.only_if.is_none())
        .filter_map(|st| match &st.detail {
            Action::Migrate { vmid, to, .. } => Some((*vmid, to.clone())),
            _ => None,
        })
        .collect();
    let locked: Vec<String> = moving_home
        .iter()
        .filter_map(|(vmid, _)| {
            let g = guests(snap).into_iter().find(|g| g.vmid == Some(*vmid))?;
            let lock = g.lock.as_deref().filter(|l| *l != "migrate")?;
            Some(super::targets::locked_sentence(*vmid, g, lock))
        })
        .collect();
    if !locked.is_empty() {
        p.gates
            .push(super::gate("guests-unlocked", false, locked.join("; ")));
    }
    let up: Vec<(u64, String)> = moving_home
        .into_iter()
        .filter(|(_, to)| node_up(snap, to))
        .collect();
    for (t, (free, bytes)) in super::memory_needed(&snap.resources, &up) {
        p.gates.push(super::gate(
            "memory",
            free >= bytes,
            format!(
                "{t} has {} free for {} of guests coming home",
                crate::units::human_bytes(free),
                crate::units::human_bytes(bytes)
            ),
        ));
    }

    // 5. Ceph's noout the operation set and did not unset, once the OSDs are back.
    for s in steps.iter().filter(|s| s.ok() || s.in_flight()) {
        let Action::CephNoout { node, set: true } = &s.action else {
            continue;
        };
        let node = node.clone();
        let unset_later = steps.iter().any(|u| {
            u.seq > s.seq && u.ok() && matches!(u.action, Action::CephNoout { set: false, .. })
        });
        let noout = snap
            .ceph
            .as_ref()
            .and_then(|c| c.health.as_ref())
            .map(|h| h.noout);
        if unset_later || noout == Some(false) {
            continue;
        }
        let on = if node_up(snap, &node) {
            node.clone()
        } else {
            any_other(snap, &node)
        };
        let seq = next(p);
        p.steps.push(Step {
            seq,
            title: format!(
                "unset the Ceph noout flag set for {node}'s reboot (step {}) and wait until its OSDs are back",
                s.seq
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
            detail: Action::CephNoout {
                node: node.clone(),
                set: false,
            },
        });
        break;
    }

    if p.steps.is_empty() {
        p.steps.push(noop(
            1,
            &any_other(snap, ""),
            if home.is_empty() {
                "nothing to restore: the journal records no guest the operation touched".into()
            } else {
                format!(
                    "nothing to restore: every guest is home ({} guest(s))",
                    home_already.len()
                )
            },
        ));
    }
    p.success_criteria.push(
        "every guest the operation touched is on the node it ran on before, in the state it had; maintenance left; Ceph noout unset".into(),
    );
    Ok(())
}

/// Whether `node` answered and is online (`/cluster/resources`).
fn node_up(snap: &Snapshot, node: &str) -> bool {
    let answered = snap.node(node).is_some_and(|n| n.reachable);
    let online = snap
        .resources
        .iter()
        .find(|r| r.kind == "node" && r.node.as_deref() == Some(node))
        .is_none_or(|r| r.status.as_deref() == Some("online"));
    answered && online
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::facts::pvesh::Resource;
    use crate::journal::Entry;
    use crate::snapshot::NodeSnapshot;

    fn snap(placement: &[(u64, &str, Option<&str>)], up: &[&str]) -> Snapshot {
        let mut s: Snapshot = serde_json::from_value(json!({
            "format": 1, "taken_at": "", "status": "ok", "nodes": [], "findings": []
        }))
        .unwrap();
        for n in ["pve1", "pve2", "pve3"] {
            s.nodes.push(NodeSnapshot {
                name: n.into(),
                pve_node: Some(n.into()),
                reachable: up.contains(&n),
                ..Default::default()
            });
            s.resources.push(Resource {
                id: format!("node/{n}"),
                kind: "node".into(),
                node: Some(n.into()),
                status: Some(if up.contains(&n) { "online" } else { "offline" }.into()),
                ..Default::default()
            });
        }
        for (vmid, node, lock) in placement {
            s.resources.push(Resource {
                id: format!("qemu/{vmid}"),
                kind: "qemu".into(),
                node: Some(node.to_string()),
                vmid: Some(*vmid),
                status: Some("running".into()),
                lock: lock.map(str::to_string),
                ..Default::default()
            });
        }
        s
    }

    fn entry(seq: u32, phase: &str, outcome: Option<&str>, detail: Action) -> Entry {
        Entry {
            seq,
            step: String::new(),
            command: None,
            phase: phase.into(),
            time: String::new(),
            outcome: outcome.map(|o| serde_json::from_value(json!(o)).unwrap()),
            exit_code: None,
            verified: None,
            message: None,
            undo: None,
            detail: Some(detail),
        }
    }

    fn home(guests: &[(u64, &str)]) -> Entry {
        let g: Vec<Home> = guests
            .iter()
            .map(|(v, n)| Home {
                vmid: *v,
                node: n.to_string(),
                status: "running".into(),
                ha: None,
            })
            .collect();
        entry(0, "home", None, Action::Home { guests: g })
    }

    fn mig(seq: u32, vmid: u64, from: &str, to: &str, outcome: Option<&str>) -> Vec<Entry> {
        let d = Action::Migrate {
            vmid,
            from: from.into(),
            to: to.into(),
            ha: None,
        };
        let mut v = vec![entry(seq, "start", None, d.clone())];
        if let Some(o) = outcome {
            v.push(entry(seq, "end", Some(o), d));
        }
        v
    }

    fn restore(journal: &[Entry], s: &Snapshot) -> Vec<Step> {
        restore_plan(journal, s).steps
    }

    fn restore_gates(journal: &[Entry], s: &Snapshot) -> Vec<crate::plan::Gate> {
        restore_plan(journal, s).gates
    }

    fn restore_plan(journal: &[Entry], s: &Snapshot) -> Plan {
        let templates = crate::command::Templates::load(None).unwrap();
        let o = Options {
            choices: crate::plan::Choices {
                backup_gate: false,
                backup_max_age_hours: 168.0,
                with_local_disks: false,
                ha_maintenance: true,
                include_stopped: false,
                migrate_timeout: std::time::Duration::from_secs(60),
                reboot_timeout: std::time::Duration::from_secs(60),
                window: None,
                force_window: false,
            },
            now: 0,
            upgrade_timeout: std::time::Duration::from_secs(60),
            refresh_failures: Default::default(),
            space: Default::default(),
            max_migrations: 1,
            max_migrations_from: String::new(),
        };
        let op = crate::plan::Operation::Restore {
            journal: journal.to_vec(),
            source: "j".into(),
        };
        crate::plan::plan(&op, s, &Default::default(), &templates, &o).unwrap()
    }

    /// (vmid, from, to) of each move planned.
    fn moves(steps: &[Step]) -> Vec<(u64, String, String)> {
        steps
            .iter()
            .filter_map(|s| match &s.detail {
                Action::Migrate { vmid, from, to, .. } => Some((*vmid, from.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rollout_that_failed_after_its_first_node_moves_only_what_is_not_home() {
        // reboot pve2 pve3: pve2 done (200 out and back), pve3's 300 moved, 301 failed.
        let mut j = vec![home(&[(200, "pve2"), (300, "pve3"), (301, "pve3")])];
        j.extend(mig(1, 200, "pve2", "pve1", Some("ok")));
        j.extend(mig(2, 200, "pve1", "pve2", Some("ok")));
        j.extend(mig(3, 300, "pve3", "pve1", Some("ok")));
        j.extend(mig(4, 301, "pve3", "pve1", Some("failed")));
        let s = snap(
            &[
                (200, "pve2", None),
                (300, "pve1", None),
                (301, "pve3", None),
            ],
            &["pve1", "pve2", "pve3"],
        );
        let steps = restore(&j, &s);
        assert_eq!(moves(&steps), [(300, "pve1".into(), "pve3".into())]);
    }

    #[test]
    fn every_guest_home_plans_nothing() {
        let mut j = vec![home(&[(100, "pve1")])];
        j.extend(mig(1, 100, "pve1", "pve2", Some("ok")));
        j.extend(mig(2, 100, "pve2", "pve1", Some("ok")));
        let steps = restore(&j, &snap(&[(100, "pve1", None)], &["pve1", "pve2", "pve3"]));
        assert_eq!(steps.len(), 1);
        assert!(
            steps[0]
                .noop
                .as_deref()
                .unwrap()
                .starts_with("nothing to restore: every guest is home")
        );
    }

    #[test]
    fn a_migration_in_flight_is_waited_for_and_its_far_end_moved_home_if_it_landed_there() {
        let mut j = vec![home(&[(101, "pve1")])];
        j.extend(mig(1, 101, "pve1", "pve2", Some("aborted")));
        let steps = restore(
            &j,
            &snap(&[(101, "pve1", Some("migrate"))], &["pve1", "pve2"]),
        );
        assert!(matches!(
            steps[0].verify,
            Some(Verify::GuestUnlocked { vmid: 101 })
        ));
        assert_eq!(moves(&steps), [(101, "pve2".into(), "pve1".into())]);
        assert!(matches!(
            &steps[1].only_if,
            Some(Condition::GuestOn { vmid: 101, node }) if node == "pve2"
        ));
    }

    #[test]
    fn a_home_node_that_is_rebooting_is_waited_for_before_its_guests_go_home() {
        let mut j = vec![home(&[(300, "pve3")])];
        j.extend(mig(1, 300, "pve3", "pve1", Some("ok")));
        let steps = restore(&j, &snap(&[(300, "pve1", None)], &["pve1", "pve2"]));
        assert!(matches!(&steps[0].verify, Some(Verify::NodeUp { node }) if node == "pve3"));
        assert_eq!(moves(&steps), [(300, "pve1".into(), "pve3".into())]);
    }

    #[test]
    fn a_guest_away_from_home_under_a_backup_lock_refuses_the_restore() {
        let mut j = vec![home(&[(300, "pve3")])];
        j.extend(mig(1, 300, "pve3", "pve1", Some("ok")));
        let s = snap(&[(300, "pve1", Some("backup"))], &["pve1", "pve2", "pve3"]);
        let steps = restore(&j, &s);
        assert_eq!(moves(&steps), [(300, "pve1".into(), "pve3".into())]);
        let gates = restore_gates(&j, &s);
        assert!(
            gates.iter().any(|g| g.name == "guests-unlocked"
                && !g.passed
                && g.message.contains("locked (backup)")),
            "{gates:?}"
        );
    }

    #[test]
    fn an_old_journal_without_a_home_line_takes_each_guests_first_source() {
        let mut j = Vec::new();
        j.extend(mig(1, 200, "pve2", "pve1", Some("ok")));
        j.extend(mig(2, 200, "pve1", "pve3", Some("ok")));
        let steps = restore(&j, &snap(&[(200, "pve3", None)], &["pve1", "pve2", "pve3"]));
        assert_eq!(moves(&steps), [(200, "pve3".into(), "pve2".into())]);
    }
}
