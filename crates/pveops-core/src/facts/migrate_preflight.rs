//! `pvesh get /nodes/NODE/{qemu,lxc}/ID/migrate --output-format json`: PVE's own migration
//! preconditions for one guest, as the node that holds it sees them.
//!
//! Three shapes exist, all read here (qemu-server `src/PVE/API2/Qemu.pm`,
//! `migrate_vm_precondition`; pve-container `src/PVE/API2/LXC.pm`, same name):
//!
//! - **qemu, PVE ≥ 8.4** (qemu-server 8.3.9, commit 8aeaad24): `allowed_nodes` and
//!   `not_allowed_nodes` for running and stopped VMs alike. `not_allowed_nodes` is seeded from
//!   `PVE::QemuServer::check_local_storage_availability`, which pre-fills **every** cluster
//!   node with `{}`, so every other node appears there, with an empty object when nothing blocks
//!   it. A node is blocked only by a non-empty reason: `unavailable_storages` (storage ids),
//!   `unavailable-resources` (mapped devices missing there) or, from PVE 9,
//!   `blocking-ha-resources` (`[{sid, cause}]`, from `PVE::HA::Config::get_resource_motion_info`:
//!   a negative resource-affinity partner already on that node).
//! - **qemu, PVE < 8.4**: a running VM gets no node lists at all (`allowed_nodes` absent): the
//!   preflight says nothing about targets; a stopped VM gets both, with the same pre-filled hash.
//! - **lxc, PVE ≥ 9.0** (pve-container commit 5ed4af5): hyphenated keys `allowed-nodes`,
//!   `not-allowed-nodes` (only blocked nodes, only `blocking-ha-resources`) and
//!   `dependent-ha-resources`. Older PVE has no such endpoint (`No 'get' handler`), and the
//!   container endpoint never checks storages: that stays the caller's to check.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::ParseError;
use super::pvesh::{bool_of, read_doc, str_of, u64_of};

pub const KIND: &str = "migrate-preflight";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/N/{qemu,lxc}/ID/migrate: allowed targets, blocking reasons, local disks",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MigratePreflight {
    /// `qemu` (underscore keys) or `lxc` (PVE 9's hyphenated keys).
    pub shape: String,
    pub running: Option<bool>,
    /// The nodes PVE names as allowed; `None` when the answer has no list (a running VM below
    /// PVE 8.4), which says nothing about any node.
    pub allowed_nodes: Option<Vec<String>>,
    /// Each node with at least one non-empty reason against it. A node listed with an empty
    /// object (PVE's pre-filled entry) is not blocked and is not here.
    pub blocked_nodes: BTreeMap<String, Vec<Blocker>>,
    /// Disks on storages the target may not have (VMs only).
    pub local_disks: Vec<LocalDisk>,
    /// Local devices that block a live migration (`usb0`, `hostpci0`, `clipboard=vnc`, ...).
    pub local_resources: Vec<String>,
    /// Mapped devices (`pci`/`usb`/`dir` mappings), usable where the mapping exists.
    pub mapped_resources: Vec<String>,
    /// HA resources that move along, being in positive affinity with this guest (PVE 9).
    pub dependent_ha_resources: Vec<String>,
}

/// Why PVE will not migrate the guest to a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Blocker {
    /// The guest's disks are on these storages, which that node does not have (or are disabled).
    UnavailableStorages { storages: Vec<String> },
    /// Mapped devices without a mapping on that node.
    UnavailableResources { resources: Vec<String> },
    /// An HA resource that blocks the move (`cause`: `resource-affinity` in PVE 9.0/9.1).
    BlockingHaResource { sid: String, cause: String },
    /// A reason this parser does not know: it blocks, and its JSON is kept for the message.
    Other { key: String, value: String },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::UnavailableStorages { storages } => {
                write!(f, "storage {} not available there", storages.join(", "))
            }
            Blocker::UnavailableResources { resources } => {
                write!(f, "mapped device {} not mapped there", resources.join(", "))
            }
            Blocker::BlockingHaResource { sid, cause } => {
                write!(f, "HA resource {sid} is there ({cause} rule)")
            }
            Blocker::Other { key, value } => write!(f, "{key}: {value}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LocalDisk {
    pub volid: String,
    pub size_bytes: Option<u64>,
    pub cdrom: bool,
    pub is_unused: bool,
}

/// Strings of an array; objects with a `volid` give it (older local_disks entries).
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The reasons in one node's entry; empty for PVE's pre-filled `{}`.
fn blockers(entry: &Value) -> Vec<Blocker> {
    let Some(o) = entry.as_object() else {
        // Not an object: unknown, so it blocks rather than pass unchecked.
        return vec![Blocker::Other {
            key: "entry".into(),
            value: entry.to_string(),
        }];
    };
    let mut out = Vec::new();
    for (key, value) in o {
        let empty = match value {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(m) => m.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if empty {
            continue;
        }
        match key.as_str() {
            "unavailable_storages" => out.push(Blocker::UnavailableStorages {
                storages: strings(Some(value)),
            }),
            "unavailable-resources" => out.push(Blocker::UnavailableResources {
                resources: strings(Some(value)),
            }),
            "blocking-ha-resources" => {
                for item in value.as_array().into_iter().flatten() {
                    out.push(Blocker::BlockingHaResource {
                        sid: str_of(item, "sid").unwrap_or_else(|| item.to_string()),
                        cause: str_of(item, "cause").unwrap_or_default(),
                    });
                }
                if !value.is_array() {
                    out.push(Blocker::Other {
                        key: key.clone(),
                        value: value.to_string(),
                    });
                }
            }
            _ => out.push(Blocker::Other {
                key: key.clone(),
                value: value.to_string(),
            }),
        }
    }
    out
}

pub fn parse(text: &str) -> Result<MigratePreflight, ParseError> {
    let (doc, start) = read_doc(KIND, text)?;
    let Value::Object(o) = &doc else {
        return Err(ParseError::new(KIND, start, "", "expected a JSON object"));
    };
    // The container endpoint spells its keys with hyphens (pve-container, PVE 9.0).
    let lxc = o.contains_key("allowed-nodes") || o.contains_key("not-allowed-nodes");
    let key = |underscore: &'static str, hyphen: &'static str| {
        if lxc {
            o.get(hyphen).or_else(|| o.get(underscore))
        } else {
            o.get(underscore).or_else(|| o.get(hyphen))
        }
    };
    if !o.contains_key("running") && key("allowed_nodes", "allowed-nodes").is_none() {
        return Err(ParseError::new(
            KIND,
            start,
            "",
            "not a migrate preflight: no \"running\" and no node lists",
        ));
    }
    let mut blocked_nodes = BTreeMap::new();
    if let Some(nodes) = key("not_allowed_nodes", "not-allowed-nodes").and_then(Value::as_object) {
        for (node, entry) in nodes {
            let b = blockers(entry);
            if !b.is_empty() {
                blocked_nodes.insert(node.clone(), b);
            }
        }
    }
    let local_disks = o
        .get("local_disks")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|d| match d {
                    Value::String(s) => Some(LocalDisk {
                        volid: s.clone(),
                        ..Default::default()
                    }),
                    Value::Object(_) => Some(LocalDisk {
                        volid: str_of(d, "volid")?,
                        size_bytes: u64_of(d, "size"),
                        cdrom: bool_of(d, "cdrom").unwrap_or(false),
                        is_unused: bool_of(d, "is_unused").unwrap_or(false),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(MigratePreflight {
        shape: if lxc { "lxc" } else { "qemu" }.into(),
        running: bool_of(&doc, "running"),
        allowed_nodes: key("allowed_nodes", "allowed-nodes").map(|v| strings(Some(v))),
        blocked_nodes,
        local_disks,
        local_resources: strings(o.get("local_resources")),
        mapped_resources: strings(o.get("mapped-resources")),
        dependent_ha_resources: strings(key("dependent_ha_resources", "dependent-ha-resources")),
    })
}

impl MigratePreflight {
    /// What PVE says about `node` as a target: `Some(reasons)` when it blocks it, `Some(empty)`
    /// when it allows it, `None` when this answer says nothing about it.
    pub fn verdict(&self, node: &str) -> Option<&[Blocker]> {
        if let Some(b) = self.blocked_nodes.get(node) {
            return Some(b);
        }
        self.allowed_nodes
            .as_ref()
            .filter(|a| a.iter().any(|n| n == node))
            .map(|_| &[][..])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pre_filled_empty_entries_do_not_block() {
        let p = parse(
            r#"{"allowed_nodes":["pve2","pve3"],"has-dbus-vmstate":1,"local_disks":[],"local_resources":[],"mapped-resource-info":{},"mapped-resources":[],"not_allowed_nodes":{"pve2":{},"pve3":{}},"running":1}"#,
        )
        .unwrap();
        assert!(p.blocked_nodes.is_empty());
        assert_eq!(p.verdict("pve2"), Some(&[][..]));
        assert_eq!(p.verdict("pve9"), None);
    }

    #[test]
    fn every_reason_blocks() {
        let p = parse(
            r#"{"allowed_nodes":[],"not_allowed_nodes":{"pve2":{"unavailable_storages":["fast"]},"pve3":{"blocking-ha-resources":[{"cause":"resource-affinity","sid":"vm:102"}],"unavailable-resources":["gpu"]}},"running":0}"#,
        )
        .unwrap();
        assert_eq!(p.verdict("pve2").unwrap().len(), 1);
        assert_eq!(p.verdict("pve3").unwrap().len(), 2);
        assert_eq!(
            p.verdict("pve3").unwrap()[0].to_string(),
            "HA resource vm:102 is there (resource-affinity rule)"
        );
    }

    #[test]
    fn a_running_vm_before_8_4_has_no_lists() {
        let p = parse(r#"{"local_disks":[],"local_resources":[],"running":1}"#).unwrap();
        assert_eq!(p.allowed_nodes, None);
        assert_eq!(p.verdict("pve2"), None);
    }

    #[test]
    fn lxc_keys_are_hyphenated() {
        let p = parse(
            r#"{"allowed-nodes":["pve3"],"dependent-ha-resources":["ct:201"],"not-allowed-nodes":{"pve2":{"blocking-ha-resources":[{"cause":"resource-affinity","sid":"ct:202"}]}},"running":1}"#,
        )
        .unwrap();
        assert_eq!(p.shape, "lxc");
        assert_eq!(p.verdict("pve3"), Some(&[][..]));
        assert!(p.verdict("pve2").is_some_and(|b| !b.is_empty()));
        assert_eq!(p.dependent_ha_resources, vec!["ct:201"]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("not json").is_err());
        assert!(parse("[]").is_err());
        assert!(parse("{}").is_err());
    }
}
