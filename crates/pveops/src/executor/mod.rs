//! Execute a plan: one step at a time, each journaled before and after it runs, each verified
//! by polling the state it should change until it holds or its timeout passes (never a fixed
//! wait). Migrations run detached on the node, so a dropped connection or Ctrl-C never kills
//! them; Ctrl-C journals the step in flight as aborted and stops. What a verification reads of
//! the live cluster is in `look.rs`; how a detached command is started, read and cleared, in
//! `detached.rs`.

mod detached;
mod look;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::inventory::Node;
use crate::journal::{Entry, Journal, StepOutcome, now};
use crate::plan::{Condition, Plan, Step, Verify};
use crate::signals::{Sig, Signals};

use detached::detached_failure;
pub use look::LookFailed;

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
