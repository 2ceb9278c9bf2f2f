//! The operation's words for people: the plan as printed before anything runs, and the
//! runbook written beside the evidence (gates, updates, placement, affected guests, steps,
//! success criteria, rollback).

use crate::plan::Plan;
use crate::snapshot::Snapshot;

/// The plan as printed before anything runs: gates, then the exact commands in order.
pub fn plan_text(plan: &Plan) -> String {
    let mut s = format!("plan: {}\n", plan.operation);
    for g in &plan.gates {
        s.push_str(&format!(
            "  gate {:<28} {} {}\n",
            g.name,
            if g.passed { "ok     " } else { "REFUSED" },
            g.message
        ));
    }
    for u in &plan.updates {
        s.push_str(&format!(
            "  update {}: {} to install, {} to remove; reboot: {} ({})\n",
            u.node,
            u.installs.len(),
            u.removals.len(),
            u.reboot,
            u.reboot_reason
        ));
        for line in package_lines(u) {
            s.push_str(&format!("      {line}\n"));
        }
    }
    for st in &plan.steps {
        if let Some(w) = plan.wave_at(st.seq) {
            let seqs: Vec<String> = w.steps.iter().map(|n| n.to_string()).collect();
            s.push_str(&format!(
                "  wave {}: steps {} at once (up to {} migrations: {})\n",
                w.wave,
                seqs.join(", "),
                plan.max_migrations,
                plan.max_migrations_from
            ));
        }
        match &st.command {
            Some(c) => s.push_str(&format!(
                "  step {} on {}: {}{}\n      $ {}\n",
                st.seq,
                st.on,
                st.title,
                condition(st),
                c.script
            )),
            None => match &st.noop {
                Some(why) => s.push_str(&format!("  step {} (no-op): {why}\n", st.seq)),
                // A wait: no command, a state polled until it holds.
                None => s.push_str(&format!(
                    "  step {} on {}: {}{} (waits, sends no command)\n",
                    st.seq,
                    st.on,
                    st.title,
                    condition(st)
                )),
            },
        }
    }
    s
}

/// For each guest the plan touches (a restore: each guest of the journal's home line), where
/// it is, where it belongs, and what will happen to it.
pub(super) fn placement_table(plan: &Plan, live: &Snapshot) -> String {
    let esc = crate::markdown::md;
    let mut s = String::from(
        "\n## Placement\n\n| VMID | Now on | Home | State now → at home | What happens |\n| --- | --- | --- | --- | --- |\n",
    );
    for h in &plan.home {
        let g = live
            .resources
            .iter()
            .find(|r| r.is_guest() && r.vmid == Some(h.vmid));
        let now_on = g
            .and_then(|g| g.node.clone())
            .unwrap_or_else(|| "(gone)".into());
        let state = g.and_then(|g| g.status.clone()).unwrap_or_default();
        let lock = g
            .and_then(|g| g.lock.clone())
            .map(|l| format!(", locked {l}"))
            .unwrap_or_default();
        let action = plan
            .steps
            .iter()
            .filter(|st| st.detail.vmid() == Some(h.vmid))
            .map(|st| format!("step {}: {}", st.seq, st.title))
            .collect::<Vec<_>>();
        let action = if action.is_empty() {
            if g.is_none() {
                "nothing: gone from the cluster".to_string()
            } else {
                "nothing: it is home".to_string()
            }
        } else {
            action.join("; ")
        };
        s.push_str(&format!(
            "| {} | {} | {} | {}{} → {} | {} |\n",
            h.vmid,
            esc(&now_on),
            esc(&h.node),
            esc(&state),
            esc(&lock),
            esc(&h.status),
            esc(&action)
        ));
    }
    s
}

/// The runbook: window, affected guests, backups, steps, success criteria, rollback, gates.
pub fn runbook(plan: &Plan, before: &Snapshot, now: jiff::Timestamp) -> String {
    let esc = crate::markdown::md;
    let mut s = format!(
        "# Runbook: {}\n\nPrepared {} from a snapshot taken {}.\n\n",
        esc(&plan.operation),
        now.round(jiff::Unit::Second).unwrap_or(now),
        esc(&before.taken_at)
    );
    s.push_str("## Gates\n\n| Gate | Result | Detail |\n| --- | --- | --- |\n");
    for g in &plan.gates {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            esc(&g.name),
            if g.passed { "passed" } else { "**REFUSED**" },
            esc(&g.message)
        ));
    }
    if !plan.updates.is_empty() {
        s.push_str("\n## Updates\n");
        for u in &plan.updates {
            s.push_str(&format!(
                "\n### {}: {} to install, {} to remove; reboot: {}\n\n{}\n\n",
                esc(&u.node),
                u.installs.len(),
                u.removals.len(),
                esc(&u.reboot.to_string()),
                esc(&u.reboot_reason)
            ));
            if u.installs.is_empty() && u.removals.is_empty() {
                s.push_str("Nothing to install: the node is skipped.\n");
            } else {
                s.push_str("| Package | Installed | New |\n| --- | --- | --- |\n");
            }
            for i in &u.installs {
                s.push_str(&format!(
                    "| {} | {} | {} |\n",
                    esc(&i.package),
                    esc(i.old_version.as_deref().unwrap_or("(new)")),
                    esc(&i.new_version)
                ));
            }
            for r in &u.removals {
                s.push_str(&format!(
                    "| {} | {} | (removed) |\n",
                    esc(&r.package),
                    esc(r.version.as_deref().unwrap_or(""))
                ));
            }
            if !u.kept_back.is_empty() {
                s.push_str(&format!(
                    "\nKept back by apt (not installed): {}\n",
                    esc(&u.kept_back.join(", "))
                ));
            }
        }
    }
    if !plan.home.is_empty() {
        s.push_str(&placement_table(plan, before));
    }
    s.push_str("\n## Affected guests\n\n| VMID | Kind | Name | Node | Status | HA | Target | Newest backup |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for a in &plan.affected {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a.vmid,
            a.kind,
            esc(&a.name),
            esc(&a.node),
            esc(&a.status),
            if a.ha { "yes" } else { "no" },
            esc(a.target.as_deref().unwrap_or("chosen by HA")),
            a.backup_age_hours
                .map(|h| format!("{h:.0} h ago"))
                .unwrap_or_else(|| "none".into())
        ));
    }
    s.push_str("\n## Steps\n\n");
    if !plan.waves.is_empty() {
        s.push_str(&format!(
            "Up to {} migrations at once ({}): the steps of a wave start together, and the next wave starts when every one of them is verified. When one fails, the others of its wave run to their end and nothing after starts.\n\n",
            plan.max_migrations,
            esc(&plan.max_migrations_from)
        ));
    }
    for st in &plan.steps {
        if let Some(w) = plan.wave_at(st.seq) {
            let seqs: Vec<String> = w.steps.iter().map(|n| n.to_string()).collect();
            s.push_str(&format!(
                "**Wave {}**: steps {} at once.\n\n",
                w.wave,
                seqs.join(", ")
            ));
        }
        match &st.command {
            Some(c) => s.push_str(&format!(
                "{}. {}{} (on {}, timeout {} s)\n\n   ```sh\n   {}\n   ```\n\n   Undo: `{}`\n\n",
                st.seq,
                esc(&st.title),
                esc(&condition(st)),
                esc(&st.on),
                st.timeout_secs,
                c.script,
                st.undo
                    .as_ref()
                    .map(|u| u.script.replace('`', "'"))
                    .unwrap_or_else(|| "nothing to undo".into())
            )),
            None => s.push_str(&format!(
                "{}. No-op: {}\n\n",
                st.seq,
                esc(st.noop.as_deref().unwrap_or(""))
            )),
        }
    }
    s.push_str("## Success criteria\n\n");
    for c in &plan.success_criteria {
        s.push_str(&format!("- {}\n", esc(c)));
    }
    s.push_str("\n## Rollback\n\n");
    if plan.rollback.is_empty() {
        s.push_str("Nothing to roll back.\n");
    }
    for r in &plan.rollback {
        s.push_str(&format!("- {}\n", esc(r)));
    }
    s
}

/// ` (only if …)` for a step that runs only when its condition holds at the time.
pub(super) fn condition(st: &crate::plan::Step) -> String {
    match &st.only_if {
        Some(crate::plan::Condition::RebootNeeded { node }) => format!(
            " (only if {node} then asks for a reboot: /run/reboot-required, or a kernel newer than the running one)"
        ),
        Some(crate::plan::Condition::GuestOn { vmid, node }) => {
            format!(" (only if guest {vmid} is on {node} then: its migration there succeeded)")
        }
        None => String::new(),
    }
}

/// `pve-manager 9.1.1 → 9.1.2` per package of one node's update, removals and kept-back ones.
pub(super) fn package_lines(u: &crate::plan::NodeUpdate) -> Vec<String> {
    u.installs
        .iter()
        .map(|i| {
            format!(
                "{} {} → {}",
                i.package,
                i.old_version.as_deref().unwrap_or("(new)"),
                i.new_version
            )
        })
        .chain(u.removals.iter().map(|r| {
            format!(
                "{} {} → (removed)",
                r.package,
                r.version.as_deref().unwrap_or("")
            )
        }))
        .chain(
            (!u.kept_back.is_empty())
                .then(|| format!("kept back by apt: {}", u.kept_back.join(", "))),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Step, Verify};
    use std::time::Duration;

    fn step(seq: u32, verify: Option<Verify>, noop: Option<&str>) -> Step {
        Step {
            seq,
            title: "wait for the migration of guest 100".into(),
            on: "pve1".into(),
            command: None,
            detached: false,
            verify,
            timeout: Duration::from_secs(60),
            timeout_secs: 60,
            undo: None,
            noop: noop.map(str::to_string),
            only_if: None,
            detail: Action::Wait { vmid: 100 },
        }
    }

    /// A wait is not a no-op: it says what it waits for; a no-op says why, never an empty line.
    #[test]
    fn waits_and_no_ops_each_say_what_they_are() {
        let plan = Plan {
            operation: "restore".into(),
            steps: vec![
                step(1, Some(Verify::GuestUnlocked { vmid: 100 }), None),
                step(2, None, Some("guest 100 is home")),
            ],
            ..Default::default()
        };
        let text = plan_text(&plan);
        assert!(
            text.contains(
                "  step 1 on pve1: wait for the migration of guest 100 (waits, sends no command)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  step 2 (no-op): guest 100 is home\n"),
            "{text}"
        );
        assert!(!text.contains("(no-op): \n"), "{text}");
    }
}
