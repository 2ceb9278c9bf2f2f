//! What the simulated PVE tools print: pure functions from the shared [`Cluster`] state (plus the
//! asking node, the arguments and the time) to stdout, stderr and the exit status, byte for byte
//! as Proxmox VE prints them. Ground truth is `shared/spec/FORMATS.md` (cited as `§n.m`) and the
//! real captures in `tests/fixtures/pve/`.
//!
//! On purpose this module shares no code with the parsers in `crate::facts`: if both sides used
//! the same helper they could agree on the same mistake. Dates are rendered in UTC (the lab's
//! nodes all run in UTC). Where the real tools print in Perl hash order (random), the order of the
//! state's vectors stands in for it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::state::{Cluster, Guest, GuestKind, Node, Storage, version_key};

/// What one simulated command prints and how it exits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub exit: i32,
}

impl Reply {
    pub(super) fn out(stdout: String) -> Reply {
        Reply {
            stdout,
            stderr: String::new(),
            exit: 0,
        }
    }

    pub(super) fn err(stderr: impl Into<String>, exit: i32) -> Reply {
        let mut stderr = stderr.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Reply {
            stdout: String::new(),
            stderr,
            exit,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

// ------------------------------------------------------------------------------------------------
// Small helpers: versions, dates, Perl number formatting.

/// `true` if version `v` (`9.1.1`, `7.4-15`) is at least `min` (numeric parts compared in order).
fn ver_ge(v: &str, min: &[u64]) -> bool {
    version_key(v).as_slice() >= min
}

/// The node's pve-manager version at least `min`.
pub(super) fn pve_ge(n: &Node, min: &[u64]) -> bool {
    ver_ge(&n.manager_version, min)
}

/// C `ctime()` / Perl `scalar localtime` without the newline: `Fri Apr  3 04:05:16 2026` (§0.8),
/// in UTC.
fn ctime(t: Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .strftime("%a %b %e %H:%M:%S %Y")
        .to_string()
}

/// Perl's stringification of a number (`%.15g`): integers without a fraction, others shortest.
fn perl_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{}", perl_float(x))
    }
}

/// A float rounded to the 15 significant digits Perl keeps when it stringifies (JSON::XS too).
fn perl_float(x: f64) -> f64 {
    format!("{x:.14e}").parse().unwrap_or(x)
}

pub(super) fn json_float(x: f64) -> Value {
    serde_json::Number::from_f64(perl_float(x)).map_or(Value::Null, Value::Number)
}

/// PVE booleans in JSON are integers (§0.2).
fn flag(b: bool) -> Value {
    json!(if b { 1 } else { 0 })
}

/// One line of compact, key-sorted JSON as `--output-format json` prints (§0.2).
fn json_line(v: &Value) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The corosync members `n` sees: the online nodes of its partition, by node id.
fn online_sorted<'a>(c: &'a Cluster, n: &Node) -> Vec<&'a Node> {
    c.members_of(&n.name)
}

/// Whether the corosync unit runs on `n`; an unlisted unit counts as running when clustered.
fn corosync_up(c: &Cluster, n: &Node) -> bool {
    c.cluster.is_some() && n.services.get("corosync").is_none_or(|s| s == "active")
}

/// pmxcfs (`pve-cluster.service`) down: every PVE Perl CLI dies while loading the ACL (§0.5 (d),
/// `pvecm-status.pmxcfs-down.stderr`).
fn pmxcfs_down(n: &Node) -> Option<Reply> {
    let up = n.services.get("pve-cluster").is_none_or(|s| s == "active");
    (!up).then(|| {
        Reply::err(
            "ipcc_send_rec[1] failed: Unknown error -1\nipcc_send_rec[2] failed: Unknown error -1\n\
             ipcc_send_rec[3] failed: Unknown error -1\nUnable to load access control list: Unknown error -1",
            255,
        )
    })
}

/// The asking node, or the reply when it cannot answer (unknown node, pmxcfs down).
fn asker<'a>(c: &'a Cluster, node: &str) -> Result<&'a Node, Reply> {
    let n = c
        .node(node)
        .ok_or_else(|| Reply::err(format!("unknown node '{node}'"), 255))?;
    match pmxcfs_down(n) {
        Some(r) => Err(r),
        None => Ok(n),
    }
}

const NO_COROSYNC_CONF: &str =
    "Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?";

/// §1.1: missing corosync.conf. Since pve-cluster Nov 2019 (PVE 6.1) a `die` with `Error: ` and a
/// non-zero exit (observed 2: `$!` = ENOENT); before, a `warn` without the prefix and exit 0.
fn no_cluster(n: &Node) -> Reply {
    if pve_ge(n, &[6, 1]) {
        Reply::err(format!("Error: {NO_COROSYNC_CONF}"), 2)
    } else {
        Reply::err(NO_COROSYNC_CONF, 0)
    }
}

// ------------------------------------------------------------------------------------------------
// pvecm

/// `pvecm status`: the Cluster information block (pve-cluster, PVE >= 6.1) and then
/// `corosync-quorumtool -siH` (§1.1).
pub fn pvecm_status(c: &Cluster, node: &str, now: Timestamp) -> Reply {
    let n = match asker(c, node) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(ci) = c.cluster.as_ref() else {
        return no_cluster(n);
    };
    let mut o = String::new();
    // The block was added in Oct 2019 (pve-cluster 3df092f): absent in PVE 6.0 (§1.1, §9).
    if pve_ge(n, &[6, 1]) {
        o.push_str("Cluster information\n-------------------\n");
        let _ = writeln!(o, "{:<17} {}", "Name:", ci.name);
        let _ = writeln!(o, "{:<17} {}", "Config Version:", ci.config_version);
        let _ = writeln!(o, "{:<17} {}", "Transport:", ci.transport);
        let _ = writeln!(o, "{:<17} {}", "Secure auth:", ci.secure_auth);
        o.push('\n');
    }
    if !corosync_up(c, n) {
        // corosync-quorumtool init_all(): cmap_initialize fails first, exit(EXIT_FAILURE) (§1.1).
        return Reply {
            stdout: o,
            stderr: "Cannot initialize CMAP service\n".into(),
            exit: 1,
        };
    }
    let q = c.quorum_of(&n.name);
    let members = online_sorted(c, n);
    let rep = members.first().map_or(n.nodeid, |m| m.nodeid);
    o.push_str("Quorum information\n------------------\n");
    let _ = writeln!(o, "Date:             {}", ctime(now));
    o.push_str("Quorum provider:  corosync_votequorum\n");
    let _ = writeln!(o, "Nodes:            {}", members.len());
    let _ = writeln!(o, "Node ID:          0x{:08x}", n.nodeid);
    // corosync >= 3.0.3 (PVE 6.1) prints `%x.%lx`; before `%d/%llu` decimal (§1.1, §9).
    if pve_ge(n, &[6, 1]) {
        let _ = writeln!(o, "Ring ID:          {:x}.{:x}", rep, ci.ring_seq);
    } else {
        let _ = writeln!(o, "Ring ID:          {}/{}", rep, ci.ring_seq);
    }
    let _ = writeln!(
        o,
        "Quorate:          {}",
        if q.quorate { "Yes" } else { "No" }
    );
    o.push_str("\nVotequorum information\n----------------------\n");
    let _ = writeln!(o, "Expected votes:   {}", q.expected);
    let _ = writeln!(o, "Highest expected: {}", q.expected);
    let _ = writeln!(o, "Total votes:      {}", q.total);
    // Quorate: value + two spaces; not quorate: ` Activity blocked` (§0.4, §1.1).
    let _ = writeln!(
        o,
        "Quorum:           {} {}",
        q.quorum,
        if q.quorate { " " } else { "Activity blocked" }
    );
    // Every set flag is followed by one space; none set leaves `Flags:` + 12 spaces (§0.4).
    o.push_str("Flags:            ");
    if q.quorate {
        o.push_str("Quorate ");
    }
    if c.qdevice.is_some() {
        o.push_str("Qdevice ");
    }
    o.push_str("\n\nMembership information\n----------------------\n");
    membership(&mut o, c, n, &members, true);
    let exit = if q.quorate { 0 } else { 2 };
    Reply {
        stdout: o,
        stderr: String::new(),
        exit,
    }
}

/// corosync-quorumtool `display_nodes_data`: `-H -i` (hex ids, link addresses) for `pvecm
/// status`, decimal ids and nodelist names for `pvecm nodes` (§1.1, §1.2).
fn membership(o: &mut String, c: &Cluster, me: &Node, members: &[&Node], status: bool) {
    let qd = c.qdevice.as_ref();
    o.push_str("    Nodeid      Votes");
    if qd.is_some() {
        o.push_str("    Qdevice");
    }
    o.push_str(" Name\n");
    for m in members {
        if status {
            let _ = write!(o, "0x{:08x} ", m.nodeid);
        } else {
            let _ = write!(o, "{:>10} ", m.nodeid);
        }
        let _ = write!(o, "{:>10} ", m.votes);
        if let Some(q) = qd {
            let _ = write!(
                o,
                "{:>10} ",
                format!("A,{},NMW", if q.voting { "V" } else { "NV" })
            );
        }
        o.push_str(if status { &m.ip } else { &m.name });
        if m.name == me.name {
            o.push_str(" (local)");
        }
        o.push('\n');
    }
    if let Some(q) = qd {
        // The QDevice pseudo-row: node id 0, its votes only when this partition gets them,
        // otherwise 0 and ` (votes N)` (§1.1).
        o.push_str(if status { "0x00000000 " } else { "         0 " });
        let _ = write!(
            o,
            "{:>10} {:>10} Qdevice",
            if q.voting { q.votes } else { 0 },
            ""
        );
        if !q.voting {
            let _ = write!(o, " (votes {})", q.votes);
        }
        o.push('\n');
    }
}

/// `pvecm nodes` = `corosync-quorumtool -l`: starts with an empty line (§1.2).
pub fn pvecm_nodes(c: &Cluster, node: &str) -> Reply {
    let n = match asker(c, node) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if c.cluster.is_none() {
        return no_cluster(n);
    }
    if !corosync_up(c, n) {
        return Reply::err("Cannot initialize CMAP service", 1);
    }
    let mut o = String::from("\nMembership information\n----------------------\n");
    membership(&mut o, c, n, &online_sorted(c, n), false);
    // Exit status as FORMATS §0.6: 0 quorate, 2 not quorate.
    Reply {
        stdout: o,
        stderr: String::new(),
        exit: if c.quorum_of(&n.name).quorate { 0 } else { 2 },
    }
}

// ------------------------------------------------------------------------------------------------
// pvesm

/// The state of one storage as seen from one node (`PVE::Storage::storage_info`).
struct StorageView<'a> {
    s: &'a Storage,
    enabled: bool,
    active: bool,
    total: u64,
    used: u64,
    avail: u64,
    stderr: &'a [String],
}

fn storage_view<'a>(s: &'a Storage, node: &str) -> StorageView<'a> {
    // Disabled means `disable 1` or a `nodes` list without this node (§2).
    let enabled = s.enabled && s.nodes.as_ref().is_none_or(|l| l.iter().any(|x| x == node));
    let pn = s.per_node.get(node);
    let active = enabled && !pn.is_some_and(|p| p.inactive);
    let empty: &[String] = &[];
    if !active {
        let stderr = if enabled {
            pn.map_or(empty, |p| p.stderr.as_slice())
        } else {
            empty
        };
        return StorageView {
            s,
            enabled,
            active,
            total: 0,
            used: 0,
            avail: 0,
            stderr,
        };
    }
    let total = pn.and_then(|p| p.total).unwrap_or(s.total);
    let used = pn.and_then(|p| p.used).unwrap_or(s.used);
    let avail = pn
        .and_then(|p| p.avail)
        .or(s.avail)
        .unwrap_or(total.saturating_sub(used));
    let stderr = pn.map_or(empty, |p| p.stderr.as_slice());
    StorageView {
        s,
        enabled,
        active,
        total,
        used,
        avail,
        stderr,
    }
}

/// Whether `pvesm status` prints `(KiB)` in its header: libpve-storage-perl >= 9.0.14 (Nov 2025),
/// taken from the node's package list, else from pve-manager >= 9.1 (§2, §9).
fn pvesm_kib_header(n: &Node) -> bool {
    match n.packages.get("libpve-storage-perl") {
        Some(v) if !version_key(v).is_empty() => ver_ge(v, &[9, 0, 14]),
        _ => pve_ge(n, &[9, 1]),
    }
}

/// `pvesm status`: pve-storage `pvesm.pm` `$print_status` (§2). Activation errors are warned to
/// stderr (state order standing in for Perl hash order), the exit status stays 0.
pub fn pvesm_status(c: &Cluster, node: &str) -> Reply {
    let n = match asker(c, node) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let views: Vec<StorageView> = c.storages.iter().map(|s| storage_view(s, node)).collect();
    let mut stderr = String::new();
    for v in &views {
        for l in v.stderr {
            stderr.push_str(l);
            stderr.push('\n');
        }
    }
    // Name width = longest storage id + 1, so it varies per node (§2).
    let w = views.iter().map(|v| v.s.id.len()).max().unwrap_or(0) + 1;
    let mut o = String::new();
    let (t, u, a) = if pvesm_kib_header(n) {
        ("Total (KiB)", "Used (KiB)", "Available (KiB)")
    } else {
        ("Total", "Used", "Available")
    };
    let _ = writeln!(
        o,
        "{:<w$} {:>10} {:>10} {:>15} {:>15} {:>15} {:>8}",
        "Name", "Type", "Status", t, u, a, "%"
    );
    let mut sorted: Vec<&StorageView> = views.iter().collect();
    // Perl `cmp`: byte order, upper case first (§2).
    sorted.sort_by(|x, y| x.s.id.as_bytes().cmp(y.s.id.as_bytes()));
    for v in sorted {
        let status = if !v.enabled {
            "disabled"
        } else if v.active {
            "active"
        } else {
            "inactive"
        };
        let _ = write!(
            o,
            "{:<w$} {:>10} {:>10} {:>15} {:>15} {:>15} ",
            v.s.id,
            v.s.kind,
            status,
            v.total / 1024,
            v.used / 1024,
            v.avail / 1024
        );
        if v.enabled {
            // `% 7.2f%%` of used*100/total, 0 when total is 0.
            let per = if v.total > 0 {
                (v.used as f64 * 100.0) / v.total as f64
            } else {
                0.0
            };
            let _ = writeln!(o, "{:>7}%", format!("{per:.2}"));
        } else {
            let _ = writeln!(o, "{:>8}", "N/A");
        }
    }
    Reply {
        stdout: o,
        stderr,
        exit: 0,
    }
}

/// One entry of `pvesm list` (the `/nodes/N/storage/S/content` API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentEntry {
    pub volid: String,
    pub format: String,
    pub content: String,
    pub size: u64,
    pub vmid: u32,
    /// Seconds since the epoch. vzdump: the file name's time read with `timelocal` on the
    /// listing node (pve-storage `PVE::Storage::archive_info`, set by
    /// `Plugin.pm` `list_volumes`); PBS: the snapshot's `backup-time` (`PBSPlugin.pm`
    /// `list_volumes`).
    pub ctime: i64,
    /// `qemu` or `lxc` (archive_info's `type`; PBS converts `vm`/`ct` to these).
    pub subtype: &'static str,
}

/// The backups on `storage` as node `lister` lists them, sorted by volid as
/// `PVE::Storage::volume_list` does. vzdump files are named
/// `vzdump-<qemu|lxc>-<vmid>-YYYY_MM_DD-HH_MM_SS.<vma.zst|tar.zst>`, PBS snapshots
/// `backup/<vm|ct>/<vmid>/<RFC 3339 Z>` with format `pbs-vm|pbs-ct`.
pub fn backup_entries(c: &Cluster, storage: &str, lister: &str) -> Vec<ContentEntry> {
    let lister_offset = c
        .node(lister)
        .map_or(0, |n| i64::from(n.utc_offset_minutes) * 60);
    let pbs = c
        .storages
        .iter()
        .any(|s| s.id == storage && s.kind == "pbs");
    let mut v = Vec::new();
    for g in &c.guests {
        for b in g.backups.iter().filter(|b| b.storage == storage) {
            let Ok(t) = b.time.parse::<Timestamp>() else {
                continue;
            };
            let subtype = if g.kind == GuestKind::Qemu {
                "qemu"
            } else {
                "lxc"
            };
            let (volid, format, ctime) = match (pbs, g.kind) {
                (true, k) => {
                    let (d, f) = if k == GuestKind::Qemu {
                        ("vm", "pbs-vm")
                    } else {
                        ("ct", "pbs-ct")
                    };
                    (
                        format!(
                            "{storage}:backup/{d}/{}/{}",
                            g.vmid,
                            t.strftime("%Y-%m-%dT%H:%M:%SZ")
                        ),
                        f,
                        t.as_second(),
                    )
                }
                (false, k) => {
                    let (kind, ext) = if k == GuestKind::Qemu {
                        ("qemu", "vma.zst")
                    } else {
                        ("lxc", "tar.zst")
                    };
                    // vzdump names the file in the node's local time (pve-manager
                    // PVE/VZDump.pm: strftime("-%Y_%m_%d-%H_%M_%S",
                    // localtime($task->{backup_time}))).
                    let offset = c.node(&g.node).map_or(0, |n| n.utc_offset_minutes);
                    // The wall clock at that offset, formatted as a UTC time would be.
                    let local = t
                        .checked_add(jiff::SignedDuration::from_secs(i64::from(offset) * 60))
                        .unwrap_or(t);
                    let stamp = local.strftime("%Y_%m_%d-%H_%M_%S");
                    // archive_info: `timelocal` of that wall clock in the lister's zone (the
                    // stamp read as UTC, less the lister's offset).
                    (
                        format!("{storage}:backup/vzdump-{kind}-{}-{stamp}.{ext}", g.vmid),
                        ext,
                        local.as_second() - lister_offset,
                    )
                }
            };
            v.push(ContentEntry {
                volid,
                format: format.into(),
                content: "backup".into(),
                size: b.size,
                vmid: g.vmid,
                ctime,
                subtype,
            });
        }
    }
    v.sort_by_key(|e| e.volid.to_lowercase());
    v
}

/// pve-storage `pvesm.pm` `$print_content`: `%-<longest volid>s %-7s %-9s %<size digits>s %d`.
pub fn print_content(list: &[ContentEntry]) -> String {
    let wn = list.iter().map(|e| e.volid.len()).max().unwrap_or(0);
    let ws = list
        .iter()
        .map(|e| e.size.to_string().len())
        .max()
        .unwrap_or(0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<wn$} {:<7} {:<9} {:>ws$} VMID",
        "Volid", "Format", "Type", "Size"
    );
    for e in list {
        let _ = writeln!(
            o,
            "{:<wn$} {:<7} {:<9} {:>ws$} {}",
            e.volid, e.format, e.content, e.size, e.vmid
        );
    }
    o
}

/// The backups on `storage` as the storage content API lists them on `node`, or its error:
/// `pvesm list` and `pvesh get /nodes/N/storage/S/content` are the same API call (pve-storage
/// `PVE/CLI/pvesm.pm` `list` is `PVE::API2::Storage::Content->index`).
fn storage_backups(c: &Cluster, node: &str, storage: &str) -> Result<Vec<ContentEntry>, Reply> {
    asker(c, node)?;
    let Some(s) = c.storages.iter().find(|s| s.id == storage) else {
        return Err(Reply::err(
            format!("storage '{storage}' does not exist"),
            255,
        ));
    };
    if !s.enabled {
        return Err(Reply::err(format!("storage '{storage}' is disabled"), 255));
    }
    let v = storage_view(s, node);
    if !v.enabled {
        return Err(Reply::err(
            format!("storage '{storage}' is not available on node '{node}'"),
            255,
        ));
    }
    if !v.active {
        let mut e: String = v.stderr.iter().map(|l| format!("{l}\n")).collect();
        if e.is_empty() {
            e = format!("storage '{storage}' is not online\n");
        }
        return Err(Reply {
            stdout: String::new(),
            stderr: e,
            exit: 255,
        });
    }
    Ok(backup_entries(c, storage, node))
}

/// `pvesm list STORAGE --content backup`.
pub fn pvesm_list_backup(c: &Cluster, node: &str, storage: &str) -> Reply {
    match storage_backups(c, node, storage) {
        Ok(list) => Reply::out(print_content(&list)),
        Err(r) => r,
    }
}

/// `/nodes/N/storage/S/content` (pve-storage `API2/Storage/Content.pm` `index`): the volumes
/// with `vmid` and sizes as integers, `ctime`, `subtype`. The lab keeps backups only, so any
/// other `content` filter lists nothing.
fn storage_content_json(
    c: &Cluster,
    node: &str,
    storage: &str,
    content: Option<&str>,
) -> Result<Value, Reply> {
    let list = storage_backups(c, node, storage)?;
    if content.is_some_and(|t| t != "backup") {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(
        list.into_iter()
            .map(|e| {
                json!({"content": e.content, "ctime": e.ctime, "format": e.format,
                       "size": e.size, "subtype": e.subtype, "vmid": e.vmid, "volid": e.volid})
            })
            .collect(),
    ))
}

// ------------------------------------------------------------------------------------------------
// qm / pct

fn guests_on<'a>(c: &'a Cluster, node: &str, kind: GuestKind) -> Vec<&'a Guest> {
    let mut v: Vec<&Guest> = c
        .guests
        .iter()
        .filter(|g| g.node == node && g.kind == kind)
        .collect();
    v.sort_by_key(|g| g.vmid);
    v
}

/// `running` or `stopped`: what PVE reports as `status` (a paused VM is `running`, §3.1).
fn plain_status(g: &Guest) -> &str {
    match g.status.as_str() {
        "stopped" => "stopped",
        "unknown" => "unknown",
        _ => "running",
    }
}

fn is_running(g: &Guest) -> bool {
    plain_status(g) == "running"
}

fn vm_name(g: &Guest) -> String {
    // §0.10: `VM <vmid>` with a space for VMs, `CT<vmid>` for containers.
    match (&g.name, g.kind) {
        (Some(n), _) => n.clone(),
        (None, GuestKind::Qemu) => format!("VM {}", g.vmid),
        (None, GuestKind::Lxc) => format!("CT{}", g.vmid),
    }
}

/// `qm list [--full]` (§3.1): nothing at all without VMs; no column is ever truncated.
pub fn qm_list(c: &Cluster, node: &str, full: bool) -> Reply {
    if let Err(r) = asker(c, node) {
        return r;
    }
    let vms = guests_on(c, node, GuestKind::Qemu);
    if vms.is_empty() {
        return Reply::out(String::new());
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>10} {:<20} {:<10} {:<10} {:>12} {:<10}",
        "VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"
    );
    for g in vms {
        // Without --full only running/stopped; with it the QMP RunState (§3.1).
        let status = if full {
            g.status.as_str()
        } else {
            plain_status(g)
        };
        let pid = if is_running(g) { g.pid.unwrap_or(0) } else { 0 };
        let _ = writeln!(
            o,
            "{:>10} {:<20} {:<10} {:<10} {:>12.2} {:<10}",
            g.vmid,
            vm_name(g),
            status,
            perl_num(g.maxmem as f64 / MIB),
            g.maxdisk as f64 / GIB,
            pid
        );
    }
    Reply::out(o)
}

/// `pct list` (§4.1): `%-10s %-10s %-12s %-20s`, nothing without containers.
pub fn pct_list(c: &Cluster, node: &str) -> Reply {
    if let Err(r) = asker(c, node) {
        return r;
    }
    let cts = guests_on(c, node, GuestKind::Lxc);
    if cts.is_empty() {
        return Reply::out(String::new());
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<10} {:<10} {:<12} {:<20}",
        "VMID", "Status", "Lock", "Name"
    );
    for g in cts {
        let lock = g.lock.as_deref().unwrap_or("");
        let _ = writeln!(
            o,
            "{:<10} {:<10} {:<12} {:<20}",
            g.vmid,
            plain_status(g),
            lock,
            vm_name(g)
        );
    }
    Reply::out(o)
}

fn conf_path(node: &str, kind: GuestKind, vmid: u32) -> String {
    let dir = if kind == GuestKind::Qemu {
        "qemu-server"
    } else {
        "lxc"
    };
    format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist")
}

/// The guest `vmid` of `kind` if its config lives on `node`; else the PVE error (exit 255).
fn local_guest<'a>(
    c: &'a Cluster,
    node: &str,
    kind: GuestKind,
    vmid: u32,
) -> Result<&'a Guest, Reply> {
    asker(c, node)?;
    c.guests
        .iter()
        .find(|g| g.vmid == vmid && g.kind == kind && g.node == node)
        .ok_or_else(|| Reply::err(conf_path(node, kind, vmid), 255))
}

/// Whether a config key names a disk (qemu drive or container mount point).
fn is_disk_key(k: &str) -> bool {
    let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
    base.len() < k.len()
        && matches!(
            base,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate" | "mp" | "unused"
        )
        || k == "rootfs"
}

/// One volume of a guest: drive key, volid, size in bytes.
struct Volume {
    drive: String,
    volid: String,
    size: u64,
}

/// Parses `size=20G` style sizes (K/M/G/T suffixes) into bytes.
fn parse_size(v: &str) -> u64 {
    let v = v.trim();
    let (num, mul) = match v.chars().last() {
        Some('K') => (&v[..v.len() - 1], 1u64 << 10),
        Some('M') => (&v[..v.len() - 1], 1 << 20),
        Some('G') => (&v[..v.len() - 1], 1 << 30),
        Some('T') => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    num.parse::<f64>().map_or(0, |n| (n * mul as f64) as u64)
}

/// The guest's volumes: disk keys of its config that name a storage volume, or (when the config
/// carries none) one volume per `disks` entry, named as PVE allocates them.
fn volumes(g: &Guest) -> Vec<Volume> {
    let from_conf: Vec<Volume> = g
        .config
        .iter()
        .filter(|(k, v)| is_disk_key(k) && !v.contains("media=cdrom"))
        .filter_map(|(k, v)| {
            let first = v.split(',').next()?;
            let (st, _) = first.split_once(':')?;
            if st.starts_with('/') {
                return None;
            }
            let size = v
                .split(',')
                .find_map(|p| p.strip_prefix("size="))
                .map_or(0, parse_size);
            Some(Volume {
                drive: k.clone(),
                volid: first.to_string(),
                size,
            })
        })
        .collect();
    if !from_conf.is_empty() {
        return from_conf;
    }
    g.disks
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let drive = match (g.kind, i) {
                (GuestKind::Qemu, i) => format!("scsi{i}"),
                (GuestKind::Lxc, 0) => "rootfs".to_string(),
                (GuestKind::Lxc, i) => format!("mp{}", i - 1),
            };
            let size = if i == 0 { g.maxdisk } else { 0 };
            Volume {
                drive,
                volid: format!("{st}:vm-{}-disk-{i}", g.vmid),
                size,
            }
        })
        .collect()
}

/// `size=` as PVE writes it: the largest unit that divides evenly.
fn size_str(b: u64) -> String {
    for (suf, m) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if b >= m && b.is_multiple_of(m) {
            return format!("{}{suf}", b / m);
        }
    }
    format!("{b}")
}

/// The key/value lines of a guest config: the state's `config` map plus the keys the state
/// models itself (`name`/`hostname`, `memory`, `lock`) and synthesised disks (§3.3, §4.3).
fn config_map(g: &Guest) -> BTreeMap<String, String> {
    let mut m = g.config.clone();
    m.remove("digest");
    if !m.keys().any(|k| is_disk_key(k)) {
        for v in volumes(g) {
            let val = if v.size > 0 {
                format!("{},size={}", v.volid, size_str(v.size))
            } else {
                v.volid.clone()
            };
            let val = if v.drive.starts_with("mp") {
                format!("{val},mp=/mnt/{}", v.drive)
            } else {
                val
            };
            m.insert(v.drive, val);
        }
    }
    if let Some(n) = &g.name {
        m.insert(
            if g.kind == GuestKind::Qemu {
                "name"
            } else {
                "hostname"
            }
            .into(),
            n.clone(),
        );
    }
    m.insert("memory".into(), perl_num(g.maxmem as f64 / MIB));
    match &g.lock {
        Some(l) => m.insert("lock".into(), l.clone()),
        None => m.remove("lock"),
    };
    m
}

/// `qm config VMID` (§3.3): sorted `key: value`, no digest.
pub fn qm_config(c: &Cluster, node: &str, vmid: u32) -> Reply {
    let g = match local_guest(c, node, GuestKind::Qemu, vmid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut o = String::new();
    for (k, v) in config_map(g) {
        let _ = writeln!(o, "{k}: {v}");
    }
    Reply::out(o)
}

/// `pct config CTID` (§4.3): sorted keys, then the raw `lxc.*` keys last. The state's config is
/// a map, so raw keys cannot repeat and come in key order rather than file order.
pub fn pct_config(c: &Cluster, node: &str, vmid: u32) -> Reply {
    let g = match local_guest(c, node, GuestKind::Lxc, vmid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let m = config_map(g);
    let mut o = String::new();
    for (k, v) in m.iter().filter(|(k, _)| !k.starts_with("lxc.")) {
        let _ = writeln!(o, "{k}: {v}");
    }
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("lxc.")) {
        let _ = writeln!(o, "{k}: {v}");
    }
    Reply::out(o)
}

fn conf_u64(g: &Guest, key: &str) -> Option<u64> {
    g.config.get(key).and_then(|v| v.parse().ok())
}

/// The guest's `vmstatus` hash: values derived from the state, then the guest's `stats`.
fn vmstatus(c: &Cluster, g: &Guest) -> Map<String, Value> {
    let running = is_running(g);
    let mut m = Map::new();
    let cpus = match g.kind {
        GuestKind::Qemu => conf_u64(g, "cores").unwrap_or(1) * conf_u64(g, "sockets").unwrap_or(1),
        GuestKind::Lxc => {
            conf_u64(g, "cores").unwrap_or_else(|| c.node(&g.node).map_or(1, |n| u64::from(n.cpus)))
        }
    };
    m.insert("cpus".into(), json!(cpus));
    for k in [
        "disk",
        "diskread",
        "diskwrite",
        "netin",
        "netout",
        "uptime",
        "mem",
    ] {
        m.insert(k.into(), json!(0));
    }
    m.insert("maxdisk".into(), json!(g.maxdisk));
    m.insert("maxmem".into(), json!(g.maxmem));
    m.insert("name".into(), json!(vm_name(g)));
    m.insert("status".into(), json!(plain_status(g)));
    m.insert("vmid".into(), json!(g.vmid));
    if let Some(pid) = g.pid.filter(|_| running) {
        m.insert("pid".into(), json!(pid));
    }
    if let Some(l) = &g.lock {
        m.insert("lock".into(), json!(l));
    }
    if let Some(t) = g.config.get("tags") {
        m.insert("tags".into(), json!(t));
    }
    if g.config.get("template").is_some_and(|t| t == "1") {
        m.insert("template".into(), json!(1));
    }
    match g.kind {
        GuestKind::Qemu => {
            m.insert("qmpstatus".into(), json!(g.status));
            if g.config.keys().any(|k| k.starts_with("serial")) {
                m.insert("serial".into(), json!(1));
            }
        }
        GuestKind::Lxc => {
            m.insert("type".into(), json!("lxc"));
            m.insert("swap".into(), json!(0));
            let swap = conf_u64(g, "swap").unwrap_or(512);
            m.insert("maxswap".into(), json!(swap * 1024 * 1024));
        }
    }
    for (k, v) in &g.stats {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// A Perl scalar as `print` shows it: JSON booleans as 1/0, numbers as Perl does.
fn perl_scalar(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        Value::Number(n) => Some(n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if n.is_f64() {
                    perl_num(f)
                } else {
                    n.to_string()
                }
            },
        )),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// qemu-server `print_recursive_hash`: nested hashes as `key:` plus TAB-indented children,
/// arrays as `key:` plus items, keys sorted (§3.2).
fn print_recursive(o: &mut String, prefix: &str, key: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            let _ = writeln!(o, "{prefix}{key}:");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                print_recursive(o, &format!("\t{prefix}"), k, &m[k]);
            }
        }
        Value::Array(a) => {
            let _ = writeln!(o, "{prefix}{key}:");
            for item in a {
                if let Some(s) = perl_scalar(item) {
                    let _ = writeln!(o, "\t{prefix}{s}");
                }
            }
        }
        Value::Null => {}
        s => {
            let _ = writeln!(o, "{prefix}{key}: {}", perl_scalar(s).unwrap_or_default());
        }
    }
}

/// `qm status VMID [--verbose]` (§3.2): the QMP status (always a full query), or the whole
/// vmstatus hash without `cpu`/`relcpu`.
pub fn qm_status(c: &Cluster, node: &str, vmid: u32, verbose: bool) -> Reply {
    let g = match local_guest(c, node, GuestKind::Qemu, vmid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !verbose {
        return Reply::out(format!("status: {}\n", g.status));
    }
    let mut o = String::new();
    let m = vmstatus(c, g);
    let mut keys: Vec<&String> = m.keys().filter(|k| *k != "cpu" && *k != "relcpu").collect();
    keys.sort();
    for k in keys {
        print_recursive(&mut o, "", k, &m[k]);
    }
    Reply::out(o)
}

/// `pct status CTID [--verbose]` (§4.2): flat `key: value`, `cpu` skipped, no nesting.
pub fn pct_status(c: &Cluster, node: &str, vmid: u32, verbose: bool) -> Reply {
    let g = match local_guest(c, node, GuestKind::Lxc, vmid) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !verbose {
        return Reply::out(format!("status: {}\n", plain_status(g)));
    }
    let mut o = String::new();
    let m = vmstatus(c, g);
    let mut keys: Vec<&String> = m.keys().filter(|k| *k != "cpu").collect();
    keys.sort();
    for k in keys {
        if let Some(s) = perl_scalar(&m[k]) {
            let _ = writeln!(o, "{k}: {s}");
        }
    }
    Reply::out(o)
}

// ------------------------------------------------------------------------------------------------
// ha-manager

/// Whether the node's pve-ha-manager prints the `fencing` line and the LRM watchdog field
/// (pve-ha-manager >= 5.1.3, §5.1, §9). Decided from the node's `pve-ha-manager` package when
/// listed; else from pve-manager >= 9.2, because PVE 9.1.1 ships pve-ha-manager 5.0.8
/// (`pveversion-v.pve9.1`) and the PVE 9.0/9.1 sample `ha-manager-status.migrate-error-waitlock`
/// has no fencing line, while 9.2 ships 5.2.x (`pveversion-v.not-correctly-installed.pve9.2`).
fn ha_new_format(n: &Node) -> bool {
    match n.packages.get("pve-ha-manager") {
        Some(v) if !version_key(v).is_empty() => ver_ge(v, &[5, 1, 3]),
        _ => pve_ge(n, &[9, 2]),
    }
}

/// `timestamp_to_status` of pve-ha-manager `API2/HA/Status.pm`: older than 30 s is dead, more
/// than 2 s in the future is drift.
fn ts_status(now: i64, ts: i64) -> Option<&'static str> {
    if ts + 30 < now {
        Some("old timestamp - dead?")
    } else if ts > now + 2 {
        Some("detected time drift!")
    } else {
        None
    }
}

fn sid(g: &Guest) -> String {
    format!(
        "{}:{}",
        if g.kind == GuestKind::Qemu {
            "vm"
        } else {
            "ct"
        },
        g.vmid
    )
}

/// The entries of GET `/cluster/ha/status/current` (pve-ha-manager `API2/HA/Status.pm`);
/// `ha-manager status` prints `"<type> <status>"` of each (§5.1).
fn ha_entries(c: &Cluster, node: &str, now: Timestamp) -> Vec<Map<String, Value>> {
    let now_s = now.as_second();
    let Some(n) = c.node(node) else {
        return Vec::new();
    };
    let new = ha_new_format(n);
    let quorate = c.cluster.is_none() || c.quorum_of(node).quorate;
    let mut res = Vec::new();
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let qs = if quorate {
        "OK".to_string()
    } else {
        format!("No quorum on node '{node}'!")
    };
    res.push(obj(json!({"id": "quorum", "type": "quorum", "node": node, "status": qs, "quorate": flag(quorate)})));
    // A dead node's timestamps are long past: the stored one, else a minute ago.
    let stamp = |n: Option<&Node>, stored: Option<i64>| {
        stored.unwrap_or(if n.is_some_and(|n| n.online) {
            now_s
        } else {
            now_s - 60
        })
    };
    let mut services: Vec<&Guest> = c.guests.iter().filter(|g| g.ha.is_some()).collect();
    services.sort_by_key(|g| sid(g));
    if let Some(master) = &c.ha.master {
        let mn = c.node(master);
        let ts = stamp(mn, c.ha.master_timestamp);
        let state = ts_status(now_s, ts)
            .map(str::to_string)
            .unwrap_or_else(|| c.ha.master_state.clone().unwrap_or_else(|| "active".into()));
        let status = format!(
            "{master} ({state}, {})",
            ctime(Timestamp::from_second(ts).unwrap_or(now))
        );
        res.push(obj(json!({"id": "master", "type": "master", "node": master, "status": status, "timestamp": ts})));
        if new {
            let armed = c.ha.fencing.clone().unwrap_or_else(|| {
                if services.is_empty() {
                    "standby"
                } else {
                    "armed"
                }
                .into()
            });
            let wd = if armed == "armed" {
                "CRM watchdog active"
            } else {
                "CRM watchdog standby"
            };
            res.push(obj(
                json!({"id": "fencing", "type": "fencing", "node": master,
                "status": format!("{armed} ({wd})"), "armed-state": armed}),
            ));
        }
        let mut nodes: Vec<&Node> = c.nodes.iter().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for ln in nodes {
            let id = format!("lrm:{}", ln.name);
            let Some(lrm) = &ln.lrm else {
                let status = format!("{} (unable to read lrm status)", ln.name);
                res.push(obj(
                    json!({"id": id, "type": "lrm", "node": ln.name, "status": status}),
                ));
                continue;
            };
            let ts = stamp(Some(ln), ln.lrm_timestamp);
            let state = ts_status(now_s, ts).unwrap_or(lrm);
            let date = ctime(Timestamp::from_second(ts).unwrap_or(now));
            let status = if new {
                let wd = if state == "active" {
                    "watchdog active"
                } else {
                    "watchdog standby"
                };
                format!("{} ({state}, {wd}, {date})", ln.name)
            } else {
                format!("{} ({state}, {date})", ln.name)
            };
            res.push(obj(json!({"id": id, "type": "lrm", "node": ln.name, "status": status, "timestamp": ts})));
        }
    }
    for g in services {
        let state = g.ha.clone().unwrap_or_default();
        let s = sid(g);
        let request = if matches!(state.as_str(), "stopped" | "request_stop" | "disabled") {
            "stopped"
        } else {
            "started"
        };
        res.push(obj(
            json!({"id": format!("service:{s}"), "type": "service", "sid": s, "node": g.node,
            "status": format!("{s} ({}, {state})", g.node), "state": state, "crm_state": state,
            "request_state": request, "max_restart": 1, "max_relocate": 1, "failback": 1}),
        ));
    }
    res
}

/// `ha-manager status` (§5.1): quorum, master, [fencing], lrm per node, services by sid.
pub fn ha_manager_status(c: &Cluster, node: &str, now: Timestamp) -> Reply {
    if let Err(r) = asker(c, node) {
        return r;
    }
    let mut o = String::new();
    for e in ha_entries(c, node, now) {
        let t = e.get("type").and_then(Value::as_str).unwrap_or("");
        let s = e.get("status").and_then(Value::as_str).unwrap_or("");
        let _ = writeln!(o, "{t} {s}");
    }
    Reply::out(o)
}

// ------------------------------------------------------------------------------------------------
// pveversion

/// `proxmox-ve`'s version: the package list's, else `X.Y.0` (PVE >= 8) or `X.Y-1` (PVE <= 7).
fn proxmox_ve_version(n: &Node) -> String {
    if let Some(v) = n.packages.get("proxmox-ve") {
        return v.clone();
    }
    let k = version_key(&n.manager_version);
    let (maj, min) = (
        k.first().copied().unwrap_or(0),
        k.get(1).copied().unwrap_or(0),
    );
    if maj >= 8 {
        format!("{maj}.{min}.0")
    } else {
        format!("{maj}.{min}-1")
    }
}

/// `pveversion [-v]` (§5.2).
pub fn pveversion(c: &Cluster, node: &str, verbose: bool) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err("unknown node", 255);
    };
    let stderr: String = n.apt_stderr.iter().map(|l| format!("{l}\n")).collect();
    if !verbose {
        let stdout = format!(
            "pve-manager/{}/{} (running kernel: {})\n",
            n.manager_version, n.repoid, n.kernel_running
        );
        return Reply {
            stdout,
            stderr,
            exit: 0,
        };
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "proxmox-ve: {} (running kernel: {})",
        proxmox_ve_version(n),
        n.kernel_running
    );
    let _ = writeln!(
        o,
        "pve-manager: {} (running version: {}/{})",
        n.manager_version, n.manager_version, n.repoid
    );
    let mut kernels = n.kernels_installed.clone();
    kernels.sort_by_key(|k| std::cmp::Reverse(version_key(k)));
    kernels.dedup();
    let series = |k: &str| {
        let p = version_key(k);
        format!(
            "{}.{}",
            p.first().copied().unwrap_or(0),
            p.get(1).copied().unwrap_or(0)
        )
    };
    let kver = |k: &str| k.trim_end_matches("-pve").to_string();
    // proxmox-kernel-* since PVE 8.1 (§9): helper first, then per kernel newest first the
    // `-signed` package, the series meta package right after the newest of its series
    // (`pveversion-v.pve9.1`). Before: pve-kernel-<series> metas, helper, then the kernels.
    let modern = pve_ge(n, &[8, 1]);
    if modern {
        if let Some(h) = n.packages.get("proxmox-kernel-helper") {
            let _ = writeln!(o, "proxmox-kernel-helper: {h}");
        }
        let mut seen = Vec::new();
        for k in &kernels {
            let _ = writeln!(o, "proxmox-kernel-{k}-signed: {}", kver(k));
            let s = series(k);
            if !seen.contains(&s) {
                let _ = writeln!(o, "proxmox-kernel-{s}: {}", kver(k));
                seen.push(s);
            }
        }
    } else {
        let mut seen = Vec::new();
        for k in &kernels {
            let s = series(k);
            if !seen.contains(&s) {
                let meta = format!("pve-kernel-{s}");
                let v = n
                    .packages
                    .get(&meta)
                    .cloned()
                    .unwrap_or_else(|| proxmox_ve_version(n));
                let _ = writeln!(o, "{meta}: {v}");
                seen.push(s);
            }
        }
        if let Some(h) = n.packages.get("pve-kernel-helper") {
            let _ = writeln!(o, "pve-kernel-helper: {h}");
        }
        for k in &kernels {
            let _ = writeln!(o, "pve-kernel-{k}: {}", kver(k));
        }
    }
    for (p, v) in &n.packages {
        let kernel_pkg = p.starts_with("pve-kernel-") || p.starts_with("proxmox-kernel-");
        // proxmox-kernel-helper is listed twice since PVE 8.1 (kernel regex + package list).
        if p == "proxmox-ve"
            || p == "pve-manager"
            || (kernel_pkg && !(modern && p == "proxmox-kernel-helper"))
        {
            continue;
        }
        let _ = writeln!(o, "{p}: {v}");
    }
    Reply {
        stdout: o,
        stderr,
        exit: 0,
    }
}

// ------------------------------------------------------------------------------------------------
// systemctl, zpool, corosync-cfgtool

/// Units that run on every PVE node unless the state says otherwise.
const DEFAULT_ACTIVE: &[&str] = &[
    "pve-cluster",
    "pvedaemon",
    "pveproxy",
    "pvestatd",
    "pvescheduler",
    "pve-firewall",
    "pve-ha-lrm",
    "pve-ha-crm",
    "spiceproxy",
    "chrony",
    "ssh",
    "sshd",
    "cron",
];

/// A unit's state word: the node's `services` (with or without `.service`), else `active` for
/// the standard PVE units (and corosync when clustered), else `inactive` (§8.4).
fn unit_state(c: &Cluster, n: &Node, unit: &str) -> String {
    let base = unit.strip_suffix(".service").unwrap_or(unit);
    if let Some(s) = n
        .services
        .get(unit)
        .or_else(|| n.services.get(base))
        .or_else(|| n.services.get(&format!("{base}.service")))
    {
        return s.clone();
    }
    if DEFAULT_ACTIVE.contains(&base) || (base == "corosync" && c.cluster.is_some()) {
        "active".into()
    } else {
        "inactive".into()
    }
}

/// `systemctl is-active UNIT...` (§8.4): one word per unit; exit 0 if any is active, else 3.
pub fn systemctl_is_active(c: &Cluster, node: &str, units: &[String]) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err("unknown node", 255);
    };
    let mut o = String::new();
    let mut any = false;
    for u in units {
        let s = unit_state(c, n, u);
        any |= s == "active";
        o.push_str(&s);
        o.push('\n');
    }
    Reply {
        stdout: o,
        stderr: String::new(),
        exit: if any { 0 } else { 3 },
    }
}

/// `zpool status -x` (§8.3).
pub fn zpool_status_x(c: &Cluster, node: &str) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err("unknown node", 255);
    };
    let mut o = n
        .zpool
        .clone()
        .unwrap_or_else(|| "all pools are healthy".into());
    if !o.ends_with('\n') {
        o.push('\n');
    }
    Reply::out(o)
}

/// `corosync-cfgtool -s` (§8.1): the corosync >= 3.1.5 layout from PVE 7.1, the 3.0.x one on
/// PVE 6.x/7.0, the corosync 2 ring layout before PVE 6. Peers are all nodes of the nodelist.
pub fn corosync_cfgtool_s(c: &Cluster, node: &str) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err("unknown node", 255);
    };
    let Some(ci) = c.cluster.as_ref().filter(|_| corosync_up(c, n)) else {
        return Reply::err("Could not initialize corosync configuration API error 2", 1);
    };
    let mut peers: Vec<&Node> = c.nodes.iter().collect();
    peers.sort_by_key(|p| p.nodeid);
    let word = |p: &Node| {
        if p.name == n.name {
            "localhost"
        } else if p.online {
            "connected"
        } else {
            "disconnected"
        }
    };
    let mut o = String::new();
    if pve_ge(n, &[7, 1]) {
        let _ = writeln!(o, "Local node ID {}, transport {}", n.nodeid, ci.transport);
        let _ = write!(o, "LINK ID 0 udp\n\taddr\t= {}\n\tstatus:\n", n.ip);
        for p in peers {
            let _ = writeln!(o, "\t\tnodeid: {:>10}:\t{}", p.nodeid, word(p));
        }
    } else if pve_ge(n, &[6]) {
        let _ = write!(
            o,
            "Printing link status.\nLocal node ID {}\nLINK ID 0\n\taddr\t= {}\n\tstatus:\n",
            n.nodeid, n.ip
        );
        for p in peers {
            let _ = writeln!(o, "\t\tnodeid {:>2}:\t{}", p.nodeid, word(p));
        }
    } else {
        let _ = write!(
            o,
            "Printing ring status.\nLocal node ID {}\nRING ID 0\n\tid\t= {}\n",
            n.nodeid, n.ip
        );
        o.push_str("\tstatus\t= ring 0 active with no faults\n");
    }
    Reply::out(o)
}

// ------------------------------------------------------------------------------------------------
// pvesh

/// GET `/nodes/N/status` (pve-manager `PVE/API2/Nodes.pm` `status`): `cpu` and `wait` from
/// pve-common `PVE::ProcFSTools::read_proc_stat` (an integer 0 when idle, else a fraction),
/// `cpuinfo` from `read_cpuinfo` (`family`, `mhz` and `hvm` are regex captures: strings),
/// `memory` and `swap` from `read_meminfo` (`used` = `MemTotal - MemAvailable`), `loadavg`
/// from `read_loadavg` (captured strings), `rootfs` from `df('/')`, `boot-info` from
/// `get_boot_mode_info`, plus the `idle: 0` the handler starts from. The node's `stats`
/// override any of these keys (`uptime`, `cpu`, ...).
/// `df('/')` of the node: (total, used, avail) bytes. ext4 keeps 5 % for root, so `free`
/// (blocks - used) exceeds `avail`.
pub(super) fn rootfs(n: &Node) -> (u64, u64, u64) {
    let avail = n.apt.disk_avail.get("/").copied().unwrap_or(60 << 30);
    let total = (100u64 << 30).max(avail * 2);
    let reserved = total / 20;
    (total, total.saturating_sub(avail + reserved), avail)
}

fn node_status_json(c: &Cluster, n: &Node) -> Value {
    let used = c.memory_used(&n.name).min(n.memory_total);
    let kver = n.kernel_running.trim_end_matches("-pve");
    let version = format!("#1 SMP PREEMPT_DYNAMIC PMX {kver}");
    let frac = |x: f64| {
        if x == 0.0 {
            json!(0)
        } else {
            json_float(x.clamp(0.0, 1.0))
        }
    };
    let load = (n.cpu_usage + n.io_wait) * f64::from(n.cpus);
    let loadavg = [load, load * 0.95, load * 0.9].map(|l| format!("{l:.2}"));
    let swap_total = n.swap_total.unwrap_or(8 << 30);
    let swap_used = n.swap_used.min(swap_total);
    let (total, root_used, avail) = rootfs(n);
    let mut v = json!({
        "boot-info": {"mode": "efi", "secureboot": 0},
        "cpu": frac(n.cpu_usage),
        "cpuinfo": {"cores": n.cpus, "cpus": n.cpus, "family": "25", "flags": CPU_FLAGS, "hvm": "1",
            "mhz": "2999.998", "model": "AMD EPYC 7313 16-Core Processor", "sockets": 1,
            "user_hz": 100, "vendor": "AuthenticAMD"},
        "current-kernel": {"machine": "x86_64", "release": n.kernel_running, "sysname": "Linux", "version": version},
        "idle": 0,
        "ksm": {"shared": 0},
        "kversion": format!("Linux {} {version}", n.kernel_running),
        "loadavg": loadavg,
        "memory": {"available": n.memory_total - used, "free": n.memory_total - used,
            "total": n.memory_total, "used": used},
        "pveversion": format!("pve-manager/{}/{}", n.manager_version, n.repoid),
        "rootfs": {"avail": avail, "free": total - root_used, "total": total, "used": root_used},
        "swap": {"free": swap_total - swap_used, "total": swap_total, "used": swap_used},
        "uptime": 0,
        "wait": frac(n.io_wait),
    });
    if let Some(m) = v.as_object_mut() {
        for (k, x) in &n.stats {
            if m.contains_key(k) {
                m.insert(k.clone(), x.clone());
            }
        }
    }
    v
}

/// `/proc/cpuinfo` `flags` of the lab's CPU (shortened; `svm` makes `hvm` true).
const CPU_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold v_vmsave_vmload vgif v_spec_ctrl umip pku ospke vaes vpclmulqdq rdpid overflow_recov succor smca";

/// GET `/cluster/status` (§6.2): the cluster entry, then the nodes (state order stands in for
/// Perl hash order). An offline node's subscription level is not known (`""`).
fn cluster_status_json(c: &Cluster, node: &str) -> Value {
    let mut v = Vec::new();
    let Some(ci) = &c.cluster else {
        let n = c.node(node);
        v.push(json!({"id": format!("node/{node}"), "ip": n.map_or("", |n| &n.ip), "level": n.map_or("", |n| &n.subscription),
            "local": 1, "name": node, "nodeid": 0, "online": 1, "type": "node"}));
        return Value::Array(v);
    };
    v.push(json!({"id": "cluster", "name": ci.name, "nodes": c.nodes.len(), "quorate": flag(c.quorum_of(node).quorate),
        "type": "cluster", "version": ci.config_version}));
    for n in &c.nodes {
        let level = if n.online {
            n.subscription.as_str()
        } else {
            ""
        };
        v.push(json!({"id": format!("node/{}", n.name), "ip": n.ip, "level": level, "local": flag(n.name == node),
            "name": n.name, "nodeid": n.nodeid, "online": flag(n.online), "type": "node"}));
    }
    Value::Array(v)
}

/// GET `/cluster/resources` (§6.3): guests, nodes, storages per node; `type` filters `vm`,
/// `node`, `storage`. Entries of offline nodes carry no statistics.
fn cluster_resources_json(c: &Cluster, filter: Option<&str>) -> Value {
    let want = |t: &str| match filter {
        None => true,
        Some("vm") => t == "qemu" || t == "lxc",
        Some(f) => f == t,
    };
    let online = |name: &str| c.node(name).is_some_and(|n| n.online);
    let mut v = Vec::new();
    for g in &c.guests {
        let t = if g.kind == GuestKind::Qemu {
            "qemu"
        } else {
            "lxc"
        };
        if !want(t) {
            continue;
        }
        let id = format!("{t}/{}", g.vmid);
        if !online(&g.node) {
            v.push(
                json!({"id": id, "node": g.node, "status": "unknown", "type": t, "vmid": g.vmid}),
            );
            continue;
        }
        let st = vmstatus(c, g);
        let mut m = Map::new();
        for k in [
            "cpu",
            "disk",
            "diskread",
            "diskwrite",
            "mem",
            "netin",
            "netout",
            "uptime",
        ] {
            m.insert(k.into(), st.get(k).cloned().unwrap_or(json!(0)));
        }
        if g.kind == GuestKind::Qemu {
            let mh = st
                .get("memhost")
                .or_else(|| st.get("mem"))
                .cloned()
                .unwrap_or(json!(0));
            m.insert("memhost".into(), mh);
        }
        for (k, val) in [
            ("id", json!(id)),
            ("maxcpu", st["cpus"].clone()),
            ("maxdisk", json!(g.maxdisk)),
        ] {
            m.insert(k.into(), val);
        }
        m.insert("maxmem".into(), json!(g.maxmem));
        m.insert("name".into(), json!(vm_name(g)));
        m.insert("node".into(), json!(g.node));
        m.insert("status".into(), json!(plain_status(g)));
        m.insert(
            "template".into(),
            json!(st.get("template").cloned().unwrap_or(json!(0))),
        );
        m.insert("type".into(), json!(t));
        m.insert("vmid".into(), json!(g.vmid));
        for k in ["lock", "tags", "pool"] {
            if let Some(x) = st.get(k) {
                m.insert(k.into(), x.clone());
            }
        }
        if let Some(h) = &g.ha {
            m.insert("hastate".into(), json!(h));
        }
        v.push(Value::Object(m));
    }
    if want("node") {
        for n in &c.nodes {
            let maxdisk = n.stats.get("maxdisk").cloned().unwrap_or(json!(0));
            if !n.online {
                v.push(json!({"id": format!("node/{}", n.name), "level": "", "maxcpu": n.cpus, "maxdisk": maxdisk,
                    "maxmem": n.memory_total, "node": n.name, "status": "offline", "type": "node"}));
                continue;
            }
            let mut m = Map::new();
            for (k, d) in [
                ("cpu", json!(0)),
                ("disk", json!(0)),
                ("uptime", json!(0)),
                ("cgroup-mode", json!(2)),
                ("host-arch", json!("x86_64")),
            ] {
                m.insert(k.into(), n.stats.get(k).cloned().unwrap_or(d));
            }
            m.insert("id".into(), json!(format!("node/{}", n.name)));
            m.insert("level".into(), json!(n.subscription));
            m.insert("maxcpu".into(), json!(n.cpus));
            m.insert("maxdisk".into(), maxdisk);
            m.insert("maxmem".into(), json!(n.memory_total));
            m.insert("mem".into(), json!(c.memory_used(&n.name)));
            m.insert("node".into(), json!(n.name));
            m.insert("status".into(), json!("online"));
            m.insert("type".into(), json!("node"));
            v.push(Value::Object(m));
        }
    }
    if want("storage") {
        for n in &c.nodes {
            for s in &c.storages {
                let sv = storage_view(s, &n.name);
                if !sv.enabled {
                    continue;
                }
                let mut e = json!({"content": s.content, "id": format!("storage/{}/{}", n.name, s.id), "node": n.name,
                    "plugintype": s.kind, "shared": flag(s.shared), "status": "unknown", "storage": s.id, "type": "storage"});
                if n.online && sv.active {
                    e["status"] = json!("available");
                    e["disk"] = json!(sv.used);
                    e["maxdisk"] = json!(sv.total);
                }
                v.push(e);
            }
        }
    }
    Value::Array(v)
}

/// GET `/nodes/<node>/storage` (§2): every storage with 0/1 flags, bytes, `used_fraction` only
/// when the storage reports a size.
fn nodes_storage_json(c: &Cluster, node: &str) -> Value {
    let mut v = Vec::new();
    for s in &c.storages {
        let sv = storage_view(s, node);
        let mut e = json!({"active": flag(sv.active), "avail": sv.avail, "content": s.content, "enabled": flag(sv.enabled),
            "shared": flag(s.shared), "storage": s.id, "total": sv.total, "type": s.kind, "used": sv.used});
        if sv.total > 0 {
            e["used_fraction"] = json_float(sv.used as f64 / sv.total as f64);
        }
        v.push(e);
    }
    Value::Array(v)
}

/// Whether `storage` can be used on `node` (enabled there).
fn storage_on(c: &Cluster, storage: &str, node: &str) -> bool {
    c.storages
        .iter()
        .any(|s| s.id == storage && storage_view(s, node).enabled)
}

/// pve-ha-manager `src/PVE/HA/Config.pm` `get_resource_motion_info`: for an HA guest, its
/// positive-affinity partners (`dependent`) and, per online node, the negative-affinity
/// partners already there (`blocking`, cause always `resource-affinity`).
fn motion_info(c: &Cluster, g: &Guest) -> (Vec<String>, BTreeMap<String, Vec<Value>>) {
    let me = g.ha_sid();
    let mut dependent = Vec::new();
    let mut blocking: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in c
        .ha_rules
        .iter()
        .filter(|r| r.kind == "resource-affinity" && r.resources.contains(&me))
    {
        for other in r.resources.iter().filter(|x| **x != me) {
            let Some(o) = c
                .guests
                .iter()
                .find(|x| x.ha_sid() == *other && x.ha.is_some())
            else {
                continue;
            };
            if r.affinity.as_deref() == Some("positive") {
                dependent.push(other.clone());
            } else if c.node(&o.node).is_some_and(|n| n.online) {
                blocking
                    .entry(o.node.clone())
                    .or_default()
                    .push(json!({"cause": "resource-affinity", "sid": other}));
            }
        }
    }
    dependent.sort();
    (dependent, blocking)
}

/// GET `/nodes/N/{qemu,lxc}/ID/migrate`, in the shape of the asking node's PVE version:
///
/// - qemu, PVE ≥ 8.4 (qemu-server `src/PVE/API2/Qemu.pm` `migrate_vm_precondition`, commit
///   8aeaad24): `not_allowed_nodes` starts from `check_local_storage_availability`, which
///   pre-fills every node with `{}`; storages the target lacks, and from PVE 9 negative HA
///   partners there (`blocking-ha-resources`), fill it; nodes left `{}` are `allowed_nodes`.
/// - qemu, PVE < 8.4: the same lists for a stopped VM only; a running one gets none.
/// - lxc: PVE ≥ 9.0 only (pve-container `src/PVE/API2/LXC.pm`), hyphenated keys, only the HA
///   blockers (no storage check); older PVE has no such endpoint.
fn migrate_json(c: &Cluster, g: &Guest, pve: &Node) -> Option<Value> {
    let ha = g.ha.is_some() && pve_ge(pve, &[9]);
    let (dependent, blocking) = if ha {
        motion_info(c, g)
    } else {
        Default::default()
    };
    let others = || c.nodes.iter().filter(|n| n.name != g.node);
    if g.kind == GuestKind::Lxc {
        if !pve_ge(pve, &[9]) {
            return None;
        }
        let mut allowed = Vec::new();
        let mut not_allowed = Map::new();
        for n in others() {
            match blocking.get(&n.name) {
                Some(b) => {
                    not_allowed.insert(n.name.clone(), json!({"blocking-ha-resources": b}));
                }
                None => allowed.push(json!(n.name)),
            }
        }
        let mut v = json!({"allowed-nodes": allowed, "not-allowed-nodes": not_allowed,
            "running": flag(is_running(g))});
        if ha {
            v["dependent-ha-resources"] = json!(dependent);
        }
        return Some(v);
    }
    let vols = volumes(g);
    let mut storages: Vec<String> = vols
        .iter()
        .filter_map(|v| v.volid.split_once(':').map(|(s, _)| s.to_string()))
        .collect();
    for d in &g.disks {
        storages.push(d.clone());
    }
    storages.sort();
    storages.dedup();
    let mut allowed = Vec::new();
    let mut not_allowed = Map::new();
    for n in others() {
        let missing: Vec<&String> = storages
            .iter()
            .filter(|s| !storage_on(c, s, &n.name))
            .collect();
        let mut entry = Map::new();
        if !missing.is_empty() {
            entry.insert("unavailable_storages".into(), json!(missing));
        }
        if let Some(b) = blocking.get(&n.name) {
            entry.insert("blocking-ha-resources".into(), json!(b));
        }
        if entry.is_empty() {
            allowed.push(json!(n.name));
        }
        not_allowed.insert(n.name.clone(), Value::Object(entry));
    }
    let shared = |st: &str| c.storages.iter().any(|s| s.id == st && s.shared);
    let local_disks: Vec<Value> = vols
        .iter()
        .filter(|v| v.volid.split_once(':').is_some_and(|(s, _)| !shared(s)))
        .map(|v| json!({"drivename": v.drive, "size": v.size, "volid": v.volid}))
        .collect();
    let local_resources: Vec<Value> = g
        .config
        .iter()
        .filter(|(k, v)| {
            let base = k.trim_end_matches(|c: char| c.is_ascii_digit());
            matches!(base, "hostpci" | "parallel")
                || (base == "usb" && !v.contains("spice"))
                || (base == "serial" && v.starts_with("/dev/"))
        })
        .map(|(k, _)| json!(k))
        .collect();
    let mut v = json!({"local_disks": local_disks, "local_resources": local_resources,
        "mapped-resources": [], "running": flag(is_running(g))});
    if pve_ge(pve, &[8, 4]) {
        v["allowed_nodes"] = json!(allowed);
        v["not_allowed_nodes"] = Value::Object(not_allowed);
        v["has-dbus-vmstate"] = json!(1);
        v["mapped-resource-info"] = json!({});
        if ha {
            v["dependent-ha-resources"] = json!(dependent);
        }
    } else if !is_running(g) {
        v["allowed_nodes"] = json!(allowed);
        v["not_allowed_nodes"] = Value::Object(not_allowed);
    }
    Some(v)
}

/// GET `/cluster/ha/groups` (PVE ≤ 8; pve-ha-manager 4.0.x `src/PVE/API2/HA/Groups.pm`
/// `index`): the lab keeps PVE 9's node-affinity rules, so each is served as the group it was
/// migrated from (`PVE::HA::Groups::migrate_groups_to_rules`: `restricted` became `strict`).
fn ha_groups_json(c: &Cluster) -> Value {
    let digest = "3a7e1c9b5d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c";
    Value::Array(
        c.ha_rules
            .iter()
            .filter(|r| r.kind == "node-affinity")
            .map(|r| {
                let mut nodes = r.nodes.clone();
                nodes.sort();
                let mut v = json!({"digest": digest, "group": r.rule, "nodes": nodes.join(","),
                    "type": "group"});
                if r.strict {
                    v["restricted"] = json!(1);
                }
                v
            })
            .collect(),
    )
}

/// GET `/cluster/ha/resources` (pve-ha-manager `src/PVE/API2/HA/Resources.pm` `index`): each
/// HA guest with `sid`, `type`, its requested `state` and, on PVE ≤ 8, its group.
fn ha_resources_json(c: &Cluster, pve9: bool) -> Value {
    let digest = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c";
    let mut out: Vec<(String, Value)> = c
        .guests
        .iter()
        .filter_map(|g| {
            let state = g.ha.as_ref()?;
            let sid = g.ha_sid();
            let kind = if g.kind == GuestKind::Qemu {
                "vm"
            } else {
                "ct"
            };
            let mut v = json!({"digest": digest, "sid": sid, "state": state, "type": kind});
            if !pve9
                && let Some(r) = c
                    .ha_rules
                    .iter()
                    .find(|r| r.kind == "node-affinity" && r.resources.contains(&sid))
            {
                v["group"] = json!(r.rule);
            }
            Some((sid, v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(out.into_iter().map(|(_, v)| v).collect())
}

/// GET `/cluster/ha/rules` (PVE ≥ 9.0; pve-ha-manager `src/PVE/API2/HA/Rules.pm` `index`):
/// resources and nodes comma-joined, `strict` only where set (`set_rule_defaults` skips falsy
/// defaults), `digest` and `order` on each.
fn ha_rules_json(c: &Cluster) -> Value {
    let digest = "5c1fb7ef3c8d8a3e0a2b1f3d9e4c6a7b8d9e0f12";
    let rules: Vec<Value> = c
        .ha_rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut resources = r.resources.clone();
            resources.sort();
            let mut v = json!({"digest": digest, "order": i + 1, "resources": resources.join(","),
                "rule": r.rule, "type": r.kind});
            if !r.nodes.is_empty() {
                let mut nodes = r.nodes.clone();
                nodes.sort();
                v["nodes"] = json!(nodes.join(","));
            }
            if r.strict {
                v["strict"] = json!(1);
            }
            if let Some(a) = &r.affinity {
                v["affinity"] = json!(a);
            }
            v
        })
        .collect();
    Value::Array(rules)
}

/// GET `/cluster/options` (pve-manager `PVE/API2/Cluster.pm` `get_options`, as root): the
/// datacenter.cfg keys as pve-cluster `parse_datacenter_config` reads them, values kept as the
/// file's text (pve-common `PVE::JSONSchema::parse_config`: `max_workers` is the string `"4"`),
/// `description` the comment lines (`""`), `mac_prefix` the Proxmox OUI when unset, and
/// `allowed-tags` (no tags defined: empty).
fn cluster_options_json(c: &Cluster) -> Value {
    let mut v = json!({"allowed-tags": [], "description": "", "mac_prefix": "BC:24:11"});
    if let Some(n) = c.datacenter.max_workers {
        v["max_workers"] = json!(n.to_string());
    }
    v
}

/// `pvesh get PATH --output-format json` (§6): compact key-sorted JSON and a newline.
pub fn pvesh_get(c: &Cluster, node: &str, path: &str, now: Timestamp) -> Reply {
    if let Err(r) = asker(c, node) {
        return r;
    }
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let filter = query.split('&').find_map(|kv| kv.strip_prefix("type="));
    let content = query.split('&').find_map(|kv| kv.strip_prefix("content="));
    let parts: Vec<&str> = p.trim_matches('/').split('/').collect();
    let no_handler = || Reply::err(format!("No 'get' handler defined for '{path}'"), 2);
    // `localhost` is the node pvesh runs on (pve-manager `PVE/CLI/pvesh.pm` `check_proxyto`).
    let target = |name: &str| -> Result<&Node, Reply> {
        let name = if name == "localhost" { node } else { name };
        match c.node(name) {
            None => Err(Reply::err(
                format!(
                    "hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known"
                ),
                255,
            )),
            Some(n) if !n.online => Err(Reply::err(
                format!("ssh: connect to host {} port 22: No route to host", n.ip),
                255,
            )),
            Some(n) => Ok(n),
        }
    };
    let v = match parts.as_slice() {
        ["cluster", "status"] => cluster_status_json(c, node),
        ["cluster", "resources"] => cluster_resources_json(c, filter),
        ["cluster", "options"] => cluster_options_json(c),
        ["cluster", "ha", "rules"] => match asker(c, node) {
            Ok(n) if pve_ge(n, &[9]) => ha_rules_json(c),
            _ => return no_handler(),
        },
        // PVE 9 keeps the endpoint but refuses once the groups are migrated (pve-ha-manager
        // `API2/HA/Groups.pm` `index`).
        ["cluster", "ha", "groups"] => match asker(c, node) {
            Ok(n) if !pve_ge(n, &[9]) => ha_groups_json(c),
            Ok(_) => {
                return Reply::err(
                    "cannot index groups: ha groups have been migrated to rules",
                    255,
                );
            }
            Err(r) => return r,
        },
        ["cluster", "ha", "resources"] => match asker(c, node) {
            Ok(n) => ha_resources_json(c, pve_ge(n, &[9])),
            Err(r) => return r,
        },
        ["cluster", "ha", "status", "current"] => Value::Array(
            ha_entries(c, node, now)
                .into_iter()
                .map(Value::Object)
                .collect(),
        ),
        ["nodes", n, "storage"] => match target(n) {
            Ok(t) => nodes_storage_json(c, &t.name),
            Err(r) => return r,
        },
        ["nodes", n, "storage", sid, "content"] => match target(n) {
            Ok(t) => match storage_content_json(c, &t.name, sid, content) {
                Ok(v) => v,
                Err(r) => return r,
            },
            Err(r) => return r,
        },
        ["nodes", n, "status"] => match target(n) {
            Ok(t) => node_status_json(c, t),
            Err(r) => return r,
        },
        ["cluster", "tasks"] => return super::health::cluster_tasks(c, node, now.as_second()),
        ["nodes", n, "tasks"] => match target(n) {
            Ok(t) => {
                let q: Vec<(String, String)> = query
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                return super::health::node_tasks(c, t, &q, now.as_second());
            }
            Err(r) => return r,
        },
        // No `proxyto` and no `localhost` resolution: the handler reads the named node's RRD
        // file on this node (pve-manager `PVE/API2/Nodes.pm` `rrddata`).
        ["nodes", n, "rrddata"] => {
            let q: Vec<(String, String)> = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            return super::health::node_rrddata(c, node, n, &q, now.as_second());
        }
        ["nodes", n, "disks", "list"] => match target(n) {
            Ok(t) => return super::health::disks_list(t),
            Err(r) => return r,
        },
        ["nodes", n, "subscription"] => match target(n) {
            Ok(t) => return super::health::subscription_json(t),
            Err(r) => return r,
        },
        ["nodes", n, kind @ ("qemu" | "lxc"), id, "migrate"] => {
            let t = match target(n) {
                Ok(t) => t,
                Err(r) => return r,
            };
            let kind = if *kind == "qemu" {
                GuestKind::Qemu
            } else {
                GuestKind::Lxc
            };
            let Ok(vmid) = id.parse::<u32>() else {
                return no_handler();
            };
            match local_guest(c, &t.name, kind, vmid) {
                // `migrate_vm_precondition` checks the lock first ("try to detect errors
                // early": `PVE::QemuConfig->check_lock`, qemu-server `src/PVE/API2/Qemu.pm`;
                // `PVE::LXC::Config->check_lock`, pve-container `src/PVE/API2/LXC.pm`, PVE 9),
                // and `PVE::AbstractConfig::check_lock` dies `VM is locked (backup)`.
                Ok(g) if g.lock.is_some() && (kind == GuestKind::Qemu || pve_ge(t, &[9])) => {
                    let what = if kind == GuestKind::Qemu { "VM" } else { "CT" };
                    return Reply::err(
                        format!(
                            "{what} is locked ({})",
                            g.lock.as_deref().unwrap_or_default()
                        ),
                        255,
                    );
                }
                Ok(g) => match migrate_json(c, g, t) {
                    Some(v) => v,
                    None => return no_handler(),
                },
                Err(r) => return r,
            }
        }
        _ => return no_handler(),
    };
    Reply::out(json_line(&v))
}

// ------------------------------------------------------------------------------------------------
// pve8to9

/// The pve8to9 logger (pve-manager `PVE/CLI/pve8to9.pm`): colour, `LEVEL: msg`, newline, and
/// always a reset, which thus lands at the start of the next line (§0.7, §7).
#[derive(Default)]
struct Checker {
    o: String,
    first: bool,
    pass: u32,
    skip: u32,
    notice: u32,
    warn: u32,
    fail: u32,
}

impl Checker {
    fn header(&mut self, h: &str) {
        if self.first {
            self.o.push('\n');
        }
        self.first = true;
        let _ = write!(self.o, "= {h} =\n\n");
    }

    fn text(&mut self, t: &str) {
        self.o.push_str(t);
        self.o.push('\n');
    }

    fn log(&mut self, level: &str, msg: &str) {
        let color = match level {
            "PASS" => {
                self.pass += 1;
                "\x1b[32m"
            }
            "SKIP" => {
                self.skip += 1;
                ""
            }
            "NOTICE" => {
                self.notice += 1;
                "\x1b[1m"
            }
            "WARN" => {
                self.warn += 1;
                "\x1b[33m"
            }
            "FAIL" => {
                self.fail += 1;
                "\x1b[1;31m"
            }
            _ => "",
        };
        let _ = write!(self.o, "{color}{level}: {msg}\n\x1b[0m");
    }

    fn summary(&mut self) {
        self.header("SUMMARY");
        let total = self.pass + self.skip + self.notice + self.warn + self.fail;
        let _ = writeln!(self.o, "TOTAL:    {total}");
        let _ = write!(self.o, "\x1b[32mPASSED:   {}\n\x1b[0m", self.pass);
        let _ = writeln!(self.o, "SKIPPED:  {}", self.skip);
        let colored_if =
            |s: String, c: &str, on: bool| if on { format!("{c}{s}\x1b[0m") } else { s };
        let w = colored_if(
            format!("WARNINGS: {}\n", self.warn),
            "\x1b[33m",
            self.warn > 0,
        );
        let f = colored_if(
            format!("FAILURES: {}\n", self.fail),
            "\x1b[1;31m",
            self.fail > 0,
        );
        self.o.push_str(&w);
        self.o.push_str(&f);
        if self.warn > 0 || self.fail > 0 {
            let c = if self.fail > 0 {
                "\x1b[1;31m"
            } else {
                "\x1b[33m"
            };
            let _ = write!(
                self.o,
                "{c}\nATTENTION: Please check the output for detailed information!\n\x1b[0m"
            );
            if self.fail > 0 {
                let _ = write!(
                    self.o,
                    "{c}Try to solve the problems one at a time and then run this checklist tool again.\n\x1b[0m"
                );
            }
        }
    }
}

/// `pve8to9 [--full]` (§7): the sections of the real checker with the checks the state can
/// answer; WARN/FAIL follow the state. Always exit 0, colours always on (§0.7).
pub fn pve8to9(c: &Cluster, node: &str, full: bool) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err("unknown node", 255);
    };
    let mut k = Checker::default();
    k.header("CHECKING VERSION INFORMATION FOR PVE PACKAGES");
    k.text("Checking for package updates..");
    k.log("PASS", "all packages up-to-date");
    k.text("\nChecking proxmox-ve package version..");
    if pve_ge(n, &[9]) {
        k.log("PASS", "already upgraded to Proxmox VE 9");
    } else if pve_ge(n, &[8, 4]) {
        k.log("PASS", "proxmox-ve package has version >= 8.4-0");
    } else {
        k.log(
            "FAIL",
            "proxmox-ve package is too old, please upgrade to >= 8.4-0!",
        );
    }
    k.text("\nChecking running kernel version..");
    let newest = super::state::newest_kernel(&n.kernels_installed);
    match newest {
        Some(nk) if nk != n.kernel_running => k.log(
            "WARN",
            &format!("a suitable kernel ({nk}) is installed, but an unsuitable ({}) is booted, missing reboot?!", n.kernel_running),
        ),
        _ => k.log("PASS", &format!("running kernel '{}' is considered suitable for upgrade.", n.kernel_running)),
    }

    k.header("CHECKING CLUSTER HEALTH/SETTINGS");
    if c.cluster.is_none() {
        k.log("SKIP", "standalone node.");
    } else {
        for u in ["pve-cluster", "corosync"] {
            let s = unit_state(c, n, u);
            let lvl = if s == "active" { "PASS" } else { "FAIL" };
            k.log(
                lvl,
                &format!("systemd unit '{u}.service' is in state '{s}'"),
            );
        }
        let q = c.quorum_of(&n.name);
        if q.quorate {
            k.log("PASS", "Cluster Filesystem is quorate.");
        } else {
            k.log("FAIL", "Cluster Filesystem readonly, lost quorum?!");
        }
        k.text("\nAnalzying quorum settings and state..");
        k.log("INFO", &format!("configured votes - nodes: {}", q.expected));
        k.log("INFO", &format!("configured votes - total: {}", q.expected));
        let offline: Vec<&str> = c
            .nodes
            .iter()
            .filter(|x| !x.online)
            .map(|x| x.name.as_str())
            .collect();
        if offline.is_empty() {
            k.log("PASS", "no nodes offline");
        } else {
            k.log(
                "WARN",
                &format!("{} node(s) offline: {}", offline.len(), offline.join(", ")),
            );
        }
        k.text("\nChecking nodelist entries..");
        k.log("PASS", "nodelist settings OK");
        k.text("\nChecking totem settings..");
        k.log("PASS", "totem settings OK");
    }

    k.header("CHECKING HYPER-CONVERGED CEPH STATUS");
    k.log("SKIP", "no hyper-converged ceph setup detected!");

    k.header("CHECKING CONFIGURED STORAGES");
    let mut st: Vec<&Storage> = c.storages.iter().collect();
    st.sort_by(|a, b| a.id.cmp(&b.id));
    for s in st {
        let v = storage_view(s, node);
        if !v.enabled {
            k.log("SKIP", &format!("storage '{}' disabled.", s.id));
        } else if v.active {
            k.log("PASS", &format!("storage '{}' enabled and active.", s.id));
        } else {
            k.log(
                "WARN",
                &format!("storage '{}' enabled but not active!", s.id),
            );
        }
    }
    k.log("INFO", "Checking storage content type configuration..");
    k.log("PASS", "no storage content problems found");

    k.header("VIRTUAL GUEST CHECKS");
    k.log("INFO", "Checking for running guests..");
    let running = c
        .guests
        .iter()
        .filter(|g| g.node == node && is_running(g))
        .count();
    if running > 0 {
        k.log(
            "WARN",
            &format!("{running} running guest(s) detected - consider migrating or stopping them."),
        );
    } else {
        k.log("PASS", "no running guest detected.");
    }

    k.header("MISCELLANEOUS CHECKS");
    k.log("INFO", "Checking common daemon services..");
    for u in ["pveproxy", "pvedaemon", "pvescheduler", "pvestatd"] {
        let s = unit_state(c, n, u);
        let lvl = if s == "active" { "PASS" } else { "FAIL" };
        k.log(
            lvl,
            &format!("systemd unit '{u}.service' is in state '{s}'"),
        );
    }
    k.log("INFO", "Checking for supported & active NTP service..");
    k.log(
        "PASS",
        "Detected active time synchronisation unit 'chrony.service'",
    );
    let zpool = n.zpool.as_deref().map(str::trim).unwrap_or("");
    if !matches!(zpool, "" | "all pools are healthy" | "no pools available") {
        k.log("WARN", "ZFS pool(s) not healthy, check 'zpool status -x'");
    }
    if full {
        k.log(
            "INFO",
            "Checking container configs for cgroupv2 compatibility..",
        );
        k.log("PASS", "no container with cgroupv1-only distribution found");
    } else {
        k.log("SKIP", "NOTE: Expensive checks, like CT cgroupv2 compat, not performed without '--full' parameter");
    }
    k.summary();
    let stderr: String = n.apt_stderr.iter().map(|l| format!("{l}\n")).collect();
    Reply {
        stdout: k.o,
        stderr,
        exit: 0,
    }
}

#[cfg(test)]
mod tests;

/// `date +%z` (GNU coreutils, gnulib `nstrftime` `%z`): `+hhmm`, sign always printed.
pub fn utc_offset(n: &super::state::Node) -> String {
    let m = n.utc_offset_minutes;
    let sign = if m < 0 { '-' } else { '+' };
    format!("{sign}{:02}{:02}\n", m.abs() / 60, m.abs() % 60)
}
