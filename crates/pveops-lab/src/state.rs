//! The simulated cluster's state: one JSON document that every simulated node shares. It is
//! what the simulated PVE tools read and change; time-based work (migrations, reboots, HA
//! moves) is stored as events with a due time and applied by `advance`, so it completes even
//! when the process that started it is gone (a detached `qm migrate`, a dropped channel).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole simulated cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `None` for a standalone node (no corosync.conf).
    pub cluster: Option<ClusterInfo>,
    #[serde(default)]
    pub timing: Timing,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub storages: Vec<Storage>,
    #[serde(default)]
    pub guests: Vec<Guest>,
    #[serde(default)]
    pub ha: Ha,
    /// Lines of the cluster's `/etc/pve/priv/known_hosts`.
    #[serde(default)]
    pub known_hosts: Vec<String>,
    /// Pending time-based changes, applied by `advance`.
    #[serde(default)]
    pub events: Vec<Event>,
    /// A counter for task ids and ring sequence numbers.
    #[serde(default)]
    pub serial: u64,
    /// A corosync QDevice (qnetd vote), if configured.
    #[serde(default)]
    pub qdevice: Option<Qdevice>,
    /// `/etc/pve/ha/rules.cfg` (PVE 9): node- and resource-affinity rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ha_rules: Vec<HaRule>,
    /// `/etc/pve/datacenter.cfg`: the options the lab knows.
    #[serde(default, skip_serializing_if = "Datacenter::is_empty")]
    pub datacenter: Datacenter,
    /// Hyper-converged Ceph (`pveceph init` wrote `/etc/pve/ceph.conf`); `None`: no Ceph set
    /// up, the ceph CLI fails as on a PVE node without it. OSDs are the nodes' `osds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceph: Option<Ceph>,
    /// Storage replication jobs (`/etc/pve/replication.cfg` and each job's state in
    /// `/var/lib/pve-manager/pve-replication-state.json`), what `pvesr status` lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replication: Vec<ReplicationJob>,
    /// Unix time the lab started (set when it writes its state); relative times in the state
    /// (negative epochs) are resolved against it, and defaults such as a lock's age use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
}

/// One storage replication job (pve-guest-common `PVE/ReplicationConfig.pm` `local` type, and
/// its state from `PVE/ReplicationState.pm` `extract_job_state`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationJob {
    /// `<vmid>-<n>`: the guest is the part before the dash.
    pub id: String,
    /// The target node.
    pub target: String,
    /// Calendar event; absent prints and runs as `*/15`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Start of the last successful sync (Unix time; negative: seconds before the lab
    /// started); absent: never synced (`-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<i64>,
    /// Start of the last attempt; absent: `last_sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_try: Option<i64>,
    #[serde(default)]
    pub fail_count: u32,
    /// The last attempt's error (the state column); absent: `OK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds the last run took; absent: `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

impl ReplicationJob {
    /// The guest, from the id (`PVE::ReplicationConfig::parse_replication_job_id`).
    pub fn guest(&self) -> Option<u32> {
        self.id.split('-').next()?.parse().ok()
    }
}

/// A finished or running task of a node's task list (`/var/log/pve/tasks/index` and `active`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Worker type (`vzdump`, `qmigrate`, `vzmigrate`, `qmstart`, `aptupdate`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Worker id (a VMID, a storage, or empty).
    #[serde(default)]
    pub id: String,
    #[serde(default = "root_pam")]
    pub user: String,
    /// Unix time; negative: seconds before the lab started.
    pub starttime: i64,
    /// Absent: still running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endtime: Option<i64>,
    /// `OK`, `WARNINGS: n`, or the error (`job errors`); absent for a running task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pstart: Option<u64>,
}

fn root_pam() -> String {
    "root@pam".into()
}

/// A local disk as pve-storage's `PVE::Diskmanage::get_disks` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel name under `/sys/block` (`nvme0n1`, `sda`).
    pub dev: String,
    /// `nvme`, `ssd`, `hdd` (from `queue/rotational` and the device name).
    #[serde(rename = "type")]
    pub kind: String,
    pub model: String,
    pub serial: String,
    /// Bytes.
    pub size: u64,
    /// smartctl's health line (`PASSED`, `FAILED!`, `OK`); absent: `UNKNOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Percent of life left (100 - `Percentage Used`); absent: `N/A` (always for an HDD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wearout: Option<u32>,
    /// What uses it (`BIOS boot`, `LVM`, `ZFS`, `partitions`); absent: unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    /// Rotation rate of an HDD (udev's `ID_ATA_ROTATION_RATE_RPM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    /// sysfs `device/vendor` (`ATA     ` for SATA; absent: `unknown`, as for NVMe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// The node's `/etc/subscription` as `pvesubscription get` reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionInfo {
    /// `active`, `notfound`, `expired`, `invalid`, `suspended`, `new`; absent: `active` when
    /// the node has a level, else `notfound`.
    pub status: Option<String>,
    pub key: Option<String>,
    /// `YYYY-MM-DD`.
    pub nextduedate: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub regdate: Option<String>,
    pub productname: Option<String>,
    pub message: Option<String>,
    pub checktime: Option<i64>,
    pub serverid: Option<String>,
}

impl SubscriptionInfo {
    fn is_default(&self) -> bool {
        *self == SubscriptionInfo::default()
    }
}

/// Validity of the node's certificates (`/etc/pve/pve-root-ca.pem`,
/// `/etc/pve/nodes/N/pve-ssl.pem`, an optional `pveproxy-ssl.pem`), Unix times.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Certs {
    /// pve-ssl.pem's `notAfter`; absent: two years after the lab started.
    pub ssl_notafter: Option<i64>,
    /// pve-ssl.pem's `notBefore`; absent: the lab start.
    pub ssl_notbefore: Option<i64>,
    /// The root CA's `notAfter`; absent: ten years after the lab started.
    pub ca_notafter: Option<i64>,
    /// A custom or ACME `pveproxy-ssl.pem`: its `notAfter` (absent: none configured).
    pub proxy_notafter: Option<i64>,
}

impl Certs {
    fn is_default(&self) -> bool {
        *self == Certs::default()
    }
}

/// The cluster's own Ceph (`ceph.rs` prints it as ceph does).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ceph {
    /// The cluster-wide `noout` flag (`ceph osd set noout`).
    pub noout: bool,
    /// The monitors do not answer: every ceph command times out connecting.
    pub monitors_down: bool,
    /// Health checks besides the ones the state implies (OSDs down, flags): code, severity
    /// (`HEALTH_WARN`, `HEALTH_ERR`) and summary message, e.g. `OSD_FULL` for a knob.
    pub checks: Vec<CephCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CephCheck {
    pub code: String,
    pub severity: String,
    pub message: String,
}

/// `/etc/pve/datacenter.cfg` (pve-cluster `src/PVE/DataCenterConfig.pm`): the options the lab
/// models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Datacenter {
    /// `max_workers`: parallel tasks of bulk actions (bulk migration's default).
    pub max_workers: Option<u32>,
}

impl Datacenter {
    fn is_empty(&self) -> bool {
        *self == Datacenter::default()
    }
}

/// One HA rule as `rules.cfg` holds it (pve-ha-manager `src/PVE/HA/Rules.pm`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaRule {
    pub rule: String,
    /// `node-affinity` or `resource-affinity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// HA ids (`vm:100`, `ct:101`).
    pub resources: Vec<String>,
    /// Node affinity: the nodes, each optionally `node:priority`.
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default)]
    pub strict: bool,
    /// Resource affinity: `positive` or `negative`.
    #[serde(default)]
    pub affinity: Option<String>,
}

/// A corosync QDevice: an extra vote from a qnetd server (FORMATS.md 1.1, Qdevice column).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qdevice {
    #[serde(default = "one_u32")]
    pub votes: u32,
    /// Whether qnetd gives its vote to the online partition (`A,V,NMW`) or not (`A,NV,NMW`).
    #[serde(default = "yes")]
    pub voting: bool,
}

/// The corosync totem section and the membership ring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfo {
    pub name: String,
    #[serde(default = "one")]
    pub config_version: u64,
    #[serde(default = "knet")]
    pub transport: String,
    #[serde(default = "on")]
    pub secure_auth: String,
    /// Ring sequence (hex in `Ring ID: <rep>.<seq>`); bumped on every membership change.
    #[serde(default = "one")]
    pub ring_seq: u64,
}

/// Simulated durations, in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    pub migrate_secs: f64,
    pub reboot_secs: f64,
    pub ha_delay_secs: f64,
    pub shutdown_secs: f64,
    /// Node-local time of `apt-get -y dist-upgrade` (unpacking and configuring).
    pub upgrade_secs: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            migrate_secs: 2.0,
            reboot_secs: 3.0,
            ha_delay_secs: 1.0,
            shutdown_secs: 0.5,
            upgrade_secs: 0.5,
        }
    }
}

/// One PVE node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub nodeid: u32,
    /// Ids of the Ceph OSDs this node hosts (`/var/lib/ceph/osd/ceph-<id>`); they are down
    /// while the node is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub osds: Vec<u32>,
    /// The corosync link address (what `pvecm status -i` shows).
    pub ip: String,
    #[serde(default = "one_u32")]
    pub votes: u32,
    #[serde(default = "yes")]
    pub online: bool,
    /// The corosync partition this node is in: nodes see as members only the online nodes of
    /// their own partition (a split cluster has two partitions).
    #[serde(default)]
    pub partition: u32,
    /// `pve-manager` version, `9.1.1` (or `7.4-15` style before PVE 8).
    pub manager_version: String,
    pub repoid: String,
    pub kernel_running: String,
    /// Installed kernel versions (`6.17.2-2-pve`), any order.
    pub kernels_installed: Vec<String>,
    /// `pveversion -v` package versions besides proxmox-ve, pve-manager and kernels.
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    /// systemd unit → state word (`active`, `inactive`, `failed`, ...).
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    pub memory_total: u64,
    /// Memory used by the host itself, besides running guests.
    #[serde(default)]
    pub memory_base: u64,
    #[serde(default = "eight")]
    pub cpus: u32,
    /// `zpool status -x` output; `None` prints `all pools are healthy`.
    #[serde(default)]
    pub zpool: Option<String>,
    pub boot_id: String,
    /// Unix time the node last booted (set when a simulated reboot brings it back); absent:
    /// it has been up four days whenever it is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted: Option<f64>,
    /// The HA local resource manager state word (`active`, `idle`, `maintenance mode`).
    #[serde(default)]
    pub lrm: Option<String>,
    #[serde(default)]
    pub faults: Faults,
    /// Subscription level for the API `level` field: `""` none, `c`, `b`, `s`, `p`.
    #[serde(default)]
    pub subscription: String,
    /// Unix time of the LRM's last status write; `None`: now when online, long ago when not.
    #[serde(default)]
    pub lrm_timestamp: Option<i64>,
    /// Extra node statistics for the API (`uptime`, `cpu`, `disk`, `maxdisk`, `cgroup-mode`, ...).
    #[serde(default)]
    pub stats: BTreeMap<String, serde_json::Value>,
    /// Lines libapt writes to stderr for tools reading the apt cache (`pveversion`, `pve8to9`).
    #[serde(default)]
    pub apt_stderr: Vec<String>,
    /// The node's package manager: what its lists offer, locks, broken packages.
    #[serde(default, skip_serializing_if = "Apt::is_default")]
    pub apt: Apt,
    /// The node's offset from UTC in minutes (its `/etc/localtime`): what `date +%z` prints
    /// and the local time vzdump names its files in.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub utc_offset_minutes: i32,
    /// Used memory (`MemTotal - MemAvailable`) instead of `memory_base` + running guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used: Option<u64>,
    /// Swap size; absent: 8 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_total: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub swap_used: u64,
    /// CPU usage as a fraction of all cores (`/proc/stat`, 0.0–1.0).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub cpu_usage: f64,
    /// IO wait as a fraction (`/proc/stat` iowait, 0.0–1.0).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub io_wait: f64,
    /// Local disks for `/nodes/N/disks/list`; absent: an NVMe system disk and a SATA SSD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    /// The node's task list (finished tasks and running ones besides those guest locks imply).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// `/etc/subscription` beyond the level.
    #[serde(default, skip_serializing_if = "SubscriptionInfo::is_default")]
    pub subscription_info: SubscriptionInfo,
    #[serde(default, skip_serializing_if = "Certs::is_default")]
    pub certs: Certs,
}

impl Node {
    /// Seconds since the node booted, at `now` (Unix time).
    pub fn uptime(&self, now: f64) -> f64 {
        self.booted.map_or(4.0 * 86_400.0, |b| (now - b).max(0.0))
    }
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// A package version a repository offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptPackage {
    pub package: String,
    pub version: String,
    /// apt's `RelStr` of the origin (`Proxmox:9.1/stable`); derived from the package when absent.
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default = "amd64")]
    pub arch: String,
    /// The .deb's size in bytes (`Size:`); derived from the package when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `Installed-Size:` in KiB; derived from the package when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_size_kib: Option<u64>,
}

/// The node's apt state. Upgrades are read from `available` against the installed versions
/// (`packages`, `manager_version`, `kernels_installed`); `apt-get update` moves `published`
/// into `available`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Apt {
    /// Versions in the node's package lists.
    pub available: Vec<AptPackage>,
    /// Versions the repositories publish that the node's lists do not have yet.
    pub published: Vec<AptPackage>,
    /// Packages apt keeps back (a dependency it will not resolve on its own).
    pub kept_back: Vec<String>,
    /// Unix time of the last `apt-get update`; `None` is an hour before the lab starts.
    pub lists_time: Option<i64>,
    /// `pve-no-subscription` (default), `pve-enterprise` or `pvetest`.
    pub channel: Option<String>,
    /// A process holding the dpkg frontend lock.
    pub lock: Option<AptLock>,
    /// Packages dpkg left half configured.
    pub broken: Vec<String>,
    /// The package whose postinst fails during `dist-upgrade` (dpkg error, exit 100).
    pub fail_package: Option<String>,
    /// `/run/reboot-required` exists.
    pub reboot_required: bool,
    /// Installed versions of packages `pveversion -v` does not list (Debian's own).
    pub installed: BTreeMap<String, String>,
    /// Free bytes per mount point for `df` (`/`, and `/boot` when it is its own mount);
    /// absent: 60 GiB on `/`, `/boot` on the root filesystem.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub disk_avail: BTreeMap<String, u64>,
}

impl Apt {
    fn is_default(&self) -> bool {
        *self == Apt::default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptLock {
    pub pid: u32,
    pub command: String,
}

/// Fault knobs of one node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// The node refuses connections (lab server) as if it were down.
    pub unreachable: bool,
    /// Command prefixes (`pvesm status`) that never answer.
    pub hang: Vec<String>,
    /// Command prefix → extra seconds before answering.
    pub slow: BTreeMap<String, f64>,
    /// Command prefix → failure (exit code and stderr) instead of the normal answer.
    pub fail: BTreeMap<String, Failure>,
    /// Command prefixes whose stdout is replaced by garbage.
    pub garbage: Vec<String>,
    /// VMIDs whose migration away from this node fails.
    pub migration_fails: Vec<u32>,
    /// After `reboot` the node stays offline.
    pub no_return_after_reboot: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub exit: i32,
    #[serde(default)]
    pub stderr: String,
}

/// A storage of storage.cfg, with its state per node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub shared: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub content: String,
    /// storage.cfg `nodes`: where it is available (all nodes when absent).
    #[serde(default)]
    pub nodes: Option<Vec<String>>,
    /// storage.cfg `monhost` of an RBD or CephFS storage: an external Ceph cluster's monitors
    /// (pve-storage `RBDPlugin.pm`), not the cluster's own Ceph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monhost: Option<String>,
    pub total: u64,
    pub used: u64,
    /// Available bytes; `total - used` when absent.
    #[serde(default)]
    pub avail: Option<u64>,
    /// Per-node overrides (usage, activation failures) by node name.
    #[serde(default)]
    pub per_node: BTreeMap<String, StorageOnNode>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageOnNode {
    pub total: Option<u64>,
    pub used: Option<u64>,
    pub avail: Option<u64>,
    /// Activation failed: the row shows `inactive` and these lines go to stderr.
    pub inactive: bool,
    pub stderr: Vec<String>,
}

/// A VM (`qemu`) or container (`lxc`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    pub vmid: u32,
    #[serde(rename = "type")]
    pub kind: GuestKind,
    /// `None`: `qm list` shows `VM <vmid>`, `pct list` shows `CT<vmid>`.
    #[serde(default)]
    pub name: Option<String>,
    pub node: String,
    pub status: String,
    pub maxmem: u64,
    /// Boot disk size in bytes.
    pub maxdisk: u64,
    /// Storage ids of the guest's disks.
    #[serde(default)]
    pub disks: Vec<String>,
    #[serde(default)]
    pub lock: Option<String>,
    /// HA resource state (`started`, `stopped`, ...) when HA manages the guest.
    #[serde(default)]
    pub ha: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Extra config lines (`key: value`) for `qm config`/`pct config`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub backups: Vec<Backup>,
    /// The node HA moved this guest away from for node maintenance (it returns there).
    #[serde(default)]
    pub ha_origin: Option<String>,
    /// Runtime statistics (QMP/cgroup/RRD values such as `uptime`, `mem`, `cpu`, `ballooninfo`) for
    /// `qm/pct status --verbose` and the API; keys override the values derived from the state.
    #[serde(default)]
    pub stats: BTreeMap<String, serde_json::Value>,
    /// Unix time the `lock` was taken (the running task's start); absent: the lab start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_since: Option<i64>,
    /// The lock is stale: no task holds it (a crashed backup or migration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lock_stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

/// One backup of a guest: where, when (RFC 3339, UTC) and how big.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub storage: String,
    pub time: String,
    #[serde(default)]
    pub size: u64,
}

/// HA manager state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ha {
    /// The CRM master node; `None` when HA was never used (no master line).
    pub master: Option<String>,
    /// The master's state word (`active`, `idle`, `old timestamp - dead?`).
    pub master_state: Option<String>,
    /// `armed` / `standby`, for the `fencing` line of pve-ha-manager >= 5.1.3.
    pub fencing: Option<String>,
    /// Unix time of the master's last manager-status write; `None`: now.
    pub master_timestamp: Option<i64>,
}

/// A change due at a time (Unix seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub due: f64,
    pub what: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// A migration ends: the guest moves (or stays, when `fail`), its lock is cleared.
    MigrationDone {
        vmid: u32,
        target: String,
        fail: bool,
        restart: bool,
    },
    /// A shutdown completes.
    Stopped { vmid: u32 },
    /// A rebooted node is back (unless it never returns).
    NodeBack { node: String },
    /// HA moves one guest (node maintenance, HA migration request).
    HaMove { vmid: u32, target: String },
}

fn amd64() -> String {
    "amd64".into()
}

fn one() -> u64 {
    1
}
fn one_u32() -> u32 {
    1
}
fn eight() -> u32 {
    8
}
fn yes() -> bool {
    true
}
fn knet() -> String {
    "knet".into()
}
fn on() -> String {
    "on".into()
}

/// Quorum as votequorum computes it from the nodes that are up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub expected: u32,
    pub total: u32,
    pub quorum: u32,
    pub quorate: bool,
}

impl Guest {
    /// The HA resource id (`vm:100`, `ct:101`), as the HA rules and `ha-manager` name it.
    pub fn ha_sid(&self) -> String {
        match self.kind {
            GuestKind::Qemu => format!("vm:{}", self.vmid),
            GuestKind::Lxc => format!("ct:{}", self.vmid),
        }
    }
}

impl Cluster {
    /// The nodes a strict node-affinity rule confines `sid` to (priorities dropped).
    pub fn strict_nodes(&self, sid: &str) -> Option<Vec<String>> {
        self.ha_rules
            .iter()
            .find(|r| r.kind == "node-affinity" && r.strict && r.resources.iter().any(|x| x == sid))
            .map(|r| {
                r.nodes
                    .iter()
                    .map(|n| n.split(':').next().unwrap_or(n).to_string())
                    .collect()
            })
    }

    /// The HA ids a negative resource-affinity rule keeps apart from `sid`.
    pub fn apart_from(&self, sid: &str) -> Vec<String> {
        self.ha_rules
            .iter()
            .filter(|r| {
                r.kind == "resource-affinity"
                    && r.affinity.as_deref() == Some("negative")
                    && r.resources.iter().any(|x| x == sid)
            })
            .flat_map(|r| r.resources.iter().filter(|x| *x != sid).cloned())
            .collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    pub fn guest(&self, vmid: u32) -> Option<&Guest> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }

    pub fn guest_mut(&mut self, vmid: u32) -> Option<&mut Guest> {
        self.guests.iter_mut().find(|g| g.vmid == vmid)
    }

    /// Votequorum over the online nodes of partition 0.
    pub fn quorum(&self) -> Quorum {
        self.quorum_in(0)
    }

    /// Votequorum as `node` sees it: the online nodes of its own partition vote, plus the
    /// QDevice's vote when qnetd gives it to this partition (the partition of node id order's
    /// first online node, partition 0).
    pub fn quorum_of(&self, node: &str) -> Quorum {
        self.quorum_in(self.node(node).map(|n| n.partition).unwrap_or(0))
    }

    fn quorum_in(&self, partition: u32) -> Quorum {
        let qd = self.qdevice.as_ref();
        let expected: u32 =
            self.nodes.iter().map(|n| n.votes).sum::<u32>() + qd.map_or(0, |q| q.votes);
        let qd_vote = qd
            .filter(|q| q.voting && partition == 0)
            .map_or(0, |q| q.votes);
        let total: u32 = self.members_in(partition).map(|n| n.votes).sum::<u32>() + qd_vote;
        let quorum = expected / 2 + 1;
        Quorum {
            expected,
            total,
            quorum,
            quorate: total >= quorum,
        }
    }

    /// The corosync members `node` sees: online nodes of its partition, by node id.
    pub fn members_of(&self, node: &str) -> Vec<&Node> {
        let p = self.node(node).map(|n| n.partition).unwrap_or(0);
        let mut m: Vec<&Node> = self.members_in(p).collect();
        m.sort_by_key(|n| n.nodeid);
        m
    }

    fn members_in(&self, partition: u32) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(move |n| n.online && n.partition == partition)
    }

    /// Memory used on `node`: the host's own plus every running guest's.
    pub fn memory_used(&self, node: &str) -> u64 {
        if let Some(used) = self.node(node).and_then(|n| n.memory_used) {
            return used;
        }
        let base = self.node(node).map(|n| n.memory_base).unwrap_or(0);
        base + self
            .guests
            .iter()
            .filter(|g| g.node == node && g.status == "running")
            .map(|g| g.maxmem)
            .sum::<u64>()
    }

    /// Applies every event due at `now` (Unix seconds), in due order.
    pub fn advance(&mut self, now: f64) {
        self.events.sort_by(|a, b| a.due.total_cmp(&b.due));
        while self.events.first().is_some_and(|e| e.due <= now) {
            let e = self.events.remove(0);
            self.apply(e.what, now, e.due);
        }
    }

    fn apply(&mut self, what: EventKind, now: f64, due: f64) {
        match what {
            EventKind::MigrationDone {
                vmid,
                target,
                fail,
                restart,
            } => {
                // The migration worker's task ends (pve-manager's task index on the source).
                self.record_migration_task(
                    vmid,
                    due,
                    if fail { "migration problems" } else { "OK" },
                );
                if let Some(g) = self.guest_mut(vmid) {
                    g.lock = None;
                    g.lock_since = None;
                    if !fail {
                        g.node = target;
                        if restart {
                            g.status = "running".into();
                        }
                    } else if restart {
                        g.status = "running".into();
                    }
                }
            }
            EventKind::Stopped { vmid } => {
                if let Some(g) = self.guest_mut(vmid) {
                    g.status = "stopped".into();
                    g.pid = None;
                    g.lock = None;
                    g.lock_since = None;
                }
            }
            EventKind::NodeBack { node } => {
                let back = self
                    .node(&node)
                    .is_some_and(|n| !n.faults.no_return_after_reboot);
                if back {
                    if let Some(n) = self.node_mut(&node) {
                        n.online = true;
                        n.boot_id = new_boot_id(now, n.nodeid);
                        n.booted = Some(now);
                        n.apt.reboot_required = false;
                        if let Some(newest) = newest_kernel(&n.kernels_installed) {
                            n.kernel_running = newest;
                        }
                    }
                    self.bump_ring();
                }
            }
            EventKind::HaMove { vmid, target } => {
                self.record_migration_task(vmid, due, "OK");
                if let Some(g) = self.guest_mut(vmid) {
                    g.node = target;
                    g.lock = None;
                    g.lock_since = None;
                }
            }
        }
    }

    /// A finished migration task on the guest's current (source) node: `qmigrate` for a VM,
    /// `vzmigrate` for a container (qemu-server `PVE/API2/Qemu.pm` and pve-container
    /// `src/PVE/API2/LXC.pm` `migrate_vm`, `fork_worker`), started when the guest was locked.
    fn record_migration_task(&mut self, vmid: u32, due: f64, status: &str) {
        let Some(g) = self.guest(vmid) else { return };
        if g.lock.as_deref() != Some("migrate") {
            return;
        }
        let kind = match g.kind {
            GuestKind::Qemu => "qmigrate",
            GuestKind::Lxc => "vzmigrate",
        };
        let end = due as i64;
        let start = g.lock_since.unwrap_or(end).min(end);
        let node = g.node.clone();
        if let Some(n) = self.node_mut(&node) {
            n.tasks.push(Task {
                kind: kind.into(),
                id: vmid.to_string(),
                user: root_pam(),
                starttime: start,
                endtime: Some(end),
                status: Some(status.into()),
                pid: None,
                pstart: None,
            });
        }
    }

    /// A membership change: corosync's ring sequence moves on.
    pub fn bump_ring(&mut self) {
        if let Some(c) = self.cluster.as_mut() {
            c.ring_seq += 4;
        }
    }

    /// The next serial number (task ids, process ids).
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }
}

/// The newest of kernel versions such as `6.17.2-2-pve`, compared numerically part by part.
pub fn newest_kernel(kernels: &[String]) -> Option<String> {
    kernels.iter().max_by_key(|k| version_key(k)).cloned()
}

/// Numeric parts of a version string, for ordering (`6.14.11-4` > `6.14.8-2`).
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// A boot id in the kernel's UUID form, different for every boot.
pub fn new_boot_id(now: f64, nodeid: u32) -> String {
    let bits = (now * 1e6) as u128
        ^ (u128::from(nodeid) << 96)
        ^ 0x5eed_0000_0000_0000_0000_0000_0000_0000;
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_order_numerically() {
        let k = vec![
            "6.14.8-2-pve".to_string(),
            "6.14.11-4-pve".into(),
            "6.8.12-1-pve".into(),
        ];
        assert_eq!(newest_kernel(&k).as_deref(), Some("6.14.11-4-pve"));
    }

    #[test]
    fn boot_ids_look_like_the_kernels() {
        let id = new_boot_id(1_700_000_000.5, 3);
        assert_eq!(id.len(), 36);
        assert_ne!(id, new_boot_id(1_700_000_001.5, 3));
    }
}
