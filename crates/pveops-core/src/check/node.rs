//! A node's own health as check_pve reads it: memory, swap, CPU and IO wait, disks, failed tasks, subscription, certificates.

use super::{Check, Level, ago, finding, reachable};
use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;
use crate::units::human_bytes;

/// Memory or swap in use against the check's levels (`/nodes/N/status`).
fn memory_use(c: &Check, swap: bool, snap: &Snapshot) -> Vec<Finding> {
    let p = &c.params;
    let mut out = Vec::new();
    let (warn, crit) = p.usage_thresholds_pct();
    for n in reachable(snap) {
        let Some(st) = &n.node_status else { continue };
        let m = if swap { &st.swap } else { &st.memory };
        let Some(pct) = m.as_ref().and_then(|m| m.used_pct()) else {
            continue;
        };
        let Some(severity) = Level::Rising.judge(pct, warn, crit) else {
            continue;
        };
        let what = if swap { "swap" } else { "memory" };
        let m = m.as_ref().cloned().unwrap_or_default();
        out.push(finding(
            c,
            severity,
            Some(&n.name),
            Some(what.into()),
            format!(
                "{what} on {} is {pct:.1} % used ({} of {}; warning at {warn} %, critical at {crit} %)",
                n.name,
                human_bytes(m.used_bytes.unwrap_or(0)),
                human_bytes(m.total_bytes.unwrap_or(0))
            ),
        ));
    }
    out
}

pub(super) fn node_memory(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    memory_use(c, false, snap)
}

pub(super) fn node_swap(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    memory_use(c, true, snap)
}

/// CPU or IO wait in the newest minute of the node's RRD against the check's levels.
fn load_use(c: &Check, io: bool, snap: &Snapshot) -> Vec<Finding> {
    let p = &c.params;
    let mut out = Vec::new();
    let (warn, crit) = p.usage_thresholds_pct();
    for n in reachable(snap) {
        let Some(load) = &n.load else { continue };
        let Some(pct) = (if io { load.iowait } else { load.cpu }).map(|v| v * 100.0) else {
            continue;
        };
        let Some(severity) = Level::Rising.judge(pct, warn, crit) else {
            continue;
        };
        let (what, avg) = if io {
            ("IO wait", load.iowait_avg)
        } else {
            ("CPU", load.cpu_avg)
        };
        out.push(finding(
            c,
            severity,
            Some(&n.name),
            Some(if io { "io-wait" } else { "cpu" }.into()),
            format!(
                "{what} on {} is {pct:.1} % in the last minute pvestatd recorded ({:.1} % over the hour; warning at {warn} %, critical at {crit} %)",
                n.name,
                avg.unwrap_or(0.0) * 100.0
            ),
        ));
    }
    out
}

pub(super) fn node_cpu(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    load_use(c, false, snap)
}

pub(super) fn node_io_wait(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    load_use(c, true, snap)
}

pub(super) fn disk_health(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let p = &c.params;
    let mut out = Vec::new();
    let warn = p.wearout_warning_pct.unwrap_or(20.0);
    let crit = p.wearout_critical_pct.unwrap_or(10.0);
    for n in reachable(snap) {
        for d in n.disks.iter().flatten() {
            let name = format!(
                "{} ({})",
                d.devpath,
                d.model.as_deref().unwrap_or("unknown model")
            );
            if d.smart_passed() == Some(false) {
                let h = d.health.as_deref().unwrap_or_default();
                out.push(finding(
                    c,
                    Severity::Critical,
                    Some(&n.name),
                    Some(d.devpath.clone()),
                    format!(
                        "disk {name} on {} reports SMART health {h}: replace it (`smartctl -a {}` on {} shows the details)",
                        n.name, d.devpath, n.name
                    ),
                ));
                continue;
            }
            let Some(left) = d.wearout else { continue };
            let Some(severity) = Level::FallingTo.judge(left, warn, crit) else {
                continue;
            };
            out.push(finding(
                c,
                severity,
                Some(&n.name),
                Some(d.devpath.clone()),
                format!(
                    "SSD {name} on {} has {left:.0} % of its rated life left (warning at {warn} %, critical at {crit} %): plan its replacement",
                    n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn tasks_failed(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    let hours = p.max_age_hours.unwrap_or(24.0);
    for n in reachable(snap) {
        for t in n.tasks.iter().flatten().filter(|t| t.outcome == "error") {
            if (now - t.endtime.unwrap_or(t.starttime)) as f64 > hours * 3600.0 {
                continue;
            }
            // A failed backup job leaves guests without their backup: critical.
            let severity = if t.kind == "vzdump" {
                Severity::Critical
            } else {
                sev
            };
            let id = t.id.as_deref().filter(|i| !i.is_empty());
            out.push(finding(
                c,
                severity,
                Some(&n.name),
                Some(t.upid.clone()),
                format!(
                    "task {}{} on {} failed {}: {} (`pvenode task log {}` on {} shows it)",
                    t.kind,
                    id.map(|i| format!(" {i}")).unwrap_or_default(),
                    n.name,
                    ago(now - t.endtime.unwrap_or(t.starttime)),
                    t.status.as_deref().unwrap_or("no status"),
                    t.upid,
                    n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn subscription_valid(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(sub) = &n.subscription else { continue };
        let status = sub.status.to_lowercase();
        let enterprise = n
            .packages
            .proxmox_channels
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c == "enterprise"));
        let why = match status.as_str() {
            "active" | "new" => continue,
            "notfound" if !enterprise => continue,
            "notfound" => "no subscription, yet apt uses the enterprise repository (its updates will fail with 401): add a key (`pvesubscription set KEY`) or switch to the no-subscription repository".to_string(),
            _ => format!(
                "the subscription is {status}{}: `pvesubscription update --force` checks it again",
                sub.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            ),
        };
        out.push(finding(
            c,
            sev,
            Some(&n.name),
            Some("subscription".into()),
            format!("{}: {why}", n.name),
        ));
    }
    out
}

pub(super) fn cert_expiry(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let p = &c.params;
    let mut out = Vec::new();
    let warn = p.warning_days.unwrap_or(30.0);
    let crit = p.critical_days.unwrap_or(7.0);
    for n in reachable(snap) {
        for cert in n.certificates.iter().flatten() {
            let Some(after) = cert.notafter else { continue };
            let days = (after - now) as f64 / 86400.0;
            let Some(severity) = Level::FallingBelow.judge(days, warn, crit) else {
                continue;
            };
            let when = if days < 0.0 {
                format!("expired {:.0} day(s) ago", -days)
            } else {
                format!("expires in {days:.1} day(s)")
            };
            out.push(finding(
                c,
                severity,
                Some(&n.name),
                Some(cert.filename.clone()),
                format!(
                    "certificate {} of {} {when} (warning under {warn} days, critical under {crit}): `pvenode acme cert renew`, or `pvecm updatecerts --force` for the self-signed pve-ssl.pem, on {}",
                    cert.filename, n.name, n.name
                ),
            ));
        }
    }
    out
}
