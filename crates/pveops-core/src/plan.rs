//! Plans: from a before-snapshot and the operator's arguments to a plan: the gates that
//! must hold before anything changes, and the ordered steps, each with its exact command, the
//! state it must produce, its timeout and its undo. Steps with nothing to do are no-ops with a
//! reason. Pure: no I/O; facts the snapshot lacks (migrate preflight) are passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::command::{Command, Templates};
use crate::facts::pvesh::Resource;
use crate::snapshot::Snapshot;

mod drain;
mod gates;
mod lookup;
mod migrate;
mod reboot;
mod restore;
mod targets;
mod update;
mod waves;
mod window;
use drain::add_drain;
pub use gates::membership_gate;
use gates::{
    ceph_gate, ha_gate, listing_failed, node_gate, quorum_gates, reach_gates, version_gate,
};
use lookup::{
    free_memory, gate, guests, homes, lock_gate, lrm_state, node_resource, read_ok, unread,
    unread_on,
};
pub use lookup::{memory_needed, pve_name};
use migrate::{add_ha_maintenance, add_moves};
use reboot::add_reboot;
use restore::plan_restore;
pub use targets::{Prechecks, Preflight};
use update::{add_update, repositories_gate, update_rollback};
pub use waves::waves;
pub use window::parse_window;

/// What the operator asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// Move one guest to a node.
    Migrate { vmid: u64, to: String },
    /// Move every running guest off a node (to `to`, or by free memory).
    Drain { node: String, to: Vec<String> },
    /// HA node maintenance on or off.
    Maintenance { node: String, enter: bool },
    /// Rolling reboot: per node, drain, reboot, wait until it is really back, bring its guests
    /// back, then the next node.
    Reboot { nodes: Vec<String> },
    /// Rolling package update: per node with something to install, drain, `apt-get -y
    /// dist-upgrade` (detached), reboot when a new kernel or the node asks for it, verify the new
    /// versions, bring its guests back, then the next node.
    Update {
        nodes: Vec<String>,
        /// Run `apt-get update` on every node before the plan (else the plan stands on the
        /// lists as they are).
        refresh: bool,
        /// Seconds `apt-get -y dist-upgrade` may take on one node.
        upgrade_timeout_secs: u64,
    },
    /// Undo what a journal recorded (waiting for steps still in flight).
    Restore {
        journal: Vec<crate::journal::Entry>,
        source: String,
    },
}

impl Operation {
    pub fn name(&self) -> String {
        match self {
            Operation::Migrate { vmid, to } => format!("migrate {vmid} to {to}"),
            Operation::Drain { node, .. } => format!("drain {node}"),
            Operation::Maintenance { node, enter: true } => format!("maintenance enter {node}"),
            Operation::Maintenance { node, enter: false } => format!("maintenance exit {node}"),
            Operation::Restore { source, .. } => format!("restore {source}"),
            Operation::Reboot { nodes } => format!("reboot {}", nodes.join(" ")),
            Operation::Update { nodes, .. } => format!("update {}", nodes.join(" ")),
        }
    }
}

/// What the operator chose for an operation (the command line's options, as plain data).
#[derive(Clone, Debug)]
pub struct Choices {
    /// Require a recent backup of every guest the operation touches.
    pub backup_gate: bool,
    pub backup_max_age_hours: f64,
    pub with_local_disks: bool,
    /// Prefer HA node maintenance for HA-managed guests of a drained node (PVE >= 7.3).
    pub ha_maintenance: bool,
    /// A drain moves the stopped guests too (offline), not only the running ones.
    pub include_stopped: bool,
    pub migrate_timeout: Duration,
    pub reboot_timeout: Duration,
    /// The maintenance window (start, end) in Unix seconds; none means any time.
    pub window: Option<(i64, i64)>,
    pub force_window: bool,
}

/// Knobs of planning: the operator's choices and what was read or decided before the plan.
#[derive(Clone, Debug)]
pub struct Options {
    pub choices: Choices,
    pub now: i64,
    /// Seconds `apt-get -y dist-upgrade` may take on one node until it is verified.
    pub upgrade_timeout: Duration,
    /// Nodes whose `apt-get update` failed before the plan (node → why): the plan would stand
    /// on old lists, so the `lists-refreshed` gate refuses.
    pub refresh_failures: BTreeMap<String, String>,
    /// `update`: per node the sizes of the versions apt replaces and installs and the free
    /// space where it writes (read after the snapshot; absent: not read).
    pub space: BTreeMap<String, NodeSpace>,
    /// Migrations started at once (`--max-migrations`, else datacenter.cfg's `max_workers`,
    /// else 1); consecutive migration steps run in waves of this many.
    pub max_migrations: u32,
    /// Where `max_migrations` came from, for the runbook (`--max-migrations`, `max_workers in
    /// /etc/pve/datacenter.cfg`, `the default`).
    pub max_migrations_from: String,
}

/// What the disk-space gate of `update` stands on, for one node.
#[derive(Clone, Debug)]
pub struct NodeSpace {
    /// `apt-cache show PKG=OLD PKG=NEW…` (template `apt-package-sizes`), or why it failed.
    pub sizes: Result<crate::facts::apt_cache_show::Records, String>,
    /// `df -B1 --output=avail,target / /boot /var/cache/apt/archives` (template `disk-free`).
    pub free: Result<crate::facts::df::DiskFree, String>,
}

/// A gate: a named condition checked before any change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gate {
    pub name: String,
    pub passed: bool,
    pub message: String,
}

/// What a step must have produced to count as done.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verify {
    /// The guest is on `node`, unlocked, in `status`.
    GuestOn {
        vmid: u64,
        node: String,
        status: String,
    },
    /// The node's HA LRM is (or is not) in maintenance mode and no HA guest is left on it.
    Maintenance { node: String, enter: bool },
    /// The guest is no longer locked (a migration in flight has ended, one way or the other).
    GuestUnlocked { vmid: u64 },
    /// The node booted again (its boot id changed), answers SSH, is quorate and its PVE
    /// services are active.
    NodeBack { node: String, boot_id: String },
    /// The detached `apt-get -y dist-upgrade` exited 0, `pveversion -v` shows every listed
    /// package at its new version, `apt-get -s dist-upgrade` has nothing left to install, the
    /// node is quorate and its PVE services are active.
    Upgraded {
        node: String,
        packages: BTreeMap<String, String>,
    },
    /// The node answers SSH, is quorate and its PVE services are active (a node `restore`
    /// waits for: it was rebooting when the operation ended).
    NodeUp { node: String },
    /// Ceph's cluster-wide `noout` flag is set (or unset), as `ceph health` on `node` says.
    /// Unset holds only once Ceph has recovered from the reboot too: not `HEALTH_ERR`, no OSD
    /// down and no PG inactive or degraded ([`crate::facts::ceph_status::CephHealth::recovered`]),
    /// so the next node's OSDs go down only after this one's are back.
    CephNoout { node: String, set: bool },
}

/// A condition decided on the node when its step is reached, not when the plan is made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// The node asks for a reboot: `/run/reboot-required` exists (Debian's marker, written by
    /// a package's postinst), or the running kernel is not the newest installed one.
    RebootNeeded { node: String },
    /// The guest is on `node` then: a migration that was in flight when the journal ended has
    /// ended there (`restore` moves it back only then; a failed one left it where it was).
    GuestOn { vmid: u64, node: String },
}

/// One step of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub seq: u32,
    pub title: String,
    /// The PVE node whose shell runs the command.
    pub on: String,
    pub command: Option<Command>,
    /// Run detached on the node: it must survive a dropped connection (migrations).
    pub detached: bool,
    pub verify: Option<Verify>,
    #[serde(skip)]
    pub timeout: Duration,
    pub timeout_secs: u64,
    /// The command that undoes the step, for the journal and `restore`.
    pub undo: Option<Command>,
    /// Why the step has nothing to do.
    pub noop: Option<String>,
    /// Run only when this holds at the time (else journaled as skipped, with why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_if: Option<Condition>,
    /// What the step is, typed: for `restore`, the report and the follow-ups (journaled as
    /// the step's `detail`).
    pub detail: Action,
}

/// What a step does, as the journal's `detail` records it (`{"kind": "migrate", …}`): the one
/// typed description that restore, the report and the follow-ups read.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Move a guest (`qm/pct migrate`, or an HA request when `ha`).
    Migrate {
        vmid: u64,
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ha: Option<bool>,
    },
    /// Enter or leave HA node maintenance.
    Maintenance {
        node: String,
        enter: bool,
    },
    /// Set or unset Ceph's `noout` around a node's reboot.
    CephNoout {
        #[serde(default)]
        node: String,
        set: bool,
    },
    Reboot {
        node: String,
    },
    /// `apt-get -y dist-upgrade` of `packages` packages.
    Upgrade {
        node: String,
        packages: usize,
    },
    /// `apt-get update` before an update's plan.
    AptUpdate {
        node: String,
    },
    /// Wait until a guest is unlocked (a migration in flight has ended).
    Wait {
        vmid: u64,
    },
    /// Wait until a node is up again.
    WaitNode {
        node: String,
    },
    /// The journal's `home` line: where each guest ran before the operation.
    Home {
        guests: Vec<Home>,
    },
    /// Nothing to do.
    Noop,
    /// A kind this version does not know (a newer journal).
    #[serde(other)]
    Unknown,
}

impl Action {
    /// The word the journal and the evidence use for it (`migrate`, `ceph-noout`, …).
    pub fn word(&self) -> &'static str {
        match self {
            Action::Migrate { .. } => "migrate",
            Action::Maintenance { .. } => "maintenance",
            Action::CephNoout { .. } => "ceph-noout",
            Action::Reboot { .. } => "reboot",
            Action::Upgrade { .. } => "upgrade",
            Action::AptUpdate { .. } => "apt-update",
            Action::Wait { .. } => "wait",
            Action::WaitNode { .. } => "wait-node",
            Action::Home { .. } => "home",
            Action::Noop => "noop",
            Action::Unknown => "unknown",
        }
    }

    /// The guest it concerns, if any.
    pub fn vmid(&self) -> Option<u64> {
        match self {
            Action::Migrate { vmid, .. } | Action::Wait { vmid } => Some(*vmid),
            _ => None,
        }
    }
}

/// A guest the operation touches.
#[derive(Clone, Debug, Serialize)]
pub struct Affected {
    pub vmid: u64,
    pub kind: String,
    pub name: String,
    pub node: String,
    pub status: String,
    pub ha: bool,
    pub target: Option<String>,
    /// The newest backup's age in hours, or null when there is none.
    pub backup_age_hours: Option<f64>,
}

/// The plan: gates, affected guests, steps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub operation: String,
    pub gates: Vec<Gate>,
    pub affected: Vec<Affected>,
    pub steps: Vec<Step>,
    pub success_criteria: Vec<String>,
    pub rollback: Vec<String>,
    /// `update`: per node, what apt will change and whether a reboot follows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<NodeUpdate>,
    /// Migration steps started together, each wave after the one before has ended and been
    /// verified (none when migrations run one at a time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
    /// Migrations at once, and where that number came from.
    pub max_migrations: u32,
    pub max_migrations_from: String,
    /// Where each guest the operation may touch runs before it, and in which state: the
    /// journal's `home` line, what `restore` converges to.
    pub home: Vec<Home>,
}

/// A guest's place and state before the operation.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Home {
    pub vmid: u64,
    /// The PVE node it runs on.
    pub node: String,
    /// `running`, `stopped`, …
    pub status: String,
    /// Its HA state (`started`, …), or null when HA does not manage it.
    pub ha: Option<String>,
}

/// Steps started at once: consecutive detached migrations, at most `max_migrations` of them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Wave {
    /// 1, 2, … in the order of the plan.
    pub wave: u32,
    /// The steps' `seq`, ascending.
    pub steps: Vec<u32>,
}

/// Whether an update reboots its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootDecision {
    /// A new kernel, or a reboot already due.
    Yes,
    /// Decided after the upgrade (`/run/reboot-required`, a newer kernel).
    IfNeeded,
    /// Nothing to install.
    No,
}

impl std::fmt::Display for RebootDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            RebootDecision::Yes => "yes",
            RebootDecision::IfNeeded => "if-needed",
            RebootDecision::No => "no",
        })
    }
}

/// What `update` will do on one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeUpdate {
    pub node: String,
    pub installs: Vec<crate::facts::apt_get::PackageChange>,
    pub removals: Vec<crate::facts::apt_get::PackageRemoval>,
    pub kept_back: Vec<String>,
    /// `yes`, `if-needed` (decided after the upgrade) or `no` (nothing to install).
    pub reboot: RebootDecision,
    /// Why (the new kernel, the marker, the running kernel).
    pub reboot_reason: String,
    /// Nothing to install, yet a reboot is due (the report says so).
    #[serde(skip)]
    pub reboot_due: bool,
}

impl Plan {
    pub fn refused(&self) -> Option<&Gate> {
        self.gates.iter().find(|g| !g.passed)
    }

    /// The wave step `seq` starts, when it is the first of one.
    pub fn wave_at(&self, seq: u32) -> Option<&Wave> {
        self.waves.iter().find(|w| w.steps.first() == Some(&seq))
    }
}

/// Plans `op` against the before-snapshot; `pre` holds what PVE says about targets (migrate
/// preflight per VMID, HA rules).
pub fn plan(
    op: &Operation,
    snap: &Snapshot,
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<Plan, crate::Error> {
    let mut p = Plan {
        operation: op.name(),
        gates: Vec::new(),
        affected: Vec::new(),
        steps: Vec::new(),
        success_criteria: Vec::new(),
        rollback: Vec::new(),
        updates: Vec::new(),
        waves: Vec::new(),
        max_migrations: o.max_migrations.max(1),
        max_migrations_from: o.max_migrations_from.clone(),
        home: Vec::new(),
    };
    // A name that is not a member refuses before anything else is judged: no gate or step may
    // speak of a node that is not there.
    if let Some(g) = membership_gate(op, snap) {
        p.gates.push(g);
        return Ok(p);
    }
    let mut keep_rollback = Vec::new();
    match op {
        Operation::Migrate { vmid, to } => {
            let to = pve_name(snap, to);
            p.gates.extend(quorum_gates(snap, None));
            p.gates.push(ha_gate(snap));
            p.gates.push(node_gate(snap, &to, "target"));
            let Some(g) = guests(snap).into_iter().find(|g| g.vmid == Some(*vmid)) else {
                p.gates.push(gate(
                    "guest-exists",
                    false,
                    format!("guest {vmid} is not in the cluster"),
                ));
                // The reach gates go first here too: with /cluster/resources unread every
                // guest looks missing, and the cause is what the operator needs.
                p.gates.splice(0..0, reach_gates(snap, &p.steps));
                return Ok(p);
            };
            let moves = vec![(g, to.clone())];
            add_moves(&mut p, snap, &moves, pre, templates, o)?;
        }
        Operation::Drain { node, to } => {
            add_drain(&mut p, snap, node, to, &[], pre, templates, o)?;
        }
        Operation::Reboot { nodes } => {
            p.gates.extend(ceph_gate(snap));
            let names: Vec<String> = nodes.iter().map(|n| pve_name(snap, n)).collect();
            for (i, node) in names.iter().enumerate() {
                add_reboot(&mut p, snap, node, &names[i + 1..], pre, templates, o)?;
            }
        }
        Operation::Update { nodes, .. } => {
            let nodes: Vec<String> = nodes.iter().map(|n| pve_name(snap, n)).collect();
            p.gates.extend(ceph_gate(snap));
            p.gates.push(repositories_gate(snap, &nodes));
            for (i, node) in nodes.iter().enumerate() {
                add_update(&mut p, snap, node, &nodes[i + 1..], pre, templates, o)?;
            }
            keep_rollback = update_rollback(&p.updates);
        }
        Operation::Restore { journal, .. } => {
            p.gates.extend(quorum_gates(snap, None));
            plan_restore(&mut p, journal, snap, templates, o)?;
        }
        Operation::Maintenance { node, enter } => {
            let node = pve_name(snap, node);
            p.gates.extend(quorum_gates(snap, None));
            p.gates.push(ha_gate(snap));
            p.gates.push(version_gate(snap, &node));
            let in_maint = lrm_state(snap, &node).is_some_and(|s| s.contains("maintenance"));
            let seq = 1;
            if *enter == in_maint {
                p.steps.push(noop(
                    seq,
                    &node,
                    format!(
                        "{node} is {} maintenance mode already",
                        if *enter { "in" } else { "out of" }
                    ),
                ));
            } else {
                let ha: Vec<&Resource> = guests(snap)
                    .into_iter()
                    .filter(|g| g.node.as_deref() == Some(node.as_str()) && g.hastate.is_some())
                    .collect();
                if *enter {
                    // With no HA resource configured, no CRM is master (`ha-manager status`
                    // prints only the quorum line, pve-ha-manager `PVE/HA/Env/PVE2.pm`): the
                    // request would wait in crm_commands and the LRM never enters maintenance.
                    let read: Vec<_> = snap
                        .nodes
                        .iter()
                        .filter(|n| n.reachable)
                        .filter_map(|n| n.ha.as_ref())
                        .collect();
                    if !read.is_empty() && read.iter().all(|h| h.master.is_none()) {
                        p.gates.push(gate(
                            "ha-active",
                            false,
                            format!(
                                "HA is not active on this cluster (no CRM master: no HA resource is configured), so node maintenance would never take effect on {node}; to empty the node use `pveops drain {node}`"
                            ),
                        ));
                    }
                    add_ha_maintenance(&mut p, snap, &node, &ha, templates, o)?;
                } else {
                    p.steps.push(maintenance_step(
                        seq,
                        format!("leave HA maintenance on {node}"),
                        any_other(snap, &node),
                        &node,
                        false,
                        true,
                        templates,
                        o,
                    )?);
                    p.success_criteria
                        .push(format!("the HA LRM of {node} is active again"));
                }
            }
        }
    }
    // A locked guest the plan would move: PVE refuses it (`check_lock` in the migrate
    // preflight), so a rollout would stop half-way at it. Refused first, naming guest and lock.
    if !matches!(op, Operation::Restore { .. })
        && let Some(g) = lock_gate(snap, &p.affected)
    {
        p.gates.insert(0, g);
    }
    if !matches!(op, Operation::Restore { .. }) {
        p.home = homes(snap, &p.affected);
    }
    if let Some((start, end)) = o.choices.window {
        let inside = (start..=end).contains(&o.now);
        let when = |t: i64| {
            jiff::Timestamp::from_second(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        p.gates.push(gate(
            "maintenance-window",
            inside || o.choices.force_window,
            if inside {
                format!("now is inside the window {} – {}", when(start), when(end))
            } else if o.choices.force_window {
                format!("outside the window {} – {}, forced with --force-window", when(start), when(end))
            } else {
                format!("now is outside the maintenance window {} – {} (pass --force-window to go anyway)", when(start), when(end))
            },
        ));
    }
    if o.choices.backup_gate {
        let stale: Vec<String> = p
            .affected
            .iter()
            .filter(|a| {
                a.backup_age_hours
                    .is_none_or(|h| h > o.choices.backup_max_age_hours)
            })
            .map(|a| match a.backup_age_hours {
                None => format!("{} (no backup)", a.vmid),
                Some(h) => format!("{} ({h:.0} h old)", a.vmid),
            })
            .collect();
        p.gates.push(if stale.is_empty() {
            gate(
                "backup-recent",
                true,
                format!(
                    "every affected guest has a backup younger than {:.0} h",
                    o.choices.backup_max_age_hours
                ),
            )
        } else {
            gate(
                "backup-recent",
                false,
                format!(
                    "no backup younger than {:.0} h of: {} (or pass --no-backup-gate){}",
                    o.choices.backup_max_age_hours,
                    stale.join(", "),
                    listing_failed(snap)
                ),
            )
        });
    }
    p.gates.splice(0..0, reach_gates(snap, &p.steps));
    p.waves = waves(&p.steps, p.max_migrations);
    p.rollback = p
        .steps
        .iter()
        .rev()
        .filter_map(|s| {
            s.undo
                .as_ref()
                .map(|u| format!("{} (on {}): {}", s.title, undo_on(s), u.script))
        })
        .collect();
    p.rollback.extend(keep_rollback);
    Ok(p)
}

/// Where a step's undo runs: a guest's way back starts where the step took it (`qm migrate`
/// runs on the node the guest is on), anything else where the step ran.
fn undo_on(s: &Step) -> &str {
    match &s.detail {
        Action::Migrate { to, .. } => to,
        _ => &s.on,
    }
}

fn noop(seq: u32, on: &str, why: String) -> Step {
    Step {
        seq,
        title: why.clone(),
        on: on.into(),
        command: None,
        detached: false,
        verify: None,
        timeout: Duration::ZERO,
        timeout_secs: 0,
        undo: None,
        noop: Some(why),
        only_if: None,
        detail: Action::Noop,
    }
}

/// A node of the cluster other than `node` that answered (where HA commands are sent).
fn any_other(snap: &Snapshot, node: &str) -> String {
    snap.nodes
        .iter()
        .filter(|n| n.reachable)
        .filter_map(|n| n.pve_node.clone())
        .find(|n| n != node)
        .unwrap_or_else(|| node.to_string())
}

/// A step that turns HA node maintenance of `node` on (`enter`) or off, sent from `on`,
/// verified until the LRM reports it; with `undoable`, its undo is the opposite command.
#[allow(clippy::too_many_arguments)]
fn maintenance_step(
    seq: u32,
    title: String,
    on: String,
    node: &str,
    enter: bool,
    undoable: bool,
    templates: &Templates,
    o: &Options,
) -> Result<Step, crate::Error> {
    let cmd = |enter: bool| {
        templates.render(
            "ha-node-maintenance",
            &json!({"action": if enter { "enable" } else { "disable" }, "node": node}),
        )
    };
    Ok(Step {
        seq,
        title,
        on,
        command: Some(cmd(enter)?),
        detached: false,
        verify: Some(Verify::Maintenance {
            node: node.to_string(),
            enter,
        }),
        timeout: o.choices.migrate_timeout,
        timeout_secs: o.choices.migrate_timeout.as_secs(),
        undo: if undoable { Some(cmd(!enter)?) } else { None },
        noop: None,
        only_if: None,
        detail: Action::Maintenance {
            node: node.to_string(),
            enter,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn migration(seq: u32) -> Step {
        Step {
            seq,
            title: format!("migrate {seq}"),
            on: "pve1".into(),
            command: Some(Command {
                name: "qm-migrate".into(),
                script: format!("qm migrate {seq} pve2 --online"),
            }),
            detached: true,
            verify: Some(Verify::GuestOn {
                vmid: seq.into(),
                node: "pve2".into(),
                status: "running".into(),
            }),
            timeout: Duration::from_secs(60),
            timeout_secs: 60,
            undo: None,
            noop: None,
            only_if: None,
            detail: Action::Migrate {
                vmid: 0,
                from: String::new(),
                to: String::new(),
                ha: None,
            },
        }
    }

    #[test]
    fn consecutive_migrations_run_in_waves_of_at_most_max() {
        let mut steps: Vec<Step> = (1..=6).map(migration).collect();
        let seqs = |w: &[Wave]| -> Vec<Vec<u32>> { w.iter().map(|w| w.steps.clone()).collect() };
        assert_eq!(seqs(&waves(&steps, 3)), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        assert_eq!(seqs(&waves(&steps, 4)), vec![vec![1, 2, 3, 4], vec![5, 6]]);
        assert!(waves(&steps, 1).is_empty(), "one at a time: no waves");
        let numbers: Vec<u32> = waves(&steps, 2).iter().map(|w| w.wave).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        // Anything else between migrations ends a run: the maintenance step, a reboot, a
        // no-op; a lone migration is no wave.
        steps[2] = noop(3, "pve1", "guest 3 is on pve2 already".into());
        steps[4].detail = Action::Maintenance {
            node: String::new(),
            enter: true,
        };
        assert_eq!(seqs(&waves(&steps, 3)), vec![vec![1, 2]]);
    }
}
