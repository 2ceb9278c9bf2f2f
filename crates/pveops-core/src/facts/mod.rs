//! Facts: pure parsers that turn the text PVE commands print into typed, serialisable
//! structs (the `pveops parse` kinds). The ground truth for every format is
//! `shared/spec/FORMATS.md`; each quirk is handled where it occurs, with a comment citing it.
//! No parser does I/O, and none may panic on any input: the lints below forbid the usual ways.
//!
//! A command's file also holds what the snapshot keeps of it, and a `From` that builds it from
//! the parser's output. Each `From` names every field of the fact, kept or dropped, so a field
//! added to or renamed in a parser is a compile error there, never a silently empty snapshot
//! field; a type the fact shares with the snapshot (`pct_list::Container`, `lslocks::Lock`)
//! is stored as it is.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

use std::fmt;

use serde::Serialize;

mod common;
pub mod stderr;

/// Debian-ish version order, for the plan's version gates (the same the parsers use).
pub(crate) use common::version_cmp;

pub mod apt_cache_show;
pub mod apt_get;
pub mod apt_lists;
pub mod apt_log;
pub mod apt_policy;
pub mod backup_list;
pub mod ceph_status;
pub mod cert_info;
pub mod cluster_options;
pub mod corosync_cfgtool;
pub mod df;
pub mod disks_list;
pub mod dpkg_audit;
pub mod guest_config;
pub mod guest_status;
pub mod ha_groups;
pub mod ha_manager_status;
pub mod ha_resources;
pub mod ha_rules;
pub mod lslocks;
pub mod migrate_preflight;
pub mod node_identity;
pub mod node_rrddata;
pub mod node_status;
pub mod pct_config;
pub mod pct_list;
pub mod pct_status;
pub mod pvecm_nodes;
pub mod pvecm_status;
pub mod pvesh;
pub mod pvesm_status;
pub mod pvesr_status;
pub mod pveversion;
pub mod qm_config;
pub mod qm_list;
pub mod qm_status;
pub mod reboot_required;
pub mod storage_content;
pub mod subscription;
pub mod systemctl_is_active;
pub mod task_log;
pub mod tasks;
pub mod upgrade_checklist;
pub mod utc_offset;
pub mod zpool_status;

/// Output a parser cannot read: which kind, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: &'static str,
    /// 1-based line number; 0 when the problem is the input as a whole (e.g. empty).
    pub line: usize,
    /// The offending line.
    pub text: String,
    pub reason: String,
}

impl ParseError {
    pub fn new(kind: &'static str, line: usize, text: &str, reason: impl Into<String>) -> Self {
        ParseError {
            kind,
            line,
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Long lines are cut in the one-line message; the full line stays in `text`.
const SHOWN_CHARS: usize = 160;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: cannot read the input: {}", self.kind, self.reason);
        }
        let mut shown: String = self.text.chars().take(SHOWN_CHARS).collect();
        if self.text.chars().count() > SHOWN_CHARS {
            shown.push('…');
        }
        write!(
            f,
            "{}: line {}: cannot read {:?}: {}",
            self.kind, self.line, shown, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// When a catalog read runs (`collect` in the `pveops` crate sends them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On every node, in every assessment.
    Node,
    /// On every node, for the monitoring checks (load, disks, tasks, replication,
    /// subscription, certificates). A PVE release without the API path (`pvesh`: "No 'get'
    /// handler defined", PVE/RESTHandler.pm) simply lacks the fact: no finding.
    Monitoring,
    /// On every node, when a package upgrade is assessed (`pveops update`).
    PackageState,
    /// On every node, with `--upgrade-checklist`.
    UpgradeChecklist,
    /// Once per cluster, on the first node that answers (pmxcfs shows every member the same).
    Cluster,
    /// Once per backup storage, with the storage as the template's `storage`.
    Storage,
}

/// Where a read's output is kept: the node's snapshot, or the lists read once per cluster.
pub struct Keep<'a> {
    pub node: &'a mut crate::snapshot::NodeSnapshot,
    pub resources: &'a mut Vec<pvesh::Resource>,
    pub backups: &'a mut Vec<storage_content::Backup>,
}

/// One read of the catalog, declared in the facts file of its command beside the parser: its
/// template, when it runs, the template's variables, and what the snapshot keeps of it.
pub struct Read {
    /// The template (`templates/commands/NAME.hbs`), also the name of the command record.
    pub template: &'static str,
    pub scope: Scope,
    /// The template's variables (most have none: [`no_vars`]).
    pub vars: fn() -> serde_json::Value,
    /// Parses the output into the snapshot; the error is one sentence (the parser's).
    pub keep: fn(&crate::output::Output, &mut Keep<'_>) -> Result<(), String>,
}

/// The variables of a template that has none.
pub fn no_vars() -> serde_json::Value {
    serde_json::json!({})
}

/// Every read of the catalog, in the order a node runs them (the snapshot's command records
/// keep this order).
pub const READS: &[Read] = &[
    pvecm_status::READ,
    pvesm_status::READ,
    qm_list::READ,
    pct_list::READ,
    ha_manager_status::READ,
    pveversion::READ,
    node_identity::BOOT_ID,
    node_identity::HOSTNAME,
    utc_offset::READ,
    apt_get::READ,
    apt_lists::READ,
    ceph_status::READ,
    dpkg_audit::READ,
    apt_policy::READ,
    node_status::READ,
    node_rrddata::READ,
    disks_list::READ,
    tasks::FAILED,
    tasks::RUNNING,
    pvesr_status::READ,
    subscription::READ,
    cert_info::READ,
    systemctl_is_active::READ,
    upgrade_checklist::READ,
    lslocks::READ,
    reboot_required::READ,
    pvesh::CLUSTER_RESOURCES,
    storage_content::READ,
];

/// The catalog read of template `template`, if it is one.
pub fn read(template: &str) -> Option<&'static Read> {
    READS.iter().find(|r| r.template == template)
}

/// Every kind `parse` knows, with a one-line description (`pveops parse --list`).
pub const KINDS: &[(&str, &str)] = &[
    (
        pvecm_status::KIND,
        "pvecm status: quorum, votes, flags, members, qdevice; no-cluster/corosync-down/pmxcfs-down states",
    ),
    (
        pvecm_nodes::KIND,
        "pvecm nodes: members of this node's partition",
    ),
    (
        pvesm_status::KIND,
        "pvesm status: storages with status and sizes in bytes, storage errors from STDERR",
    ),
    (qm_list::KIND, "qm list [--full]: VMs of this node"),
    (
        pct_list::KIND,
        "pct list: containers of this node with their lock",
    ),
    (
        qm_config::KIND,
        "qm config ID: VM configuration, description/sshkeys decoded",
    ),
    (
        pct_config::KIND,
        "pct config ID: container configuration and raw lxc.* keys in order",
    ),
    (
        qm_status::KIND,
        "qm status ID [--verbose]: VM status and every other field",
    ),
    (
        pct_status::KIND,
        "pct status ID [--verbose]: container status and every other field",
    ),
    (
        ha_manager_status::KIND,
        "ha-manager status: quorum, master, fencing, LRMs, services",
    ),
    (
        pveversion::KIND,
        "pveversion: manager version and running kernel",
    ),
    (
        pveversion::KIND_V,
        "pveversion -v: package versions, kernels, reboot pending",
    ),
    (
        upgrade_checklist::KIND,
        "pve8to9 / pve7to8 [--full]: check results by section and the summary",
    ),
    (
        corosync_cfgtool::KIND,
        "corosync-cfgtool -s (or -n): links and peer states",
    ),
    (
        task_log::KIND,
        "output of qm/pct migrate/start/shutdown: task lines and outcome",
    ),
    (
        pvesh::KIND_CLUSTER_STATUS,
        "pvesh get /cluster/status --output-format json",
    ),
    (
        pvesh::KIND_CLUSTER_RESOURCES,
        "pvesh get /cluster/resources --output-format json",
    ),
    (
        pvesh::KIND_NODES_STORAGE,
        "pvesh get /nodes/NODE/storage --output-format json",
    ),
    (
        pvesh::KIND_HA_STATUS,
        "pvesh get /cluster/ha/status/current --output-format json",
    ),
    (
        systemctl_is_active::KIND,
        "systemctl is-active UNIT...: one state per unit",
    ),
    (
        zpool_status::KIND,
        "zpool status -x: healthy, or each unhealthy pool with its devices",
    ),
    (
        backup_list::KIND,
        "pvesm list STORAGE --content backup: backups with VMID and time (vzdump and PBS)",
    ),
    (
        stderr::KIND,
        "STDERR of any PVE command: known errors as codes and sentences",
    ),
    (
        apt_get::KIND,
        "apt-get -s dist-upgrade: packages to install, upgrade, remove, keep back; new kernels",
    ),
    (
        apt_lists::KIND,
        "date +%s; stat -c '%Y %n' of apt's lists and cache: when the lists were refreshed",
    ),
    (
        apt_log::KIND,
        "apt-get -y dist-upgrade's log: packages unpacked and set up, dpkg's and apt's errors",
    ),
    (
        apt_policy::KIND,
        "apt-cache policy: the package indexes in use, Proxmox channels named",
    ),
    (
        dpkg_audit::KIND,
        "dpkg --audit: packages left half installed or half configured",
    ),
    (
        lslocks::KIND,
        "lslocks --json --output COMMAND,PID,PATH: lock holders, apt's and dpkg's picked out",
    ),
    (
        apt_cache_show::KIND,
        "apt-cache show PKG=VERSION...: each version's record, Size (bytes) and Installed-Size (KiB)",
    ),
    (
        df::KIND,
        "df -B1 --output=avail,target PATH...: free bytes on the mount holding each path",
    ),
    (
        utc_offset::KIND,
        "date +%z: the node's UTC offset, for the local times in vzdump file names",
    ),
    (
        migrate_preflight::KIND,
        "pvesh get /nodes/N/{qemu,lxc}/ID/migrate: allowed targets, blocking reasons, local disks",
    ),
    (
        storage_content::KIND,
        "pvesh get /nodes/N/storage/S/content --content backup: volumes with ctime (epoch)",
    ),
    (
        ceph_status::KIND,
        "PVE's Ceph config and the node's OSDs (stat), then ceph health --format json: not-configured/configured/unreachable, noout",
    ),
    (
        cluster_options::KIND,
        "pvesh get /cluster/options --output-format json: datacenter.cfg options (max_workers)",
    ),
    (
        ha_rules::KIND,
        "pvesh get /cluster/ha/rules --output-format json: HA node/resource-affinity rules (PVE 9)",
    ),
    (
        ha_groups::KIND,
        "pvesh get /cluster/ha/groups --output-format json: HA groups, restricted or not (PVE 8)",
    ),
    (
        ha_resources::KIND,
        "pvesh get /cluster/ha/resources --output-format json: HA resources with state and group",
    ),
    (
        node_status::KIND,
        "pvesh get /nodes/NODE/status --output-format json: CPU, load, memory, swap, rootfs in bytes, versions",
    ),
    (
        node_rrddata::KIND,
        "pvesh get /nodes/NODE/rrddata --timeframe hour --output-format json: the node's CPU and IO wait from pvestatd's RRD (latest, means)",
    ),
    (
        disks_list::KIND,
        "pvesh get /nodes/NODE/disks/list --output-format json: disks with type, size, SMART health, wearout (% life left)",
    ),
    (
        tasks::KIND,
        "pvesh get /nodes/NODE/tasks (or /cluster/tasks) --output-format json: tasks with status and outcome",
    ),
    (
        pvesr_status::KIND,
        "pvesr status: replication jobs with last/next sync, duration, fail count, state",
    ),
    (
        subscription::KIND,
        "pvesubscription get: subscription status, level, key, due date and every field",
    ),
    (
        cert_info::KIND,
        "pvenode cert info --output-format json: the node's certificates with validity (epochs) and SANs",
    ),
];

fn to_json<T: Serialize>(
    kind: &'static str,
    r: Result<T, ParseError>,
) -> Result<serde_json::Value, ParseError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| {
            ParseError::new(
                kind,
                0,
                "",
                format!("cannot represent the result as JSON: {e}"),
            )
        })
    })
}

/// Parses `text` as `kind` and returns its JSON. An unknown kind is an error with line 0.
pub fn parse(kind: &str, text: &str) -> Result<serde_json::Value, ParseError> {
    match kind {
        "pvecm-status" => to_json(pvecm_status::KIND, pvecm_status::parse(text)),
        "pvecm-nodes" => to_json(pvecm_nodes::KIND, pvecm_nodes::parse(text)),
        "pvesm-status" => to_json(pvesm_status::KIND, pvesm_status::parse(text)),
        "qm-list" => to_json(qm_list::KIND, qm_list::parse(text)),
        "pct-list" => to_json(pct_list::KIND, pct_list::parse(text)),
        "qm-config" => to_json(qm_config::KIND, qm_config::parse(text)),
        "pct-config" => to_json(pct_config::KIND, pct_config::parse(text)),
        "qm-status" => to_json(qm_status::KIND, qm_status::parse(text)),
        "pct-status" => to_json(pct_status::KIND, pct_status::parse(text)),
        "ha-manager-status" => to_json(ha_manager_status::KIND, ha_manager_status::parse(text)),
        "pveversion" => to_json(pveversion::KIND, pveversion::parse(text)),
        "pveversion-v" => to_json(pveversion::KIND_V, pveversion::parse_v(text)),
        "upgrade-checklist" => to_json(upgrade_checklist::KIND, upgrade_checklist::parse(text)),
        "corosync-cfgtool" => to_json(corosync_cfgtool::KIND, corosync_cfgtool::parse(text)),
        "task-log" => to_json(task_log::KIND, task_log::parse(text)),
        "pvesh-cluster-status" => to_json(
            pvesh::KIND_CLUSTER_STATUS,
            pvesh::parse_cluster_status(text),
        ),
        "pvesh-cluster-resources" => to_json(
            pvesh::KIND_CLUSTER_RESOURCES,
            pvesh::parse_cluster_resources(text),
        ),
        "pvesh-nodes-storage" => {
            to_json(pvesh::KIND_NODES_STORAGE, pvesh::parse_nodes_storage(text))
        }
        "pvesh-ha-status" => to_json(pvesh::KIND_HA_STATUS, pvesh::parse_ha_status(text)),
        "systemctl-is-active" => {
            to_json(systemctl_is_active::KIND, systemctl_is_active::parse(text))
        }
        "zpool-status" => to_json(zpool_status::KIND, zpool_status::parse(text)),
        "backup-list" => to_json(backup_list::KIND, backup_list::parse(text)),
        "pve-stderr" => to_json(stderr::KIND, stderr::parse(text)),
        "apt-simulate" => to_json(apt_get::KIND, apt_get::parse(text)),
        "apt-lists-stamp" => to_json(apt_lists::KIND, apt_lists::parse(text)),
        "apt-policy" => to_json(apt_policy::KIND, apt_policy::parse(text)),
        "apt-upgrade-log" => to_json(apt_log::KIND, apt_log::parse(text)),
        "dpkg-audit" => to_json(dpkg_audit::KIND, dpkg_audit::parse(text)),
        "lslocks" => to_json(lslocks::KIND, lslocks::parse(text)),
        "apt-cache-show" => to_json(apt_cache_show::KIND, apt_cache_show::parse(text)),
        "df" => to_json(df::KIND, df::parse(text)),
        "utc-offset" => to_json(utc_offset::KIND, utc_offset::parse(text)),
        "migrate-preflight" => to_json(migrate_preflight::KIND, migrate_preflight::parse(text)),
        "ha-rules" => to_json(ha_rules::KIND, ha_rules::parse(text)),
        "cluster-options" => to_json(cluster_options::KIND, cluster_options::parse(text)),
        "ha-groups" => to_json(ha_groups::KIND, ha_groups::parse(text)),
        "ha-resources" => to_json(ha_resources::KIND, ha_resources::parse(text)),
        "storage-content" => to_json(storage_content::KIND, storage_content::parse(text)),
        "ceph-status" => to_json(ceph_status::KIND, ceph_status::parse(text)),
        "node-status" => to_json(node_status::KIND, node_status::parse(text)),
        "node-rrddata" => to_json(node_rrddata::KIND, node_rrddata::parse(text)),
        "disks-list" => to_json(disks_list::KIND, disks_list::parse(text)),
        "tasks" => to_json(tasks::KIND, tasks::parse(text)),
        "pvesr-status" => to_json(pvesr_status::KIND, pvesr_status::parse(text)),
        "subscription" => to_json(subscription::KIND, subscription::parse(text)),
        "cert-info" => to_json(cert_info::KIND, cert_info::parse(text)),
        other => Err(ParseError::new(
            "parse",
            0,
            other,
            format!("unknown kind \"{other}\" (pveops parse --list shows the kinds)"),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    /// Every catalog read renders from its embedded template with its variables, once each.
    #[test]
    fn every_read_has_its_template_and_one_place() {
        let templates = crate::command::Templates::load(None).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in READS {
            assert!(seen.insert(r.template), "{} is read twice", r.template);
            let mut vars = (r.vars)();
            if r.scope == Scope::Storage {
                vars = serde_json::json!({ "storage": "backup" });
            }
            let c = templates.render(r.template, &vars).unwrap();
            assert_eq!(c.name, r.template);
            assert!(read(r.template).is_some());
        }
    }

    /// Fixture file name prefix → kind. Longest prefixes first where they overlap.
    const FIXTURE_KINDS: &[(&str, &str)] = &[
        ("pvecm-status.", "pvecm-status"),
        ("corosync-quorumtool-p.", "pvecm-status"),
        ("pvecm-nodes.", "pvecm-nodes"),
        ("pvesm-status.", "pvesm-status"),
        ("pvesm-list.", "backup-list"),
        ("qm-list.", "qm-list"),
        ("pct-list.", "pct-list"),
        ("qm-config.", "qm-config"),
        ("pct-config.", "pct-config"),
        ("qm-status-verbose.", "qm-status"),
        ("qm-status.", "qm-status"),
        ("pct-status-verbose.", "pct-status"),
        ("pct-status.", "pct-status"),
        ("ha-manager-status.", "ha-manager-status"),
        ("pveversion-v.", "pveversion-v"),
        ("pveversion.", "pveversion"),
        ("pve8to9", "upgrade-checklist"),
        ("pve7to8", "upgrade-checklist"),
        ("pve6to7", "upgrade-checklist"),
        ("corosync-cfgtool-", "corosync-cfgtool"),
        ("qm-migrate.", "task-log"),
        ("pct-migrate.", "task-log"),
        ("qm-start.", "task-log"),
        ("qm-shutdown.", "task-log"),
        ("pct-start.", "task-log"),
        ("pvesh-get-cluster-status.json", "pvesh-cluster-status"),
        (
            "pvesh-get-cluster-resources.json",
            "pvesh-cluster-resources",
        ),
        ("pvesh-get-nodes-storage.json", "pvesh-nodes-storage"),
        ("pvesh-get-cluster-ha-status.json", "pvesh-ha-status"),
        ("systemctl-is-active.", "systemctl-is-active"),
        ("zpool-status-x.", "zpool-status"),
        ("apt-get-s-dist-upgrade.", "apt-simulate"),
        ("apt-lists-stamp.", "apt-lists-stamp"),
        ("apt-cache-policy.", "apt-policy"),
        ("apt-get-y-dist-upgrade.", "apt-upgrade-log"),
        ("dpkg-audit.", "dpkg-audit"),
        ("lslocks.", "lslocks"),
        ("apt-cache-show.", "apt-cache-show"),
        ("df.", "df"),
        ("date-z.", "utc-offset"),
        ("pvesh-get-migrate.", "migrate-preflight"),
        ("pvesh-get-cluster-ha-rules.json", "ha-rules"),
        ("pvesh-get-cluster-options.json", "cluster-options"),
        ("pvesh-get-cluster-ha-groups.json", "ha-groups"),
        ("pvesh-get-cluster-ha-resources.json", "ha-resources"),
        ("pvesh-get-storage-content.", "storage-content"),
        ("ceph-status.", "ceph-status"),
        ("pvesh-get-nodes-status.json", "node-status"),
        ("pvesh-get-nodes-rrddata.json", "node-rrddata"),
        ("pvesh-get-disks-list.json", "disks-list"),
        ("pvesh-get-nodes-tasks.json", "tasks"),
        ("pvesh-get-cluster-tasks.json", "tasks"),
        ("pvesr-status.", "pvesr-status"),
        ("pvesubscription-get.", "subscription"),
        ("pvenode-cert-info.json", "cert-info"),
    ];

    fn kind_for(name: &str) -> Option<&'static str> {
        // STDERR captures of pvesm are read as STDERR; pvecm and task STDERR go through their
        // own kind, which turns them into a state (no cluster, corosync down, failed task).
        if name.starts_with("pvesm-status.") && name.contains(".stderr") {
            return Some("pve-stderr");
        }
        FIXTURE_KINDS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map(|(_, k)| *k)
    }

    fn fixtures() -> Vec<(String, String)> {
        let dir =
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("tests/fixtures/pve");
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("tests/fixtures/pve exists")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let bytes = std::fs::read(&p).unwrap();
                (name, String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_fixture_matches_its_reviewed_snapshot() {
        let mut covered = 0;
        for (name, text) in fixtures() {
            let Some(kind) = kind_for(&name) else {
                continue;
            };
            let value = parse(kind, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let snap = name.trim_end_matches(".txt").to_owned();
            insta::with_settings!({
                snapshot_path => "snapshots",
                prepend_module_to_snapshot => false,
                info => &kind,
            }, {
                insta::assert_json_snapshot!(snap, value);
            });
            covered += 1;
        }
        assert!(covered >= 40, "only {covered} fixtures covered");
    }

    #[test]
    fn every_fixture_has_its_provenance() {
        for (name, _) in fixtures() {
            let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("tests/fixtures/pve")
                .join(name.replace(".txt", ".src"));
            assert!(src.exists(), "{name} has no .src");
        }
    }

    #[test]
    fn kinds_list_and_dispatch_agree() {
        for (kind, desc) in KINDS {
            assert!(!desc.is_empty());
            let e = parse(kind, "\u{1}garbage\u{1}\n").err();
            assert_ne!(
                e.map(|e| e.kind),
                Some("parse"),
                "{kind} is listed but not dispatched"
            );
        }
        for (_, kind) in FIXTURE_KINDS {
            assert!(KINDS.iter().any(|(k, _)| k == kind), "{kind} not listed");
        }
    }

    #[test]
    fn unknown_kind_is_line_zero() {
        let e = parse("nope", "x").unwrap_err();
        assert_eq!(e.line, 0);
        assert_eq!(
            e.to_string(),
            "parse: cannot read the input: unknown kind \"nope\" (pveops parse --list shows the kinds)"
        );
    }

    #[test]
    fn display_is_one_sentence_with_kind_line_and_text() {
        let e = parse(
            "pvesm-status",
            "Name Type Status Total Used Available %\nlocal dir active x 1 1 1%\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "pvesm-status: line 2: cannot read \"local dir active x 1 1 1%\": the total size is not a number"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn stderr_fixtures_become_precise_states() {
        let all = fixtures();
        let get = |n: &str| {
            all.iter()
                .find(|(name, _)| name == n)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let s = pvecm_status::parse(&get("pvecm-status.no-cluster.stderr.txt")).unwrap();
        assert_eq!(s.state, "no-cluster");
        assert_eq!(
            s.error.as_deref(),
            Some("this node is not part of a cluster (/etc/pve/corosync.conf does not exist)")
        );
        let s = pvecm_status::parse(&get("pvecm-status.pmxcfs-down.stderr.txt")).unwrap();
        assert_eq!(s.state, "pmxcfs-down");
        let s =
            pvecm_status::parse(&get("pvecm-status.corosync-down.stderr.constructed.txt")).unwrap();
        assert_eq!(s.state, "corosync-down");
        // The stdout half alone (Cluster information, then nothing) says the same.
        let s = pvecm_status::parse(&get("pvecm-status.corosync-down.constructed.txt")).unwrap();
        assert_eq!(
            (s.state, s.cluster_name.as_deref(), s.quorate),
            ("corosync-down", Some("prod-cluster"), None)
        );
        let st = pvesm_status::parse_with_stderr(
            &get("pvesm-status.nfs-offline-notmounted.constructed.txt"),
            &get("pvesm-status.nfs-offline-notmounted.stderr.constructed.txt"),
        )
        .unwrap();
        let by = |n: &str| st.storages.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(
            by("backup-nas").error.as_deref(),
            Some("storage backup-nas is not online (its server does not answer)")
        );
        assert_eq!(
            by("usb-dump").error.as_deref(),
            Some("storage usb-dump is not mounted although it is configured as a mount point")
        );
        assert_eq!(by("local").error, None);
        let t = task_log::parse_with_stderr(
            "",
            &get("qm-start.already-running.stderr.constructed.txt"),
            Some(255),
        )
        .unwrap();
        assert_eq!(
            (t.outcome, t.error.as_deref()),
            ("error", Some("guest 100 is already running"))
        );
        let t = task_log::parse_with_stderr(
            "",
            &get("qm-shutdown.timeout.stderr.constructed.txt"),
            Some(255),
        )
        .unwrap();
        assert_eq!(
            t.error.as_deref(),
            Some("the guest did not shut down before the timeout")
        );
    }

    #[test]
    fn checklist_counts_agree_with_the_printed_summary() {
        for (name, text) in fixtures()
            .into_iter()
            .filter(|(n, _)| n.starts_with("pve8to9") || n.starts_with("pve7to8"))
        {
            let c = upgrade_checklist::parse(&text).unwrap();
            let n = |l: &str| c.results.iter().filter(|r| r.level == l).count() as u64;
            assert!(c.complete, "{name}");
            assert_eq!(n("PASS"), c.summary.passed, "{name}");
            assert_eq!(n("SKIP"), c.summary.skipped, "{name}");
            assert_eq!(n("WARN"), c.summary.warnings, "{name}");
            assert_eq!(n("FAIL"), c.summary.failures, "{name}");
            assert_eq!(n("NOTICE"), c.summary.notices, "{name}");
        }
    }

    #[test]
    fn locale_warnings_before_any_output_are_skipped() {
        let warn = "perl: warning: Setting locale failed.\nperl: warning: Please check that your locale settings:\n\tLANGUAGE = (unset),\n\tLC_ALL = (unset),\n\tLANG = \"en_US.UTF-8\"\n    are supported and installed on your system.\nperl: warning: Falling back to a fallback locale (\"en_US.UTF-8\").\n";
        let cases = [
            (
                "pvesm-status",
                "Name Type Status Total Used Available %\nlocal dir active 1 1 0 100.00%\n",
            ),
            (
                "qm-list",
                "VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n 100 a running 1 1.00 5\n",
            ),
            ("pct-list", "VMID Status Lock Name\n100 running  a\n"),
            ("qm-config", "name: a\n"),
            (
                "pveversion",
                "pve-manager/8.4.11/14a32011146091ed (running kernel: 6.8.12-8-pve)\n",
            ),
            (
                "pveversion-v",
                "proxmox-ve: 8.4.0 (running kernel: 6.8.12-8-pve)\n",
            ),
            ("ha-manager-status", "quorum OK\n"),
            (
                "pvecm-status",
                "Quorum information\nQuorate:          Yes\n",
            ),
            (
                "pvesh-cluster-status",
                "[{\"id\":\"node/a\",\"name\":\"a\",\"type\":\"node\"}]\n",
            ),
            ("systemctl-is-active", "active\n"),
            ("zpool-status", "all pools are healthy\n"),
        ];
        for (kind, body) in cases {
            let with =
                parse(kind, &format!("{warn}{body}")).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let without = parse(kind, body).unwrap();
            // Only line numbers recorded in diagnostics may differ; these bodies have none.
            assert_eq!(with, without, "{kind}");
        }
    }

    #[test]
    fn every_fixture_truncated_at_every_line_never_panics() {
        for (_, text) in fixtures() {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for n in 0..=lines.len() {
                let prefix: String = lines.iter().take(n).copied().collect();
                for (kind, _) in KINDS {
                    let _ = parse(kind, &prefix);
                }
            }
        }
    }

    /// Inputs found by the cargo-fuzz targets (docs/fuzzing.md), minimised, one folder per
    /// kind: `tests/fixtures/fuzz/<kind>/<short-name>`. Each once panicked (or hung) in its
    /// parser; now it must parse to a value or to a ParseError of that kind with a reason and
    /// a line number inside the input.
    #[test]
    fn fuzz_regressions_parse_without_panic() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/fixtures/fuzz");
        let mut checked = 0;
        for dir in std::fs::read_dir(&root).expect("tests/fixtures/fuzz exists") {
            let dir = dir.unwrap().path();
            let kind = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                KINDS.iter().any(|(k, _)| *k == kind),
                "tests/fixtures/fuzz/{kind} is not a kind"
            );
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().path();
                let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
                let started = std::time::Instant::now();
                let result = std::panic::catch_unwind(|| parse(&kind, &text));
                let name = file.display();
                let result = result.unwrap_or_else(|_| panic!("{name}: the parser panicked"));
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(5),
                    "{name}: took {:?}",
                    started.elapsed()
                );
                match result {
                    Ok(v) => assert!(v.is_object() || v.is_array(), "{name}: {v}"),
                    Err(e) => {
                        assert_eq!(e.kind, kind, "{name}");
                        assert!(!e.reason.is_empty(), "{name}");
                        assert!(e.line <= text.lines().count(), "{name}: {e}");
                    }
                }
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "no fuzz regression inputs under {}",
            root.display()
        );
    }

    fn pve_fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Quorum information".to_owned()),
            Just("Membership information".to_owned()),
            Just("    Nodeid      Votes    Qdevice Name".to_owned()),
            Just("0x00000000          0            Qdevice (votes 1)".to_owned()),
            Just("Name Type Status Total (KiB) Used (KiB) Available (KiB) %".to_owned()),
            Just("VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID".to_owned()),
            Just("VMID Status Lock Name".to_owned()),
            Just("= SUMMARY =".to_owned()),
            Just("LINK ID 0 udp".to_owned()),
            Just("config:".to_owned()),
            Just("\tNAME STATE READ WRITE CKSUM".to_owned()),
            Just("Volid Format Type Size VMID".to_owned()),
            Just("full cluster state:".to_owned()),
            Just("perl: warning: Please check that your locale settings:".to_owned()),
            "[ \t]{0,3}[a-zA-Z0-9:()%,./_ -]{0,40}",
            "\\PC{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            for (kind, _) in KINDS {
                let _ = parse(kind, &s);
            }
        }

        #[test]
        fn pve_like_line_soup_never_panics(lines in prop::collection::vec(pve_fragment(), 0..24)) {
            let text = lines.join("\n");
            for (kind, _) in KINDS {
                let _ = parse(kind, &text);
            }
        }
    }
}
