//! `pct list` (FORMATS.md §4.1): `%-10s %-10s %-12s %-20s` for VMID, Status, Lock, Name; the
//! Lock column is blank when unlocked and `snapshot-delete` overflows it; nothing is printed
//! when there are no containers.
//! Also what the snapshot keeps of it: [`Container`], stored as parsed.

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{Line, lines, locale_noise};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "pct-list";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pct list: containers of this node with their lock",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One row of `pct list` (kind `pct-list`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    pub vmid: u64,
    pub status: String,
    pub lock: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PctList {
    pub containers: Vec<Container>,
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

pub fn parse(text: &str) -> Result<PctList, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut containers = Vec::new();
    let mut header = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.first() == Some(&"VMID") && tokens.get(1) == Some(&"Status") {
            header = true;
            continue;
        }
        if !header {
            if let Some(d) = stderr::classify(line.no, t) {
                return Err(err(line, d.message));
            }
            return Err(err(
                line,
                "expected the \"VMID Status Lock Name\" header before any row",
            ));
        }
        // Split on whitespace, not columns: the blank Lock column leaves 3 tokens and
        // `snapshot-delete` (15 chars) shifts Name right. CT names never contain whitespace
        // (FORMATS.md §0.10), so 3 tokens = unlocked, 4 = locked.
        let (vmid, status, lock, name) = match tokens.as_slice() {
            [v, s, n] => (v, s, None, n),
            [v, s, l, n] => (v, s, Some((*l).to_owned()), n),
            _ => {
                return Err(err(
                    line,
                    format!("expected 3 or 4 columns, found {}", tokens.len()),
                ));
            }
        };
        containers.push(Container {
            vmid: vmid
                .parse()
                .map_err(|_| err(line, "the VMID is not a number"))?,
            status: (*status).to_owned(),
            lock,
            name: (*name).to_owned(),
        });
    }
    Ok(PctList { containers })
}

/// The `pct-list` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "pct-list",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    k.node.containers = parse(&out.stdout_text())
        .map_err(|e| e.to_string())?
        .containers;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn blank_lock_and_overflowing_lock() {
        let text = "VMID       Status     Lock         Name                \n102        stopped                 CT102               \n103        running    snapshot-delete nextcloud-aio-mastercontainer\n";
        let l = parse(text).unwrap();
        assert_eq!(l.containers[0].lock, None);
        assert_eq!(l.containers[0].name, "CT102");
        assert_eq!(l.containers[1].lock.as_deref(), Some("snapshot-delete"));
        assert_eq!(l.containers[1].name, "nextcloud-aio-mastercontainer");
    }

    #[test]
    fn empty_and_garbage() {
        assert!(parse("").unwrap().containers.is_empty());
        assert_eq!(
            parse("VMID Status Lock Name\n1 2 3 4 5\n")
                .unwrap_err()
                .line,
            2
        );
    }
}
