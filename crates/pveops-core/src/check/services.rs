//! Service checks: the PVE units' states.

use super::{Check, finding, reachable};
use crate::finding::Finding;
use crate::snapshot::Snapshot;

pub(super) fn services_active(c: &Check, snap: &Snapshot, _now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    for n in reachable(snap) {
        let clustered = n.cluster.as_ref().is_some_and(|c| c.state != "no-cluster");
        let mut units = p.units.clone();
        if clustered {
            units.extend(p.cluster_units.iter().cloned());
        }
        for u in units {
            let state = n.services.get(&u).map(String::as_str).unwrap_or("unknown");
            if state != "active" {
                out.push(finding(
                    c,
                    sev,
                    Some(&n.name),
                    Some(u.clone()),
                    format!("service {u} on {} is {state}", n.name),
                ));
            }
        }
    }
    out
}
