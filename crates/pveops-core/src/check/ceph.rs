//! Ceph checks, where PVE has Ceph configured: its health and a noout flag left set.

use super::{Check, finding};
use crate::finding::{Finding, Severity};
use crate::snapshot::Snapshot;

pub(super) fn ceph_noout(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let mut out = Vec::new();
    if let Some(ceph) = snap.ceph.as_ref().filter(|c| {
        c.state == crate::facts::ceph_status::CephState::Configured
            && c.health.as_ref().is_some_and(|h| h.noout)
    }) {
        out.push(finding(
            c,
            sev,
            ceph.health_from.as_deref(),
            Some("noout".into()),
            "Ceph's noout flag is set: OSDs that go down are never marked out, so their data is not re-replicated; once maintenance is over and every OSD is up, `ceph osd unset noout` clears it".into(),
        ));
    }
    out
}

/// Ceph's health where PVE has Ceph configured (the snapshot's `ceph`); nothing where it has
/// none, since the ceph CLI is on every PVE node and fails there by design.
pub(super) fn ceph_health(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    use crate::facts::ceph_status::CephState;
    let Some(ceph) = &snap.ceph else {
        return Vec::new();
    };
    let subject = Some("ceph".to_string());
    match (ceph.state, &ceph.health) {
        (CephState::NotConfigured, _) => Vec::new(),
        (CephState::Unreachable, _) | (_, None) => vec![finding(
            c,
            Severity::Critical,
            None,
            subject,
            format!(
                "Ceph is configured (/etc/pve/ceph.conf) but no node got its health: {}; check the monitors with `ceph -s`",
                ceph.error.as_deref().unwrap_or("no answer")
            ),
        )],
        // The noout flag alone is the `ceph-noout` rule's finding, not a second one here.
        (CephState::Configured, Some(h)) if h.ok_but_noout() => Vec::new(),
        (CephState::Configured, Some(h)) => {
            let severity = if h.status == "HEALTH_ERR" {
                Severity::Critical
            } else {
                c.severity
            };
            let checks: Vec<&str> = h.checks.iter().map(|k| k.message.as_str()).collect();
            vec![finding(
                c,
                severity,
                ceph.health_from.as_deref(),
                subject,
                format!(
                    "Ceph reports {}: {}; see `ceph health detail`",
                    h.status,
                    if checks.is_empty() {
                        "no check named".to_string()
                    } else {
                        checks.join("; ")
                    }
                ),
            )]
        }
    }
}
