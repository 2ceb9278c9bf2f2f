//! Hyper-converged Ceph as PVE judges it (kind `ceph-status`), from the output of the
//! `ceph-status` template: `stat -c %n` of the paths PVE tests, then `ceph health --format json`
//! with its stderr.
//!
//! - **Configured**: pve-manager `PVE/Ceph/Tools.pm` `check_ceph_inited` calls a cluster's Ceph
//!   set up when `/etc/pve/ceph.conf` and `/etc/pve/ceph/` exist (`pveceph init` writes them;
//!   `/etc/ceph/ceph.conf` is a link to the first). `pve8to9`'s `check_ceph` says "no
//!   hyper-converged ceph setup detected" otherwise.
//! - **The node's OSDs**: `PVE/Ceph/Services.pm` `get_local_services` finds a node's OSDs as
//!   `/var/lib/ceph/osd/<cluster>-<id>` directories and `ceph-osd@<id>.service` links in
//!   `ceph-osd.target.wants` (under `/etc/systemd/system` and `/run/systemd/system`).
//! - **The ceph CLI is on every PVE node** (`ceph-common` is a `Depends:` of
//!   `libpve-storage-perl`, pve-storage `debian/control`). Without a config it fails at once:
//!   ceph's `src/ceph.in` `main()` prints `Error initializing cluster client:
//!   ObjectNotFound('RADOS object not found (error calling conf_read_file)')` and returns 1.
//! - **Its health**: `ceph health --format json` prints an empty line (ceph.in: "old code
//!   printed status line before many json outputs") and then
//!   `{"status":"HEALTH_WARN","checks":{"OSDMAP_FLAGS":{"severity":"HEALTH_WARN","summary":
//!   {"message":"noout flag(s) set","count":1},"muted":false}},"mutes":[]}` (mon
//!   `health_check_map_t::dump`, Luminous and later). The plain form `HEALTH_WARN noout flag(s)
//!   set; …` is read too. `ceph osd set noout` raises the `OSDMAP_FLAGS` check.
//!
//! A storage that points at an external cluster (RBD or CephFS with `monhost` in storage.cfg,
//! pve-storage `RBDPlugin.pm` writes its own `/etc/pve/priv/ceph/<storage>.conf`) writes no
//! `/etc/pve/ceph.conf` and hosts no OSD here: it does not make a node hyper-converged.

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::lines;
use super::{Keep, Read, Scope};

pub const KIND: &str = "ceph-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "PVE's Ceph config and the node's OSDs (stat), then ceph health --format json: not-configured/configured/unreachable, noout",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// The PVE-managed Ceph config, shared by every node through pmxcfs.
pub const CONFIG: &str = "/etc/pve/ceph.conf";
/// PVE's Ceph directory (keyrings of the managed cluster).
pub const CONFIG_DIR: &str = "/etc/pve/ceph";

/// What Ceph is on this node's cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CephState {
    /// No `/etc/pve/ceph.conf` and ceph gave no health: no Ceph here (the usual case).
    #[default]
    NotConfigured,
    /// Ceph answered with its health.
    Configured,
    /// `/etc/pve/ceph.conf` exists, yet ceph gave no health (monitors down or unreachable).
    Unreachable,
}

/// One health check ceph reports (`OSDMAP_FLAGS`, `PG_DEGRADED`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CephCheck {
    /// The check's code; `None` from the plain form, which prints only summaries.
    pub code: Option<String>,
    /// `HEALTH_WARN` or `HEALTH_ERR`.
    pub severity: String,
    pub message: String,
}

/// What `ceph health` said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CephHealth {
    /// `HEALTH_OK`, `HEALTH_WARN` or `HEALTH_ERR`.
    pub status: String,
    pub checks: Vec<CephCheck>,
    /// The cluster-wide `noout` flag is set (`ceph osd set noout`).
    pub noout: bool,
}

impl CephHealth {
    /// PVE's own reading of a rolling upgrade (pve-manager `PVE/CLI/pve8to9.pm` `check_ceph`):
    /// `HEALTH_OK`, or `HEALTH_WARN` whose one failing check is the `noout` flag.
    pub fn ok_but_noout(&self) -> bool {
        self.status == "HEALTH_OK"
            || (self.status == "HEALTH_WARN" && self.checks.len() == 1 && self.noout)
    }
}

/// The checks a node's OSDs being down raise (mon `OSDMap::check_health`, `PGMap::get_health_checks`).
const OSDS_DOWN: &[&str] = &[
    "OSD_DOWN",
    "OSD_HOST_DOWN",
    "OSD_ROOT_DOWN",
    "PG_AVAILABILITY",
    "PG_DEGRADED",
];

impl CephHealth {
    /// Ceph has recovered from a node's reboot: not `HEALTH_ERR`, no OSD down, no PG inactive
    /// or degraded. Other warnings (present before the reboot, say) do not hold it up. The
    /// plain form names no codes, so it counts only when it is `HEALTH_OK`.
    pub fn recovered(&self) -> bool {
        match self.status.as_str() {
            "HEALTH_OK" => true,
            "HEALTH_ERR" => false,
            _ => self.checks.iter().all(|c| {
                c.code
                    .as_deref()
                    .is_some_and(|code| !OSDS_DOWN.contains(&code))
            }),
        }
    }
}

/// The parsed output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CephStatus {
    pub state: CephState,
    /// `/etc/pve/ceph.conf` exists.
    pub config: bool,
    /// `/etc/pve/ceph/` exists.
    pub config_dir: bool,
    /// The ids of the OSDs this node hosts, ascending and once each.
    pub osds: Vec<u32>,
    pub health: Option<CephHealth>,
    /// What ceph said instead of its health (its last complaint), when it gave none.
    pub error: Option<String>,
}

/// Reads the template's output (stdout and stderr together, in that order).
pub fn parse(text: &str) -> Result<CephStatus, ParseError> {
    let mut s = CephStatus::default();
    let mut complaints: Vec<&str> = Vec::new();
    for l in lines(text) {
        let t = l.text.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with('/') && !t.contains(' ') {
            if t == CONFIG {
                s.config = true;
            } else if t == CONFIG_DIR {
                s.config_dir = true;
            } else if let Some(id) = osd_id(t) {
                s.osds.push(id);
            } else {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    l.text,
                    "not one of the paths the template asks about",
                ));
            }
            continue;
        }
        if t.starts_with('{') {
            if s.health.is_some() {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    l.text,
                    "a second health report",
                ));
            }
            s.health =
                Some(health_json(t).map_err(|why| ParseError::new(KIND, l.no, l.text, why))?);
            continue;
        }
        if t.starts_with("HEALTH_") {
            if s.health.is_some() {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    l.text,
                    "a second health report",
                ));
            }
            s.health =
                Some(health_plain(t).map_err(|why| ParseError::new(KIND, l.no, l.text, why))?);
            continue;
        }
        complaints.push(t);
    }
    s.osds.sort_unstable();
    s.osds.dedup();
    s.state = match (&s.health, s.config) {
        (Some(_), _) => CephState::Configured,
        (None, true) => CephState::Unreachable,
        (None, false) => CephState::NotConfigured,
    };
    if s.health.is_none() {
        s.error = complaints.last().map(|c| c.to_string());
    }
    Ok(s)
}

/// The OSD id of `/var/lib/ceph/osd/<cluster>-<id>` or `…/ceph-osd@<id>.service`.
fn osd_id(path: &str) -> Option<u32> {
    if let Some(dir) = path.strip_prefix("/var/lib/ceph/osd/") {
        // `get_local_services`: `([^-]+)-(.*)`, the cluster name then the id.
        let (_, id) = dir.split_once('-')?;
        return id.parse().ok();
    }
    let unit = path
        .strip_prefix("/etc/systemd/system/ceph-osd.target.wants/")
        .or_else(|| path.strip_prefix("/run/systemd/system/ceph-osd.target.wants/"))?;
    unit.strip_prefix("ceph-osd@")?
        .strip_suffix(".service")?
        .parse()
        .ok()
}

const STATUSES: &[&str] = &["HEALTH_OK", "HEALTH_WARN", "HEALTH_ERR"];

fn health_json(t: &str) -> Result<CephHealth, String> {
    let v: serde_json::Value =
        serde_json::from_str(t).map_err(|e| format!("not ceph's health JSON: {e}"))?;
    // Before Luminous the overall word was `overall_status`.
    let status = v
        .get("status")
        .or_else(|| v.get("overall_status"))
        .and_then(|s| s.as_str())
        .ok_or("no `status` in ceph's health JSON")?;
    if !STATUSES.contains(&status) {
        return Err(format!("unknown health status {status:?}"));
    }
    let mut h = CephHealth {
        status: status.to_string(),
        ..Default::default()
    };
    if let Some(checks) = v.get("checks").and_then(|c| c.as_object()) {
        for (code, c) in checks {
            let message = c
                .get("summary")
                .and_then(|s| s.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string();
            if code == "OSDMAP_FLAGS" && flags_name_noout(&message) {
                h.noout = true;
            }
            h.checks.push(CephCheck {
                code: Some(code.clone()),
                severity: c
                    .get("severity")
                    .and_then(|s| s.as_str())
                    .unwrap_or(status)
                    .to_string(),
                message,
            });
        }
    }
    Ok(h)
}

/// `noout flag(s) set`, `noout,noscrub flag(s) set` (mon `OSDMap::check_health`, OSDMAP_FLAGS).
fn flags_name_noout(message: &str) -> bool {
    message
        .strip_suffix(" flag(s) set")
        .is_some_and(|flags| flags.split(',').any(|f| f == "noout"))
}

fn health_plain(t: &str) -> Result<CephHealth, String> {
    let (status, rest) = t.split_once(' ').unwrap_or((t, ""));
    if !STATUSES.contains(&status) {
        return Err(format!("unknown health status {status:?}"));
    }
    let mut h = CephHealth {
        status: status.to_string(),
        ..Default::default()
    };
    for m in rest.split("; ").map(str::trim).filter(|m| !m.is_empty()) {
        if flags_name_noout(m) {
            h.noout = true;
        }
        h.checks.push(CephCheck {
            code: None,
            severity: status.to_string(),
            message: m.to_string(),
        });
    }
    Ok(h)
}

/// The `ceph-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "ceph-status",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    // `ceph health` says on stderr why it gave no health (joined by the template).
    let text = format!("{}{}", out.stdout_text(), out.stderr_text());
    k.node.ceph = Some(parse(&text).map_err(|e| e.to_string())?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const NOT_CONFIGURED: &str = "Error initializing cluster client: ObjectNotFound('RADOS object not found (error calling conf_read_file)')\n";

    #[test]
    fn a_node_without_ceph_is_not_configured() {
        let s = parse(NOT_CONFIGURED).unwrap();
        assert_eq!(s.state, CephState::NotConfigured);
        assert!(s.osds.is_empty() && !s.config);
        assert!(s.error.unwrap().contains("conf_read_file"));
    }

    #[test]
    fn a_hyperconverged_node_with_noout_set() {
        let text = "/etc/pve/ceph.conf\n/etc/pve/ceph\n/var/lib/ceph/osd/ceph-3\n/var/lib/ceph/osd/ceph-0\n/etc/systemd/system/ceph-osd.target.wants/ceph-osd@3.service\n\n{\"status\":\"HEALTH_WARN\",\"checks\":{\"OSDMAP_FLAGS\":{\"severity\":\"HEALTH_WARN\",\"summary\":{\"message\":\"noout flag(s) set\",\"count\":1},\"muted\":false}},\"mutes\":[]}\n";
        let s = parse(text).unwrap();
        assert_eq!(s.state, CephState::Configured);
        assert_eq!(s.osds, [0, 3]);
        let h = s.health.unwrap();
        assert!(h.noout && h.ok_but_noout());
        assert_eq!(h.checks[0].code.as_deref(), Some("OSDMAP_FLAGS"));
    }

    #[test]
    fn configured_but_the_monitors_do_not_answer() {
        let text = "/etc/pve/ceph.conf\n/etc/pve/ceph\n[errno 110] RADOS timed out (error connecting to the cluster)\n";
        let s = parse(text).unwrap();
        assert_eq!(s.state, CephState::Unreachable);
        assert!(s.error.unwrap().contains("timed out"));
    }

    #[test]
    fn the_plain_form_is_read_too() {
        let s = parse("HEALTH_ERR 1 full osd(s); noout,noscrub flag(s) set\n").unwrap();
        let h = s.health.unwrap();
        assert_eq!(h.status, "HEALTH_ERR");
        assert_eq!(h.checks.len(), 2);
        assert!(h.noout && !h.ok_but_noout());
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        assert!(parse("{not json\n").is_err());
        assert!(parse("HEALTH_PURPLE\n").is_err());
        assert!(parse("/etc/shadow\n").is_err());
    }
}
