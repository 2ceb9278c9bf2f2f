//! `pvesr status` (kind `pvesr-status`): the storage replication jobs of this node.
//!
//! pve-manager `PVE/CLI/pvesr.pm` (`$print_job_status`, commit 14a22df3) prints
//! `"%-10s %-10s %-20s %20s %20s %10s %10s %s\n"` for JobID, Enabled, Target, LastSync,
//! NextSync, Duration, FailCount, State: the header always, then one line per job sorted by
//! guest, so a node without jobs prints the header alone. The rows come from
//! `PVE/API2/Replication.pm` `status` (`$extract_job_status`) over pve-guest-common
//! `src/PVE/ReplicationState.pm` `job_status(1)` (disabled jobs included):
//! - JobID `GUEST-N` (`PVE::ReplicationConfig::parse_replication_job_id`);
//! - Enabled `Yes`/`No` (`disable`);
//! - Target `local/NODE` (`PVE::ReplicationConfig::Cluster::get_unique_target_id`);
//! - LastSync `-` when never synced, else `strftime("%Y-%m-%d_%H:%M:%S", localtime(…))`:
//!   the node's local time, e.g. `2026-01-05_14:30:01`;
//! - NextSync the same format, `pending` when the next sync is due already (`next <= now`),
//!   `-` when none is computed (e.g. failing while the target is offline);
//! - Duration `-` or the last run's seconds as Perl prints `tv_interval` (`4.184725`);
//! - FailCount (`fail_count //= 0`, reset on success);
//! - State `SYNCING` while a sync runs (live pid), else the last error (`record_job_end`
//!   chomps it; it can contain newlines, which then continue on the next lines), else `OK`.
//!
//! Columns are read as whitespace-separated tokens (a long job id or target overflows its
//! width); State is the rest of the line. A line that is not a job row right after one is a
//! continuation of that job's error.
//! Also what the snapshot keeps of it: each [`ReplicationJob`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, Line, captures, group, lines, locale_noise, regex};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "pvesr-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesr status: replication jobs with last/next sync, duration, fail count, state",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// `100-0`.
    pub job_id: String,
    /// The guest of the job id.
    pub guest: Option<u64>,
    pub enabled: bool,
    /// `local/pve2`.
    pub target: String,
    /// As printed (`2026-01-05_14:30:01`, node-local time); null for `-`.
    pub last_sync: Option<String>,
    /// As printed, or `pending` (due now); null for `-`.
    pub next_sync: Option<String>,
    /// The last run's duration in seconds; null for `-`.
    pub duration_s: Option<f64>,
    pub fail_count: u64,
    /// `OK`, `SYNCING`, or the last error's text.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvesrStatus {
    pub jobs: Vec<Job>,
}

/// One replication job of `pvesr status` (kind `pvesr-status`); the epochs are derived in
/// the snapshot from the printed node-local times and the node's UTC offset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationJob {
    pub job_id: String,
    pub guest: Option<u64>,
    pub enabled: bool,
    pub target: String,
    pub last_sync: Option<String>,
    pub next_sync: Option<String>,
    pub duration_s: Option<f64>,
    pub fail_count: u64,
    pub state: String,
    pub last_sync_epoch: Option<i64>,
    pub next_sync_epoch: Option<i64>,
}

/// The epochs stay null: only the snapshot knows the node's UTC offset (`Snapshot::derive`).
impl From<&Job> for ReplicationJob {
    fn from(j: &Job) -> Self {
        let Job {
            job_id,
            guest,
            enabled,
            target,
            last_sync,
            next_sync,
            duration_s,
            fail_count,
            state,
        } = j;
        ReplicationJob {
            job_id: job_id.clone(),
            guest: *guest,
            enabled: *enabled,
            target: target.clone(),
            last_sync: last_sync.clone(),
            next_sync: next_sync.clone(),
            duration_s: *duration_s,
            fail_count: *fail_count,
            state: state.clone(),
            last_sync_epoch: None,
            next_sync_epoch: None,
        }
    }
}

static JOB_ID: LazyRegex = LazyLock::new(|| regex(r"^(\d+)-\d+$"));

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

/// Splits off the first whitespace-separated token; returns it and the rest (trimmed at start).
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    match s.split_once(char::is_whitespace) {
        Some((t, rest)) => Some((t, rest.trim_start())),
        None => Some((s, "")),
    }
}

fn dash(s: &str) -> Option<String> {
    (s != "-").then(|| s.to_owned())
}

/// A job row, or `None` when the line does not start like one (JobID, then Yes/No).
fn row(line: &Line<'_>) -> Option<Result<Job, ParseError>> {
    let (job_id, rest) = token(line.text)?;
    let guest = captures(&JOB_ID, job_id)?;
    let (enabled, rest) = token(rest)?;
    let enabled = match enabled {
        "Yes" => true,
        "No" => false,
        _ => return None,
    };
    let mut rest = rest;
    let mut cols = Vec::new();
    for _ in 0..5 {
        let Some((t, r)) = token(rest) else {
            return Some(Err(err(
                line,
                "expected 8 columns (JobID Enabled Target LastSync NextSync Duration FailCount State)",
            )));
        };
        cols.push(t);
        rest = r;
    }
    let [target, last, next, duration, fails] = cols.as_slice() else {
        return Some(Err(err(line, "expected 8 columns")));
    };
    let duration_s = match *duration {
        "-" => None,
        d => match d.parse::<f64>() {
            Ok(f) if f.is_finite() => Some(f),
            _ => return Some(Err(err(line, "the duration is not a number"))),
        },
    };
    let Ok(fail_count) = fails.parse::<u64>() else {
        return Some(Err(err(line, "the fail count is not a number")));
    };
    Some(Ok(Job {
        job_id: job_id.to_owned(),
        guest: group(&guest, 0).and_then(|g| g.parse().ok()),
        enabled,
        target: (*target).to_owned(),
        last_sync: dash(last),
        next_sync: dash(next),
        duration_s,
        fail_count,
        state: rest.to_owned(),
    }))
}

pub fn parse(text: &str) -> Result<PvesrStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut jobs: Vec<Job> = Vec::new();
    let mut header = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || (t.is_empty() && !header) {
            continue;
        }
        let mut words = t.split_whitespace();
        if !header {
            if words.next() == Some("JobID") && words.next() == Some("Enabled") {
                header = true;
                continue;
            }
            if let Some(d) = stderr::classify(line.no, t) {
                return Err(err(line, d.message));
            }
            return Err(err(
                line,
                "expected the \"JobID Enabled Target LastSync NextSync Duration FailCount State\" header",
            ));
        }
        match row(line) {
            Some(job) => jobs.push(job?),
            None => match jobs.last_mut() {
                // The last error's further lines (it may hold newlines).
                Some(last) => {
                    last.state.push('\n');
                    last.state.push_str(t);
                }
                None if t.is_empty() => {}
                None => return Err(err(line, "not a job row")),
            },
        }
    }
    if !header {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no header (pvesr status always prints one, even without jobs)",
        ));
    }
    // Trailing empty lines are not part of the last error.
    for job in &mut jobs {
        let kept = job.state.trim_end_matches('\n').len();
        job.state.truncate(kept);
    }
    Ok(PvesrStatus { jobs })
}

/// The `pvesr-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "pvesr-status",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.replication = Some(parsed.jobs.iter().map(Into::into).collect());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const HEADER: &str = "JobID      Enabled    Target                           LastSync             NextSync   Duration  FailCount State\n";

    #[test]
    fn ok_failing_and_multiline_error() {
        let text = format!(
            "{HEADER}100-0      Yes        local/pve2            2026-01-05_14:30:01  2026-01-05_14:45:00   4.184725          0 OK\n\
             101-0      No         local/pve3            -                    pending                 -          3 command 'zfs snapshot x' failed: exit code 1\n\
             second line of the error\n"
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.jobs.len(), 2);
        assert_eq!(s.jobs[0].guest, Some(100));
        assert_eq!(s.jobs[0].duration_s, Some(4.184725));
        assert_eq!(s.jobs[0].last_sync.as_deref(), Some("2026-01-05_14:30:01"));
        assert!(!s.jobs[1].enabled);
        assert_eq!(s.jobs[1].last_sync, None);
        assert_eq!(s.jobs[1].next_sync.as_deref(), Some("pending"));
        assert_eq!(s.jobs[1].fail_count, 3);
        assert_eq!(
            s.jobs[1].state,
            "command 'zfs snapshot x' failed: exit code 1\nsecond line of the error"
        );
    }

    #[test]
    fn header_only_is_no_jobs_and_no_header_is_an_error() {
        assert!(parse(HEADER).unwrap().jobs.is_empty());
        assert_eq!(parse("").unwrap_err().line, 0);
        assert_eq!(parse("100-0 Yes local/x - - - 0 OK\n").unwrap_err().line, 1);
        let bad = format!("{HEADER}100-0 Yes local/x - - 1.5 many OK\n");
        assert_eq!(parse(&bad).unwrap_err().line, 2);
        let stray = format!("{HEADER}what is this\n");
        assert_eq!(parse(&stray).unwrap_err().line, 2);
    }
}
