//! Operations: from a before-snapshot and the operator's arguments to a plan: the gates that
//! must hold before anything changes, and the ordered steps, each with its exact command, the
//! state it must produce, its timeout and its undo. Steps with nothing to do are no-ops with a
//! reason. Pure: no I/O; facts the snapshot lacks (migrate preflight) are passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::command::{Command, Templates};
use crate::health::Resource;
use crate::snapshot::Snapshot;

mod targets;
use targets::sid;
pub use targets::{Prechecks, Preflight};

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

/// Knobs of planning.
#[derive(Clone, Debug)]
pub struct Options {
    pub backup_gate: bool,
    pub backup_max_age_hours: f64,
    pub with_local_disks: bool,
    /// Prefer HA node maintenance for HA-managed guests of a drained node (PVE >= 7.3).
    pub ha_maintenance: bool,
    pub migrate_timeout: Duration,
    pub reboot_timeout: Duration,
    pub now: i64,
    /// The maintenance window (start, end) in Unix seconds; none means any time.
    pub window: Option<(i64, i64)>,
    pub force_window: bool,
    /// Seconds `apt-get -y dist-upgrade` may take on one node until it is verified.
    pub upgrade_timeout: Duration,
    /// Nodes whose `apt-get update` failed before the plan (node → why): the plan would stand
    /// on old lists, so the `lists-refreshed` gate refuses.
    pub refresh_failures: BTreeMap<String, String>,
    /// `update`: per node the sizes of the versions apt replaces and installs and the free
    /// space where it writes (read after the snapshot; absent: not read).
    pub space: BTreeMap<String, NodeSpace>,
}

/// What the disk-space gate of `update` stands on, for one node.
#[derive(Clone, Debug)]
pub struct NodeSpace {
    /// `apt-cache show PKG=OLD PKG=NEW…` (template `apt-package-sizes`), or why it failed.
    pub sizes: Result<crate::facts::apt_cache_show::Records, String>,
    /// `df -B1 --output=avail,target / /boot /var/cache/apt/archives` (template `disk-free`).
    pub free: Result<crate::facts::df::DiskFree, String>,
}

/// Room a new kernel takes in /boot: vmlinuz (~15 MiB) and its initramfs (~70–100 MiB on PVE
/// 8/9 kernels), which no package field states; an estimate with headroom.
const BOOT_BYTES_PER_KERNEL: u64 = 128 << 20;

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
}

/// A condition decided on the node when its step is reached, not when the plan is made.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// The node asks for a reboot: `/run/reboot-required` exists (Debian's marker, written by
    /// a package's postinst), or the running kernel is not the newest installed one.
    RebootNeeded { node: String },
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
    /// Facts for `restore`: guest, from, to, node.
    pub detail: serde_json::Value,
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
#[derive(Clone, Debug, Serialize)]
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
}

/// What `update` will do on one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeUpdate {
    pub node: String,
    pub installs: Vec<crate::health::PackageChange>,
    pub removals: Vec<crate::health::PackageRemoval>,
    pub kept_back: Vec<String>,
    /// `yes`, `if-needed` (decided after the upgrade) or `no` (nothing to install).
    pub reboot: String,
    /// Why (the new kernel, the marker, the running kernel).
    pub reboot_reason: String,
}

impl Plan {
    pub fn refused(&self) -> Option<&Gate> {
        self.gates.iter().find(|g| !g.passed)
    }
}

fn gate(name: &str, passed: bool, message: String) -> Gate {
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
fn unread(snap: &Snapshot, template: &str) -> String {
    unread_on(snap, None, template)
}

/// `unread` over one node (`Some(name)`) or all.
fn unread_on(snap: &Snapshot, only: Option<&str>, template: &str) -> String {
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
                    "`{}` on {} exited {}",
                    c.command,
                    n.name,
                    c.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "without status".into())
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
fn read_ok(n: &crate::snapshot::NodeSnapshot, template: &str) -> bool {
    n.reachable
        && !n.commands.iter().any(|c| {
            c.name == template
                && (c.error.is_some() || c.parse_error.is_some() || c.exit_code != Some(0))
        })
}

fn guests(snap: &Snapshot) -> Vec<&Resource> {
    snap.resources
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "qemu" | "lxc") && r.template != Some(true))
        .collect()
}

fn node_resource<'a>(snap: &'a Snapshot, node: &str) -> Option<&'a Resource> {
    snap.resources
        .iter()
        .find(|r| r.kind == "node" && r.node.as_deref() == Some(node))
}

/// Free memory of a node, in bytes, from `/cluster/resources`.
fn free_memory(snap: &Snapshot, node: &str) -> u64 {
    node_resource(snap, node)
        .map(|r| {
            r.maxmem_bytes
                .unwrap_or(0)
                .saturating_sub(r.mem_bytes.unwrap_or(0))
        })
        .unwrap_or(0)
}

/// The PVE node name of a target name (or the name itself).
pub fn pve_name(snap: &Snapshot, name: &str) -> String {
    snap.node(name)
        .and_then(|n| n.pve_node.clone())
        .unwrap_or_else(|| name.to_string())
}

fn lrm_state(snap: &Snapshot, node: &str) -> Option<String> {
    snap.nodes
        .iter()
        .filter_map(|n| n.ha.as_ref())
        .flat_map(|h| h.lrms.iter())
        .find(|l| l.node == node)
        .map(|l| l.state.clone())
}

fn newest_backup_hours(snap: &Snapshot, vmid: u64, now: i64) -> Option<f64> {
    snap.newest_backup(vmid)
        .map(|b| (now - b.epoch) as f64 / 3600.0)
}

/// Quorum gates: the cluster is quorate now, and stays quorate without the votes of `without`.
fn quorum_gates(snap: &Snapshot, without: Option<&str>) -> Vec<Gate> {
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

fn ha_gate(snap: &Snapshot) -> Gate {
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

fn node_gate(snap: &Snapshot, node: &str, role: &str) -> Gate {
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
    };
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
            add_drain(&mut p, snap, node, to, pre, templates, o)?;
        }
        Operation::Reboot { nodes } => {
            for node in nodes {
                add_reboot(&mut p, snap, node, pre, templates, o)?;
            }
        }
        Operation::Update { nodes, .. } => {
            let nodes: Vec<String> = nodes.iter().map(|n| pve_name(snap, n)).collect();
            p.gates.push(repositories_gate(snap, &nodes));
            for node in &nodes {
                add_update(&mut p, snap, node, pre, templates, o)?;
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
    if let Some((start, end)) = o.window {
        let inside = (start..=end).contains(&o.now);
        let when = |t: i64| {
            jiff::Timestamp::from_second(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        p.gates.push(gate(
            "maintenance-window",
            inside || o.force_window,
            if inside {
                format!("now is inside the window {} – {}", when(start), when(end))
            } else if o.force_window {
                format!("outside the window {} – {}, forced with --force-window", when(start), when(end))
            } else {
                format!("now is outside the maintenance window {} – {} (pass --force-window to go anyway)", when(start), when(end))
            },
        ));
    }
    if o.backup_gate {
        let stale: Vec<String> = p
            .affected
            .iter()
            .filter(|a| {
                a.backup_age_hours
                    .is_none_or(|h| h > o.backup_max_age_hours)
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
                    o.backup_max_age_hours
                ),
            )
        } else {
            gate(
                "backup-recent",
                false,
                format!(
                    "no backup younger than {:.0} h of: {} (or pass --no-backup-gate){}",
                    o.backup_max_age_hours,
                    stale.join(", "),
                    listing_failed(snap)
                ),
            )
        });
    }
    p.gates.splice(0..0, reach_gates(snap, &p.steps));
    p.rollback = p
        .steps
        .iter()
        .rev()
        .filter_map(|s| {
            s.undo
                .as_ref()
                .map(|u| format!("{} (on {}): {}", s.title, s.on, u.script))
        })
        .collect();
    p.rollback.extend(keep_rollback);
    Ok(p)
}

/// The gates that go first, because every other gate and step stands on them: the cluster state
/// (`/cluster/resources`) was read; every node a step runs its command on answered the
/// before-snapshot; every node to reboot reported its boot id. Without them an unreachable
/// source node failed step 1 instead of refusing, a rolling reboot drained guests onto a node
/// it could not reach to bring them back from, and a reboot with an unknown boot id could not
/// be verified (found by the fault suite, tests/faults.rs).
fn reach_gates(snap: &Snapshot, steps: &[Step]) -> Vec<Gate> {
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
fn listing_failed(snap: &Snapshot) -> String {
    let failed = snap
        .nodes
        .iter()
        .any(|n| !read_ok(n, "backup-list") && n.reachable);
    if failed {
        format!(
            "; the backup listing could not be read: {}",
            unread(snap, "backup-list")
        )
    } else {
        String::new()
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
        detail: json!({"kind": "noop"}),
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

fn version_gate(snap: &Snapshot, node: &str) -> Gate {
    let v = snap
        .node(node)
        .or_else(|| {
            snap.nodes
                .iter()
                .find(|n| n.pve_node.as_deref() == Some(node))
        })
        .and_then(|n| n.version.as_ref())
        .and_then(|v| v.manager_version.clone());
    let key = v
        .as_deref()
        .map(crate::lab::state::version_key)
        .unwrap_or_default();
    let ok = key >= vec![7, 3];
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

fn add_moves(
    p: &mut Plan,
    snap: &Snapshot,
    moves: &[(&Resource, String)],
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let mut need: BTreeMap<String, u64> = BTreeMap::new();
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
            if !disks.is_empty() && !o.with_local_disks && kind == "qemu" && running {
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
        if running {
            *need.entry(to.clone()).or_default() += g.maxmem_bytes.unwrap_or(0);
        }
        let tool = if kind == "qemu" {
            "qm-migrate"
        } else {
            "pct-migrate"
        };
        let data = json!({"vmid": vmid, "target": to, "online": running, "restart": running, "with_local_disks": o.with_local_disks});
        let back = json!({"vmid": vmid, "target": from, "online": running, "restart": running, "with_local_disks": o.with_local_disks});
        p.steps.push(Step {
            seq,
            title: format!("migrate {} {vmid} ({}) from {from} to {to}", if kind == "qemu" { "VM" } else { "CT" }, g.name.clone().unwrap_or_default()),
            on: from.clone(),
            command: Some(templates.render(tool, &data)?),
            detached: true,
            verify: Some(Verify::GuestOn { vmid, node: to.clone(), status: g.status.clone().unwrap_or_default() }),
            timeout: o.migrate_timeout,
            timeout_secs: o.migrate_timeout.as_secs(),
            undo: Some(templates.render(tool, &back)?),
            noop: None,
            only_if: None,
            detail: json!({"kind": "migrate", "vmid": vmid, "from": from, "to": to, "ha": g.hastate.is_some()}),
        });
        p.success_criteria
            .push(format!("guest {vmid} runs on {to}, unlocked"));
    }
    for (t, bytes) in need {
        let free = free_memory(snap, &t);
        let ok = free >= bytes;
        p.gates.push(gate(
            "memory",
            ok,
            format!(
                "{t} has {} free for {} of guests",
                crate::check::human_bytes(free),
                crate::check::human_bytes(bytes)
            ),
        ));
    }
    Ok(())
}

fn add_ha_maintenance(
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
fn plan_restore(
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
                timeout: o.migrate_timeout,
                timeout_secs: o.migrate_timeout.as_secs(),
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
                if now_on == from {
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
                let running = g.status.as_deref() == Some("running");
                let tool = if g.kind == "qemu" {
                    "qm-migrate"
                } else {
                    "pct-migrate"
                };
                let data = json!({"vmid": vmid, "target": from, "online": running, "restart": running, "with_local_disks": o.with_local_disks});
                p.steps.push(Step {
                    seq: n,
                    title: format!(
                        "move guest {vmid} back from {now_on} to {from} (undo of step {seq})"
                    ),
                    on: now_on.clone(),
                    command: Some(templates.render(tool, &data)?),
                    detached: true,
                    verify: Some(Verify::GuestOn {
                        vmid,
                        node: from.to_string(),
                        status: g.status.clone().unwrap_or_default(),
                    }),
                    timeout: o.migrate_timeout,
                    timeout_secs: o.migrate_timeout.as_secs(),
                    undo: None,
                    noop: None,
                    only_if: None,
                    detail: json!({"kind": "migrate", "vmid": vmid, "from": now_on, "to": from}),
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
    p.success_criteria
        .push("every guest the journal moved is back where it was; maintenance left".into());
    Ok(())
}

/// The gates and steps that move every running guest off `node`.
fn add_drain(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    to: &[String],
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
    let running: Vec<&Resource> = guests(snap)
        .into_iter()
        .filter(|g| {
            g.node.as_deref() == Some(node.as_str()) && g.status.as_deref() == Some("running")
        })
        .collect();
    // HA guests go through node maintenance (HA picks targets, and brings them back on
    // exit), the others by free memory, biggest guest first.
    let (ha, plain): (Vec<&Resource>, Vec<&Resource>) = running
        .into_iter()
        .partition(|g| o.ha_maintenance && g.hastate.is_some());
    let mut free: BTreeMap<String, u64> = usable
        .iter()
        .map(|t| (t.clone(), free_memory(snap, t)))
        .collect();
    let mut plain = plain;
    plain.sort_by_key(|g| std::cmp::Reverse(g.maxmem_bytes.unwrap_or(0)));
    let mut moves = Vec::new();
    let mut placed: BTreeMap<String, String> = BTreeMap::new();
    for g in plain {
        let need = g.maxmem_bytes.unwrap_or(0);
        let refusals: Vec<(String, String)> = free
            .keys()
            .filter_map(|t| pre.refusal(snap, g, t, &placed).map(|w| (t.clone(), w)))
            .collect();
        let best = free
            .iter()
            .filter(|(t, _)| !refusals.iter().any(|(r, _)| r == *t))
            .max_by_key(|(_, f)| **f)
            .map(|(t, f)| (t.clone(), *f));
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
    p.success_criteria
        .push(format!("no running guest is left on {node}"));
    Ok(())
}

/// Drain `node`, reboot it, wait until it is back, move its guests back.
fn add_reboot(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let node = pve_name(snap, node);
    add_cycle(p, snap, &node, None, None, pre, templates, o)?;
    p.success_criteria.push(format!(
        "{node} rebooted (new boot id), quorate, services active, its guests back"
    ));
    Ok(())
}

/// Drain `node`, run `work` there (an upgrade), reboot it (only when `reboot_if` holds then,
/// if given), wait until it is back, move its guests back.
#[allow(clippy::too_many_arguments)]
fn add_cycle(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
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
    add_drain(p, snap, &node, &[], pre, templates, o)?;
    let drained: Vec<Step> = p.steps[first..]
        .iter()
        .filter(|s| s.command.is_some())
        .cloned()
        .collect();
    if let Some(mut w) = work {
        w.seq = p.steps.len() as u32 + 1;
        p.steps.push(w);
    }
    // On Ceph, keep the cluster from rebalancing while the node's OSDs are down; the noout
    // warning this raises is expected (PRODUCT.md "Operations").
    let ceph = snap.node(&node).is_some_and(|n| {
        n.probes
            .get("ceph-health")
            .is_some_and(|p| p.exit_code != Some(127))
    });
    if ceph {
        let seq = p.steps.len() as u32 + 1;
        p.steps.push(Step {
            seq,
            title: "set the Ceph noout flag".into(),
            on: node.clone(),
            command: Some(templates.render("ceph-noout", &json!({"action": "set"}))?),
            detached: false,
            verify: None,
            timeout: Duration::from_secs(60),
            timeout_secs: 60,
            undo: Some(templates.render("ceph-noout", &json!({"action": "unset"}))?),
            noop: None,
            only_if: reboot_if.clone(),
            detail: json!({"kind": "ceph-noout", "set": true}),
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
        timeout: o.reboot_timeout,
        timeout_secs: o.reboot_timeout.as_secs(),
        undo: None,
        noop: None,
        only_if: reboot_if.clone(),
        detail: json!({"kind": "reboot", "node": node}),
    });
    if ceph {
        let seq = p.steps.len() as u32 + 1;
        p.steps.push(Step {
            seq,
            title: "unset the Ceph noout flag".into(),
            on: node.clone(),
            command: Some(templates.render("ceph-noout", &json!({"action": "unset"}))?),
            detached: false,
            verify: None,
            timeout: Duration::from_secs(60),
            timeout_secs: 60,
            undo: None,
            noop: None,
            only_if: reboot_if.clone(),
            detail: json!({"kind": "ceph-noout", "set": false}),
        });
    }
    for s in drained.iter().rev() {
        let seq = p.steps.len() as u32 + 1;
        let back = match s.detail["kind"].as_str() {
            Some("migrate") => {
                let (vmid, from, to) = (
                    s.detail["vmid"].as_u64().unwrap_or(0),
                    s.detail["from"].as_str().unwrap_or(""),
                    s.detail["to"].as_str().unwrap_or(""),
                );
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
                    timeout: o.migrate_timeout,
                    timeout_secs: o.migrate_timeout.as_secs(),
                    undo: None,
                    noop: None,
                    only_if: None,
                    detail: json!({"kind": "migrate", "vmid": vmid, "from": to, "to": from}),
                }
            }
            Some("maintenance") => Step {
                seq,
                title: format!("leave HA maintenance on {node} (HA brings its guests back)"),
                on: s.on.clone(),
                command: s.undo.clone(),
                detached: false,
                verify: Some(Verify::Maintenance {
                    node: node.clone(),
                    enter: false,
                }),
                timeout: o.migrate_timeout,
                timeout_secs: o.migrate_timeout.as_secs(),
                undo: None,
                noop: None,
                only_if: None,
                detail: json!({"kind": "maintenance", "node": node, "enter": false}),
            },
            _ => continue,
        };
        p.steps.push(back);
    }
    Ok(())
}

/// One node of a rolling update: with nothing to install a no-op that says so; else the
/// package gates, then drain, `apt-get -y dist-upgrade` (detached, its exit status and log
/// kept on the node), the reboot when due, the guests back.
fn add_update(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let seq = p.steps.len() as u32 + 1;
    let Some(n) = snap.node(node).filter(|n| n.reachable) else {
        let why = snap
            .node(node)
            .and_then(|n| n.error.clone())
            .unwrap_or_else(|| format!("{node} is not among the targets"));
        p.gates.push(gate(
            "node-reachable",
            false,
            format!("{node} is to be updated but did not answer: {why}"),
        ));
        return Ok(());
    };
    if let Some(why) = o.refresh_failures.get(node) {
        p.gates.push(gate(
            "lists-refreshed",
            false,
            format!("`apt-get update` on {node} failed: {why}; the plan would stand on old package lists (fix the repositories, or pass --no-refresh)"),
        ));
    }
    let Some(up) = n.updates.as_ref().filter(|_| read_ok(n, "apt-simulate")) else {
        p.gates.push(gate(
            "updates-read",
            false,
            format!(
                "what {node} would install could not be read: {}",
                unread_on(snap, Some(node), "apt-simulate")
            ),
        ));
        return Ok(());
    };
    let version = n.version.as_ref();
    let due = if n.packages.reboot_required == Some(true) {
        Some("/run/reboot-required exists already".to_string())
    } else if version.and_then(|v| v.reboot_required) == Some(true) {
        Some(format!(
            "the running kernel {} is not the newest installed ({})",
            version
                .and_then(|v| v.running_kernel.as_deref())
                .unwrap_or("?"),
            version
                .and_then(|v| v.newest_kernel.as_deref())
                .unwrap_or("?")
        ))
    } else {
        None
    };
    let kept = if up.kept_back.is_empty() {
        String::new()
    } else {
        format!(
            " ({} kept back: {})",
            up.kept_back.len(),
            up.kept_back.join(", ")
        )
    };
    let mut entry = NodeUpdate {
        node: node.to_string(),
        installs: up.installs.clone(),
        removals: up.removals.clone(),
        kept_back: up.kept_back.clone(),
        reboot: String::new(),
        reboot_reason: String::new(),
    };
    if up.installs.is_empty() && up.removals.is_empty() {
        entry.reboot = "no".into();
        entry.reboot_reason = match &due {
            Some(why) => {
                format!("nothing to install, but a reboot is due ({why}): `pveops reboot {node}`")
            }
            None => "nothing to install".into(),
        };
        p.updates.push(entry);
        p.steps.push(noop(
            seq,
            node,
            format!("{node} has nothing to install{kept}: skipped"),
        ));
        return Ok(());
    }
    let (reboot_if, reboot, reason) = if !up.new_kernels.is_empty() {
        (
            None,
            "yes",
            format!("new kernel {}", up.new_kernels.join(", ")),
        )
    } else if let Some(why) = due {
        (None, "yes", why)
    } else {
        (
            Some(Condition::RebootNeeded {
                node: node.to_string(),
            }),
            "if-needed",
            "only if the upgrade asks for it (/run/reboot-required, or a kernel newer than the running one)".to_string(),
        )
    };
    entry.reboot = reboot.into();
    entry.reboot_reason = reason.clone();
    p.updates.push(entry);
    p.gates.push(match &n.packages.apt_locks {
        None => gate(
            "dpkg-lock-free",
            false,
            format!(
                "the package locks of {node} could not be read: {}",
                unread_on(snap, Some(node), "apt-locks")
            ),
        ),
        Some(locks) if locks.is_empty() => gate(
            "dpkg-lock-free",
            true,
            format!("no process holds apt's or dpkg's locks on {node}"),
        ),
        Some(locks) => {
            let held: Vec<String> = locks
                .iter()
                .map(|l| {
                    format!(
                        "{} holds {}",
                        match (&l.command, l.pid) {
                            (Some(c), Some(pid)) => format!("{c} (pid {pid})"),
                            (None, Some(pid)) => format!("pid {pid}"),
                            (Some(c), None) => c.clone(),
                            (None, None) => "a process".into(),
                        },
                        l.path.as_deref().unwrap_or("a package lock")
                    )
                })
                .collect();
            gate(
                "dpkg-lock-free",
                false,
                format!(
                    "on {node} {}: wait until it ends (unattended-upgrades, another admin's apt) and run again",
                    held.join(", ")
                ),
            )
        }
    });
    p.gates.push(match &n.packages.broken_packages {
        None => gate(
            "dpkg-audit-clean",
            false,
            format!(
                "dpkg's state on {node} could not be read: {}",
                unread_on(snap, Some(node), "dpkg-audit")
            ),
        ),
        Some(b) if b.is_empty() => gate(
            "dpkg-audit-clean",
            true,
            format!("`dpkg --audit` on {node} reports nothing"),
        ),
        Some(b) => gate(
            "dpkg-audit-clean",
            false,
            format!(
                "dpkg on {node} left {} package(s) half installed or unconfigured: {}; repair that first (`dpkg --configure -a`, then `apt-get -f install`)",
                b.len(),
                b.join(", ")
            ),
        ),
    });
    p.gates.push(space_gate(node, up, o.space.get(node)));
    let packages: BTreeMap<String, String> = up
        .installs
        .iter()
        .map(|i| (i.package.clone(), i.new_version.clone()))
        .collect();
    let count = up.installs.len() + up.removals.len();
    let work = Step {
        seq: 0,
        title: format!(
            "upgrade {node}: {count} package(s){} (apt-get -y dist-upgrade, detached)",
            if up.new_kernels.is_empty() {
                String::new()
            } else {
                format!(", kernel {}", up.new_kernels.join(", "))
            }
        ),
        on: node.to_string(),
        command: Some(templates.render("apt-dist-upgrade", &json!({}))?),
        detached: true,
        verify: Some(Verify::Upgraded {
            node: node.to_string(),
            packages,
        }),
        timeout: o.upgrade_timeout,
        timeout_secs: o.upgrade_timeout.as_secs(),
        undo: None,
        noop: None,
        only_if: None,
        detail: json!({"kind": "upgrade", "node": node, "packages": count}),
    };
    add_cycle(p, snap, node, Some(work), reboot_if, pre, templates, o)?;
    p.success_criteria.push(format!(
        "{node} runs the new versions (pveversion -v), has nothing left to install, is quorate with its services active, rebooted {} (new boot id), its guests back",
        if reboot == "yes" { "".to_string() } else { "only if it asked for it".to_string() }
    ).replace("rebooted  (", "rebooted ("));
    Ok(())
}

/// Enough free space on the node for what apt downloads (to /var/cache/apt/archives) and
/// unpacks (the growth of Installed-Size, on /), and for each new kernel's image and initramfs
/// in /boot. apt itself checks only the download (apt-private/private-install.cc
/// `InstallPackages`: "You don't have enough free space in %s"), and only once it is running.
fn space_gate(node: &str, up: &crate::health::Updates, space: Option<&NodeSpace>) -> Gate {
    let refuse = |why: String| gate("disk-space", false, why);
    let Some(space) = space else {
        return refuse(format!("the free space on {node} was not read"));
    };
    let records = match &space.sizes {
        Ok(r) => &r.records,
        Err(e) => {
            return refuse(format!(
                "the package sizes on {node} could not be read: {e}"
            ));
        }
    };
    let free = match &space.free {
        Ok(f) if f.mounts.len() == 3 => f,
        Ok(f) => {
            return refuse(format!(
                "df on {node} named {} of the 3 paths (/, /boot, /var/cache/apt/archives)",
                f.mounts.len()
            ));
        }
        Err(e) => return refuse(format!("the free space on {node} could not be read: {e}")),
    };
    let find = |pkg: &str, ver: &str| {
        records
            .iter()
            .find(|r| r.package == pkg && r.version == ver)
    };
    let (mut download, mut growth_kib, mut unknown) = (0u64, 0i64, Vec::new());
    for i in &up.installs {
        match find(&i.package, &i.new_version) {
            Some(r) => {
                download += r.size.unwrap_or(0);
                growth_kib += r.installed_size_kib.unwrap_or(0) as i64;
            }
            None => unknown.push(format!("{} {}", i.package, i.new_version)),
        }
        if let Some(old) = &i.old_version
            && let Some(r) = find(&i.package, old)
        {
            growth_kib -= r.installed_size_kib.unwrap_or(0) as i64;
        }
    }
    if !unknown.is_empty() {
        return refuse(format!(
            "apt-cache on {node} has no record of {}: run `apt-get update` (or drop --no-refresh)",
            unknown.join(", ")
        ));
    }
    let (root, boot, cache) = (&free.mounts[0], &free.mounts[1], &free.mounts[2]);
    let mut need: BTreeMap<&str, (u64, u64, Vec<String>)> = BTreeMap::new();
    for m in [root, boot, cache] {
        need.entry(m.target.as_str())
            .or_insert((m.avail_bytes, 0, Vec::new()));
    }
    let mut add = |target: &str, bytes: u64, what: String| {
        if bytes == 0 {
            return;
        }
        if let Some(e) = need.get_mut(target) {
            e.1 += bytes;
            e.2.push(what);
        }
    };
    add(
        &cache.target,
        download,
        format!("{} to download", human(download)),
    );
    let unpack = (growth_kib.max(0) as u64) * 1024;
    add(&root.target, unpack, format!("{} to unpack", human(unpack)));
    let kernels = up.new_kernels.len() as u64 * BOOT_BYTES_PER_KERNEL;
    add(
        &boot.target,
        kernels,
        format!(
            "{} for {} new kernel(s)",
            human(kernels),
            up.new_kernels.len()
        ),
    );
    let short: Vec<String> = need
        .iter()
        .filter(|(_, (avail, want, _))| want > avail)
        .map(|(t, (avail, want, what))| {
            format!(
                "{t} needs {} ({}) but has {} free",
                human(*want),
                what.join(", "),
                human(*avail)
            )
        })
        .collect();
    if !short.is_empty() {
        return refuse(format!(
            "not enough disk space on {node}: {}; free some (`apt-get clean`, `apt-get autoremove` of old kernels) and run again",
            short.join("; ")
        ));
    }
    let ok: Vec<String> = need
        .iter()
        .filter(|(_, (_, want, _))| *want > 0)
        .map(|(t, (avail, want, _))| format!("{t} {} of {} free", human(*want), human(*avail)))
        .collect();
    gate(
        "disk-space",
        true,
        format!(
            "{node} has room: {}",
            if ok.is_empty() {
                "nothing to write".to_string()
            } else {
                ok.join(", ")
            }
        ),
    )
}

/// `1.5 GiB`, `105.0 MiB`.
fn human(bytes: u64) -> String {
    crate::check::human_bytes(bytes)
}

/// The same repositories on every node that reported them (a node on other repositories ends
/// up on other versions); a mix of Proxmox channels (enterprise, no-subscription) passes with
/// a warning, as it is a common, deliberate setup.
fn repositories_gate(snap: &Snapshot, nodes: &[String]) -> Gate {
    let mut unread = Vec::new();
    let mut sets: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    let mut channels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in snap.nodes.iter().filter(|n| n.reachable) {
        let name = n.pve_node.clone().unwrap_or_else(|| n.name.clone());
        match &n.packages.repositories {
            Some(r) => {
                let mut r = r.clone();
                r.sort();
                r.dedup();
                sets.entry(r).or_default().push(name.clone());
            }
            None if nodes.contains(&name) => {
                unread.push(unread_on(snap, Some(&name), "apt-policy"))
            }
            None => {}
        }
        for c in n.packages.proxmox_channels.iter().flatten() {
            channels.entry(c.clone()).or_default().push(name.clone());
        }
    }
    if !unread.is_empty() {
        return gate(
            "repositories-consistent",
            false,
            format!("the repositories could not be read: {}", unread.join("; ")),
        );
    }
    if sets.len() > 1 {
        let common: Vec<&String> = sets
            .keys()
            .next()
            .into_iter()
            .flatten()
            .filter(|r| sets.keys().all(|s| s.contains(r)))
            .collect();
        let groups: Vec<String> = sets
            .iter()
            .map(|(repos, names)| {
                let own: Vec<&str> = repos
                    .iter()
                    .filter(|r| !common.contains(r))
                    .map(String::as_str)
                    .collect();
                if own.is_empty() {
                    format!("{} only the common ones", names.join(", "))
                } else {
                    format!("{} also {}", names.join(", "), own.join(", "))
                }
            })
            .collect();
        return gate(
            "repositories-consistent",
            false,
            format!(
                "the nodes use different repositories ({}): align /etc/apt/sources.list.d first, or the nodes end up on different versions",
                groups.join("; ")
            ),
        );
    }
    if channels.len() > 1 {
        let mix: Vec<String> = channels
            .iter()
            .map(|(c, names)| format!("{c} on {}", names.join(", ")))
            .collect();
        return gate(
            "repositories-consistent",
            true,
            format!(
                "warning: the nodes mix Proxmox channels ({}); they may get different versions",
                mix.join("; ")
            ),
        );
    }
    gate(
        "repositories-consistent",
        true,
        "every node uses the same repositories".into(),
    )
}

/// The rollback section of an update: apt has no safe downgrade, so the previous versions
/// are listed for a repair by hand.
fn update_rollback(updates: &[NodeUpdate]) -> Vec<String> {
    let mut out = vec!["No automatic downgrade: apt cannot downgrade safely (maintainer scripts only run forward). Repair forward on the node (`dpkg --configure -a`, `apt-get -f install`); pin one package back by hand with `apt-get install PACKAGE=OLD_VERSION`; a new kernel that does not boot: choose the previous one in the boot menu, then `proxmox-boot-tool kernel pin OLD`.".to_string()];
    for u in updates
        .iter()
        .filter(|u| !u.installs.is_empty() || !u.removals.is_empty())
    {
        let before: Vec<String> = u
            .installs
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.package,
                    i.old_version.as_deref().unwrap_or("(not installed)")
                )
            })
            .chain(u.removals.iter().map(|r| {
                format!(
                    "{} {} (removed by the upgrade)",
                    r.package,
                    r.version.as_deref().unwrap_or("")
                )
            }))
            .collect();
        out.push(format!(
            "{} before the update: {}",
            u.node,
            before.join(", ")
        ));
    }
    out
}

/// Parses a maintenance window `YYYY-MM-DD HH:MM/DURATION` (local time of the jump host;
/// duration `2h`, `90m`, `1h30m`) into Unix seconds.
pub fn parse_window(text: &str) -> Result<(i64, i64), String> {
    let (start, dur) = text
        .split_once('/')
        .ok_or_else(|| format!("window `{text}`: write it as \"2026-11-28 22:00/2h\""))?;
    let dt: jiff::civil::DateTime = start
        .trim()
        .parse()
        .map_err(|e| format!("window `{text}`: the start is not a date and time ({e})"))?;
    let zoned = dt
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .map_err(|e| format!("window `{text}`: {e}"))?;
    let start = zoned.timestamp().as_second();
    let mut secs = 0i64;
    let mut num = String::new();
    for c in dur.trim().chars() {
        match c {
            '0'..='9' => num.push(c),
            'h' | 'm' | 's' => {
                let n: i64 = num
                    .parse()
                    .map_err(|_| format!("window `{text}`: bad duration `{dur}`"))?;
                secs += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                num.clear();
            }
            _ => {
                return Err(format!(
                    "window `{text}`: bad duration `{dur}` (use 2h, 90m, 1h30m)"
                ));
            }
        }
    }
    if !num.is_empty() || secs <= 0 {
        return Err(format!(
            "window `{text}`: bad duration `{dur}` (use 2h, 90m, 1h30m)"
        ));
    }
    Ok((start, start + secs))
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
        timeout: o.migrate_timeout,
        timeout_secs: o.migrate_timeout.as_secs(),
        undo: if undoable { Some(cmd(!enter)?) } else { None },
        noop: None,
        only_if: None,
        detail: json!({"kind": "maintenance", "node": node, "enter": enter}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::ClusterHealth;
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
