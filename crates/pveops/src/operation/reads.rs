//! The live reads an operation makes around its plan: the migrate preflight and HA rules of
//! the guests it may move, datacenter.cfg's `max_workers`, and for `update` the refreshed
//! package lists and the room an upgrade needs.

use std::collections::BTreeMap;

use serde_json::json;

use crate::executor::Runner;
use crate::journal::StepOutcome;
use crate::plan::{Action, Operation, Prechecks, Preflight};
use crate::snapshot::Snapshot;

/// The lock a failed preflight names (`VM is locked (backup)`, read by the `pve-stderr` parser).
pub(super) fn locked(stderr: &str) -> Option<String> {
    crate::facts::stderr::parse(stderr)
        .ok()?
        .diagnostics
        .into_iter()
        .find(|d| d.code == "guest-locked")
        .and_then(|d| d.subject)
}

/// Per node with something to install: the sizes of the versions apt replaces and installs
/// (`apt-cache show PKG=VERSION…`) and the free space where it writes (`df`), both read-only,
/// their output kept in `raw/`.
pub(super) async fn read_space(
    runner: &Runner,
    before: &Snapshot,
    wanted: &[String],
    bundle: &mut crate::evidence::Bundle,
) -> Result<BTreeMap<String, crate::plan::NodeSpace>, crate::Error> {
    let templates = &runner.fleet.templates;
    let mut out = BTreeMap::new();
    for node in wanted {
        let pve = crate::plan::pve_name(before, node);
        let Some(n) = before.node(&pve) else { continue };
        let Some(up) = n.updates.as_ref().filter(|u| !u.installs.is_empty()) else {
            continue;
        };
        let Some(target) = runner.node(&pve).map(|n| n.name.clone()) else {
            continue;
        };
        let specs: Vec<String> = up
            .installs
            .iter()
            .flat_map(|i| {
                std::iter::once(format!("{}={}", i.package, i.new_version)).chain(
                    i.old_version
                        .iter()
                        .map(|old| format!("{}={old}", i.package)),
                )
            })
            .collect();
        let sizes_cmd = templates.render("apt-package-sizes", &json!({ "specs": specs }))?;
        let df_cmd = templates.render("disk-free", &json!({}))?;
        let mut read =
            async |cmd: &crate::command::Command, file: &str| -> Result<String, String> {
                match runner.run_on(&pve, cmd).await {
                    Ok((code, out, err)) => {
                        let _ = bundle.write_node_text(
                            &target,
                            file,
                            &cmd.script,
                            code,
                            &format!("{out}{err}"),
                        );
                        if code == Some(0) {
                            Ok(out)
                        } else {
                            Err(crate::output::failure(&cmd.script, None, code, &err))
                        }
                    }
                    Err(e) => Err(e.message),
                }
            };
        let sizes = read(&sizes_cmd, "apt-package-sizes.txt")
            .await
            .and_then(|t| crate::facts::apt_cache_show::parse(&t).map_err(|e| e.to_string()));
        let free = read(&df_cmd, "disk-free.txt")
            .await
            .and_then(|t| crate::facts::df::parse(&t).map_err(|e| e.to_string()));
        out.insert(pve, crate::plan::NodeSpace { sizes, free });
    }
    Ok(out)
}

/// `apt-get update` on every node to update, each journaled (seq 0: before the plan's steps),
/// its output kept in `raw/`; returns the nodes where it failed, with why.
pub(super) async fn refresh(
    runner: &Runner,
    before: &Snapshot,
    wanted: &[String],
    journal: &mut crate::journal::Journal,
    bundle: &mut crate::evidence::Bundle,
) -> Result<BTreeMap<String, String>, crate::Error> {
    let templates = &runner.fleet.templates;
    let cmd = templates.render("apt-update", &json!({}))?;
    let mut failures = BTreeMap::new();
    for node in wanted {
        let pve = crate::plan::pve_name(before, node);
        // A node that does not answer is refused by the node-reachable gate.
        let Some(target) = runner.node(&pve).map(|n| n.name.clone()) else {
            continue;
        };
        eprintln!(
            "  refresh the package lists of {pve}\n      $ {}",
            cmd.script
        );
        let entry = |phase: &str| crate::journal::Entry {
            seq: 0,
            step: format!("refresh the package lists of {pve} (apt-get update)"),
            command: Some(cmd.script.clone()),
            phase: phase.into(),
            time: crate::journal::now(),
            outcome: None,
            exit_code: None,
            verified: None,
            message: None,
            undo: None,
            detail: Some(Action::AptUpdate { node: pve.clone() }),
        };
        journal.write(&entry("start"))?;
        let (outcome, code, message) = match runner.run_on(&pve, &cmd).await {
            Ok((code, out, err)) => {
                let text = format!("{out}{err}");
                bundle.write_node_text(&target, "apt-get-update.txt", &cmd.script, code, &text)?;
                // A repository that could not be fetched shows as apt's `E:` lines
                // (apt-private/private-update.cc `DoUpdate`), their text the reason.
                let log = crate::facts::apt_log::parse(&text).unwrap_or_default();
                match (code, log.failure()) {
                    (Some(0), None) => {
                        (StepOutcome::Ok, code, "package lists refreshed".to_string())
                    }
                    (_, Some(why)) => (StepOutcome::Failed, code, why),
                    (c, None) => (
                        StepOutcome::Failed,
                        c,
                        format!(
                            "{}: {}",
                            crate::output::exited(c),
                            text.lines().last().unwrap_or("").trim()
                        ),
                    ),
                }
            }
            Err(e) => (StepOutcome::Failed, None, e.message),
        };
        if outcome == StepOutcome::Failed {
            eprintln!("    failed: {message}");
            failures.insert(pve.clone(), message.clone());
        }
        journal.write(&crate::journal::Entry {
            outcome: Some(outcome),
            exit_code: code,
            verified: Some(outcome == StepOutcome::Ok),
            message: Some(message),
            ..entry("end")
        })?;
    }
    Ok(failures)
}

/// What PVE says about targets before the plan: the migrate preflight of every guest the
/// operation may move (read on its node, parsed by `facts::migrate_preflight`) and, when one of
/// them is HA-managed, the HA rules (`facts::ha_rules`; on PVE ≤ 8 the HA groups and which
/// resource is in which, read as the rules PVE 9 makes of them).
pub(super) async fn preflight(runner: &Runner, op: &Operation, snap: &Snapshot) -> Prechecks {
    let templates = &runner.fleet.templates;
    let mut out = Prechecks::default();
    let wanted: Vec<&crate::facts::pvesh::Resource> = snap
        .resources
        .iter()
        .filter(|r| r.is_guest())
        .filter(|r| match op {
            Operation::Migrate { vmid, .. } => r.vmid == Some(*vmid),
            // A drain may move stopped guests too (`--include-stopped`).
            Operation::Drain { node, .. } => {
                r.node.as_deref() == Some(crate::plan::pve_name(snap, node).as_str())
            }
            Operation::Reboot { nodes } | Operation::Update { nodes, .. } => {
                nodes
                    .iter()
                    .any(|n| r.node.as_deref() == Some(crate::plan::pve_name(snap, n).as_str()))
                    && r.status.as_deref() == Some("running")
            }
            Operation::Maintenance { .. } | Operation::Restore { .. } => false,
        })
        .collect();
    // A node without the endpoint (PVE < 9 for /cluster/ha/rules and for containers' migrate
    // preflight): nothing to read there (`pve-stderr` kind, code `api-path-missing`).
    let missing =
        |err: &str| crate::facts::stderr::parse(err).is_ok_and(|d| d.has("api-path-missing"));
    let failed = |cmd: &crate::command::Command, code: Option<u32>, err: &str| {
        crate::output::failure(&cmd.script, None, code, err)
    };
    for r in &wanted {
        let (Some(vmid), Some(node)) = (r.vmid, r.node.clone()) else {
            continue;
        };
        let path = format!("/nodes/{node}/{}/{vmid}/migrate", r.kind);
        let Ok(cmd) = templates.render("pvesh-get", &json!({ "path": path })) else {
            continue;
        };
        // A preflight that cannot be read refuses the gate; an unreachable node has no entry:
        // the node-reachable gate names it.
        if runner.node_answers(&node) {
            let entry = match runner.run_on(&node, &cmd).await {
                Ok((Some(0), text, _)) => match crate::facts::migrate_preflight::parse(&text) {
                    Ok(pf) => Preflight::Read(pf),
                    Err(e) => Preflight::Unreadable(e.to_string()),
                },
                Ok((_, _, err)) if missing(&err) => continue,
                Ok((code, _, err)) => match locked(&err) {
                    Some(lock) => Preflight::Locked(lock),
                    None => Preflight::Unreadable(failed(&cmd, code, &err)),
                },
                Err(e) => Preflight::Unreadable(e.message),
            };
            out.preflight.insert(vmid, entry);
        }
    }
    let ha_node = wanted
        .iter()
        .filter(|r| r.hastate.is_some())
        .filter_map(|r| r.node.clone())
        .find(|n| runner.node_answers(n));
    if let Some(node) = ha_node {
        let read = async |template: &str| -> Result<Option<String>, String> {
            let cmd = templates
                .render(template, &json!({}))
                .map_err(|e| e.to_string())?;
            match runner.run_on(&node, &cmd).await {
                Ok((Some(0), text, _)) => Ok(Some(text)),
                Ok((_, _, err)) if missing(&err) => Ok(None),
                Ok((code, _, err)) => Err(failed(&cmd, code, &err)),
                Err(e) => Err(e.message),
            }
        };
        out.ha_rules = match read("ha-rules").await {
            Ok(Some(text)) => crate::facts::ha_rules::parse(&text).map_err(|e| e.to_string()),
            // PVE ≤ 8 has no rules but HA groups: a restricted one binds as a strict rule does.
            Ok(None) => match (read("ha-groups").await, read("ha-resources").await) {
                (Ok(g), Ok(r)) => {
                    let groups = crate::facts::ha_groups::parse(g.as_deref().unwrap_or("[]"))
                        .map_err(|e| e.to_string());
                    let resources = crate::facts::ha_resources::parse(r.as_deref().unwrap_or("[]"))
                        .map_err(|e| e.to_string());
                    groups.and_then(|g| {
                        resources.map(|r| crate::facts::ha_rules::HaRules::from_groups(&g, &r))
                    })
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            Err(e) => Err(e),
        };
    }
    out
}

/// How many migrations run at once, and where that came from: `--max-migrations`, else (for the
/// operations that move several guests) `max_workers` of datacenter.cfg as PVE's bulk migration
/// uses it (pve-manager `PVE/API2/Nodes.pm` `migrateall`), else 1.
pub(super) async fn migrations_at_once(
    runner: &Runner,
    op: &Operation,
    asked: Option<u32>,
) -> (u32, String) {
    if let Some(n) = asked {
        return (n.max(1), "--max-migrations".into());
    }
    if matches!(
        op,
        Operation::Migrate { .. } | Operation::Maintenance { .. }
    ) {
        return (1, "one guest at most".into());
    }
    match runner.cluster_options().await {
        Ok(o) => match o.max_workers {
            Some(n) => (
                u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 64),
                "max_workers in /etc/pve/datacenter.cfg".into(),
            ),
            None => (1, "the default: datacenter.cfg sets no max_workers".into()),
        },
        Err(e) => {
            eprintln!(
                "{}: datacenter.cfg's max_workers could not be read ({e}); one migration at a time",
                op.name()
            );
            (
                1,
                format!("the default: datacenter.cfg could not be read ({e})"),
            )
        }
    }
}
