//! Test support: real OpenSSH sshd processes on loopback, and a builder for running the
//! `pveops` binary against them.

pub mod cluster;
pub mod netns;
pub mod ops;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::Output;

pub use sshd::{Lab, SshdOptions};

/// The `pveops` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pveops"))
}

/// What the simulated PVE tools (`pvecm`, `qm`, ...) run, chosen as `pveops lab` chooses it:
/// `pveops-lab-tool` when the workspace build left a current one beside `pveops`.
pub fn tool_exe() -> pveops_lab::sim::ToolExe {
    pveops_lab::tool_binary(bin())
}

/// `pveops ARGS` with a clean environment: `HOME` is `home` (so no user ssh config, keys or
/// known_hosts leak in), no ssh-agent, no standard input; stdout and stderr piped.
pub fn command<S: AsRef<std::ffi::OsStr>>(home: &Path, args: &[S]) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin());
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PVEOPS_LOG", "warn,russh=error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// Runs `pveops` as `command` does, with `env` added (an ssh-agent, a passphrase).
pub fn pveops(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(home, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pveops")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file below `dir` (directories walked, not listed).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Temporary files left below `dir`: `atomic::write` names its own `.pveops-*.tmp`, tempfile's
/// default is `.tmp*`.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(".pveops-") || name.starts_with(".tmp") || name.ends_with(".tmp")
        })
        .collect()
}

/// Polls `cond` every few milliseconds until it holds or `secs` pass; returns whether it held.
pub fn poll_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}

/// Runs a local helper program and panics with its stderr when it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Prometheus' `promtool` (Debian package `prometheus`; `.ci/run` unpacks it), which checks the
/// exposition format as Prometheus reads it. Missing, the test fails and says how to get it.
pub fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "promtool not found on PATH: this test checks the Prometheus output with it; run \
             `bash .ci/run` once (it unpacks promtool from Debian's prometheus package) or \
             `apt-get install -y prometheus`"
        )
    })
}
