//! The OpenSSH client config (`~/.ssh/config`, or `-F FILE`), read with ssh2-config.
//!
//! ssh2-config cannot evaluate `Match` and would attach the lines under it to the previous
//! `Host` block (CRATES.md §4), so `Match` blocks are cut out before parsing, with a warning.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

use crate::known_hosts::Policy;

/// What the config says about one host; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identities: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    pub user_known_hosts: Vec<PathBuf>,
    pub global_known_hosts: Vec<PathBuf>,
    pub strict_host_key_checking: Option<Policy>,
}

/// A parsed client config.
#[derive(Debug, Default)]
pub struct ClientConfig {
    config: Option<SshConfig>,
}

impl ClientConfig {
    /// Reads `path` (an error if it is missing), or the default `~/.ssh/config` when it exists.
    pub fn load(path: Option<&Path>) -> Result<ClientConfig, crate::Error> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match home() {
                Some(h) => (h.join(".ssh/config"), false),
                None => return Ok(ClientConfig::default()),
            },
        };
        let text = match crate::input::read_to_string(&path, crate::input::MAX_CONFIG) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientConfig::default());
            }
            Err(e) => return Err(crate::Error::io(&path, "read the ssh config", e)),
        };
        Self::parse(&path, &text)
    }

    /// Parses config text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<ClientConfig, crate::Error> {
        let (text, cut) = without_match_blocks(text);
        for line in cut {
            tracing::warn!(
                "{}:{line}: `Match` blocks are not evaluated by pveops and were ignored; use `Host` blocks or the inventory",
                path.display()
            );
        }
        let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
        let mut reader = BufReader::new(text.as_bytes());
        let mut config = SshConfig::default();
        if let Some(h) = home() {
            config = config.home_dir(h);
        }
        let config = config
            .parse(&mut reader, rules)
            .map_err(|e| crate::Error::file(path, format!("cannot parse the ssh config: {e}")))?;
        Ok(ClientConfig {
            config: Some(config),
        })
    }

    /// The settings for `alias`; empty when there is no config.
    pub fn query(&self, alias: &str) -> HostConfig {
        let Some(config) = &self.config else {
            return HostConfig::default();
        };
        let p = config.query(alias);
        let field = |name: &str| {
            p.unsupported_fields
                .get(name)
                .and_then(|v| v.first())
                .cloned()
        };
        let paths = |name: &str| {
            p.unsupported_fields
                .get(name)
                .map(|v| {
                    v.iter()
                        .filter(|s| s.as_str() != "none")
                        .map(|s| expand_tilde(s))
                        .collect()
                })
                .unwrap_or_default()
        };
        HostConfig {
            host_name: p.host_name.clone(),
            user: p.user.clone(),
            port: p.port,
            identities: p.identity_file.clone().unwrap_or_default(),
            proxy_jump: p
                .proxy_jump
                .as_ref()
                .map(|v| v.join(","))
                .filter(|j| !j.is_empty() && !j.eq_ignore_ascii_case("none")),
            user_known_hosts: paths("userknownhostsfile"),
            global_known_hosts: paths("globalknownhostsfile"),
            strict_host_key_checking: field("stricthostkeychecking").map(|v| policy_of(&v)),
        }
    }
}

/// OpenSSH's `StrictHostKeyChecking` mapped onto our two policies: there is no "off", so `no`
/// and `off` become `accept-new` (a changed key is still refused).
fn policy_of(value: &str) -> Policy {
    match value.to_ascii_lowercase().as_str() {
        "accept-new" | "no" | "off" => Policy::AcceptNew,
        _ => Policy::Strict,
    }
}

/// Removes every `Match` block (its line up to the next `Host` or `Match`) and returns the
/// 1-based line numbers of the `Match` lines.
fn without_match_blocks(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len());
    let mut cut = Vec::new();
    let mut skipping = false;
    for (i, line) in text.lines().enumerate() {
        let keyword = line
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or("");
        if keyword.eq_ignore_ascii_case("match") {
            skipping = true;
            cut.push(i + 1);
            continue;
        }
        if keyword.eq_ignore_ascii_case("host") {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, cut)
}

/// The user's home directory.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Expands a leading `~/` against `$HOME`.
pub fn expand_tilde(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), home()) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if path == "~" => home().unwrap_or_else(|| PathBuf::from(path)),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_we_use() {
        let text = "Host pve1\n  HostName=10.0.0.11\n  User admin\n  Port 2222\n  IdentityFile /k/one\n  ProxyJump jump@bastion:2200\n  UserKnownHostsFile /kh/user\n  StrictHostKeyChecking accept-new\nHost *\n  IdentityFile /k/two\n";
        let cfg = ClientConfig::parse(Path::new("cfg"), text).unwrap();
        let h = cfg.query("pve1");
        assert_eq!(h.host_name.as_deref(), Some("10.0.0.11"));
        assert_eq!(h.user.as_deref(), Some("admin"));
        assert_eq!(h.port, Some(2222));
        assert_eq!(
            h.identities,
            vec![PathBuf::from("/k/one"), PathBuf::from("/k/two")]
        );
        assert_eq!(h.proxy_jump.as_deref(), Some("jump@bastion:2200"));
        assert_eq!(h.user_known_hosts, vec![PathBuf::from("/kh/user")]);
        assert_eq!(h.strict_host_key_checking, Some(Policy::AcceptNew));
        assert_eq!(cfg.query("other").host_name, None);
    }

    #[test]
    fn match_blocks_are_cut_not_merged() {
        let text = "Host a\n  User alice\nMatch exec \"true\"\n  User mallory\n  Port 1\nHost b\n  User bob\n";
        let (clean, cut) = without_match_blocks(text);
        assert_eq!(cut, vec![3]);
        assert_eq!(clean, "Host a\n  User alice\nHost b\n  User bob\n");
        let cfg = ClientConfig::parse(Path::new("cfg"), text).unwrap();
        assert_eq!(cfg.query("a").user.as_deref(), Some("alice"));
        assert_eq!(cfg.query("a").port, None);
    }
}
