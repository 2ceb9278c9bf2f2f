//! The simulated commands that change the cluster: start, shutdown and stop of a guest,
//! migrations (a task log printed while the move completes as an event), HA migration and node
//! maintenance (asynchronous, as the CRM acts), and reboot. Each checks what PVE checks first.

use std::io::Write;
use std::time::Duration;

use super::{Env, fail, ok, unknown};
use crate::render::Reply;
use crate::state::{Cluster, Event, EventKind, GuestKind};
use crate::store::{Locked, now};

fn kind_word(tool: &str) -> (&'static str, GuestKind) {
    if tool == "qm" {
        ("VM", GuestKind::Qemu)
    } else {
        ("CT", GuestKind::Lxc)
    }
}

/// The error PVE prints for a guest whose config is not on this node.
fn no_config(tool: &str, node: &str, vmid: u32) -> Reply {
    let dir = if tool == "qm" { "qemu-server" } else { "lxc" };
    fail(
        255,
        format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"),
    )
}

pub(super) fn power(env: &Env, tool: &str, op: &str, vmid: u32) -> Result<Reply, String> {
    let (word, kind) = kind_word(tool);
    let mut s = Locked::open(&env.state)?;
    let now = now();
    let delay = s.cluster.timing.ha_delay_secs;
    let shutdown = s.cluster.timing.shutdown_secs;
    let serial = s.cluster.next_serial();
    let Some(g) = s
        .cluster
        .guest_mut(vmid)
        .filter(|g| g.node == env.node && g.kind == kind)
    else {
        return Ok(no_config(tool, &env.node, vmid));
    };
    if let Some(lock) = &g.lock {
        return Ok(fail(255, format!("{word} is locked ({lock})")));
    }
    let running = g.status == "running";
    if g.ha.is_some() {
        // HA-managed: the CLI only files a request; the CRM acts asynchronously (FORMATS §3.4).
        let (verb, state) = if op == "start" {
            ("start", "started")
        } else {
            ("stop", "stopped")
        };
        g.ha = Some(state.into());
        if op == "start" {
            g.status = "running".into();
            g.pid = Some(10_000 + serial as u32);
        } else if running {
            s.cluster.events.push(Event {
                due: now + delay,
                what: EventKind::Stopped { vmid },
            });
        }
        s.save()?;
        return Ok(ok(format!("Requesting HA {verb} for {word} {vmid}\n")));
    }
    match (op, running) {
        ("start", true) => return Ok(fail(255, format!("{word} {vmid} already running"))),
        ("stop" | "shutdown", false) => return Ok(fail(255, format!("{word} {vmid} not running"))),
        ("start", false) => {
            g.status = "running".into();
            g.pid = Some(10_000 + serial as u32);
        }
        _ => {
            g.status = "stopped".into();
            g.pid = None;
        }
    }
    s.save()?;
    drop(s);
    if op == "shutdown" {
        std::thread::sleep(Duration::from_secs_f64(shutdown));
    }
    Ok(ok(""))
}

/// `qm migrate ID TARGET [--online] [--with-local-disks]`, `pct migrate ID TARGET [--restart]`:
/// checked as PVE checks them, then the guest is locked `migrate` for the simulated duration
/// while the task log is printed; the move itself is an event, so it completes even if this
/// process is killed (a detached migration survives the SSH channel).
pub(super) fn migrate(
    env: &Env,
    tool: &str,
    vmid: u32,
    target: &str,
    opts: &[&str],
) -> Result<Reply, String> {
    let (word, kind) = kind_word(tool);
    let online = opts.contains(&"--online");
    let restart = opts.contains(&"--restart");
    let with_local = opts.contains(&"--with-local-disks");
    let mut s = Locked::open(&env.state)?;
    let now_s = now();
    let c = &s.cluster;
    let Some(g) = c
        .guest(vmid)
        .filter(|g| g.node == env.node && g.kind == kind)
        .cloned()
    else {
        return Ok(no_config(tool, &env.node, vmid));
    };
    if target == env.node {
        return Ok(fail(255, "target is local node."));
    }
    let Some(t) = c.node(target) else {
        return Ok(fail(255, format!("no such cluster node '{target}'")));
    };
    if !t.online {
        return Ok(fail(255, format!("target node '{target}' is not online")));
    }
    if let Some(lock) = &g.lock {
        return Ok(fail(255, format!("{word} is locked ({lock})")));
    }
    if g.ha.is_some() {
        let delay = c.timing.ha_delay_secs + c.timing.migrate_secs;
        let sid = g.ha_sid();
        s.cluster.events.push(Event {
            due: now_s + delay,
            what: EventKind::HaMove {
                vmid,
                target: target.into(),
            },
        });
        move_back_outside_rule(&mut s.cluster, vmid, &sid, target, now_s + delay);
        if let Some(g) = s.cluster.guest_mut(vmid) {
            g.lock = Some("migrate".into());
            g.lock_since = Some(now() as i64);
        }
        s.save()?;
        return Ok(ok(format!(
            "Requesting HA migration for {word} {vmid} to node {target}\n"
        )));
    }
    let running = g.status == "running";
    if running && kind == GuestKind::Qemu && !online {
        return Ok(fail(255, "can't migrate running VM without --online"));
    }
    if running && kind == GuestKind::Lxc && !restart {
        return Ok(fail(
            255,
            "running container can only be migrated in restart mode",
        ));
    }
    for sid in &g.disks {
        let Some(st) = c.storages.iter().find(|st| &st.id == sid) else {
            continue;
        };
        let available = st.enabled
            && st
                .nodes
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == target));
        if !available {
            return Ok(fail(
                255,
                format!("storage '{sid}' is not available on node '{target}'"),
            ));
        }
        if !st.shared && kind == GuestKind::Qemu && running && !with_local {
            return Ok(fail(
                255,
                format!(
                    "can't live migrate attached local disks without with-local-disks option ({sid})"
                ),
            ));
        }
    }
    let secs = c.timing.migrate_secs;
    let failing = c
        .node(&env.node)
        .is_some_and(|n| n.faults.migration_fails.contains(&vmid));
    let ip = t.ip.clone();
    s.cluster.events.push(Event {
        due: now_s + secs,
        what: EventKind::MigrationDone {
            vmid,
            target: target.into(),
            fail: failing,
            restart: running && restart,
        },
    });
    if let Some(g) = s.cluster.guest_mut(vmid) {
        g.lock = Some("migrate".into());
        g.lock_since = Some(now() as i64);
        if kind == GuestKind::Lxc && running {
            g.status = "stopped".into();
        }
    }
    s.save()?;
    drop(s);
    let start = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    let mut line = |text: &str| {
        let _ = writeln!(out, "{} {text}", task_time());
        let _ = out.flush();
    };
    if kind == GuestKind::Lxc && running {
        line(&format!("shutdown CT {vmid}"));
    }
    line(&format!(
        "starting migration of {word} {vmid} to node '{target}' ({ip})"
    ));
    if online {
        line(&format!("starting VM {vmid} on remote node '{target}'"));
        line("start remote tunnel");
        line(&format!(
            "starting online/live migration on unix:/run/qemu-server/{vmid}.migrate"
        ));
    }
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    // The event may have been applied by another process meanwhile; either way it is done now.
    let s = Locked::open(&env.state)?;
    s.save()?;
    let duration = format_duration(start.elapsed());
    if failing {
        line(&format!(
            "ERROR: online migrate failure - aborting migration of {word} {vmid}"
        ));
        line(&format!(
            "ERROR: migration aborted (duration {duration}): migration problems"
        ));
        drop(out);
        return Ok(Reply {
            stdout: String::new(),
            stderr: "migration aborted\n".into(),
            exit: 255,
        });
    }
    if online {
        line("migration status: completed");
    }
    if kind == GuestKind::Lxc && running {
        line("start container on target node");
    }
    line(&format!(
        "migration finished successfully (duration {duration})"
    ));
    Ok(ok(""))
}

/// `YYYY-MM-DD HH:MM:SS` as PVE task logs print it (FORMATS §3.5).
fn task_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// HA node maintenance (PVE >= 7.3): the LRM enters `maintenance mode` and the CRM moves
/// every HA guest away; `disable` brings them back to the node they left.
pub(super) fn maintenance(env: &Env, enable: bool, target: &str) -> Result<Reply, String> {
    let mut s = Locked::open(&env.state)?;
    let c = &mut s.cluster;
    let version_ok = c
        .node(&env.node)
        .is_some_and(|n| crate::state::version_key(&n.manager_version) >= vec![7, 3]);
    if !version_ok {
        return Ok(unknown(
            "ha-manager",
            &["crm-command".into(), "node-maintenance".into()],
        ));
    }
    if c.node(target).is_none() {
        return Ok(fail(
            255,
            format!("node '{target}' does not exist in the cluster"),
        ));
    }
    let due = now() + c.timing.ha_delay_secs;
    if let Some(n) = c.node_mut(target) {
        n.lrm = Some(if enable {
            "maintenance mode".into()
        } else {
            "active".into()
        });
    }
    let moves: Vec<(u32, String)> = if enable {
        let ha_guests: Vec<(u32, u64)> = c
            .guests
            .iter()
            .filter(|g| g.node == target && g.ha.is_some())
            .map(|g| (g.vmid, g.maxmem))
            .collect();
        // (vmid, HA id, target) of the moves chosen so far.
        let mut out: Vec<(u32, String, String)> = Vec::new();
        for (vmid, _mem) in ha_guests {
            // The CRM's select_service_node: only nodes a strict node-affinity rule allows,
            // none holding (or receiving) a negative resource-affinity partner.
            let sid = c.guest(vmid).map(|g| g.ha_sid()).unwrap_or_default();
            let pinned = c.strict_nodes(&sid);
            let apart = c.apart_from(&sid);
            let best = c
                .nodes
                .iter()
                .filter(|n| {
                    n.online && n.name != target && n.lrm.as_deref() != Some("maintenance mode")
                })
                .filter(|n| pinned.as_ref().is_none_or(|p| p.contains(&n.name)))
                .filter(|n| {
                    !apart
                        .iter()
                        .any(|a| match out.iter().find(|(_, s, _)| s == a) {
                            Some((_, _, to)) => *to == n.name,
                            None => c
                                .guests
                                .iter()
                                .any(|g| g.ha_sid() == *a && g.node == n.name),
                        })
                })
                .max_by_key(|n| n.memory_total.saturating_sub(c.memory_used(&n.name)));
            if let Some(b) = best {
                out.push((vmid, sid, b.name.clone()));
            }
        }
        out.into_iter().map(|(vmid, _, to)| (vmid, to)).collect()
    } else {
        c.guests
            .iter()
            .filter(|g| g.ha_origin.as_deref() == Some(target))
            .map(|g| (g.vmid, target.to_string()))
            .collect()
    };
    for (i, (vmid, to)) in moves.into_iter().enumerate() {
        if let Some(g) = c.guest_mut(vmid) {
            g.ha_origin = if enable { Some(g.node.clone()) } else { None };
            g.lock = Some("migrate".into());
            g.lock_since = Some(now() as i64);
        }
        let due = due + c.timing.migrate_secs * (i as f64 + 1.0);
        c.events.push(Event {
            due,
            what: EventKind::HaMove { vmid, target: to },
        });
    }
    s.save()?;
    Ok(ok(""))
}

/// The CRM accepts a move outside a strict node-affinity rule, then puts the guest back on a
/// rule node (pve-ha-manager `PVE::HA::Manager`, `select_service_node`); only syslog says so.
fn move_back_outside_rule(c: &mut Cluster, vmid: u32, sid: &str, target: &str, due: f64) {
    let Some(nodes) = c.strict_nodes(sid) else {
        return;
    };
    if nodes.iter().any(|n| n == target) {
        return;
    }
    let from = c.guest(vmid).map(|g| g.node.clone()).unwrap_or_default();
    let back = if nodes.contains(&from) {
        Some(from)
    } else {
        nodes.first().cloned()
    };
    if let Some(back) = back {
        c.events.push(Event {
            due: due + c.timing.migrate_secs,
            what: EventKind::HaMove { vmid, target: back },
        });
    }
}

pub(super) fn ha_migrate(env: &Env, sid: &str, target: &str) -> Result<Reply, String> {
    let Some(id) = sid
        .split_once(':')
        .and_then(|(_, id)| id.parse::<u32>().ok())
    else {
        return Ok(fail(255, format!("unable to parse service id '{sid}'")));
    };
    let mut s = Locked::open(&env.state)?;
    let c = &mut s.cluster;
    if c.guest(id).is_none_or(|g| g.ha.is_none()) {
        return Ok(fail(255, format!("service '{sid}' not defined")));
    }
    let due = now() + c.timing.ha_delay_secs + c.timing.migrate_secs;
    c.events.push(Event {
        due,
        what: EventKind::HaMove {
            vmid: id,
            target: target.into(),
        },
    });
    move_back_outside_rule(c, id, sid, target, due);
    if let Some(g) = c.guest_mut(id) {
        g.lock = Some("migrate".into());
        g.lock_since = Some(now() as i64);
    }
    s.save()?;
    Ok(ok(""))
}

/// `reboot`: the node goes away (guests on it stop, quorum is recomputed) and comes back with a
/// new boot id and its newest kernel after the simulated reboot time, unless a fault keeps it down.
pub(super) fn reboot(env: &Env) -> Result<Reply, String> {
    let mut s = Locked::open(&env.state)?;
    let c = &mut s.cluster;
    let due = now() + c.timing.reboot_secs;
    if let Some(n) = c.node_mut(&env.node) {
        n.online = false;
    }
    for g in c
        .guests
        .iter_mut()
        .filter(|g| g.node == env.node && g.status == "running")
    {
        g.status = "stopped".into();
        g.pid = None;
    }
    c.bump_ring();
    c.events.push(Event {
        due,
        what: EventKind::NodeBack {
            node: env.node.clone(),
        },
    });
    s.save()?;
    Ok(ok(""))
}
