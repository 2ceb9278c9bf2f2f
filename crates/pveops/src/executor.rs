//! Execute a plan: one step at a time, each journaled before and after it runs, each verified
//! by polling the state it should change until it holds or its timeout passes (never a fixed
//! wait). Migrations run detached on the node, so a dropped connection or Ctrl-C never kills
//! them; Ctrl-C journals the step in flight as aborted and stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::command::Command;
use crate::facts;
use crate::facts::pvesh::Resource;
use crate::fleet::Fleet;
use crate::inventory::Node;
use crate::journal::{Entry, Journal, StepOutcome, now};
use crate::output::exited;
use crate::plan::{Condition, Plan, Step, Verify};
use crate::signals::{Sig, Signals};

/// How a plan's execution ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step ran and was verified (or had nothing to do).
    Success,
    /// This step failed (its seq and why); the steps after it did not run.
    Failed { seq: u32, message: String },
    /// Interrupted by `signal` during this step (or before it started).
    Aborted { seq: u32, signal: Sig },
}

pub use crate::journal::{DetachedLog, Done};

/// A look at the cluster that failed. `permanent` ones (see `Cause::is_permanent`) end the
/// step at once; the others are polled again until the step's timeout.
#[derive(Clone, Debug)]
pub struct LookFailed {
    pub message: String,
    pub permanent: bool,
}

impl LookFailed {
    fn retry(message: impl Into<String>) -> LookFailed {
        LookFailed {
            message: message.into(),
            permanent: false,
        }
    }

    fn node(e: &crate::error::NodeError) -> LookFailed {
        LookFailed {
            message: e.to_string(),
            permanent: e.cause.is_permanent(),
        }
    }
}

impl std::fmt::Display for LookFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A signal (`crate::signals`) that came before `step` started: the plan ends there, nothing
/// of the step having run (so nothing of it is journaled).
fn interrupted_before(signals: &mut Signals, step: &Step) -> Option<Outcome> {
    signals.pending().map(|sig| {
        eprintln!("  interrupted ({}) before step {}", sig.name(), step.seq);
        Outcome::Aborted {
            seq: step.seq,
            signal: sig,
        }
    })
}

/// The journal as the steps of a wave share it: each entry written whole, in the order the
/// steps reach it (a line is never interleaved with another).
struct Log<'a>(std::sync::Mutex<&'a mut Journal>);

impl Log<'_> {
    fn write(&self, e: &Entry) -> Result<(), crate::Error> {
        let mut j = self.0.lock().unwrap_or_else(|p| p.into_inner());
        j.write(e)
    }
}

/// What the runner needs to reach the cluster.
pub struct Runner {
    /// How commands reach the nodes; single commands keep one connection per node across
    /// steps and polls, replaced once per command when it broke (a reboot).
    pub fleet: Arc<Fleet>,
    /// Target nodes with their PVE node names: every target, answering or not (a node that
    /// was rebooting when the operation began is waited for through its target).
    pub nodes: Vec<(String, Node)>,
    /// The PVE names of the nodes that answered the before-snapshot.
    pub answered: std::collections::BTreeSet<String>,
    /// Between two looks at the state while a step is verified.
    pub poll_every: Duration,
}

impl Runner {
    /// Whether a target reaches node `pve` (it answered the before-snapshot).
    pub fn node_answers(&self, pve: &str) -> bool {
        self.answered.contains(pve)
    }

    /// The target that reaches PVE node `pve` (or is named so).
    pub fn node(&self, pve: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|(p, n)| p == pve || n.name == pve)
            .map(|(_, n)| n)
    }

    /// Runs one command on a node; returns (exit code, stdout, stderr) or why it could not run.
    pub async fn run_on(
        &self,
        pve: &str,
        cmd: &Command,
    ) -> Result<(Option<u32>, String, String), LookFailed> {
        let node = self
            .node(pve)
            .ok_or_else(|| LookFailed::retry(format!("no target reaches node {pve}")))?
            .clone();
        let o = self
            .fleet
            .run_one(&node, cmd)
            .await
            .map_err(|e| LookFailed::node(&e))?;
        Ok((o.exit_code(), o.stdout_text(), o.stderr_text()))
    }

    /// The first usable answer to template `name`, asking one node after the other. Output one
    /// node garbles is not the cluster's state, so the next node is asked; a permanent failure
    /// (`LookFailed::permanent`) ends the look at once.
    async fn first_answer<T>(
        &self,
        name: &str,
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, LookFailed> {
        let cmd = self
            .fleet
            .templates
            .render(name, &json!({}))
            .map_err(|e| LookFailed::retry(e.to_string()))?;
        let mut last = LookFailed::retry("no node to ask");
        // The nodes that answered the before-snapshot first: one that did not would cost a
        // connect timeout on every look.
        let (answered, others): (Vec<&String>, Vec<&String>) = self
            .nodes
            .iter()
            .map(|(pve, _)| pve)
            .partition(|pve| self.answered.contains(*pve));
        for pve in answered.into_iter().chain(others) {
            match self.run_on(pve, &cmd).await {
                Ok((Some(0), out, _)) => match read(&out) {
                    Ok(v) => return Ok(v),
                    Err(e) => last = LookFailed::retry(format!("{pve}: {e}")),
                },
                Ok((code, _, err)) => {
                    last = LookFailed::retry(format!("{pve}: {}: {}", exited(code), err.trim()))
                }
                Err(e) if e.permanent => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `/cluster/resources` read from the first node that answers.
    pub async fn resources(&self) -> Result<Vec<Resource>, LookFailed> {
        self.first_answer("cluster-resources", |out| {
            facts::pvesh::parse_cluster_resources(out)
                .map(|r| r.resources.iter().map(Resource::from).collect())
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Guest `vmid` as `/cluster/resources` shows it now (`None`: not in the cluster).
    async fn guest(&self, vmid: u64) -> Result<Option<Resource>, LookFailed> {
        Ok(self
            .resources()
            .await?
            .into_iter()
            .find(|r| r.vmid == Some(vmid) && r.is_guest()))
    }

    /// The datacenter options (`/etc/pve/datacenter.cfg`) from the first node that answers.
    pub async fn cluster_options(
        &self,
    ) -> Result<facts::cluster_options::ClusterOptions, LookFailed> {
        self.first_answer("cluster-options", |out| {
            facts::cluster_options::parse(out).map_err(|e| e.to_string())
        })
        .await
    }

    /// The LRM state of `node` as `ha-manager status` of the first node that answers says it.
    async fn lrm_state(&self, node: &str) -> Result<Option<String>, LookFailed> {
        self.first_answer("ha-manager-status", |out| {
            facts::ha_manager_status::parse(out)
                .map(|ha| {
                    ha.lrms
                        .into_iter()
                        .find(|l| l.node == node)
                        .map(|l| l.state)
                })
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Whether the state a step must produce holds now, and what was seen.
    async fn holds(&self, v: &Verify) -> Result<(bool, String), LookFailed> {
        match v {
            Verify::GuestOn { vmid, node, status } => {
                let g = self.guest(*vmid).await?;
                Ok(match g {
                    None => (false, format!("guest {vmid} is not in /cluster/resources")),
                    Some(g) => {
                        let ok = g.node.as_deref() == Some(node.as_str())
                            && g.lock.is_none()
                            && g.status.as_deref() == Some(status.as_str());
                        (
                            ok,
                            format!(
                                "guest {vmid} is on {} ({}{})",
                                g.node.as_deref().unwrap_or("?"),
                                g.status.as_deref().unwrap_or("?"),
                                g.lock
                                    .as_deref()
                                    .map(|l| format!(", locked {l}"))
                                    .unwrap_or_default()
                            ),
                        )
                    }
                })
            }
            Verify::NodeBack { node, boot_id } => {
                let cat = self
                    .fleet
                    .templates
                    .render("boot-id", &json!({}))
                    .map_err(|e| LookFailed::retry(e.to_string()))?;
                let now = match self.run_on(node, &cat).await {
                    Ok((Some(0), out, _)) => {
                        facts::node_identity::boot_id(&out).unwrap_or_default()
                    }
                    Ok((code, _, err)) => {
                        return Ok((
                            false,
                            format!(
                                "{node}: boot id not readable ({}: {})",
                                exited(code),
                                err.trim()
                            ),
                        ));
                    }
                    Err(e) if e.permanent => return Err(e),
                    Err(e) => return Ok((false, format!("{node} does not answer yet: {e}"))),
                };
                if now == *boot_id || now.is_empty() {
                    return Ok((
                        false,
                        format!("{node} has not rebooted yet (boot id {now})"),
                    ));
                }
                let (ok, seen) = self.node_healthy(node).await?;
                Ok((
                    ok,
                    if ok {
                        format!("{node} is back: boot id {now}, {seen}")
                    } else {
                        format!("{node} rebooted, {seen}")
                    },
                ))
            }
            Verify::Upgraded { node, packages } => self.upgraded(node, packages).await,
            Verify::NodeUp { node } => {
                // The cluster's view first: a node is up for its guests when the cluster
                // counts it online (`/cluster/resources`), not merely when it answers SSH.
                let online = self.resources().await?.iter().any(|r| {
                    r.kind == "node"
                        && r.node.as_deref() == Some(node.as_str())
                        && r.status.as_deref() == Some("online")
                });
                if !online {
                    return Ok((false, format!("{node} is not online in the cluster yet")));
                }
                let cat = self.plain("boot-id")?;
                match self.run_on(node, &cat).await {
                    Ok((Some(0), _, _)) => self.node_healthy(node).await,
                    Ok((code, _, err)) => Ok((
                        false,
                        format!("{node}: not up yet ({}: {})", exited(code), err.trim()),
                    )),
                    Err(e) if e.permanent => Err(e),
                    Err(e) => Ok((false, format!("{node} does not answer yet: {e}"))),
                }
            }
            Verify::CephNoout { node, set } => {
                let cmd = self.plain("ceph-status")?;
                let (_, out, err) = match self.run_on(node, &cmd).await {
                    Err(e) if e.permanent => return Err(e),
                    Err(e) => return Ok((false, format!("{node} does not answer: {e}"))),
                    Ok(r) => r,
                };
                let Ok(s) = facts::ceph_status::parse(&format!("{out}{err}")) else {
                    return Ok((false, format!("{node}: Ceph's health is not readable")));
                };
                let Some(h) = s.health else {
                    return Ok((
                        false,
                        format!(
                            "{node}: no Ceph health ({})",
                            s.error.as_deref().unwrap_or("no answer")
                        ),
                    ));
                };
                let ok = if *set {
                    h.noout
                } else {
                    !h.noout && h.recovered()
                };
                let checks: Vec<&str> = h.checks.iter().map(|c| c.message.as_str()).collect();
                Ok((
                    ok,
                    format!(
                        "Ceph {}{}",
                        h.status,
                        if checks.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", checks.join("; "))
                        }
                    ),
                ))
            }
            Verify::GuestUnlocked { vmid } => {
                let g = self.guest(*vmid).await?;
                Ok(match g.and_then(|g| g.lock) {
                    Some(lock) => (false, format!("guest {vmid} is still locked ({lock})")),
                    None => (true, format!("guest {vmid} is unlocked")),
                })
            }
            Verify::Maintenance { node, enter } => {
                let lrm = self
                    .lrm_state(node)
                    .await?
                    .unwrap_or_else(|| "unknown".into());
                let in_maint = lrm.contains("maintenance");
                let res = self.resources().await?;
                let left = res
                    .iter()
                    .filter(|r| {
                        r.node.as_deref() == Some(node.as_str())
                            && r.hastate.is_some()
                            && r.is_guest()
                    })
                    .count();
                let moving = res.iter().any(|r| r.lock.as_deref() == Some("migrate"));
                let ok = if *enter {
                    in_maint && left == 0 && !moving
                } else {
                    !in_maint && !moving
                };
                Ok((
                    ok,
                    format!("LRM of {node}: {lrm}; {left} HA guest(s) on it"),
                ))
            }
        }
    }

    /// Renders a template that takes no values.
    fn plain(&self, name: &str) -> Result<Command, LookFailed> {
        self.fleet
            .templates
            .render(name, &json!({}))
            .map_err(|e| LookFailed::retry(e.to_string()))
    }

    /// Whether `node` is quorate (or a single node without a cluster) and its PVE services
    /// are active, with what was seen.
    async fn node_healthy(&self, node: &str) -> Result<(bool, String), LookFailed> {
        let status = self.plain("pvecm-status")?;
        let quorate = match self.run_on(node, &status).await {
            Ok((_, out, err)) => facts::pvecm_status::parse_output(&out, &err)
                .map(|s| s.quorate == Some(true) || s.state == "no-cluster")
                .unwrap_or(false),
            Err(e) if e.permanent => return Err(e),
            Err(_) => false,
        };
        if !quorate {
            return Ok((false, "not quorate yet".into()));
        }
        let units = ["pve-cluster", "pvedaemon", "pveproxy", "pvestatd"];
        let sys = self
            .fleet
            .templates
            .render("systemctl-is-active", &json!({ "units": units }))
            .map_err(|e| LookFailed::retry(e.to_string()))?;
        let active = match self.run_on(node, &sys).await {
            Ok((_, out, _)) => facts::systemctl_is_active::parse_with_units(&units, &out)
                .map(|s| s.all_active)
                .unwrap_or(false),
            Err(e) if e.permanent => return Err(e),
            Err(_) => false,
        };
        Ok(if active {
            (true, "quorate, services active".into())
        } else {
            (false, "quorate, services not all active yet".into())
        })
    }

    /// After `apt-get -y dist-upgrade`: `pveversion -v` lists every package it knows at its new
    /// version, `apt-get -s dist-upgrade` has nothing left to install (this covers the
    /// packages `pveversion -v` does not list), and the node is healthy.
    async fn upgraded(
        &self,
        node: &str,
        packages: &BTreeMap<String, String>,
    ) -> Result<(bool, String), LookFailed> {
        let v = match self.run_on(node, &self.plain("pveversion-v")?).await {
            Ok((Some(0), out, _)) => match facts::pveversion::parse_v(&out) {
                Ok(v) => v,
                Err(e) => return Ok((false, format!("pveversion -v on {node} unreadable: {e}"))),
            },
            Ok((code, _, err)) => {
                return Ok((
                    false,
                    format!("pveversion -v on {node}: {}: {}", exited(code), err.trim()),
                ));
            }
            Err(e) if e.permanent => return Err(e),
            Err(e) => return Ok((false, format!("{node} does not answer: {e}"))),
        };
        let listed = |pkg: &str| -> Option<Option<String>> {
            if pkg == "pve-manager" && v.manager_version.is_some() {
                return Some(v.manager_version.clone());
            }
            v.packages.get(pkg).cloned()
        };
        let behind: Vec<String> = packages
            .iter()
            .filter_map(|(pkg, new)| match listed(pkg) {
                Some(now) if now.as_deref() != Some(new.as_str()) => Some(format!(
                    "{pkg} is {} (not {new})",
                    now.as_deref().unwrap_or("not installed")
                )),
                _ => None,
            })
            .collect();
        if !behind.is_empty() {
            return Ok((
                false,
                format!("pveversion -v on {node}: {}", behind.join(", ")),
            ));
        }
        let left = match self.run_on(node, &self.plain("apt-simulate")?).await {
            Ok((Some(0), out, _)) => match facts::apt_get::parse(&out) {
                Ok(s) => s,
                Err(e) => {
                    return Ok((
                        false,
                        format!("apt-get -s dist-upgrade on {node} unreadable: {e}"),
                    ));
                }
            },
            Ok((code, _, err)) => {
                return Ok((
                    false,
                    format!(
                        "apt-get -s dist-upgrade on {node}: {}: {}",
                        exited(code),
                        err.trim()
                    ),
                ));
            }
            Err(e) if e.permanent => return Err(e),
            Err(e) => return Ok((false, format!("{node} does not answer: {e}"))),
        };
        if !left.nothing_to_do() {
            let names: Vec<&str> = left.installs.iter().map(|i| i.package.as_str()).collect();
            return Ok((
                false,
                format!(
                    "{node} still has {} package(s) to install: {}",
                    left.installs.len() + left.removals.len(),
                    names.join(", ")
                ),
            ));
        }
        let (ok, seen) = self.node_healthy(node).await?;
        let listed_count = packages.keys().filter(|p| listed(p).is_some()).count();
        Ok((
            ok,
            format!(
                "{node}: {listed_count} package(s) at their new version in pveversion -v, nothing left to install, {seen}"
            ),
        ))
    }

    /// Whether `node` asks for a reboot now: `/run/reboot-required` exists, or `pveversion -v`
    /// says the running kernel is not the newest installed. When neither can be read the
    /// answer is yes: a needless reboot of a drained node costs minutes, a missed one leaves
    /// it on the old kernel.
    async fn reboot_needed(&self, node: &str) -> (bool, String) {
        if let Ok(cmd) = self.plain("reboot-required")
            && let Ok((code, _, _)) = self.run_on(node, &cmd).await
            && code == Some(0)
        {
            return (true, "/run/reboot-required exists".into());
        }
        let v = match self.plain("pveversion-v") {
            Ok(cmd) => self.run_on(node, &cmd).await,
            Err(e) => Err(e),
        };
        match v.map(|(code, out, _)| (code, facts::pveversion::parse_v(&out))) {
            Ok((Some(0), Ok(v))) => match v.reboot_required {
                Some(true) => (
                    true,
                    format!(
                        "the running kernel {} is not the newest installed ({})",
                        v.running_kernel.as_deref().unwrap_or("?"),
                        v.newest_kernel.as_deref().unwrap_or("?")
                    ),
                ),
                Some(false) => (
                    false,
                    format!(
                        "{node} needs no reboot: no /run/reboot-required, and it runs the newest installed kernel ({})",
                        v.running_kernel.as_deref().unwrap_or("?")
                    ),
                ),
                None => (
                    true,
                    format!(
                        "could not tell whether {node} runs its newest kernel; rebooting to be safe"
                    ),
                ),
            },
            _ => (
                true,
                format!("could not read whether {node} needs a reboot; rebooting to be safe"),
            ),
        }
    }

    /// The exit status and log of a detached command, as `detached-status` prints them
    /// (first line the status or `running`). `None` when the node cannot be asked (it may be
    /// rebooting).
    async fn detached_state(&self, node: &str, log: &str) -> Option<DetachedLog> {
        let cmd = self
            .fleet
            .templates
            .render(
                "detached-status",
                &json!({ "rcfile": format!("{log}.rc"), "logfile": log }),
            )
            .ok()?;
        let (code, text, _) = self.run_on(node, &cmd).await.ok()?;
        if code != Some(0) {
            return None;
        }
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let rc = match first.trim() {
            "running" => None,
            n => Some(n.parse::<i32>().ok()?),
        };
        Some(DetachedLog {
            rc,
            log: rest.to_string(),
        })
    }

    /// Runs the plan's steps in order, writing the journal; stops at the first failure. A step
    /// with a condition (`only_if`) runs only when it holds at that moment; the condition is
    /// decided once per node and the skipped steps are journaled with why. The steps of a wave
    /// (`Plan::waves`) start together, once the live state has the memory for all of them;
    /// when one fails the others of its wave still run to their end, and nothing after starts.
    pub async fn execute(
        &self,
        plan: &Plan,
        journal: &mut Journal,
        interrupt: &mut Signals,
    ) -> Result<(Outcome, Vec<Done>), crate::Error> {
        let journal = Log(std::sync::Mutex::new(journal));
        let mut done = Vec::new();
        let mut decided: BTreeMap<String, (bool, String)> = BTreeMap::new();
        let mut i = 0;
        while let Some(step) = plan.steps.get(i) {
            if let Some(w) = plan.wave_at(step.seq) {
                let steps: Vec<&Step> = plan.steps[i..]
                    .iter()
                    .take_while(|s| w.steps.contains(&s.seq))
                    .collect();
                i += steps.len();
                let (mut ran, end) = self.wave(w.wave, &steps, &journal, interrupt).await?;
                done.append(&mut ran);
                match end {
                    Some(end) => return Ok((end, done)),
                    None => continue,
                }
            }
            i += 1;
            match &step.only_if {
                Some(Condition::RebootNeeded { node }) => {
                    if !decided.contains_key(node) {
                        let d = self.reboot_needed(node).await;
                        eprintln!("  {node}: {}", d.1);
                        decided.insert(node.clone(), d);
                    }
                    if let Some((false, why)) = decided.get(node) {
                        done.push(self.not_run(
                            step,
                            &journal,
                            StepOutcome::Skipped,
                            why.clone(),
                        )?);
                        continue;
                    }
                }
                Some(Condition::GuestOn { vmid, node }) => {
                    let why = match self.guest(*vmid).await {
                        Ok(Some(g)) if g.node.as_deref() == Some(node.as_str()) => None,
                        Ok(Some(g)) => Some(format!(
                            "guest {vmid} is on {}, not on {node}: nothing to move back",
                            g.node.as_deref().unwrap_or("?")
                        )),
                        Ok(None) => Some(format!("guest {vmid} is gone from the cluster")),
                        Err(e) => Some(format!("cannot tell where guest {vmid} is: {e}")),
                    };
                    if let Some(why) = why {
                        done.push(self.not_run(step, &journal, StepOutcome::Skipped, why)?);
                        continue;
                    }
                }
                None => {}
            }
            if let Some(out) = interrupted_before(interrupt, step) {
                return Ok((out, done));
            }
            let result = tokio::select! {
                biased;
                sig = interrupt.wait() => {
                    journal.write(&end(step, StepOutcome::Aborted, None, false, aborted(sig)))?;
                    return Ok((Outcome::Aborted { seq: step.seq, signal: sig }, done));
                }
                r = self.step(step, &journal) => r?,
            };
            let failed = result.outcome == StepOutcome::Failed;
            let message = result.message.clone();
            done.push(result);
            if failed {
                return Ok((
                    Outcome::Failed {
                        seq: step.seq,
                        message,
                    },
                    done,
                ));
            }
        }
        Ok((Outcome::Success, done))
    }

    /// Runs the migrations of wave `n` at once and waits for every one of them to end, verified
    /// or failed. It starts only when each target has the memory for all of the wave's running
    /// guests now (`plan::memory_needed` on a fresh `/cluster/resources`). Returns what ran
    /// and, when the wave failed or was interrupted, how the plan ends.
    async fn wave(
        &self,
        n: u32,
        steps: &[&Step],
        journal: &Log<'_>,
        interrupt: &mut Signals,
    ) -> Result<(Vec<Done>, Option<Outcome>), crate::Error> {
        let seqs: Vec<String> = steps.iter().map(|s| s.seq.to_string()).collect();
        eprintln!(
            "  wave {n}: {} migrations at once (steps {})",
            steps.len(),
            seqs.join(", ")
        );
        let Some(first) = steps.first() else {
            return Ok((Vec::new(), None));
        };
        if let Some(why) = self.wave_memory(steps).await {
            let message = format!("wave {n} not started: {why}");
            eprintln!("    {message}");
            let d = self.not_run(first, journal, StepOutcome::Failed, message.clone())?;
            return Ok((
                vec![d],
                Some(Outcome::Failed {
                    seq: first.seq,
                    message,
                }),
            ));
        }
        if let Some(out) = interrupted_before(interrupt, first) {
            return Ok((Vec::new(), Some(out)));
        }
        let ended: std::sync::Mutex<BTreeMap<u32, Done>> = Default::default();
        let all = futures::future::join_all(steps.iter().map(|s| async {
            let d = self.step(s, journal).await?;
            ended
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(s.seq, d.clone());
            Ok::<Done, crate::Error>(d)
        }));
        let results = tokio::select! {
            biased;
            sig = interrupt.wait() => {
                let ended = ended.into_inner().unwrap_or_else(|p| p.into_inner());
                let mut first_aborted = None;
                for s in steps.iter().filter(|s| !ended.contains_key(&s.seq)) {
                    journal.write(&end(s, StepOutcome::Aborted, None, false, aborted(sig)))?;
                    first_aborted.get_or_insert(s.seq);
                }
                let seq = first_aborted.unwrap_or(first.seq);
                return Ok((ended.into_values().collect(), Some(Outcome::Aborted { seq, signal: sig })));
            }
            r = all => r,
        };
        let mut done = Vec::new();
        for r in results {
            done.push(r?);
        }
        let failed: Vec<&Done> = done
            .iter()
            .filter(|d| d.outcome == StepOutcome::Failed)
            .collect();
        let end = failed.first().map(|f| Outcome::Failed {
            seq: f.seq,
            message: if failed.len() > 1 {
                let others: Vec<String> = failed[1..].iter().map(|d| d.seq.to_string()).collect();
                format!(
                    "{} (steps {} of wave {n} failed too)",
                    f.message,
                    others.join(", ")
                )
            } else {
                f.message.clone()
            },
        });
        if end.is_none() {
            eprintln!("  wave {n}: every migration verified");
        }
        Ok((done, end))
    }

    /// Why the wave's running guests do not fit on their targets now, if they do not.
    async fn wave_memory(&self, steps: &[&Step]) -> Option<String> {
        let moves: Vec<(u64, String)> = steps
            .iter()
            .filter_map(|s| match &s.verify {
                Some(Verify::GuestOn { vmid, node, .. }) => Some((*vmid, node.clone())),
                _ => None,
            })
            .collect();
        let res = match self.resources().await {
            Ok(r) => r,
            Err(e) => {
                return Some(format!(
                    "the free memory of its targets could not be read: {e}"
                ));
            }
        };
        let short: Vec<String> = crate::plan::memory_needed(&res, &moves)
            .into_iter()
            .filter(|(_, (free, need))| need > free)
            .map(|(t, (free, need))| {
                format!(
                    "{t} has {} free for {} of guests migrating to it at once",
                    crate::units::human_bytes(free),
                    crate::units::human_bytes(need)
                )
            })
            .collect();
        (!short.is_empty()).then(|| short.join("; "))
    }

    /// Journals a step that does not run, with why: `skipped` (its condition does not hold,
    /// which counts as verified) or `failed` (what it needs does not hold).
    fn not_run(
        &self,
        step: &Step,
        journal: &Log<'_>,
        outcome: StepOutcome,
        why: String,
    ) -> Result<Done, crate::Error> {
        let skipped = outcome == StepOutcome::Skipped;
        if skipped {
            eprintln!("  step {}: {} (skipped: {why})", step.seq, step.title);
        }
        let started = now();
        journal.write(&Entry {
            seq: step.seq,
            step: step.title.clone(),
            command: step.command.as_ref().map(|c| c.script.clone()),
            phase: "start".into(),
            time: started.clone(),
            outcome: None,
            exit_code: None,
            verified: None,
            message: None,
            undo: None,
            detail: Some(step.detail.clone()),
        })?;
        journal.write(&end(step, outcome, None, skipped, why.clone()))?;
        Ok(Done {
            seq: step.seq,
            step: step.title.clone(),
            command: step
                .command
                .as_ref()
                .map(|c| c.script.clone())
                .unwrap_or_default(),
            started,
            duration_ms: 0,
            exit_code: None,
            outcome,
            verified: skipped,
            message: why,
            log: None,
        })
    }

    async fn step(&self, step: &Step, journal: &Log<'_>) -> Result<Done, crate::Error> {
        let line = step.command.as_ref().map(|c| c.script.clone());
        match &line {
            Some(l) => eprintln!(
                "  step {} on {}: {} ...\n      $ {l}",
                step.seq, step.on, step.title
            ),
            // A wait (no command, a state to poll) says what it waits for; a no-op says
            // once, when it is journaled, that it was skipped and why.
            None if step.verify.is_some() => eprintln!("  step {}: {}", step.seq, step.title),
            None => {}
        }
        let started = now();
        let start = Instant::now();
        journal.write(&Entry {
            seq: step.seq,
            step: step.title.clone(),
            command: line.clone(),
            phase: "start".into(),
            time: started.clone(),
            outcome: None,
            exit_code: None,
            verified: None,
            message: None,
            undo: None,
            detail: Some(step.detail.clone()),
        })?;
        let mk = |outcome: StepOutcome,
                  exit_code,
                  verified,
                  message: String,
                  log: Option<DetachedLog>| Done {
            seq: step.seq,
            step: step.title.clone(),
            command: line.clone().unwrap_or_default(),
            started: started.clone(),
            duration_ms: start.elapsed().as_millis() as u64,
            exit_code,
            outcome,
            verified,
            message,
            log,
        };
        let Some(cmd) = &step.command else {
            if let Some(v) = &step.verify {
                let (verified, seen) = match self.poll(step, v, None).await {
                    Ok(r) => (r.0 == Polled::Holds, r.1),
                    Err(e) => (false, format!("cannot verify: {e}")),
                };
                let outcome = if verified {
                    StepOutcome::Ok
                } else {
                    StepOutcome::Failed
                };
                journal.write(&end(step, outcome, None, verified, seen.clone()))?;
                return Ok(mk(outcome, None, verified, seen, None));
            }
            let why = step.noop.clone().unwrap_or_else(|| "nothing to do".into());
            eprintln!("  step {} skipped: {why}", step.seq);
            journal.write(&end(step, StepOutcome::Skipped, None, true, why.clone()))?;
            return Ok(mk(StepOutcome::Skipped, None, true, why, None));
        };
        // The process id and the clock make the name unique on the node: a failed step's log
        // stays in the node's /tmp, and a later run with the same pid and step number must not
        // read that run's exit status as its own.
        let log = step.detached.then(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!(
                "/tmp/pveops-step-{}-{}-{t}.log",
                step.seq,
                std::process::id()
            )
        });
        let sent = match &log {
            Some(log) => self.detached(cmd, log)?,
            None => cmd.clone(),
        };
        let (exit, out, err) = match self.run_on(&step.on, &sent).await {
            Ok(r) => r,
            Err(e) => {
                journal.write(&end(
                    step,
                    StepOutcome::Failed,
                    None,
                    false,
                    e.message.clone(),
                ))?;
                return Ok(mk(StepOutcome::Failed, None, false, e.message, None));
            }
        };
        if exit != Some(0) {
            let text = if err.trim().is_empty() {
                out.trim().to_string()
            } else {
                err.trim().to_string()
            };
            let msg = crate::output::failure(&cmd.script, Some(&step.on), exit, &text);
            journal.write(&end(step, StepOutcome::Failed, exit, false, msg.clone()))?;
            return Ok(mk(StepOutcome::Failed, exit, false, msg, None));
        }
        let (polled, kept) = match &step.verify {
            None => (
                Ok((Polled::Holds, "no verification needed".to_string())),
                None,
            ),
            Some(v) => match self.poll(step, v, log.as_deref()).await {
                Ok((how, seen, kept)) => (Ok((how, seen)), kept),
                Err(e) => (Err(e), None),
            },
        };
        let (verified, outcome, msg) = match polled {
            Ok((Polled::Holds, seen)) => (true, StepOutcome::Ok, format!("verified: {seen}")),
            Ok((Polled::FailedOnNode, seen)) => (false, StepOutcome::Failed, seen),
            Ok((Polled::TimedOut, seen)) => (
                false,
                StepOutcome::Failed,
                format!("not verified within {} s: {seen}", step.timeout.as_secs()),
            ),
            Err(e) => (false, StepOutcome::Failed, format!("cannot verify: {e}")),
        };
        journal.write(&end(step, outcome, exit, verified, msg.clone()))?;
        eprintln!("    step {} {outcome}: {msg}", step.seq);
        // A verified step's detached log has been read into the evidence: nothing of it stays
        // in the node's /tmp. A failed one's stays there too, for whoever repairs the node.
        if verified
            && let (Some(path), Some(k)) = (&log, &kept)
            && k.rc.is_some()
        {
            self.remove_detached(&step.on, path).await;
        }
        Ok(mk(outcome, exit, verified, msg, kept))
    }

    /// Removes a detached command's log and exit-status file from `node`; a failure is only
    /// logged (the step is done, the files are small).
    async fn remove_detached(&self, node: &str, log: &str) {
        let rm = self.fleet.templates.render(
            "detached-cleanup",
            &json!({ "logfile": log, "rcfile": format!("{log}.rc") }),
        );
        let done = match rm {
            Ok(cmd) => self
                .run_on(node, &cmd)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = done {
            tracing::warn!("{node}: could not remove {log}: {e}");
        }
    }

    /// Polls until the state holds or the step's timeout passes; returns how it ended, the last
    /// thing seen and the detached command's log. A detached command's exit status on the
    /// node is read each round: a non-zero one ends the step at once (`Polled::FailedOnNode`),
    /// and an upgrade is not looked at while apt still runs. A permanent failure to look ends
    /// it at once.
    async fn poll(
        &self,
        step: &Step,
        v: &Verify,
        log: Option<&str>,
    ) -> Result<(Polled, String, Option<DetachedLog>), LookFailed> {
        let deadline = Instant::now() + step.timeout;
        let mut kept = None;
        loop {
            let state = match log {
                Some(path) => self.detached_state(&step.on, path).await,
                None => None,
            };
            if let Some(st) = &state {
                kept = Some(st.clone());
                if let Some(rc) = st.rc
                    && let Some(why) = detached_failure(v, rc, &st.log)
                {
                    return Ok((
                        Polled::FailedOnNode,
                        format!(
                            "failed on the node: {why} (exit {rc}; log {} on {})",
                            log.unwrap_or(""),
                            step.on
                        ),
                        kept,
                    ));
                }
            }
            let running = matches!(v, Verify::Upgraded { .. })
                && state.as_ref().is_none_or(|s| s.rc.is_none());
            let seen = if running {
                match &state {
                    Some(st) => format!(
                        "apt-get is still running on {} ({} lines of output so far; log {})",
                        step.on,
                        st.log.lines().count(),
                        log.unwrap_or("")
                    ),
                    None => format!("the state of apt-get on {} could not be read", step.on),
                }
            } else {
                match self.holds(v).await {
                    Ok((true, s)) => return Ok((Polled::Holds, s, kept)),
                    Ok((false, s)) => s,
                    Err(e) if e.permanent => return Err(e),
                    Err(e) => format!("could not read the state: {e}"),
                }
            };
            if Instant::now() + self.poll_every > deadline {
                return Ok((Polled::TimedOut, seen, kept));
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    /// The command wrapped to run detached on the node, its output kept in a log there.
    fn detached(&self, cmd: &Command, log: &str) -> Result<Command, crate::Error> {
        let mut c = self
            .fleet
            .templates
            .render("detached", &json!({"script": cmd.script, "logfile": log}))?;
        c.name = cmd.name.clone();
        Ok(c)
    }
}

/// How polling a step's state ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polled {
    /// The state the step must produce holds.
    Holds,
    /// Its detached command exited non-zero on the node.
    FailedOnNode,
    /// The step's timeout passed first.
    TimedOut,
}

/// The journal's message for a step a signal ended.
fn aborted(sig: Sig) -> String {
    format!(
        "interrupted by {}; a migration or upgrade already started goes on running on the node (in flight)",
        sig.name()
    )
}

fn end(
    step: &Step,
    outcome: StepOutcome,
    exit_code: Option<u32>,
    verified: bool,
    message: String,
) -> Entry {
    Entry {
        seq: step.seq,
        step: step.title.clone(),
        command: step.command.as_ref().map(|c| c.script.clone()),
        phase: "end".into(),
        time: now(),
        outcome: Some(outcome),
        exit_code,
        verified: Some(verified),
        message: Some(message),
        undo: if outcome == StepOutcome::Ok {
            step.undo.as_ref().map(|u| u.script.clone())
        } else {
            None
        },
        detail: Some(step.detail.clone()),
    }
}

/// Why a detached command that ended with `rc` failed, read from its log with the parser of
/// what it ran; `None` when `rc` is no failure. A reboot killed by the shutdown it started
/// (a signal, `rc` ≥ 128) is no failure: whether the node came back decides.
fn detached_failure(v: &Verify, rc: i32, log: &str) -> Option<String> {
    if rc == 0 {
        return None;
    }
    let last = || {
        log.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("it printed nothing")
            .to_string()
    };
    match v {
        Verify::NodeBack { .. } if rc >= 128 => None,
        Verify::NodeBack { .. } => Some(format!("reboot failed: {}", last())),
        Verify::Upgraded { .. } => Some(
            facts::apt_log::parse(log)
                .ok()
                .and_then(|l| l.failure())
                .unwrap_or_else(last),
        ),
        _ => Some(
            facts::task_log::parse(log)
                .ok()
                .and_then(|t| t.error)
                .unwrap_or_else(last),
        ),
    }
}
