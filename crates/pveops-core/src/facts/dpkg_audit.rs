//! `dpkg --audit` (kind `dpkg-audit`): packages dpkg left broken. dpkg's `audit()`
//! (src/main/enquiry.c) prints, per kind of problem that has packages, its explanation
//! paragraph (`The following packages are only half configured, …`), then one
//! ` %-20s %s` line per package (name, short description) and an empty line; nothing at all
//! when every package is fine. When another process holds the database lock it first says
//! `Another process has locked the database for writing, …`.

use serde::Serialize;

use super::ParseError;
use super::common::lines;
use super::{Keep, Read, Scope};

pub const KIND: &str = "dpkg-audit";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "dpkg --audit: packages left half installed or half configured",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The explanation's first line, as dpkg printed it.
    pub explanation: String,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    pub problems: Vec<Problem>,
    /// Every package named by a problem.
    pub packages: Vec<String>,
    /// dpkg said another process has its database locked.
    pub locked: bool,
}

impl Audit {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Parses the audit. A package line before any explanation is not dpkg's layout.
pub fn parse(text: &str) -> Result<Audit, ParseError> {
    let mut a = Audit {
        problems: Vec::new(),
        packages: Vec::new(),
        locked: false,
    };
    // `true` while reading an explanation paragraph (it may run over several lines).
    let mut in_text = false;
    for l in lines(text) {
        let t = l.text;
        if t.trim().is_empty() {
            in_text = false;
            continue;
        }
        if t.starts_with("Another process has locked the database") {
            a.locked = true;
            in_text = false;
            continue;
        }
        if let Some(rest) = t.strip_prefix(' ') {
            let name = rest.split_whitespace().next().unwrap_or_default();
            let Some(p) = a.problems.last_mut() else {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    "a package line before any explanation",
                ));
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.:".contains(c))
            {
                return Err(ParseError::new(KIND, l.no, t, "not a package name"));
            }
            in_text = false;
            p.packages.push(name.to_owned());
            a.packages.push(name.to_owned());
            continue;
        }
        if !in_text && !a.locked_note_continues(t) {
            a.problems.push(Problem {
                explanation: t.to_owned(),
                packages: Vec::new(),
            });
        }
        in_text = true;
    }
    Ok(a)
}

impl Audit {
    /// The lock note's second line (`modifying it, some of …`) is not a new problem.
    fn locked_note_continues(&self, t: &str) -> bool {
        self.locked && self.problems.is_empty() && t.starts_with("modifying it")
    }
}

/// The `dpkg-audit` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "dpkg-audit",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.packages.broken_packages = Some(parsed.packages);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn half_configured_packages_are_named() {
        let a = parse("The following packages are only half configured, probably due to problems\nconfiguring them the first time.  The configuration should be retried using\ndpkg --configure <package> or the configure menu option in dselect:\n pve-manager          Proxmox Virtual Environment Management Tools\n\n").unwrap();
        assert_eq!(a.packages, vec!["pve-manager"]);
        assert_eq!(a.problems.len(), 1);
        assert!(!a.clean());
        assert!(parse("").unwrap().clean());
        assert_eq!(parse(" pkg x\n").unwrap_err().line, 1);
    }
}
