//! Storage checks: active, usage, replication jobs.

use super::{Check, Level, ago, finding, reachable};
use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;
use crate::units::human_bytes;

pub(super) fn storage_active(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    for n in reachable(snap) {
        for s in n
            .storages
            .iter()
            .filter(|s| s.status == "inactive" && !p.exclude_storages.contains(&s.name))
        {
            let why = s
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some(s.name.clone()),
                format!(
                    "storage {} on {} is enabled but inactive{why}",
                    s.name, n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn storage_usage(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let p = &c.params;
    let mut out = Vec::new();
    let (warn, crit) = p.usage_thresholds_pct();
    for n in reachable(snap) {
        for s in n
            .storages
            .iter()
            .filter(|s| s.status == "active" && !p.exclude_storages.contains(&s.name))
        {
            let Some(pct) = s.used_pct else { continue };
            let Some(level) = Level::Rising.judge(pct, warn, crit) else {
                continue;
            };
            let limit = if level == Severity::Critical {
                crit
            } else {
                warn
            };
            out.push(finding(
                c,
                level,
                Some(&n.name),
                Some(s.name.clone()),
                format!(
                    "storage {} on {} is {pct:.2} % full (threshold {limit} %), {} free",
                    s.name,
                    n.name,
                    human_bytes(s.avail_bytes)
                ),
            ));
        }
    }
    out
}

pub(super) fn replication_healthy(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    // A job is overdue when its next run is this long past (a sync runs at most every
    // minute, pvesr's timer; a missed one is retried at the next).
    let grace = p.max_age_hours.unwrap_or(1.0) * 3600.0;
    for n in reachable(snap) {
        for j in n.replication.iter().flatten().filter(|j| j.enabled) {
            if j.fail_count > 0 || !matches!(j.state.as_str(), "OK" | "SYNCING") {
                out.push(finding(
                    c,
                    Severity::Critical,
                    Some(&n.name),
                    Some(j.job_id.clone()),
                    format!(
                        "replication job {} ({} to {}) on {} failed {} time(s): {} (`pvesr status` on {}; `pvesr run --id {} --verbose` retries it)",
                        j.job_id,
                        j.guest.map(|g| g.to_string()).unwrap_or_default(),
                        j.target,
                        n.name,
                        j.fail_count,
                        j.state.lines().next().unwrap_or(""),
                        n.name,
                        j.job_id
                    ),
                ));
            } else if let Some(next) = j.next_sync_epoch
                && (now - next) as f64 > grace
            {
                out.push(finding(
                    c,
                    sev,
                    Some(&n.name),
                    Some(j.job_id.clone()),
                    format!(
                        "replication job {} ({} to {}) on {} is overdue: its next run was due {} (last sync {}); is pvescheduler running on {}?",
                        j.job_id,
                        j.guest.map(|g| g.to_string()).unwrap_or_default(),
                        j.target,
                        n.name,
                        ago(now - next),
                        j.last_sync.as_deref().unwrap_or("never"),
                        n.name
                    ),
                ));
            }
        }
    }
    out
}
