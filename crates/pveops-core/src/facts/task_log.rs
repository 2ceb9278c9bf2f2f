//! Task output of `qm/pct migrate|start|shutdown|...` (FORMATS.md §3.4, §3.5, §4.4, §0.6):
//! `YYYY-MM-DD HH:MM:SS <msg>` lines, `ERROR: ` lines, untimestamped lines from storage
//! plugins and helper commands, HA requests, and the error text that goes to STDERR.

use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, locale_noise, regex};
use super::stderr;

pub const KIND: &str = "task-log";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "output of qm/pct migrate/start/shutdown: task lines and outcome",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLine {
    /// Timestamp as printed (`2025-01-04 00:34:24`; PVE 4: `May 02 10:57:01`), or null.
    pub time: Option<String>,
    /// The text after the timestamp.
    pub message: String,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaRequest {
    /// `start`, `stop`, `migrate`, ...
    pub action: String,
    /// `VM` or `CT`.
    pub guest_type: String,
    pub vmid: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskLog {
    pub lines: Vec<TaskLine>,
    /// `ok`, `error` or `unknown` (nothing says how it ended, e.g. a plain `qm start` that
    /// prints nothing, or an HA request that the CRM carries out later).
    pub outcome: &'static str,
    /// The first error message, as one sentence when it is a known one.
    pub error: Option<String>,
    /// `Task finished with N warning(s)!` / `TASK WARNINGS: N`.
    pub warnings: Option<u64>,
    /// `migration finished successfully (duration HH:MM:SS)` and friends.
    pub duration: Option<String>,
    /// `Requesting HA start for VM 100`: HA-managed guests only request the action.
    pub ha_request: Option<HaRequest>,
    pub diagnostics: Vec<stderr::Diagnostic>,
}

static TS: LazyRegex = LazyLock::new(|| regex(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) ?(.*)$"));
// PVE 4 task logs: `May 02 10:57:01 <msg>`.
static TS_OLD: LazyRegex =
    LazyLock::new(|| regex(r"^([A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2}) ?(.*)$"));
static HA_REQ: LazyRegex = LazyLock::new(|| regex(r"^Requesting HA (\S+) for (VM|CT) (\d+)$"));
static DURATION: LazyRegex = LazyLock::new(|| regex(r"\(duration (\d+:\d{2}:\d{2})\)"));
static WARNINGS: LazyRegex =
    LazyLock::new(|| regex(r"^(?:TASK WARNINGS: (\d+)|Task finished with (\d+) warning\(s\)!)$"));

pub fn parse(text: &str) -> Result<TaskLog, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = TaskLog {
        lines: Vec::new(),
        outcome: "unknown",
        error: None,
        warnings: None,
        duration: None,
        ha_request: None,
        diagnostics: Vec::new(),
    };
    let mut ok = false;
    let mut failed = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        if is_noise || line.text.is_empty() {
            continue;
        }
        // Storage plugins and helper commands interleave untimestamped lines (FORMATS.md
        // §3.5, LINSTOR NOTICE block); they are kept with a null time.
        let (time, message) =
            match captures(&TS, line.text).or_else(|| captures(&TS_OLD, line.text)) {
                Some(c) => (
                    group(&c, 0).map(str::to_owned),
                    group(&c, 1).unwrap_or_default().to_owned(),
                ),
                None => (None, line.text.to_owned()),
            };
        let m = message.as_str();
        let mut error = m.starts_with("ERROR:") || m.starts_with("TASK ERROR:");
        if m == "TASK OK" {
            ok = true;
        }
        if let Some(c) = captures(&WARNINGS, m) {
            out.warnings = group(&c, 0).or(group(&c, 1)).and_then(|n| n.parse().ok());
            ok = true;
        }
        if m.starts_with("migration finished successfully") {
            ok = true;
        }
        if m.starts_with("migration aborted") || m.starts_with("migration finished with problems") {
            error = true;
        }
        if let Some(c) = captures(&DURATION, m) {
            out.duration = group(&c, 0).map(str::to_owned);
        }
        if let Some(c) = captures(&HA_REQ, m) {
            out.ha_request = Some(HaRequest {
                action: group(&c, 0).unwrap_or_default().to_owned(),
                guest_type: group(&c, 1).unwrap_or_default().to_owned(),
                vmid: group(&c, 2)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default(),
            });
        }
        if time.is_none()
            && let Some(d) = stderr::classify(line.no, m)
        {
            // Failures go to STDERR without the `TASK ERROR:` prefix (FORMATS.md §0.6),
            // e.g. `VM 100 already running`; warnings count is not a failure.
            if !matches!(d.code, "task-warnings" | "apt-warning") {
                error = true;
                out.error.get_or_insert_with(|| d.message.clone());
            }
            out.diagnostics.push(d);
        }
        if error {
            failed = true;
            out.error.get_or_insert_with(|| {
                m.strip_prefix("TASK ERROR: ")
                    .or_else(|| m.strip_prefix("ERROR: "))
                    .unwrap_or(m)
                    .to_owned()
            });
        }
        out.lines.push(TaskLine {
            time,
            message,
            error,
        });
    }
    out.outcome = if failed {
        "error"
    } else if ok {
        "ok"
    } else {
        "unknown"
    };
    Ok(out)
}

/// Stdout and STDERR captured separately, plus the exit status: on failure the CLI prints
/// the error to STDERR and exits 255; `TASK OK` is never printed (FORMATS.md §0.6).
pub fn parse_with_stderr(
    stdout: &str,
    stderr_text: &str,
    exit_code: Option<i32>,
) -> Result<TaskLog, ParseError> {
    let mut log = parse(stdout)?;
    let err = parse(stderr_text)?;
    log.diagnostics.extend(err.diagnostics);
    if log.warnings.is_none() {
        log.warnings = err.warnings;
    }
    if err.outcome == "error" || exit_code.is_some_and(|c| c != 0) {
        log.outcome = "error";
        if log.error.is_none() {
            log.error = err
                .error
                .or_else(|| err.lines.first().map(|l| l.message.clone()))
                .or_else(|| exit_code.map(|c| format!("the command exited with status {c}")));
        }
    } else if exit_code == Some(0) && log.outcome == "unknown" {
        log.outcome = "ok";
    }
    Ok(log)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn untimestamped_lines_and_errors() {
        let text = "2026-01-01 10:00:00 starting migration of VM 100 to node 'b' (10.0.0.2)\nNOTICE\n  Trying to create diskful resource\n2026-01-01 10:00:05 ERROR: online migrate failure - aborted\n2026-01-01 10:00:05 migration aborted (duration 00:00:05): online migrate failure - aborted\n";
        let l = parse(text).unwrap();
        assert_eq!(l.lines[1].time, None);
        assert_eq!(l.lines[1].message, "NOTICE");
        assert!(l.lines[3].error);
        assert_eq!(l.outcome, "error");
        assert_eq!(l.error.as_deref(), Some("online migrate failure - aborted"));
        assert_eq!(l.duration.as_deref(), Some("00:00:05"));
    }

    #[test]
    fn stderr_only_failure() {
        let l = parse("VM 100 already running\n").unwrap();
        assert_eq!(l.outcome, "error");
        assert_eq!(l.error.as_deref(), Some("guest 100 is already running"));
    }

    #[test]
    fn separate_streams_and_exit_code() {
        let l = parse_with_stderr("", "", Some(0)).unwrap();
        assert_eq!(l.outcome, "ok");
        let l = parse_with_stderr("Requesting HA start for VM 100\n", "", Some(0)).unwrap();
        assert_eq!(l.ha_request.unwrap().action, "start");
        let l =
            parse_with_stderr("", "VM quit/powerdown failed - got timeout\n", Some(255)).unwrap();
        assert_eq!(l.outcome, "error");
        assert_eq!(
            l.error.as_deref(),
            Some("the guest did not shut down before the timeout")
        );
        let l = parse_with_stderr("", "Task finished with 1 warning(s)!\n", Some(0)).unwrap();
        assert_eq!((l.outcome, l.warnings), ("ok", Some(1)));
    }

    #[test]
    fn pve4_timestamps() {
        let l = parse("May 02 10:57:01 migration speed: 256.00 MB/s\n").unwrap();
        assert_eq!(l.lines[0].time.as_deref(), Some("May 02 10:57:01"));
    }
}
