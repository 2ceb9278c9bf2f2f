//! Fan-out: one connection per node, that node's commands as parallel channels, `--parallel`
//! nodes at once. One node's failure never stops the others.

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
