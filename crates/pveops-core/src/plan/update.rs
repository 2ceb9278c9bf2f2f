//! Planning a rolling package update: the package gates (locks, dpkg state, disk space,
//! repositories), the upgrade within a reboot cycle, and the rollback notes.

use std::collections::BTreeMap;

use serde_json::json;

use super::reboot::add_cycle;
use super::{
    Action, Condition, Gate, NodeSpace, NodeUpdate, Options, Plan, Prechecks, RebootDecision, Step,
    Verify, gate, noop, read_ok, unread_on,
};
use crate::command::Templates;
use crate::snapshot::Snapshot;

/// Room a new kernel takes in /boot: vmlinuz (~15 MiB) and its initramfs (~70–100 MiB on PVE
/// 8/9 kernels), which no package field states; an estimate with headroom.
const BOOT_BYTES_PER_KERNEL: u64 = 128 << 20;

/// One node of a rolling update: with nothing to install a no-op that says so; else the
/// package gates, then drain, `apt-get -y dist-upgrade` (detached, its exit status and log
/// kept on the node), the reboot when due, the guests back.
/// `later`: the nodes after this one in the rollout, which its guests avoid.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_update(
    p: &mut Plan,
    snap: &Snapshot,
    node: &str,
    later: &[String],
    pre: &Prechecks,
    templates: &Templates,
    o: &Options,
) -> Result<(), crate::Error> {
    let seq = p.steps.len() as u32 + 1;
    let Some(n) = snap.node(node).filter(|n| n.reachable) else {
        let why = snap
            .node(node)
            .and_then(|n| n.error.clone())
            .unwrap_or_else(|| format!("{node} is not among the targets"));
        p.gates.push(gate(
            "node-reachable",
            false,
            format!("{node} is to be updated but did not answer: {why}"),
        ));
        return Ok(());
    };
    if let Some(why) = o.refresh_failures.get(node) {
        p.gates.push(gate(
            "lists-refreshed",
            false,
            format!("`apt-get update` on {node} failed: {why}; the plan would stand on old package lists (fix the repositories, or pass --no-refresh)"),
        ));
    }
    let Some(up) = n.updates.as_ref().filter(|_| read_ok(n, "apt-simulate")) else {
        p.gates.push(gate(
            "updates-read",
            false,
            format!(
                "what {node} would install could not be read: {}",
                unread_on(snap, Some(node), "apt-simulate")
            ),
        ));
        return Ok(());
    };
    let version = n.version.as_ref();
    let due = if n.packages.reboot_required == Some(true) {
        Some("/run/reboot-required exists already".to_string())
    } else if version.and_then(|v| v.reboot_required) == Some(true) {
        Some(format!(
            "the running kernel {} is not the newest installed ({})",
            version
                .and_then(|v| v.running_kernel.as_deref())
                .unwrap_or("?"),
            version
                .and_then(|v| v.newest_kernel.as_deref())
                .unwrap_or("?")
        ))
    } else {
        None
    };
    let kept = if up.kept_back.is_empty() {
        String::new()
    } else {
        format!(
            " ({} kept back: {})",
            up.kept_back.len(),
            up.kept_back.join(", ")
        )
    };
    let mut entry = NodeUpdate {
        node: node.to_string(),
        installs: up.installs.clone(),
        removals: up.removals.clone(),
        kept_back: up.kept_back.clone(),
        reboot: RebootDecision::No,
        reboot_reason: String::new(),
        reboot_due: due.is_some(),
    };
    if up.installs.is_empty() && up.removals.is_empty() {
        entry.reboot = RebootDecision::No;
        entry.reboot_reason = match &due {
            Some(why) => {
                format!("nothing to install, but a reboot is due ({why}): `pveops reboot {node}`")
            }
            None => "nothing to install".into(),
        };
        p.updates.push(entry);
        p.steps.push(noop(
            seq,
            node,
            format!("{node} has nothing to install{kept}: skipped"),
        ));
        return Ok(());
    }
    let (reboot_if, reboot, reason) = if !up.new_kernels.is_empty() {
        (
            None,
            RebootDecision::Yes,
            format!("new kernel {}", up.new_kernels.join(", ")),
        )
    } else if let Some(why) = due {
        (None, RebootDecision::Yes, why)
    } else {
        (
            Some(Condition::RebootNeeded {
                node: node.to_string(),
            }),
            RebootDecision::IfNeeded,
            "only if the upgrade asks for it (/run/reboot-required, or a kernel newer than the running one)".to_string(),
        )
    };
    entry.reboot = reboot;
    entry.reboot_reason = reason.clone();
    p.updates.push(entry);
    p.gates.push(match &n.packages.apt_locks {
        None => gate(
            "dpkg-lock-free",
            false,
            format!(
                "the package locks of {node} could not be read: {}",
                unread_on(snap, Some(node), "apt-locks")
            ),
        ),
        Some(locks) if locks.is_empty() => gate(
            "dpkg-lock-free",
            true,
            format!("no process holds apt's or dpkg's locks on {node}"),
        ),
        Some(locks) => {
            let held: Vec<String> = locks
                .iter()
                .map(|l| {
                    format!(
                        "{} holds {}",
                        match (&l.command, l.pid) {
                            (Some(c), Some(pid)) => format!("{c} (pid {pid})"),
                            (None, Some(pid)) => format!("pid {pid}"),
                            (Some(c), None) => c.clone(),
                            (None, None) => "a process".into(),
                        },
                        l.path.as_deref().unwrap_or("a package lock")
                    )
                })
                .collect();
            gate(
                "dpkg-lock-free",
                false,
                format!(
                    "on {node} {}: wait until it ends (unattended-upgrades, another admin's apt) and run again",
                    held.join(", ")
                ),
            )
        }
    });
    p.gates.push(match &n.packages.broken_packages {
        None => gate(
            "dpkg-audit-clean",
            false,
            format!(
                "dpkg's state on {node} could not be read: {}",
                unread_on(snap, Some(node), "dpkg-audit")
            ),
        ),
        Some(b) if b.is_empty() => gate(
            "dpkg-audit-clean",
            true,
            format!("`dpkg --audit` on {node} reports nothing"),
        ),
        Some(b) => gate(
            "dpkg-audit-clean",
            false,
            format!(
                "dpkg on {node} left {} package(s) half installed or unconfigured: {}; repair that first (`dpkg --configure -a`, then `apt-get -f install`)",
                b.len(),
                b.join(", ")
            ),
        ),
    });
    p.gates.push(space_gate(node, up, o.space.get(node)));
    let packages: BTreeMap<String, String> = up
        .installs
        .iter()
        .map(|i| (i.package.clone(), i.new_version.clone()))
        .collect();
    let count = up.installs.len() + up.removals.len();
    let work = Step {
        seq: 0,
        title: format!(
            "upgrade {node}: {count} package(s){} (apt-get -y dist-upgrade, detached)",
            if up.new_kernels.is_empty() {
                String::new()
            } else {
                format!(", kernel {}", up.new_kernels.join(", "))
            }
        ),
        on: node.to_string(),
        command: Some(templates.render("apt-dist-upgrade", &json!({}))?),
        detached: true,
        verify: Some(Verify::Upgraded {
            node: node.to_string(),
            packages,
        }),
        timeout: o.upgrade_timeout,
        timeout_secs: o.upgrade_timeout.as_secs(),
        undo: None,
        noop: None,
        only_if: None,
        detail: Action::Upgrade {
            node: node.to_string(),
            packages: count,
        },
    };
    add_cycle(
        p,
        snap,
        node,
        later,
        Some(work),
        reboot_if,
        pre,
        templates,
        o,
    )?;
    p.success_criteria.push(format!(
        "{node} runs the new versions (pveversion -v), has nothing left to install, is quorate with its services active, rebooted {} (new boot id), its guests back",
        if reboot == RebootDecision::Yes { "".to_string() } else { "only if it asked for it".to_string() }
    ).replace("rebooted  (", "rebooted ("));
    Ok(())
}

/// Enough free space on the node for what apt downloads (to /var/cache/apt/archives) and
/// unpacks (the growth of Installed-Size, on /), and for each new kernel's image and initramfs
/// in /boot. apt itself checks only the download (apt-private/private-install.cc
/// `InstallPackages`: "You don't have enough free space in %s"), and only once it is running.
fn space_gate(node: &str, up: &crate::facts::apt_get::Updates, space: Option<&NodeSpace>) -> Gate {
    let refuse = |why: String| gate("disk-space", false, why);
    let Some(space) = space else {
        return refuse(format!("the free space on {node} was not read"));
    };
    let records = match &space.sizes {
        Ok(r) => &r.records,
        Err(e) => {
            return refuse(format!(
                "the package sizes on {node} could not be read: {e}"
            ));
        }
    };
    let free = match &space.free {
        Ok(f) if f.mounts.len() == 3 => f,
        Ok(f) => {
            return refuse(format!(
                "df on {node} named {} of the 3 paths (/, /boot, /var/cache/apt/archives)",
                f.mounts.len()
            ));
        }
        Err(e) => return refuse(format!("the free space on {node} could not be read: {e}")),
    };
    let find = |pkg: &str, ver: &str| {
        records
            .iter()
            .find(|r| r.package == pkg && r.version == ver)
    };
    let (mut download, mut growth_kib, mut unknown) = (0u64, 0i64, Vec::new());
    for i in &up.installs {
        match find(&i.package, &i.new_version) {
            Some(r) => {
                download += r.size.unwrap_or(0);
                growth_kib += r.installed_size_kib.unwrap_or(0) as i64;
            }
            None => unknown.push(format!("{} {}", i.package, i.new_version)),
        }
        if let Some(old) = &i.old_version
            && let Some(r) = find(&i.package, old)
        {
            growth_kib -= r.installed_size_kib.unwrap_or(0) as i64;
        }
    }
    if !unknown.is_empty() {
        return refuse(format!(
            "apt-cache on {node} has no record of {}: run `apt-get update` (or drop --no-refresh)",
            unknown.join(", ")
        ));
    }
    let (root, boot, cache) = (&free.mounts[0], &free.mounts[1], &free.mounts[2]);
    let mut need: BTreeMap<&str, (u64, u64, Vec<String>)> = BTreeMap::new();
    for m in [root, boot, cache] {
        need.entry(m.target.as_str())
            .or_insert((m.avail_bytes, 0, Vec::new()));
    }
    let mut add = |target: &str, bytes: u64, what: String| {
        if bytes == 0 {
            return;
        }
        if let Some(e) = need.get_mut(target) {
            e.1 += bytes;
            e.2.push(what);
        }
    };
    add(
        &cache.target,
        download,
        format!("{} to download", human(download)),
    );
    let unpack = (growth_kib.max(0) as u64) * 1024;
    add(&root.target, unpack, format!("{} to unpack", human(unpack)));
    let kernels = up.new_kernels.len() as u64 * BOOT_BYTES_PER_KERNEL;
    add(
        &boot.target,
        kernels,
        format!(
            "{} for {} new kernel(s)",
            human(kernels),
            up.new_kernels.len()
        ),
    );
    let short: Vec<String> = need
        .iter()
        .filter(|(_, (avail, want, _))| want > avail)
        .map(|(t, (avail, want, what))| {
            format!(
                "{t} needs {} ({}) but has {} free",
                human(*want),
                what.join(", "),
                human(*avail)
            )
        })
        .collect();
    if !short.is_empty() {
        return refuse(format!(
            "not enough disk space on {node}: {}; free some (`apt-get clean`, `apt-get autoremove` of old kernels) and run again",
            short.join("; ")
        ));
    }
    let ok: Vec<String> = need
        .iter()
        .filter(|(_, (_, want, _))| *want > 0)
        .map(|(t, (avail, want, _))| format!("{t} needs {}, {} free", human(*want), human(*avail)))
        .collect();
    gate(
        "disk-space",
        true,
        format!(
            "{node} has room: {}",
            if ok.is_empty() {
                "nothing to write".to_string()
            } else {
                ok.join(", ")
            }
        ),
    )
}

/// `1.5 GiB`, `105.0 MiB`.
fn human(bytes: u64) -> String {
    crate::units::human_bytes(bytes)
}

/// The same repositories on every node that reported them (a node on other repositories ends
/// up on other versions); a mix of Proxmox channels (enterprise, no-subscription) passes with
/// a warning, as it is a common, deliberate setup.
pub(super) fn repositories_gate(snap: &Snapshot, nodes: &[String]) -> Gate {
    let mut unread = Vec::new();
    let mut sets: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    let mut channels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in snap.nodes.iter().filter(|n| n.reachable) {
        let name = n.pve_node.clone().unwrap_or_else(|| n.name.clone());
        match &n.packages.repositories {
            Some(r) => {
                let mut r = r.clone();
                r.sort();
                r.dedup();
                sets.entry(r).or_default().push(name.clone());
            }
            None if nodes.contains(&name) => {
                unread.push(unread_on(snap, Some(&name), "apt-policy"))
            }
            None => {}
        }
        for c in n.packages.proxmox_channels.iter().flatten() {
            channels.entry(c.clone()).or_default().push(name.clone());
        }
    }
    if !unread.is_empty() {
        return gate(
            "repositories-consistent",
            false,
            format!("the repositories could not be read: {}", unread.join("; ")),
        );
    }
    if sets.len() > 1 {
        let common: Vec<&String> = sets
            .keys()
            .next()
            .into_iter()
            .flatten()
            .filter(|r| sets.keys().all(|s| s.contains(r)))
            .collect();
        let groups: Vec<String> = sets
            .iter()
            .map(|(repos, names)| {
                let own: Vec<&str> = repos
                    .iter()
                    .filter(|r| !common.contains(r))
                    .map(String::as_str)
                    .collect();
                if own.is_empty() {
                    format!("{} only the common ones", names.join(", "))
                } else {
                    format!("{} also {}", names.join(", "), own.join(", "))
                }
            })
            .collect();
        return gate(
            "repositories-consistent",
            false,
            format!(
                "the nodes use different repositories ({}): align /etc/apt/sources.list.d first, or the nodes end up on different versions",
                groups.join("; ")
            ),
        );
    }
    if channels.len() > 1 {
        let mix: Vec<String> = channels
            .iter()
            .map(|(c, names)| format!("{c} on {}", names.join(", ")))
            .collect();
        return gate(
            "repositories-consistent",
            true,
            format!(
                "warning: the nodes mix Proxmox channels ({}); they may get different versions",
                mix.join("; ")
            ),
        );
    }
    gate(
        "repositories-consistent",
        true,
        "every node uses the same repositories".into(),
    )
}

/// The rollback section of an update: apt has no safe downgrade, so the previous versions
/// are listed for a repair by hand.
pub(super) fn update_rollback(updates: &[NodeUpdate]) -> Vec<String> {
    let mut out = vec!["No automatic downgrade: apt cannot downgrade safely (maintainer scripts only run forward). Repair forward on the node (`dpkg --configure -a`, `apt-get -f install`); pin one package back by hand with `apt-get install PACKAGE=OLD_VERSION`; a new kernel that does not boot: choose the previous one in the boot menu, then `proxmox-boot-tool kernel pin OLD`.".to_string()];
    for u in updates
        .iter()
        .filter(|u| !u.installs.is_empty() || !u.removals.is_empty())
    {
        let before: Vec<String> = u
            .installs
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.package,
                    i.old_version.as_deref().unwrap_or("(not installed)")
                )
            })
            .chain(u.removals.iter().map(|r| {
                format!(
                    "{} {} (removed by the upgrade)",
                    r.package,
                    r.version.as_deref().unwrap_or("")
                )
            }))
            .collect();
        out.push(format!(
            "{} before the update: {}",
            u.node,
            before.join(", ")
        ));
    }
    out
}
