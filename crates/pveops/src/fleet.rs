//! The fleet: the one way commands reach nodes ([`Fleet`]). Fan-out is one connection per
//! node, `--parallel` nodes at once, a node's commands at once on the node through the
//! node-side runner ([`crate::batch`], one channel); a single command (an operation's step or
//! poll) has its own channel on the node's kept connection. One node's failure never stops the
//! others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::command::{Command, Templates};
use crate::error::{Cause, NodeError};
use crate::inventory::Node;
use crate::output::Output;
use crate::session::{Connector, Session};

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

/// How commands reach the nodes, one per run: the connector, the templates, each command's
/// limit, how many nodes at once, and the connections kept for single commands. `assess`,
/// `exec`, discovery, the collector and an operation's executor all run their commands
/// through it: a node's list fans out over one connection (`run`, `run_each`); a single
/// command (a step, a poll) takes a channel on the node's kept connection (`run_one`).
pub struct Fleet {
    pub connector: Arc<Connector>,
    pub templates: Arc<Templates>,
    /// Each command's limit on the node (`--command-timeout`).
    pub command_timeout: Duration,
    /// Nodes read at once (`--parallel`).
    pub parallel: usize,
    /// One connection per node for single commands, kept across steps and polls (a poll is a
    /// channel, not a new SSH login).
    kept: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
}

impl Fleet {
    pub fn new(
        connector: Arc<Connector>,
        templates: Arc<Templates>,
        command_timeout: Duration,
        parallel: usize,
    ) -> Arc<Fleet> {
        Arc::new(Fleet {
            connector,
            templates,
            command_timeout,
            parallel,
            kept: Default::default(),
        })
    }

    /// Runs `commands` on every node; `on_done` is called as each node finishes (for
    /// progress). Results come back in the order of `nodes`.
    pub async fn run(
        self: &Arc<Self>,
        nodes: Vec<Node>,
        commands: Vec<Command>,
        on_done: impl Fn(&NodeResult) + Send + Sync + 'static,
    ) -> Vec<NodeResult> {
        let work = nodes.into_iter().map(|n| (n, commands.clone())).collect();
        self.run_each(work, on_done).await
    }

    /// Like `run`, with each node's own list of commands: `parallel` nodes at once, each on a
    /// connection of its own, closed when its list is done.
    pub async fn run_each(
        self: &Arc<Self>,
        work: Vec<(Node, Vec<Command>)>,
        on_done: impl Fn(&NodeResult) + Send + Sync + 'static,
    ) -> Vec<NodeResult> {
        let limit = Arc::new(Semaphore::new(self.parallel.max(1)));
        let on_done = Arc::new(on_done);
        let mut set = JoinSet::new();
        for (i, (node, commands)) in work.into_iter().enumerate() {
            let (limit, fleet, on_done) = (limit.clone(), self.clone(), on_done.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let start = std::time::Instant::now();
                let outcome = fleet.run_node(&node, &commands).await;
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

    /// Runs `cmd` on the node's kept connection, opening one when there is none. When the
    /// kept one has broken (the node rebooted, the network dropped), a fresh one is tried
    /// once: a node that does not answer, or answers with another host key, is then the error.
    pub async fn run_one(&self, node: &Node, cmd: &Command) -> Result<Output, NodeError> {
        let err = |cause: Cause| NodeError {
            node: node.name.clone(),
            address: node.address(),
            cause,
        };
        for attempt in 0..2 {
            let kept = self.kept.lock().await.get(&node.name).cloned();
            let fresh = kept.is_none();
            let session = match kept {
                Some(s) => s,
                None => {
                    let s = Arc::new(self.connector.connect(node).await?);
                    self.kept.lock().await.insert(node.name.clone(), s.clone());
                    s
                }
            };
            let line = self
                .templates
                .remote_line(cmd, self.command_timeout, session.sudo())
                .map_err(|e| err(Cause::Protocol(e.to_string())))?;
            match session.run(&line, self.command_timeout).await {
                Ok(o) => return Ok(o),
                Err(cause) => {
                    let broken = matches!(
                        cause,
                        Cause::Disconnected(_) | Cause::ChannelOpen(_) | Cause::Protocol(_)
                    );
                    if broken {
                        self.kept.lock().await.remove(&node.name);
                    }
                    if !(broken && !fresh && attempt == 0) {
                        return Err(err(cause));
                    }
                }
            }
        }
        Err(err(Cause::Disconnected(
            "the connection broke twice in a row".into(),
        )))
    }

    /// A node's list on a connection of its own: through the node-side runner when there is
    /// more than one command, else (or when the runner cannot start) one channel each.
    async fn run_node(
        &self,
        node: &Node,
        commands: &[Command],
    ) -> Result<Vec<CommandResult>, NodeError> {
        let (templates, limit) = (&self.templates, self.command_timeout);
        let session = Arc::new(self.connector.connect(node).await?);
        if commands.len() > 1 {
            let boundary = crate::batch::boundary();
            match crate::batch::line(templates, commands, limit, session.sudo(), &boundary) {
                Ok(line) if line.len() <= crate::batch::MAX_PROGRAM => {
                    if let Some(out) = run_batch(&session, commands, &line, &boundary, limit).await
                    {
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
