//! Collect: take a snapshot of the targets. One connection per node runs the read-only command
//! catalog (through the node-side runner, `crate::batch`); cluster-wide facts
//! (`/cluster/resources`, backups) are read once, from the first target (or the first that
//! answered), the backup listings as soon as that target's resources are in. Outputs are parsed into health and kept
//! raw for the evidence bundle. Only read-only templates are ever run here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::check::Check;
use crate::command::{Command, Templates};
use crate::facts::pvesh::Resource;
use crate::facts::storage_content::Backup;
use crate::facts::{self, Keep, Scope};
use crate::fleet::{self, NodeResult};
use crate::inventory::Node;
use crate::output::Output;
use crate::snapshot::{CommandRecord, NodeSnapshot, Probe, Snapshot};

/// One raw command output for `raw/<node>/<name>.*`.
#[derive(Clone, Debug)]
pub struct Raw {
    pub node: String,
    pub name: String,
    pub command: String,
    pub output: Result<Output, String>,
}

/// How to collect.
pub struct Collector {
    pub fleet: Arc<fleet::Fleet>,
    /// Restrict the per-node catalog to these template names (empty: all).
    pub only: Vec<String>,
    /// Also run the node's upgrade checker (`pve8to9 --full` / `pve7to8 --full`).
    pub upgrade_checklist: bool,
    /// Also read what gates a package upgrade (the `Scope::PackageState` reads), for
    /// `pveops update`.
    pub package_state: bool,
    /// Where each node's raw outputs go as soon as it has answered (`evidence::RawWriter`),
    /// while the other nodes still answer; they are then not in what `collect` returns.
    pub raw_sink: Option<std::sync::mpsc::Sender<Vec<Raw>>>,
}

/// A node's catalog: every node and monitoring read in the registry's order (`facts::READS`)
/// and the commands of the command checks, narrowed to `only` when it is not empty, then the
/// reads of the `optional` scopes; each rendered with its variables.
pub fn node_catalog(
    templates: &Templates,
    checks: &[Check],
    only: &[String],
    optional: &[Scope],
) -> Result<Vec<Command>, crate::Error> {
    let reads = |scopes: &[Scope]| {
        facts::READS
            .iter()
            .filter(|r| scopes.contains(&r.scope))
            .map(|r| (r.template, (r.vars)()))
            .collect::<Vec<_>>()
    };
    let mut wanted = reads(&[Scope::Node, Scope::Monitoring]);
    for c in checks.iter().filter(|c| c.enabled) {
        if let Some(name) = &c.command
            && !wanted.iter().any(|(w, _)| w == name)
        {
            wanted.push((name, json!({})));
        }
    }
    // `--only` narrows the catalog; what was asked for besides it (`--upgrade-checklist`, an
    // update's package state) is read all the same.
    wanted.retain(|(name, _)| only.is_empty() || only.iter().any(|o| o == name));
    for scope in optional {
        wanted.extend(reads(std::slice::from_ref(scope)));
    }
    wanted
        .into_iter()
        .map(|(name, data)| templates.render(name, &data))
        .collect()
}

impl Collector {
    /// Snapshots `nodes` (findings not yet evaluated) and returns the raw outputs too.
    pub async fn collect(
        &self,
        nodes: Vec<Node>,
        checks: &[Check],
        on_done: impl Fn(&NodeResult) + Send + Sync + 'static,
    ) -> Result<(Snapshot, Vec<Raw>), crate::Error> {
        let mut optional = Vec::new();
        if self.upgrade_checklist {
            optional.push(Scope::UpgradeChecklist);
        }
        if self.package_state {
            optional.push(Scope::PackageState);
        }
        let catalog = node_catalog(&self.fleet.templates, checks, &self.only, &optional)?;
        let cluster_wide = self.only.is_empty();
        let resources = self
            .fleet
            .templates
            .render(facts::pvesh::CLUSTER_RESOURCES.template, &json!({}))?;
        let work: Vec<(Node, Vec<Command>)> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut cmds = catalog.clone();
                if i == 0 && cluster_wide {
                    cmds.push(resources.clone());
                }
                (n.clone(), cmds)
            })
            .collect();
        // The backup listings need the backup storages, which `/cluster/resources` names: they
        // start on the first target as soon as its answer is in, while the others still answer.
        let (tx, rx) = tokio::sync::oneshot::channel::<Vec<String>>();
        let tx = std::sync::Mutex::new(Some(tx));
        let first = nodes.first().map(|n| n.name.clone());
        let on_done = Arc::new(on_done);
        let od = on_done.clone();
        let sink = self.raw_sink.clone();
        let catalog_run = self.fleet.run_each(work, move |r| {
            if cluster_wide
                && first.as_deref() == Some(r.node.name.as_str())
                && let Some(ids) = storages_of(r)
                && let Some(tx) = tx.lock().ok().and_then(|mut t| t.take())
            {
                let _ = tx.send(ids);
            }
            if let Some(sink) = &sink {
                // A writer that has stopped (its disk failed) reports that when it is
                // finished; the collection goes on.
                let _ = sink.send(raws_of(r));
            }
            od(r)
        });
        let backups_run = async {
            let ids = rx.await.ok()?;
            let first = nodes.first()?;
            let cmds = self.backup_commands(&ids).ok()?;
            if cmds.is_empty() {
                return Some(None);
            }
            Some(Some(self.run_on(first, cmds).await))
        };
        let (results, early_backups) = tokio::join!(catalog_run, backups_run);
        let mut snap = Snapshot {
            format: crate::snapshot::FORMAT,
            taken_at: now_rfc3339(),
            status: crate::finding::Severity::Ok,
            pveops_version: env!("CARGO_PKG_VERSION").into(),
            nodes: Vec::new(),
            resources: Vec::new(),
            backups: Vec::new(),
            newest_backups: Vec::new(),
            ceph: None,
            findings: Vec::new(),
        };
        let mut raws = Vec::new();
        for r in &results {
            // With a sink, each node's raw outputs went there when it answered.
            if self.raw_sink.is_none() {
                raws.extend(raws_of(r));
            }
            snap.nodes
                .push(node_snapshot(r, &mut snap.resources, &mut snap.backups));
        }
        match early_backups {
            // Listed already (or nothing to list): keep what the listings read.
            Some(Some(r)) => self.absorb_alone(r, &mut snap, &mut raws),
            Some(None) => {}
            None if cluster_wide => {
                self.second_pass(&nodes, &results, &mut snap, &mut raws)
                    .await?
            }
            None => {}
        }
        snap.derive();
        Ok((snap, raws))
    }

    /// Cluster-wide facts the first pass could not read (first target down, or its answer
    /// unusable) and the backup listings, which need `/cluster/resources` to know the backup
    /// storages.
    async fn second_pass(
        &self,
        nodes: &[Node],
        results: &[NodeResult],
        snap: &mut Snapshot,
        raws: &mut Vec<Raw>,
    ) -> Result<(), crate::Error> {
        // No resources after the first pass: the first target did not answer, or its answer
        // could not be used (pmxcfs is replicated, so any other member has the same view).
        let skip_first = snap.resources.is_empty();
        let Some(i) = results
            .iter()
            .enumerate()
            .position(|(j, r)| r.outcome.is_ok() && !(skip_first && j == 0))
        else {
            return Ok(());
        };
        let node = &nodes[i];
        if snap.resources.is_empty() {
            let cmd = self
                .fleet
                .templates
                .render("cluster-resources", &json!({}))?;
            self.run_alone(node, vec![cmd], snap, raws).await;
        }
        // The backup listings need the resources, read in the first pass or just now.
        let cmds = self.backup_commands(&backup_storages(&snap.resources))?;
        if !cmds.is_empty() {
            self.run_alone(node, cmds, snap, raws).await;
        }
        Ok(())
    }

    /// One backup listing (`storage-content`) per storage.
    fn backup_commands(&self, ids: &[String]) -> Result<Vec<Command>, crate::Error> {
        ids.iter()
            .map(|sid| {
                self.fleet.templates.render(
                    facts::storage_content::READ.template,
                    &json!({ "storage": sid }),
                )
            })
            .collect()
    }

    /// Runs `cmds` on `node` alone.
    async fn run_on(&self, node: &Node, cmds: Vec<Command>) -> NodeResult {
        let mut results = self
            .fleet
            .run_each(vec![(node.clone(), cmds)], |_| {})
            .await;
        results.pop().unwrap_or_else(|| NodeResult {
            node: node.clone(),
            outcome: Ok(Vec::new()),
            duration: Duration::ZERO,
        })
    }

    /// Adds what `r` read to the snapshot: the node's command records, resources and backups.
    fn absorb_alone(&self, r: NodeResult, snap: &mut Snapshot, raws: &mut Vec<Raw>) {
        raws.extend(raws_of(&r));
        let mut scratch = node_snapshot(&r, &mut snap.resources, &mut snap.backups);
        if let Some(target) = snap.nodes.iter_mut().find(|n| n.name == r.node.name) {
            target.commands.append(&mut scratch.commands);
        }
    }

    /// Runs `cmds` on `node` alone and adds what they read to the snapshot: the node's command
    /// records, the resources and the backups.
    async fn run_alone(
        &self,
        node: &Node,
        cmds: Vec<Command>,
        snap: &mut Snapshot,
        raws: &mut Vec<Raw>,
    ) {
        let r = self.run_on(node, cmds).await;
        self.absorb_alone(r, snap, raws);
    }
}

/// The backup storages named by a node's `/cluster/resources` answer, when it gave a usable
/// one.
fn storages_of(r: &NodeResult) -> Option<Vec<String>> {
    let cmds = r.outcome.as_ref().ok()?;
    let c = cmds
        .iter()
        .find(|c| c.command.name == "cluster-resources")?;
    let out = c.result.as_ref().ok().filter(|o| o.success())?;
    let parsed = facts::pvesh::parse_cluster_resources(&out.stdout_text()).ok()?;
    let resources: Vec<Resource> = parsed.resources.iter().map(Resource::from).collect();
    (!resources.is_empty()).then(|| backup_storages(&resources))
}

/// Shared storages that hold backups (vzdump and PBS), by id, once each.
fn backup_storages(resources: &[Resource]) -> Vec<String> {
    let mut ids: Vec<String> = resources
        .iter()
        .filter(|r| {
            r.kind == "storage"
                && r.shared == Some(true)
                && r.status.as_deref() == Some("available")
        })
        .filter(|r| {
            r.content
                .as_deref()
                .is_some_and(|c| c.split(',').any(|x| x == "backup"))
        })
        .filter_map(|r| r.storage.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

/// The raw outputs of one node's results, as the evidence keeps them.
fn raws_of(r: &NodeResult) -> Vec<Raw> {
    let Ok(cmds) = &r.outcome else {
        return Vec::new();
    };
    cmds.iter()
        .map(|c| Raw {
            node: r.node.name.clone(),
            name: c.command.name.clone(),
            command: c.command.script.clone(),
            output: c.result.clone().map_err(|e| e.to_string()),
        })
        .collect()
}

/// Turns one node's results into its snapshot entry.
fn node_snapshot(
    r: &NodeResult,
    resources: &mut Vec<Resource>,
    backups: &mut Vec<Backup>,
) -> NodeSnapshot {
    let mut n = NodeSnapshot {
        name: r.node.name.clone(),
        address: r.node.address(),
        ..Default::default()
    };
    let cmds = match &r.outcome {
        Err(e) => {
            n.error = Some(e.to_string());
            return n;
        }
        Ok(c) => c,
    };
    n.reachable = true;
    for c in cmds {
        let mut rec = CommandRecord {
            name: c.command.name.clone(),
            command: c.command.script.clone(),
            ..Default::default()
        };
        let out = match &c.result {
            Err(cause) => {
                rec.error = Some(cause.to_string());
                n.commands.push(rec);
                continue;
            }
            Ok(o) => o,
        };
        rec.exit_code = out.exit_code();
        rec.signal = out.signal().map(str::to_string);
        rec.started_at = Some(out.started_at.to_string());
        rec.duration_ms = out.duration.as_millis() as u64;
        let parsed = absorb(&mut n, &c.command, out, resources, backups);
        // A command that failed says why on stderr (pmxcfs down, corosync down, a storage
        // offline): that is the finding, not the unreadable output it left.
        rec.diagnosis = (!out.success()).then(|| diagnose(out)).flatten();
        // A PVE release without an endpoint of the monitoring reads (`pvesh`: "No 'get'
        // handler defined", PVE/RESTHandler.pm) simply has not that fact.
        if facts::read(&c.command.name).is_some_and(|r| r.scope == Scope::Monitoring)
            && rec
                .diagnosis
                .as_ref()
                .is_some_and(|d| d.code == "api-path-missing")
        {
            n.commands.push(rec);
            continue;
        }
        if let Err(e) = parsed
            && rec.diagnosis.is_none()
        {
            rec.parse_error = Some(e);
        }
        n.commands.push(rec);
    }
    n
}

/// The first message of a failing command's stderr that `pve-stderr` recognises.
fn diagnose(out: &Output) -> Option<crate::snapshot::Diagnosis> {
    let parsed = facts::stderr::parse(&out.stderr_text()).ok()?;
    // apt's `W:` lines and a task's warnings accompany a failure; they do not explain it.
    let d = parsed
        .diagnostics
        .into_iter()
        .find(|d| !matches!(d.code, "apt-warning" | "task-warnings"))?;
    Some(crate::snapshot::Diagnosis {
        code: d.code.to_string(),
        subject: d.subject,
        message: d.message,
        line: d.text,
    })
}

/// Keeps one output in the snapshot through its catalog read (`facts::READS`); any other
/// command serves a command check, and its output is kept for the check's regex. The error is
/// the parser's one sentence.
fn absorb(
    n: &mut NodeSnapshot,
    cmd: &Command,
    out: &Output,
    resources: &mut Vec<Resource>,
    backups: &mut Vec<Backup>,
) -> Result<(), String> {
    let read = facts::read(&cmd.name);
    // A tool missing on the node (exit 127) is not a parse failure; its fact stays empty.
    let missing = out.exit_code() == Some(127) && out.stdout_text().trim().is_empty();
    match read {
        Some(_) if missing => Ok(()),
        Some(read) => (read.keep)(
            out,
            &mut Keep {
                node: n,
                resources,
                backups,
            },
        ),
        None => {
            n.probes.insert(
                cmd.name.clone(),
                Probe {
                    exit_code: out.exit_code(),
                    stdout: out.stdout_text(),
                    stderr: out.stderr_text(),
                },
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--only` narrows the catalog but not what was asked for besides it.
    #[test]
    fn only_narrows_the_catalog_not_the_optional_reads() {
        let t = Templates::load(None).unwrap();
        let names = |only: &[&str], optional: &[Scope]| -> Vec<String> {
            let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
            node_catalog(&t, &[], &only, optional)
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(
            names(
                &["qm-list"],
                &[Scope::UpgradeChecklist, Scope::PackageState]
            ),
            [
                "qm-list",
                "upgrade-checklist",
                "apt-locks",
                "reboot-required"
            ]
        );
        let all = names(&[], &[Scope::UpgradeChecklist]);
        assert_eq!(all.first().map(String::as_str), Some("pvecm-status"));
        assert_eq!(all.last().map(String::as_str), Some("upgrade-checklist"));
        assert!(all.iter().any(|n| n == "systemctl-is-active"));
    }
}
