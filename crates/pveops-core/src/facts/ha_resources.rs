//! `pvesh get /cluster/ha/resources --output-format json`: the HA resources with the options
//! set for them, for PVE ≤ 8 the `group` each is in.
//!
//! pve-ha-manager `src/PVE/API2/HA/Resources.pm` (`index`, `$api_copy_config`): each resource
//! of `/etc/pve/ha/resources.cfg` with its id as `sid` (`vm:100`, `ct:101`), `type`, and only
//! the options set in the file (`state`, `group`, `max_restart`, `max_relocate`, `comment`,
//! from PVE 9 `failback`); a resource naming a group that does not exist carries
//! `errors.group` (4.0.x).

use serde::Serialize;

use super::ParseError;
use super::pvesh::{read_json, str_of};

pub const KIND: &str = "ha-resources";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /cluster/ha/resources --output-format json: HA resources with state and group",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaResources {
    pub resources: Vec<HaResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaResource {
    pub sid: String,
    /// `vm` or `ct`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The requested state (`started`, `stopped`, `disabled`, `ignored`); absent: `started`.
    pub state: Option<String>,
    /// The HA group (PVE ≤ 8), when one is set and exists.
    pub group: Option<String>,
}

pub fn parse(text: &str) -> Result<HaResources, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut resources = Vec::new();
    for item in &items {
        let Some(sid) = str_of(item, "sid") else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a resource has no \"sid\"",
            ));
        };
        let missing_group = item.get("errors").and_then(|e| e.get("group")).is_some();
        resources.push(HaResource {
            sid,
            kind: str_of(item, "type"),
            state: str_of(item, "state"),
            group: str_of(item, "group").filter(|_| !missing_group),
        });
    }
    Ok(HaResources { resources })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_errors() {
        let r = parse(r#"[{"digest":"d","group":"san","sid":"vm:100","state":"started","type":"vm"},{"digest":"d","group":"gone","sid":"ct:101","type":"ct","errors":{"group":"group 'gone' does not exist"}}]"#).unwrap();
        assert_eq!(r.resources[0].group.as_deref(), Some("san"));
        assert_eq!(r.resources[1].group, None);
        assert!(parse(r#"[{"type":"vm"}]"#).is_err());
    }
}
