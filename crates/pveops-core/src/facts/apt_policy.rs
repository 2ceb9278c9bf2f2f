//! `apt-cache policy` without arguments (kind `apt-policy`): the package indexes apt uses.
//! apt's `Policy` (cmdline/apt-cache.cc) prints `Package files:`, then per index
//! ` PRIO URI SUITE/COMPONENT ARCH Packages` (or ` 100 /var/lib/dpkg/status`), an indented
//! `release o=…,a=…,n=…,l=…,c=…,b=…` line with the Release file's fields and
//! `origin HOST`; then `Pinned packages:`. Proxmox's repositories are told apart by host and
//! component (pve-docs "Package Repositories": `enterprise.proxmox.com/debian/pve … pve-enterprise`,
//! `download.proxmox.com/debian/pve … pve-no-subscription`, `… pvetest`; Ceph likewise under
//! `/debian/ceph-<release>` with `enterprise`, `no-subscription`, `test`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, regex};
use super::{Keep, Read, Scope};

pub const KIND: &str = "apt-policy";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "apt-cache policy: the package indexes in use, Proxmox channels named",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Repository {
    pub priority: i64,
    pub uri: String,
    /// `trixie/pve-no-subscription` as printed (suite, then component).
    pub dist: String,
    pub arch: String,
    /// The Release file's fields (`o`, `a`, `n`, `l`, `c`, `b`, `v`).
    pub release: BTreeMap<String, String>,
    pub origin: Option<String>,
    /// For Proxmox's own repositories: `enterprise`, `no-subscription` or `test`.
    pub proxmox_channel: Option<String>,
}

impl Repository {
    /// The repository without its Proxmox channel: two nodes that differ only in this channel
    /// use the same software from different sources.
    pub fn key(&self) -> String {
        if self.proxmox_channel.is_some() {
            let product = self
                .uri
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            format!("proxmox {product}")
        } else {
            format!("{} {} {}", self.uri, self.dist, self.arch)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub repositories: Vec<Repository>,
}

static INDEX: LazyRegex =
    LazyLock::new(|| regex(r"^\s*(-?\d+) (\S+://\S+|\S+) (\S+) (\S+) Packages$"));
static STATUS: LazyRegex = LazyLock::new(|| regex(r"^\s*(-?\d+) (/\S+)$"));

fn channel(uri: &str, dist: &str) -> Option<String> {
    if !uri.contains("proxmox.com/debian") {
        return None;
    }
    let component = dist.rsplit('/').next().unwrap_or_default();
    Some(
        if uri.contains("enterprise.proxmox.com") || component.ends_with("enterprise") {
            "enterprise"
        } else if component.ends_with("no-subscription") {
            "no-subscription"
        } else if component.ends_with("test") {
            "test"
        } else {
            return None;
        }
        .to_owned(),
    )
}

pub fn parse(text: &str) -> Result<Policy, ParseError> {
    let mut repos: Vec<Repository> = Vec::new();
    let mut started = false;
    for l in lines(text) {
        let t = l.text;
        if t.trim().is_empty() {
            continue;
        }
        if t == "Package files:" {
            started = true;
            continue;
        }
        if t == "Pinned packages:" {
            break;
        }
        if !started {
            return Err(ParseError::new(KIND, l.no, t, "expected `Package files:`"));
        }
        if let Some(c) = captures(&INDEX, t) {
            let uri = group(&c, 1).unwrap_or_default().to_owned();
            let dist = group(&c, 2).unwrap_or_default().to_owned();
            repos.push(Repository {
                priority: group(&c, 0).and_then(|p| p.parse().ok()).unwrap_or(0),
                proxmox_channel: channel(&uri, &dist),
                uri,
                dist,
                arch: group(&c, 3).unwrap_or_default().to_owned(),
                release: BTreeMap::new(),
                origin: None,
            });
            continue;
        }
        if captures(&STATUS, t).is_some() {
            continue;
        }
        let inner = t.trim_start();
        if let Some(fields) = inner.strip_prefix("release ") {
            if let Some(r) = repos.last_mut() {
                // Values may contain spaces (`l=Proxmox Debian Repository`), never commas.
                for f in fields.split(',') {
                    if let Some((k, v)) = f.split_once('=') {
                        r.release.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
            continue;
        }
        if let Some(o) = inner.strip_prefix("origin ") {
            if let Some(r) = repos.last_mut() {
                r.origin = Some(o.to_owned());
            }
            continue;
        }
        return Err(ParseError::new(
            KIND,
            l.no,
            t,
            "not an index, `release` or `origin` line of apt-cache policy",
        ));
    }
    if !started {
        return Err(ParseError::new(KIND, 0, "", "no `Package files:` section"));
    }
    Ok(Policy {
        repositories: repos,
    })
}

/// The `apt-policy` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "apt-policy",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    if out.exit_code() != Some(0) {
        return Err(super::apt_log::failure(out.exit_code(), &out.stderr_text()));
    }
    let p = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    let mut keys: Vec<String> = p.repositories.iter().map(|r| r.key()).collect();
    keys.sort();
    keys.dedup();
    let mut channels: Vec<String> = p
        .repositories
        .iter()
        .filter_map(|r| r.proxmox_channel.clone())
        .collect();
    channels.sort();
    channels.dedup();
    k.node.packages.repositories = Some(keys);
    k.node.packages.proxmox_channels = Some(channels);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn proxmox_channels_are_named() {
        let p = parse("Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n 500 http://download.proxmox.com/debian/pve trixie/pve-no-subscription amd64 Packages\n     release o=Proxmox,a=stable,n=trixie,l=Proxmox Debian Repository,c=pve-no-subscription,b=amd64\n     origin download.proxmox.com\n 500 https://enterprise.proxmox.com/debian/pve trixie/pve-enterprise amd64 Packages\n     origin enterprise.proxmox.com\nPinned packages:\n").unwrap();
        assert_eq!(p.repositories.len(), 2);
        assert_eq!(
            p.repositories[0].proxmox_channel.as_deref(),
            Some("no-subscription")
        );
        assert_eq!(p.repositories[0].release["l"], "Proxmox Debian Repository");
        assert_eq!(
            p.repositories[1].proxmox_channel.as_deref(),
            Some("enterprise")
        );
        assert_eq!(p.repositories[0].key(), p.repositories[1].key());
        assert!(parse("garbage\n").is_err());
    }
}
