//! Where a guest may go: PVE's migrate preflight and HA rules (typed facts, read before the
//! plan), and the placements the plan has made so far. A target is refused when PVE would refuse
//! the migration, or accept it and then undo it: the HA CRM moves a guest that stands outside its
//! strict node-affinity rule back (pve-ha-manager `PVE::HA::Manager`, `select_service_node`),
//! and keeps negative resource-affinity partners apart. Pure: no I/O.

use std::collections::BTreeMap;

use crate::facts::ha_rules::HaRules;
use crate::facts::migrate_preflight::MigratePreflight;
use crate::facts::pvesh::Resource;
use crate::snapshot::Snapshot;

/// The migrate preflight of one guest, or why it could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum Preflight {
    Read(MigratePreflight),
    /// The node has the endpoint but its answer could not be used (timeout, failure, not the
    /// expected JSON): the gate refuses rather than pass unchecked.
    Unreadable(String),
    /// PVE refused the preflight because the guest is locked (`backup`, `migrate`, …):
    /// `check_lock` comes first in `migrate_vm_precondition`.
    Locked(String),
}

/// The facts about targets an operation reads before it plans.
#[derive(Clone, Debug, PartialEq)]
pub struct Prechecks {
    /// By VMID; a guest whose node has no preflight endpoint (older PVE) has no entry.
    pub preflight: BTreeMap<u64, Preflight>,
    /// `/cluster/ha/rules`: empty when there are none or the cluster has no such endpoint
    /// (PVE 8); `Err` when it could not be read, which refuses every HA guest's move.
    pub ha_rules: Result<HaRules, String>,
}

impl Default for Prechecks {
    fn default() -> Self {
        Prechecks {
            preflight: BTreeMap::new(),
            ha_rules: Ok(HaRules::default()),
        }
    }
}

/// The HA resource id of a guest (`vm:100`, `ct:101`).
pub fn sid(g: &Resource) -> String {
    let prefix = if g.kind == "lxc" { "ct" } else { "vm" };
    format!("{prefix}:{}", g.vmid.unwrap_or(0))
}

/// Where the guest with HA id `sid` is, or will be after the moves planned so far.
fn location<'a>(
    snap: &'a Snapshot,
    placed: &'a BTreeMap<String, String>,
    sid: &str,
) -> Option<&'a str> {
    if let Some(n) = placed.get(sid) {
        return Some(n);
    }
    let (kind, id) = sid.split_once(':')?;
    let kind = if kind == "ct" { "lxc" } else { "qemu" };
    let vmid: u64 = id.parse().ok()?;
    snap.resources
        .iter()
        .find(|r| r.kind == kind && r.vmid == Some(vmid))
        .and_then(|r| r.node.as_deref())
}

/// A locked guest, in one sentence with what to do: PVE refuses to migrate it.
pub fn locked_sentence(vmid: u64, g: &Resource, lock: &str) -> String {
    let on = g.node.as_deref().unwrap_or("its node");
    let tool = if g.kind == "lxc" { "pct" } else { "qm" };
    let wait = match lock {
        "backup" => "wait for its backup to finish",
        "migrate" => "wait for its migration to end",
        "snapshot" | "snapshot-delete" | "rollback" => "wait for the snapshot task to end",
        _ => "wait for the task that holds it to end",
    };
    format!(
        "guest {vmid} on {on} is locked ({lock}) and PVE refuses to migrate a locked guest: {wait}, or, if no task holds it any more, `{tool} unlock {vmid}` on {on}, then run again"
    )
}

impl Prechecks {
    /// Why `g` may not move to `to`, in one sentence; `None` when PVE and HA would accept and
    /// keep it there. `placed` holds the targets already chosen for other guests (by HA id).
    pub fn refusal(
        &self,
        snap: &Snapshot,
        g: &Resource,
        to: &str,
        placed: &BTreeMap<String, String>,
    ) -> Option<String> {
        let vmid = g.vmid.unwrap_or(0);
        if let Some(pf) = self.preflight.get(&vmid) {
            match pf {
                Preflight::Unreadable(why) => {
                    let from = g.node.as_deref().unwrap_or("its node");
                    return Some(format!(
                        "the migrate preflight of guest {vmid} on {from} could not be read: {why}"
                    ));
                }
                Preflight::Locked(lock) => {
                    return Some(locked_sentence(vmid, g, lock));
                }
                Preflight::Read(pf) => {
                    if let Some(b) = pf.verdict(to).filter(|b| !b.is_empty()) {
                        let why: Vec<String> = b.iter().map(ToString::to_string).collect();
                        return Some(format!(
                            "PVE refuses guest {vmid} on {to}: {}",
                            why.join("; ")
                        ));
                    }
                }
            }
        }
        // Only HA guests are bound by HA rules.
        g.hastate.as_ref()?;
        let rules = match &self.ha_rules {
            Ok(r) => r,
            Err(why) => {
                return Some(format!(
                    "the HA rules could not be read ({why}), so guest {vmid}'s place cannot be checked"
                ));
            }
        };
        let me = sid(g);
        if let Some((rule, nodes)) = rules.strict_nodes(&me)
            && !nodes.contains(&to)
        {
            return Some(format!(
                "HA rule {rule} keeps {me} on {} (strict node affinity): HA would move it back from {to}",
                nodes.join(", ")
            ));
        }
        for (rule, partner) in rules.kept_apart(&me) {
            if location(snap, placed, partner) == Some(to) {
                return Some(format!(
                    "HA rule {rule} keeps {me} apart from {partner}, which is on {to}"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(vmid: u64, node: &str, ha: bool) -> Resource {
        Resource {
            id: format!("qemu/{vmid}"),
            kind: "qemu".into(),
            node: Some(node.into()),
            status: Some("running".into()),
            vmid: Some(vmid),
            hastate: ha.then(|| "started".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rules_and_preflight_decide() {
        let snap = Snapshot {
            format: crate::snapshot::FORMAT,
            taken_at: String::new(),
            status: crate::finding::Severity::Ok,
            pveops_version: String::new(),
            nodes: Vec::new(),
            resources: vec![guest(101, "pve1", true), guest(103, "pve3", true)],
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        };
        let rules = crate::facts::ha_rules::parse(
            r#"[{"nodes":"pve1,pve2","resources":"vm:101","rule":"pin","strict":1,"type":"node-affinity"},{"affinity":"negative","resources":"vm:101,vm:103","rule":"apart","type":"resource-affinity"}]"#,
        )
        .unwrap_or_default();
        let pre = Prechecks {
            preflight: BTreeMap::new(),
            ha_rules: Ok(rules),
        };
        let g = guest(101, "pve1", true);
        let none = BTreeMap::new();
        assert!(pre.refusal(&snap, &g, "pve3", &none).is_some());
        assert_eq!(pre.refusal(&snap, &g, "pve2", &none), None);
        // vm:103 is on pve3 now; planned onto pve2, it blocks pve2 instead.
        assert!(pre.refusal(&snap, &g, "pve3", &none).is_some());
        let placed = BTreeMap::from([("vm:103".to_string(), "pve2".to_string())]);
        assert!(
            pre.refusal(&snap, &g, "pve2", &placed)
                .is_some_and(|w| w.contains("apart"))
        );
        let plain = guest(101, "pve1", false);
        assert_eq!(pre.refusal(&snap, &plain, "pve3", &none), None);
    }
}
