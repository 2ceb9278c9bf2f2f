//! What a remote command returned: stdout and stderr kept apart, the exit status or the signal
//! that ended it, and how long it took.

use std::time::Duration;

use serde::Serialize;

/// How a remote command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// It exited with this status.
    Code(u32),
    /// It was killed by this signal (`TERM`, `KILL`, ...); there is no exit status then.
    Signal { name: String, core_dumped: bool },
    /// The channel closed with neither (never reported as 0: CRATES.md P2).
    Unknown,
}

/// How a command ended, for a message: `exited N`, or `exited without status` when the
/// channel closed without one (a signal, a dropped session).
pub fn exited(code: Option<u32>) -> String {
    match code {
        Some(c) => format!("exited {c}"),
        None => "exited without status".into(),
    }
}

/// A failed command in one line: `` `SCRIPT` [on NODE] exited N: LAST LINE `` of what it said.
pub fn failure(script: &str, on: Option<&str>, code: Option<u32>, said: &str) -> String {
    let on = on.map(|n| format!(" on {n}")).unwrap_or_default();
    let last = said
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    format!("`{script}`{on} {}: {last}", exited(code))
}

/// The captured result of one command on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Exit,
    pub started_at: jiff::Timestamp,
    pub duration: Duration,
    /// True when more than `MAX_CAPTURE` bytes of a stream were dropped.
    pub truncated: bool,
}

/// The most of each stream kept in memory; the rest is read and dropped so that the
/// connection never stalls (CRATES.md P3).
pub const MAX_CAPTURE: usize = 64 * 1024 * 1024;

impl Output {
    pub fn exit_code(&self) -> Option<u32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }

    pub fn signal(&self) -> Option<&str> {
        match &self.exit {
            Exit::Signal { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Appends `data` to `buf` up to `MAX_CAPTURE`; returns false when something was dropped.
pub fn capture(buf: &mut Vec<u8>, data: &[u8]) -> bool {
    let room = MAX_CAPTURE.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
    data.len() <= room
}
