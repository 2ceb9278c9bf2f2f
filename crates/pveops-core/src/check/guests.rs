//! Guest checks: locks (judged by the task that holds them) and backups.

use super::{Check, ago, finding, reachable, target_of};
use crate::finding::Finding;
use crate::snapshot::Snapshot;

pub(super) fn guest_unlocked(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    let max_lock_hours = p.max_lock_hours.unwrap_or(f64::INFINITY);
    let mut seen = std::collections::BTreeSet::new();
    for r in snap.resources.iter().filter(|r| r.lock.is_some()) {
        let (Some(vmid), Some(lock)) = (r.vmid, &r.lock) else {
            continue;
        };
        if p.exclude_guests.contains(&vmid) || !seen.insert(vmid) {
            continue;
        }
        let node = target_of(snap, r.node.as_deref());
        let how = match lock_age(snap, node.as_deref(), vmid, lock, now) {
            LockAge::NotRead => String::new(),
            LockAge::Working(secs) if secs as f64 <= max_lock_hours * 3600.0 => continue,
            LockAge::Working(secs) => format!(
                " by a task running for {} (over {max_lock_hours} h): see the task on {}",
                ago(secs).trim_end_matches(" ago"),
                r.node.as_deref().unwrap_or("?")
            ),
            LockAge::Stale => format!(
                ", but no {lock} task runs: a stale lock; `{} unlock {vmid}` clears it once you know why",
                if r.kind == "lxc" { "pct" } else { "qm" }
            ),
        };
        out.push(finding(
            c,
            sev,
            node.as_deref(),
            Some(vmid.to_string()),
            format!(
                "guest {vmid} ({}) on {} is locked ({lock}){how}",
                r.name.as_deref().unwrap_or("unnamed"),
                r.node.as_deref().unwrap_or("?")
            ),
        ));
    }
    for n in reachable(snap) {
        for ct in n.containers.iter().filter(|ct| ct.lock.is_some()) {
            if p.exclude_guests.contains(&ct.vmid) || !seen.insert(ct.vmid) {
                continue;
            }
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some(ct.vmid.to_string()),
                format!(
                    "container {} ({}) on {} is locked ({})",
                    ct.vmid,
                    ct.name,
                    n.name,
                    ct.lock.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    out
}

pub(super) fn backup_recent(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let max_hours = c.params.max_age_hours.unwrap_or(7.0 * 24.0);
    let mut out = Vec::new();
    if snap.resources.is_empty() {
        return out;
    }
    for r in snap
        .resources
        .iter()
        .filter(|r| r.is_guest() && r.template != Some(true))
    {
        let Some(vmid) = r.vmid else { continue };
        if c.params.exclude_guests.contains(&vmid) {
            continue;
        }
        let node = target_of(snap, r.node.as_deref());
        let name = r.name.as_deref().unwrap_or("unnamed");
        match snap.newest_backup(vmid).map(|b| b.epoch) {
            None => out.push(finding(
                c,
                c.severity,
                node.as_deref(),
                Some(vmid.to_string()),
                format!("guest {vmid} ({name}) has no backup"),
            )),
            Some(t) => {
                let hours = (now - t) as f64 / 3600.0;
                if hours > max_hours {
                    out.push(finding(c, c.severity, node.as_deref(), Some(vmid.to_string()), format!(
                        "the newest backup of guest {vmid} ({name}) is {:.0} hours old (limit {max_hours:.0} h)",
                        hours
                    )));
                }
            }
        }
    }
    out
}

/// How long a guest's `backup` or `migrate` lock has been held, from the node's running tasks.
enum LockAge {
    /// Another lock, or the node's tasks were not read.
    NotRead,
    /// The task holding it has been running this many seconds.
    Working(i64),
    /// No task that takes this lock runs on the node.
    Stale,
}

/// The running task behind a guest's lock: `vzdump` for `backup` (its id is the guest when it
/// backs up one, empty for a job of several), `qmigrate`/`vzmigrate` for `migrate`
/// (pve-manager `PVE/API2/VZDump.pm`, qemu-server/pve-container `migrate_vm`).
fn lock_age(snap: &Snapshot, node: Option<&str>, vmid: u64, lock: &str, now: i64) -> LockAge {
    let kinds: &[&str] = match lock {
        "backup" => &["vzdump"],
        "migrate" => &["qmigrate", "vzmigrate", "hamigrate"],
        _ => return LockAge::NotRead,
    };
    let Some(tasks) = node
        .and_then(|n| snap.node(n))
        .and_then(|n| n.tasks.as_ref())
    else {
        return LockAge::NotRead;
    };
    let id = vmid.to_string();
    tasks
        .iter()
        .filter(|t| t.outcome == "running" && kinds.contains(&t.kind.as_str()))
        .filter(|t| t.id.as_deref().is_none_or(|i| i.is_empty() || i == id))
        .map(|t| now - t.starttime)
        .max()
        .map_or(LockAge::Stale, LockAge::Working)
}
