//! One function per command, joining the pieces; no logic of its own.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{
    AssessArgs, ChecksArgs, Cli, Command, DemoArgs, DiffArgs, ExecArgs, Format, Global, LabArgs,
    ParseArgs, SnapshotArgs, VerifyArgs,
};
use crate::command::{self, Templates};
use crate::fleet::Fleet;
use crate::inventory::{Inventory, Node, Overrides, Resolver};
use crate::session::{Connector, Settings};
use crate::ssh_config::ClientConfig;

/// Runs the parsed command line; returns the exit status.
pub fn dispatch(cli: Cli) -> Result<i32, crate::Error> {
    match cli.command {
        Command::Exec(args) => runtime()?.block_on(exec(&cli.global, args)),
        Command::Assess(args) => assess(&cli.global, args),
        Command::Snapshot(args) => snapshot(&cli.global, args),
        Command::Diff(args) => diff(args),
        Command::Verify(args) => verify(&cli.global, args),
        Command::Checks(args) => checks(args),
        Command::Parse(args) => parse(args),
        Command::Lab(args) => lab(args),
        Command::Migrate(args) => runtime()?.block_on(operate(
            &cli.global,
            crate::plan::Operation::Migrate {
                vmid: args.vmid,
                to: args.to.clone(),
            },
            &args.op,
            true,
            false,
        )),
        Command::Drain(args) => runtime()?.block_on(operate(
            &cli.global,
            crate::plan::Operation::Drain {
                node: args.node.clone(),
                to: args.to.clone(),
            },
            &args.op,
            !args.no_ha_maintenance,
            args.include_stopped,
        )),
        Command::Plan(plan) => {
            use crate::cli::PlanCommand;
            use crate::plan::Operation;
            let (op, mut args, ha, stopped) = match plan {
                PlanCommand::Migrate(a) => (
                    Operation::Migrate {
                        vmid: a.vmid,
                        to: a.to.clone(),
                    },
                    a.op,
                    true,
                    false,
                ),
                PlanCommand::Drain(a) => (
                    Operation::Drain {
                        node: a.node.clone(),
                        to: a.to.clone(),
                    },
                    a.op,
                    !a.no_ha_maintenance,
                    a.include_stopped,
                ),
                PlanCommand::Maintenance(a) => (
                    Operation::Maintenance {
                        node: a.node.clone(),
                        enter: a.action == "enter",
                    },
                    a.op,
                    true,
                    false,
                ),
                PlanCommand::Reboot(a) => (
                    Operation::Reboot {
                        nodes: a.nodes.clone(),
                    },
                    a.op,
                    true,
                    false,
                ),
                PlanCommand::Update(a) => (
                    Operation::Update {
                        nodes: a.nodes.clone(),
                        refresh: !a.no_refresh,
                        upgrade_timeout_secs: a.upgrade_timeout,
                    },
                    a.op,
                    true,
                    false,
                ),
            };
            args.dry_run = true;
            runtime()?.block_on(operate(&cli.global, op, &args, ha, stopped))
        }
        Command::Reboot(args) => runtime()?.block_on(operate(
            &cli.global,
            crate::plan::Operation::Reboot {
                nodes: args.nodes.clone(),
            },
            &args.op,
            true,
            false,
        )),
        Command::Update(args) => runtime()?.block_on(operate(
            &cli.global,
            crate::plan::Operation::Update {
                nodes: args.nodes.clone(),
                refresh: !args.no_refresh,
                upgrade_timeout_secs: args.upgrade_timeout,
            },
            &args.op,
            true,
            false,
        )),
        Command::Restore(args) => {
            let entries = crate::journal::read(&args.journal)?;
            let mut op = args.op;
            // Restoring puts guests back where they were: no new backup is needed for that.
            op.no_backup_gate = true;
            runtime()?.block_on(operate(
                &cli.global,
                crate::plan::Operation::Restore {
                    journal: entries,
                    source: args.journal.display().to_string(),
                },
                &op,
                true,
                false,
            ))
        }
        Command::Maintenance(args) => runtime()?.block_on(operate(
            &cli.global,
            crate::plan::Operation::Maintenance {
                node: args.node.clone(),
                enter: args.action == "enter",
            },
            &args.op,
            true,
            false,
        )),
        Command::Demo(args) => demo(cli.global, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "pveops", &mut std::io::stdout());
            Ok(0)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, crate::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::io(std::path::Path::new("tokio"), "start the async runtime", e))
}

/// Resolves targets into nodes from the inventory, the ssh config and the options.
pub fn nodes(global: &Global, targets: &[String]) -> Result<Vec<Node>, crate::Error> {
    let inventory = match &global.inventory {
        Some(p) => Inventory::load(p)?,
        None => Inventory::default(),
    };
    let ssh_config = ClientConfig::load(global.ssh_config.as_deref())?;
    let overrides = Overrides {
        user: global.user.clone(),
        port: global.port,
        identities: global.identities.clone(),
        known_hosts: global.known_hosts.clone(),
        host_keys: global.host_keys.map(Into::into),
        jump: global.jump.clone(),
    };
    Resolver {
        inventory: &inventory,
        ssh_config: &ssh_config,
        overrides: &overrides,
    }
    .resolve_all(targets)
}

/// How this run's commands reach the nodes: `--connect-timeout`, `--sudo`, `--templates`,
/// `--command-timeout` and `--parallel`, in one place.
pub fn fleet(global: &Global) -> Result<Arc<Fleet>, crate::Error> {
    let connector = Arc::new(Connector::new(Settings {
        connect_timeout: Duration::from_secs(global.connect_timeout),
        sudo: global.sudo,
    }));
    let templates = Arc::new(Templates::load(global.templates.as_deref())?);
    Ok(Fleet::new(
        connector,
        templates,
        Duration::from_secs(global.command_timeout),
        global.parallel as usize,
    ))
}

/// The nodes to work on: the targets resolved, expanded into their cluster with `--discover`.
/// The returned directory holds the cluster's known_hosts for as long as the nodes are used.
pub async fn resolve(
    global: &Global,
    targets: &[String],
    fleet: &Arc<Fleet>,
) -> Result<(Vec<Node>, tempfile::TempDir), crate::Error> {
    let nodes = nodes(global, targets)?;
    let workdir = tempfile::Builder::new()
        .prefix("pveops-")
        .tempdir()
        .map_err(|e| {
            crate::Error::io(&std::env::temp_dir(), "create a temporary directory in", e)
        })?;
    if !global.discover {
        return Ok((nodes, workdir));
    }
    let nodes = crate::discover::expand(fleet, nodes, workdir.path()).await?;
    Ok((nodes, workdir))
}

async fn exec(global: &Global, args: ExecArgs) -> Result<i32, crate::Error> {
    let fleet = fleet(global)?;
    let (nodes, _workdir) = resolve(global, &args.targets, &fleet).await?;
    let command = command::Command::operator(&args.command);
    let progress = Arc::new(crate::progress::Progress::new("exec", nodes.len()));
    let p = progress.clone();
    let run = fleet.run(nodes, vec![command], move |r| {
        p.node_done(
            &r.node.name,
            r.outcome.as_ref().is_ok_and(|c| {
                c.iter()
                    .all(|c| c.result.as_ref().is_ok_and(|o| o.success()))
            }),
        )
    });
    let results = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => {
            drop(progress);
            eprintln!("exec: interrupted; commands already started finish on the nodes under their timeout");
            return Err(crate::Error::Interrupted);
        }
    };
    drop(progress);
    let records = crate::adhoc::records(&results);
    if args.json {
        let text = serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into());
        println!("{text}");
    } else {
        print!("{}", crate::adhoc::render_text(&records));
    }
    eprintln!("{}", crate::adhoc::summary(&records));
    Ok(if records.iter().all(|r| r.ok()) { 0 } else { 2 })
}

fn parse(args: ParseArgs) -> Result<i32, crate::Error> {
    use std::io::IsTerminal;
    if args.list {
        let width = crate::facts::KINDS
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        for (kind, what) in crate::facts::KINDS {
            println!("{kind:width$}  {what}");
        }
        return Ok(0);
    }
    let kind = args.kind.unwrap_or_default();
    if !crate::facts::KINDS.iter().any(|(k, _)| *k == kind) {
        return Err(crate::Error::Usage(format!(
            "unknown kind `{kind}`; `pveops parse --list` lists them"
        )));
    }
    let bytes = match &args.file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| crate::input::read_bytes(f, crate::input::MAX_DOCUMENT))
            .map_err(|e| crate::Error::io(path, "read", e))?,
        None => crate::input::read_bytes(std::io::stdin(), crate::input::MAX_DOCUMENT)
            .map_err(|e| crate::Error::io(std::path::Path::new("<stdin>"), "read", e))?,
    };
    // PVE prints UTF-8; a stray invalid byte must not stop the parse of everything else.
    let text = String::from_utf8_lossy(&bytes);
    match crate::facts::parse(&kind, &text) {
        Ok(value) => {
            let out = if std::io::stdout().is_terminal() {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            println!("{}", out.unwrap_or_else(|_| "null".into()));
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(3)
        }
    }
}

fn lab(args: LabArgs) -> Result<i32, crate::Error> {
    if let Some(name) = &args.dump_scenario {
        let c = pveops_lab::scenario::builtin(name).ok_or_else(|| {
            crate::Error::Usage(format!(
                "no built-in scenario `{name}` ({})",
                pveops_lab::scenario::NAMES.join(", ")
            ))
        })?;
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
        return Ok(0);
    }
    let opts = pveops_lab::Options {
        scenario: args.scenario,
        nodes: args.nodes,
        listen: args.listen,
        port: args.ssh_port,
        state_dir: args.state_dir,
    };
    let prepared = pveops_lab::prepare(&opts)?;
    runtime()?.block_on(async {
        let mut servers = pveops_lab::serve(&prepared);
        eprintln!(
            "lab: {} nodes in {}",
            prepared.nodes.len(),
            prepared.dir.display()
        );
        for (name, addr, _) in &prepared.nodes {
            eprintln!("lab:   {name} at {addr}");
        }
        eprintln!(
            "lab: try `pveops exec -I {} lab -- pvecm status`; Ctrl-C stops the lab",
            prepared.inventory().display()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = servers.join_next() => {}
        }
        servers.abort_all();
    });
    eprintln!(
        "lab: stopped; the state is kept in {}",
        prepared.dir.display()
    );
    Ok(0)
}

/// Resolves an operation's nodes and options from the command line and runs it.
async fn operate(
    global: &Global,
    op: crate::plan::Operation,
    args: &crate::cli::OpArgs,
    ha_maintenance: bool,
    include_stopped: bool,
) -> Result<i32, crate::Error> {
    let checks = crate::check::load(args.checks.as_deref())?;
    let fleet = fleet(global)?;
    let targets = cluster_targets(global, args)?;
    let (nodes, _workdir) = resolve(global, &targets, &fleet).await?;
    let window = args
        .window
        .as_deref()
        .map(crate::plan::parse_window)
        .transpose()
        .map_err(crate::Error::Usage)?;
    crate::operation::run(crate::operation::Request {
        op,
        targets,
        nodes,
        fleet,
        template_dir: global.templates.clone(),
        checks,
        out: args.out.clone(),
        changelog: args.changelog.clone(),
        yes: args.yes,
        dry_run: args.dry_run,
        operator: crate::changelog::operator(),
        choices: crate::plan::Choices {
            backup_gate: !args.no_backup_gate,
            backup_max_age_hours: args.backup_max_age,
            with_local_disks: args.with_local_disks,
            ha_maintenance,
            include_stopped,
            migrate_timeout: Duration::from_secs(args.migrate_timeout),
            reboot_timeout: Duration::from_secs(args.reboot_timeout),
            window,
            force_window: args.force_window,
        },
        max_migrations: args.max_migrations,
    })
    .await
}

/// The targets of an operation: `--targets`, else every node of the inventory.
fn cluster_targets(
    global: &Global,
    args: &crate::cli::OpArgs,
) -> Result<Vec<String>, crate::Error> {
    if !args.targets.is_empty() {
        return Ok(args.targets.clone());
    }
    let Some(path) = &global.inventory else {
        return Err(crate::Error::Usage(
            "say how to reach the cluster: --targets T1,T2, or an inventory with -I".into(),
        ));
    };
    let inv = crate::inventory::Inventory::load(path)?;
    if inv.nodes.is_empty() {
        return Err(crate::Error::Usage(format!(
            "{} lists no [[node]]",
            path.display()
        )));
    }
    Ok(inv.nodes.iter().map(|n| n.name.clone()).collect())
}

/// Takes a snapshot of `targets` and evaluates the checks on it.
async fn take_snapshot(
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
fn snapshot_into_bundle(
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
fn assess_status(snap: &crate::snapshot::Snapshot) -> crate::finding::Severity {
    if !snap.nodes.is_empty() && snap.nodes.iter().all(|n| !n.reachable) {
        return crate::finding::Severity::Unknown;
    }
    snap.status
}

/// Exit status of an assessment (see [`assess_status`]).
fn assess_exit(snap: &crate::snapshot::Snapshot) -> i32 {
    assess_status(snap).exit_code()
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset (no-color.org).
fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The summary table on stderr, worst first; colour when stderr is a terminal (NO_COLOR off).
fn print_summary(snap: &crate::snapshot::Snapshot) {
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
fn finding_line(f: &crate::finding::Finding, colour: bool) -> String {
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

fn assess(global: &Global, args: AssessArgs) -> Result<i32, crate::Error> {
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

fn assess_run(global: &Global, args: &AssessArgs) -> Result<i32, crate::Error> {
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

fn snapshot(global: &Global, args: SnapshotArgs) -> Result<i32, crate::Error> {
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

fn checks(args: ChecksArgs) -> Result<i32, crate::Error> {
    let checks = crate::check::load(args.checks.as_deref())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        );
        return Ok(0);
    }
    for c in &checks {
        let how = match (&c.rule, &c.command) {
            (Some(r), _) => format!("rule {r}"),
            (_, Some(cmd)) => format!("command {cmd} =~ {}", c.expect.as_deref().unwrap_or("")),
            _ => String::new(),
        };
        let params = serde_json::to_value(&c.params).unwrap_or_default();
        let params: Vec<String> = params
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<28} {:<8} {}{}  [{how}{}]",
            c.id,
            c.severity.word(),
            c.title,
            if c.enabled { "" } else { " (disabled)" },
            if params.is_empty() {
                String::new()
            } else {
                format!("; {}", params.join(" "))
            }
        );
    }
    Ok(0)
}

/// A port free on 127.0.0.1, the lab's ports are chosen the same way.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(2222)
}

fn demo(mut global: Global, args: DemoArgs) -> Result<i32, crate::Error> {
    let opts = pveops_lab::Options {
        scenario: Some(args.scenario.clone()),
        nodes: None,
        listen: args.listen,
        port: free_port(),
        state_dir: args.state_dir.clone(),
    };
    let prepared = pveops_lab::prepare(&opts)?;
    pveops_lab::set_verbose(&prepared, false);
    let addrs: Vec<std::net::SocketAddr> = prepared.nodes.iter().map(|(_, a, _)| *a).collect();
    eprintln!(
        "demo: lab `{}` with {} nodes in {}",
        args.scenario,
        addrs.len(),
        prepared.dir.display()
    );
    // The lab runs on its own thread and runtime; the assessment below uses its own, as it
    // would against a real cluster.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let lab_rt = runtime()?;
    let servers = std::thread::spawn(move || {
        lab_rt.block_on(async move {
            let mut set = pveops_lab::serve(&prepared);
            let _ = stop_rx.await;
            set.abort_all();
        });
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !addrs
        .iter()
        .all(|a| std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
    {
        if std::time::Instant::now() > deadline {
            let _ = stop_tx.send(());
            return Err(crate::Error::Usage(
                "the demo lab did not start listening within 10 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = &std::path::absolute(&args.state_dir)
        .map_err(|e| crate::Error::io(&args.state_dir, "resolve", e))?;
    global.inventory = Some(dir.join("inventory.toml"));
    let result = demo_job(&global, dir, &args);
    let _ = stop_tx.send(());
    let _ = servers.join();
    let root = result?;
    eprintln!(
        "demo: done; evidence in {}, the change log in pveops-changelog.md, the lab's command log in {}",
        root.display(),
        dir.join("commands.jsonl").display()
    );
    Ok(0)
}

/// The main job against the running lab: assess, drain a node, verify, restore.
fn demo_job(
    global: &Global,
    dir: &std::path::Path,
    args: &DemoArgs,
) -> Result<std::path::PathBuf, crate::Error> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let root = std::path::Path::new("pveops-evidence").join(format!("{stamp}-demo"));
    let inv = dir.join("inventory.toml");
    eprintln!("\ndemo 1/4: pveops assess -I {} lab", inv.display());
    let assess_args = AssessArgs {
        targets: vec!["lab".into()],
        out: Some(root.join("1-assess")),
        json: false,
        format: Format::Text,
        prom_file: None,
        checks: None,
        from: None,
        only: Vec::new(),
        upgrade_checklist: true,
    };
    let code = assess(global, assess_args)?;
    eprintln!("demo: the assessment exited {code}");
    let op = |out: &str| crate::cli::OpArgs {
        targets: Vec::new(),
        yes: true,
        dry_run: false,
        out: Some(root.join(out)),
        changelog: std::path::PathBuf::from("pveops-changelog.md"),
        no_backup_gate: false,
        backup_max_age: 7.0 * 24.0,
        with_local_disks: false,
        migrate_timeout: 300,
        reboot_timeout: 300,
        window: None,
        force_window: false,
        checks: None,
        max_migrations: None,
    };
    eprintln!(
        "\ndemo 2/4: pveops -I {} drain {} --yes",
        inv.display(),
        args.drain
    );
    let drain = crate::plan::Operation::Drain {
        node: args.drain.clone(),
        to: Vec::new(),
    };
    let code = runtime()?.block_on(operate(global, drain, &op("2-drain"), true, false))?;
    eprintln!("demo: the drain exited {code}");
    eprintln!(
        "\ndemo 3/4: pveops -I {} verify lab --against {}",
        inv.display(),
        root.join("1-assess/snapshot.json").display()
    );
    let code = verify(
        global,
        VerifyArgs {
            targets: vec!["lab".into()],
            against: root.join("1-assess/snapshot.json"),
            out: Some(root.join("3-verify")),
            json: false,
            checks: None,
            upgrade_checklist: false,
        },
    )?;
    eprintln!(
        "demo: the verification exited {code} (moved guests are differences, not regressions; the scenario's own findings remain)"
    );
    let journal = root.join("2-drain/journal.jsonl");
    if journal.exists() {
        eprintln!(
            "\ndemo 4/4: pveops -I {} restore --journal {} --yes",
            inv.display(),
            journal.display()
        );
        let entries = crate::journal::read(&journal)?;
        let restore = crate::plan::Operation::Restore {
            journal: entries,
            source: journal.display().to_string(),
        };
        let mut o = op("4-restore");
        o.no_backup_gate = true;
        let code = runtime()?.block_on(operate(global, restore, &o, true, false))?;
        eprintln!("demo: the restore exited {code}");
    }
    Ok(root)
}

fn diff(args: DiffArgs) -> Result<i32, crate::Error> {
    let before = crate::snapshot::Snapshot::load(&args.before)?;
    let after = crate::snapshot::Snapshot::load(&args.after)?;
    let diffs = crate::diff::diff(&before, &after);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "differences": diffs }))
                .unwrap_or_default()
        );
    } else {
        print!("{}", crate::diff::markdown(&diffs));
    }
    let regressions = diffs.iter().filter(|d| d.regression).count();
    eprintln!(
        "diff: {} difference(s), {regressions} regression(s)",
        diffs.len()
    );
    Ok(if regressions > 0 { 2 } else { 0 })
}

/// What a verify concludes: its exit status and the Outcome line, decided together.
/// 2: a regression (something other than a finding got worse) or a new critical finding;
/// 1: a new warning; 3: no node answered, or a new finding is UNKNOWN; 0 otherwise. Findings
/// that were there before are listed, not counted against the change.
fn verify_outcome(
    after: &crate::snapshot::Snapshot,
    diffs: &[crate::diff::Difference],
    findings: &crate::diff::FindingChanges,
    against: &std::path::Path,
) -> (i32, String) {
    use crate::finding::Severity;
    let regressions = diffs
        .iter()
        .filter(|d| d.regression && d.kind != crate::diff::DiffKind::FindingNew)
        .count();
    let count = |s: Severity| findings.new.iter().filter(|f| f.severity == s).count();
    let (critical, unknown, warning) = (
        count(Severity::Critical),
        count(Severity::Unknown),
        count(Severity::Warning),
    );
    let mut parts = Vec::new();
    if regressions > 0 {
        parts.push(format!("{regressions} regression(s)"));
    }
    for (n, what) in [
        (critical, "critical"),
        (unknown, "unknown"),
        (warning, "warning"),
    ] {
        if n > 0 {
            parts.push(format!("{n} new {what} finding(s)"));
        }
    }
    let unchanged = if findings.unchanged.is_empty() {
        String::new()
    } else {
        format!(
            "; {} finding(s) unchanged since then (listed, not counted)",
            findings.unchanged.len()
        )
    };
    let against = against.display();
    if assess_status(after) == Severity::Unknown && after.nodes.iter().all(|n| !n.reachable) {
        return (
            3,
            format!("could not verify against {against}: no node answered"),
        );
    }
    let code = if regressions > 0 || critical > 0 {
        2
    } else if unknown > 0 {
        3
    } else if warning > 0 {
        1
    } else {
        0
    };
    let outcome = if parts.is_empty() {
        format!("no regression and no new finding against {against}{unchanged}")
    } else {
        format!("{} against {against}{unchanged}", parts.join(", "))
    };
    (code, outcome)
}

fn verify(global: &Global, args: VerifyArgs) -> Result<i32, crate::Error> {
    let before = crate::snapshot::Snapshot::load(&args.against)?;
    let checks = crate::check::load(args.checks.as_deref())?;
    let started = jiff::Timestamp::now();
    // The after-snapshot reads what the baseline read: a finding of a read that did not run
    // again would look resolved.
    let upgrade_checklist = args.upgrade_checklist || before.ran_upgrade_checklist();
    let (after, bundle) = snapshot_into_bundle(
        global,
        &args.targets,
        &checks,
        Vec::new(),
        upgrade_checklist,
        args.out.clone(),
        "verify",
        started,
    )?;
    let diffs = crate::diff::diff(&before, &after);
    let findings = crate::diff::compare_findings(&before, &after);
    let (code, outcome) = verify_outcome(&after, &diffs, &findings, &args.against);
    bundle.write("before.json", before.to_json().as_bytes())?;
    bundle.write("snapshot.json", after.to_json().as_bytes())?;
    let hb = crate::report::registry(global.templates.as_deref())?;
    let summary = crate::report::Summary {
        command: "verify".into(),
        operator: crate::changelog::operator(),
        targets: args.targets.join(", "),
        started_at: started
            .round(jiff::Unit::Second)
            .unwrap_or(started)
            .to_string(),
        outcome: outcome.clone(),
        status: crate::finding::Severity::from_exit_code(code)
            .word()
            .to_uppercase(),
        exit_status: code,
        pveops_version: env!("CARGO_PKG_VERSION").into(),
    };
    let report =
        crate::report::render_verify(&hb, &summary, &after, &diffs, &findings, &bundle.raw_files)?;
    let report_path = bundle.write("report.md", report.as_bytes())?;
    bundle.sync()?;
    if args.json {
        let doc = serde_json::json!({
            "outcome": outcome,
            "exit_status": code,
            "differences": diffs,
            "findings": findings,
            "snapshot": after,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let colour = colour_stderr();
    let reachable = after.nodes.iter().filter(|n| n.reachable).count();
    eprintln!(
        "{reachable} of {} nodes answered; outcome: {outcome}",
        after.nodes.len()
    );
    // The differences (findings follow as new, unchanged and resolved).
    let changed: Vec<&crate::diff::Difference> = diffs
        .iter()
        .filter(|d| {
            !matches!(
                d.kind,
                crate::diff::DiffKind::FindingNew | crate::diff::DiffKind::FindingResolved
            )
        })
        .collect();
    if changed.is_empty() {
        eprintln!("differences: none");
    } else {
        eprintln!("differences:");
    }
    for d in changed {
        eprintln!(
            "  {:<10} {:<16} {:<14} {} {} -> {}",
            if d.regression { "REGRESSION" } else { "" },
            d.kind,
            d.node.as_deref().unwrap_or("(cluster)"),
            d.subject.as_deref().unwrap_or(""),
            d.before.as_deref().unwrap_or("-"),
            d.after.as_deref().unwrap_or("-")
        );
    }
    for (title, list) in [
        ("new", &findings.new),
        ("unchanged", &findings.unchanged),
        ("resolved", &findings.resolved),
        ("not re-read", &findings.unverified),
    ] {
        if !list.is_empty() {
            eprintln!("{title}:");
            for f in list {
                eprintln!("  {}", finding_line(f, colour));
            }
        }
    }
    eprintln!("evidence: {}", report_path.display());
    Ok(code)
}
