//! `pvesh get /cluster/ha/rules --output-format json` (PVE ≥ 9.0): HA node-affinity and
//! resource-affinity rules.
//!
//! pve-ha-manager `src/PVE/API2/HA/Rules.pm` (`index`, `$get_api_ha_rule`) returns each rule
//! of `/etc/pve/ha/rules.cfg` with its id as `rule`, `type`, `resources` encoded as
//! `vm:100,ct:101` (sorted, `PVE::HA::Rules::encode_value`) and, for node affinity, `nodes` as
//! `pve1:2,pve2` (a priority after the colon, `NodeAffinity.pm` `encode_plugin_value`).
//! Defaults are filled only where they are truthy (`set_rule_defaults`), so `strict` is absent
//! on a non-strict rule; values read from the file may come as strings (`"1"`). A rule is out of
//! force when it carries `disable` (`foreach_rule`'s `exclude_disabled_rules`) or `errors` (the
//! API's feasibility check; the CRM drops such rules when it compiles them).
//!
//! What the CRM does with them (`PVE::HA::Manager`, `select_service_node`): a resource under a
//! **strict** node-affinity rule may run only on the rule's nodes, and one moved elsewhere is
//! moved back; a negative resource-affinity rule keeps its resources on different nodes, a
//! positive one together. PVE 8 expressed node affinity as HA groups (kinds `ha-groups` and
//! `ha-resources`); [`HaRules::from_groups`] reads them as the node-affinity rules PVE 9's
//! migration makes of them.

use serde::Serialize;
use serde_json::Value;

use super::ParseError;
use super::pvesh::{bool_of, read_json, str_of};

pub const KIND: &str = "ha-rules";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /cluster/ha/rules --output-format json: HA node/resource-affinity rules (PVE 9)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaRules {
    pub rules: Vec<HaRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HaRule {
    pub rule: String,
    /// `node-affinity` or `resource-affinity` (other types are kept, and bind nothing here).
    #[serde(rename = "type")]
    pub kind: String,
    /// HA resource ids (`vm:100`, `ct:101`).
    pub resources: Vec<String>,
    /// Node-affinity nodes, each with its priority (0 when none is given).
    pub nodes: Vec<RuleNode>,
    /// Node affinity: the resources may run only on `nodes`.
    pub strict: bool,
    /// Resource affinity: `positive` (together) or `negative` (apart).
    pub affinity: Option<String>,
    /// False when the rule is disabled or PVE reports errors for it: the CRM ignores it.
    pub enabled: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleNode {
    pub node: String,
    pub priority: u64,
}

impl RuleNode {
    /// One `node[:priority]` entry of a `nodes` list.
    pub(super) fn from_entry(n: String) -> RuleNode {
        match n.split_once(':') {
            Some((node, prio)) => RuleNode {
                node: node.to_string(),
                priority: prio.trim().parse().unwrap_or(0),
            },
            None => RuleNode {
                node: n,
                priority: 0,
            },
        }
    }
}

/// A list value as `PVE::Tools::split_list` reads it.
pub(super) fn split_list(v: &Value, key: &str) -> Vec<String> {
    str_of(v, key)
        .map(|s| {
            // PVE::Tools::split_list splits on commas, semicolons and whitespace.
            s.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse(text: &str) -> Result<HaRules, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut rules = Vec::new();
    for item in &items {
        let (Some(rule), Some(kind)) = (str_of(item, "rule"), str_of(item, "type")) else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a rule has no \"rule\" id or no \"type\"",
            ));
        };
        let nodes = split_list(item, "nodes")
            .into_iter()
            .map(RuleNode::from_entry)
            .collect();
        // `disable` as a bare flag in rules.cfg has an empty value; `disable 0` is read as
        // enabled here (the stricter reading: an enabled rule only narrows the targets).
        let disabled = match item.get("disable") {
            None => false,
            Some(Value::Null) => true,
            Some(Value::String(s)) if s.trim().is_empty() => true,
            Some(_) => bool_of(item, "disable").unwrap_or(true),
        };
        let errors = item
            .get("errors")
            .is_some_and(|e| e.as_object().is_some_and(|o| !o.is_empty()));
        rules.push(HaRule {
            rule,
            kind,
            resources: split_list(item, "resources"),
            nodes,
            strict: bool_of(item, "strict").unwrap_or(false),
            affinity: str_of(item, "affinity"),
            enabled: !disabled && !errors,
            comment: str_of(item, "comment"),
        });
    }
    Ok(HaRules { rules })
}

impl HaRules {
    /// PVE ≤ 8's HA groups as node-affinity rules, as pve-ha-manager's
    /// `PVE::HA::Groups::migrate_groups_to_rules` converts them on the upgrade to 9: one rule
    /// per group that has resources, id `ha-group-<group>`, `strict` = `restricted`.
    pub fn from_groups(
        groups: &super::ha_groups::HaGroups,
        resources: &super::ha_resources::HaResources,
    ) -> HaRules {
        let rules = groups
            .groups
            .iter()
            .filter_map(|g| {
                let mut members: Vec<String> = resources
                    .resources
                    .iter()
                    .filter(|r| r.group.as_deref() == Some(g.group.as_str()))
                    .map(|r| r.sid.clone())
                    .collect();
                members.sort();
                (!members.is_empty()).then(|| HaRule {
                    rule: format!("ha-group-{}", g.group),
                    kind: "node-affinity".into(),
                    resources: members,
                    nodes: g.nodes.clone(),
                    strict: g.restricted,
                    affinity: None,
                    enabled: true,
                    comment: g.comment.clone(),
                })
            })
            .collect();
        HaRules { rules }
    }

    /// The nodes a strict, enabled node-affinity rule confines `sid` (`vm:100`) to, with the
    /// rule's id; `None` when no such rule names it.
    pub fn strict_nodes(&self, sid: &str) -> Option<(&str, Vec<&str>)> {
        self.rules
            .iter()
            .filter(|r| r.enabled && r.strict && r.kind == "node-affinity")
            .find(|r| r.resources.iter().any(|x| x == sid))
            .map(|r| {
                (
                    r.rule.as_str(),
                    r.nodes.iter().map(|n| n.node.as_str()).collect(),
                )
            })
    }

    /// The resources an enabled negative resource-affinity rule keeps apart from `sid`, each
    /// with the rule's id.
    pub fn kept_apart(&self, sid: &str) -> Vec<(&str, &str)> {
        self.rules
            .iter()
            .filter(|r| {
                r.enabled
                    && r.kind == "resource-affinity"
                    && r.affinity.as_deref() == Some("negative")
                    && r.resources.iter().any(|x| x == sid)
            })
            .flat_map(|r| {
                r.resources
                    .iter()
                    .filter(|x| x.as_str() != sid)
                    .map(|x| (r.rule.as_str(), x.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn node_and_resource_affinity() {
        let r = parse(
            r#"[{"digest":"0b6f","nodes":"pve1:2,pve2","order":1,"resources":"vm:100,vm:101","rule":"keep-db","strict":1,"type":"node-affinity"},{"affinity":"negative","digest":"0b6f","order":2,"resources":"vm:100,vm:102","rule":"apart","type":"resource-affinity"},{"digest":"0b6f","disable":"","nodes":"pve3","order":3,"resources":"vm:103","rule":"off","strict":"1","type":"node-affinity"}]"#,
        )
        .unwrap();
        assert_eq!(
            r.strict_nodes("vm:101"),
            Some(("keep-db", vec!["pve1", "pve2"]))
        );
        assert_eq!(r.rules[0].nodes[0].priority, 2);
        assert_eq!(r.kept_apart("vm:100"), vec![("apart", "vm:102")]);
        assert_eq!(r.strict_nodes("vm:103"), None, "disabled");
    }

    #[test]
    fn non_strict_rules_do_not_confine() {
        let r = parse(
            r#"[{"nodes":"pve1","resources":"vm:100","rule":"pref","type":"node-affinity"}]"#,
        )
        .unwrap();
        assert!(!r.rules[0].strict);
        assert_eq!(r.strict_nodes("vm:100"), None);
    }

    #[test]
    fn empty_and_garbage() {
        assert!(parse("[]").unwrap().rules.is_empty());
        assert!(parse("{").is_err());
        assert!(parse(r#"[{"type":"node-affinity"}]"#).is_err());
    }
}
