//! What the operator does next after a failure or an interruption: the restore command and
//! the repairs the journal shows to be needed, printed as the last lines on the terminal and
//! written to the report's follow-ups and the change log.

use crate::executor::Done;
use crate::journal::StepOutcome;
use crate::plan::{Action, Plan};

/// What the operator does next after a failure or an interruption, most important first: the
/// restore command, then a repair the journal shows to be needed.
pub(super) fn next_steps(plan: &Plan, done: &[Done], restore: &str, started: bool) -> Vec<String> {
    if done.is_empty() && !started {
        return Vec::new();
    }
    let mut out = vec![format!("to bring every guest home: {restore}")];
    let ok_steps = || {
        done.iter()
            .filter(|d| d.outcome == StepOutcome::Ok)
            .filter_map(|d| plan.steps.iter().find(|s| s.seq == d.seq))
    };
    for d in done.iter().filter(|d| d.outcome == StepOutcome::Failed) {
        if let Some(s) = plan.steps.iter().find(|s| s.seq == d.seq)
            && let Action::Upgrade { node, .. } = &s.detail
        {
            out.push(format!(
                "repair the packages on {node}: `dpkg --configure -a`, then `apt-get -f install` (apt's log is in the evidence's raw/{node}/)"
            ));
        }
    }
    let maintenance = |enter: bool| -> Vec<String> {
        ok_steps()
            .filter_map(|s| match &s.detail {
                Action::Maintenance { node, enter: e } if *e == enter => Some(node.clone()),
                _ => None,
            })
            .collect()
    };
    let (entered, left) = (maintenance(true), maintenance(false));
    for n in entered.iter().filter(|n| !left.contains(n)) {
        out.push(format!(
            "{n} is in HA maintenance (restore leaves it): by hand `ha-manager crm-command node-maintenance disable {n}`"
        ));
    }
    let noout = |set: bool| {
        ok_steps()
            .filter(|s| matches!(&s.detail, Action::CephNoout { set: x, .. } if *x == set))
            .count()
    };
    if noout(true) > noout(false) {
        out.push(
            "Ceph's noout flag is set (restore unsets it once the OSDs are back): by hand `ceph osd unset noout`".into(),
        );
    }
    out
}

/// The next steps as the last lines on the terminal.
pub(super) fn print_next(next: &[String]) {
    for (i, n) in next.iter().enumerate() {
        eprintln!("{} {n}", if i == 0 { "next:" } else { "     " });
    }
}

/// What to do after a failed step, in one sentence.
pub(super) fn failed_followup(plan: &Plan, seq: u32, message: &str, restore: &str) -> String {
    let step = plan.steps.iter().find(|s| s.seq == seq);
    match step.map(|s| (&s.detail, s.on.as_str())) {
        Some((Action::Upgrade { .. }, node)) => format!(
            "step {seq} failed: {message}; {node} stays drained (its guests run elsewhere) and the nodes after it were not touched: repair the packages on {node} (`dpkg --configure -a`, then `apt-get -f install`, the log is in raw/), then `{restore}` brings its guests back"
        ),
        _ => format!("step {seq} failed: {message}; `{restore}` undoes the steps that succeeded"),
    }
}
