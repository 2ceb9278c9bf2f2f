//! `pvesh get /cluster/ha/groups --output-format json` (PVE ≤ 8): HA groups, the older form of
//! PVE 9's node-affinity rules.
//!
//! pve-ha-manager 4.0.x `src/PVE/API2/HA/Groups.pm` (`index`, `$api_copy_config`) returns each
//! group of `/etc/pve/ha/groups.cfg` with its id as `group`, `type` `group`, `nodes` encoded as
//! `pve1:2,pve2` (`PVE::HA::Groups->encode_value`) and only the options set in the file
//! (`restricted`, `nofailback`, `comment`; booleans as `1`/`0`, both optional with default 0).
//! What the CRM does with them (`PVE::HA::Manager` `select_service_node`): a resource of a
//! **restricted** group runs only on the group's nodes and one moved elsewhere is moved back,
//! as PVE 9 does for a strict node-affinity rule (`PVE::HA::Groups::migrate_groups_to_rules`
//! turns `restricted` into `strict`). Which resource is in which group is in
//! `/cluster/ha/resources` (kind `ha-resources`).

use serde::Serialize;

use super::ParseError;
use super::ha_rules::{RuleNode, split_list};
use super::pvesh::{bool_of, read_json, str_of};

pub const KIND: &str = "ha-groups";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /cluster/ha/groups --output-format json: HA groups, restricted or not (PVE 8)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaGroups {
    pub groups: Vec<HaGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaGroup {
    pub group: String,
    /// The group's nodes, each with its priority (0 when none is given).
    pub nodes: Vec<RuleNode>,
    /// The resources may run only on `nodes`.
    pub restricted: bool,
    /// The CRM does not move a resource back to a higher-priority node that comes online.
    pub nofailback: bool,
    pub comment: Option<String>,
}

pub fn parse(text: &str) -> Result<HaGroups, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut groups = Vec::new();
    for item in &items {
        let Some(group) = str_of(item, "group") else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a group has no \"group\" id",
            ));
        };
        groups.push(HaGroup {
            group,
            nodes: split_list(item, "nodes")
                .into_iter()
                .map(RuleNode::from_entry)
                .collect(),
            restricted: bool_of(item, "restricted").unwrap_or(false),
            nofailback: bool_of(item, "nofailback").unwrap_or(false),
            comment: str_of(item, "comment"),
        });
    }
    Ok(HaGroups { groups })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn restricted_and_preferred() {
        let g = parse(r#"[{"digest":"d","group":"san","nodes":"pve1:2,pve2","restricted":1,"type":"group"},{"digest":"d","group":"pref","nodes":"pve3","type":"group"}]"#).unwrap();
        assert!(g.groups[0].restricted);
        assert_eq!(g.groups[0].nodes[0].priority, 2);
        assert_eq!(g.groups[0].nodes[1].node, "pve2");
        assert!(!g.groups[1].restricted);
        assert!(parse(r#"[{"nodes":"pve1"}]"#).is_err());
        assert!(parse("[]").unwrap().groups.is_empty());
    }
}
