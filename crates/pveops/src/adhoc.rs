//! `pveops exec`: the per-node report of an ad-hoc command, as labelled text or as JSON.
//! Pure formatting of fan-out results; no I/O.

use serde::Serialize;

use crate::fleet::NodeResult;

/// One node's result as `--json` prints it (PRODUCT.md: node, stdout, stderr, exit_code,
/// signal, duration_ms, error).
#[derive(Debug, Serialize)]
pub struct ExecRecord {
    pub node: String,
    pub address: String,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<u32>,
    pub signal: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

impl ExecRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.exit_code == Some(0)
    }
}

/// Flattens fan-out results (one command per node) into records.
pub fn records(results: &[NodeResult]) -> Vec<ExecRecord> {
    results.iter().map(record).collect()
}

fn record(r: &NodeResult) -> ExecRecord {
    let mut rec = ExecRecord {
        node: r.node.name.clone(),
        address: r.node.address(),
        stdout: String::new(),
        stderr: String::new(),
        exit_code: None,
        signal: None,
        duration_ms: r.duration.as_millis() as u64,
        error: None,
    };
    match &r.outcome {
        Err(e) => rec.error = Some(e.to_string()),
        Ok(cmds) => match cmds.first() {
            None => rec.error = Some(format!("{} ({}): no result", r.node.name, r.node.address())),
            Some(c) => match &c.result {
                Err(cause) => {
                    rec.error = Some(format!("{} ({}): {cause}", r.node.name, r.node.address()))
                }
                Ok(out) => {
                    rec.stdout = out.stdout_text();
                    rec.stderr = out.stderr_text();
                    rec.exit_code = out.exit_code();
                    rec.signal = out.signal().map(str::to_string);
                    rec.duration_ms = out.duration.as_millis() as u64;
                    if out.exit == crate::output::Exit::Unknown {
                        rec.error = Some(format!(
                            "{} ({}): the command ended without an exit status",
                            r.node.name,
                            r.node.address()
                        ));
                    }
                }
            },
        },
    }
    rec
}

/// The human report: a header line per node, its stdout as is, its stderr marked.
pub fn render_text(records: &[ExecRecord]) -> String {
    let mut s = String::new();
    for r in records {
        let status = match (&r.error, r.exit_code, &r.signal) {
            (Some(e), _, _) => format!(
                "FAILED: {}",
                e.strip_prefix(&format!("{} ({}): ", r.node, r.address))
                    .unwrap_or(e)
            ),
            (None, Some(c), _) => format!("exit {c}"),
            (None, None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None, None) => "no exit status".into(),
        };
        s.push_str(&format!(
            "=== {} ({}) · {} · {} ms\n",
            r.node, r.address, status, r.duration_ms
        ));
        push_block(&mut s, &r.stdout);
        if !r.stderr.is_empty() {
            s.push_str(&format!("--- {} stderr\n", r.node));
            push_block(&mut s, &r.stderr);
        }
    }
    s
}

fn push_block(s: &mut String, text: &str) {
    s.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        s.push('\n');
    }
}

/// One line for stderr: how many nodes succeeded.
pub fn summary(records: &[ExecRecord]) -> String {
    let ok = records.iter().filter(|r| r.ok()).count();
    let unreachable = records.iter().filter(|r| r.error.is_some()).count();
    let failed = records.len() - ok - unreachable;
    format!(
        "exec: {} node{}: {ok} ok, {failed} exited non-zero, {unreachable} failed to run",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    )
}
