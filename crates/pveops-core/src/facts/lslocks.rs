//! `lslocks --json --output COMMAND,PID,PATH` (kind `lslocks`): who holds which file lock.
//! util-linux `misc-utils/lslocks.c` names its libsmartcols table `locks`, so the JSON is
//! `{"locks": [{"command": …, "pid": …, "path": …}]}`; `pid` is a JSON number since util-linux
//! 2.33 (column types), a string before, and `path` is null when lslocks cannot resolve the
//! inode. An empty table prints `{"locks": []}` (or nothing on older versions).
//! Also what the snapshot keeps of it: each [`Lock`] of `apt`, stored as parsed.

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::{Keep, Read, Scope};

pub const KIND: &str = "lslocks";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "lslocks --json --output COMMAND,PID,PATH: lock holders, apt's and dpkg's picked out",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// The locks apt and dpkg take (apt-pkg/deb/debsystem.cc `GetLock` on `lock-frontend`, then
/// dpkg's own `lock`; apt-get update's lists lock; the archives lock of a download).
pub const APT_LOCKS: &[&str] = &[
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
];

/// One file lock and its holder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lock {
    pub command: Option<String>,
    pub pid: Option<u64>,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Locks {
    pub locks: Vec<Lock>,
    /// The locks held on apt's and dpkg's lock files.
    pub apt: Vec<Lock>,
}

pub fn parse(text: &str) -> Result<Locks, ParseError> {
    if text.trim().is_empty() {
        return Ok(Locks {
            locks: Vec::new(),
            apt: Vec::new(),
        });
    }
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        let first = text.lines().next().unwrap_or_default();
        ParseError::new(KIND, 1, first, format!("not JSON: {e}"))
    })?;
    let rows = v
        .get("locks")
        .and_then(|l| l.as_array())
        .ok_or_else(|| ParseError::new(KIND, 1, "", "no `locks` array"))?;
    let str_of =
        |r: &serde_json::Value, k: &str| r.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let locks: Vec<Lock> = rows
        .iter()
        .map(|r| Lock {
            command: str_of(r, "command"),
            pid: r
                .get("pid")
                .and_then(|p| p.as_u64().or_else(|| p.as_str()?.trim().parse().ok())),
            path: str_of(r, "path"),
        })
        .collect();
    let apt = locks
        .iter()
        .filter(|l| l.path.as_deref().is_some_and(|p| APT_LOCKS.contains(&p)))
        .cloned()
        .collect();
    Ok(Locks { locks, apt })
}

/// The `apt-locks` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "apt-locks",
    scope: Scope::PackageState,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.packages.apt_locks = Some(parsed.apt);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_locks_are_picked_out() {
        let l = parse(r#"{"locks": [{"command": "cron", "pid": 812, "path": "/run/crond.pid"}, {"command": "apt-get", "pid": "4242", "path": "/var/lib/dpkg/lock-frontend"}]}"#).unwrap();
        assert_eq!(l.locks.len(), 2);
        assert_eq!(l.apt.len(), 1);
        assert_eq!(l.apt[0].pid, Some(4242));
        assert!(parse("").unwrap().apt.is_empty());
        assert!(parse("garbage").is_err());
    }
}
