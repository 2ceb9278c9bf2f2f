//! Commands that outlive the SSH channel: migrations, reboots and upgrades run detached on the
//! node (`detached.hbs`), their output in a log there and their exit status written beside it
//! when they end; each poll reads both, and a verified step's files are removed.

use serde_json::json;

use super::{DetachedLog, Runner};
use crate::command::Command;
use crate::facts;
use crate::plan::Verify;

impl Runner {
    /// The exit status and log of a detached command, as `detached-status` prints them
    /// (first line the status or `running`). `None` when the node cannot be asked (it may be
    /// rebooting).
    pub(super) async fn detached_state(&self, node: &str, log: &str) -> Option<DetachedLog> {
        let cmd = self
            .fleet
            .templates
            .render(
                "detached-status",
                &json!({ "rcfile": format!("{log}.rc"), "logfile": log }),
            )
            .ok()?;
        let (code, text, _) = self.run_on(node, &cmd).await.ok()?;
        if code != Some(0) {
            return None;
        }
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let rc = match first.trim() {
            "running" => None,
            n => Some(n.parse::<i32>().ok()?),
        };
        Some(DetachedLog {
            rc,
            log: rest.to_string(),
        })
    }

    /// Removes a detached command's log and exit-status file from `node`; a failure is only
    /// logged (the step is done, the files are small).
    pub(super) async fn remove_detached(&self, node: &str, log: &str) {
        let rm = self.fleet.templates.render(
            "detached-cleanup",
            &json!({ "logfile": log, "rcfile": format!("{log}.rc") }),
        );
        let done = match rm {
            Ok(cmd) => self
                .run_on(node, &cmd)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = done {
            tracing::warn!("{node}: could not remove {log}: {e}");
        }
    }

    /// The command wrapped to run detached on the node, its output kept in a log there.
    pub(super) fn detached(&self, cmd: &Command, log: &str) -> Result<Command, crate::Error> {
        let mut c = self
            .fleet
            .templates
            .render("detached", &json!({"script": cmd.script, "logfile": log}))?;
        c.name = cmd.name.clone();
        Ok(c)
    }
}

/// Why a detached command that ended with `rc` failed, read from its log with the parser of
/// what it ran; `None` when `rc` is no failure. A reboot killed by the shutdown it started
/// (a signal, `rc` ≥ 128) is no failure: whether the node came back decides.
pub(super) fn detached_failure(v: &Verify, rc: i32, log: &str) -> Option<String> {
    if rc == 0 {
        return None;
    }
    let last = || {
        log.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("it printed nothing")
            .to_string()
    };
    match v {
        Verify::NodeBack { .. } if rc >= 128 => None,
        Verify::NodeBack { .. } => Some(format!("reboot failed: {}", last())),
        Verify::Upgraded { .. } => Some(
            facts::apt_log::parse(log)
                .ok()
                .and_then(|l| l.failure())
                .unwrap_or_else(last),
        ),
        _ => Some(
            facts::task_log::parse(log)
                .ok()
                .and_then(|t| t.error)
                .unwrap_or_else(last),
        ),
    }
}
