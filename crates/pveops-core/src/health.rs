//! Health: the typed, serialisable state of one node as the snapshot keeps it and the checks
//! and diff read it. Each struct mirrors the JSON of a `pveops parse` kind (PRODUCT.md) and is
//! built from the parser's output, so a snapshot file reads back into the same types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Converts a parser's output into its health mirror (same field names).
pub fn from_fact<T: Serialize, H: DeserializeOwned + Default>(fact: &T) -> H {
    serde_json::to_value(fact)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

/// `pvecm status` (kind `pvecm-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterHealth {
    /// `ok`, or a state such as `no-cluster`, `corosync-down`, `pmxcfs-down`.
    pub state: String,
    pub error: Option<String>,
    pub cluster_name: Option<String>,
    pub config_version: Option<u64>,
    pub quorate: Option<bool>,
    pub nodes: Option<u32>,
    pub expected_votes: Option<u32>,
    pub highest_expected: Option<u32>,
    pub total_votes: Option<u32>,
    pub quorum: Option<u32>,
    pub activity_blocked: bool,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
    pub qdevice: Option<Qdevice>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    pub nodeid: u32,
    pub votes: u32,
    pub name: String,
    pub local: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qdevice {
    pub votes: u32,
    pub name: String,
}

/// One row of `pvesm status` (kind `pvesm-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Storage {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
    pub used_pct: Option<f64>,
    pub error: Option<String>,
}

/// One row of `qm list` (kind `qm-list`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    pub vmid: u64,
    pub name: String,
    pub status: String,
    pub mem_mib: f64,
    pub bootdisk_gib: f64,
    pub pid: u64,
}

/// One row of `pct list` (kind `pct-list`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    pub vmid: u64,
    pub status: String,
    pub lock: Option<String>,
    pub name: String,
}

/// `ha-manager status` (kind `ha-manager-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ha {
    pub quorum_ok: bool,
    pub master: Option<HaMaster>,
    pub lrms: Vec<HaLrm>,
    pub services: Vec<HaService>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaMaster {
    pub node: String,
    pub state: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaLrm {
    pub node: String,
    pub state: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaService {
    pub sid: String,
    pub node: String,
    pub state: String,
}

/// `pveversion -v` (kind `pveversion-v`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Version {
    pub manager_version: Option<String>,
    pub running_kernel: Option<String>,
    pub packages: BTreeMap<String, Option<String>>,
    pub newest_kernel: Option<String>,
    pub reboot_required: Option<bool>,
}

impl PackageState {
    /// Nothing was read (an assess does not read these; `update` does).
    pub fn is_unread(&self) -> bool {
        *self == PackageState::default()
    }
}

/// Pending package updates (kind `apt-simulate`): what `apt-get -s dist-upgrade` would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Updates {
    pub installs: Vec<PackageChange>,
    pub removals: Vec<PackageRemoval>,
    pub kept_back: Vec<String>,
    pub counts: Option<UpdateCounts>,
    /// Kernels (`uname -r` form) the upgrade installs: a reboot will be due.
    pub new_kernels: Vec<String>,
    /// Proxmox's own packages among the installs.
    pub pve_packages: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageChange {
    pub package: String,
    pub old_version: Option<String>,
    pub new_version: String,
    pub release: Option<String>,
    pub kernel_release: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageRemoval {
    pub package: String,
    pub version: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateCounts {
    pub upgraded: u64,
    pub newly_installed: u64,
    pub removed: u64,
    pub not_upgraded: u64,
}

/// The package manager's state that gates an upgrade (read by `pveops update` only):
/// `dpkg --audit`, `lslocks`, `apt-cache policy`, `/run/reboot-required`. Null: not read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageState {
    /// Packages dpkg left broken.
    pub broken_packages: Option<Vec<String>>,
    /// Holders of apt's and dpkg's locks.
    pub apt_locks: Option<Vec<AptLock>>,
    /// The repositories apt uses, channel-independent (`proxmox pve`, `URI SUITE ARCH`).
    pub repositories: Option<Vec<String>>,
    /// Proxmox channels in use (`enterprise`, `no-subscription`, `test`).
    pub proxmox_channels: Option<Vec<String>>,
    /// `/run/reboot-required` exists.
    pub reboot_required: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AptLock {
    pub command: Option<String>,
    pub pid: Option<u64>,
    pub path: Option<String>,
}

/// One guest of `/cluster/resources` (cluster-wide: locks, HA state, placement).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub node: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub vmid: Option<u64>,
    pub lock: Option<String>,
    pub hastate: Option<String>,
    pub storage: Option<String>,
    pub content: Option<String>,
    pub shared: Option<bool>,
    pub maxmem_bytes: Option<u64>,
    pub mem_bytes: Option<u64>,
    pub template: Option<bool>,
}

impl Resource {
    /// A VM (`qemu`) or a container (`lxc`), as `/cluster/resources` types them.
    pub fn is_guest(&self) -> bool {
        matches!(self.kind.as_str(), "qemu" | "lxc")
    }
}

/// One backup (kind `storage-content`): vzdump files and PBS snapshots alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backup {
    pub volid: String,
    pub storage: String,
    pub vmid: Option<u64>,
    pub size_bytes: Option<u64>,
    pub backup_time: Option<String>,
    /// `local` (a vzdump name: the node's local time) or `utc` (PBS).
    pub time_zone: Option<String>,
    pub epoch: Option<i64>,
}

/// One WARN or FAIL (or other) line of the upgrade checker (kind `upgrade-checklist`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChecklistResult {
    pub level: String,
    pub section: Option<String>,
    pub message: String,
}

/// A node's load and memory (kind `node-status`, `/nodes/N/status`). `cpu` and `wait` are kept
/// as PVE gives them, but through `pvesh` they are always 0: pve-manager computes them from the
/// previous sample of the same process (see `facts::node_status`), so no check reads them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub cpu: Option<f64>,
    pub wait: Option<f64>,
    pub cpus: Option<u64>,
    pub loadavg: Vec<f64>,
    pub uptime: Option<u64>,
    pub memory: Option<MemoryUse>,
    pub swap: Option<MemoryUse>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryUse {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

impl MemoryUse {
    /// Used share in percent; None when the total is unknown or 0 (no swap).
    pub fn used_pct(&self) -> Option<f64> {
        match (self.used_bytes, self.total_bytes) {
            (Some(u), Some(t)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
            _ => None,
        }
    }
}

/// One disk of `/nodes/N/disks/list` (kind `disks-list`): SMART health and SSD wearout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    pub devpath: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub size_bytes: Option<u64>,
    /// smartctl's overall assessment as PVE passes it: `PASSED`, `OK`, `FAILED!`, ...
    pub health: Option<String>,
    /// Percent of the SSD's life left (100 new); null for HDDs.
    pub wearout: Option<f64>,
    pub used: Option<String>,
}

impl Disk {
    /// smartctl's overall assessment as PVE passes it (pve-storage PVE/Diskmanage.pm
    /// `get_smart_data`): `PASSED` (ATA/NVMe) or `OK` (SAS) is good; none, `UNKNOWN` or
    /// `SMART Disabled…` says nothing either way (None); anything else is a failure.
    pub fn smart_passed(&self) -> Option<bool> {
        match self.health.as_deref()? {
            "" | "UNKNOWN" => None,
            h if h.starts_with("SMART Disabled") => None,
            h => Some(matches!(h, "PASSED" | "OK")),
        }
    }
}

/// One task of `/nodes/N/tasks` (kind `tasks`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    pub upid: String,
    pub node: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub user: String,
    pub starttime: i64,
    pub endtime: Option<i64>,
    pub status: Option<String>,
    /// `running`, `ok`, `warning` or `error`.
    pub outcome: String,
}

/// One replication job of `pvesr status` (kind `pvesr-status`); the epochs are derived in
/// the snapshot from the printed node-local times and the node's UTC offset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationJob {
    pub job_id: String,
    pub guest: Option<u64>,
    pub enabled: bool,
    pub target: String,
    pub last_sync: Option<String>,
    pub next_sync: Option<String>,
    pub duration_s: Option<f64>,
    pub fail_count: u64,
    pub state: String,
    pub last_sync_epoch: Option<i64>,
    pub next_sync_epoch: Option<i64>,
}

/// `pvesubscription get` (kind `subscription`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscription {
    pub status: String,
    pub level: Option<String>,
    pub productname: Option<String>,
    pub nextduedate: Option<String>,
    pub message: Option<String>,
}

/// One certificate of `pvenode cert info` (kind `cert-info`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    pub filename: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub notbefore: Option<i64>,
    pub notafter: Option<i64>,
    pub fingerprint: Option<String>,
}

/// The node's CPU and IO wait as pvestatd recorded them (kind `node-rrddata`, the last hour):
/// the newest minute with data, and the hour's mean.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeLoad {
    /// Unix time of the newest row with data.
    pub time: Option<i64>,
    /// CPU in use, 0–1, in the newest minute.
    pub cpu: Option<f64>,
    /// IO wait, 0–1, in the newest minute.
    pub iowait: Option<f64>,
    pub cpu_avg: Option<f64>,
    pub iowait_avg: Option<f64>,
}
