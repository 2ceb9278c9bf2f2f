//! The commands: one function per command, joining the pieces (`dispatch`); how a run reaches
//! its nodes (`fleet`, `resolve`). The commands with more to join have a file each: `assess`
//! (and `snapshot`), `verify` (and `diff`), `demo` and `lab`, the only two that reach the
//! simulator.

mod assess;
mod demo;
mod lab;
mod verify;

use assess::{assess, snapshot};
use demo::demo;
use lab::lab;
use verify::{diff, verify};

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{ChecksArgs, Cli, Command, ExecArgs, Global, ParseArgs};
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
            .map(|k| k.name.len())
            .max()
            .unwrap_or(0);
        for k in crate::facts::KINDS {
            println!("{:width$}  {}", k.name, k.what);
        }
        return Ok(0);
    }
    let kind = args.kind.unwrap_or_default();
    if !crate::facts::KINDS.iter().any(|k| k.name == kind) {
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
