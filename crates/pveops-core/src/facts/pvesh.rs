//! `pvesh get <path> --output-format json` for /cluster/status, /cluster/resources,
//! /nodes/<node>/storage and /cluster/ha/status/current (FORMATS.md §0.2, §6). JSON is
//! compact, keys sorted, arrays unsorted; numbers may be strings and booleans 0/1, so every
//! field is read leniently.
//! Also what the snapshot keeps of /cluster/resources: [`Resource`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::common::{Line, lines, locale_noise};
use super::ha_manager_status::{Builder, HaStatus};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND_CLUSTER_STATUS: &str = "pvesh-cluster-status";
pub const KIND_CLUSTER_RESOURCES: &str = "pvesh-cluster-resources";
pub const KIND_NODES_STORAGE: &str = "pvesh-nodes-storage";
pub const KIND_HA_STATUS: &str = "pvesh-ha-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE_CLUSTER_STATUS: super::Kind = super::Kind {
    name: KIND_CLUSTER_STATUS,
    what: "pvesh get /cluster/status --output-format json",
    parse: |text| super::to_json(KIND_CLUSTER_STATUS, parse_cluster_status(text)),
};

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE_CLUSTER_RESOURCES: super::Kind = super::Kind {
    name: KIND_CLUSTER_RESOURCES,
    what: "pvesh get /cluster/resources --output-format json",
    parse: |text| super::to_json(KIND_CLUSTER_RESOURCES, parse_cluster_resources(text)),
};

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE_NODES_STORAGE: super::Kind = super::Kind {
    name: KIND_NODES_STORAGE,
    what: "pvesh get /nodes/NODE/storage --output-format json",
    parse: |text| super::to_json(KIND_NODES_STORAGE, parse_nodes_storage(text)),
};

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE_HA_STATUS: super::Kind = super::Kind {
    name: KIND_HA_STATUS,
    what: "pvesh get /cluster/ha/status/current --output-format json",
    parse: |text| super::to_json(KIND_HA_STATUS, parse_ha_status(text)),
};

/// Reads the JSON document, skipping locale warnings and known STDERR lines before it; returns
/// it with the line it starts on.
pub(crate) fn read_doc(kind: &'static str, text: &str) -> Result<(Value, usize), ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut start = None;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text.trim_start();
        if is_noise || t.is_empty() {
            continue;
        }
        if t.starts_with('[') || t.starts_with('{') {
            start = Some(line.no);
            break;
        }
        let reason = match stderr::classify(line.no, t) {
            Some(d) => d.message,
            None => "expected JSON (run pvesh with --output-format json)".to_owned(),
        };
        return Err(ParseError::new(kind, line.no, line.text, reason));
    }
    let Some(start) = start else {
        return Err(ParseError::new(kind, 0, "", "no JSON document"));
    };
    let body: Vec<&str> = lines.iter().skip(start - 1).map(|l| l.raw).collect();
    let doc: Value = serde_json::from_str(&body.join("\n")).map_err(|e| {
        let no = start + e.line().saturating_sub(1);
        let text = lines
            .get(no.saturating_sub(1))
            .map_or("", |l: &Line<'_>| l.text);
        ParseError::new(kind, no, text, format!("invalid JSON: {e}"))
    })?;
    Ok((doc, start))
}

/// Reads a JSON list (see `read_doc`).
pub(crate) fn read_json(kind: &'static str, text: &str) -> Result<(Vec<Value>, usize), ParseError> {
    let (doc, start) = read_doc(kind, text)?;
    match doc {
        Value::Array(items) => Ok((items, start)),
        // Some endpoints wrap the list as {"data": [...]} (raw API responses).
        Value::Object(mut o) => match o.remove("data") {
            Some(Value::Array(items)) => Ok((items, start)),
            _ => Err(ParseError::new(kind, start, "", "expected a JSON array")),
        },
        _ => Err(ParseError::new(kind, start, "", "expected a JSON array")),
    }
}

/// `4`, `"4"`, `4.0` → 4 (Perl may serialise a number as a string, FORMATS.md §0.2).
pub(crate) fn u64_of(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as u64)),
        _ => None,
    }
}

pub(crate) fn f64_of(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `0/1`, `"0"/"1"` and `true/false` are all booleans in PVE JSON (FORMATS.md §0.2).
pub(crate) fn bool_of(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim() {
            "1" | "true" | "yes" => Some(true),
            "0" | "false" | "no" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------- /cluster/status

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEntry {
    pub name: Option<String>,
    /// Configured nodes, offline ones included.
    pub nodes: Option<u64>,
    pub quorate: Option<bool>,
    /// corosync config_version.
    pub version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterNode {
    pub name: String,
    pub nodeid: Option<u64>,
    pub ip: Option<String>,
    pub local: bool,
    pub online: bool,
    /// Subscription level: '' none, c, b, s, p.
    pub level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// False for a standalone node: no `type=cluster` entry (FORMATS.md §6.2).
    pub clustered: bool,
    pub cluster: Option<ClusterEntry>,
    /// The cluster's quorate flag; null when not clustered.
    pub quorate: Option<bool>,
    /// Sorted by name (the API returns Perl hash order).
    pub nodes: Vec<ClusterNode>,
}

pub fn parse_cluster_status(text: &str) -> Result<ClusterStatus, ParseError> {
    let kind = KIND_CLUSTER_STATUS;
    let (items, start) = read_json(kind, text)?;
    let mut cluster = None;
    let mut nodes = Vec::new();
    for item in &items {
        match item.get("type").and_then(Value::as_str) {
            Some("cluster") => {
                cluster = Some(ClusterEntry {
                    name: str_of(item, "name"),
                    nodes: u64_of(item, "nodes"),
                    quorate: bool_of(item, "quorate"),
                    version: u64_of(item, "version"),
                })
            }
            Some("node") => nodes.push(ClusterNode {
                name: str_of(item, "name")
                    .or_else(|| {
                        str_of(item, "id").map(|i| i.trim_start_matches("node/").to_owned())
                    })
                    .ok_or_else(|| ParseError::new(kind, start, "", "a node entry has no name"))?,
                nodeid: u64_of(item, "nodeid"),
                ip: str_of(item, "ip"),
                local: bool_of(item, "local").unwrap_or(false),
                online: bool_of(item, "online").unwrap_or(false),
                level: str_of(item, "level"),
            }),
            _ => {}
        }
    }
    if cluster.is_none() && nodes.is_empty() {
        return Err(ParseError::new(
            kind,
            start,
            "",
            "no cluster or node entries",
        ));
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClusterStatus {
        clustered: cluster.is_some(),
        quorate: cluster.as_ref().and_then(|c| c.quorate),
        cluster,
        nodes,
    })
}

// ---------------------------------------------------------------- /cluster/resources

/// One entry of /cluster/resources, as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub node: Option<String>,
    /// qemu/lxc: running|stopped|...|unknown; node: online|offline|unknown;
    /// storage: available|unknown.
    pub status: Option<String>,
    pub name: Option<String>,
    pub vmid: Option<u64>,
    pub template: Option<bool>,
    pub lock: Option<String>,
    pub hastate: Option<String>,
    pub tags: Option<String>,
    pub pool: Option<String>,
    pub storage: Option<String>,
    pub plugintype: Option<String>,
    pub content: Option<String>,
    pub shared: Option<bool>,
    pub level: Option<String>,
    /// Fraction 0..1, not percent.
    pub cpu: Option<f64>,
    pub maxcpu: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub maxmem_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    pub maxdisk_bytes: Option<u64>,
    pub uptime: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterResources {
    /// Sorted by type, then VMID, then id.
    pub resources: Vec<ParsedResource>,
}

/// One guest of `/cluster/resources` (cluster-wide: locks, HA state, placement).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub node: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub vmid: Option<u64>,
    pub lock: Option<String>,
    pub hastate: Option<String>,
    pub storage: Option<String>,
    pub content: Option<String>,
    pub shared: Option<bool>,
    pub maxmem_bytes: Option<u64>,
    pub mem_bytes: Option<u64>,
    pub template: Option<bool>,
}

impl Resource {
    /// A VM (`qemu`) or a container (`lxc`), as `/cluster/resources` types them.
    pub fn is_guest(&self) -> bool {
        matches!(self.kind.as_str(), "qemu" | "lxc")
    }
}

impl From<&ParsedResource> for Resource {
    fn from(r: &ParsedResource) -> Self {
        let ParsedResource {
            id,
            kind,
            node,
            status,
            name,
            vmid,
            template,
            lock,
            hastate,
            tags: _,
            pool: _,
            storage,
            plugintype: _,
            content,
            shared,
            level: _,
            cpu: _,
            maxcpu: _,
            mem_bytes,
            maxmem_bytes,
            disk_bytes: _,
            maxdisk_bytes: _,
            uptime: _,
        } = r;
        Resource {
            id: id.clone(),
            kind: kind.clone(),
            node: node.clone(),
            status: status.clone(),
            name: name.clone(),
            vmid: *vmid,
            lock: lock.clone(),
            hastate: hastate.clone(),
            storage: storage.clone(),
            content: content.clone(),
            shared: *shared,
            maxmem_bytes: *maxmem_bytes,
            mem_bytes: *mem_bytes,
            template: *template,
        }
    }
}

pub fn parse_cluster_resources(text: &str) -> Result<ClusterResources, ParseError> {
    let kind = KIND_CLUSTER_RESOURCES;
    let (items, start) = read_json(kind, text)?;
    let mut resources = Vec::new();
    for item in &items {
        let (Some(id), Some(t)) = (str_of(item, "id"), str_of(item, "type")) else {
            return Err(ParseError::new(
                kind,
                start,
                "",
                "a resource has no id or type",
            ));
        };
        resources.push(ParsedResource {
            id,
            kind: t,
            node: str_of(item, "node"),
            status: str_of(item, "status"),
            name: str_of(item, "name"),
            vmid: u64_of(item, "vmid"),
            template: bool_of(item, "template"),
            lock: str_of(item, "lock"),
            hastate: str_of(item, "hastate"),
            tags: str_of(item, "tags"),
            pool: str_of(item, "pool"),
            storage: str_of(item, "storage"),
            plugintype: str_of(item, "plugintype"),
            content: str_of(item, "content"),
            shared: bool_of(item, "shared"),
            level: str_of(item, "level"),
            cpu: f64_of(item, "cpu"),
            maxcpu: f64_of(item, "maxcpu"),
            mem_bytes: u64_of(item, "mem"),
            maxmem_bytes: u64_of(item, "maxmem"),
            disk_bytes: u64_of(item, "disk"),
            maxdisk_bytes: u64_of(item, "maxdisk"),
            uptime: u64_of(item, "uptime"),
        });
    }
    resources.sort_by(|a, b| (&a.kind, a.vmid, &a.id).cmp(&(&b.kind, b.vmid, &b.id)));
    Ok(ClusterResources { resources })
}

// ---------------------------------------------------------------- /nodes/<node>/storage

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStorage {
    pub storage: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub content: Option<String>,
    pub active: Option<bool>,
    pub enabled: Option<bool>,
    pub shared: Option<bool>,
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub avail_bytes: Option<u64>,
    pub used_fraction: Option<f64>,
    /// used_fraction × 100, rounded to 2 decimals like `pvesm status`.
    pub used_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodesStorage {
    /// Sorted by storage id.
    pub storages: Vec<NodeStorage>,
}

pub fn parse_nodes_storage(text: &str) -> Result<NodesStorage, ParseError> {
    let kind = KIND_NODES_STORAGE;
    let (items, start) = read_json(kind, text)?;
    let mut storages = Vec::new();
    for item in &items {
        let Some(storage) = str_of(item, "storage") else {
            return Err(ParseError::new(
                kind,
                start,
                "",
                "a storage entry has no \"storage\" id",
            ));
        };
        let used_fraction = f64_of(item, "used_fraction");
        storages.push(NodeStorage {
            storage,
            kind: str_of(item, "type"),
            content: str_of(item, "content"),
            active: bool_of(item, "active"),
            enabled: bool_of(item, "enabled"),
            shared: bool_of(item, "shared"),
            total_bytes: u64_of(item, "total"),
            used_bytes: u64_of(item, "used"),
            avail_bytes: u64_of(item, "avail"),
            used_fraction,
            used_pct: used_fraction.map(|f| (f * 10000.0).round() / 100.0),
        });
    }
    storages.sort_by(|a, b| a.storage.cmp(&b.storage));
    Ok(NodesStorage { storages })
}

// ---------------------------------------------------------------- /cluster/ha/status/current

/// Each entry's `status` is the text `ha-manager status` prints after the type
/// (FORMATS.md §5.1), so the same reader is used; service node/state come from their fields.
pub fn parse_ha_status(text: &str) -> Result<HaStatus, ParseError> {
    let kind = KIND_HA_STATUS;
    let (items, start) = read_json(kind, text)?;
    let mut b = Builder::default();
    for item in &items {
        let (Some(t), Some(status)) = (str_of(item, "type"), str_of(item, "status")) else {
            return Err(ParseError::new(
                kind,
                start,
                "",
                "an entry has no type or status",
            ));
        };
        let status = match (
            t.as_str(),
            str_of(item, "sid"),
            str_of(item, "node"),
            str_of(item, "state"),
        ) {
            ("service", Some(sid), Some(node), Some(state)) => format!("{sid} ({node}, {state})"),
            _ => status,
        };
        let line = Line {
            no: start,
            text: &status,
            raw: &status,
        };
        b.entry(&line, &t, &status)
            .map_err(|e| ParseError { kind, ..e })?;
    }
    b.finish(None).map_err(|e| ParseError { kind, ..e })
}

/// The `/cluster/resources` read, once per cluster: guests, nodes and storages.
pub const CLUSTER_RESOURCES: Read = Read {
    template: "cluster-resources",
    scope: Scope::Cluster,
    vars: super::no_vars,
    keep: keep_resources,
};

fn keep_resources(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse_cluster_resources(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.resources
        .extend(parsed.resources.iter().map(Resource::from));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lenient_numbers_and_booleans() {
        let s = parse_cluster_status(r#"[{"id":"cluster","name":"c","nodes":"3","quorate":"1","type":"cluster","version":7},{"id":"node/b","name":"b","nodeid":"2","online":0,"local":true,"type":"node"},{"id":"node/a","name":"a","nodeid":1,"online":1,"type":"node"}]"#).unwrap();
        assert!(s.clustered);
        assert_eq!(s.quorate, Some(true));
        assert_eq!(s.cluster.unwrap().nodes, Some(3));
        assert_eq!(s.nodes[0].name, "a");
        assert_eq!(s.nodes[1].nodeid, Some(2));
        assert!(s.nodes[1].local);
        assert!(!s.nodes[1].online);
    }

    #[test]
    fn nodes_storage() {
        let s = parse_nodes_storage(r#"[{"active":1,"avail":"100","content":"images","enabled":1,"shared":0,"storage":"z","total":200,"type":"zfspool","used":100,"used_fraction":0.5},{"active":0,"enabled":1,"storage":"a","type":"nfs"}]"#).unwrap();
        assert_eq!(s.storages[0].storage, "a");
        assert_eq!(s.storages[0].active, Some(false));
        assert_eq!(s.storages[1].avail_bytes, Some(100));
        assert_eq!(s.storages[1].used_pct, Some(50.0));
    }

    #[test]
    fn ha_status_json() {
        let s = parse_ha_status(r#"[{"id":"quorum","quorate":1,"status":"OK","type":"quorum","node":"pve1"},{"id":"master","node":"pve1","status":"pve1 (active, Fri Apr  3 04:05:16 2026)","type":"master"},{"id":"lrm:pve1","node":"pve1","status":"pve1 (active, watchdog active, Fri Apr  3 04:05:16 2026)","type":"lrm"},{"id":"service:vm:100","node":"pve1","sid":"vm:100","state":"started","status":"vm:100 (pve1, started)","type":"service"}]"#).unwrap();
        assert!(s.quorum_ok);
        assert_eq!(s.lrms[0].watchdog.as_deref(), Some("watchdog active"));
        assert_eq!(s.services[0].state, "started");
    }

    #[test]
    fn invalid_json_names_the_line() {
        let e = parse_cluster_status("[\n{\"id\": }\n]").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_cluster_status("Unknown option: output-format\n").unwrap_err();
        assert_eq!(
            e.reason,
            "the command does not accept the option output-format"
        );
    }
}
