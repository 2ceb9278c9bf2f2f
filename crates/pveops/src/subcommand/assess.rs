//! `assess` and `snapshot`: take a snapshot, evaluate the checks, print the summary or the
//! monitoring output, write the evidence; the exit status is the assessment's status.

use std::sync::Arc;

use super::{fleet, resolve, runtime};
use crate::cli::{AssessArgs, Format, Global, SnapshotArgs};

/// Takes a snapshot of `targets` and evaluates the checks on it.
pub(super) async fn take_snapshot(
    global: &Global,
    targets: &[String],
    checks: &[crate::check::Check],
    only: Vec<String>,
    upgrade_checklist: bool,
    raw_sink: Option<std::sync::mpsc::Sender<Vec<crate::collect::Raw>>>,
) -> Result<(crate::snapshot::Snapshot, Vec<crate::collect::Raw>), crate::Error> {
    let fleet = fleet(global)?;
    let (nodes, _workdir) = resolve(global, targets, &fleet).await?;
    let collector = crate::collect::Collector {
        fleet,
        only,
        upgrade_checklist,
        package_state: false,
        raw_sink,
    };
    let progress = Arc::new(crate::progress::Progress::new("snapshot", nodes.len()));
    let p = progress.clone();
    let run = collector.collect(nodes, checks, move |r| {
        p.node_done(&r.node.name, r.outcome.is_ok())
    });
    let (mut snap, raws) = tokio::select! {
        r = run => r?,
        _ = tokio::signal::ctrl_c() => {
            drop(progress);
            return Err(crate::Error::Interrupted);
        }
    };
    drop(progress);
    crate::check::evaluate_into(&mut snap, checks, jiff::Timestamp::now().as_second());
    Ok((snap, raws))
}

/// Takes a snapshot of `targets` while each node's raw outputs are written into the evidence
/// bundle of `command` as soon as the node has answered; returns the snapshot and the bundle
/// with every raw output in it. Interrupted, the bundle keeps what had arrived.
#[allow(clippy::too_many_arguments)]
pub(super) fn snapshot_into_bundle(
    global: &Global,
    targets: &[String],
    checks: &[crate::check::Check],
    only: Vec<String>,
    upgrade_checklist: bool,
    out: Option<std::path::PathBuf>,
    command: &'static str,
    started: jiff::Timestamp,
) -> Result<(crate::snapshot::Snapshot, crate::evidence::Bundle), crate::Error> {
    let target = (targets.len() == 1).then(|| targets[0].clone());
    let rt = runtime()?;
    let writer = crate::evidence::RawWriter::start(move || {
        crate::evidence::Bundle::create(out.as_deref(), command, target.as_deref(), started)
    });
    let taken = rt.block_on(take_snapshot(
        global,
        targets,
        checks,
        only,
        upgrade_checklist,
        Some(writer.sink()),
    ));
    // Every sink is dropped with the runtime's tasks (an interrupted collection's too), so
    // the writer can see its end.
    drop(rt);
    let (snap, rest) = match taken {
        Ok(t) => t,
        Err(e) => {
            // What had arrived stays, whole; a run that failed before any node answered
            // leaves no directory.
            if let Ok(Some(b)) = writer.stop() {
                eprintln!(
                    "{command}: the raw outputs read so far are in {}",
                    b.dir.display()
                );
            }
            return Err(e);
        }
    };
    let mut bundle = writer.finish()?;
    bundle.write_raw(&rest)?;
    Ok((snap, bundle))
}

/// The status of an assessment: UNKNOWN when no node answered (the tool could not do its
/// job, PRODUCT.md's exit 3, even though each unreachable node is a critical finding), else
/// the worst finding. The exit status, the summary and the monitoring outputs all say this.
pub(super) fn assess_status(snap: &crate::snapshot::Snapshot) -> crate::finding::Severity {
    if !snap.nodes.is_empty() && snap.nodes.iter().all(|n| !n.reachable) {
        return crate::finding::Severity::Unknown;
    }
    snap.status
}

/// Exit status of an assessment (see [`assess_status`]).
pub(super) fn assess_exit(snap: &crate::snapshot::Snapshot) -> i32 {
    assess_status(snap).exit_code()
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset (no-color.org).
pub(super) fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The summary table on stderr, worst first; colour when stderr is a terminal (NO_COLOR off).
pub(super) fn print_summary(snap: &crate::snapshot::Snapshot) {
    let colour = colour_stderr();
    let reachable = snap.nodes.iter().filter(|n| n.reachable).count();
    eprintln!(
        "{} of {} nodes answered; {} finding(s); status {}",
        reachable,
        snap.nodes.len(),
        snap.findings.len(),
        assess_status(snap).word().to_uppercase()
    );
    for f in &snap.findings {
        eprintln!("  {}", finding_line(f, colour));
    }
}

/// One finding of the summary: severity (coloured on a terminal), check, node, message.
pub(super) fn finding_line(f: &crate::finding::Finding, colour: bool) -> String {
    let word = f.severity.word().to_uppercase();
    let word = if colour {
        let code = match f.severity {
            crate::finding::Severity::Critical => "1;31",
            crate::finding::Severity::Warning => "33",
            _ => "35",
        };
        format!("\u{1b}[{code}m{word:<8}\u{1b}[0m")
    } else {
        format!("{word:<8}")
    };
    format!(
        "{word} {:<28} {:<14} {}",
        f.check,
        f.node.as_deref().unwrap_or("(cluster)"),
        f.message
    )
}

pub(super) fn assess(global: &Global, args: AssessArgs) -> Result<i32, crate::Error> {
    if args.json && matches!(args.format, Format::Nagios | Format::Prometheus) {
        return Err(crate::Error::Usage(
            "--json prints the snapshot document; it cannot be combined with --format nagios or prometheus".into(),
        ));
    }
    let monitoring = matches!(args.format, Format::Nagios | Format::Prometheus);
    if !monitoring {
        return assess_run(global, &args);
    }
    // A monitoring run always prints its status line: a plugin that prints nothing shows as
    // "(No output returned from plugin)" in Nagios/Icinga, which says nothing of the cause.
    match assess_run(global, &args) {
        Ok(code) => Ok(code),
        Err(e) => {
            let reason = e.to_string();
            let now = jiff::Timestamp::now().as_second();
            match args.format {
                Format::Prometheus => {
                    print!("{}", crate::monitoring::prometheus_unknown(&reason, now))
                }
                _ => println!("{}", crate::monitoring::nagios_unknown(&reason)),
            }
            if let Some(path) = &args.prom_file {
                // Best effort: when the file itself is what failed, the line above says so.
                let _ = crate::atomic::write(
                    path,
                    crate::monitoring::prometheus_unknown(&reason, now).as_bytes(),
                    Some(0o644),
                );
            }
            eprintln!("error: {e}");
            Ok(3)
        }
    }
}

pub(super) fn assess_run(global: &Global, args: &AssessArgs) -> Result<i32, crate::Error> {
    let checks = crate::check::load(args.checks.as_deref())?;
    let started = jiff::Timestamp::now();
    let monitoring = matches!(args.format, Format::Nagios | Format::Prometheus);
    // A monitoring probe runs every few minutes: it writes evidence only when asked to.
    let evidence = !monitoring || args.out.is_some();
    let (snap, bundle, targets) = match &args.from {
        Some(path) => {
            let mut snap = crate::snapshot::Snapshot::load(path)?;
            crate::check::evaluate_into(&mut snap, &checks, jiff::Timestamp::now().as_second());
            let targets = snap
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>();
            let target = (targets.len() == 1).then(|| targets[0].as_str());
            let bundle = if evidence {
                Some(crate::evidence::Bundle::create(
                    args.out.as_deref(),
                    "assess",
                    target,
                    started,
                )?)
            } else {
                None
            };
            (snap, bundle, targets)
        }
        None if evidence => {
            let (snap, bundle) = snapshot_into_bundle(
                global,
                &args.targets,
                &checks,
                args.only.clone(),
                args.upgrade_checklist,
                args.out.clone(),
                "assess",
                started,
            )?;
            (snap, Some(bundle), args.targets.clone())
        }
        None => {
            let (snap, _) = runtime()?.block_on(take_snapshot(
                global,
                &args.targets,
                &checks,
                args.only.clone(),
                args.upgrade_checklist,
                None,
            ))?;
            (snap, None, args.targets.clone())
        }
    };
    let code = assess_exit(&snap);
    let mut report_path = None;
    if let Some(bundle) = &bundle {
        bundle.write("snapshot.json", snap.to_json().as_bytes())?;
        let hb = crate::report::registry(global.templates.as_deref())?;
        let summary = crate::report::Summary {
            command: if args.from.is_some() {
                "assess --from".into()
            } else {
                "assess".into()
            },
            operator: crate::changelog::operator(),
            targets: targets.join(", "),
            started_at: started
                .round(jiff::Unit::Second)
                .unwrap_or(started)
                .to_string(),
            outcome: match code {
                0 => "all checks passed".into(),
                3 => "could not assess (see findings)".into(),
                _ => format!("{} finding(s) to follow up", snap.findings.len()),
            },
            status: assess_status(&snap).word().to_uppercase(),
            exit_status: code,
            pveops_version: env!("CARGO_PKG_VERSION").into(),
        };
        let report = crate::report::render(&hb, &summary, &snap, &[], &bundle.raw_files)?;
        report_path = Some(bundle.write("report.md", report.as_bytes())?);
        bundle.sync()?;
    }
    let ended = jiff::Timestamp::now();
    let run = crate::monitoring::Run {
        exit_code: code,
        now: ended.as_second(),
        duration_seconds: ended.duration_since(started).as_secs_f64(),
        storage_thresholds_pct: crate::check::storage_usage_thresholds_pct(&checks),
    };
    let prometheus = (args.prom_file.is_some() || args.format == Format::Prometheus)
        .then(|| crate::monitoring::prometheus(&snap, &run));
    if let (Some(path), Some(text)) = (&args.prom_file, &prometheus) {
        crate::atomic::write(path, text.as_bytes(), Some(0o644))?;
    }
    match args.format {
        Format::Text | Format::Json => {
            if args.json || args.format == Format::Json {
                println!("{}", snap.to_json());
            }
            print_summary(&snap);
        }
        Format::Nagios => print!("{}", crate::monitoring::nagios(&snap, &run)),
        Format::Prometheus => print!("{}", prometheus.unwrap_or_default()),
    }
    if let Some(p) = report_path {
        eprintln!("evidence: {}", p.display());
    }
    Ok(code)
}

pub(super) fn snapshot(global: &Global, args: SnapshotArgs) -> Result<i32, crate::Error> {
    let checks = crate::check::load(args.checks.as_deref())?;
    let (snap, _) = runtime()?.block_on(take_snapshot(
        global,
        &args.targets,
        &checks,
        Vec::new(),
        false,
        None,
    ))?;
    crate::atomic::write(&args.output, snap.to_json().as_bytes(), Some(0o644))?;
    eprintln!(
        "snapshot: {} ({} nodes, status {})",
        args.output.display(),
        snap.nodes.len(),
        snap.status.word().to_uppercase()
    );
    Ok(0)
}
