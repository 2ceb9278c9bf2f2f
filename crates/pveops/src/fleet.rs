//! Fan-out: one connection per node, `--parallel` nodes at once. A node's commands run at once
//! on the node through the node-side runner ([`crate::batch`], one channel); a single command
//! (`exec`, an operation's step or poll) has its own channel. One node's failure never stops
//! the others.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::command::{Command, Templates};
use crate::error::{Cause, NodeError};
use crate::inventory::Node;
use crate::output::Output;
use crate::session::Connector;

/// One command's result on one node.
#[derive(Debug)]
pub struct CommandResult {
    pub command: Command,
    /// The exact line sent to the node (the command under its wrapper).
    pub line: String,
    pub result: Result<Output, Cause>,
}

/// Everything one node returned, or why it could not be reached.
#[derive(Debug)]
pub struct NodeResult {
    pub node: Node,
    pub outcome: Result<Vec<CommandResult>, NodeError>,
    pub duration: Duration,
}

/// Runs `commands` on every node; `on_done` is called as each node finishes (for progress).
/// Results come back in the order of `nodes`.
pub async fn run(
    connector: Arc<Connector>,
    templates: Arc<Templates>,
    nodes: Vec<Node>,
    commands: Vec<Command>,
    command_timeout: Duration,
    parallel: usize,
    on_done: impl Fn(&NodeResult) + Send + Sync + 'static,
) -> Vec<NodeResult> {
    let work = nodes.into_iter().map(|n| (n, commands.clone())).collect();
    run_each(
        connector,
        templates,
        work,
        command_timeout,
        parallel,
        on_done,
    )
    .await
}

/// Like `run`, with each node's own list of commands.
pub async fn run_each(
    connector: Arc<Connector>,
    templates: Arc<Templates>,
    work: Vec<(Node, Vec<Command>)>,
    command_timeout: Duration,
    parallel: usize,
    on_done: impl Fn(&NodeResult) + Send + Sync + 'static,
) -> Vec<NodeResult> {
    let limit = Arc::new(Semaphore::new(parallel.max(1)));
    let on_done = Arc::new(on_done);
    let mut set = JoinSet::new();
    for (i, (node, commands)) in work.into_iter().enumerate() {
        let (limit, connector, templates, on_done) = (
            limit.clone(),
            connector.clone(),
            templates.clone(),
            on_done.clone(),
        );
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let start = std::time::Instant::now();
            let outcome = run_node(&connector, &templates, &node, &commands, command_timeout).await;
            let result = NodeResult {
                node,
                outcome,
                duration: start.elapsed(),
            };
            on_done(&result);
            (i, result)
        });
    }
    let mut results: Vec<Option<NodeResult>> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => {
                if results.len() <= i {
                    results.resize_with(i + 1, || None);
                }
                results[i] = Some(r);
            }
            Err(e) => tracing::error!("a node task failed: {e}"),
        }
    }
    results.into_iter().flatten().collect()
}

async fn run_node(
    connector: &Connector,
    templates: &Templates,
    node: &Node,
    commands: &[Command],
    limit: Duration,
) -> Result<Vec<CommandResult>, NodeError> {
    let session = Arc::new(connector.connect(node).await?);
    if commands.len() > 1 {
        let boundary = crate::batch::boundary();
        match crate::batch::line(templates, commands, limit, session.sudo(), &boundary) {
            Ok(line) if line.len() <= crate::batch::MAX_PROGRAM => {
                if let Some(out) = run_batch(&session, commands, &line, &boundary, limit).await {
                    session.close().await;
                    return Ok(out);
                }
            }
            Ok(_) => tracing::debug!(
                "{}: {} commands are too long for one program; one channel each",
                node.name,
                commands.len()
            ),
            Err(e) => tracing::debug!("{}: no node-side runner: {e}", node.name),
        }
    }
    per_channel(session, templates, commands, limit).await
}

/// Runs `commands` through the node-side runner on one channel.
async fn run_batch(
    session: &crate::session::Session,
    commands: &[Command],
    line: &str,
    boundary: &str,
    limit: Duration,
) -> Option<Vec<CommandResult>> {
    let started_at = jiff::Timestamp::now();
    let results = match session.run(line, crate::batch::runner_limit(limit)).await {
        // The runner could not start (no private directory: a full or read-only /tmp, no
        // `mktemp`): the commands go one channel each instead, which needs no file on the node.
        Ok(out)
            if matches!(out.exit, crate::output::Exit::Code(125..=127))
                && !crate::batch::has_begun(&out.stdout, boundary) =>
        {
            tracing::warn!(
                "the node-side runner could not start ({}); one channel per command instead",
                out.stderr_text()
                    .lines()
                    .next()
                    .unwrap_or("no message")
                    .trim()
            );
            return None;
        }
        Ok(out) => {
            if !crate::batch::is_complete(&out.stdout, boundary) {
                tracing::debug!(
                    "node-side runner ended early ({:?}): {}",
                    out.exit,
                    out.stderr_text().trim()
                );
            }
            crate::batch::results(&out, boundary, commands.len(), started_at, limit)
        }
        Err(cause) => commands.iter().map(|_| Err(cause.clone())).collect(),
    };
    Some(
        commands
            .iter()
            .cloned()
            .zip(results)
            .map(|(command, result)| CommandResult {
                command,
                line: line.to_string(),
                result,
            })
            .collect(),
    )
}

/// Runs each command on a channel of its own, all at once.
async fn per_channel(
    session: Arc<crate::session::Session>,
    templates: &Templates,
    commands: &[Command],
    limit: Duration,
) -> Result<Vec<CommandResult>, NodeError> {
    let mut set = JoinSet::new();
    for (i, command) in commands.iter().cloned().enumerate() {
        let session = session.clone();
        let line = templates.remote_line(&command, limit, session.sudo());
        set.spawn(async move {
            let (line, result) = match line {
                Ok(line) => {
                    let result = session.run(&line, limit).await;
                    (line, result)
                }
                Err(e) => (String::new(), Err(Cause::Protocol(e.to_string()))),
            };
            (
                i,
                CommandResult {
                    command,
                    line,
                    result,
                },
            )
        });
    }
    let mut out: Vec<Option<CommandResult>> = (0..commands.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    session.close().await;
    Ok(out.into_iter().flatten().collect())
}
