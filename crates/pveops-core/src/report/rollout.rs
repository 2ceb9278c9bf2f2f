//! A rolling update's rows: per node what the plan meant to do, what the steps did and what
//! the before/after diff shows; the report's Updates section and the change log read them.

use serde::Serialize;

use crate::diff::DiffKind;
use crate::journal::StepOutcome;
use crate::snapshot::Snapshot;

/// One node of a rolling update, as the report's Updates section and the change log show it.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutRow {
    pub node: String,
    /// `updated`, `FAILED: …`, `skipped: nothing to install`, `not reached: …`.
    pub outcome: String,
    /// `pve-manager 9.1.1 → 9.1.2, kernel 6.17.2-1-pve → 6.17.4-1-pve`, from the diff.
    pub versions: String,
    /// `rebooted (new boot id)`, `not needed: …`, `no`.
    pub reboot: String,
    /// The node's upgrade or reboot failed (a follow-up).
    #[serde(skip)]
    pub failed: bool,
}

impl RolloutRow {
    /// The row as one change-log line.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.node, self.outcome);
        if !self.versions.is_empty() {
            s.push_str(&format!("; {}", self.versions));
        }
        s.push_str(&format!("; reboot: {}", self.reboot));
        s
    }
}

/// The rows of a rolling update: per node what the plan meant to do, what the executed steps
/// did, and what the before/after diff shows (versions, kernel, boot id).
pub fn rollout_rows(
    plan: &crate::plan::Plan,
    done: &[crate::journal::Done],
    differences: &[crate::diff::Difference],
    snap: &Snapshot,
) -> Vec<RolloutRow> {
    let target_of = |pve: &str| {
        snap.nodes
            .iter()
            .find(|n| n.pve_node.as_deref() == Some(pve) || n.name == pve)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| pve.to_string())
    };
    let step_of = |upgrade: bool, node: &str| {
        plan.steps
            .iter()
            .find(|s| match &s.detail {
                crate::plan::Action::Upgrade { node: n, .. } => upgrade && n == node,
                crate::plan::Action::Reboot { node: n } => !upgrade && n == node,
                _ => false,
            })
            .map(|s| (s, done.iter().find(|d| d.seq == s.seq)))
    };
    plan.updates
        .iter()
        .map(|u| {
            let target = target_of(&u.node);
            let mine = |d: &&crate::diff::Difference| {
                d.node.as_deref() == Some(target.as_str()) || d.node.as_deref() == Some(&u.node)
            };
            let mut versions: Vec<String> = differences
                .iter()
                .filter(mine)
                .filter(|d| d.kind == DiffKind::Package)
                .map(|d| {
                    format!(
                        "{} {} → {}",
                        d.subject.as_deref().unwrap_or("?"),
                        d.before.as_deref().unwrap_or("(none)"),
                        d.after.as_deref().unwrap_or("(none)")
                    )
                })
                .collect();
            if let Some(k) = differences
                .iter()
                .filter(mine)
                .find(|d| d.kind == DiffKind::Kernel)
            {
                versions.push(format!(
                    "running kernel {} → {}",
                    k.before.as_deref().unwrap_or("?"),
                    k.after.as_deref().unwrap_or("?")
                ));
            }
            let rebooted = differences
                .iter()
                .filter(mine)
                .any(|d| d.kind == DiffKind::NodeRebooted);
            // (outcome, reboot, failed, rebooted by its step)
            let (outcome, reboot, failed, reboot_ok) = match step_of(true, &u.node) {
                None => (
                    "skipped: nothing to install".to_string(),
                    if u.reboot_due {
                        format!("no ({})", u.reboot_reason)
                    } else {
                        "no".to_string()
                    },
                    false,
                    false,
                ),
                Some((_, None)) => (
                    "not reached: the rollout stopped before this node".to_string(),
                    "no".to_string(),
                    false,
                    false,
                ),
                Some((_, Some(d))) if d.outcome != StepOutcome::Ok => (
                    format!("FAILED: {}", d.message),
                    "no (the upgrade failed first)".to_string(),
                    true,
                    false,
                ),
                Some((_, Some(_))) => {
                    let (reboot, failed, ok) = match step_of(false, &u.node) {
                        Some((_, Some(r))) if r.outcome == StepOutcome::Ok => {
                            ("rebooted (new boot id)".to_string(), false, true)
                        }
                        Some((_, Some(r))) if r.outcome == StepOutcome::Skipped => {
                            (format!("not needed ({})", r.message), false, false)
                        }
                        Some((_, Some(r))) => (format!("FAILED: {}", r.message), true, false),
                        Some((_, None)) => ("not reached".to_string(), false, false),
                        None => ("no".to_string(), false, false),
                    };
                    (
                        format!(
                            "updated ({} package(s))",
                            u.installs.len() + u.removals.len()
                        ),
                        reboot,
                        failed,
                        ok,
                    )
                }
            };
            let reboot = if rebooted && !reboot_ok {
                format!("{reboot}; the node rebooted (its boot id changed)")
            } else {
                reboot
            };
            RolloutRow {
                node: u.node.clone(),
                outcome,
                versions: versions.join(", "),
                reboot,
                failed,
            }
        })
        .collect()
}
