//! The operation loop: assess (before-snapshot and gates) → plan (runbook) → confirm → execute
//! (journaled steps, each verified) → verify (after-snapshot, diff, checks) → record (report,
//! change log). Joins the pieces; the decisions are in `pveops_core::plan` and `executor`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::check::Check;
use crate::executor::{Outcome, Runner};
use crate::inventory::Node;
use crate::journal::StepOutcome;
use crate::plan::{Action, Operation, Plan};
use crate::signals::Signals;
use crate::snapshot::Snapshot;

mod next;
mod reads;
mod runbook;
use next::{failed_followup, next_steps, print_next};
use reads::{migrations_at_once, preflight, read_space, refresh};
pub use runbook::{plan_text, runbook};

/// One operation run as the caller resolved it: the nodes to reach, how, and the operator's
/// choices. Built by the command line (or any other caller); the loop knows no CLI type.
pub struct Request {
    pub op: Operation,
    /// The targets as the operator named them (the change log records these).
    pub targets: Vec<String>,
    /// The nodes to snapshot, resolved (and discovered) by the caller.
    pub nodes: Vec<Node>,
    /// How commands reach the nodes (connector, templates, command limit, `--parallel`).
    pub fleet: Arc<crate::fleet::Fleet>,
    /// The directory that overrides the embedded templates (the report's too).
    pub template_dir: Option<PathBuf>,
    pub checks: Vec<Check>,
    /// The evidence directory; none: `pveops-evidence/<stamp>-<operation>-<subject>`.
    pub out: Option<PathBuf>,
    pub changelog: PathBuf,
    /// Confirmed beforehand (`--yes`); else the operator is asked on the terminal.
    pub yes: bool,
    /// Plan and write the runbook, change nothing.
    pub dry_run: bool,
    /// `login@host` for the change log and the report.
    pub operator: String,
    pub choices: crate::plan::Choices,
    /// Migrations at once (`--max-migrations`); none: `max_workers` of datacenter.cfg, else 1.
    pub max_migrations: Option<u32>,
}

/// Runs one operation end to end; returns the exit status.
pub async fn run(req: Request) -> Result<i32, crate::Error> {
    let started = jiff::Timestamp::now();
    let Request {
        op,
        targets,
        nodes,
        fleet,
        checks,
        ..
    } = &req;
    let templates = &fleet.templates;
    let checks = checks.as_slice();
    let now = || jiff::Timestamp::now().as_second();
    let collector = crate::collect::Collector {
        fleet: fleet.clone(),
        only: Vec::new(),
        upgrade_checklist: false,
        package_state: matches!(op, Operation::Update { .. }),
        raw_sink: None,
    };
    let subject = match &op {
        Operation::Migrate { vmid, .. } => vmid.to_string(),
        Operation::Drain { node, .. } | Operation::Maintenance { node, .. } => node.clone(),
        Operation::Restore { .. } => "journal".into(),
        Operation::Reboot { nodes } | Operation::Update { nodes, .. } => nodes.join("-"),
    };
    let name = match &op {
        Operation::Migrate { .. } => "migrate",
        Operation::Drain { .. } => "drain",
        Operation::Maintenance { .. } => "maintenance",
        Operation::Restore { .. } => "restore",
        Operation::Reboot { .. } => "reboot",
        Operation::Update { .. } => "update",
    };
    let restoring = matches!(op, Operation::Restore { .. });
    // Every output is opened before anything is read or changed: an evidence directory or a
    // change log that cannot be written ends the run here (exit 3), not after the changes.
    let mut bundle =
        crate::evidence::Bundle::create_fresh(req.out.as_deref(), name, Some(&subject), started)?;
    if !req.dry_run {
        crate::changelog::ensure_writable(&req.changelog)?;
    }
    // From here on SIGINT, SIGTERM and SIGHUP end the operation only the way it decides.
    let mut signals = Signals::new();
    eprintln!("{}: assessing {} node(s)", op.name(), nodes.len());
    let (mut before, mut raws_before) = or_signal(
        &mut signals,
        op,
        collector.collect(nodes.clone(), checks, |_| {}),
    )
    .await??;
    crate::check::evaluate_into(&mut before, checks, now());
    // A node that did not answer is said at once, with its cause: the gates may not need it
    // (a migration target is reached by PVE, not by pveops), but the operator must not learn
    // of it only from the report.
    for n in before.nodes.iter().filter(|n| !n.reachable) {
        eprintln!(
            "{}: {}",
            op.name(),
            n.error
                .clone()
                .unwrap_or_else(|| format!("{} did not answer", n.name))
        );
    }
    let runner = Runner {
        fleet: fleet.clone(),
        nodes: before
            .nodes
            .iter()
            .zip(nodes.iter())
            .map(|(s, n)| {
                (
                    s.pve_node.clone().unwrap_or_else(|| n.name.clone()),
                    n.clone(),
                )
            })
            .collect(),
        answered: before
            .nodes
            .iter()
            .zip(nodes.iter())
            .filter(|(s, _)| s.reachable)
            .map(|(s, n)| s.pve_node.clone().unwrap_or_else(|| n.name.clone()))
            .collect(),
        poll_every: Duration::from_millis(500),
    };
    // `update`: fresh package lists first (a change to the lists only, journaled), then the
    // assessment again, so the plan shows what apt will really install.
    let mut journal: Option<crate::journal::Journal> = None;
    let mut refresh_failures = BTreeMap::new();
    // A name that is not a member refuses at once: nothing more is read or sent for it.
    let stranger = crate::plan::membership_gate(op, &before).is_some();
    if let Operation::Update {
        nodes: wanted,
        refresh: true,
        ..
    } = &op
        && !stranger
    {
        let j = journal.insert(crate::journal::Journal::create(
            &bundle.dir.join("journal.jsonl"),
        )?);
        refresh_failures = or_signal(
            &mut signals,
            op,
            refresh(&runner, &before, wanted, j, &mut bundle),
        )
        .await??;
        let (again, raws) = or_signal(
            &mut signals,
            op,
            collector.collect(nodes.clone(), checks, |_| {}),
        )
        .await??;
        before = again;
        raws_before = raws;
        crate::check::evaluate_into(&mut before, checks, now());
    }
    let space = match &op {
        Operation::Update { nodes: wanted, .. } if !stranger => {
            read_space(&runner, &before, wanted, &mut bundle).await?
        }
        _ => BTreeMap::new(),
    };
    let (prechecks, (max_migrations, max_migrations_from)) = if stranger {
        (Default::default(), (1, "the default".to_string()))
    } else {
        or_signal(&mut signals, op, async {
            (
                preflight(&runner, op, &before).await,
                migrations_at_once(&runner, op, req.max_migrations).await,
            )
        })
        .await?
    };
    let opts = crate::plan::Options {
        choices: req.choices.clone(),
        now: started.as_second(),
        upgrade_timeout: Duration::from_secs(match &op {
            Operation::Update {
                upgrade_timeout_secs,
                ..
            } => *upgrade_timeout_secs,
            _ => 1800,
        }),
        refresh_failures,
        space,
        max_migrations,
        max_migrations_from,
    };
    let plan = crate::plan::plan(op, &before, &prechecks, templates, &opts)?;
    bundle.write_raw(&raws_before)?;
    bundle.write("before.json", before.to_json().as_bytes())?;
    let runbook = runbook(&plan, &before, started);
    bundle.write("runbook.md", runbook.as_bytes())?;
    eprint!("{}", plan_text(&plan));
    let evidence_dir = bundle.dir.display().to_string();
    let record = |outcome: &str,
                  followups: Vec<String>,
                  per_node: Vec<String>|
     -> Result<(), crate::Error> {
        crate::changelog::append(
            &req.changelog,
            &crate::changelog::Entry {
                time: jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or(started)
                    .to_string(),
                operator: req.operator.clone(),
                targets: targets.clone(),
                operation: plan.operation.clone(),
                outcome: outcome.into(),
                evidence: evidence_dir.clone(),
                followups,
                nodes: per_node,
            },
        )
    };
    if let Some(g) = plan.refused() {
        eprintln!(
            "{}: refused by gate {}: {}",
            plan.operation, g.name, g.message
        );
        if !req.dry_run {
            record(
                "failed",
                vec![format!("gate {} refused: {}", g.name, g.message)],
                Vec::new(),
            )?;
        }
        write_report(
            &req,
            &bundle,
            &plan,
            &before,
            None,
            &[],
            &[],
            "refused by a gate (nothing changed)",
            2,
            started,
        )?;
        return Ok(2);
    }
    if req.dry_run {
        bundle.sync()?;
        eprintln!(
            "{}: dry run, nothing changed; runbook: {}",
            plan.operation,
            bundle.dir.join("runbook.md").display()
        );
        return Ok(0);
    }
    // The plan and the before-snapshot are on disk before the first change.
    bundle.sync()?;
    let yes = req.yes;
    let answer = or_signal(
        &mut signals,
        op,
        tokio::task::spawn_blocking(move || confirm(yes)),
    )
    .await?
    .unwrap_or(Ok(false))?;
    if !answer {
        eprintln!(
            "{}: declined at the prompt, nothing changed (exit {})",
            plan.operation,
            crate::EXIT_DECLINED
        );
        return Ok(crate::EXIT_DECLINED);
    }
    let mut journal = match journal {
        Some(j) => j,
        None => crate::journal::Journal::create(&bundle.dir.join("journal.jsonl"))?,
    };
    // Where every guest the operation may touch runs now: what `restore` converges to.
    journal.write(&crate::journal::Entry {
        seq: 0,
        step: "where each guest the operation may touch runs before it".into(),
        command: None,
        phase: "home".into(),
        time: crate::journal::now(),
        outcome: None,
        exit_code: None,
        verified: None,
        message: None,
        undo: None,
        detail: Some(Action::Home {
            guests: plan.home.clone(),
        }),
    })?;
    let (outcome, done) = runner.execute(&plan, &mut journal, &mut signals).await?;
    for d in &done {
        let Some(log) = &d.log else { continue };
        let Some(step) = plan.steps.iter().find(|s| s.seq == d.seq) else {
            continue;
        };
        let target = runner
            .nodes
            .iter()
            .find(|(pve, _)| *pve == step.on)
            .map(|(_, n)| n.name.clone())
            .unwrap_or_else(|| step.on.clone());
        let name = match &step.detail {
            Action::Upgrade { .. } => "apt-dist-upgrade.log".to_string(),
            kind => format!("step-{}-{}.log", d.seq, kind.word()),
        };
        let rc = log.rc.and_then(|c| u32::try_from(c).ok());
        bundle.write_node_text(&target, &name, &d.command, rc, &log.log)?;
    }
    // Skipped steps said so as they were reached; what failed or was cut short is repeated
    // here, after the run's own output.
    for d in done
        .iter()
        .filter(|d| !matches!(d.outcome, StepOutcome::Ok | StepOutcome::Skipped))
    {
        eprintln!("  step {} {}: {} ({})", d.seq, d.outcome, d.step, d.message);
    }
    let restore = format!("pveops restore --journal {}", journal.path().display());
    if let Outcome::Aborted { seq, signal } = &outcome {
        // A second signal from now on ends the process at once; this one is recorded first.
        signals.exit_on_next();
        // The step the signal ended had started (a migration in flight goes on).
        let next = next_steps(&plan, &done, &restore, true);
        record(
            "aborted",
            std::iter::once(format!(
                "interrupted by {} at step {seq}; see {}",
                signal.name(),
                journal.path().display()
            ))
            .chain(next.iter().cloned())
            .collect(),
            Vec::new(),
        )?;
        let rollout = crate::report::rollout_rows(&plan, &done, &[], &before);
        write_report(
            &req,
            &bundle,
            &plan,
            &before,
            Some(&done),
            &[],
            &rollout,
            &format!("interrupted by {} at step {seq}", signal.name()),
            signal.exit_code(),
            started,
        )?;
        eprintln!(
            "{}: interrupted by {} at step {seq}; the journal is {}",
            plan.operation,
            signal.name(),
            journal.path().display()
        );
        print_next(&next);
        return Err(crate::Error::Signal(*signal));
    }
    let after = or_signal(
        &mut signals,
        op,
        collector.collect(nodes.clone(), checks, |_| {}),
    )
    .await;
    let (mut after, raws_after) = match after {
        Ok(a) => a?,
        Err(crate::Error::Signal(sig)) => {
            let next = next_steps(&plan, &done, &restore, true);
            record(
                "aborted",
                std::iter::once(format!(
                    "interrupted by {} after the last step, during the after-snapshot: the changes were made and verified, the after-snapshot and its diff are missing",
                    sig.name()
                ))
                .chain(next.iter().cloned())
                .collect(),
                Vec::new(),
            )?;
            print_next(&next);
            return Err(crate::Error::Signal(sig));
        }
        Err(e) => return Err(e),
    };
    crate::check::evaluate_into(&mut after, checks, now());
    bundle.write_raw(&raws_after)?;
    bundle.write("after.json", after.to_json().as_bytes())?;
    let diffs = crate::diff::diff(&before, &after);
    let (code, outcome_word, summary) = match &outcome {
        Outcome::Failed { seq, message } => (2, "failed", format!("step {seq} failed: {message}")),
        _ => {
            let worse = new_findings(&plan, &before, &after);
            let code = if worse.iter().any(|s| {
                matches!(
                    s,
                    crate::finding::Severity::Critical | crate::finding::Severity::Unknown
                )
            }) {
                2
            } else if worse.is_empty() {
                0
            } else {
                1
            };
            (
                code,
                if restoring { "rolled-back" } else { "success" },
                "every step verified".to_string(),
            )
        }
    };
    let rollout = crate::report::rollout_rows(&plan, &done, &diffs, &after);
    let followups: Vec<String> = rollout
        .iter()
        .filter(|r| r.failed)
        .map(|r| r.line())
        .chain(
            after
                .findings
                .iter()
                .filter(|f| {
                    matches!(
                        f.severity,
                        crate::finding::Severity::Warning | crate::finding::Severity::Critical
                    )
                })
                .map(|f| {
                    format!(
                        "{} {}: {}",
                        f.severity.word().to_uppercase(),
                        f.check,
                        f.message
                    )
                }),
        )
        .chain(match &outcome {
            Outcome::Failed { seq, message } => {
                Some(failed_followup(&plan, *seq, message, &restore))
            }
            _ => None,
        })
        .collect();
    record(
        outcome_word,
        followups,
        rollout.iter().map(|r| r.line()).collect(),
    )?;
    write_report(
        &req,
        &bundle,
        &plan,
        &after,
        Some(&done),
        &diffs,
        &rollout,
        &summary,
        code,
        started,
    )?;
    eprintln!(
        "{}: {summary}; evidence: {}",
        plan.operation,
        bundle.dir.join("report.md").display()
    );
    if matches!(outcome, Outcome::Failed { .. }) {
        print_next(&next_steps(&plan, &done, &restore, true));
    }
    Ok(code)
}

/// Runs `f` unless a signal comes first: then the operation ends with that signal, having
/// changed nothing at this point (what was changed before is journaled).
async fn or_signal<T>(
    signals: &mut Signals,
    op: &Operation,
    f: impl std::future::Future<Output = T>,
) -> Result<T, crate::Error> {
    tokio::select! {
        biased;
        sig = signals.wait() => {
            eprintln!("{}: interrupted by {}", op.name(), sig.name());
            Err(crate::Error::Signal(sig))
        }
        v = f => Ok(v),
    }
}

/// The severities of findings in `after` that were not in `before`.
/// The severities of the findings the operation brought (judged as `verify` judges them),
/// except what it set out to leave behind: a node it put into HA maintenance and did not take
/// out again (`maintenance enter`, a drain through node maintenance).
fn new_findings(
    plan: &crate::plan::Plan,
    before: &Snapshot,
    after: &Snapshot,
) -> Vec<crate::finding::Severity> {
    let left_in_maintenance = |node: &str| {
        plan.steps
            .iter()
            .rev()
            .find_map(|s| match &s.detail {
                crate::plan::Action::Maintenance { node: n, enter }
                    if n == node
                        || after
                            .node(node)
                            .is_some_and(|x| x.pve_node.as_deref() == Some(n.as_str())) =>
                {
                    Some(*enter)
                }
                _ => None,
            })
            .unwrap_or(false)
    };
    crate::diff::compare_findings(before, after)
        .new
        .iter()
        .filter(|f| {
            !(f.check == "ha.node-not-in-maintenance"
                && f.node.as_deref().is_some_and(left_in_maintenance))
        })
        .map(|f| f.severity)
        .collect()
}

fn confirm(yes: bool) -> Result<bool, crate::Error> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::Error::Usage(
            "this changes the cluster: confirm on a terminal, or pass --yes".into(),
        ));
    }
    eprint!("Run these steps? [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| crate::Error::io(std::path::Path::new("<stdin>"), "read", e))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    req: &Request,
    bundle: &crate::evidence::Bundle,
    plan: &Plan,
    snap: &Snapshot,
    done: Option<&[crate::executor::Done]>,
    diffs: &[crate::diff::Difference],
    rollout: &[crate::report::RolloutRow],
    outcome: &str,
    code: i32,
    started: jiff::Timestamp,
) -> Result<(), crate::Error> {
    let hb = crate::report::registry(req.template_dir.as_deref())?;
    let summary = crate::report::Summary {
        command: plan.operation.clone(),
        operator: req.operator.clone(),
        targets: snap
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
        started_at: started
            .round(jiff::Unit::Second)
            .unwrap_or(started)
            .to_string(),
        outcome: outcome.into(),
        // The word of the exit status, not of the cluster's findings: a drain that verified
        // every step exits 0 on a cluster that had a critical finding before it.
        status: crate::finding::Severity::from_exit_code(code)
            .word()
            .to_uppercase(),
        exit_status: code,
        pveops_version: env!("CARGO_PKG_VERSION").into(),
    };
    let changes: Vec<serde_json::Value> = done
        .unwrap_or(&[])
        .iter()
        .map(|d| {
            json!({
                "step": format!("{}. {}", d.seq, d.step),
                "command": d.command,
                "started": d.started,
                "duration": format!("{:.1} s", d.duration_ms as f64 / 1000.0),
                "exit": d.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                "verified": format!("{} ({})", if d.verified { "yes" } else { "NO" }, d.message),
            })
        })
        .collect();
    let report = crate::report::render_with_changes(
        &hb,
        &summary,
        snap,
        diffs,
        &changes,
        rollout,
        &bundle.raw_files,
    )?;
    bundle.write("report.md", report.as_bytes())?;
    bundle.sync()
}
