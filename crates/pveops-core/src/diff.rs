//! Diff: the typed differences between two snapshots (node reachability, quorum, guests moved,
//! started, stopped, locked, appeared or vanished, storage state and usage jumps, versions and
//! kernels, services, findings new and resolved), each marked as a regression or not. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::snapshot::{NodeSnapshot, Snapshot};

/// One difference (PRODUCT.md: `kind`, `node`, `subject`, `before`, `after`, `regression`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DiffKind,
    pub node: Option<String>,
    pub subject: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub regression: bool,
}

/// What changed (the JSON's `kind`: `node-vanished`, `guest-moved`, `package`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffKind {
    NodeVanished,
    NodeAppeared,
    NodeReachable,
    Quorum,
    NodeRebooted,
    Kernel,
    Package,
    Service,
    StorageVanished,
    StorageState,
    StorageUsage,
    GuestVanished,
    GuestMoved,
    GuestStarted,
    GuestStopped,
    GuestLocked,
    GuestUnlocked,
    GuestAppeared,
    FindingNew,
    FindingResolved,
}

impl std::fmt::Display for DiffKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.word())
    }
}

impl DiffKind {
    /// The word the JSON and the report use.
    pub fn word(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// A storage's used share that grows by this many percentage points counts as a regression.
const USAGE_JUMP_POINTS: f64 = 10.0;

fn d(
    kind: DiffKind,
    node: Option<&str>,
    subject: Option<String>,
    before: Option<String>,
    after: Option<String>,
    regression: bool,
) -> Difference {
    Difference {
        kind,
        node: node.map(str::to_string),
        subject,
        before,
        after,
        regression,
    }
}

/// Every difference from `before` to `after`, in a stable order.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<Difference> {
    let mut out = Vec::new();
    for b in &before.nodes {
        let Some(a) = after.nodes.iter().find(|a| a.name == b.name) else {
            out.push(d(
                DiffKind::NodeVanished,
                Some(&b.name),
                None,
                Some("present".into()),
                None,
                true,
            ));
            continue;
        };
        node_diff(b, a, &mut out);
    }
    for a in after
        .nodes
        .iter()
        .filter(|a| !before.nodes.iter().any(|b| b.name == a.name))
    {
        out.push(d(
            DiffKind::NodeAppeared,
            Some(&a.name),
            None,
            None,
            Some("present".into()),
            false,
        ));
    }
    guests_diff(before, after, &mut out);
    findings_diff(&compare_findings(before, after), &mut out);
    out
}

fn word(b: bool, yes: &str, no: &str) -> String {
    if b { yes.into() } else { no.into() }
}

fn node_diff(b: &NodeSnapshot, a: &NodeSnapshot, out: &mut Vec<Difference>) {
    let n = Some(b.name.as_str());
    if b.reachable != a.reachable {
        out.push(d(
            DiffKind::NodeReachable,
            n,
            None,
            Some(word(b.reachable, "reachable", "unreachable")),
            Some(word(a.reachable, "reachable", "unreachable")),
            !a.reachable,
        ));
    }
    if !(b.reachable && a.reachable) {
        return;
    }
    let q = |s: &NodeSnapshot| s.cluster.as_ref().and_then(|c| c.quorate);
    if let (Some(qb), Some(qa)) = (q(b), q(a))
        && qb != qa
    {
        out.push(d(
            DiffKind::Quorum,
            n,
            None,
            Some(word(qb, "quorate", "not quorate")),
            Some(word(qa, "quorate", "not quorate")),
            !qa,
        ));
    }
    if b.boot_id.is_some() && a.boot_id.is_some() && b.boot_id != a.boot_id {
        out.push(d(
            DiffKind::NodeRebooted,
            n,
            Some("boot_id".into()),
            b.boot_id.clone(),
            a.boot_id.clone(),
            false,
        ));
    }
    let kernel = |s: &NodeSnapshot| s.version.as_ref().and_then(|v| v.running_kernel.clone());
    if kernel(b) != kernel(a) {
        out.push(d(
            DiffKind::Kernel,
            n,
            Some("running kernel".into()),
            kernel(b),
            kernel(a),
            false,
        ));
    }
    let pkgs = |s: &NodeSnapshot| {
        let mut m: BTreeMap<String, Option<String>> = s
            .version
            .as_ref()
            .map(|v| v.packages.clone())
            .unwrap_or_default();
        if let Some(v) = s.version.as_ref().and_then(|v| v.manager_version.clone()) {
            m.insert("pve-manager".into(), Some(v));
        }
        m
    };
    let (pb, pa) = (pkgs(b), pkgs(a));
    for (name, vb) in &pb {
        let va = pa.get(name).cloned().flatten();
        if vb.as_ref() != va.as_ref() {
            out.push(d(
                DiffKind::Package,
                n,
                Some(name.clone()),
                vb.clone(),
                va.clone(),
                va.is_none(),
            ));
        }
    }
    for (name, va) in pa.iter().filter(|(k, _)| !pb.contains_key(*k)) {
        out.push(d(
            DiffKind::Package,
            n,
            Some(name.clone()),
            None,
            va.clone(),
            false,
        ));
    }
    for (unit, sb) in &b.services {
        let sa = a.services.get(unit);
        if Some(sb) != sa {
            out.push(d(
                DiffKind::Service,
                n,
                Some(unit.clone()),
                Some(sb.clone()),
                sa.cloned(),
                sb == "active",
            ));
        }
    }
    for sb in &b.storages {
        let Some(sa) = a.storages.iter().find(|s| s.name == sb.name) else {
            out.push(d(
                DiffKind::StorageVanished,
                n,
                Some(sb.name.clone()),
                Some(sb.status.clone()),
                None,
                true,
            ));
            continue;
        };
        if sb.status != sa.status {
            out.push(d(
                DiffKind::StorageState,
                n,
                Some(sb.name.clone()),
                Some(sb.status.clone()),
                Some(sa.status.clone()),
                sb.status == "active",
            ));
        }
        if let (Some(ub), Some(ua)) = (sb.used_pct, sa.used_pct)
            && (ua - ub).abs() >= USAGE_JUMP_POINTS
        {
            out.push(d(
                DiffKind::StorageUsage,
                n,
                Some(sb.name.clone()),
                Some(format!("{ub:.2} %")),
                Some(format!("{ua:.2} %")),
                ua > ub,
            ));
        }
    }
}

/// A guest as seen in a snapshot: where, how, and whether locked.
#[derive(Clone, Debug, PartialEq)]
struct GuestView {
    node: String,
    status: String,
    lock: Option<String>,
}

fn guests(s: &Snapshot) -> BTreeMap<u64, GuestView> {
    let mut m = BTreeMap::new();
    for n in s.nodes.iter().filter(|n| n.reachable) {
        for v in &n.vms {
            m.insert(
                v.vmid,
                GuestView {
                    node: n.name.clone(),
                    status: v.status.clone(),
                    lock: None,
                },
            );
        }
        for c in &n.containers {
            m.insert(
                c.vmid,
                GuestView {
                    node: n.name.clone(),
                    status: c.status.clone(),
                    lock: c.lock.clone(),
                },
            );
        }
    }
    for r in s.resources.iter().filter(|r| r.lock.is_some()) {
        if let Some(g) = r.vmid.and_then(|id| m.get_mut(&id)) {
            g.lock = r.lock.clone();
        }
    }
    m
}

fn guests_diff(before: &Snapshot, after: &Snapshot, out: &mut Vec<Difference>) {
    let (gb, ga) = (guests(before), guests(after));
    let reachable_after: Vec<&str> = after
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .map(|n| n.name.as_str())
        .collect();
    for (vmid, b) in &gb {
        let subject = Some(vmid.to_string());
        let Some(a) = ga.get(vmid) else {
            // A guest on a node that no longer answers is not known to be gone.
            if reachable_after.contains(&b.node.as_str()) {
                out.push(d(
                    DiffKind::GuestVanished,
                    Some(&b.node),
                    subject,
                    Some(b.status.clone()),
                    None,
                    true,
                ));
            }
            continue;
        };
        if a.node != b.node {
            out.push(d(
                DiffKind::GuestMoved,
                Some(&a.node),
                subject.clone(),
                Some(b.node.clone()),
                Some(a.node.clone()),
                false,
            ));
        }
        if a.status != b.status {
            let kind = if a.status == "running" {
                DiffKind::GuestStarted
            } else {
                DiffKind::GuestStopped
            };
            out.push(d(
                kind,
                Some(&a.node),
                subject.clone(),
                Some(b.status.clone()),
                Some(a.status.clone()),
                b.status == "running",
            ));
        }
        if a.lock != b.lock {
            let kind = if a.lock.is_some() {
                DiffKind::GuestLocked
            } else {
                DiffKind::GuestUnlocked
            };
            out.push(d(
                kind,
                Some(&a.node),
                subject,
                b.lock.clone(),
                a.lock.clone(),
                a.lock.is_some(),
            ));
        }
    }
    for (vmid, a) in ga.iter().filter(|(id, _)| !gb.contains_key(id)) {
        out.push(d(
            DiffKind::GuestAppeared,
            Some(&a.node),
            Some(vmid.to_string()),
            None,
            Some(a.status.clone()),
            false,
        ));
    }
}

/// A finding's identity across two snapshots: check, node and subject.
fn key(f: &Finding) -> (&str, Option<&str>, Option<&str>) {
    (&f.check, f.node.as_deref(), f.subject.as_deref())
}

/// The findings of two snapshots, each judged once by its identity (check, node, subject).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FindingChanges {
    /// In the after-snapshot only.
    pub new: Vec<Finding>,
    /// In both (the after-snapshot's wording): there before the change, not caused by it.
    pub unchanged: Vec<Finding>,
    /// In the before-snapshot only, and what it came from was read again.
    pub resolved: Vec<Finding>,
    /// In the before-snapshot only, but its node did not answer this time (or the read that
    /// found it did not run): neither resolved nor still there, as far as anyone can tell.
    pub unverified: Vec<Finding>,
}

impl FindingChanges {
    /// The worst severity among the new findings (OK when none).
    pub fn worst_new(&self) -> Severity {
        crate::finding::worst(&self.new)
    }
}

/// Compares the findings of `before` and `after`. A finding is resolved only when its node
/// answered again and, for the upgrade checker's findings, the checker ran again.
pub fn compare_findings(before: &Snapshot, after: &Snapshot) -> FindingChanges {
    let mut c = FindingChanges::default();
    for a in &after.findings {
        if before.findings.iter().any(|b| key(b) == key(a)) {
            c.unchanged.push(a.clone());
        } else {
            c.new.push(a.clone());
        }
    }
    for b in before
        .findings
        .iter()
        .filter(|b| !after.findings.iter().any(|a| key(a) == key(b)))
    {
        let reread = match b.node.as_deref() {
            None => after.nodes.iter().any(|n| n.reachable),
            Some(name) => after.node(name).is_some_and(|n| {
                n.reachable && (b.check != "upgrade.checklist" || n.upgrade_checklist.is_some())
            }),
        };
        if reread {
            c.resolved.push(b.clone());
        } else {
            c.unverified.push(b.clone());
        }
    }
    c
}

fn findings_diff(c: &FindingChanges, out: &mut Vec<Difference>) {
    for a in &c.new {
        let regression = matches!(
            a.severity,
            Severity::Warning | Severity::Critical | Severity::Unknown
        );
        out.push(d(
            DiffKind::FindingNew,
            a.node.as_deref(),
            Some(a.check.clone()),
            None,
            Some(a.message.clone()),
            regression,
        ));
    }
    for b in &c.resolved {
        out.push(d(
            DiffKind::FindingResolved,
            b.node.as_deref(),
            Some(b.check.clone()),
            Some(b.message.clone()),
            None,
            false,
        ));
    }
}

/// The markdown table of differences.
pub fn markdown(diffs: &[Difference]) -> String {
    if diffs.is_empty() {
        return "No differences.\n".into();
    }
    let esc = crate::markdown::md;
    let mut s = String::from(
        "| Kind | Node | Subject | Before | After | Regression |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for x in diffs {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            esc(&x.kind.word()),
            esc(x.node.as_deref().unwrap_or("(cluster)")),
            esc(x.subject.as_deref().unwrap_or("")),
            esc(x.before.as_deref().unwrap_or("")),
            esc(x.after.as_deref().unwrap_or("")),
            if x.regression { "**yes**" } else { "no" }
        ));
    }
    s
}
