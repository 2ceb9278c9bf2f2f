//! The snapshot: every node's health and raw command records at one moment, plus cluster-wide
//! facts and the findings. Its JSON is a public format (PRODUCT.md "Snapshot JSON"): fields
//! are only ever added.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};
use crate::health;

/// The snapshot format version.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub taken_at: String,
    pub status: Severity,
    #[serde(default)]
    pub pveops_version: String,
    pub nodes: Vec<NodeSnapshot>,
    /// Guests, nodes and storages of `/cluster/resources`, read once per cluster.
    #[serde(default)]
    pub resources: Vec<health::Resource>,
    /// Backups per backup storage, read once per cluster.
    #[serde(default)]
    pub backups: Vec<health::Backup>,
    pub findings: Vec<Finding>,
}

/// One target's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSnapshot {
    /// The target name.
    pub name: String,
    pub address: String,
    pub reachable: bool,
    /// Why it was not reachable, as one sentence.
    pub error: Option<String>,
    /// The node's own PVE name.
    pub pve_node: Option<String>,
    pub cluster: Option<health::ClusterHealth>,
    pub storages: Vec<health::Storage>,
    pub vms: Vec<health::Vm>,
    pub containers: Vec<health::Container>,
    pub ha: Option<health::Ha>,
    pub version: Option<health::Version>,
    pub services: BTreeMap<String, String>,
    pub boot_id: Option<String>,
    /// The upgrade checker's results (`--upgrade-checklist`); null when it was not run.
    pub upgrade_checklist: Option<Vec<health::ChecklistResult>>,
    /// Pending package updates (`apt-get -s dist-upgrade`); null when not read.
    pub updates: Option<health::Updates>,
    /// Age of the package lists (seconds since the last `apt-get update`, by the node's clock).
    pub apt_lists_age_seconds: Option<i64>,
    /// What gates an upgrade (dpkg locks and audit, repositories); read by `pveops update`.
    #[serde(default, skip_serializing_if = "health::PackageState::is_unread")]
    pub packages: health::PackageState,
    /// Outputs of the command checks (`zpool status -x`, `ceph health`), by template name.
    pub probes: BTreeMap<String, Probe>,
    pub commands: Vec<CommandRecord>,
}

/// What a command check's command printed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Probe {
    pub exit_code: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

/// One command that ran: what, how it ended, how long, and whether its output was read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandRecord {
    pub name: String,
    pub command: String,
    pub exit_code: Option<u32>,
    pub signal: Option<String>,
    pub started_at: Option<String>,
    pub duration_ms: u64,
    /// The command could not run (timeout, channel error).
    pub error: Option<String>,
    /// Its output could not be read (`kind: line N: ...`).
    pub parse_error: Option<String>,
    /// It exited non-zero and its stderr says why (the `pve-stderr` parser's first diagnosis).
    pub diagnosis: Option<Diagnosis>,
}

/// What a failing command's stderr says (kind `pve-stderr`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diagnosis {
    /// The message's stable code (`pmxcfs-down`, `corosync-down`, `storage-offline`, ...).
    pub code: String,
    /// What it is about (a storage, a VMID), when the message names it.
    pub subject: Option<String>,
    /// One sentence saying what the message means.
    pub message: String,
    /// The line as printed.
    pub line: String,
}

impl Snapshot {
    /// Reads a snapshot file.
    pub fn load(path: &Path) -> Result<Snapshot, crate::Error> {
        let text = crate::input::read_to_string(path, crate::input::MAX_DOCUMENT)
            .map_err(|e| crate::Error::io(path, "read the snapshot", e))?;
        let snap: Snapshot = serde_json::from_str(&text)
            .map_err(|e| crate::Error::file(path, format!("not a pveops snapshot: {e}")))?;
        if snap.format != FORMAT {
            return Err(crate::Error::file(
                path,
                format!(
                    "snapshot format {} is not supported (expected {FORMAT})",
                    snap.format
                ),
            ));
        }
        Ok(snap)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The node whose target name or PVE node name is `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSnapshot> {
        self.nodes
            .iter()
            .find(|n| n.name == name || n.pve_node.as_deref() == Some(name))
    }
}
