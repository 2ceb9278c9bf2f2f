//! The operation loop: assess (before-snapshot and gates) → plan (runbook) → confirm → execute
//! (journaled steps, each verified) → verify (after-snapshot, diff, checks) → record (report,
//! change log). Joins the pieces; the decisions are in `operation` and `execute`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::check::Check;
use crate::command::Templates;
use crate::execute::{Done, Outcome, Runner};
use crate::inventory::Node;
use crate::journal::StepOutcome;
use crate::operation::{Action, Operation, Plan, Prechecks, Preflight};
use crate::session::Connector;
use crate::signals::Signals;
use crate::snapshot::Snapshot;

/// One operation run as the caller resolved it: the nodes to reach, how, and the operator's
/// choices. Built by the command line (or any other caller); the loop knows no CLI type.
pub struct Request {
    pub op: Operation,
    /// The targets as the operator named them (the change log records these).
    pub targets: Vec<String>,
    /// The nodes to snapshot, resolved (and discovered) by the caller.
    pub nodes: Vec<Node>,
    pub connector: Arc<Connector>,
    pub templates: Arc<Templates>,
    /// The directory that overrides the embedded templates (the report's too).
    pub template_dir: Option<PathBuf>,
    pub checks: Vec<Check>,
    pub command_timeout: Duration,
    /// Nodes read at once.
    pub parallel: usize,
    /// The evidence directory; none: `pveops-evidence/<stamp>-<operation>-<subject>`.
    pub out: Option<PathBuf>,
    pub changelog: PathBuf,
    /// Confirmed beforehand (`--yes`); else the operator is asked on the terminal.
    pub yes: bool,
    /// Plan and write the runbook, change nothing.
    pub dry_run: bool,
    /// `login@host` for the change log and the report.
    pub operator: String,
    pub choices: crate::operation::Choices,
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
        connector,
        templates,
        checks,
        ..
    } = &req;
    let checks = checks.as_slice();
    let now = || jiff::Timestamp::now().as_second();
    let collector = crate::collect::Collector {
        connector: connector.clone(),
        templates: templates.clone(),
        command_timeout: req.command_timeout,
        parallel: req.parallel,
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
        connector: connector.clone(),
        templates: templates.clone(),
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
        command_timeout: req.command_timeout,
        poll_every: Duration::from_millis(500),
        sessions: Default::default(),
    };
    // `update`: fresh package lists first (a change to the lists only, journaled), then the
    // assessment again, so the plan shows what apt will really install.
    let mut journal: Option<crate::journal::Journal> = None;
    let mut refresh_failures = BTreeMap::new();
    // A name that is not a member refuses at once: nothing more is read or sent for it.
    let stranger = crate::operation::membership_gate(op, &before).is_some();
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
            refresh(&runner, &before, wanted, templates, j, &mut bundle),
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
            read_space(&runner, &before, wanted, templates, &mut bundle).await?
        }
        _ => BTreeMap::new(),
    };
    let (prechecks, (max_migrations, max_migrations_from)) = if stranger {
        (Default::default(), (1, "the default".to_string()))
    } else {
        or_signal(&mut signals, op, async {
            (
                preflight(&runner, op, &before, templates).await,
                migrations_at_once(&runner, op, req.max_migrations).await,
            )
        })
        .await?
    };
    let opts = crate::operation::Options {
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
    let plan = crate::operation::plan(op, &before, &prechecks, templates, &opts)?;
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
        eprintln!("{}: not confirmed, nothing changed", plan.operation);
        return Ok(64);
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
    for d in done.iter().filter(|d| d.outcome != StepOutcome::Ok) {
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
            let worse = new_findings(&before, &after);
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

/// What the operator does next after a failure or an interruption, most important first: the
/// restore command, then a repair the journal shows to be needed.
fn next_steps(plan: &Plan, done: &[Done], restore: &str, started: bool) -> Vec<String> {
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
fn print_next(next: &[String]) {
    for (i, n) in next.iter().enumerate() {
        eprintln!("{} {n}", if i == 0 { "next:" } else { "     " });
    }
}

/// The lock a failed preflight names (`VM is locked (backup)`, read by the `pve-stderr` parser).
fn locked(stderr: &str) -> Option<String> {
    crate::facts::stderr::parse(stderr)
        .ok()?
        .diagnostics
        .into_iter()
        .find(|d| d.code == "guest-locked")
        .and_then(|d| d.subject)
}

/// What to do after a failed step, in one sentence.
fn failed_followup(plan: &Plan, seq: u32, message: &str, restore: &str) -> String {
    let step = plan.steps.iter().find(|s| s.seq == seq);
    match step.map(|s| (&s.detail, s.on.as_str())) {
        Some((Action::Upgrade { .. }, node)) => format!(
            "step {seq} failed: {message}; {node} stays drained (its guests run elsewhere) and the nodes after it were not touched: repair the packages on {node} (`dpkg --configure -a`, then `apt-get -f install`, the log is in raw/), then `{restore}` brings its guests back"
        ),
        _ => format!("step {seq} failed: {message}; `{restore}` undoes the steps that succeeded"),
    }
}

/// Per node with something to install: the sizes of the versions apt replaces and installs
/// (`apt-cache show PKG=VERSION…`) and the free space where it writes (`df`), both read-only,
/// their output kept in `raw/`.
async fn read_space(
    runner: &Runner,
    before: &Snapshot,
    wanted: &[String],
    templates: &Templates,
    bundle: &mut crate::evidence::Bundle,
) -> Result<BTreeMap<String, crate::operation::NodeSpace>, crate::Error> {
    let mut out = BTreeMap::new();
    for node in wanted {
        let pve = crate::operation::pve_name(before, node);
        let Some(n) = before.node(&pve) else { continue };
        let Some(up) = n.updates.as_ref().filter(|u| !u.installs.is_empty()) else {
            continue;
        };
        let Some(target) = runner.node(&pve).map(|n| n.name.clone()) else {
            continue;
        };
        let specs: Vec<String> = up
            .installs
            .iter()
            .flat_map(|i| {
                std::iter::once(format!("{}={}", i.package, i.new_version)).chain(
                    i.old_version
                        .iter()
                        .map(|old| format!("{}={old}", i.package)),
                )
            })
            .collect();
        let sizes_cmd = templates.render("apt-package-sizes", &json!({ "specs": specs }))?;
        let df_cmd = templates.render("disk-free", &json!({}))?;
        let mut read =
            async |cmd: &crate::command::Command, file: &str| -> Result<String, String> {
                match runner.run_on(&pve, cmd).await {
                    Ok((code, out, err)) => {
                        let _ = bundle.write_node_text(
                            &target,
                            file,
                            &cmd.script,
                            code,
                            &format!("{out}{err}"),
                        );
                        if code == Some(0) {
                            Ok(out)
                        } else {
                            Err(format!(
                                "`{}` exited {}: {}",
                                cmd.script,
                                code.map(|c| c.to_string())
                                    .unwrap_or_else(|| "without status".into()),
                                err.lines().last().unwrap_or("").trim()
                            ))
                        }
                    }
                    Err(e) => Err(e.message),
                }
            };
        let sizes = read(&sizes_cmd, "apt-package-sizes.txt")
            .await
            .and_then(|t| crate::facts::apt_cache_show::parse(&t).map_err(|e| e.to_string()));
        let free = read(&df_cmd, "disk-free.txt")
            .await
            .and_then(|t| crate::facts::df::parse(&t).map_err(|e| e.to_string()));
        out.insert(pve, crate::operation::NodeSpace { sizes, free });
    }
    Ok(out)
}

/// `apt-get update` on every node to update, each journaled (seq 0: before the plan's steps),
/// its output kept in `raw/`; returns the nodes where it failed, with why.
async fn refresh(
    runner: &Runner,
    before: &Snapshot,
    wanted: &[String],
    templates: &Templates,
    journal: &mut crate::journal::Journal,
    bundle: &mut crate::evidence::Bundle,
) -> Result<BTreeMap<String, String>, crate::Error> {
    let cmd = templates.render("apt-update", &json!({}))?;
    let mut failures = BTreeMap::new();
    for node in wanted {
        let pve = crate::operation::pve_name(before, node);
        // A node that does not answer is refused by the node-reachable gate.
        let Some(target) = runner.node(&pve).map(|n| n.name.clone()) else {
            continue;
        };
        eprintln!(
            "  refresh the package lists of {pve}\n      $ {}",
            cmd.script
        );
        let entry = |phase: &str| crate::journal::Entry {
            seq: 0,
            step: format!("refresh the package lists of {pve} (apt-get update)"),
            command: Some(cmd.script.clone()),
            phase: phase.into(),
            time: crate::journal::now(),
            outcome: None,
            exit_code: None,
            verified: None,
            message: None,
            undo: None,
            detail: Some(Action::AptUpdate { node: pve.clone() }),
        };
        journal.write(&entry("start"))?;
        let (outcome, code, message) = match runner.run_on(&pve, &cmd).await {
            Ok((code, out, err)) => {
                let text = format!("{out}{err}");
                bundle.write_node_text(&target, "apt-get-update.txt", &cmd.script, code, &text)?;
                // A repository that could not be fetched shows as apt's `E:` lines
                // (apt-private/private-update.cc `DoUpdate`), their text the reason.
                let log = crate::facts::apt_log::parse(&text).unwrap_or_default();
                match (code, log.failure()) {
                    (Some(0), None) => {
                        (StepOutcome::Ok, code, "package lists refreshed".to_string())
                    }
                    (_, Some(why)) => (StepOutcome::Failed, code, why),
                    (c, None) => (
                        StepOutcome::Failed,
                        c,
                        format!(
                            "exited {}: {}",
                            c.map(|c| c.to_string())
                                .unwrap_or_else(|| "without status".into()),
                            text.lines().last().unwrap_or("").trim()
                        ),
                    ),
                }
            }
            Err(e) => (StepOutcome::Failed, None, e.message),
        };
        if outcome == StepOutcome::Failed {
            eprintln!("    failed: {message}");
            failures.insert(pve.clone(), message.clone());
        }
        journal.write(&crate::journal::Entry {
            outcome: Some(outcome),
            exit_code: code,
            verified: Some(outcome == StepOutcome::Ok),
            message: Some(message),
            ..entry("end")
        })?;
    }
    Ok(failures)
}

/// The severities of findings in `after` that were not in `before`.
fn new_findings(before: &Snapshot, after: &Snapshot) -> Vec<crate::finding::Severity> {
    let key = |f: &crate::finding::Finding| (f.check.clone(), f.node.clone(), f.subject.clone());
    after
        .findings
        .iter()
        .filter(|a| !before.findings.iter().any(|b| key(b) == key(a)))
        .map(|f| f.severity)
        .collect()
}

/// What PVE says about targets before the plan: the migrate preflight of every guest the
/// operation may move (read on its node, parsed by `facts::migrate_preflight`) and, when one of
/// them is HA-managed, the HA rules (`facts::ha_rules`; on PVE ≤ 8 the HA groups and which
/// resource is in which, read as the rules PVE 9 makes of them).
async fn preflight(
    runner: &Runner,
    op: &Operation,
    snap: &Snapshot,
    templates: &Templates,
) -> Prechecks {
    let mut out = Prechecks::default();
    let wanted: Vec<&crate::health::Resource> = snap
        .resources
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "qemu" | "lxc"))
        .filter(|r| match op {
            Operation::Migrate { vmid, .. } => r.vmid == Some(*vmid),
            Operation::Drain { node, .. } => {
                r.node.as_deref() == Some(crate::operation::pve_name(snap, node).as_str())
                    && r.status.as_deref() == Some("running")
            }
            Operation::Reboot { nodes } | Operation::Update { nodes, .. } => {
                nodes.iter().any(|n| {
                    r.node.as_deref() == Some(crate::operation::pve_name(snap, n).as_str())
                }) && r.status.as_deref() == Some("running")
            }
            Operation::Maintenance { .. } | Operation::Restore { .. } => false,
        })
        .collect();
    // A node without the endpoint (PVE < 9 for /cluster/ha/rules and for containers' migrate
    // preflight): nothing to read there (`pve-stderr` kind, code `api-path-missing`).
    let missing =
        |err: &str| crate::facts::stderr::parse(err).is_ok_and(|d| d.has("api-path-missing"));
    let failed = |cmd: &crate::command::Command, code: Option<u32>, err: &str| {
        format!(
            "`{}` exited {}: {}",
            cmd.script,
            code.map(|c| c.to_string())
                .unwrap_or_else(|| "without status".into()),
            err.lines().last().unwrap_or("").trim()
        )
    };
    for r in &wanted {
        let (Some(vmid), Some(node)) = (r.vmid, r.node.clone()) else {
            continue;
        };
        let path = format!("/nodes/{node}/{}/{vmid}/migrate", r.kind);
        let Ok(cmd) = templates.render("pvesh-get", &json!({ "path": path })) else {
            continue;
        };
        // A preflight that cannot be read refuses the gate; an unreachable node has no entry:
        // the node-reachable gate names it.
        if runner.node_answers(&node) {
            let entry = match runner.run_on(&node, &cmd).await {
                Ok((Some(0), text, _)) => match crate::facts::migrate_preflight::parse(&text) {
                    Ok(pf) => Preflight::Read(pf),
                    Err(e) => Preflight::Unreadable(e.to_string()),
                },
                Ok((_, _, err)) if missing(&err) => continue,
                Ok((code, _, err)) => match locked(&err) {
                    Some(lock) => Preflight::Locked(lock),
                    None => Preflight::Unreadable(failed(&cmd, code, &err)),
                },
                Err(e) => Preflight::Unreadable(e.message),
            };
            out.preflight.insert(vmid, entry);
        }
    }
    let ha_node = wanted
        .iter()
        .filter(|r| r.hastate.is_some())
        .filter_map(|r| r.node.clone())
        .find(|n| runner.node_answers(n));
    if let Some(node) = ha_node {
        let read = async |template: &str| -> Result<Option<String>, String> {
            let cmd = templates
                .render(template, &json!({}))
                .map_err(|e| e.to_string())?;
            match runner.run_on(&node, &cmd).await {
                Ok((Some(0), text, _)) => Ok(Some(text)),
                Ok((_, _, err)) if missing(&err) => Ok(None),
                Ok((code, _, err)) => Err(failed(&cmd, code, &err)),
                Err(e) => Err(e.message),
            }
        };
        out.ha_rules = match read("ha-rules").await {
            Ok(Some(text)) => crate::facts::ha_rules::parse(&text).map_err(|e| e.to_string()),
            // PVE ≤ 8 has no rules but HA groups: a restricted one binds as a strict rule does.
            Ok(None) => match (read("ha-groups").await, read("ha-resources").await) {
                (Ok(g), Ok(r)) => {
                    let groups = crate::facts::ha_groups::parse(g.as_deref().unwrap_or("[]"))
                        .map_err(|e| e.to_string());
                    let resources = crate::facts::ha_resources::parse(r.as_deref().unwrap_or("[]"))
                        .map_err(|e| e.to_string());
                    groups.and_then(|g| {
                        resources.map(|r| crate::facts::ha_rules::HaRules::from_groups(&g, &r))
                    })
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            Err(e) => Err(e),
        };
    }
    out
}

/// How many migrations run at once, and where that came from: `--max-migrations`, else (for the
/// operations that move several guests) `max_workers` of datacenter.cfg as PVE's bulk migration
/// uses it (pve-manager `PVE/API2/Nodes.pm` `migrateall`), else 1.
async fn migrations_at_once(runner: &Runner, op: &Operation, asked: Option<u32>) -> (u32, String) {
    if let Some(n) = asked {
        return (n.max(1), "--max-migrations".into());
    }
    if matches!(
        op,
        Operation::Migrate { .. } | Operation::Maintenance { .. }
    ) {
        return (1, "one guest at most".into());
    }
    match runner.cluster_options().await {
        Ok(o) => match o.max_workers {
            Some(n) => (
                u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 64),
                "max_workers in /etc/pve/datacenter.cfg".into(),
            ),
            None => (1, "the default: datacenter.cfg sets no max_workers".into()),
        },
        Err(e) => {
            eprintln!(
                "{}: datacenter.cfg's max_workers could not be read ({e}); one migration at a time",
                op.name()
            );
            (
                1,
                format!("the default: datacenter.cfg could not be read ({e})"),
            )
        }
    }
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
            None => s.push_str(&format!(
                "  step {} (no-op): {}\n",
                st.seq,
                st.noop.as_deref().unwrap_or("")
            )),
        }
    }
    s
}

/// The runbook: window, affected guests, backups, steps, success criteria, rollback, gates.
/// For each guest the plan touches (a restore: each guest of the journal's home line), where
/// it is, where it belongs, and what will happen to it.
fn placement_table(plan: &Plan, live: &Snapshot) -> String {
    let esc = crate::report::md;
    let mut s = String::from(
        "\n## Placement\n\n| VMID | Now on | Home | State now → at home | What happens |\n| --- | --- | --- | --- | --- |\n",
    );
    for h in &plan.home {
        let g = live
            .resources
            .iter()
            .find(|r| matches!(r.kind.as_str(), "qemu" | "lxc") && r.vmid == Some(h.vmid));
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

pub fn runbook(plan: &Plan, before: &Snapshot, now: jiff::Timestamp) -> String {
    let esc = crate::report::md;
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
fn condition(st: &crate::operation::Step) -> String {
    match &st.only_if {
        Some(crate::operation::Condition::RebootNeeded { node }) => format!(
            " (only if {node} then asks for a reboot: /run/reboot-required, or a kernel newer than the running one)"
        ),
        Some(crate::operation::Condition::GuestOn { vmid, node }) => {
            format!(" (only if guest {vmid} is on {node} then: its migration there succeeded)")
        }
        None => String::new(),
    }
}

/// `pve-manager 9.1.1 → 9.1.2` per package of one node's update, removals and kept-back ones.
fn package_lines(u: &crate::operation::NodeUpdate) -> Vec<String> {
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

#[allow(clippy::too_many_arguments)]
fn write_report(
    req: &Request,
    bundle: &crate::evidence::Bundle,
    plan: &Plan,
    snap: &Snapshot,
    done: Option<&[crate::execute::Done]>,
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
        status: snap.status.word().to_uppercase(),
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
