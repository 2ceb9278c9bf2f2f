//! `pvecm nodes` = `corosync-quorumtool -l` (FORMATS.md §1.2): decimal node ids, names from
//! the corosync.conf nodelist, output starting with an empty line; only the members of the
//! local partition are listed.

use serde::Serialize;

use super::ParseError;
use super::common::{lines, locale_noise};
use super::pvecm_status::{ParsedMember, ParsedQdevice, Row, parse_member_row};
use super::stderr;

pub const KIND: &str = "pvecm-nodes";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvecm nodes: members of this node's partition",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvecmNodes {
    /// Real members (the qdevice pseudo-row is in `qdevice`).
    pub members: Vec<ParsedMember>,
    pub qdevice: Option<ParsedQdevice>,
    /// One sentence when the command failed (no cluster, corosync or pmxcfs down).
    pub error: Option<String>,
    pub diagnostics: Vec<stderr::Diagnostic>,
}

pub fn parse(text: &str) -> Result<PvecmNodes, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = PvecmNodes {
        members: Vec::new(),
        qdevice: None,
        error: None,
        diagnostics: Vec::new(),
    };
    let mut has_qdevice_col = None;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() || t.chars().all(|c| c == '-') || t == "Membership information"
        {
            continue;
        }
        if let Some(d) = stderr::classify(line.no, t) {
            out.diagnostics.push(d);
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.first() == Some(&"Nodeid") {
            // The Qdevice column only exists when a qdevice is registered (FORMATS.md §1.1).
            has_qdevice_col = Some(tokens.contains(&"Qdevice"));
            continue;
        }
        let Some(has_col) = has_qdevice_col else {
            return Err(ParseError::new(
                KIND,
                line.no,
                t,
                "expected the \"Nodeid Votes Name\" header before any row",
            ));
        };
        match parse_member_row(line, has_col).map_err(|e| ParseError { kind: KIND, ..e })? {
            Row::Member(m) => out.members.push(m),
            Row::Qdevice(q) => out.qdevice = Some(q),
        }
    }
    if let Some(d) = out.diagnostics.first() {
        out.error = Some(d.message.clone());
    } else if has_qdevice_col.is_none() {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no membership table (\"Nodeid Votes Name\" header) found",
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn decimal_ids_and_qdevice_row() {
        let text = "\nMembership information\n----------------------\n    Nodeid      Votes    Qdevice Name\n         1          1    A,V,NMW pve1 (local)\n         2          1    A,V,NMW pve2\n         0          1            Qdevice\n";
        let n = parse(text).unwrap();
        assert_eq!(n.members.len(), 2);
        assert_eq!(n.members[1].nodeid, 2);
        assert_eq!(n.qdevice.as_ref().unwrap().votes, 1);
        assert!(n.qdevice.unwrap().voting);
    }

    #[test]
    fn no_cluster() {
        let n = parse("Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n").unwrap();
        assert!(n.members.is_empty());
        assert!(
            n.error
                .unwrap()
                .starts_with("this node is not part of a cluster")
        );
    }
}
