//! Package checks: broken packages, kept-back and pending updates, the lists' age.

use super::{Check, finding, reachable};
use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;

pub(super) fn packages_configured(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(broken) = &n.packages.broken_packages else {
            continue;
        };
        for pkg in broken {
            // Proxmox's own packages half configured leave PVE itself half upgraded.
            let severity = if crate::facts::apt_get::is_pve_package(pkg) {
                Severity::Critical
            } else {
                Severity::Warning
            };
            out.push(finding(
                c,
                severity,
                Some(&n.name),
                Some(pkg.clone()),
                format!(
                    "package {pkg} on {} is left broken or half configured (dpkg --audit): `dpkg --configure -a` on {} finishes it",
                    n.name, n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn updates_kept_back(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(u) = &n.updates else { continue };
        for pkg in &u.kept_back {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some(pkg.clone()),
                format!(
                    "package {pkg} on {} is kept back: `apt-get dist-upgrade` will not upgrade it on its own; `apt-get install {pkg}` on {} shows why (a hold, or a dependency apt will not resolve)",
                    n.name, n.name
                ),
            ));
        }
    }
    out
}

pub(super) fn updates_pending(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(u) = &n.updates else { continue };
        if u.installs.is_empty() && u.removals.is_empty() {
            continue;
        }
        let counts = u
            .counts
            .as_ref()
            .map(|c| {
                format!(
                    "{} upgraded, {} newly installed, {} to remove, {} kept back",
                    c.upgraded, c.newly_installed, c.removed, c.not_upgraded
                )
            })
            .unwrap_or_else(|| {
                format!(
                    "{} to install, {} to remove",
                    u.installs.len(),
                    u.removals.len()
                )
            });
        let mut notes = Vec::new();
        if !u.new_kernels.is_empty() {
            notes.push(format!(
                "new kernel {} (a reboot will follow)",
                u.new_kernels.join(", ")
            ));
        }
        let pve: Vec<String> = u
            .installs
            .iter()
            .filter(|i| u.pve_packages.contains(&i.package) && i.kernel_release.is_none())
            .filter(|i| {
                !i.package.starts_with("proxmox-kernel-") && !i.package.starts_with("pve-kernel-")
            })
            .map(|i| {
                format!(
                    "{} {} → {}",
                    i.package,
                    i.old_version.as_deref().unwrap_or("new"),
                    i.new_version
                )
            })
            .collect();
        if !pve.is_empty() {
            notes.push(format!("PVE packages: {}", pve.join(", ")));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        };
        out.push(finding(
            c,
            sev,
            Some(&n.name),
            Some("packages".into()),
            format!(
                "node {} has pending updates: {counts}{notes} (`pveops update {}` applies them)",
                n.name, n.name
            ),
        ));
    }
    out
}

pub(super) fn lists_fresh(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    let days = c.params.max_age_days.unwrap_or(7.0);
    for n in reachable(snap) {
        let Some(age) = n.apt_lists_age_seconds else {
            continue;
        };
        if age as f64 > days * 86400.0 {
            out.push(finding(
                c,
                sev,
                Some(&n.name),
                Some("apt-lists".into()),
                format!(
                    "the package lists of {} are {:.0} days old (older than {days} days): pending updates may be unknown; `apt-get update` refreshes them",
                    n.name,
                    age as f64 / 86400.0
                ),
            ));
        }
    }
    out
}
