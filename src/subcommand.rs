//! One function per command, joining the pieces; no logic of its own.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cli, Command, ExecArgs, Global, LabArgs, ParseArgs};
use crate::command::{self, Templates};
use crate::inventory::{Inventory, Node, Overrides, Resolver};
use crate::session::{Connector, Settings};
use crate::ssh_config::ClientConfig;

/// Runs the parsed command line; returns the exit status.
pub fn dispatch(cli: Cli) -> Result<i32, crate::Error> {
    match cli.command {
        Command::Exec(args) => runtime()?.block_on(exec(&cli.global, args)),
        Command::Parse(args) => parse(args),
        Command::Lab(args) => lab(args),
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
        host_keys: global.host_keys,
        jump: global.jump.clone(),
    };
    Resolver {
        inventory: &inventory,
        ssh_config: &ssh_config,
        overrides: &overrides,
    }
    .resolve_all(targets)
}

fn connector(global: &Global) -> Arc<Connector> {
    Arc::new(Connector::new(Settings {
        connect_timeout: Duration::from_secs(global.connect_timeout),
        sudo: global.sudo,
    }))
}

async fn exec(global: &Global, args: ExecArgs) -> Result<i32, crate::Error> {
    let nodes = nodes(global, &args.targets)?;
    let templates = Arc::new(Templates::load(global.templates.as_deref())?);
    let command = command::Command::operator(&args.command);
    let progress = Arc::new(crate::progress::Progress::new("exec", nodes.len()));
    let p = progress.clone();
    let run = crate::fleet::run(
        connector(global),
        templates,
        nodes,
        vec![command],
        Duration::from_secs(global.command_timeout),
        global.parallel as usize,
        move |r| {
            p.node_done(
                &r.node.name,
                r.outcome.as_ref().is_ok_and(|c| {
                    c.iter()
                        .all(|c| c.result.as_ref().is_ok_and(|o| o.success()))
                }),
            )
        },
    );
    let results = tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => {
            drop(progress);
            eprintln!("exec: interrupted; commands already started finish on the nodes under their timeout");
            return Err(crate::Error::Interrupted);
        }
    };
    drop(progress);
    let records = crate::exec::records(&results);
    if args.json {
        let text = serde_json::to_string_pretty(&records).unwrap_or_else(|_| "[]".into());
        println!("{text}");
    } else {
        print!("{}", crate::exec::render_text(&records));
    }
    eprintln!("{}", crate::exec::summary(&records));
    Ok(if records.iter().all(|r| r.ok()) { 0 } else { 2 })
}

fn parse(args: ParseArgs) -> Result<i32, crate::Error> {
    use std::io::{IsTerminal, Read};
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
        Some(path) => std::fs::read(path).map_err(|e| crate::Error::io(path, "read", e))?,
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| crate::Error::io(std::path::Path::new("<stdin>"), "read", e))?;
            buf
        }
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
        let c = crate::lab::scenario::builtin(name).ok_or_else(|| {
            crate::Error::Usage(format!("no built-in scenario `{name}` ({})", crate::lab::scenario::NAMES.join(", ")))
        })?;
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
        return Ok(0);
    }
    let opts = crate::lab::Options {
        scenario: args.scenario,
        nodes: args.nodes,
        listen: args.listen,
        port: args.ssh_port,
        state_dir: args.state_dir,
    };
    let prepared = crate::lab::prepare(&opts)?;
    runtime()?.block_on(async {
        let mut servers = crate::lab::serve(&prepared);
        eprintln!("lab: {} nodes in {}", prepared.nodes.len(), prepared.dir.display());
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
    eprintln!("lab: stopped; the state is kept in {}", prepared.dir.display());
    Ok(0)
}
