//! `pvesh get /nodes/localhost/status --output-format json` (kind `node-status`): the node's
//! CPU, load, memory, swap, root file system and versions.
//!
//! pve-manager `PVE/API2/Nodes.pm` (`status`, commit 14a22df3) builds one object:
//! - `uptime` from pve-common `PVE::ProcFSTools::read_proc_uptime` (seconds; `/proc/uptime`'s
//!   first field, so it may carry decimals);
//! - `loadavg` from `read_loadavg`: the three `/proc/loadavg` fields as the regex captured them,
//!   i.e. **strings** (`"0.52"`), `(0, 0, 0)` when the line does not match;
//! - `kversion` (`"$sysname $release $version"`, "legacy compat") and `current-kernel` from
//!   `get_current_kernel_info` (POSIX `uname`); `boot-info` (`mode` `efi`/`legacy-bios`,
//!   `secureboot`) from `get_boot_mode_info`;
//! - `cpuinfo` from `read_cpuinfo` (`cpus` logical threads, `sockets`, `cores`, `model`, …);
//! - `cpu` and `wait` from `read_proc_stat`: fractions 0..1 of the CPU time used and spent in
//!   IO wait **since the previous sample of the same process**. The first call of a process
//!   takes itself as the previous sample and returns 0 for both, and pvesh answers
//!   `/nodes/localhost/…` in its own fresh process (`PVE/CLI/pvesh.pm` `check_proxyto` keeps
//!   `localhost` local): through pvesh both are always `0`. Only pveproxy/pvedaemon, which
//!   live on, give a real figure. They are read as given;
//! - `memory` (`total`, `used`, `free`, and since pve-manager 9.0 — commit 8fd3420b "api: node
//!   status: add the available memory to return value", 9.0.0~19 — `available`) from
//!   `read_meminfo`, all bytes; `used` is `memtotal - memavailable` there, not `total - free`;
//! - `swap` (`total`, `used`, `free`) from the same; `ksm.shared`;
//! - `pveversion` (`pve-manager/9.0.3/…`, `PVE::pvecfg::package() . "/" . version_text()`);
//! - `rootfs` from `df('/', 1)`: `total` (blocks), `avail` (bavail, what a non-root user may
//!   still write), `used`, `free` (`total - used`), bytes.
//!
//! pvesh prints the object as compact JSON with sorted keys; numbers may come as strings
//! (Perl), so every field is read leniently. Nothing is derived here (no percentages).
//! Also what the snapshot keeps of it: [`NodeStatus`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::common::finite;
use super::pvesh::{bool_of, f64_of, read_doc, str_of, u64_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "node-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/NODE/status --output-format json: CPU, load, memory, swap, rootfs in bytes, versions",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// `MemAvailable`; null before pve-manager 9.0 (the field did not exist).
    pub available_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Swap {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rootfs {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    /// Bytes a non-root user may still write (`df`'s bavail).
    pub avail_bytes: Option<u64>,
}

/// The node status, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedNodeStatus {
    /// CPU used, fraction 0..1 (always 0 through pvesh: see the module doc).
    pub cpu: Option<f64>,
    /// IO wait, fraction 0..1 (always 0 through pvesh as well).
    pub wait: Option<f64>,
    /// Logical CPUs (`cpuinfo.cpus`).
    pub cpus: Option<u64>,
    /// CPU sockets (`cpuinfo.sockets`; what the subscription counts).
    pub sockets: Option<u64>,
    /// `cpuinfo.model`.
    pub cpu_model: Option<String>,
    /// 1, 5 and 15 minutes; PVE prints them as strings.
    pub loadavg: Vec<f64>,
    /// Seconds since boot.
    pub uptime: Option<u64>,
    pub memory: Option<Memory>,
    pub swap: Option<Swap>,
    pub rootfs: Option<Rootfs>,
    /// `Linux 6.8.12-8-pve #1 SMP PREEMPT_DYNAMIC …` (uname's sysname, release, version).
    pub kversion: Option<String>,
    /// `pve-manager/8.4.11/14a32011146091ed`.
    pub pveversion: Option<String>,
    /// `boot-info.mode`: `efi` or `legacy-bios` (PVE ≥ 8.1).
    pub boot_mode: Option<String>,
    /// `boot-info.secureboot` (EFI only).
    pub secureboot: Option<bool>,
}

/// A node's load and memory (kind `node-status`, `/nodes/N/status`). `cpu` and `wait` are kept
/// as PVE gives them, but through `pvesh` they are always 0: pve-manager computes them from the
/// previous sample of the same process (see `facts::node_status`), so no check reads them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub cpu: Option<f64>,
    pub wait: Option<f64>,
    pub cpus: Option<u64>,
    pub loadavg: Vec<f64>,
    pub uptime: Option<u64>,
    pub memory: Option<MemoryUse>,
    pub swap: Option<MemoryUse>,
}

/// Memory or swap as the snapshot keeps them (swap has no `available_bytes`: null).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryUse {
    pub total_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

impl MemoryUse {
    /// Used share in percent; None when the total is unknown or 0 (no swap).
    pub fn used_pct(&self) -> Option<f64> {
        match (self.used_bytes, self.total_bytes) {
            (Some(u), Some(t)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
            _ => None,
        }
    }
}

impl From<&ParsedNodeStatus> for NodeStatus {
    fn from(s: &ParsedNodeStatus) -> Self {
        let ParsedNodeStatus {
            cpu,
            wait,
            cpus,
            sockets: _,
            cpu_model: _,
            loadavg,
            uptime,
            memory,
            swap,
            rootfs: _,
            kversion: _,
            pveversion: _,
            boot_mode: _,
            secureboot: _,
        } = s;
        NodeStatus {
            cpu: finite(*cpu),
            wait: finite(*wait),
            cpus: *cpus,
            // A figure that is not a number (`"NaN"` parses as f64) would be written as
            // `null`, which the snapshot cannot read back; the three figures are the 1, 5
            // and 15 minutes by position, so one lost makes the others unplaced: keep none.
            loadavg: if loadavg.iter().all(|f| f.is_finite()) {
                loadavg.clone()
            } else {
                Vec::new()
            },
            uptime: *uptime,
            memory: memory.as_ref().map(MemoryUse::from),
            swap: swap.as_ref().map(MemoryUse::from),
        }
    }
}

impl From<&Memory> for MemoryUse {
    fn from(m: &Memory) -> Self {
        let Memory {
            total_bytes,
            used_bytes,
            free_bytes,
            available_bytes,
        } = m;
        MemoryUse {
            total_bytes: *total_bytes,
            used_bytes: *used_bytes,
            free_bytes: *free_bytes,
            available_bytes: *available_bytes,
        }
    }
}

impl From<&Swap> for MemoryUse {
    fn from(s: &Swap) -> Self {
        let Swap {
            total_bytes,
            used_bytes,
            free_bytes,
        } = s;
        MemoryUse {
            total_bytes: *total_bytes,
            used_bytes: *used_bytes,
            free_bytes: *free_bytes,
            available_bytes: None,
        }
    }
}

fn object<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    doc.get(key).filter(|v| v.is_object())
}

pub fn parse(text: &str) -> Result<ParsedNodeStatus, ParseError> {
    let (doc, start) = read_doc(KIND, text)?;
    if !doc.is_object() {
        return Err(ParseError::new(
            KIND,
            start,
            "",
            "expected a JSON object (the node status)",
        ));
    }
    if ["uptime", "memory", "pveversion", "cpuinfo", "rootfs"]
        .iter()
        .all(|k| doc.get(k).is_none())
    {
        return Err(ParseError::new(
            KIND,
            start,
            "",
            "not a node status: none of uptime, memory, pveversion, cpuinfo, rootfs",
        ));
    }
    let cpuinfo = object(&doc, "cpuinfo");
    let loadavg = match doc.get("loadavg") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let boot = object(&doc, "boot-info");
    Ok(ParsedNodeStatus {
        cpu: f64_of(&doc, "cpu"),
        wait: f64_of(&doc, "wait"),
        cpus: cpuinfo.and_then(|c| u64_of(c, "cpus")),
        sockets: cpuinfo.and_then(|c| u64_of(c, "sockets")),
        cpu_model: cpuinfo.and_then(|c| str_of(c, "model")),
        loadavg,
        uptime: u64_of(&doc, "uptime"),
        memory: object(&doc, "memory").map(|m| Memory {
            total_bytes: u64_of(m, "total"),
            used_bytes: u64_of(m, "used"),
            free_bytes: u64_of(m, "free"),
            available_bytes: u64_of(m, "available"),
        }),
        swap: object(&doc, "swap").map(|s| Swap {
            total_bytes: u64_of(s, "total"),
            used_bytes: u64_of(s, "used"),
            free_bytes: u64_of(s, "free"),
        }),
        rootfs: object(&doc, "rootfs").map(|r| Rootfs {
            total_bytes: u64_of(r, "total"),
            used_bytes: u64_of(r, "used"),
            avail_bytes: u64_of(r, "avail"),
        }),
        kversion: str_of(&doc, "kversion"),
        pveversion: str_of(&doc, "pveversion"),
        boot_mode: boot.and_then(|b| str_of(b, "mode")),
        secureboot: boot.and_then(|b| bool_of(b, "secureboot")),
    })
}

/// The `node-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "node-status",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.node_status = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pve9_with_available_memory_and_string_loadavg() {
        let s = parse(r#"{"cpu":0,"cpuinfo":{"cpus":16,"sockets":1,"model":"AMD EPYC"},"loadavg":["0.52","0.61","0.70"],"memory":{"available":40000,"free":30000,"total":64000,"used":24000},"pveversion":"pve-manager/9.0.3/x","rootfs":{"avail":10,"free":12,"total":20,"used":8},"swap":{"free":0,"total":0,"used":0},"uptime":3600,"wait":0}"#).unwrap();
        assert_eq!(s.loadavg, vec![0.52, 0.61, 0.70]);
        assert_eq!(s.cpus, Some(16));
        assert_eq!(s.memory.clone().unwrap().available_bytes, Some(40000));
        assert_eq!(s.rootfs.unwrap().avail_bytes, Some(10));
        assert_eq!(s.swap.unwrap().total_bytes, Some(0));
        assert_eq!(s.cpu, Some(0.0));
    }

    #[test]
    fn pve8_has_no_available_and_missing_parts_are_null() {
        let s = parse(r#"{"memory":{"free":"1","total":"3","used":"2"},"uptime":"12.5"}"#).unwrap();
        let m = s.memory.unwrap();
        assert_eq!((m.used_bytes, m.available_bytes), (Some(2), None));
        assert_eq!(s.uptime, Some(12));
        assert!(s.swap.is_none() && s.rootfs.is_none() && s.loadavg.is_empty());
    }

    #[test]
    fn lists_and_other_objects_are_errors() {
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"data":1}"#).is_err());
        assert!(parse("hostname lookup 'x' failed").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn the_snapshot_never_keeps_a_figure_that_is_not_a_number() {
        let parsed = parse(r#"{"cpu":"NaN","loadavg":["0.52","inf","0.70"],"memory":{"free":1,"total":3,"used":2},"swap":{"free":1,"total":1,"used":0},"uptime":60,"wait":"-inf"}"#).unwrap();
        assert!(parsed.loadavg[1].is_infinite() && parsed.cpu.unwrap().is_nan());
        let kept = NodeStatus::from(&parsed);
        assert_eq!((kept.cpu, kept.wait), (None, None));
        assert!(kept.loadavg.is_empty());
        assert_eq!(kept.uptime, Some(60));
        assert_eq!(
            kept.memory.as_ref().and_then(MemoryUse::used_pct),
            Some(200.0 / 3.0)
        );
        let json = serde_json::to_string(&kept).unwrap();
        assert_eq!(serde_json::from_str::<NodeStatus>(&json).unwrap(), kept);
    }

    #[test]
    fn finite_figures_are_kept_and_swap_gets_no_available_memory() {
        let parsed = parse(r#"{"loadavg":["0.52","0.61","0.70"],"swap":{"free":1,"total":2,"used":1},"uptime":60}"#).unwrap();
        let kept = NodeStatus::from(&parsed);
        assert_eq!(kept.loadavg, vec![0.52, 0.61, 0.70]);
        assert_eq!(
            kept.swap,
            Some(MemoryUse {
                total_bytes: Some(2),
                used_bytes: Some(1),
                free_bytes: Some(1),
                available_bytes: None,
            })
        );
    }
}
