//! Checks: declarative health checks from `checks/*.toml` (embedded, overridable and
//! extendable with `--checks DIR`), evaluated over a snapshot into findings. Pure: no I/O
//! besides loading the definitions; the time is passed in.

use std::path::Path;

use regex::Regex;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::snapshot::{NodeSnapshot, Snapshot};

mod ceph;
mod cluster;
mod guests;
mod ha;
mod node;
mod services;
mod storage;
mod updates;

#[derive(RustEmbed)]
#[folder = "../../checks/"]
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

/// A built-in rule: the name a check file gives it and the function that judges a snapshot by
/// it (`now` in Unix seconds). One file per family of rules, each rule a function beside its
/// neighbours.
pub struct Rule {
    pub name: &'static str,
    pub eval: fn(&Check, &Snapshot, i64) -> Vec<Finding>,
}

/// The built-in rules a check may name.
pub const RULES: &[Rule] = &[
    Rule {
        name: "node-reachable",
        eval: cluster::node_reachable,
    },
    Rule {
        name: "cluster-quorate",
        eval: cluster::cluster_quorate,
    },
    Rule {
        name: "cluster-members-online",
        eval: cluster::cluster_members_online,
    },
    Rule {
        name: "versions-consistent",
        eval: cluster::versions_consistent,
    },
    Rule {
        name: "storage-active",
        eval: storage::storage_active,
    },
    Rule {
        name: "storage-usage",
        eval: storage::storage_usage,
    },
    Rule {
        name: "guest-unlocked",
        eval: guests::guest_unlocked,
    },
    Rule {
        name: "ha-quorum",
        eval: ha::ha_quorum,
    },
    Rule {
        name: "ha-services-healthy",
        eval: ha::ha_services_healthy,
    },
    Rule {
        name: "services-active",
        eval: services::services_active,
    },
    Rule {
        name: "reboot-not-pending",
        eval: cluster::reboot_not_pending,
    },
    Rule {
        name: "backup-recent",
        eval: guests::backup_recent,
    },
    Rule {
        name: "ceph-health",
        eval: ceph::ceph_health,
    },
    Rule {
        name: "ceph-noout",
        eval: ceph::ceph_noout,
    },
    Rule {
        name: "ha-node-maintenance",
        eval: ha::ha_node_maintenance,
    },
    Rule {
        name: "ha-managers-healthy",
        eval: ha::ha_managers_healthy,
    },
    Rule {
        name: "packages-configured",
        eval: updates::packages_configured,
    },
    Rule {
        name: "node-memory",
        eval: node::node_memory,
    },
    Rule {
        name: "node-swap",
        eval: node::node_swap,
    },
    Rule {
        name: "node-cpu",
        eval: node::node_cpu,
    },
    Rule {
        name: "node-io-wait",
        eval: node::node_io_wait,
    },
    Rule {
        name: "disk-health",
        eval: node::disk_health,
    },
    Rule {
        name: "tasks-failed",
        eval: node::tasks_failed,
    },
    Rule {
        name: "replication-healthy",
        eval: storage::replication_healthy,
    },
    Rule {
        name: "subscription-valid",
        eval: node::subscription_valid,
    },
    Rule {
        name: "cert-expiry",
        eval: node::cert_expiry,
    },
    Rule {
        name: "updates-kept-back",
        eval: updates::updates_kept_back,
    },
    Rule {
        name: "updates-pending",
        eval: updates::updates_pending,
    },
    Rule {
        name: "lists-fresh",
        eval: updates::lists_fresh,
    },
];

/// The rule named `name`, if there is one.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

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
            (Some(r), None) if rule(r).is_none() => {
                let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
                return bad(format!("unknown rule `{r}` (rules: {})", names.join(", ")));
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
            (Some(name), _) => rule(name)
                .map(|r| (r.eval)(c, snap, now))
                .unwrap_or_default(),
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

/// How a number is judged against a check's two levels.
#[derive(Clone, Copy)]
enum Level {
    /// Worse as it grows: a warning at or over `warn`, critical at or over `crit` (usage).
    Rising,
    /// Worse as it shrinks, the levels included (an SSD's life left).
    FallingTo,
    /// Worse as it shrinks, below the levels (days until a certificate expires).
    FallingBelow,
}

impl Level {
    fn judge(self, v: f64, warn: f64, crit: f64) -> Option<Severity> {
        let past = |level: f64| match self {
            Level::Rising => v >= level,
            Level::FallingTo => v <= level,
            Level::FallingBelow => v < level,
        };
        if past(crit) {
            Some(Severity::Critical)
        } else if past(warn) {
            Some(Severity::Warning)
        } else {
            None
        }
    }
}

fn reachable(snap: &Snapshot) -> impl Iterator<Item = &NodeSnapshot> {
    snap.nodes.iter().filter(|n| n.reachable)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::pvesm_status::Storage;
    use crate::facts::pveversion::Version;
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
        use crate::facts::pvesh::Resource;
        use crate::facts::storage_content::Backup;
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
