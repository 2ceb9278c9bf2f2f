//! The simulated PVE tools. `pvecm`, `qm`, `pct`, ... on the simulated node's PATH run
//! [`main`] (through `pveops-lab-tool`, or `pveops lab-tool NAME` when that binary is not
//! built), which answers from the shared state file and changes it the way PVE does. Every invocation is appended to the node's JSONL command log.
//!
//! Environment: `PVEOPS_LAB_STATE` (the state file), `PVEOPS_LAB_NODE` (this node's name),
//! `PVEOPS_LAB_LOG` (the command log). Without them the binary refuses to act as a PVE tool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod change;

use super::apt::{self, APT_ERROR};
use super::render::{self, Reply};
use super::state::Cluster;
use super::store::{Locked, now};
use change::{ha_migrate, maintenance, migrate, power, reboot};

/// The binary holding only the simulated tools (`crates/pveops-lab/src/main.rs`).
pub const TOOL_BINARY: &str = "pveops-lab-tool";
/// The hash of the sources this build came from (`build.rs`), printed by
/// `pveops-lab-tool --source-id` so the lab never runs a tool binary older than itself.
pub const SOURCE_ID: &str = env!("PVEOPS_SOURCE_ID");
/// The argument that makes `pveops-lab-tool` print [`SOURCE_ID`].
pub const SOURCE_ID_FLAG: &str = "--source-id";
/// The hidden first argument of `pveops lab-tool NAME ARGS…`: the `pveops` binary running a
/// simulated tool, when no current `pveops-lab-tool` is built beside it (`cargo run` builds
/// only the `pveops` binary).
pub const VIA_PVEOPS: &str = "lab-tool";

/// What the lab nodes' tools run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolExe {
    /// `pveops-lab-tool`, linked under each tool's name.
    Binary(PathBuf),
    /// `pveops lab-tool NAME`, through a two-line shell script under each tool's name.
    Pveops(PathBuf),
}

/// Names under which the binary acts as a simulated tool.
pub const TOOLS: &[&str] = &[
    "pvecm",
    "pvesm",
    "qm",
    "pct",
    "ha-manager",
    "pveversion",
    "pvesh",
    "pve8to9",
    "pvesr",
    "pvesubscription",
    "pvenode",
    "corosync-cfgtool",
    "zpool",
    "ceph",
    "systemctl",
    "reboot",
    "cat",
    "hostname",
    "apt-get",
    "apt-cache",
    "dpkg",
    "lslocks",
    "stat",
    "df",
    "date",
];

/// Where a simulated node finds its state, name and log.
pub struct Env {
    pub state: PathBuf,
    pub node: String,
    pub log: Option<PathBuf>,
}

impl Env {
    pub fn from_env() -> Option<Env> {
        Some(Env {
            state: std::env::var_os("PVEOPS_LAB_STATE").map(PathBuf::from)?,
            node: std::env::var("PVEOPS_LAB_NODE").ok()?,
            log: std::env::var_os("PVEOPS_LAB_LOG").map(PathBuf::from),
        })
    }
}

/// Runs `tool args…` as the simulated node; prints and returns the exit status.
pub fn main(tool: &str, args: &[String]) -> i32 {
    // Any other file is the real one: the simulator only owns the node's identity files (and
    // apt's stamps and free space), so these work outside a lab too (under `sudo`, say).
    if tool == "cat" && !args.iter().any(|a| is_simulated_file(a)) {
        return real("/bin/cat", args);
    }
    if tool == "date" && args != ["+%z"] {
        return real("/bin/date", args);
    }
    if tool == "df" && !args.iter().any(|a| a == "--output=avail,target") {
        return real("/bin/df", args);
    }
    if tool == "stat"
        && !args
            .iter()
            .any(|a| super::apt::STAT_PATHS.contains(&a.as_str()) || super::ceph::is_ceph_path(a))
    {
        return real("/usr/bin/stat", args);
    }
    let Some(env) = Env::from_env() else {
        eprintln!(
            "pveops: called as `{tool}` outside a lab (PVEOPS_LAB_STATE and PVEOPS_LAB_NODE are not set)"
        );
        return 127;
    };
    if PERL_TOOLS.contains(&tool)
        && let Some(latency) = tool_latency()
    {
        // Node-local time: a real PVE tool spends 0.3-1 s loading its Perl modules before it
        // prints anything, on the node's own cores (a sleep, so simulated nodes sharing this
        // machine do not compete for its cores as real nodes would not).
        std::thread::sleep(latency);
    }
    log(&env, tool, args);
    let reply = match run(&env, tool, args) {
        Ok(r) => r,
        Err(e) => Reply {
            stdout: String::new(),
            stderr: format!("{e}\n"),
            exit: 255,
        },
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.stdout.as_bytes());
    let _ = out.flush();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(reply.stderr.as_bytes());
    reply.exit
}

/// The PVE tools that are Perl programs, each paying its start-up on the node.
const PERL_TOOLS: &[&str] = &[
    "pvecm",
    "pvesm",
    "qm",
    "pct",
    "ha-manager",
    "pveversion",
    "pvesh",
    "pve8to9",
    "pvesr",
    "pvesubscription",
    "pvenode",
];

/// `PVEOPS_LAB_TOOL_LATENCY`: seconds each PVE tool run takes before it answers.
fn tool_latency() -> Option<std::time::Duration> {
    let v = std::env::var("PVEOPS_LAB_TOOL_LATENCY").ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0 && secs < 600.0)
        .then(|| std::time::Duration::from_secs_f64(secs))
}

fn real(path: &str, args: &[String]) -> i32 {
    let status = std::process::Command::new(path).args(args).status();
    status.map(|s| s.code().unwrap_or(1)).unwrap_or(127)
}

fn is_simulated_file(path: &str) -> bool {
    path == "/proc/sys/kernel/random/boot_id"
        || path == "/proc/uptime"
        || path == "/etc/pve/priv/known_hosts"
        || path == "/run/reboot-required"
}

fn log(env: &Env, tool: &str, args: &[String]) {
    let Some(path) = &env.log else { return };
    let line = serde_json::json!({
        "time": jiff::Timestamp::now().to_string(),
        "node": env.node,
        "tool": tool,
        "args": args,
    });
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line: O_APPEND keeps concurrent nodes' lines whole.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// The reply for `tool args…`, after the node's fault knobs.
pub fn run(env: &Env, tool: &str, args: &[String]) -> Result<Reply, String> {
    let line = std::iter::once(tool.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    // The state is parsed once per call (a 50-node state is 180 KB of JSON): the fault knobs
    // and the answer of a read-only command come from the same read.
    let cluster = super::store::read(&env.state)?;
    let faults = cluster
        .node(&env.node)
        .map(|n| n.faults.clone())
        .ok_or_else(|| format!("lab: no node `{}` in the state", env.node))?;
    let hit = |list: &[String]| list.iter().any(|p| line.starts_with(p.as_str()));
    if hit(&faults.hang) {
        // A hung command never answers; only the caller's timeout ends it.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Some((_, secs)) = faults
        .slow
        .iter()
        .find(|(p, _)| line.starts_with(p.as_str()))
    {
        std::thread::sleep(Duration::from_secs_f64(*secs));
    }
    if let Some((_, f)) = faults
        .fail
        .iter()
        .find(|(p, _)| line.starts_with(p.as_str()))
    {
        let mut stderr = f.stderr.clone();
        if !stderr.is_empty() && !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        return Ok(Reply {
            stdout: String::new(),
            stderr,
            exit: f.exit,
        });
    }
    let mut reply = dispatch(env, tool, args, cluster)?;
    if hit(&faults.garbage) {
        reply.stdout =
            "\u{1b}[31m#!@ garbage \u{0}\u{7f}\n%%%% 12 34 ~~\n\tnot what you expected ]]]\n"
                .into();
    }
    Ok(reply)
}

fn ok(stdout: impl Into<String>) -> Reply {
    Reply {
        stdout: stdout.into(),
        stderr: String::new(),
        exit: 0,
    }
}

fn fail(exit: i32, stderr: impl Into<String>) -> Reply {
    let mut s = stderr.into();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Reply {
        stdout: String::new(),
        stderr: s,
        exit,
    }
}

/// PVE's CLIHandler answer to an unknown sub-command.
fn unknown(tool: &str, args: &[String]) -> Reply {
    fail(
        255,
        format!("ERROR: unknown command '{tool} {}'", args.join(" ")),
    )
}

fn ts() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The answer to `tool args…`; `cluster` is the state as read for this call (commands that
/// change it lock and re-read it themselves).
fn dispatch(env: &Env, tool: &str, args: &[String], cluster: Cluster) -> Result<Reply, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = env.node.as_str();
    // Each arm reads the state at most once: the read of this call, events due applied.
    let read = move || -> Result<Cluster, String> {
        let mut c = cluster;
        c.advance(now());
        Ok(c)
    };
    Ok(match (tool, a.as_slice()) {
        ("pvecm", ["status", ..]) => render::pvecm_status(&read()?, node, ts()),
        ("pvecm", ["nodes", ..]) => render::pvecm_nodes(&read()?, node),
        ("pvesm", ["status", ..]) => render::pvesm_status(&read()?, node),
        ("pvesm", ["list", storage, ..]) => render::pvesm_list_backup(&read()?, node, storage),
        ("qm", ["list", rest @ ..]) => render::qm_list(&read()?, node, rest.contains(&"--full")),
        ("pct", ["list", ..]) => render::pct_list(&read()?, node),
        ("qm", ["config", id, ..]) => render::qm_config(&read()?, node, vmid(id)?),
        ("pct", ["config", id, ..]) => render::pct_config(&read()?, node, vmid(id)?),
        ("qm", ["status", id, rest @ ..]) => {
            render::qm_status(&read()?, node, vmid(id)?, rest.contains(&"--verbose"))
        }
        ("pct", ["status", id, rest @ ..]) => {
            render::pct_status(&read()?, node, vmid(id)?, rest.contains(&"--verbose"))
        }
        ("ha-manager", ["status", ..]) => render::ha_manager_status(&read()?, node, ts()),
        ("pveversion", rest) => render::pveversion(
            &read()?,
            node,
            rest.iter().any(|a| *a == "-v" || *a == "--verbose"),
        ),
        ("pvesh", ["get", path, rest @ ..]) => {
            // The API's own parameters (`--type vm`, `--content backup`, `--limit 5`) as a
            // query; pvesh's format options are its own (pve-common `PVE::RESTHandler`
            // `extract_standard_output_properties`).
            let query: Vec<String> = api_params(rest)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let path = if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", query.join("&"))
            };
            render::pvesh_get(&read()?, node, &path, ts())
        }
        ("pvesr", ["status", rest @ ..]) => {
            super::health::pvesr_status(&read()?, node, rest, ts().as_second())
        }
        ("pvesubscription", ["get", ..]) => {
            with_node(&read()?, node, super::health::pvesubscription_get)
        }
        ("pvenode", ["cert", "info", ..]) => {
            let c = read()?;
            with_node(&c, node, |n| {
                super::health::cert_info(&c, n, ts().as_second())
            })
        }
        ("pve8to9", rest) => render::pve8to9(&read()?, node, rest.contains(&"--full")),
        ("corosync-cfgtool", ["-s", ..]) => render::corosync_cfgtool_s(&read()?, node),
        ("zpool", ["status", ..]) => render::zpool_status_x(&read()?, node),
        ("systemctl", ["is-active", units @ ..]) => {
            let units: Vec<String> = units
                .iter()
                .filter(|u| !u.starts_with('-'))
                .map(|u| u.to_string())
                .collect();
            render::systemctl_is_active(&read()?, node, &units)
        }
        ("systemctl", _) => fail(
            1,
            "simulated systemctl: only `is-active` is available on a lab node",
        ),
        ("cat", files) => cat(&read()?, node, files),
        // A PVE node's hostname is its node name.
        ("hostname", _) => ok(format!("{node}\n")),
        ("qm" | "pct", [op @ ("start" | "stop" | "shutdown"), id, ..]) => {
            power(env, tool, op, vmid(id)?)?
        }
        ("qm" | "pct", ["migrate", id, target, rest @ ..]) => {
            migrate(env, tool, vmid(id)?, target, rest)?
        }
        (
            "ha-manager",
            [
                "crm-command",
                "node-maintenance",
                op @ ("enable" | "disable"),
                target,
            ],
        ) => maintenance(env, op == &"enable", target)?,
        ("ha-manager", ["crm-command", "migrate" | "relocate", sid, target]) => {
            ha_migrate(env, sid, target)?
        }
        ("reboot", _) => reboot(env)?,
        ("apt-get", a) => apt_get(env, a, read()?)?,
        ("apt-cache", ["policy"]) => with_node(&read()?, node, apt::policy),
        ("dpkg", ["--audit" | "-C"]) => with_node(&read()?, node, apt::dpkg_audit),
        ("dpkg", _) => fail(2, "simulated dpkg: only --audit is available on a lab node"),
        ("lslocks", _) => with_node(&read()?, node, apt::lslocks),
        ("stat", a) if a.iter().any(|p| super::ceph::is_ceph_path(p)) => {
            let paths: Vec<&str> = a.iter().copied().filter(|x| x.starts_with('/')).collect();
            super::ceph::stat(&read()?, node, &paths)
        }
        ("ceph", a) => match super::ceph::noout_change(a) {
            Some(set) => {
                let mut s = Locked::open(&env.state)?;
                s.cluster.advance(now());
                if let Some(ceph) = s.cluster.ceph.as_mut().filter(|c| !c.monitors_down) {
                    ceph.noout = set;
                }
                let reply = super::ceph::ceph(&s.cluster, a);
                s.save()?;
                reply
            }
            None => super::ceph::ceph(&read()?, a),
        },
        ("stat", a) => {
            let paths: Vec<&str> = a
                .iter()
                .skip_while(|x| **x != "-c")
                .skip(2)
                .copied()
                .collect();
            let now = jiff::Timestamp::now().as_second();
            with_node(&read()?, node, |n| apt::stat(n, now, &paths))
        }
        ("apt-cache", ["show", specs @ ..]) => {
            let specs: Vec<&str> = specs
                .iter()
                .copied()
                .filter(|s| !s.starts_with('-'))
                .collect();
            with_node(&read()?, node, |n| apt::show(n, &specs))
        }
        ("date", ["+%z"]) => with_node(&read()?, node, |n| ok(super::render::utc_offset(n))),
        ("df", a) => {
            let paths: Vec<&str> = a.iter().copied().filter(|x| !x.starts_with('-')).collect();
            with_node(&read()?, node, |n| apt::df(n, &paths))
        }
        ("apt-cache", _) => fail(
            APT_ERROR,
            "E: simulated apt-cache: only `policy` and `show` are available",
        ),
        _ => unknown(tool, args),
    })
}

/// `--key value` / `--key=value` pairs of a pvesh call, without pvesh's own format options; a
/// flag without a value is `1` (Getopt::Long's boolean).
fn api_params(rest: &[&str]) -> Vec<(String, String)> {
    const FORMAT: &[&str] = &[
        "output-format",
        "noborder",
        "noheader",
        "human-readable",
        "quiet",
    ];
    let mut v = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let Some(k) = rest[i]
            .strip_prefix("--")
            .or_else(|| rest[i].strip_prefix('-'))
        else {
            i += 1;
            continue;
        };
        let (k, val) = match k.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match rest.get(i + 1) {
                Some(v) if !v.starts_with('-') || v.parse::<i64>().is_ok() => {
                    i += 1;
                    (k.to_string(), v.to_string())
                }
                _ => (k.to_string(), "1".to_string()),
            },
        };
        i += 1;
        if !FORMAT.contains(&k.as_str()) {
            v.push((k, val));
        }
    }
    v
}

fn with_node(c: &Cluster, node: &str, f: impl Fn(&super::state::Node) -> Reply) -> Reply {
    match c.node(node) {
        Some(n) => f(n),
        None => fail(255, format!("lab: no node `{node}` in the state")),
    }
}

/// `apt-get update`, `apt-get -s dist-upgrade` and `apt-get -y dist-upgrade` (options before or
/// after the operation, as apt's command line parser allows).
fn apt_get(env: &Env, args: &[&str], c: Cluster) -> Result<Reply, String> {
    let simulate = args.iter().any(|a| {
        matches!(
            *a,
            "-s" | "--simulate" | "--dry-run" | "--just-print" | "--no-act"
        )
    });
    let op = args
        .iter()
        .find(|a| !a.starts_with('-') && !a.contains("::"))
        .copied();
    let Some(n) = c.node(&env.node) else {
        return Ok(fail(
            255,
            format!("lab: no node `{}` in the state", env.node),
        ));
    };
    Ok(match op {
        Some("update") => {
            let mut s = Locked::open(&env.state)?;
            let Some(n) = s.cluster.node_mut(&env.node) else {
                return Ok(fail(255, "lab: node vanished"));
            };
            let fetched = !n.apt.published.is_empty();
            let published = std::mem::take(&mut n.apt.published);
            for p in published {
                n.apt.available.retain(|a| a.package != p.package);
                n.apt.available.push(p);
            }
            n.apt.lists_time = Some(jiff::Timestamp::now().as_second());
            let out = apt::update_output(n, fetched);
            s.save()?;
            ok(out)
        }
        Some("dist-upgrade" | "full-upgrade" | "upgrade") if simulate => apt::simulate(n),
        Some("dist-upgrade" | "full-upgrade") => {
            if !args
                .iter()
                .any(|a| matches!(*a, "-y" | "--yes" | "--assume-yes"))
            {
                // Without a terminal and without -y apt asks and reads EOF: "Abort."
                return Ok(fail(1, "Abort."));
            }
            if let Some(r) = apt::lock_error(n) {
                return Ok(r);
            }
            let ups = apt::upgrades(n);
            // dpkg takes node-local time; the lock is held meanwhile.
            std::thread::sleep(Duration::from_secs_f64(c.timing.upgrade_secs.max(0.0)));
            let mut s = Locked::open(&env.state)?;
            let Some(n) = s.cluster.node_mut(&env.node) else {
                return Ok(fail(255, "lab: node vanished"));
            };
            let failing = n.apt.fail_package.clone();
            let reply = apt::upgrade_output(n, &ups, failing.as_deref());
            apt::apply(n, &ups, failing.as_deref());
            s.save()?;
            reply
        }
        Some(other) => fail(APT_ERROR, format!("E: Invalid operation {other}")),
        None => fail(APT_ERROR, "E: No operation given (simulated apt-get)"),
    })
}

fn vmid(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| "400 Parameter verification failed.\nvmid: invalid format - value does not look like a valid VM ID\n".to_string())
}

fn cat(c: &Cluster, node: &str, files: &[&str]) -> Reply {
    let mut out = String::new();
    for f in files {
        match *f {
            "/proc/sys/kernel/random/boot_id" => {
                out.push_str(&c.node(node).map(|n| n.boot_id.clone()).unwrap_or_default());
                out.push('\n');
            }
            // Linux fs/proc/uptime.c: seconds since boot and idle seconds over every CPU, each
            // `%lu.%02lu`; this node idles 95 % of the time on each of its cores.
            "/proc/uptime" => {
                let up = c.node(node).map_or(0.0, |n| n.uptime(super::store::now()));
                let cpus = c.node(node).map_or(1, |n| n.cpus.max(1));
                out.push_str(&format!("{up:.2} {:.2}\n", up * 0.95 * f64::from(cpus)));
            }
            // Debian's marker that a package wants a reboot (written by update-notifier-common's
            // and the kernel's postinst hooks), on tmpfs: gone after a reboot.
            "/run/reboot-required" => {
                if c.node(node).is_some_and(|n| n.apt.reboot_required) {
                    out.push_str("*** System restart required ***\n");
                } else {
                    return fail(1, "cat: /run/reboot-required: No such file or directory");
                }
            }
            "/etc/pve/priv/known_hosts" => {
                for l in &c.known_hosts {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            other => return fail(1, format!("cat: {other}: No such file or directory")),
        }
    }
    ok(out)
}

/// Creates the simulated node's PATH directory: every tool runs `exe`.
pub fn install_tools(dir: &Path, exe: &ToolExe) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    for tool in TOOLS {
        let link = dir.join(tool);
        let _ = std::fs::remove_file(&link);
        match exe {
            ToolExe::Binary(bin) => std::os::unix::fs::symlink(bin, &link)?,
            ToolExe::Pveops(pveops) => {
                let quoted = format!("'{}'", pveops.to_string_lossy().replace('\'', r"'\''"));
                std::fs::write(
                    &link,
                    format!("#!/bin/sh\nexec {quoted} {VIA_PVEOPS} {tool} \"$@\"\n"),
                )?;
                std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o755))?;
            }
        }
    }
    Ok(())
}
