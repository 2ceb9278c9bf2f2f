//! The journal of an operation: what `journal.jsonl` holds, one JSON object per line, written
//! before and after each step runs (PRODUCT.md "Evidence bundle": `seq`, `step`, `command`,
//! `phase`, `time`, and on `end` `outcome`, `exit_code`, `verified`, `message`, `undo`), and
//! what a step left when it ended ([`Done`]). `pveops::journal::Journal` appends the lines.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u32,
    /// What the step does, in words.
    pub step: String,
    /// The exact command sent, or null for a step without one (a no-op, a wait).
    pub command: Option<String>,
    /// `start` or `end`.
    pub phase: String,
    /// RFC 3339, UTC.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<StepOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The command that undoes the step (null when there is nothing to undo); on `end` lines.
    #[serde(default)]
    pub undo: Option<String>,
    /// What the step is, typed (`{"kind": "migrate", "vmid": …}`): what `restore` reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<crate::plan::Action>,
}

/// How a step ended (`end` lines): `ok`, `failed`, `skipped` or `aborted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    /// It ran and its state was verified.
    Ok,
    Failed,
    /// Nothing to do, or its condition did not hold.
    Skipped,
    /// A signal ended it; what it started may still run on the node.
    Aborted,
}

impl StepOutcome {
    pub fn word(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// What one step ended with, for the report and the evidence.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    pub seq: u32,
    pub step: String,
    pub command: String,
    pub started: String,
    pub duration_ms: u64,
    pub exit_code: Option<u32>,
    pub outcome: StepOutcome,
    pub verified: bool,
    pub message: String,
    /// What a detached command left on the node (exit status and log), for the evidence.
    #[serde(skip)]
    pub log: Option<DetachedLog>,
}

/// A detached command's state on its node.
#[derive(Clone, Debug)]
pub struct DetachedLog {
    /// Its exit status once it has ended (`None`: still running, or ended with the node).
    pub rc: Option<i32>,
    /// Its output so far.
    pub log: String,
}

/// Reads a journal; a torn last line (a crash mid-write) is ignored.
pub fn read(path: &Path) -> Result<Vec<Entry>, crate::Error> {
    let text = crate::input::read_to_string(path, crate::input::MAX_DOCUMENT)
        .map_err(|e| crate::Error::io(path, "read the journal", e))?;
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(crate::Error::file(
                    path,
                    format!("line {}: not a journal entry: {e}", i + 1),
                ));
            }
        }
    }
    Ok(out)
}

/// RFC 3339 UTC, to the second... and below, so that entries of one second keep their order.
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}
