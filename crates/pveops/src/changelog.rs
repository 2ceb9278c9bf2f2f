//! The change log: one entry per operation, appended (never rewritten) to a markdown file and,
//! as one JSON line, to `<FILE>.jsonl` (PRODUCT.md: `time`, `operator`, `targets`,
//! `operation`, `outcome`, `evidence`, `followups`).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One change-log entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub time: String,
    pub operator: String,
    pub targets: Vec<String>,
    pub operation: String,
    /// `success`, `failed`, `aborted` or `rolled-back`.
    pub outcome: String,
    /// The evidence bundle's directory.
    pub evidence: String,
    pub followups: Vec<String>,
    /// Per node what the operation did there (`update`: `pve1: updated …; reboot: …`);
    /// an extra field, absent for the other operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// Appends `e` to `path` (markdown) and `path.jsonl`, each with one write and an fsync.
pub fn append(path: &Path, e: &Entry) -> Result<(), crate::Error> {
    let esc = crate::markdown::md;
    let mut md = format!(
        "\n## {} — {} — {}\n\n- operator: {}\n- targets: {}\n- outcome: **{}**\n- evidence: {}\n",
        esc(&e.time),
        esc(&e.operation),
        esc(&e.outcome),
        esc(&e.operator),
        esc(&e.targets.join(", ")),
        esc(&e.outcome),
        esc(&e.evidence)
    );
    if !e.nodes.is_empty() {
        md.push_str("- per node:\n");
        for n in &e.nodes {
            md.push_str(&format!("  - {}\n", esc(n)));
        }
    }
    if e.followups.is_empty() {
        md.push_str("- follow-ups: none\n");
    } else {
        md.push_str("- follow-ups:\n");
        for f in &e.followups {
            md.push_str(&format!("  - [ ] {}\n", esc(f)));
        }
    }
    let new_file = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    if new_file {
        md.insert_str(0, "# pveops change log\n");
    }
    append_bytes(path, md.as_bytes())?;
    let jsonl = jsonl_path(path);
    let mut line = serde_json::to_string(e).unwrap_or_default();
    line.push('\n');
    append_bytes(&jsonl, line.as_bytes())
}

/// The JSONL twin of the markdown change log (`FILE.jsonl`).
fn jsonl_path(path: &Path) -> std::path::PathBuf {
    path.with_file_name(format!(
        "{}.jsonl",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("pveops-changelog.md")
    ))
}

/// Opens both change-log files for appending (creating them empty), writing nothing: an
/// operation calls this before its first change, so a change log it could not write is found
/// then, not after the changes (exit 3).
pub fn ensure_writable(path: &Path) -> Result<(), crate::Error> {
    for p in [path.to_path_buf(), jsonl_path(path)] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| crate::Error::io(&p, "open the change log", e))?;
    }
    Ok(())
}

fn append_bytes(path: &Path, bytes: &[u8]) -> Result<(), crate::Error> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| crate::Error::io(path, "open the change log", e))?;
    f.write_all(bytes)
        .map_err(|e| crate::Error::io(path, "append to the change log", e))?;
    f.sync_data()
        .map_err(|e| crate::Error::io(path, "sync the change log", e))
}

/// The person behind the run, `login@host`, as the change log and the report record it.
pub fn operator() -> String {
    // The person behind the run: under sudo the login that called it, else the session's
    // user, else the password database's name for our uid (cron may set neither variable).
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let user = env("SUDO_USER")
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
        .or_else(passwd_name)
        .unwrap_or_else(|| format!("uid{}", real_uid()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// The password database's name for this process's uid (`getpwuid_r(3)`).
fn passwd_name() -> Option<String> {
    let uid = real_uid();
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` and `buf` outlive the call; `result` points into them or is null.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// This process's real uid.
fn real_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}
