//! `pvesh get /nodes/NODE/rrddata --timeframe hour --cf AVERAGE --output-format json` (kind
//! `node-rrddata`): the node's CPU and IO wait as pvestatd recorded them, which
//! `/nodes/N/status` cannot give through pvesh (its `cpu` and `wait` are always 0 there).
//!
//! pve-manager `PVE/API2/Nodes.pm` `rrddata` (commit 14a22df3) returns pve-cluster
//! `PVE::RRD::create_rrd_data("pve-node-9.0/$node", …)` (`src/PVE/RRD.pm`; before PVE 9
//! `pve2-node/$node`): a list of rows, oldest first, `time` (epoch of the step's end) plus every
//! data source that has a value in that step; unknown values are left out, so a step without
//! data is a row with only `time`. The data sources (pve-cluster `src/pmxcfs/status.c`
//! `rrd_def_node_pve9_0`, written by pve-manager `PVE/Service/pvestatd.pm`
//! `update_node_status`): `loadavg` (1 minute), `maxcpu` (logical CPUs), `cpu` and `iowait`
//! (fractions 0..1 from `read_proc_stat`), `memtotal`, `memused`, `swaptotal`, `swapused`,
//! `roottotal`, `rootused` (bytes), `netin`, `netout` (bytes/s); since PVE 9 also
//! `memavailable`, `arcsize` and `pressure{cpusome,iosome,iofull,memorysome,memoryfull}`.
//! Averaged values are fractional (`17179869184.5`) and printed by Perl (`%.15g`).
//!
//! Rows: `hour` is 70 steps of 60 s on PVE 8 (`[60, 70]`), 60 on PVE 9 (`[60, 60]`); the
//! newest step may not be consolidated yet (right after a step boundary) and is then a row
//! with only `time`: PVE 8 returns it, pve-cluster ≥ 9.0.7 drops it (commit 6126f5d "fix
//! #6615"). Rows with only `time` also precede a node's first data (a new RRD file) and follow
//! an outage. `localhost` is **not** resolved by this handler (no `proxyto`): the path must
//! name the node (`/nodes/$(hostname)/rrddata`), else RRDs fails with `RRD error: …`.
//!
//! `latest` is the newest row (by `time`) that has `cpu`; `cpu_avg` and `iowait_avg` are the
//! means over the rows that have the value. Byte values are truncated to integers.
//! Also what the snapshot keeps of it: [`NodeLoad`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::common::finite;
use super::pvesh::{f64_of, read_json, u64_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "node-rrddata";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/NODE/rrddata --timeframe hour --output-format json: the node's CPU and IO wait from pvestatd's RRD (latest, means)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    /// Epoch of the step's end.
    pub time: i64,
    /// CPU used, fraction 0..1 of all logical CPUs, averaged over the step.
    pub cpu: f64,
    /// IO wait, fraction 0..1.
    pub iowait: Option<f64>,
    /// 1-minute load average.
    pub loadavg: Option<f64>,
    /// Logical CPUs.
    pub maxcpu: Option<f64>,
    pub memused_bytes: Option<u64>,
    pub memtotal_bytes: Option<u64>,
    pub swapused_bytes: Option<u64>,
    pub swaptotal_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeRrdData {
    /// Rows read, empty ones included.
    pub rows: usize,
    /// The newest row with `cpu`; null when no row has data.
    pub latest: Option<Latest>,
    /// Mean `cpu` over the rows that have it.
    pub cpu_avg: Option<f64>,
    /// Mean `iowait` over the rows that have it.
    pub iowait_avg: Option<f64>,
}

/// The node's CPU and IO wait as pvestatd recorded them (kind `node-rrddata`, the last hour):
/// the newest minute with data, and the hour's mean.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeLoad {
    /// Unix time of the newest row with data.
    pub time: Option<i64>,
    /// CPU in use, 0–1, in the newest minute.
    pub cpu: Option<f64>,
    /// IO wait, 0–1, in the newest minute.
    pub iowait: Option<f64>,
    pub cpu_avg: Option<f64>,
    pub iowait_avg: Option<f64>,
}

impl From<&NodeRrdData> for NodeLoad {
    fn from(r: &NodeRrdData) -> Self {
        let NodeRrdData {
            rows: _,
            latest,
            cpu_avg,
            iowait_avg,
        } = r;
        let (time, cpu, iowait) = match latest {
            Some(Latest {
                time,
                cpu,
                iowait,
                loadavg: _,
                maxcpu: _,
                memused_bytes: _,
                memtotal_bytes: _,
                swapused_bytes: _,
                swaptotal_bytes: _,
            }) => (Some(*time), Some(*cpu), *iowait),
            None => (None, None, None),
        };
        NodeLoad {
            time,
            cpu: finite(cpu),
            iowait: finite(iowait),
            cpu_avg: finite(*cpu_avg),
            iowait_avg: finite(*iowait_avg),
        }
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

pub fn parse(text: &str) -> Result<NodeRrdData, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut latest: Option<Latest> = None;
    let mut cpus = Vec::new();
    let mut waits = Vec::new();
    for item in &items {
        if !item.is_object() {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "expected a list of RRD rows (objects)",
            ));
        }
        let Some(time) = item.get("time").and_then(|t| match t {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }) else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "not RRD data: a row without time",
            ));
        };
        let iowait = f64_of(item, "iowait");
        if let Some(w) = iowait {
            waits.push(w);
        }
        let Some(cpu) = f64_of(item, "cpu") else {
            continue;
        };
        cpus.push(cpu);
        if latest.as_ref().is_none_or(|l| time >= l.time) {
            latest = Some(Latest {
                time,
                cpu,
                iowait,
                loadavg: f64_of(item, "loadavg"),
                maxcpu: f64_of(item, "maxcpu"),
                memused_bytes: u64_of(item, "memused"),
                memtotal_bytes: u64_of(item, "memtotal"),
                swapused_bytes: u64_of(item, "swapused"),
                swaptotal_bytes: u64_of(item, "swaptotal"),
            });
        }
    }
    Ok(NodeRrdData {
        rows: items.len(),
        latest,
        cpu_avg: mean(&cpus),
        iowait_avg: mean(&waits),
    })
}

/// The `node-rrddata` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "node-rrddata",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.load = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn newest_row_with_data_and_means_skip_empty_rows() {
        let d = parse(r#"[{"time":60},{"cpu":0.5,"iowait":0.1,"loadavg":4,"maxcpu":8,"memtotal":100.7,"memused":"50","time":120},{"cpu":0.25,"iowait":0.3,"time":180},{"time":240}]"#).unwrap();
        assert_eq!(d.rows, 4);
        let l = d.latest.unwrap();
        assert_eq!((l.time, l.cpu, l.iowait), (180, 0.25, Some(0.3)));
        assert_eq!((l.loadavg, l.memtotal_bytes), (None, None));
        assert_eq!(d.cpu_avg, Some(0.375));
        assert!((d.iowait_avg.unwrap() - 0.2).abs() < 1e-12);
        let d = parse(r#"[{"cpu":0.5,"iowait":0.1,"loadavg":4,"maxcpu":8,"memtotal":100.7,"memused":"50","time":120}]"#).unwrap();
        let l = d.latest.unwrap();
        assert_eq!(
            (l.memtotal_bytes, l.memused_bytes, l.maxcpu),
            (Some(100), Some(50), Some(8.0))
        );
    }

    #[test]
    fn no_data_is_null_and_other_documents_are_errors() {
        let d = parse("[]").unwrap();
        assert_eq!((d.rows, d.latest, d.cpu_avg), (0, None, None));
        let d = parse(r#"[{"time":1},{"time":2}]"#).unwrap();
        assert_eq!((d.rows, d.latest, d.iowait_avg), (2, None, None));
        assert!(parse(r#"[{"upid":"x"}]"#).is_err());
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"cpu":0}"#).is_err());
        assert!(parse("RRD error: opening '/var/lib/rrdcached/db/pve-node-9.0/localhost': No such file or directory").is_err());
        assert!(parse("").is_err());
    }
}
