//! Node health reads of the lab: local disks (`/nodes/N/disks/list`), task lists
//! (`/nodes/N/tasks`, `/cluster/tasks`), storage replication (`pvesr status`), the subscription
//! (`pvesubscription get`, `/nodes/N/subscription`) and the node certificates
//! (`pvenode cert info`). Each renderer cites the PVE source it reproduces. Like `render`, this
//! module shares no code with the parsers in `crate::facts`.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::render::Reply;
use super::state::{Cluster, Disk, GuestKind, Node, Task};

/// One line of compact, key-sorted JSON (pvesh `--output-format json`).
fn json_line(v: &Value) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The lab's start (state `started`), else `now`.
fn started(c: &Cluster, now: i64) -> i64 {
    c.started.unwrap_or(now)
}

/// `strftime("%Y-%m-%d_%H:%M:%S", localtime($t))` in the node's time zone.
fn local_time(n: &Node, t: i64, fmt: &str) -> String {
    let t = t + i64::from(n.utc_offset_minutes) * 60;
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .strftime(fmt)
                .to_string()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------------------------
// Disks

/// The disks a node has when the state lists none: an NVMe system disk (LVM install: its first
/// partition is `BIOS boot`) and a SATA SSD.
pub fn default_disks() -> Vec<Disk> {
    vec![
        Disk {
            dev: "nvme0n1".into(),
            kind: "nvme".into(),
            model: "SAMSUNG MZVL21T0HCLR-00B00".into(),
            serial: "S676NF0R512345".into(),
            size: 1_024_209_543_168,
            health: Some("PASSED".into()),
            wearout: Some(98),
            used: Some("BIOS boot".into()),
            rpm: None,
            wwn: Some("eui.002538b511b0a0b1".into()),
            vendor: None,
        },
        Disk {
            dev: "sda".into(),
            kind: "ssd".into(),
            model: "Samsung_SSD_870_EVO_1TB".into(),
            serial: "S6PTNM0T612345A".into(),
            size: 1_000_204_886_016,
            health: Some("PASSED".into()),
            wearout: Some(99),
            used: Some("LVM".into()),
            rpm: None,
            wwn: Some("0x5002538f4321abcd".into()),
            vendor: Some("ATA     ".into()),
        },
    ]
}

/// GET `/nodes/N/disks/list` (pve-storage `src/PVE/API2/Disks.pm` `list`, entries from
/// `src/PVE/Diskmanage.pm` `get_disks`), sorted by device name: `health` is what smartctl's
/// `self-assessment test result:` / `Health Status:` line says (`UNKNOWN` without one),
/// `wearout` a number for SSD-like disks (NVMe: 100 - `Percentage Used`) and `N/A` for HDDs,
/// `rpm` 0 for SSDs and udev's captured string for HDDs, `vendor`/`serial`/`wwn` `unknown` when
/// sysfs or udev has none, `osdid` -1 and `osdid-list` null without Ceph, `by_id_link` from udev.
pub fn disks_list(n: &Node) -> Reply {
    let mut disks = n.disks.clone().unwrap_or_else(default_disks);
    disks.sort_by(|a, b| a.dev.cmp(&b.dev));
    let v: Vec<Value> = disks
        .iter()
        .map(|d| {
            let ssdlike = d.kind == "ssd" || d.kind == "nvme";
            let mut m = Map::new();
            let bus = if d.kind == "nvme" { "nvme" } else { "ata" };
            m.insert(
                "by_id_link".into(),
                json!(format!(
                    "/dev/disk/by-id/{bus}-{}_{}",
                    d.model.replace(' ', "_"),
                    d.serial
                )),
            );
            m.insert("devpath".into(), json!(format!("/dev/{}", d.dev)));
            m.insert("gpt".into(), json!(1));
            m.insert(
                "health".into(),
                json!(d.health.as_deref().unwrap_or("UNKNOWN")),
            );
            m.insert("model".into(), json!(d.model));
            m.insert("osdid".into(), json!(-1));
            m.insert("osdid-list".into(), Value::Null);
            let rpm = match (ssdlike, d.rpm) {
                (true, _) => json!(0),
                (false, Some(r)) => json!(r.to_string()),
                (false, None) => json!(-1),
            };
            m.insert("rpm".into(), rpm);
            m.insert("serial".into(), json!(d.serial));
            m.insert("size".into(), json!(d.size));
            let kind = if d.kind == "hdd" && d.rpm.is_none() {
                "unknown"
            } else {
                d.kind.as_str()
            };
            m.insert("type".into(), json!(kind));
            if let Some(u) = &d.used {
                m.insert("used".into(), json!(u));
            }
            m.insert(
                "vendor".into(),
                json!(d.vendor.as_deref().unwrap_or("unknown")),
            );
            let wear = match (ssdlike, d.wearout) {
                (true, Some(w)) => json!(w),
                _ => json!("N/A"),
            };
            m.insert("wearout".into(), wear);
            m.insert("wwn".into(), json!(d.wwn.as_deref().unwrap_or("unknown")));
            Value::Object(m)
        })
        .collect();
    Reply::out(json_line(&Value::Array(v)))
}

// ------------------------------------------------------------------------------------------------
// Tasks

/// A task with everything its UPID needs.
#[derive(Clone, Debug)]
struct TaskRow {
    node: String,
    pid: u32,
    pstart: u64,
    starttime: i64,
    kind: String,
    id: String,
    user: String,
    endtime: Option<i64>,
    status: Option<String>,
}

impl TaskRow {
    fn from_state(node: &str, t: &Task) -> TaskRow {
        // Stable stand-ins for a worker's pid and start (clock ticks since boot).
        let pid = t
            .pid
            .unwrap_or(1000 + (t.starttime.rem_euclid(3_000_000)) as u32);
        let pstart = t
            .pstart
            .unwrap_or(1_000_000 + (t.starttime.rem_euclid(100_000_000)) as u64);
        TaskRow {
            node: node.into(),
            pid,
            pstart,
            starttime: t.starttime,
            kind: t.kind.clone(),
            id: t.id.clone(),
            user: t.user.clone(),
            endtime: t.endtime,
            status: t.status.clone(),
        }
    }

    /// pve-common `src/PVE/UPID.pm` `encode`: `UPID:%s:%08X:%08X:%08X:%s:%s:%s:`.
    fn upid(&self) -> String {
        format!(
            "UPID:{}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node, self.pid, self.pstart, self.starttime, self.kind, self.id, self.user
        )
    }

    /// The fields `PVE::UPID::decode` yields, plus `upid`.
    fn decoded(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("node".into(), json!(self.node));
        m.insert("pid".into(), json!(self.pid));
        m.insert("pstart".into(), json!(self.pstart));
        m.insert("starttime".into(), json!(self.starttime));
        m.insert("type".into(), json!(self.kind));
        m.insert("upid".into(), json!(self.upid()));
        m.insert("user".into(), json!(self.user));
        m
    }
}

/// The node's tasks: its recorded ones, plus the running workers its guests' locks imply — one
/// `vzdump` for the guests locked `backup` (id: the VMID when it is the only one, as
/// pve-manager `PVE/API2/VZDump.pm` names the worker), a `qmigrate`/`vzmigrate` per guest
/// locked `migrate`; a `lock_stale` lock has no task.
fn node_tasks_all(c: &Cluster, n: &Node, now: i64) -> Vec<TaskRow> {
    let mut v: Vec<TaskRow> = n
        .tasks
        .iter()
        .map(|t| TaskRow::from_state(&n.name, t))
        .collect();
    let since = |g: &super::state::Guest| g.lock_since.unwrap_or_else(|| started(c, now));
    let locked = |lock: &'static str| {
        c.guests
            .iter()
            .filter(move |g| g.node == n.name && !g.lock_stale && g.lock.as_deref() == Some(lock))
    };
    let backups: Vec<_> = locked("backup").collect();
    if let Some(start) = backups.iter().map(|g| since(g)).min() {
        let id = if backups.len() == 1 {
            backups[0].vmid.to_string()
        } else {
            String::new()
        };
        v.push(TaskRow::from_state(
            &n.name,
            &Task {
                kind: "vzdump".into(),
                id,
                user: "root@pam".into(),
                starttime: start,
                endtime: None,
                status: None,
                pid: None,
                pstart: None,
            },
        ));
    }
    for g in locked("migrate") {
        let kind = match g.kind {
            GuestKind::Qemu => "qmigrate",
            GuestKind::Lxc => "vzmigrate",
        };
        v.push(TaskRow::from_state(
            &n.name,
            &Task {
                kind: kind.into(),
                id: g.vmid.to_string(),
                user: "root@pam".into(),
                starttime: since(g),
                endtime: None,
                status: None,
                pid: None,
                pstart: None,
            },
        ));
    }
    v
}

/// pve-common `PVE::UPID::normalize_status_type`.
fn status_type(status: Option<&str>) -> &'static str {
    match status {
        None | Some("") => "unknown",
        Some("OK") => "ok",
        Some(s)
            if s.strip_prefix("WARNINGS: ")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) =>
        {
            "warning"
        }
        Some("unexpected status") => "unknown",
        Some(_) => "error",
    }
}

/// The parameters of `node_tasks`, in its schema.
const TASK_PARAMS: &[&str] = &[
    "start",
    "limit",
    "userfilter",
    "typefilter",
    "vmid",
    "errors",
    "source",
    "since",
    "until",
    "statusfilter",
];

/// PVE's parameter verification failure (pve-common `PVE::JSONSchema::validate` raised as a
/// `PVE::Exception` with `errors`; pvesh's CLI handler appends its usage, `die` exits 255).
fn param_error(errors: &[(String, String)]) -> Reply {
    let mut s = String::from("400 Parameter verification failed.\n");
    for (k, e) in errors {
        let _ = writeln!(s, "{k}: {e}");
    }
    s.push_str("pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n");
    Reply::err(s, 255)
}

fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

/// GET `/nodes/N/tasks` (pve-manager `PVE/API2/Tasks.pm` `node_tasks`): running tasks first
/// when `source` is `active`/`all` (from the `active` file, in start order, `status`
/// `RUNNING`, with its `saved` flag `"0"`), then the archive (`index` read backwards: the most
/// recently ended first); the `$filter_task` checks in its order (`userfilter`, `typefilter`,
/// `vmid`, `since`/`until` on the start time, the status type, the `start` offset, `limit`).
pub fn node_tasks(c: &Cluster, n: &Node, query: &[(String, String)], now: i64) -> Reply {
    let mut errors = Vec::new();
    let mut int = |k: &str, min: Option<i64>| -> Option<i64> {
        let v = query.iter().rev().find(|(q, _)| q == k).map(|(_, v)| v)?;
        match parse_int(v) {
            Some(x) if min.is_none_or(|m| x >= m) => Some(x),
            Some(x) => {
                errors.push((
                    k.to_string(),
                    format!("value must have a minimum value of {}", min.unwrap_or(0)),
                ));
                let _ = x;
                None
            }
            None => {
                errors.push((
                    k.to_string(),
                    format!("type check ('integer') failed - got '{v}'"),
                ));
                None
            }
        }
    };
    let start = int("start", Some(0)).unwrap_or(0);
    let mut limit = int("limit", Some(0)).unwrap_or(50);
    let since = int("since", None);
    let until = int("until", None);
    let vmid = int("vmid", Some(100));
    let get = |k: &str| {
        query
            .iter()
            .rev()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.as_str())
    };
    let errors_flag = match get("errors") {
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                errors.push((
                    "errors".into(),
                    format!("type check ('boolean') failed - got '{v}'"),
                ));
                false
            }
        },
    };
    let source = get("source").unwrap_or("archive");
    if !["archive", "active", "all"].contains(&source) {
        errors.push((
            "source".into(),
            format!(
                "value '{source}' does not have a value in the enumeration 'archive, active, all'"
            ),
        ));
    }
    for (k, _) in query {
        if !TASK_PARAMS.contains(&k.as_str()) && !errors.iter().any(|(e, _)| e == k) {
            errors.push((
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties".into(),
            ));
        }
    }
    if !errors.is_empty() {
        return param_error(&errors);
    }
    let userfilter = get("userfilter")
        .filter(|u| !u.is_empty())
        .map(str::to_lowercase);
    let typefilter = get("typefilter").filter(|t| !t.is_empty());
    let mut statusfilter: [(&str, bool); 4] = [
        ("ok", true),
        ("warning", true),
        ("error", true),
        ("unknown", true),
    ];
    if let (Some(list), false) = (get("statusfilter"), errors_flag) {
        let wanted: Vec<String> = list
            .split([',', ';', ' ', '\0'])
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .collect();
        for (k, on) in statusfilter.iter_mut() {
            *on = wanted.iter().any(|w| w == k);
        }
    } else if errors_flag {
        statusfilter[0].1 = false;
    }
    let mut count = 0i64;
    let mut keep = |t: &TaskRow, limit: i64| -> bool {
        if userfilter
            .as_ref()
            .is_some_and(|u| !t.user.to_lowercase().contains(u))
        {
            return false;
        }
        if typefilter.is_some_and(|f| t.kind != f) {
            return false;
        }
        if vmid.is_some_and(|v| t.id != v.to_string()) {
            return false;
        }
        if since.is_some_and(|s| t.starttime < s) || until.is_some_and(|u| t.starttime > u) {
            return false;
        }
        let ty = status_type(t.status.as_deref());
        if !statusfilter.iter().any(|(k, on)| *k == ty && *on) {
            return false;
        }
        count += 1;
        if count - 1 < start {
            return false;
        }
        limit > 0
    };
    let all = node_tasks_all(c, n, now);
    let mut res = Vec::new();
    if source == "active" || source == "all" {
        let mut running: Vec<&TaskRow> = all.iter().filter(|t| t.endtime.is_none()).collect();
        running.sort_by_key(|t| t.starttime);
        for t in running {
            if keep(t, limit) {
                let mut m = t.decoded();
                m.insert("saved".into(), json!("0"));
                m.insert("status".into(), json!("RUNNING"));
                res.push(Value::Object(m));
                limit -= 1;
            }
        }
    }
    if source != "active" {
        let mut done: Vec<&TaskRow> = all.iter().filter(|t| t.endtime.is_some()).collect();
        // Archived in batches sorted by start time, newest first, and read backwards.
        done.sort_by(|a, b| {
            b.endtime
                .cmp(&a.endtime)
                .then(a.starttime.cmp(&b.starttime))
        });
        for t in done {
            if keep(t, limit) {
                let mut m = t.decoded();
                if let Some(e) = t.endtime {
                    m.insert("endtime".into(), json!(e));
                }
                if let Some(s) = t.status.as_ref().filter(|s| !s.is_empty()) {
                    m.insert("status".into(), json!(s));
                }
                res.push(Value::Object(m));
                limit -= 1;
            }
        }
    }
    Reply::out(json_line(&Value::Array(res)))
}

/// GET `/cluster/tasks` (pve-manager `PVE/API2/Cluster.pm` `tasks`): every member node's list as
/// pvestatd broadcast it (`PVE::RPCEnvironment::active_workers` via
/// `PVE::Cluster::broadcast_tasklist`): running tasks (no `pstart`, `saved` `"0"`, no status),
/// then the finished ones newest start first (no `pid`, `saved` `"1"`), 25 in all per node.
pub fn cluster_tasks(c: &Cluster, asker: &str, now: i64) -> Reply {
    let mut res = Vec::new();
    for n in c.members_of(asker) {
        let all = node_tasks_all(c, n, now);
        let mut running: Vec<&TaskRow> = all.iter().filter(|t| t.endtime.is_none()).collect();
        running.sort_by_key(|t| t.starttime);
        let mut done: Vec<&TaskRow> = all.iter().filter(|t| t.endtime.is_some()).collect();
        done.sort_by_key(|t| std::cmp::Reverse(t.starttime));
        let max_done = 25usize.saturating_sub(running.len());
        for t in &running {
            let mut m = t.decoded();
            m.remove("pstart");
            m.insert("saved".into(), json!("0"));
            res.push(Value::Object(m));
        }
        for t in done.into_iter().take(max_done) {
            let mut m = t.decoded();
            m.remove("pstart");
            m.remove("pid");
            m.insert("saved".into(), json!("1"));
            if let Some(e) = t.endtime {
                m.insert("endtime".into(), json!(e));
            }
            if let Some(s) = &t.status {
                m.insert("status".into(), json!(s));
            }
            res.push(Value::Object(m));
        }
    }
    Reply::out(json_line(&Value::Array(res)))
}

// ------------------------------------------------------------------------------------------------
// Replication

/// Perl's stringification of a number (`%.15g`).
fn perl_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    let r: f64 = format!("{x:.14e}").parse().unwrap_or(x);
    format!("{r}")
}

/// pve-common `PVE::CalendarEvent::compute_next_event` for the schedules the lab knows: `*/N`
/// and `M` (minutes of every hour), `H:MM` (daily) in the node's local time; any other
/// schedule runs as the default `*/15`. The next event strictly after `last`.
fn next_event(schedule: &str, last: i64, offset_secs: i64) -> i64 {
    let local = last + offset_secs;
    let minute_start = local.div_euclid(60) * 60 + 60;
    let matches: Box<dyn Fn(i64) -> bool> = if let Some((h, m)) = schedule.split_once(':') {
        match (h.trim().parse::<i64>(), m.trim().parse::<i64>()) {
            (Ok(h), Ok(m)) => Box::new(move |t: i64| {
                let day = t.rem_euclid(86400);
                day / 3600 == h && day % 3600 / 60 == m
            }),
            _ => Box::new(|t: i64| t.rem_euclid(3600) / 60 % 15 == 0),
        }
    } else if let Some(step) = schedule
        .strip_prefix("*/")
        .and_then(|s| s.parse::<i64>().ok())
    {
        Box::new(move |t: i64| step > 0 && t.rem_euclid(3600) / 60 % step == 0)
    } else if let Ok(m) = schedule.trim().parse::<i64>() {
        Box::new(move |t: i64| t.rem_euclid(3600) / 60 == m)
    } else {
        Box::new(|t: i64| t.rem_euclid(3600) / 60 % 15 == 0)
    };
    let mut t = minute_start;
    for _ in 0..(2 * 24 * 60) {
        if matches(t) {
            return t - offset_secs;
        }
        t += 60;
    }
    minute_start - offset_secs
}

/// `pvesr status [--guest ID]` (pve-manager `PVE/CLI/pvesr.pm` `$print_job_status` over
/// `PVE/API2/Replication.pm` `status`, jobs from pve-guest-common `PVE/ReplicationState.pm`
/// `job_status(1)`): the jobs of guests on this node (disabled ones too, none to the node
/// itself), sorted by guest; times in the node's local time, `-` for never; `NextSync` after a
/// failure is `last_try + 5 min × fail_count` (30 min from 4 failures on; `-` while the target
/// is offline), else the schedule's next event after the last try, `pending` when past.
pub fn pvesr_status(c: &Cluster, node: &str, args: &[&str], now: i64) -> Reply {
    let Some(n) = c.node(node) else {
        return Reply::err(format!("lab: no node `{node}` in the state"), 255);
    };
    let mut guest_filter = None;
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "--guest" | "-guest" => {
                let v = args.get(i + 1).copied().unwrap_or("");
                match v.parse::<u32>() {
                    Ok(g) => guest_filter = Some(g),
                    Err(_) => {
                        return Reply::err(
                            format!(
                                "400 Parameter verification failed.\nguest: type check ('integer') failed - got '{v}'\npvesr status  [OPTIONS]"
                            ),
                            255,
                        );
                    }
                }
                i += 2;
            }
            other => {
                return Reply::err(
                    format!(
                        "400 Parameter verification failed.\n{}: property is not defined in schema and the schema does not allow additional properties\npvesr status  [OPTIONS]",
                        other.trim_start_matches('-')
                    ),
                    255,
                );
            }
        }
    }
    let mut jobs: Vec<_> = c
        .replication
        .iter()
        .filter_map(|j| {
            let g = c.guest(j.guest()?)?;
            (g.node == node && j.target != node).then_some((g.vmid, j))
        })
        .filter(|(g, _)| guest_filter.is_none_or(|f| f == *g))
        .collect();
    jobs.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    jobs.sort_by_key(|(g, _)| *g);
    let mut o = String::new();
    let row = |o: &mut String, cols: [&str; 8]| {
        let _ = writeln!(
            o,
            "{:<10} {:<10} {:<20} {:>20} {:>20} {:>10} {:>10} {}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7]
        );
    };
    row(
        &mut o,
        [
            "JobID",
            "Enabled",
            "Target",
            "LastSync",
            "NextSync",
            "Duration",
            "FailCount",
            "State",
        ],
    );
    let offset = i64::from(n.utc_offset_minutes) * 60;
    for (_, j) in jobs {
        let fmt = "%Y-%m-%d_%H:%M:%S";
        let last_sync = j.last_sync.unwrap_or(0);
        let last_try = j.last_try.unwrap_or(last_sync);
        let last = if last_sync > 0 {
            local_time(n, last_sync, fmt)
        } else {
            "-".into()
        };
        let target_online = c.members_of(node).iter().any(|m| m.name == j.target);
        let next_sync = if j.fail_count > 0 {
            if target_online {
                let fc = i64::from(j.fail_count);
                last_try + 60 * if fc <= 3 { 5 * fc } else { 30 }
            } else {
                0
            }
        } else {
            next_event(j.schedule.as_deref().unwrap_or("*/15"), last_try, offset)
        };
        let next = if next_sync == 0 {
            "-".into()
        } else if next_sync > now {
            local_time(n, next_sync, fmt)
        } else {
            "pending".into()
        };
        let duration = j.duration.map_or("-".into(), perl_num);
        let state = j.error.clone().unwrap_or_else(|| "OK".into());
        let target = format!("local/{}", j.target);
        let fails = j.fail_count.to_string();
        row(
            &mut o,
            [
                &j.id,
                if j.enabled { "Yes" } else { "No" },
                &target,
                &last,
                &next,
                &duration,
                &fails,
                &state,
            ],
        );
    }
    Reply::out(o)
}

// ------------------------------------------------------------------------------------------------
// Subscription

/// The web shop URL every answer carries (pve-manager `PVE/API2/Subscription.pm` `get`).
const SHOP_URL: &str = "https://www.proxmox.com/en/proxmox-virtual-environment/pricing";

/// The node's server id (proxmox-subscription: an MD5 over the host's SSH key, 32 hex digits).
fn server_id(n: &Node) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in n.name.bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
    }
    format!("{h:032X}")
}

/// The result hash of pve-manager `PVE/API2/Subscription.pm` `get` as root sees it: without
/// `/etc/subscription` `status`, `message` (`There is no subscription key`), `serverid`,
/// `url`; with one, its fields (`read_etc_subscription`: `level` only while active) plus
/// `serverid`, `sockets` and `url`.
fn subscription_info(n: &Node) -> Map<String, Value> {
    let s = &n.subscription_info;
    let status = s.status.clone().unwrap_or_else(|| {
        if n.subscription.is_empty() {
            "notfound".into()
        } else {
            "active".into()
        }
    });
    let serverid = s.serverid.clone().unwrap_or_else(|| server_id(n));
    let mut m = Map::new();
    if status == "notfound" {
        m.insert(
            "message".into(),
            json!(
                s.message
                    .as_deref()
                    .unwrap_or("There is no subscription key")
            ),
        );
        m.insert("serverid".into(), json!(serverid));
        m.insert("status".into(), json!(status));
        m.insert("url".into(), json!(SHOP_URL));
        return m;
    }
    let level = if n.subscription.is_empty() {
        "c"
    } else {
        n.subscription.as_str()
    };
    let key = s
        .key
        .clone()
        .unwrap_or_else(|| format!("pve1{level}-{}", &server_id(n)[..10].to_lowercase()));
    if let Some(t) = s.checktime {
        m.insert("checktime".into(), json!(t));
    }
    m.insert("key".into(), json!(key));
    if status == "active" {
        m.insert("level".into(), json!(level));
    }
    if let Some(msg) = &s.message {
        m.insert("message".into(), json!(msg));
    }
    if let Some(d) = &s.nextduedate {
        m.insert("nextduedate".into(), json!(d));
    }
    let product = s.productname.clone().unwrap_or_else(|| {
        let name = match level {
            "b" => "Basic",
            "s" => "Standard",
            "p" => "Premium",
            _ => "Community",
        };
        format!("Proxmox VE {name} Subscription 1 CPU/year")
    });
    m.insert("productname".into(), json!(product));
    if let Some(d) = &s.regdate {
        m.insert("regdate".into(), json!(d));
    }
    m.insert("serverid".into(), json!(serverid));
    m.insert("sockets".into(), json!(1));
    m.insert("status".into(), json!(status));
    m.insert("url".into(), json!(SHOP_URL));
    m
}

/// `pvesubscription get` (pve-manager `PVE/CLI/pvesubscription.pm`: `print "$_: $info->{$_}\n"
/// for sort keys %$info`).
pub fn pvesubscription_get(n: &Node) -> Reply {
    let mut o = String::new();
    for (k, v) in subscription_info(n) {
        let v = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let _ = writeln!(o, "{k}: {v}");
    }
    Reply::out(o)
}

/// GET `/nodes/N/subscription` as JSON.
pub fn subscription_json(n: &Node) -> Reply {
    Reply::out(json_line(&Value::Object(subscription_info(n))))
}

// ------------------------------------------------------------------------------------------------
// Certificates

/// `pvenode cert info --output-format json` (pve-manager `PVE/API2/Certificates.pm` `info`
/// over pve-common `src/PVE/Certificate.pm` `get_certificate_info`): the root CA, the node's
/// `pve-ssl.pem` and, when configured, `pveproxy-ssl.pem`; each with `filename`,
/// `fingerprint`, `issuer`, `notafter`, `notbefore`, `pem`, `public-key-bits`,
/// `public-key-type`, `san`, `subject`.
pub fn cert_info(c: &Cluster, n: &Node, now: i64) -> Reply {
    let start = started(c, now);
    let year = 365 * 86400;
    let cluster = c.cluster.as_ref().map_or("pve", |ci| ci.name.as_str());
    // The CA is made once by `pvecm create` / the first node (pve-cluster `PVE::Cert`):
    // `CN=Proxmox Virtual Environment/OU=<random uuid>/O=PVE Cluster Manager CA`.
    let ou = format!(
        "{:08x}-lab0-4000-8000-{:012x}",
        cluster.len() * 0x1001,
        start as u64 & 0xffff_ffff_ffff
    );
    let ca_subject = format!("/CN=Proxmox Virtual Environment/OU={ou}/O=PVE Cluster Manager CA");
    let ca_notafter = n.certs.ca_notafter.unwrap_or(start + 10 * year);
    let ssl_notbefore = n.certs.ssl_notbefore.unwrap_or(start);
    let ssl_notafter = n.certs.ssl_notafter.unwrap_or(start + 2 * year);
    let mut v = vec![cert_entry(
        "pve-root-ca.pem",
        &ca_subject,
        &ca_subject,
        start,
        ca_notafter,
        &[],
    )];
    let sans = [
        "127.0.0.1".to_string(),
        "0000:0000:0000:0000:0000:0000:0000:0001".into(),
        "localhost".into(),
        n.ip.clone(),
        n.name.clone(),
        format!("{}.lab", n.name),
    ];
    v.push(cert_entry(
        "pve-ssl.pem",
        &format!(
            "/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN={}.lab",
            n.name
        ),
        &ca_subject,
        ssl_notbefore,
        ssl_notafter,
        &sans,
    ));
    if let Some(t) = n.certs.proxy_notafter {
        v.push(cert_entry(
            "pveproxy-ssl.pem",
            &format!("/CN={}.lab", n.name),
            "/C=US/O=Let's Encrypt/CN=R11",
            t - 90 * 86400,
            t,
            &[format!("{}.lab", n.name)],
        ));
    }
    Reply::out(json_line(&Value::Array(v)))
}

fn cert_entry(
    file: &str,
    subject: &str,
    issuer: &str,
    notbefore: i64,
    notafter: i64,
    san: &[String],
) -> Value {
    // A stand-in for the SHA-256 fingerprint (`X509_get_fingerprint`: colon-separated upper
    // hex) and the PEM: the lab has no key to sign with, so the body is not a parseable DER.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{file}{subject}{notbefore}{notafter}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let fp: Vec<String> = (0..32)
        .map(|i| format!("{:02X}", (h.rotate_left(i * 7) >> 8) as u8 ^ i as u8))
        .collect();
    let mut body = String::new();
    for i in 0..20 {
        let _ = writeln!(
            body,
            "{}",
            &format!("MIID{:060x}", u128::from(h.rotate_left(i)) * 0x1_0000_0001)[..64]
        );
    }
    json!({
        "filename": file,
        "fingerprint": fp.join(":"),
        "issuer": issuer,
        "notafter": notafter,
        "notbefore": notbefore,
        "pem": format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"),
        "public-key-bits": 2048,
        "public-key-type": "rsaEncryption",
        "san": san,
        "subject": subject,
    })
}

// ------------------------------------------------------------------------------------------------
// RRD data

/// `create_rrd_data`'s `[resolution, count]` per time frame (pve-cluster `src/PVE/RRD.pm`).
/// PVE 9 (`$setup`, pve-cluster 9.0.7: commit af3f945 fixed month and year) reads the
/// `pve-node-9.0` files; before, `pve2-node` with 70 points for every frame (`$setup_pve2`,
/// the one table before commit 1a483ba). PVE 8 knows no `decade`.
fn rrd_setup(pve9: bool, timeframe: &str) -> Option<(i64, i64)> {
    Some(match (pve9, timeframe) {
        (true, "hour") => (60, 60),
        (true, "day") => (60, 1440),
        (true, "week") => (60 * 30, 336),
        (true, "month") => (60 * 30, 1440),
        (true, "year") => (3600 * 6, 1440),
        (true, "decade") => (86400 * 7, 570),
        (false, "hour") => (60, 70),
        (false, "day") => (60 * 30, 70),
        (false, "week") => (60 * 180, 70),
        (false, "month") => (60 * 720, 70),
        (false, "year") => (60 * 10080, 70),
        _ => return None,
    })
}

/// An RRD value as JSON::XS prints a Perl NV (`%.15g`): `12`, not `12.0`.
fn rrd_num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        super::render::json_float(x)
    }
}

/// GET `/nodes/N/rrddata` (pve-manager `PVE/API2/Nodes.pm` `rrddata` →
/// pve-cluster `PVE::RRD::create_rrd_data`). The handler has no `proxyto`: pvesh runs it on
/// the asking node, which reads `/var/lib/rrdcached/db/pve-node-9.0/N` (PVE 8:
/// `pve2-node/N`), the file pmxcfs keeps for every node of the cluster. `N` is taken as
/// given: `localhost` names no file, and RRDs dies (librrd's `opening '…': …`; pvesh exits
/// 255).
///
/// `RRDs::fetch(-s ctime - reso*count, -e ctime - 1, -r reso)` gives `count` rows, the
/// newest at `ctime` = `reso * int(time / reso)`, keys sorted as pvesh prints them. A
/// row is every data source of the node RRD (pve-cluster `src/pmxcfs/status.c`
/// `rrd_def_node_pve9_0`; the first 12 are the PVE 8 ones) that has a value; unknown values
/// are left out, so an empty row is `{"time": …}`. The lab answers as just after a step
/// boundary, when the newest step is not consolidated yet: PVE 8 returns it with only
/// `time`, PVE 9 drops it (commit 6126f5d "fix #6615", pve-cluster 9.0.7). An offline
/// node's file gets no updates: all its rows are empty. The values are the node's state,
/// constant over the time frame: `cpu_usage`, `io_wait` and the memory as `/nodes/N/status`
/// shows them (pve-manager `PVE/Service/pvestatd.pm` `update_node_status` writes
/// `read_proc_stat`'s `cpu` and `wait`, the 1-minute load, `cpuinfo.cpus`, `read_meminfo`,
/// `df('/')` with `used = blocks - bfree`); traffic, ARC and pressure are 0. A PVE 8 node
/// seen from PVE 9 sends only the first 12 columns (pmxcfs pads the rest as unknown).
pub fn node_rrddata(
    c: &Cluster,
    asker: &str,
    name: &str,
    q: &[(String, String)],
    now: i64,
) -> Reply {
    let Some(me) = c.node(asker) else {
        return Reply::err(format!("unknown node '{asker}'"), 255);
    };
    let pve9 = super::render::pve_ge(me, &[9]);
    let mut errors = Vec::new();
    for (k, _) in q {
        if k != "timeframe" && k != "cf" {
            errors.push((
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties".to_string(),
            ));
        }
    }
    let frames = if pve9 {
        "hour, day, week, month, year, decade"
    } else {
        "hour, day, week, month, year"
    };
    let get = |key: &str| q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let setup = match get("timeframe") {
        None => {
            errors.push((
                "timeframe".into(),
                "property is missing and it is not optional".into(),
            ));
            None
        }
        Some(t) => {
            let s = rrd_setup(pve9, t);
            if s.is_none() {
                errors.push((
                    "timeframe".into(),
                    format!("value '{t}' does not have a value in the enumeration '{frames}'"),
                ));
            }
            s
        }
    };
    if let Some(cf) = get("cf").filter(|cf| !matches!(*cf, "AVERAGE" | "MAX")) {
        errors.push((
            "cf".into(),
            format!("value '{cf}' does not have a value in the enumeration 'AVERAGE, MAX'"),
        ));
    }
    errors.sort();
    let Some((reso, count)) = setup.filter(|_| errors.is_empty()) else {
        return param_error(&errors);
    };
    let dir = if pve9 { "pve-node-9.0" } else { "pve2-node" };
    let Some(n) = c.node(name) else {
        return Reply::err(
            format!(
                "RRD error: opening '/var/lib/rrdcached/db/{dir}/{name}': No such file or directory"
            ),
            255,
        );
    };
    let ctime = reso * now.div_euclid(reso);
    let mut data = Map::new();
    if n.online {
        let total = n.memory_total;
        let used = c.memory_used(&n.name).min(total);
        let swap_total = n.swap_total.unwrap_or(8 << 30);
        let (root_total, root_used, _) = super::render::rootfs(n);
        let frac = |x: f64| rrd_num(x.clamp(0.0, 1.0));
        // `/proc/loadavg` as `/nodes/N/status` shows it: two decimals.
        let load = ((n.cpu_usage + n.io_wait) * f64::from(n.cpus) * 100.0).round() / 100.0;
        for (k, v) in [
            ("loadavg", rrd_num(load)),
            ("maxcpu", json!(n.cpus)),
            ("cpu", frac(n.cpu_usage)),
            ("iowait", frac(n.io_wait)),
            ("memtotal", json!(total)),
            ("memused", json!(used)),
            ("swaptotal", json!(swap_total)),
            ("swapused", json!(n.swap_used.min(swap_total))),
            ("roottotal", json!(root_total)),
            ("rootused", json!(root_used)),
            ("netin", json!(0)),
            ("netout", json!(0)),
        ] {
            data.insert(k.to_string(), v);
        }
        if pve9 && super::render::pve_ge(n, &[9]) {
            data.insert("memavailable".into(), json!(total - used));
            data.insert("arcsize".into(), json!(0));
            for k in [
                "pressurecpusome",
                "pressureiosome",
                "pressureiofull",
                "pressurememorysome",
                "pressurememoryfull",
            ] {
                data.insert(k.into(), json!(0));
            }
        }
    }
    let mut rows: Vec<Value> = (0..count)
        .map(|i| {
            let time = ctime - (count - 1 - i) * reso;
            let mut row = if i == count - 1 {
                Map::new()
            } else {
                data.clone()
            };
            row.insert("time".into(), json!(time));
            Value::Object(row)
        })
        .collect();
    if pve9
        && rows
            .last()
            .and_then(Value::as_object)
            .is_some_and(|r| r.len() == 1)
    {
        rows.pop();
    }
    Reply::out(json_line(&Value::Array(rows)))
}

#[cfg(test)]
mod tests;
