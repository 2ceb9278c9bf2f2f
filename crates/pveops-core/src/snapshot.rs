//! The snapshot: every node's health and raw command records at one moment, plus cluster-wide
//! facts and the findings. Its JSON is a public format (PRODUCT.md "Snapshot JSON"): fields
//! are only ever added. What it keeps of each command is defined beside the command's parser
//! (`facts`); [`PackageState`], which combines four reads, is here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::facts::apt_get::Updates;
use crate::facts::ceph_status::{CephHealth, CephState, CephStatus};
use crate::facts::cert_info::Certificate;
use crate::facts::disks_list::Disk;
use crate::facts::ha_manager_status::Ha;
use crate::facts::lslocks::Lock;
use crate::facts::node_rrddata::NodeLoad;
use crate::facts::node_status::NodeStatus;
use crate::facts::pct_list::Container;
use crate::facts::pvecm_status::ClusterHealth;
use crate::facts::pvesh::Resource;
use crate::facts::pvesm_status::Storage;
use crate::facts::pvesr_status::ReplicationJob;
use crate::facts::pveversion::Version;
use crate::facts::qm_list::Vm;
use crate::facts::storage_content::Backup;
use crate::facts::subscription::Subscription;
use crate::facts::tasks::Task;
use crate::facts::upgrade_checklist::ChecklistResult;
use crate::finding::{Finding, Severity};

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
    pub resources: Vec<Resource>,
    /// Backups per backup storage, read once per cluster.
    #[serde(default)]
    pub backups: Vec<Backup>,
    /// Each guest's newest backup, derived once from `backups` ([`Snapshot::derive`]): what
    /// the `backup.recent` check and the operations' backup gate read.
    #[serde(default)]
    pub newest_backups: Vec<NewestBackup>,
    /// Ceph as the whole cluster has it, derived once from the nodes' `ceph-status`
    /// ([`Snapshot::derive`]); null when no node was read for it.
    #[serde(default)]
    pub ceph: Option<CephCluster>,
    pub findings: Vec<Finding>,
}

/// Ceph as the cluster has it: what the `ceph.health` check, the report and the reboot's
/// `noout` steps read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CephCluster {
    /// `configured` when a node got Ceph's health; `unreachable` when `/etc/pve/ceph.conf`
    /// exists but no node got it; else `not-configured`.
    pub state: CephState,
    /// Ceph's health, as the first node that got it read it.
    pub health: Option<CephHealth>,
    /// The node whose `ceph health` answered.
    pub health_from: Option<String>,
    /// Why no node got Ceph's health (the last node's complaint), when none did.
    pub error: Option<String>,
    /// PVE node name → the OSDs it hosts, for every node read (an empty list: none).
    pub osds: BTreeMap<String, Vec<u32>>,
}

impl CephCluster {
    /// Whether rebooting `node` takes OSDs of this cluster down, so that `noout` keeps Ceph from
    /// rebalancing meanwhile. When Ceph is configured and no node read shows an OSD, the
    /// placement is unknown (the OSDs' directories could not be seen), so every node counts.
    pub fn noout_wanted(&self, node: &str) -> bool {
        if self.state == CephState::NotConfigured {
            return false;
        }
        let known = self.osds.values().any(|o| !o.is_empty());
        !known || self.osds.get(node).is_some_and(|o| !o.is_empty())
    }
}

/// A guest's newest backup, with its absolute time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewestBackup {
    pub vmid: u64,
    /// Unix time: a PBS snapshot's own, or a vzdump name's local time less the UTC offset of
    /// the node that listed it.
    pub epoch: i64,
    pub volid: String,
    pub storage: String,
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
    /// The node's offset from UTC in seconds (`date +%z`), for vzdump's local-time names.
    pub utc_offset_seconds: Option<i32>,
    pub cluster: Option<ClusterHealth>,
    pub storages: Vec<Storage>,
    pub vms: Vec<Vm>,
    pub containers: Vec<Container>,
    pub ha: Option<Ha>,
    pub version: Option<Version>,
    pub services: BTreeMap<String, String>,
    pub boot_id: Option<String>,
    /// Seconds since the node booted (`/proc/uptime`); null when not read.
    pub uptime_seconds: Option<u64>,
    /// The upgrade checker's results (`--upgrade-checklist`); null when it was not run.
    pub upgrade_checklist: Option<Vec<ChecklistResult>>,
    /// Pending package updates (`apt-get -s dist-upgrade`); null when not read.
    pub updates: Option<Updates>,
    /// Ceph as this node sees it (`ceph-status`): PVE's Ceph config, its OSDs, the health.
    pub ceph: Option<CephStatus>,
    /// Age of the package lists (seconds since the last `apt-get update`, by the node's clock).
    pub apt_lists_age_seconds: Option<i64>,
    /// What gates an upgrade (dpkg locks and audit, repositories); read by `pveops update`.
    #[serde(default, skip_serializing_if = "PackageState::is_unread")]
    pub packages: PackageState,
    /// `/nodes/N/status`: memory, swap, load; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_status: Option<NodeStatus>,
    /// `/nodes/N/rrddata` (the last hour): CPU and IO wait; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<NodeLoad>,
    /// `/nodes/N/disks/list`: each disk's SMART health and wearout; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    /// Tasks that ended in an error in the last day and tasks still running
    /// (`/nodes/N/tasks`); null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    /// `pvesr status`: the replication jobs of this node's guests; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Vec<ReplicationJob>>,
    /// `pvesubscription get`; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Subscription>,
    /// `pvenode cert info`: the node's certificates; null when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<Certificate>>,
    /// Outputs of the command checks (`zpool status -x`, `ceph health`), by template name.
    pub probes: BTreeMap<String, Probe>,
    pub commands: Vec<CommandRecord>,
}

/// The package manager's state that gates an upgrade (read by `pveops update` only):
/// `dpkg --audit`, `lslocks`, `apt-cache policy`, `/run/reboot-required`. Null: not read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageState {
    /// Packages dpkg left broken.
    pub broken_packages: Option<Vec<String>>,
    /// Holders of apt's and dpkg's locks.
    pub apt_locks: Option<Vec<Lock>>,
    /// The repositories apt uses, channel-independent (`proxmox pve`, `URI SUITE ARCH`).
    pub repositories: Option<Vec<String>>,
    /// Proxmox channels in use (`enterprise`, `no-subscription`, `test`).
    pub proxmox_channels: Option<Vec<String>>,
    /// `/run/reboot-required` exists.
    pub reboot_required: Option<bool>,
}

impl PackageState {
    /// Nothing was read (an assess does not read these; `update` does).
    pub fn is_unread(&self) -> bool {
        *self == PackageState::default()
    }
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
    /// The storages `/cluster/resources` marks as shared: one storage for the whole cluster,
    /// which every node reports on its own.
    pub fn shared_storages(&self) -> std::collections::BTreeSet<&str> {
        self.resources
            .iter()
            .filter(|r| r.kind == "storage" && r.shared == Some(true))
            .filter_map(|r| r.storage.as_deref())
            .collect()
    }

    /// Computes what is derived from the facts read: each guest's newest backup. Its time is
    /// the content API's `ctime` epoch. Without one (an older snapshot file), the name's time:
    /// vzdump names its files in the node's local time (pve-manager `PVE/VZDump.pm`,
    /// `localtime`), so such a name is read with the UTC offset of the node that listed the
    /// backups (else of any node that gave one; UTC when none did); PBS snapshot names are UTC.
    pub fn derive(&mut self) {
        let lister = self
            .nodes
            .iter()
            .find(|n| n.commands.iter().any(|c| c.name == "storage-content"))
            .and_then(|n| n.utc_offset_seconds);
        let offset = lister
            .or_else(|| self.nodes.iter().find_map(|n| n.utc_offset_seconds))
            .unwrap_or(0);
        let mut newest: std::collections::BTreeMap<u64, NewestBackup> = Default::default();
        for b in &self.backups {
            let (Some(vmid), Some(epoch)) = (b.vmid, backup_epoch(b, offset)) else {
                continue;
            };
            if newest.get(&vmid).is_none_or(|n| epoch > n.epoch) {
                newest.insert(
                    vmid,
                    NewestBackup {
                        vmid,
                        epoch,
                        volid: b.volid.clone(),
                        storage: b.storage.clone(),
                    },
                );
            }
        }
        self.newest_backups = newest.into_values().collect();
        self.ceph = self.derive_ceph();
        // `pvesr status` prints node-local times (`%Y-%m-%d_%H:%M:%S`, pve-manager
        // PVE/CLI/pvesr.pm `status`); the node's own offset makes them epochs.
        for n in &mut self.nodes {
            let offset = n.utc_offset_seconds.unwrap_or(0);
            for j in n.replication.iter_mut().flatten() {
                j.last_sync_epoch = j.last_sync.as_deref().and_then(|t| local_epoch(t, offset));
                j.next_sync_epoch = j.next_sync.as_deref().and_then(|t| local_epoch(t, offset));
            }
        }
    }

    /// The cluster's Ceph from each node's `ceph-status`: `/etc/pve/ceph.conf` is shared by
    /// pmxcfs, the health is the whole Ceph cluster's, the OSDs are each node's own.
    fn derive_ceph(&self) -> Option<CephCluster> {
        let read: Vec<(&NodeSnapshot, &CephStatus)> = self
            .nodes
            .iter()
            .filter_map(|n| n.ceph.as_ref().map(|c| (n, c)))
            .collect();
        if read.is_empty() {
            return None;
        }
        let mut c = CephCluster::default();
        for (n, s) in &read {
            let name = n.pve_node.clone().unwrap_or_else(|| n.name.clone());
            c.osds.insert(name.clone(), s.osds.clone());
            if c.health.is_none()
                && let Some(h) = &s.health
            {
                c.health = Some(h.clone());
                c.health_from = Some(name);
            }
        }
        c.state = if c.health.is_some() {
            CephState::Configured
        } else if read.iter().any(|(_, s)| s.config) {
            CephState::Unreachable
        } else {
            CephState::NotConfigured
        };
        if c.health.is_none() {
            c.error = read.iter().rev().find_map(|(_, s)| s.error.clone());
        }
        Some(c)
    }

    /// The newest backup of guest `vmid`, if it has one.
    /// Whether the upgrade checker ran (`assess --upgrade-checklist`): its nodes' results are
    /// a list, even an empty one, where a run without it has null. A verify against this
    /// snapshot runs it again.
    pub fn ran_upgrade_checklist(&self) -> bool {
        self.nodes.iter().any(|n| n.upgrade_checklist.is_some())
    }

    pub fn newest_backup(&self, vmid: u64) -> Option<&NewestBackup> {
        self.newest_backups.iter().find(|b| b.vmid == vmid)
    }

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
        let mut snap = snap;
        // A snapshot written before `newest_backups` existed: derive it as collect would.
        if snap.newest_backups.is_empty() && !snap.backups.is_empty() {
            snap.derive();
        }
        Ok(snap)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The cluster's members by PVE node name: `/cluster/resources`' nodes, else the members
    /// `pvecm status` lists, else (a standalone node) the PVE names of the nodes read. Empty
    /// when nothing says.
    pub fn members(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.kind == "node")
            .filter_map(|r| r.node.clone())
            .collect();
        if m.is_empty() {
            m = self
                .nodes
                .iter()
                .filter_map(|n| n.cluster.as_ref())
                .flat_map(|c| c.members.iter().map(|x| x.name.clone()))
                .filter(|n| !n.is_empty() && !n.contains('.') && !n.contains(':'))
                .collect();
        }
        if m.is_empty() {
            m = self
                .nodes
                .iter()
                .filter(|n| n.reachable)
                .filter_map(|n| n.pve_node.clone())
                .collect();
        }
        m.sort();
        m.dedup();
        m
    }

    /// The node whose target name or PVE node name is `name`.
    pub fn node(&self, name: &str) -> Option<&NodeSnapshot> {
        self.nodes
            .iter()
            .find(|n| n.name == name || n.pve_node.as_deref() == Some(name))
    }
}

/// A backup's Unix time: its own epoch (PBS), else its name's time: with an offset when the
/// name carries one, else as local time at `offset` seconds east of UTC.
fn backup_epoch(b: &Backup, offset: i32) -> Option<i64> {
    if let Some(e) = b.epoch {
        return Some(e);
    }
    let t = b.backup_time.as_deref()?;
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Some(ts.as_second());
    }
    let civil = t.parse::<jiff::civil::DateTime>().ok()?;
    let utc = civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_second();
    Some(utc - i64::from(offset))
}

/// `2026-01-05_14:30:01` in a node's local time (`offset` seconds east of UTC) as an epoch;
/// None for anything else (`pending`, `-`).
fn local_epoch(text: &str, offset: i32) -> Option<i64> {
    let dt = jiff::civil::DateTime::strptime("%Y-%m-%d_%H:%M:%S", text).ok()?;
    let ts = jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()?;
    Some(ts.as_second() - i64::from(offset))
}

#[cfg(test)]
mod derive_tests {
    use super::*;

    fn empty() -> Snapshot {
        Snapshot {
            format: FORMAT,
            taken_at: String::new(),
            status: Severity::Ok,
            pveops_version: String::new(),
            nodes: Vec::new(),
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        }
    }

    fn backup(volid: &str, time: &str, epoch: Option<i64>) -> Backup {
        Backup {
            volid: volid.into(),
            storage: "nas".into(),
            vmid: Some(100),
            backup_time: Some(time.into()),
            time_zone: Some(if epoch.is_some() { "utc" } else { "local" }.into()),
            epoch,
            ..Default::default()
        }
    }

    #[test]
    fn a_vzdump_name_is_local_time_of_the_listing_node() {
        let mut snap = Snapshot {
            nodes: vec![NodeSnapshot {
                name: "pve1".into(),
                utc_offset_seconds: Some(3600),
                commands: vec![CommandRecord {
                    name: "storage-content".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            backups: vec![
                backup(
                    "nas:backup/vzdump-qemu-100-2026_12_02-22_00_05.vma.zst",
                    "2026-12-02T22:00:05",
                    None,
                ),
                backup(
                    "nas:backup/vzdump-qemu-100-2026_12_01-22_00_05.vma.zst",
                    "2026-12-01T22:00:05",
                    None,
                ),
            ],
            ..empty()
        };
        snap.derive();
        let n = snap.newest_backup(100).unwrap();
        // 22:00:05 at +01:00 is 21:00:05 UTC.
        let expect: jiff::Timestamp = "2026-12-02T21:00:05Z".parse().unwrap();
        assert_eq!(n.epoch, expect.as_second());
        assert!(n.volid.contains("2026_12_02"));
    }

    #[test]
    fn a_pbs_snapshot_keeps_its_own_time_and_the_newest_wins() {
        let mut snap = Snapshot {
            backups: vec![
                backup(
                    "pbs:backup/vm/100/2026-12-03T02:00:00Z",
                    "2026-12-03T02:00:00Z",
                    Some(1_796_263_200),
                ),
                backup(
                    "nas:backup/vzdump-qemu-100-2026_12_02-22_00_05.vma.zst",
                    "2026-12-02T22:00:05",
                    None,
                ),
            ],
            ..empty()
        };
        snap.derive();
        assert_eq!(snap.newest_backup(100).unwrap().epoch, 1_796_263_200);
        assert!(snap.newest_backup(101).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_that_are_not_numbers_never_make_a_snapshot_unreadable() {
        use crate::facts::{node_rrddata, node_status, pvesm_status, qm_list};
        let vms = qm_list::parse(
            "VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n 101 a running 4096 NaN 9\n",
        )
        .unwrap();
        let status =
            node_status::parse(r#"{"cpu":"NaN","loadavg":["inf","0.61","0.70"],"uptime":60}"#)
                .unwrap();
        let storages = pvesm_status::parse(
            "Name Type Status Total Used Available %\nlocal dir active 100 50 50 NaN%\n",
        )
        .unwrap();
        let load = node_rrddata::parse(r#"[{"time":60,"cpu":"NaN","iowait":"inf"}]"#).unwrap();
        assert!(storages.storages[0].used_pct.is_some_and(f64::is_nan));
        assert!(load.latest.as_ref().is_some_and(|l| l.cpu.is_nan()));
        let snap = Snapshot {
            nodes: vec![NodeSnapshot {
                name: "pve1".into(),
                vms: vms.vms.iter().map(Vm::from).collect(),
                node_status: Some(NodeStatus::from(&status)),
                storages: storages.storages.iter().map(Storage::from).collect(),
                load: Some(NodeLoad::from(&load)),
                ..Default::default()
            }],
            format: FORMAT,
            taken_at: String::new(),
            status: Severity::Ok,
            pveops_version: String::new(),
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        };
        // What `Snapshot::load` does with the file `Snapshot::to_json` wrote.
        let back: Snapshot = serde_json::from_str(&snap.to_json()).unwrap();
        assert_eq!(back, snap);
        let n = &back.nodes[0];
        assert_eq!((n.vms[0].vmid, n.vms[0].bootdisk_gib), (101, 0.0));
        assert_eq!(n.node_status.as_ref().map(|s| s.uptime), Some(Some(60)));
    }
}
