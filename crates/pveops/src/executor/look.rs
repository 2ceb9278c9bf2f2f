//! What the live cluster shows, as a step's verification and the waves read it: one answer
//! from the first node that gives a usable one, a guest's place, a node back from a reboot,
//! an upgrade done. A look that fails is a [`LookFailed`]: permanent ones end the step at once.

use std::collections::BTreeMap;

use serde_json::json;

use super::Runner;
use crate::command::Command;
use crate::facts;
use crate::facts::pvesh::Resource;
use crate::output::exited;
use crate::plan::Verify;

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

impl Runner {
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
    pub(super) async fn first_answer<T>(
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
    pub(super) async fn guest(&self, vmid: u64) -> Result<Option<Resource>, LookFailed> {
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
    pub(super) async fn lrm_state(&self, node: &str) -> Result<Option<String>, LookFailed> {
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
    pub(super) async fn holds(&self, v: &Verify) -> Result<(bool, String), LookFailed> {
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
    pub(super) fn plain(&self, name: &str) -> Result<Command, LookFailed> {
        self.fleet
            .templates
            .render(name, &json!({}))
            .map_err(|e| LookFailed::retry(e.to_string()))
    }

    /// Whether `node` is quorate (or a single node without a cluster) and its PVE services
    /// are active, with what was seen.
    pub(super) async fn node_healthy(&self, node: &str) -> Result<(bool, String), LookFailed> {
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
    pub(super) async fn upgraded(
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
    pub(super) async fn reboot_needed(&self, node: &str) -> (bool, String) {
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
}
