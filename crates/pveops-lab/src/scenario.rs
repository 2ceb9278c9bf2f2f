//! Built-in scenarios: healthy, degraded, no-quorum, HA and fleet clusters, built from one
//! healthy template and small, named changes. `lab/scenarios/*.json` holds the same documents
//! for reading and editing (`pveops lab --dump-scenario NAME`); a test keeps them equal.

use std::collections::BTreeMap;

use super::state::{
    Apt, AptPackage, Backup, Cluster, ClusterInfo, Guest, GuestKind, Ha, Node, Storage,
    StorageOnNode, Timing,
};

/// The names of the built-in scenarios.
pub const NAMES: &[&str] = &[
    "healthy-3node",
    "degraded-3node",
    "noquorum-3node",
    "ha-5node",
    "fleet-50",
    "updates-4node",
    "pve9-3node",
    "hyperconverged-3node",
];

const GIB: u64 = 1 << 30;

/// A built-in scenario by name.
pub fn builtin(name: &str) -> Option<Cluster> {
    Some(match name {
        "healthy-3node" => healthy(3),
        "degraded-3node" => degraded(),
        "noquorum-3node" => noquorum(),
        "ha-5node" => ha(5),
        "fleet-50" => healthy(50),
        "updates-4node" => updates(),
        "pve9-3node" => pve9(),
        "hyperconverged-3node" => hyperconverged(),
        _ => return None,
    })
}

fn services(clustered: bool) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for u in [
        "pve-cluster",
        "pvedaemon",
        "pveproxy",
        "pvestatd",
        "pve-ha-lrm",
        "pve-ha-crm",
        "pvescheduler",
    ] {
        m.insert(u.to_string(), "active".to_string());
    }
    m.insert(
        "corosync".into(),
        if clustered { "active" } else { "inactive" }.into(),
    );
    m
}

fn packages() -> BTreeMap<String, String> {
    [
        ("ceph-fuse", "19.2.3-pve1"),
        ("corosync", "3.1.9-pve2"),
        ("libpve-cluster-perl", "9.0.7"),
        ("libpve-common-perl", "9.0.15"),
        ("libpve-guest-common-perl", "6.0.2"),
        ("libpve-storage-perl", "9.1.0"),
        ("lxc-pve", "6.0.5-3"),
        ("proxmox-backup-client", "4.1.0-1"),
        ("proxmox-kernel-helper", "9.0.4"),
        ("pve-cluster", "9.0.7"),
        ("pve-container", "6.0.18"),
        ("pve-ha-manager", "5.1.3"),
        ("pve-qemu-kvm", "10.1.2-4"),
        ("qemu-server", "9.1.2"),
        ("zfsutils-linux", "2.3.4-pve1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn node(i: u32) -> Node {
    Node {
        name: format!("pve{i}"),
        nodeid: i,
        osds: Vec::new(),
        ip: format!("10.10.10.{}", 10 + i),
        votes: 1,
        online: true,
        manager_version: "9.1.1".into(),
        repoid: "42db4a6cf33dac83".into(),
        kernel_running: "6.17.2-2-pve".into(),
        kernels_installed: vec!["6.17.2-2-pve".into(), "6.14.11-4-pve".into()],
        packages: packages(),
        services: services(true),
        memory_total: 128 * GIB,
        memory_base: 6 * GIB,
        cpus: 32,
        zpool: None,
        boot_id: format!("5eed{i:04x}-0000-4000-8000-00000000{i:04x}"),
        booted: None,
        lrm: Some("active".into()),
        faults: Default::default(),
        partition: 0,
        subscription: String::new(),
        lrm_timestamp: None,
        stats: BTreeMap::new(),
        apt_stderr: Vec::new(),
        apt: Default::default(),
        utc_offset_minutes: 0,
        memory_used: None,
        swap_total: None,
        swap_used: 0,
        cpu_usage: 0.0,
        io_wait: 0.0,
        disks: None,
        tasks: Vec::new(),
        subscription_info: Default::default(),
        certs: Default::default(),
    }
}

fn storage(id: &str, kind: &str, shared: bool, content: &str, total: u64, used: u64) -> Storage {
    Storage {
        id: id.into(),
        kind: kind.into(),
        shared,
        enabled: true,
        content: content.into(),
        nodes: None,
        monhost: None,
        total,
        used,
        avail: None,
        per_node: BTreeMap::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn guest(
    vmid: u32,
    kind: GuestKind,
    name: &str,
    node: &str,
    running: bool,
    mem_gib: u64,
    disk_gib: u64,
    disk: &str,
) -> Guest {
    Guest {
        vmid,
        kind,
        name: Some(name.into()),
        node: node.into(),
        status: if running { "running" } else { "stopped" }.into(),
        maxmem: mem_gib * GIB,
        maxdisk: disk_gib * GIB,
        disks: vec![disk.into()],
        lock: None,
        ha: None,
        pid: running.then_some(4000 + vmid),
        config: BTreeMap::new(),
        // A nightly backup to PBS 20 hours before the lab starts (relative times are fixed
        // when the lab writes its state).
        backups: vec![Backup {
            storage: "pbs".into(),
            time: "-20h".into(),
            size: disk_gib * GIB / 3,
        }],
        ha_origin: None,
        stats: BTreeMap::new(),
        lock_since: None,
        lock_stale: false,
    }
}

/// `n` healthy nodes, each with two VMs and a container on shared Ceph storage, one VM on a
/// local disk, a PBS datastore and an NFS backup share. The Ceph storage is an external
/// cluster's (`monhost` in storage.cfg): PVE has no Ceph of its own configured here, so the
/// ceph CLI fails as on such a node (`hyperconverged` is the other case).
pub fn healthy(n: u32) -> Cluster {
    let mut c = healthy_template(n);
    if let Some(rbd) = c.storages.iter_mut().find(|s| s.id == "ceph-vm") {
        rbd.monhost = Some("10.10.20.1 10.10.20.2 10.10.20.3".into());
    }
    c
}

fn healthy_template(n: u32) -> Cluster {
    let nodes: Vec<Node> = (1..=n).map(node).collect();
    let mut guests = Vec::new();
    for i in 1..=n {
        let name = format!("pve{i}");
        let base = 100 * i;
        guests.push(guest(
            base,
            GuestKind::Qemu,
            &format!("web{i:02}"),
            &name,
            true,
            4,
            32,
            "ceph-vm",
        ));
        guests.push(guest(
            base + 1,
            GuestKind::Qemu,
            &format!("db{i:02}"),
            &name,
            true,
            8,
            64,
            "ceph-vm",
        ));
        guests.push(guest(
            base + 2,
            GuestKind::Lxc,
            &format!("dns{i:02}"),
            &name,
            true,
            1,
            8,
            "ceph-vm",
        ));
        guests.push(guest(
            base + 3,
            GuestKind::Qemu,
            &format!("build{i:02}"),
            &name,
            false,
            2,
            40,
            "local-lvm",
        ));
    }
    Cluster {
        cluster: Some(ClusterInfo {
            name: "lab".into(),
            config_version: u64::from(n) + 2,
            transport: "knet".into(),
            secure_auth: "on".into(),
            ring_seq: 0x1c,
        }),
        timing: Timing::default(),
        nodes,
        storages: vec![
            storage(
                "ceph-vm",
                "rbd",
                true,
                "images,rootdir",
                12 * 1024 * GIB,
                3 * 1024 * GIB,
            ),
            storage(
                "local",
                "dir",
                false,
                "iso,vztmpl,backup",
                96 * GIB,
                18 * GIB,
            ),
            storage(
                "local-lvm",
                "lvmthin",
                false,
                "images,rootdir",
                800 * GIB,
                210 * GIB,
            ),
            storage(
                "nfs-backup",
                "nfs",
                true,
                "backup",
                8 * 1024 * GIB,
                5 * 1024 * GIB,
            ),
            storage(
                "pbs",
                "pbs",
                true,
                "backup",
                20 * 1024 * GIB,
                9 * 1024 * GIB,
            ),
        ],
        guests,
        ha: Ha::default(),
        known_hosts: Vec::new(),
        events: Vec::new(),
        serial: 0,
        qdevice: None,
        ha_rules: Vec::new(),
        datacenter: Default::default(),
        ceph: None,
        replication: Vec::new(),
        started: None,
    }
}

/// Three nodes of a hyper-converged cluster: PVE's own Ceph (`pveceph init`: /etc/pve/ceph.conf),
/// two OSDs on every node, `ceph-vm` an RBD storage on it (no `monhost`). A rolling reboot sets
/// `noout` around each node.
pub fn hyperconverged() -> Cluster {
    let mut c = healthy(3);
    if let Some(rbd) = c.storages.iter_mut().find(|s| s.id == "ceph-vm") {
        rbd.monhost = None;
    }
    for (i, n) in c.nodes.iter_mut().enumerate() {
        let first = 2 * i as u32;
        n.osds = vec![first, first + 1];
    }
    c.ceph = Some(Default::default());
    c
}

/// Three nodes with problems an assessment must find: an NFS storage inactive on pve2 (with
/// its stderr), local-lvm over 90 % on pve3, a container locked by a backup, pve3 on an older
/// pve-manager, and a reboot pending on pve2 (a newer kernel installed than running).
pub fn degraded() -> Cluster {
    let mut c = healthy(3);
    if let Some(nfs) = c.storages.iter_mut().find(|s| s.id == "nfs-backup") {
        nfs.per_node.insert(
            "pve2".into(),
            StorageOnNode {
                inactive: true,
                stderr: vec!["storage 'nfs-backup' is not online".into()],
                ..Default::default()
            },
        );
    }
    if let Some(lvm) = c.storages.iter_mut().find(|s| s.id == "local-lvm") {
        lvm.per_node.insert(
            "pve3".into(),
            StorageOnNode {
                used: Some(745 * GIB),
                avail: Some(55 * GIB),
                ..Default::default()
            },
        );
    }
    if let Some(ct) = c.guest_mut(102) {
        ct.lock = Some("backup".into());
        // Left behind by a backup that died: no vzdump task holds it any more.
        ct.lock_stale = true;
    }
    if let Some(n) = c.node_mut("pve3") {
        n.manager_version = "9.0.10".into();
        n.repoid = "deb1ca707ec72a89".into();
        n.kernel_running = "6.14.11-4-pve".into();
        n.kernels_installed = vec!["6.14.11-4-pve".into(), "6.14.8-2-pve".into()];
    }
    if let Some(n) = c.node_mut("pve2") {
        n.kernel_running = "6.14.11-4-pve".into();
    }
    c
}

/// Three nodes without quorum: pve3 is down and the corosync link between pve1 and pve2 is
/// broken, so each of them sees only itself (1 of 3 votes).
pub fn noquorum() -> Cluster {
    let mut c = healthy(3);
    if let Some(n) = c.node_mut("pve3") {
        n.online = false;
    }
    if let Some(n) = c.node_mut("pve2") {
        n.partition = 1;
    }
    for g in c.guests.iter_mut().filter(|g| g.node == "pve3") {
        g.status = "stopped".into();
        g.pid = None;
    }
    c
}

/// `n` nodes with every running VM and container managed by HA, the CRM master on pve1.
fn offer(package: &str, version: &str, arch: &str) -> AptPackage {
    AptPackage {
        package: package.into(),
        version: version.into(),
        release: None,
        arch: arch.into(),
        size: None,
        installed_size_kib: None,
    }
}

/// Four healthy nodes midway through an update cycle: pve1 and pve2 are behind (a new kernel,
/// pve-manager 9.1.1 → 9.1.2, qemu-server; pve1 also has a kept-back package and an update its
/// lists do not know yet), pve3 runs the new PVE packages and kernel but has Debian's libc and
/// libpve-common-perl pending (its lists are 9 days old), pve4 is fully current. So the
/// cluster starts with differing pve-manager versions and ends with one.
pub fn updates() -> Cluster {
    let mut c = healthy(4);
    let current = |n: &mut Node| {
        n.manager_version = "9.1.2".into();
        n.repoid = super::apt::repoid("9.1.2");
        n.packages.insert("qemu-server".into(), "9.1.3".into());
        n.kernel_running = "6.17.4-1-pve".into();
        n.kernels_installed.insert(0, "6.17.4-1-pve".into());
    };
    let kernel = |extra: Vec<AptPackage>| {
        let mut v = vec![
            offer("proxmox-kernel-6.17", "6.17.4-1", "all"),
            offer("proxmox-kernel-6.17.4-1-pve-signed", "6.17.4-1", "amd64"),
            offer("pve-manager", "9.1.2", "all"),
            offer("qemu-server", "9.1.3", "amd64"),
        ];
        v.extend(extra);
        v
    };
    let libc = || {
        vec![
            offer("libc-bin", "2.41-12+deb13u1", "amd64"),
            offer("libc6", "2.41-12+deb13u1", "amd64"),
            offer("libpve-common-perl", "9.0.16", "all"),
        ]
    };
    let debian_libc = || {
        BTreeMap::from([
            ("libc-bin".to_string(), "2.41-12".to_string()),
            ("libc6".to_string(), "2.41-12".to_string()),
        ])
    };
    for n in c.nodes.iter_mut() {
        n.apt = Apt {
            installed: debian_libc(),
            ..Default::default()
        };
        match n.name.as_str() {
            "pve1" => {
                n.apt.available = kernel(vec![offer("zfsutils-linux", "2.3.5-pve1", "amd64")]);
                n.apt.kept_back = vec!["zfsutils-linux".into()];
                n.apt.published = vec![offer("pve-qemu-kvm", "10.1.2-5", "amd64")];
            }
            "pve2" => n.apt.available = kernel(Vec::new()),
            // Updated a week ago (new pve-manager, qemu-server, kernel) and since then only
            // Debian's libc and libpve-common-perl were published; its lists are 9 days old.
            "pve3" => {
                current(n);
                n.apt.available = libc();
                n.apt.lists_time = Some(-9 * 86400);
            }
            // Fully current: nothing to install.
            _ => {
                current(n);
                n.apt.installed = BTreeMap::from([
                    ("libc-bin".to_string(), "2.41-12+deb13u1".to_string()),
                    ("libc6".to_string(), "2.41-12+deb13u1".to_string()),
                ]);
                n.packages
                    .insert("libpve-common-perl".into(), "9.0.16".into());
            }
        }
    }
    c
}

pub fn ha(n: u32) -> Cluster {
    let mut c = healthy(n);
    for g in c.guests.iter_mut().filter(|g| g.status == "running") {
        g.ha = Some("started".into());
    }
    c.ha = Ha {
        master: Some("pve1".into()),
        master_state: Some("active".into()),
        fencing: Some("armed".into()),
        master_timestamp: None,
    };
    c
}

/// The most common PVE 9.1 setup, as a new user meets it: three nodes at UTC+1 (vzdump names
/// its files in that local time), HA guests under PVE 9 rules (a strict node-affinity rule pins
/// web01 to pve1/pve2; db01 and db02 are kept apart by a negative resource-affinity rule), a
/// SAN storage only pve1 and pve2 have (erp01 on it may go to pve2 only), and last night's
/// backups on NFS (vzdump) and PBS.
pub fn pve9() -> Cluster {
    let mut c = ha(3);
    for n in &mut c.nodes {
        n.utc_offset_minutes = 60;
    }
    let mut san = storage(
        "san-a",
        "lvm",
        true,
        "images,rootdir",
        4 * 1024 * GIB,
        1024 * GIB,
    );
    san.nodes = Some(vec!["pve1".into(), "pve2".into()]);
    c.storages.push(san);
    let mut erp = guest(104, GuestKind::Qemu, "erp01", "pve1", true, 8, 64, "san-a");
    erp.ha = None;
    c.guests.push(erp);
    for g in &mut c.guests {
        g.backups.push(Backup {
            storage: "nfs-backup".into(),
            time: "-9h".into(),
            size: g.maxdisk / 4,
        });
    }
    c.ha_rules = vec![
        super::state::HaRule {
            rule: "web01-san".into(),
            kind: "node-affinity".into(),
            resources: vec!["vm:100".into()],
            nodes: vec!["pve1:2".into(), "pve2".into()],
            strict: true,
            affinity: None,
        },
        super::state::HaRule {
            rule: "db-apart".into(),
            kind: "resource-affinity".into(),
            resources: vec!["vm:101".into(), "vm:201".into()],
            nodes: Vec::new(),
            strict: false,
            affinity: Some("negative".into()),
        },
    ];
    c
}

/// Fixes relative backup times (`-20h`, `-3d`) against `now`, as the lab starts.
pub fn resolve_times(c: &mut Cluster, now: jiff::Timestamp) {
    let start = *c.started.get_or_insert(now.as_second());
    let rel = |t: &mut i64| {
        if *t < 0 {
            *t += start;
        }
    };
    for n in c.nodes.iter_mut() {
        for t in n.tasks.iter_mut() {
            rel(&mut t.starttime);
            if let Some(e) = t.endtime.as_mut() {
                rel(e);
            }
        }
    }
    for g in c.guests.iter_mut() {
        if let Some(t) = g.lock_since.as_mut() {
            rel(t);
        } else if g.lock.is_some() {
            g.lock_since = Some(start);
        }
    }
    for j in c.replication.iter_mut() {
        for t in [j.last_sync.as_mut(), j.last_try.as_mut()]
            .into_iter()
            .flatten()
        {
            rel(t);
        }
    }
    // A negative lists time is relative to now (seconds ago).
    for n in c.nodes.iter_mut() {
        if let Some(t) = n.apt.lists_time.filter(|t| *t < 0) {
            n.apt.lists_time = Some(now.as_second() + t);
        }
    }
    for b in c.guests.iter_mut().flat_map(|g| g.backups.iter_mut()) {
        if let Some(rel) = b.time.strip_prefix('-') {
            let span = rel
                .strip_suffix('h')
                .and_then(|h| h.parse::<i64>().ok())
                .map(jiff::SignedDuration::from_hours)
                .or_else(|| {
                    rel.strip_suffix('d')
                        .and_then(|d| d.parse::<i64>().ok())
                        .map(|d| jiff::SignedDuration::from_hours(d * 24))
                });
            if let Some(span) = span
                && let Ok(t) = now.checked_sub(span)
            {
                b.time = t.round(jiff::Unit::Second).unwrap_or(t).to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenario_files_match_the_builtins() {
        for name in NAMES {
            let path = format!(
                "{}/lab/scenarios/{name}.json",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../..")
            );
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let file: Cluster =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(
                file,
                builtin(name).unwrap(),
                "{path} is stale: regenerate with `pveops lab --dump-scenario {name}`"
            );
        }
    }

    #[test]
    fn quorum_follows_the_online_nodes() {
        assert!(healthy(3).quorum().quorate);
        let c = noquorum();
        for node in ["pve1", "pve2"] {
            let q = c.quorum_of(node);
            assert_eq!(
                (q.expected, q.total, q.quorum, q.quorate),
                (3, 1, 2, false),
                "{node}"
            );
        }
        assert_eq!(c.members_of("pve2").len(), 1);
    }

    #[test]
    fn relative_backup_times_become_absolute() {
        let mut c = healthy(1);
        let now: jiff::Timestamp = "2026-11-27T03:00:00Z".parse().unwrap();
        resolve_times(&mut c, now);
        assert_eq!(c.guests[0].backups[0].time, "2026-11-26T07:00:00Z");
    }
}
