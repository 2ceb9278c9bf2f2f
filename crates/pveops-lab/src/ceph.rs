//! The simulated `ceph` CLI and the files PVE's Ceph leaves on a node, printed from the state
//! as a real PVE node prints them.
//!
//! - The ceph CLI is on every PVE node (`ceph-common` is a `Depends:` of
//!   `libpve-storage-perl`, pve-storage `debian/control`). Where Ceph was never set up there is
//!   no `/etc/ceph/ceph.conf` (pveceph init links it to `/etc/pve/ceph.conf`), and ceph's
//!   `src/ceph.in` `main()` fails building its rados handle: `Error initializing cluster
//!   client: ObjectNotFound('RADOS object not found (error calling conf_read_file)')`, exit 1.
//! - Monitors that do not answer: the connect fails after `--connect-timeout` with librados'
//!   `[errno 110] RADOS timed out (error connecting to the cluster)`, exit 1.
//! - `ceph health --format json`: an empty line (ceph.in prints one before JSON output), then
//!   the mon's `health_check_map_t` dump on one line: `{"status":…,"checks":{CODE:{"severity",
//!   "summary":{"message","count"},"muted"}},"mutes":[]}`.
//! - `ceph osd set|unset noout`: the mon answers `noout is set` / `noout is unset`
//!   (`OSDMonitor::prepare_set_flag`/`prepare_unset_flag`), which ceph.in prints on stderr.
//! - A node's OSDs are down while it is: `OSD_DOWN` (`N osds down`), `OSD_HOST_DOWN` (`1 host
//!   (N osds) down`) and `PG_DEGRADED`, as `OSDMap::check_health` and `PGMap` word them; the
//!   `noout` flag raises `OSDMAP_FLAGS` (`noout flag(s) set`).
//! - The files: `/etc/pve/ceph.conf` and `/etc/pve/ceph/` (pve-manager `PVE/Ceph/Tools.pm`),
//!   `/var/lib/ceph/osd/ceph-<id>` and `ceph-osd.target.wants/ceph-osd@<id>.service`
//!   (`PVE/Ceph/Services.pm` `get_local_services`), as `stat -c %n` prints what exists.

use std::fmt::Write as _;

use super::render::Reply;
use super::state::Cluster;

const NOT_CONFIGURED: &str = "Error initializing cluster client: ObjectNotFound('RADOS object not found (error calling conf_read_file)')";
const TIMED_OUT: &str = "[errno 110] RADOS timed out (error connecting to the cluster)";

fn reply(stdout: String, stderr: &str, exit: i32) -> Reply {
    let mut err = stderr.to_string();
    if !err.is_empty() && !err.ends_with('\n') {
        err.push('\n');
    }
    Reply {
        stdout,
        stderr: err,
        exit,
    }
}

/// The health checks the state implies, in the mon's order (by code).
fn checks(c: &Cluster) -> Vec<(String, String, String, u64)> {
    let Some(ceph) = &c.ceph else {
        return Vec::new();
    };
    let mut out: Vec<(String, String, String, u64)> = ceph
        .checks
        .iter()
        .map(|k| (k.code.clone(), k.severity.clone(), k.message.clone(), 1))
        .collect();
    let down_hosts: Vec<usize> = c
        .nodes
        .iter()
        .filter(|n| !n.online && !n.osds.is_empty())
        .map(|n| n.osds.len())
        .collect();
    let down: usize = down_hosts.iter().sum();
    if down > 0 {
        let warn = "HEALTH_WARN".to_string();
        out.push((
            "OSD_DOWN".into(),
            warn.clone(),
            format!("{down} osds down"),
            down as u64,
        ));
        out.push((
            "OSD_HOST_DOWN".into(),
            warn.clone(),
            format!("{} host ({down} osds) down", down_hosts.len()),
            down_hosts.len() as u64,
        ));
        out.push((
            "PG_DEGRADED".into(),
            warn,
            format!("Degraded data redundancy: {down} osds down, 64 pgs degraded"),
            64,
        ));
    }
    if ceph.noout {
        out.push((
            "OSDMAP_FLAGS".into(),
            "HEALTH_WARN".into(),
            "noout flag(s) set".into(),
            1,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn status(checks: &[(String, String, String, u64)]) -> &'static str {
    if checks.iter().any(|c| c.1 == "HEALTH_ERR") {
        "HEALTH_ERR"
    } else if checks.is_empty() {
        "HEALTH_OK"
    } else {
        "HEALTH_WARN"
    }
}

/// `ceph health [--format json|json-pretty|plain]`.
fn health(c: &Cluster, format: Option<&str>) -> Reply {
    let checks = checks(c);
    let status = status(&checks);
    match format {
        Some(f) if f.starts_with("json") => {
            // The mon's key order (status, checks, mutes), which serde_json's map would sort.
            let checks: Vec<String> = checks
                .iter()
                .map(|(code, sev, msg, count)| {
                    format!(
                        "{}:{{\"severity\":{},\"summary\":{{\"message\":{},\"count\":{}}},\"muted\":false}}",
                        serde_json::Value::from(code.as_str()),
                        serde_json::Value::from(sev.as_str()),
                        serde_json::Value::from(msg.as_str()),
                        count
                    )
                })
                .collect();
            let compact = format!(
                "{{\"status\":\"{status}\",\"checks\":{{{}}},\"mutes\":[]}}",
                checks.join(",")
            );
            let body = if f == "json-pretty" {
                serde_json::from_str::<serde_json::Value>(&compact)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or(compact)
            } else {
                compact
            };
            reply(format!("\n{body}\n"), "", 0)
        }
        _ => {
            let mut line = status.to_string();
            if !checks.is_empty() {
                line.push(' ');
                line.push_str(
                    &checks
                        .iter()
                        .map(|c| c.2.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            reply(format!("{line}\n"), "", 0)
        }
    }
}

/// What the command does to the state, if anything: `Some(noout)` for `osd set|unset noout`.
pub fn noout_change(args: &[&str]) -> Option<bool> {
    let words: Vec<&str> = words(args);
    match words.as_slice() {
        ["osd", "set", "noout"] => Some(true),
        ["osd", "unset", "noout"] => Some(false),
        _ => None,
    }
}

/// The command's words without ceph.in's global options.
fn words<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--format" | "-f" | "--connect-timeout" | "-c" | "--conf" | "--cluster" | "--id"
            | "--name" | "-n" => {
                it.next();
            }
            a if a.starts_with("--format=") || a.starts_with("--connect-timeout=") => {}
            a => out.push(a),
        }
    }
    out
}

fn format_of<'a>(args: &[&'a str]) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--format" || *a == "-f" {
            return it.next().copied();
        }
        if let Some(f) = a.strip_prefix("--format=") {
            return Some(f);
        }
    }
    None
}

/// `ceph ARGS…` against the state, after any change `noout_change` made.
pub fn ceph(c: &Cluster, args: &[&str]) -> Reply {
    let Some(ceph) = &c.ceph else {
        return reply(String::new(), NOT_CONFIGURED, 1);
    };
    if ceph.monitors_down {
        return reply(String::new(), TIMED_OUT, 1);
    }
    match words(args).as_slice() {
        ["health"] => health(c, format_of(args)),
        ["osd", "set", "noout"] => reply(String::new(), "noout is set", 0),
        ["osd", "unset", "noout"] => reply(String::new(), "noout is unset", 0),
        other => reply(
            String::new(),
            &format!(
                "no valid command found; simulated ceph knows `health` and `osd set|unset noout`, not `{}`",
                other.join(" ")
            ),
            22,
        ),
    }
}

/// Whether `stat` is asked about Ceph's paths (else it is apt's, or the real stat's).
pub fn is_ceph_path(p: &str) -> bool {
    p.starts_with("/etc/pve/ceph")
        || p.starts_with("/var/lib/ceph/")
        || p.contains("/ceph-osd.target.wants/")
}

/// `stat -c %n PATHS…` for Ceph's paths on `node`: each that exists, one a line; a glob the
/// shell left literal (nothing matched on the lab's host) is expanded against the state.
pub fn stat(c: &Cluster, node: &str, paths: &[&str]) -> Reply {
    let osds = c.node(node).map(|n| n.osds.clone()).unwrap_or_default();
    let mut r = Reply {
        stdout: String::new(),
        stderr: String::new(),
        exit: 0,
    };
    for p in paths {
        let found: Vec<String> = match *p {
            "/etc/pve/ceph.conf" | "/etc/pve/ceph" if c.ceph.is_some() => vec![p.to_string()],
            "/var/lib/ceph/osd/*-*" => osds
                .iter()
                .map(|i| format!("/var/lib/ceph/osd/ceph-{i}"))
                .collect(),
            "/etc/systemd/system/ceph-osd.target.wants/ceph-osd@*.service" => osds
                .iter()
                .map(|i| format!("/etc/systemd/system/ceph-osd.target.wants/ceph-osd@{i}.service"))
                .collect(),
            _ => Vec::new(),
        };
        if found.is_empty() {
            let _ = writeln!(
                r.stderr,
                "stat: cannot statx '{p}': No such file or directory"
            );
            r.exit = 1;
        }
        for f in found {
            let _ = writeln!(r.stdout, "{f}");
        }
    }
    r
}
