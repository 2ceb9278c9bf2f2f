//! Checks: declarative health checks from `checks/*.toml` (embedded, overridable and
//! extendable with `--checks DIR`), evaluated over a snapshot into findings. Pure: no I/O
//! besides loading the definitions; the time is passed in.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::snapshot::{NodeSnapshot, Snapshot};

#[derive(RustEmbed)]
#[folder = "checks/"]
struct Embedded;

/// One file of checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    #[serde(rename = "check", default)]
    checks: Vec<Check>,
}

/// A check definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// `area.expectation`.
    pub id: String,
    /// The expectation, stated positively.
    pub title: String,
    /// The severity of a failure (`warning` or `critical`); some rules also report the other.
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A built-in rule over the typed state (see docs/checks.md).
    #[serde(default)]
    pub rule: Option<String>,
    /// Or: a command template whose output must match `expect`.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub expect: Option<String>,
    #[serde(default)]
    pub params: Params,
}

fn yes() -> bool {
    true
}

/// Parameters of the built-in rules; each rule reads the ones it documents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    pub warning_pct: Option<f64>,
    pub critical_pct: Option<f64>,
    pub max_age_hours: Option<f64>,
    pub units: Vec<String>,
    pub cluster_units: Vec<String>,
    pub bad_states: Vec<String>,
    pub packages: Vec<String>,
    pub exclude_nodes: Vec<String>,
    pub exclude_storages: Vec<String>,
    pub exclude_guests: Vec<u64>,
    pub max_age_days: Option<f64>,
    /// `cert-expiry`: days left below which a certificate is a warning / critical.
    pub warning_days: Option<f64>,
    pub critical_days: Option<f64>,
    /// `disk-health`: percent of an SSD's life left below which it is a warning / critical.
    pub wearout_warning_pct: Option<f64>,
    pub wearout_critical_pct: Option<f64>,
    /// `guest-unlocked`: a `backup` or `migrate` lock whose task runs is normal work until it
    /// is this old.
    pub max_lock_hours: Option<f64>,
}

impl Params {
    /// The `storage-usage` rule's warning and critical levels in percent (80 and 90 unless set).
    pub fn usage_thresholds_pct(&self) -> (f64, f64) {
        (
            self.warning_pct.unwrap_or(80.0),
            self.critical_pct.unwrap_or(90.0),
        )
    }
}

/// The storage usage levels of the enabled `storage-usage` check, if there is one.
pub fn storage_usage_thresholds_pct(checks: &[Check]) -> Option<(f64, f64)> {
    checks
        .iter()
        .find(|c| c.enabled && c.rule.as_deref() == Some("storage-usage"))
        .map(|c| c.params.usage_thresholds_pct())
}

/// The built-in rules a check may name.
pub const RULES: &[&str] = &[
    "node-reachable",
    "cluster-quorate",
    "cluster-members-online",
    "versions-consistent",
    "storage-active",
    "storage-usage",
    "guest-unlocked",
    "ha-quorum",
    "ha-services-healthy",
    "services-active",
    "reboot-not-pending",
    "backup-recent",
    "updates-pending",
    "lists-fresh",
    "ceph-health",
    "ceph-noout",
    "ha-node-maintenance",
    "ha-managers-healthy",
    "packages-configured",
    "updates-kept-back",
    "node-memory",
    "node-swap",
    "node-cpu",
    "node-io-wait",
    "disk-health",
    "tasks-failed",
    "replication-healthy",
    "subscription-valid",
    "cert-expiry",
];

/// The checks in force: embedded ones, then `dir`'s files (same id replaces, new id adds).
pub fn load(dir: Option<&Path>) -> Result<Vec<Check>, crate::Error> {
    let mut checks: Vec<Check> = Vec::new();
    let mut names: Vec<String> = Embedded::iter().map(|n| n.into_owned()).collect();
    names.sort();
    for name in names {
        let Some(file) = Embedded::get(&name) else {
            continue;
        };
        let text = String::from_utf8_lossy(&file.data).into_owned();
        merge(
            &mut checks,
            parse(Path::new(&format!("checks/{name}")), &text)?,
        );
    }
    if let Some(dir) = dir {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| crate::Error::io(dir, "read the checks directory", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = crate::input::read_to_string(&p, crate::input::MAX_CONFIG)
                .map_err(|e| crate::Error::io(&p, "read the check file", e))?;
            merge(&mut checks, parse(&p, &text)?);
        }
    }
    Ok(checks)
}

fn merge(into: &mut Vec<Check>, new: Vec<Check>) {
    for c in new {
        match into.iter_mut().find(|o| o.id == c.id) {
            Some(o) => *o = c,
            None => into.push(c),
        }
    }
}

/// Parses and validates one check file.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Check>, crate::Error> {
    let file: CheckFile = toml::from_str(text).map_err(|e| {
        crate::Error::file(
            path,
            format!(
                "invalid check file: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )
    })?;
    for c in &file.checks {
        let bad = |m: String| Err(crate::Error::file(path, format!("check `{}`: {m}", c.id)));
        match (&c.rule, &c.command) {
            (Some(r), None) if !RULES.contains(&r.as_str()) => {
                return bad(format!("unknown rule `{r}` (rules: {})", RULES.join(", ")));
            }
            (Some(_), None) => {}
            (None, Some(_)) => match &c.expect {
                None => {
                    return bad(
                        "a command check needs `expect` (a regex its output must match)".into(),
                    );
                }
                Some(re) => {
                    if let Err(e) = Regex::new(re) {
                        let e = e
                            .to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        return bad(format!("`expect` is not a valid regex: {e}"));
                    }
                }
            },
            _ => return bad("give exactly one of `rule` or `command`".into()),
        }
        if !matches!(c.severity, Severity::Warning | Severity::Critical) {
            return bad("severity must be `warning` or `critical`".into());
        }
    }
    Ok(file.checks)
}

/// Evaluates the checks over `snap` and stores the findings and the worst status in it.
pub fn evaluate_into(snap: &mut Snapshot, checks: &[Check], now: i64) {
    snap.findings = evaluate(checks, snap, now);
    snap.status = crate::finding::worst(&snap.findings);
}

/// Evaluates every enabled check over the snapshot; `now` is Unix seconds.
pub fn evaluate(checks: &[Check], snap: &Snapshot, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in checks.iter().filter(|c| c.enabled) {
        let mut found = match (&c.rule, &c.command) {
            (Some(rule), _) => rule_findings(c, rule, snap, now),
            (None, Some(_)) => command_findings(c, snap),
            _ => Vec::new(),
        };
        found.retain(|f| {
            !f.node
                .as_ref()
                .is_some_and(|n| c.params.exclude_nodes.contains(n))
        });
        out.extend(found);
    }
    out.extend(tool_findings(snap));
    out.extend(checklist_findings(snap));
    crate::finding::sort(&mut out);
    out
}

fn finding(
    c: &Check,
    severity: Severity,
    node: Option<&str>,
    subject: Option<String>,
    message: String,
) -> Finding {
    Finding {
        check: c.id.clone(),
        severity,
        node: node.map(str::to_string),
        subject,
        message,
    }
}

fn reachable(snap: &Snapshot) -> impl Iterator<Item = &NodeSnapshot> {
    snap.nodes.iter().filter(|n| n.reachable)
}

fn rule_findings(c: &Check, rule: &str, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let sev = c.severity;
    let p = &c.params;
    let mut out = Vec::new();
    match rule {
        "node-reachable" => {
            for n in snap.nodes.iter().filter(|n| !n.reachable) {
                let why = n.error.clone().unwrap_or_else(|| "no answer".into());
                out.push(finding(
                    c,
                    sev,
                    Some(&n.name),
                    None,
                    format!("node {} is unreachable: {why}", n.name),
                ));
            }
        }
        "cluster-quorate" => {
            for n in reachable(snap) {
                let Some(cl) = &n.cluster else { continue };
                if cl.quorate == Some(false) {
                    out.push(finding(
                        c,
                        sev,
                        Some(&n.name),
                        None,
                        format!(
                            "node {} is not quorate: {} of {} expected votes, quorum is {}",
                            n.name,
                            cl.total_votes.unwrap_or(0),
                            cl.expected_votes.unwrap_or(0),
                            cl.quorum.unwrap_or(0)
                        ),
                    ));
                } else if cl.state == "corosync-down" {
                    out.push(finding(
                        c,
                        sev,
                        Some(&n.name),
                        Some("corosync".into()),
                        format!(
                            "node {}: corosync is not running, so its quorum is unknown",
                            n.name
                        ),
                    ));
                }
            }
        }
        "cluster-members-online" => {
            let offline: Vec<String> = snap
                .resources
                .iter()
                .filter(|r| r.kind == "node" && r.status.as_deref() != Some("online"))
                .filter_map(|r| r.node.clone())
                .collect();
            for name in offline {
                out.push(finding(
                    c,
                    sev,
                    None,
                    Some(name.clone()),
                    format!("cluster member {name} is not online"),
                ));
            }
            if snap.resources.is_empty() {
                for n in reachable(snap) {
                    let Some(cl) = &n.cluster else { continue };
                    if let (Some(t), Some(e)) = (cl.total_votes, cl.expected_votes)
                        && t < e
                    {
                        out.push(finding(c, sev, Some(&n.name), None, format!(
                            "node {} sees {t} of {e} expected votes: a cluster member is missing",
                            n.name
                        )));
                    }
                }
            }
        }
        "versions-consistent" => {
            let mut pkgs = vec!["pve-manager".to_string()];
            pkgs.extend(p.packages.iter().cloned());
            for pkg in pkgs {
                let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for n in reachable(snap) {
                    let Some(v) = &n.version else { continue };
                    let ver = if pkg == "pve-manager" {
                        v.manager_version.clone()
                    } else {
                        v.packages.get(&pkg).cloned().flatten()
                    };
                    if let Some(ver) = ver {
                        by_version.entry(ver).or_default().push(n.name.clone());
                    }
                }
                if by_version.len() > 1 {
                    let list: Vec<String> = by_version
                        .iter()
                        .map(|(v, ns)| format!("{v} on {}", ns.join(", ")))
                        .collect();
                    out.push(finding(
                        c,
                        sev,
                        None,
                        Some(pkg.clone()),
                        format!(
                            "{pkg} versions differ across the cluster: {}",
                            list.join("; ")
                        ),
                    ));
                }
            }
        }
        "storage-active" => {
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
        }
        "storage-usage" => {
            let (warn, crit) = p.usage_thresholds_pct();
            for n in reachable(snap) {
                for s in n
                    .storages
                    .iter()
                    .filter(|s| s.status == "active" && !p.exclude_storages.contains(&s.name))
                {
                    let Some(pct) = s.used_pct else { continue };
                    let level = if pct >= crit {
                        Severity::Critical
                    } else if pct >= warn {
                        Severity::Warning
                    } else {
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
        }
        "guest-unlocked" => {
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
        }
        "ha-quorum" => {
            for n in reachable(snap) {
                if n.ha.as_ref().is_some_and(|h| !h.quorum_ok) {
                    out.push(finding(
                        c,
                        sev,
                        Some(&n.name),
                        None,
                        format!("the HA manager on {} has no quorum", n.name),
                    ));
                }
            }
        }
        "ha-services-healthy" => {
            let bad: Vec<String> = if p.bad_states.is_empty() {
                ["error", "fence", "recovery", "freeze"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                p.bad_states.clone()
            };
            let mut seen = std::collections::BTreeSet::new();
            for n in reachable(snap) {
                let Some(ha) = &n.ha else { continue };
                for s in ha.services.iter().filter(|s| bad.contains(&s.state)) {
                    if seen.insert(s.sid.clone()) {
                        let vmid = s.sid.split_once(':').map(|(_, id)| id.to_string());
                        out.push(finding(
                            c,
                            sev,
                            target_of(snap, Some(&s.node)).as_deref(),
                            vmid,
                            format!("HA service {} on {} is in state {}", s.sid, s.node, s.state),
                        ));
                    }
                }
            }
        }
        "services-active" => {
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
        }
        "reboot-not-pending" => {
            for n in reachable(snap) {
                let Some(v) = &n.version else { continue };
                if let (Some(running), Some(newest)) = (&v.running_kernel, &v.newest_kernel)
                    && !running.starts_with(newest.as_str())
                    && !newest.starts_with(running.as_str())
                {
                    out.push(finding(c, sev, Some(&n.name), Some("kernel".into()), format!(
                        "node {} runs kernel {running} but {newest} is installed: a reboot is pending",
                        n.name
                    )));
                }
            }
        }
        "backup-recent" => out.extend(backup_findings(c, snap, now)),
        "ceph-health" => out.extend(ceph_findings(c, snap)),
        "ceph-noout" => {
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
        }
        "ha-node-maintenance" => {
            let mut seen = std::collections::BTreeSet::new();
            for n in reachable(snap) {
                let Some(ha) = &n.ha else { continue };
                for l in ha.lrms.iter().filter(|l| l.state == "maintenance mode") {
                    if !seen.insert(l.node.clone()) {
                        continue;
                    }
                    let node = target_of(snap, Some(&l.node));
                    out.push(finding(
                        c,
                        sev,
                        node.as_deref(),
                        Some("ha-maintenance".into()),
                        format!(
                            "node {} is in HA maintenance mode: HA keeps its guests elsewhere; `pveops maintenance exit {}` (ha-manager crm-command node-maintenance disable {}) ends it",
                            l.node,
                            node.as_deref().unwrap_or(&l.node),
                            l.node
                        ),
                    ));
                }
            }
        }
        "ha-managers-healthy" => {
            // pve-ha-manager `src/PVE/HA/Tools.pm`/`ha-manager status`: an LRM is `active`,
            // `idle` (no service) or in `maintenance mode` (its own check); the master CRM is
            // `active` or `idle`. Anything else (`old timestamp - dead?`, `wait_for_agent_lock`,
            // `lost_agent_lock`) means a manager stopped doing its job.
            let mut seen = std::collections::BTreeSet::new();
            for n in reachable(snap) {
                let Some(ha) = &n.ha else { continue };
                if let Some(m) = &ha.master
                    && !matches!(m.state.as_str(), "active" | "idle")
                    && seen.insert(format!("crm {}", m.node))
                {
                    let node = target_of(snap, Some(&m.node));
                    out.push(finding(
                        c,
                        sev,
                        node.as_deref(),
                        Some("pve-ha-crm".into()),
                        format!(
                            "the HA master (CRM) on {} is `{}`: `systemctl status pve-ha-crm` on {} shows why, `systemctl restart pve-ha-crm` restarts it",
                            m.node, m.state, m.node
                        ),
                    ));
                }
                for l in &ha.lrms {
                    if matches!(l.state.as_str(), "active" | "idle" | "maintenance mode")
                        || !seen.insert(format!("lrm {}", l.node))
                    {
                        continue;
                    }
                    let node = target_of(snap, Some(&l.node));
                    out.push(finding(
                        c,
                        sev,
                        node.as_deref(),
                        Some("pve-ha-lrm".into()),
                        format!(
                            "the HA local resource manager (LRM) on {} is `{}`: `systemctl status pve-ha-lrm` on {} shows why, `systemctl restart pve-ha-lrm` restarts it",
                            l.node, l.state, l.node
                        ),
                    ));
                }
            }
        }
        "packages-configured" => {
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
        }
        "node-memory" | "node-swap" => {
            let (warn, crit) = p.usage_thresholds_pct();
            let swap = rule == "node-swap";
            for n in reachable(snap) {
                let Some(st) = &n.node_status else { continue };
                let m = if swap { &st.swap } else { &st.memory };
                let Some(pct) = m.as_ref().and_then(|m| m.used_pct()) else {
                    continue;
                };
                let severity = if pct >= crit {
                    Severity::Critical
                } else if pct >= warn {
                    Severity::Warning
                } else {
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
        }
        "node-cpu" | "node-io-wait" => {
            let (warn, crit) = p.usage_thresholds_pct();
            let io = rule == "node-io-wait";
            for n in reachable(snap) {
                let Some(load) = &n.load else { continue };
                let Some(pct) = (if io { load.iowait } else { load.cpu }).map(|v| v * 100.0) else {
                    continue;
                };
                let severity = if pct >= crit {
                    Severity::Critical
                } else if pct >= warn {
                    Severity::Warning
                } else {
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
        }
        "disk-health" => {
            let warn = p.wearout_warning_pct.unwrap_or(20.0);
            let crit = p.wearout_critical_pct.unwrap_or(10.0);
            for n in reachable(snap) {
                for d in n.disks.iter().flatten() {
                    let name = format!(
                        "{} ({})",
                        d.devpath,
                        d.model.as_deref().unwrap_or("unknown model")
                    );
                    // smartctl's overall assessment: PASSED (ATA/NVMe) or OK (SAS) is good;
                    // UNKNOWN, `SMART Disabled` or none says nothing either way
                    // (pve-storage PVE/Diskmanage.pm `get_smart_data`).
                    if let Some(h) = &d.health
                        && !matches!(h.as_str(), "PASSED" | "OK" | "UNKNOWN" | "")
                        && !h.starts_with("SMART Disabled")
                    {
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
                    let severity = if left <= crit {
                        Severity::Critical
                    } else if left <= warn {
                        Severity::Warning
                    } else {
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
        }
        "tasks-failed" => {
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
        }
        "replication-healthy" => {
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
        }
        "subscription-valid" => {
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
        }
        "cert-expiry" => {
            let warn = p.warning_days.unwrap_or(30.0);
            let crit = p.critical_days.unwrap_or(7.0);
            for n in reachable(snap) {
                for cert in n.certificates.iter().flatten() {
                    let Some(after) = cert.notafter else { continue };
                    let days = (after - now) as f64 / 86400.0;
                    let severity = if days < crit {
                        Severity::Critical
                    } else if days < warn {
                        Severity::Warning
                    } else {
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
        }
        "updates-kept-back" => {
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
        }
        "updates-pending" => {
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
                        !i.package.starts_with("proxmox-kernel-")
                            && !i.package.starts_with("pve-kernel-")
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
                    format!("node {} has pending updates: {counts}{notes} (`pveops update {}` applies them)", n.name, n.name),
                ));
            }
        }
        "lists-fresh" => {
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
        }
        _ => {}
    }
    out
}

fn backup_findings(c: &Check, snap: &Snapshot, now: i64) -> Vec<Finding> {
    let max_hours = c.params.max_age_hours.unwrap_or(7.0 * 24.0);
    let mut out = Vec::new();
    if snap.resources.is_empty() {
        return out;
    }
    for r in snap
        .resources
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "qemu" | "lxc") && r.template != Some(true))
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

/// Ceph's health where PVE has Ceph configured (the snapshot's `ceph`); nothing where it has
/// none, since the ceph CLI is on every PVE node and fails there by design.
fn ceph_findings(c: &Check, snap: &Snapshot) -> Vec<Finding> {
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

fn command_findings(c: &Check, snap: &Snapshot) -> Vec<Finding> {
    let Some(re) = c
        .expect
        .as_deref()
        .and_then(|e| Regex::new(&format!("(?m){e}")).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in reachable(snap) {
        let Some(probe) = c.command.as_ref().and_then(|cmd| n.probes.get(cmd)) else {
            continue;
        };
        // A command the node does not have makes the check skipped, not failed.
        if probe.exit_code == Some(127) {
            continue;
        }
        if !re.is_match(probe.stdout.trim_end()) {
            let first = probe
                .stdout
                .lines()
                .chain(probe.stderr.lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim();
            out.push(finding(
                c,
                c.severity,
                Some(&n.name),
                None,
                format!("{} on {}: {first}", c.title, n.name),
            ));
        }
    }
    out
}

/// Commands that could not run or whose output could not be read: the tool cannot vouch for
/// what they would have shown (UNKNOWN).
fn tool_findings(snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in reachable(snap) {
        for cmd in &n.commands {
            if let Some(e) = &cmd.parse_error {
                out.push(Finding {
                    check: "pveops.output-readable".into(),
                    severity: Severity::Unknown,
                    node: Some(n.name.clone()),
                    subject: Some(cmd.name.clone()),
                    message: format!(
                        "the output of `{}` on {} could not be read: {e}",
                        cmd.command, n.name
                    ),
                });
            }
            if let Some(d) = &cmd.diagnosis {
                let how = match (cmd.exit_code, &cmd.signal) {
                    (Some(c), _) => format!("exit {c}"),
                    (None, Some(s)) => format!("killed by SIG{s}"),
                    _ => "no exit status".into(),
                };
                out.push(Finding {
                    check: "pveops.command-failed".into(),
                    severity: diagnosis_severity(&d.code),
                    node: Some(n.name.clone()),
                    subject: Some(cmd.name.clone()),
                    message: format!(
                        "{}: {}: `{}` failed ({how}: {})",
                        n.name, d.message, cmd.command, d.line
                    ),
                });
            }
            if let Some(e) = &cmd.error {
                out.push(Finding {
                    check: "pveops.command-ran".into(),
                    severity: Severity::Unknown,
                    node: Some(n.name.clone()),
                    subject: Some(cmd.name.clone()),
                    message: format!("`{}` on {} did not complete: {e}", cmd.command, n.name),
                });
            }
        }
    }
    out
}

/// How bad a failing command's diagnosis is: the cluster's own plumbing down is critical
/// (nothing else on that node can be trusted), anything else a warning.
fn diagnosis_severity(code: &str) -> Severity {
    match code {
        "pmxcfs-down" | "corosync-down" => Severity::Critical,
        _ => Severity::Warning,
    }
}

/// Each WARN and FAIL of the upgrade checker as an `upgrade.checklist` finding: the checker
/// itself always exits 0 (FORMATS.md §7), pveops gives it a real exit status.
fn checklist_findings(snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in reachable(snap) {
        for r in n.upgrade_checklist.iter().flatten() {
            let severity = match r.level.as_str() {
                "FAIL" => Severity::Critical,
                "WARN" => Severity::Warning,
                _ => continue,
            };
            let first = r.message.lines().next().unwrap_or("").trim();
            // The checker's own words identify the result (a section has many): a verify
            // judges it unchanged or resolved by them.
            let section = r
                .section
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            out.push(Finding {
                check: "upgrade.checklist".into(),
                severity,
                node: Some(n.name.clone()),
                subject: Some(first.to_string()),
                message: format!("{} on {}{section}: {first}", r.level, n.name),
            });
        }
    }
    out
}

/// The target name of the node whose PVE name is `pve_node` (findings name targets).
fn target_of(snap: &Snapshot, pve_node: Option<&str>) -> Option<String> {
    let pve = pve_node?;
    Some(
        snap.nodes
            .iter()
            .find(|n| n.pve_node.as_deref() == Some(pve))
            .map(|n| n.name.clone())
            .unwrap_or_else(|| pve.to_string()),
    )
}

/// `1.5 GiB`.
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `3.2 h ago`, `2 d ago`, `in 5 min` for a span in seconds.
fn ago(secs: i64) -> String {
    let a = secs.unsigned_abs() as f64;
    let text = if a < 3600.0 {
        format!("{:.0} min", a / 60.0)
    } else if a < 2.0 * 86400.0 {
        format!("{:.1} h", a / 3600.0)
    } else {
        format!("{:.1} d", a / 86400.0)
    };
    if secs >= 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Storage, Version};
    use crate::snapshot::NodeSnapshot;

    fn shipped() -> Vec<Check> {
        load(None).expect("the shipped checks load")
    }

    #[test]
    fn every_shipped_check_of_the_contract_is_there() {
        let ids: Vec<String> = shipped().into_iter().map(|c| c.id).collect();
        for id in [
            "node.reachable",
            "cluster.quorate",
            "cluster.all-members-online",
            "cluster.versions-consistent",
            "storage.active",
            "storage.usage",
            "guest.unlocked",
            "ha.quorum",
            "ha.services-healthy",
            "services.active",
            "node.reboot-not-pending",
            "zfs.pools-healthy",
            "ceph.health",
            "backup.recent",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} is not shipped");
        }
    }

    #[test]
    fn bad_check_files_are_one_clear_error() {
        for (text, want) in [
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\nrule = \"storage-usage\"\nthreshold = 3\n",
                "unknown field `threshold`",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\nrule = \"nope\"\n",
                "unknown rule `nope`",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\ncommand = \"x\"\n",
                "needs `expect`",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\ncommand = \"x\"\nexpect = \"(\"\n",
                "not a valid regex",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"ok\"\nrule = \"storage-usage\"\n",
                "severity must be",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\n",
                "exactly one of",
            ),
            (
                "[[check]]\nid = \"a.b\"\ntitle = \"t\"\nseverity = \"warning\"\nrule = \"storage-usage\"\nparams = { warn = 1 }\n",
                "unknown field `warn`",
            ),
        ] {
            let e = parse(Path::new("x.toml"), text).unwrap_err().to_string();
            assert!(
                e.starts_with("x.toml: ") && e.contains(want) && !e.contains('\n'),
                "{e}"
            );
        }
    }

    fn node(name: &str) -> NodeSnapshot {
        NodeSnapshot {
            name: name.into(),
            reachable: true,
            ..Default::default()
        }
    }

    fn snap(nodes: Vec<NodeSnapshot>) -> Snapshot {
        Snapshot {
            format: 1,
            taken_at: "2026-11-27T03:00:00Z".into(),
            status: Severity::Ok,
            pveops_version: String::new(),
            nodes,
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        }
    }

    fn storage(name: &str, status: &str, pct: Option<f64>) -> Storage {
        Storage {
            name: name.into(),
            kind: "dir".into(),
            status: status.into(),
            used_pct: pct,
            ..Default::default()
        }
    }

    #[test]
    fn storage_thresholds_and_exclusions() {
        let mut a = node("pve1");
        a.storages = vec![
            storage("ok", "active", Some(79.99)),
            storage("warn", "active", Some(80.0)),
            storage("crit", "active", Some(95.5)),
            storage("off", "disabled", None),
            storage("down", "inactive", Some(0.0)),
        ];
        let mut checks = shipped();
        let found = evaluate(&checks, &snap(vec![a.clone()]), 0);
        let got: Vec<(&str, Severity, Option<&str>)> = found
            .iter()
            .map(|f| (f.check.as_str(), f.severity, f.subject.as_deref()))
            .collect();
        assert!(
            got.contains(&("storage.usage", Severity::Critical, Some("crit"))),
            "{got:?}"
        );
        assert!(
            got.contains(&("storage.usage", Severity::Warning, Some("warn"))),
            "{got:?}"
        );
        assert!(
            got.contains(&("storage.active", Severity::Critical, Some("down"))),
            "{got:?}"
        );
        assert!(
            !got.iter().any(|g| g.2 == Some("ok") || g.2 == Some("off")),
            "{got:?}"
        );
        assert_eq!(found[0].severity, Severity::Critical, "worst first");

        let usage = checks.iter_mut().find(|c| c.id == "storage.usage").unwrap();
        usage.params.exclude_storages = vec!["crit".into()];
        usage.params.warning_pct = Some(85.0);
        let found = evaluate(&checks, &snap(vec![a]), 0);
        assert!(
            !found.iter().any(|f| f.check == "storage.usage"),
            "{found:?}"
        );
    }

    #[test]
    fn reboot_pending_and_version_skew() {
        let mut a = node("pve1");
        a.version = Some(Version {
            manager_version: Some("9.1.1".into()),
            running_kernel: Some("6.14.11-4-pve".into()),
            newest_kernel: Some("6.17.2-2-pve".into()),
            ..Default::default()
        });
        let mut b = node("pve2");
        b.version = Some(Version {
            manager_version: Some("9.0.10".into()),
            running_kernel: Some("6.17.2-2-pve".into()),
            newest_kernel: Some("6.17.2-2-pve".into()),
            ..Default::default()
        });
        let found = evaluate(&shipped(), &snap(vec![a, b]), 0);
        let reboot: Vec<_> = found
            .iter()
            .filter(|f| f.check == "node.reboot-not-pending")
            .collect();
        assert_eq!(reboot.len(), 1);
        assert_eq!(reboot[0].node.as_deref(), Some("pve1"));
        let skew = found
            .iter()
            .find(|f| f.check == "cluster.versions-consistent")
            .unwrap();
        assert_eq!(
            (skew.node.as_deref(), skew.subject.as_deref()),
            (None, Some("pve-manager"))
        );
        assert_eq!(
            skew.message,
            "pve-manager versions differ across the cluster: 9.0.10 on pve2; 9.1.1 on pve1"
        );
    }

    #[test]
    fn backups_of_either_kind_count() {
        use crate::health::{Backup, Resource};
        let mut s = snap(vec![node("pve1")]);
        for vmid in [100, 101, 102] {
            s.resources.push(Resource {
                id: format!("qemu/{vmid}"),
                kind: "qemu".into(),
                node: Some("pve1".into()),
                vmid: Some(vmid),
                ..Default::default()
            });
        }
        let now = 1_800_000_000;
        // A PBS snapshot with an epoch, a vzdump file with a time of day only, and none.
        s.backups.push(Backup {
            vmid: Some(100),
            epoch: Some(now - 3600),
            ..Default::default()
        });
        s.backups.push(Backup {
            vmid: Some(101),
            backup_time: Some("2026-11-01T02:00:00".into()),
            ..Default::default()
        });
        s.derive();
        let found = evaluate(&shipped(), &s, now);
        let b: Vec<(Option<&str>, &str)> = found
            .iter()
            .filter(|f| f.check == "backup.recent")
            .map(|f| (f.subject.as_deref(), f.message.as_str()))
            .collect();
        assert_eq!(b.len(), 2, "{b:?}");
        assert!(
            b.iter()
                .any(|(s, m)| *s == Some("101") && m.contains("hours old")),
            "{b:?}"
        );
        assert!(
            b.iter()
                .any(|(s, m)| *s == Some("102") && m.ends_with("has no backup")),
            "{b:?}"
        );
    }
}
