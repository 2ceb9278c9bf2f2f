//! `pvesh get /cluster/options --output-format json`: the datacenter options
//! (`/etc/pve/datacenter.cfg`), of which pveops reads `max_workers`.
//!
//! pve-manager `PVE/API2/Cluster.pm` (`get_options`) returns the file as pve-cluster
//! `src/PVE/DataCenterConfig.pm` `parse_datacenter_config` reads it: every key of the file, plus
//! `description` (the comment lines, `""` when none) and `mac_prefix` (`BC:24:11` when unset),
//! and `allowed-tags`. pve-common `PVE::JSONSchema::parse_config` keeps a value as the file's
//! text, so an integer such as `max_workers` usually arrives as a string (`"4"`), and a number
//! is accepted too. `max_workers` ("how many workers (per node) are maximal started on actions
//! like 'stopall VMs' or task from the ha-manager", minimum 1) is what PVE's bulk migration
//! (`PVE/API2/Nodes.pm` `migrateall`, `get_max_workers`) runs at once when not told otherwise.

use serde::Serialize;

use super::ParseError;
use super::pvesh::{read_doc, u64_of};

pub const KIND: &str = "cluster-options";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /cluster/options --output-format json: datacenter.cfg options (max_workers)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterOptions {
    /// `max_workers` of datacenter.cfg; `None` when unset (or not a positive integer, which
    /// parse_config drops with a warning too).
    pub max_workers: Option<u64>,
    /// The keys the document has, sorted (what else datacenter.cfg sets).
    pub keys: Vec<String>,
}

pub fn parse(text: &str) -> Result<ClusterOptions, ParseError> {
    let (doc, start) = read_doc(KIND, text)?;
    let serde_json::Value::Object(map) = &doc else {
        return Err(ParseError::new(
            KIND,
            start,
            "",
            "expected a JSON object (the datacenter options)",
        ));
    };
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    Ok(ClusterOptions {
        max_workers: u64_of(&doc, "max_workers").filter(|n| *n >= 1),
        keys,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn max_workers_as_string_number_or_absent() {
        let text =
            r#"{"allowed-tags":[],"description":"","mac_prefix":"BC:24:11","max_workers":"4"}"#;
        assert_eq!(parse(text).unwrap().max_workers, Some(4));
        assert_eq!(parse(r#"{"max_workers":2}"#).unwrap().max_workers, Some(2));
        let none = parse(r#"{"allowed-tags":[],"description":"","mac_prefix":"BC:24:11"}"#);
        assert_eq!(none.unwrap().max_workers, None);
        assert_eq!(parse(r#"{"max_workers":"0"}"#).unwrap().max_workers, None);
    }

    #[test]
    fn a_list_or_garbage_is_an_error() {
        assert!(parse("[]").is_err());
        assert!(parse("no such file\n").is_err());
        assert!(parse("").is_err());
    }
}
