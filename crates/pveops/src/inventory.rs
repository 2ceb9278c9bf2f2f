//! Nodes and how to reach them: the TOML inventory, and the resolution of command-line targets
//! through it and the ssh client config into `Node`s.
//!
//! Precedence for every setting: the target as typed > command-line options > inventory node >
//! inventory `[defaults]` > ssh_config > built-in defaults (PRODUCT.md "Targets and connection").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::known_hosts::Policy;
use crate::ssh_config::{ClientConfig, expand_tilde, home};
use crate::target::{Target, host_port};

/// The inventory file (PRODUCT.md "Inventory file"). Unknown keys are errors.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    #[serde(default)]
    pub defaults: Settings,
    #[serde(default, rename = "node")]
    pub nodes: Vec<InventoryNode>,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// Connection settings that the inventory may give for all nodes or for one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub user: Option<String>,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub identity: Vec<String>,
    pub known_hosts: Option<String>,
    pub jump: Option<String>,
    pub host_keys: Option<Policy>,
}

/// One `[[node]]` of the inventory.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryNode {
    pub name: String,
    pub host: Option<String>,
    #[serde(flatten)]
    pub settings: Settings,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, crate::Error> {
        let text = crate::input::read_to_string(path, crate::input::MAX_CONFIG)
            .map_err(|e| crate::Error::io(path, "read the inventory", e))?;
        Self::parse(path, &text)
    }

    /// Parses inventory text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, crate::Error> {
        let inv: Inventory = toml::from_str(text).map_err(|e| {
            crate::Error::file(
                path,
                format!("invalid inventory: {}", one_line(&e.to_string())),
            )
        })?;
        let mut seen = std::collections::HashSet::new();
        for n in &inv.nodes {
            if n.name.trim().is_empty() {
                return Err(crate::Error::file(path, "a [[node]] has an empty name"));
            }
            if !seen.insert(n.name.as_str()) {
                return Err(crate::Error::file(
                    path,
                    format!("node `{}` is listed twice", n.name),
                ));
            }
        }
        for (group, members) in &inv.groups {
            if let Some(m) = members.iter().find(|m| !seen.contains(m.as_str())) {
                return Err(crate::Error::file(
                    path,
                    format!("group `{group}` names `{m}`, which is not a [[node]]"),
                ));
            }
        }
        Ok(inv)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Connection options from the command line; every field optional.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identities: Vec<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub host_keys: Option<Policy>,
    pub jump: Option<String>,
}

/// Which known_hosts files are read, and which one `accept-new` appends to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KnownHostsFiles {
    pub read: Vec<PathBuf>,
    pub append_to: PathBuf,
}

/// A node resolved into everything needed to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The name used in reports and `raw/<name>/`.
    pub name: String,
    /// The address or host name to connect to.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identities: Vec<PathBuf>,
    pub known_hosts: KnownHostsFiles,
    pub host_keys: Policy,
    pub jump: Option<Box<Node>>,
}

impl Node {
    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// Resolves command-line targets into nodes, expanding inventory groups and dropping repeats.
pub struct Resolver<'a> {
    pub inventory: &'a Inventory,
    pub ssh_config: &'a ClientConfig,
    pub overrides: &'a Overrides,
}

impl Resolver<'_> {
    pub fn resolve_all(&self, targets: &[String]) -> Result<Vec<Node>, crate::Error> {
        let mut nodes: Vec<Node> = Vec::new();
        for t in targets {
            for node in self.resolve(t)? {
                if !nodes.iter().any(|n| n.name == node.name) {
                    nodes.push(node);
                }
            }
        }
        Ok(nodes)
    }

    /// One target: an inventory group, an inventory node, or `[user@]host[:port]`.
    pub fn resolve(&self, text: &str) -> Result<Vec<Node>, crate::Error> {
        if let Some(members) = self.inventory.groups.get(text) {
            return members.iter().map(|m| self.inventory_node(m)).collect();
        }
        if self.inventory.nodes.iter().any(|n| n.name == text) {
            return Ok(vec![self.inventory_node(text)?]);
        }
        let target = Target::parse(text).map_err(crate::Error::Usage)?;
        Ok(vec![self.build(
            None,
            &target,
            &Settings::default(),
            None,
            0,
        )?])
    }

    fn inventory_node(&self, name: &str) -> Result<Node, crate::Error> {
        let Some(n) = self.inventory.nodes.iter().find(|n| n.name == name) else {
            return Err(crate::Error::Usage(format!(
                "`{name}` is not a node of the inventory"
            )));
        };
        let host = n.host.clone().unwrap_or_else(|| n.name.clone());
        let target = Target::parse(&host).map_err(crate::Error::Usage)?;
        self.build(Some(&n.name), &target, &n.settings, None, 0)
    }

    /// `chain` is set for a jump host: the hops still before it (or none), which replace
    /// every other jump setting except the jump host's own ssh_config ProxyJump.
    fn build(
        &self,
        name: Option<&str>,
        target: &Target,
        node: &Settings,
        chain: Option<Option<String>>,
        depth: u8,
    ) -> Result<Node, crate::Error> {
        let defaults = &self.inventory.defaults;
        let cli = self.overrides;
        let cfg = self.ssh_config.query(&target.host);
        let host = cfg.host_name.clone().unwrap_or_else(|| target.host.clone());
        let port = target
            .port
            .or(cli.port)
            .or(node.port)
            .or(defaults.port)
            .or(cfg.port)
            .unwrap_or(22);
        let user = target
            .user
            .clone()
            .or(cli.user.clone())
            .or(node.user.clone())
            .or(defaults.user.clone())
            .or(cfg.user.clone())
            .unwrap_or_else(|| "root".into());
        let name = match name {
            Some(n) => n.to_string(),
            None if cfg.host_name.is_some() || port == 22 => target.host.clone(),
            None => host_port(&target.host, port),
        };
        let mut identities: Vec<PathBuf> = cli.identities.clone();
        for list in [&node.identity, &defaults.identity] {
            identities.extend(list.iter().map(|s| expand_tilde(s)));
        }
        identities.extend(cfg.identities.iter().cloned());
        if identities.is_empty() {
            identities = default_identities();
        }
        dedup(&mut identities);
        let known_hosts = known_hosts_files(cli, node, defaults, &cfg);
        let host_keys = cli
            .host_keys
            .or(node.host_keys)
            .or(defaults.host_keys)
            .or(cfg.strict_host_key_checking)
            .unwrap_or(Policy::Strict);
        let jump_spec = match chain {
            Some(before) => before.or(cfg.proxy_jump.clone()),
            None => cli
                .jump
                .clone()
                .or(node.jump.clone())
                .or(defaults.jump.clone())
                .or(cfg.proxy_jump.clone()),
        }
        .filter(|j| !j.eq_ignore_ascii_case("none"));
        let jump = match jump_spec {
            None => None,
            Some(_) if depth >= 4 => {
                return Err(crate::Error::Usage(format!(
                    "jump hosts for `{}` nest more than 4 deep; is there a ProxyJump loop?",
                    target.host
                )));
            }
            Some(spec) => Some(Box::new(self.jump_node(&spec, depth)?)),
        };
        Ok(Node {
            name,
            host,
            port,
            user,
            identities,
            known_hosts,
            host_keys,
            jump,
        })
    }

    /// A jump spec `[user@]host[:port]`, possibly a comma chain (`a,b`: through a, then b).
    fn jump_node(&self, spec: &str, depth: u8) -> Result<Node, crate::Error> {
        let hops: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let Some((last, before)) = hops.split_last() else {
            return Err(crate::Error::Usage(format!("empty jump host `{spec}`")));
        };
        let target =
            Target::parse(last).map_err(|e| crate::Error::Usage(format!("jump host: {e}")))?;
        // The jump host takes only the generic settings, never the target's own port or user.
        let jump_overrides = Overrides {
            user: None,
            port: None,
            jump: None,
            ..self.overrides.clone()
        };
        let resolver = Resolver {
            overrides: &jump_overrides,
            ..*self
        };
        let chain = Some((!before.is_empty()).then(|| before.join(",")));
        resolver.build(Some(last), &target, &Settings::default(), chain, depth + 1)
    }
}

fn known_hosts_files(
    cli: &Overrides,
    node: &Settings,
    defaults: &Settings,
    cfg: &crate::ssh_config::HostConfig,
) -> KnownHostsFiles {
    if let Some(f) = cli
        .known_hosts
        .clone()
        .or(node.known_hosts.as_deref().map(expand_tilde))
        .or(defaults.known_hosts.as_deref().map(expand_tilde))
    {
        return KnownHostsFiles {
            read: vec![f.clone()],
            append_to: f,
        };
    }
    let user = if cfg.user_known_hosts.is_empty() {
        vec![home().unwrap_or_default().join(".ssh/known_hosts")]
    } else {
        cfg.user_known_hosts.clone()
    };
    let global = if cfg.global_known_hosts.is_empty() {
        vec![PathBuf::from("/etc/ssh/ssh_known_hosts")]
    } else {
        cfg.global_known_hosts.clone()
    };
    let append_to = user[0].clone();
    KnownHostsFiles {
        read: user.into_iter().chain(global).collect(),
        append_to,
    }
}

/// `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`: those that exist (as OpenSSH tries them).
fn default_identities() -> Vec<PathBuf> {
    let Some(h) = home() else { return Vec::new() };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| h.join(".ssh").join(k))
        .filter(|p| p.exists())
        .collect()
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(text: &str) -> Inventory {
        Inventory::parse(Path::new("inv.toml"), text).unwrap()
    }

    fn resolve(inv: &Inventory, cfg: &str, o: &Overrides, t: &str) -> Vec<Node> {
        let cfg = ClientConfig::parse(Path::new("cfg"), cfg).unwrap();
        Resolver {
            inventory: inv,
            ssh_config: &cfg,
            overrides: o,
        }
        .resolve_all(&[t.to_string()])
        .unwrap()
    }

    const INV: &str = r#"
[defaults]
user = "ops"
identity = ["/keys/a"]
known_hosts = "/kh/inv"
jump = "admin@bastion:2200"

[[node]]
name = "pve1"
host = "10.0.0.11"
port = 2201

[[node]]
name = "pve2"
host = "alias2"
user = "root"

[groups]
prod = ["pve1", "pve2"]
"#;

    #[test]
    fn groups_expand_and_settings_stack() {
        let i = inv(INV);
        let nodes = resolve(
            &i,
            "Host alias2\n HostName 10.0.0.12\n Port 2202\n User nobody\n",
            &Overrides::default(),
            "prod",
        );
        assert_eq!(nodes.len(), 2);
        let (a, b) = (&nodes[0], &nodes[1]);
        assert_eq!(
            (a.name.as_str(), a.host.as_str(), a.port, a.user.as_str()),
            ("pve1", "10.0.0.11", 2201, "ops")
        );
        assert_eq!(
            (b.name.as_str(), b.host.as_str(), b.port, b.user.as_str()),
            ("pve2", "10.0.0.12", 2202, "root")
        );
        assert_eq!(a.identities, vec![PathBuf::from("/keys/a")]);
        assert_eq!(a.known_hosts.read, vec![PathBuf::from("/kh/inv")]);
        let j = a.jump.as_ref().unwrap();
        assert_eq!(
            (j.host.as_str(), j.port, j.user.as_str()),
            ("bastion", 2200, "admin")
        );
        assert!(j.jump.is_none());
    }

    #[test]
    fn command_line_beats_inventory_and_target_beats_all() {
        let i = inv(INV);
        let o = Overrides {
            user: Some("cli".into()),
            port: Some(3000),
            ..Default::default()
        };
        let n = &resolve(&i, "", &o, "pve1")[0];
        assert_eq!((n.user.as_str(), n.port), ("cli", 3000));
        let n = &resolve(&i, "", &o, "me@10.9.9.9:4000")[0];
        assert_eq!(
            (n.user.as_str(), n.port, n.name.as_str()),
            ("me", 4000, "10.9.9.9:4000")
        );
    }

    #[test]
    fn plain_target_names() {
        let i = Inventory::default();
        let o = Overrides::default();
        assert_eq!(resolve(&i, "", &o, "10.0.0.1")[0].name, "10.0.0.1");
        assert_eq!(resolve(&i, "", &o, "10.0.0.1:22")[0].name, "10.0.0.1");
        assert_eq!(
            resolve(&i, "", &o, "[fd00::1]:2222")[0].name,
            "[fd00::1]:2222"
        );
        let n = &resolve(
            &i,
            "Host pveA\n HostName 10.1.1.1\n Port 2222\n",
            &o,
            "pveA",
        )[0];
        assert_eq!(
            (n.name.as_str(), n.host.as_str(), n.port),
            ("pveA", "10.1.1.1", 2222)
        );
        assert_eq!(
            n.known_hosts.read.last().unwrap(),
            &PathBuf::from("/etc/ssh/ssh_known_hosts")
        );
        assert_eq!(n.host_keys, Policy::Strict);
    }

    #[test]
    fn bad_inventories_are_one_clear_error() {
        for (text, want) in [
            (
                "[[node]]\nname = \"a\"\nhots = \"x\"\n",
                "unknown field `hots`",
            ),
            ("[[node]]\nname = \"a\"\nport = \"x\"\n", "invalid type"),
            (
                "[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n",
                "listed twice",
            ),
            ("[groups]\ng = [\"zz\"]\n", "not a [[node]]"),
        ] {
            let e = Inventory::parse(Path::new("inv.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.starts_with("inv.toml: "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
