//! `pvesh get /nodes/localhost/tasks [--source all] [--since EPOCH] [--limit N]
//! --output-format json` and `pvesh get /cluster/tasks --output-format json` (kind `tasks`):
//! tasks with their state and outcome.
//!
//! pve-manager `PVE/API2/Tasks.pm` (`node_tasks`, commit 14a22df3) takes `start` (offset,
//! default 0), `limit` (default **50**, minimum 0), `userfilter`, `typefilter`, `vmid`,
//! `errors` (boolean: drops only the `ok` tasks, so warnings, errors and unknown stay),
//! `source` (`archive` (default): finished tasks from `/var/log/pve/tasks/index` and
//! `index.1` only, `active`: the `active` file's tasks not yet archived, `all`: both, active
//! first), `since` and `until` (epochs, compared with the task's **start** time: a task begun
//! before `since` is left out even if it ended after), and `statusfilter` (a list of `ok`,
//! `warning`, `error`, `unknown`; ignored when `errors` is set). Archived tasks come newest
//! first; `limit` counts across both sources. A running task from `source=active|all` gets the
//! status `RUNNING` ("otherwise it would be archived"). Items: `upid`, `node`, `pid`,
//! `pstart`, `starttime`, `type`, `id`, `user` (and `tokenid` when an API token ran it),
//! `endtime` and `status` when finished.
//! `PVE/API2/Cluster.pm` (`tasks`) returns pve-cluster's `get_tasklist`: every node's recent
//! tasks in the same item shape; a running one has neither `endtime` nor `status`.
//!
//! A status is `OK`, `WARNINGS: N`, or the text of `TASK ERROR: …` (pve-common
//! `src/PVE/UPID.pm` `read_status`; `unexpected status` when the log's last line is none of
//! these). pve-common `PVE::UPID::normalize_status_type` (via
//! `PVE::Tools::upid_normalize_status_type`, which `statusfilter`/`errors` use) maps `OK` →
//! ok, `WARNINGS: \d+` → warning, no status or `unexpected status` → unknown, anything else →
//! error. `outcome` here follows it, except: a task without an end time whose status is absent
//! or `RUNNING` is `running`, and PVE's `unknown` for a finished task is `error`, as
//! `PVE::UPID::status_is_error` counts it ("if the status could not be parsed it's also
//! treated as an error"). `status` is null while running (PVE's `RUNNING` included).
//! `node`, `type`, `id`, `user` and `starttime` are taken from the item, else decoded from the
//! UPID (`UPID:node:pid:pstart:starttime:type:id:user:`, hex numbers; `PVE::UPID::decode`).
//! Also what the snapshot keeps of it: each [`Task`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::pvesh::{read_json, str_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "tasks";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/NODE/tasks (or /cluster/tasks) --output-format json: tasks with status and outcome",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One task, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedTask {
    pub upid: String,
    pub node: String,
    /// `vzdump`, `qmigrate`, `qmstart`, `vzmigrate`, `aptupdate`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The VMID or other id; null when the UPID's id is empty.
    pub id: Option<String>,
    pub user: String,
    /// The API token's name when a token ran the task (`user` is then its owner).
    pub tokenid: Option<String>,
    /// Seconds since the epoch.
    pub starttime: i64,
    /// Null while running.
    pub endtime: Option<i64>,
    /// Null while running; `OK`, `WARNINGS: 2`, or the error message.
    pub status: Option<String>,
    /// `running`, `ok`, `warning` or `error`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tasks {
    /// In PVE's order.
    pub tasks: Vec<ParsedTask>,
}

/// One task of `/nodes/N/tasks` (kind `tasks`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    pub upid: String,
    pub node: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub user: String,
    pub starttime: i64,
    pub endtime: Option<i64>,
    pub status: Option<String>,
    /// `running`, `ok`, `warning` or `error`.
    pub outcome: String,
}

impl From<&ParsedTask> for Task {
    fn from(t: &ParsedTask) -> Self {
        let ParsedTask {
            upid,
            node,
            kind,
            id,
            user,
            tokenid: _,
            starttime,
            endtime,
            status,
            outcome,
        } = t;
        Task {
            upid: upid.clone(),
            node: node.clone(),
            kind: kind.clone(),
            id: id.clone(),
            user: user.clone(),
            starttime: *starttime,
            endtime: *endtime,
            status: status.clone(),
            outcome: (*outcome).to_owned(),
        }
    }
}

/// The fields of `UPID:node:pid:pstart:starttime:type:id:user:` (PVE::UPID::decode).
struct Upid {
    node: String,
    starttime: Option<i64>,
    kind: String,
    id: String,
    user: String,
}

fn decode_upid(upid: &str) -> Option<Upid> {
    let rest = upid.strip_prefix("UPID:")?.strip_suffix(':')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [node, _pid, _pstart, start, kind, id, user] = parts.as_slice() else {
        return None;
    };
    Some(Upid {
        node: (*node).to_owned(),
        starttime: i64::from_str_radix(start, 16).ok(),
        kind: (*kind).to_owned(),
        id: (*id).to_owned(),
        user: (*user).to_owned(),
    })
}

fn i64_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// PVE's classification (module doc): `running`, `ok`, `warning` or `error`.
pub fn outcome(status: Option<&str>, ended: bool) -> &'static str {
    match status {
        None | Some("RUNNING") if !ended => "running",
        Some("OK") => "ok",
        Some(s) if is_warnings(s) => "warning",
        _ => "error",
    }
}

/// `WARNINGS: \d+`, whole.
fn is_warnings(s: &str) -> bool {
    s.strip_prefix("WARNINGS: ")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub fn parse(text: &str) -> Result<Tasks, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut tasks = Vec::new();
    for item in &items {
        let err = |reason: &str| ParseError::new(KIND, start, "", reason);
        let upid = str_of(item, "upid").ok_or_else(|| err("a task has no \"upid\""))?;
        let decoded = decode_upid(&upid);
        let field = |key: &str, from: fn(&Upid) -> &String| {
            str_of(item, key).or_else(|| decoded.as_ref().map(|d| from(d).clone()))
        };
        let node = field("node", |d| &d.node)
            .ok_or_else(|| err("a task has no node and its UPID cannot be read"))?;
        let kind = field("type", |d| &d.kind)
            .ok_or_else(|| err("a task has no type and its UPID cannot be read"))?;
        let user = field("user", |d| &d.user)
            .ok_or_else(|| err("a task has no user and its UPID cannot be read"))?;
        let starttime = i64_of(item, "starttime")
            .or_else(|| decoded.as_ref().and_then(|d| d.starttime))
            .ok_or_else(|| err("a task has no starttime and its UPID cannot be read"))?;
        let endtime = i64_of(item, "endtime").filter(|e| *e > 0);
        let raw_status = str_of(item, "status").filter(|s| !s.is_empty());
        let outcome = outcome(raw_status.as_deref(), endtime.is_some());
        tasks.push(ParsedTask {
            node,
            kind,
            id: field("id", |d| &d.id).filter(|i| !i.is_empty()),
            user,
            tokenid: str_of(item, "tokenid").filter(|t| !t.is_empty()),
            starttime,
            endtime,
            status: if outcome == "running" {
                None
            } else {
                raw_status
            },
            outcome,
            upid,
        });
    }
    Ok(Tasks { tasks })
}

/// The node's failed tasks (the `tasks.no-recent-failures` check).
pub const FAILED: Read = Read {
    template: "node-tasks-failed",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

/// The node's running tasks (who holds a guest's `backup`/`migrate` lock).
pub const RUNNING: Read = Read {
    template: "node-tasks-running",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

/// Failed and running tasks are one list: a task is in one of them only.
fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let t = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    let list = k.node.tasks.get_or_insert_with(Vec::new);
    for task in &t.tasks {
        if !list.iter().any(|x| x.upid == task.upid) {
            list.push(task.into());
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_pve() {
        assert_eq!(outcome(None, false), "running");
        assert_eq!(outcome(Some("RUNNING"), false), "running");
        assert_eq!(outcome(Some("OK"), true), "ok");
        assert_eq!(outcome(Some("WARNINGS: 2"), true), "warning");
        assert_eq!(outcome(Some("WARNINGS: x"), true), "error");
        assert_eq!(outcome(Some("job errors"), true), "error");
        assert_eq!(outcome(Some("unexpected status"), true), "error");
        assert_eq!(outcome(None, true), "error");
    }

    #[test]
    fn fields_from_item_or_upid() {
        let t = parse(r#"[{"endtime":1767225660,"id":"100","node":"pve1","pid":1234,"pstart":5678,"starttime":1767225600,"status":"OK","type":"vzdump","upid":"UPID:pve1:000004D2:0000162E:69560A00:vzdump:100:root@pam:","user":"root@pam"},{"upid":"UPID:pve2:000004D2:0000162E:69560A3C:aptupdate::root@pam:","status":"RUNNING"}]"#).unwrap();
        assert_eq!(t.tasks[0].outcome, "ok");
        assert_eq!(t.tasks[0].id.as_deref(), Some("100"));
        let r = &t.tasks[1];
        assert_eq!((r.node.as_str(), r.kind.as_str()), ("pve2", "aptupdate"));
        assert_eq!((r.id.as_deref(), r.starttime), (None, 0x69560A3C));
        assert_eq!((r.status.as_deref(), r.outcome), (None, "running"));
    }

    #[test]
    fn garbage() {
        assert!(parse(r#"[{"status":"OK"}]"#).is_err());
        assert!(parse(r#"[{"upid":"nope"}]"#).is_err());
        assert!(parse("{}").is_err());
        assert!(parse("[]").unwrap().tasks.is_empty());
    }
}
