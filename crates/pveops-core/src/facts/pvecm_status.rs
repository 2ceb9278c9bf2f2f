//! `pvecm status`: the "Cluster information" block from corosync.conf followed by
//! `corosync-quorumtool -siH` (FORMATS.md §1.1), plus the STDERR states (no cluster,
//! corosync down, pmxcfs down) that replace or cut it short.
//! Also what the snapshot keeps of it: [`ClusterHealth`], [`Member`], [`Qdevice`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, Line, captures, group, lines, locale_noise, regex, split_kv};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "pvecm-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvecm status: quorum, votes, flags, members, qdevice; no-cluster/corosync-down/pmxcfs-down states",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One real cluster member from the membership table, as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedMember {
    /// Decimal node id (the table prints hex with `-H`).
    pub nodeid: u32,
    pub votes: u32,
    /// Node name, or its first link address with `-i` (what `pvecm status` uses).
    pub name: String,
    /// `(local)`: the node the command ran on.
    pub local: bool,
    /// Qdevice column (`A,V,NMW`, `NR`), when the table has one.
    pub qdevice_flags: Option<String>,
}

/// The qdevice pseudo-row (node id 0), as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedQdevice {
    /// Votes this node's qdevice casts now (0 when it does not vote).
    pub votes: u32,
    pub name: String,
    /// False when the row carries ` (votes N)`: the qdevice is not voting for this partition.
    pub voting: bool,
    /// N of ` (votes N)`: the votes the qdevice would have.
    pub configured_votes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvecmStatus {
    /// `quorate`, `not-quorate`, `corosync-down`, `no-cluster`, `pmxcfs-down`, or `unknown`
    /// (a partial capture without the quorum lines).
    pub state: &'static str,
    /// One sentence explaining a non-quorate or failed state, else null.
    pub error: Option<String>,
    pub cluster_name: Option<String>,
    pub config_version: Option<u64>,
    pub transport: Option<String>,
    pub secure_auth: Option<String>,
    pub date: Option<String>,
    pub quorum_provider: Option<String>,
    /// This node's id, decimal.
    pub node_id: Option<u32>,
    /// As printed: `1.d` (corosync >= 3.0.3), `1/348` (PVE 6.0), `7440` (corosync 2).
    pub ring_id: Option<String>,
    pub quorate: Option<bool>,
    /// Members in this node's partition.
    pub nodes: Option<u32>,
    pub expected_votes: Option<u32>,
    pub highest_expected: Option<u32>,
    pub total_votes: Option<u32>,
    pub quorum: Option<u32>,
    pub activity_blocked: bool,
    pub flags: Vec<String>,
    pub members: Vec<ParsedMember>,
    pub qdevice: Option<ParsedQdevice>,
    /// Recognised STDERR messages mixed into the capture.
    pub diagnostics: Vec<stderr::Diagnostic>,
}

impl PvecmStatus {
    fn empty() -> Self {
        PvecmStatus {
            state: "unknown",
            error: None,
            cluster_name: None,
            config_version: None,
            transport: None,
            secure_auth: None,
            date: None,
            quorum_provider: None,
            node_id: None,
            ring_id: None,
            quorate: None,
            nodes: None,
            expected_votes: None,
            highest_expected: None,
            total_votes: None,
            quorum: None,
            activity_blocked: false,
            flags: Vec::new(),
            members: Vec::new(),
            qdevice: None,
            diagnostics: Vec::new(),
        }
    }
}

/// `pvecm status` (kind `pvecm-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterHealth {
    /// `ok`, or a state such as `no-cluster`, `corosync-down`, `pmxcfs-down`.
    pub state: String,
    pub error: Option<String>,
    pub cluster_name: Option<String>,
    pub config_version: Option<u64>,
    pub quorate: Option<bool>,
    pub nodes: Option<u32>,
    pub expected_votes: Option<u32>,
    pub highest_expected: Option<u32>,
    pub total_votes: Option<u32>,
    pub quorum: Option<u32>,
    pub activity_blocked: bool,
    pub flags: Vec<String>,
    pub members: Vec<Member>,
    pub qdevice: Option<Qdevice>,
}

/// One cluster member as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Member {
    pub nodeid: u32,
    pub votes: u32,
    pub name: String,
    pub local: bool,
}

/// The qdevice as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Qdevice {
    pub votes: u32,
    pub name: String,
}

impl From<&PvecmStatus> for ClusterHealth {
    fn from(s: &PvecmStatus) -> Self {
        let PvecmStatus {
            state,
            error,
            cluster_name,
            config_version,
            transport: _,
            secure_auth: _,
            date: _,
            quorum_provider: _,
            node_id: _,
            ring_id: _,
            quorate,
            nodes,
            expected_votes,
            highest_expected,
            total_votes,
            quorum,
            activity_blocked,
            flags,
            members,
            qdevice,
            diagnostics: _,
        } = s;
        ClusterHealth {
            state: (*state).to_owned(),
            error: error.clone(),
            cluster_name: cluster_name.clone(),
            config_version: *config_version,
            quorate: *quorate,
            nodes: *nodes,
            expected_votes: *expected_votes,
            highest_expected: *highest_expected,
            total_votes: *total_votes,
            quorum: *quorum,
            activity_blocked: *activity_blocked,
            flags: flags.clone(),
            members: members.iter().map(Member::from).collect(),
            qdevice: qdevice.as_ref().map(Qdevice::from),
        }
    }
}

impl From<&ParsedMember> for Member {
    fn from(m: &ParsedMember) -> Self {
        let ParsedMember {
            nodeid,
            votes,
            name,
            local,
            qdevice_flags: _,
        } = m;
        Member {
            nodeid: *nodeid,
            votes: *votes,
            name: name.clone(),
            local: *local,
        }
    }
}

impl From<&ParsedQdevice> for Qdevice {
    fn from(q: &ParsedQdevice) -> Self {
        let ParsedQdevice {
            votes,
            name,
            voting: _,
            configured_votes: _,
        } = q;
        Qdevice {
            votes: *votes,
            name: name.clone(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    None,
    Cluster,
    Quorum,
    Votequorum,
    Membership,
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

/// Node ids are hex `0x%08x` with `-H` (what `pvecm status` passes) and decimal without it
/// (`pvecm nodes`, plain `corosync-quorumtool`), FORMATS.md §1.1.
pub(crate) fn parse_nodeid(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn is_qdevice_flags(s: &str) -> bool {
    // `A|NA , V|NV , MW|NMW` joined by commas, or `NR` (not registered), FORMATS.md §1.1.
    if s == "NR" {
        return true;
    }
    let parts: Vec<&str> = s.split(',').collect();
    matches!(
        parts.as_slice(),
        [a, v, m] if matches!(*a, "A" | "NA") && matches!(*v, "V" | "NV") && matches!(*m, "MW" | "NMW")
    )
}

static VOTES_SUFFIX: LazyRegex = LazyLock::new(|| regex(r"^(.*) \(votes (\d+)\)$"));

pub(crate) enum Row {
    Member(ParsedMember),
    Qdevice(ParsedQdevice),
}

/// Parses a membership row `[nodeid, votes, (qdevice)?, name..., "(local)"?]`.
pub(crate) fn parse_member_row(line: &Line<'_>, has_qdevice_col: bool) -> Result<Row, ParseError> {
    let kind = KIND;
    let mut tokens = line.text.split_whitespace();
    let nodeid = tokens
        .next()
        .and_then(parse_nodeid)
        .ok_or_else(|| ParseError::new(kind, line.no, line.text, "the node id is not a number"))?;
    let votes = tokens
        .next()
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            ParseError::new(kind, line.no, line.text, "the vote count is not a number")
        })?;
    let mut rest: Vec<&str> = tokens.collect();
    let mut qdevice_flags = None;
    // The qdevice column is blank (11 spaces) on the pseudo-row, so only take a token that
    // looks like qdevice flags.
    if has_qdevice_col && rest.len() > 1 && rest.first().is_some_and(|t| is_qdevice_flags(t)) {
        qdevice_flags = Some(rest.remove(0).to_owned());
    }
    let local = rest.last() == Some(&"(local)");
    if local {
        rest.pop();
    }
    let name = rest.join(" ");
    if name.is_empty() {
        return Err(ParseError::new(
            kind,
            line.no,
            line.text,
            "the row has no node name",
        ));
    }
    if nodeid == 0 {
        // The qdevice pseudo-row: node id 0, votes it casts now, and ` (votes N)` when it
        // does not vote (FORMATS.md §1.1).
        let (name, configured) = match captures(&VOTES_SUFFIX, &name) {
            Some(c) => (
                group(&c, 0).unwrap_or_default().to_owned(),
                group(&c, 1).and_then(|v| v.parse().ok()),
            ),
            None => (name.clone(), None),
        };
        return Ok(Row::Qdevice(ParsedQdevice {
            votes,
            name,
            voting: configured.is_none(),
            configured_votes: configured,
        }));
    }
    Ok(Row::Member(ParsedMember {
        nodeid,
        votes,
        name,
        local,
        qdevice_flags,
    }))
}

fn num<T: std::str::FromStr>(line: &Line<'_>, v: &str) -> Result<T, ParseError> {
    v.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| err(line, "the value is not a number"))
}

/// Parses a run of `pvecm status` from its two streams. Its errors (not part of a cluster,
/// CMAP, pmxcfs down) are on stderr and join stdout; any other stderr line is left out: the
/// node's login shell may print noise there (`stty: ... Inappropriate ioctl`, `mesg: ttyname
/// failed`), and appended after the membership table it made the whole quorum unreadable
/// (found by the fault suite, tests/faults.rs).
pub fn parse_output(stdout: &str, stderr: &str) -> Result<PvecmStatus, ParseError> {
    let known: String = stderr
        .lines()
        .filter(|l| super::stderr::classify(0, l).is_some())
        .map(|l| format!("{l}\n"))
        .collect();
    if known.is_empty() {
        return parse(stdout);
    }
    parse(&format!("{stdout}{known}"))
}

pub fn parse(text: &str) -> Result<PvecmStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut st = PvecmStatus::empty();
    let mut section = Section::None;
    let mut has_qdevice_col = false;
    let mut saw_quorum_block = false;
    let mut saw_cluster_block = false;
    let mut saw_votequorum = false;

    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() || t.chars().all(|c| c == '-') {
            continue;
        }
        match t {
            "Cluster information" => {
                section = Section::Cluster;
                saw_cluster_block = true;
                continue;
            }
            "Quorum information" => {
                section = Section::Quorum;
                saw_quorum_block = true;
                continue;
            }
            "Votequorum information" => {
                section = Section::Votequorum;
                saw_votequorum = true;
                continue;
            }
            "Membership information" => {
                section = Section::Membership;
                continue;
            }
            _ => {}
        }
        if let Some(d) = stderr::classify(line.no, t) {
            st.diagnostics.push(d);
            continue;
        }
        match section {
            Section::Membership => {
                let tokens: Vec<&str> = t.split_whitespace().collect();
                if tokens.first() == Some(&"Nodeid") {
                    has_qdevice_col = tokens.contains(&"Qdevice");
                    continue;
                }
                match parse_member_row(line, has_qdevice_col)? {
                    Row::Member(m) => st.members.push(m),
                    Row::Qdevice(q) => st.qdevice = Some(q),
                }
            }
            Section::None => {
                return Err(err(line, "expected a pvecm status section header"));
            }
            Section::Cluster | Section::Quorum | Section::Votequorum => {
                let Some((key, value)) = split_kv(t) else {
                    return Err(err(line, "expected a \"Label: value\" line"));
                };
                let value = value.trim();
                match key.trim() {
                    "Name" => st.cluster_name = Some(value.to_owned()),
                    // `-1` when corosync.conf has none (pvecm.pm prints the default).
                    "Config Version" => st.config_version = value.parse().ok(),
                    "Transport" => st.transport = Some(value.to_owned()),
                    "Secure auth" => st.secure_auth = Some(value.to_owned()),
                    "Date" => st.date = Some(value.to_owned()),
                    "Quorum provider" => st.quorum_provider = Some(value.to_owned()),
                    "Nodes" => st.nodes = Some(num(line, value)?),
                    "Node ID" => {
                        st.node_id = Some(
                            parse_nodeid(value)
                                .ok_or_else(|| err(line, "the node id is not a number"))?,
                        )
                    }
                    // Kept as printed: `%x.%lx` since corosync 3.0.3, `%d/%llu` on PVE 6.0,
                    // a bare sequence number on corosync 2 (FORMATS.md §1.1, §9).
                    "Ring ID" => st.ring_id = Some(value.to_owned()),
                    "Quorate" => {
                        st.quorate = match value {
                            "Yes" => Some(true),
                            "No" => Some(false),
                            _ => return Err(err(line, "Quorate is neither Yes nor No")),
                        }
                    }
                    "Expected votes" => st.expected_votes = Some(num(line, value)?),
                    "Highest expected" => st.highest_expected = Some(num(line, value)?),
                    "Total votes" => st.total_votes = Some(num(line, value)?),
                    "Quorum" => {
                        // Not quorate: `Quorum: N Activity blocked`; quorate: `N` + 2 spaces.
                        st.quorum = Some(num(line, value)?);
                        st.activity_blocked = value.contains("Activity blocked");
                    }
                    "Flags" => {
                        // Empty when nothing is set (`Flags:` + 12 spaces, trimmed away).
                        st.flags = value.split_whitespace().map(str::to_owned).collect();
                    }
                    // Other labels (e.g. `Transport` variants of future versions) are fine.
                    _ => {}
                }
            }
        }
    }

    // A partial capture of only the Votequorum block: the Flags line still says whether
    // the partition is quorate (votequorum sets the `Quorate` flag exactly then).
    if st.quorate.is_none() && saw_votequorum {
        st.quorate = Some(st.flags.iter().any(|f| f == "Quorate"));
    }

    if st.diagnostics.iter().any(|d| d.code == "no-cluster") {
        st.state = "no-cluster";
        st.error = Some(
            "this node is not part of a cluster (/etc/pve/corosync.conf does not exist)".to_owned(),
        );
    } else if st.diagnostics.iter().any(|d| d.code == "pmxcfs-down") && !saw_quorum_block {
        st.state = "pmxcfs-down";
        st.error = Some(
            "the cluster filesystem (pmxcfs, pve-cluster.service) is not running or not reachable"
                .to_owned(),
        );
    } else if st.diagnostics.iter().any(|d| d.code == "corosync-down")
        || (saw_cluster_block && !saw_quorum_block && !saw_votequorum)
    {
        // The Cluster information block comes from corosync.conf and is printed before
        // corosync-quorumtool runs; when corosync is down the output stops right after it
        // (FORMATS.md §1.1, pvecm-status.corosync-down).
        st.state = "corosync-down";
        st.error = Some("corosync is not running on this node, so quorum is unknown".to_owned());
    } else {
        match st.quorate {
            Some(true) => st.state = "quorate",
            Some(false) => {
                st.state = "not-quorate";
                let n = |v: Option<u32>| v.map_or("?".to_owned(), |v| v.to_string());
                // With WaitForAll (2Node clusters) a partition stays blocked until every node
                // was seen once, even when it has the votes.
                let wait = if st.flags.iter().any(|f| f == "WaitForAll") {
                    ", waiting for all nodes to be seen once (WaitForAll)"
                } else {
                    ""
                };
                st.error = Some(format!(
                    "the cluster is not quorate on this node: {} of {} expected votes present, quorum is {}{wait}",
                    n(st.total_votes),
                    n(st.expected_votes),
                    n(st.quorum),
                ));
            }
            None => {
                if !saw_cluster_block && st.diagnostics.is_empty() {
                    return Err(ParseError::new(
                        KIND,
                        0,
                        "",
                        "no pvecm status output (no Cluster, Quorum or Votequorum information block)",
                    ));
                }
            }
        }
    }
    Ok(st)
}

/// The `pvecm-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "pvecm-status",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    // Errors such as "not part of a cluster" or "Cannot initialize CMAP" are on stderr.
    let parsed = parse_output(&out.stdout_text(), &out.stderr_text()).map_err(|e| e.to_string())?;
    k.node.cluster = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn login_shell_noise_on_stderr_is_left_out_and_known_errors_kept() {
        let out = "Quorum information\n------------------\nQuorate:          Yes\n\nMembership information\n----------------------\n    Nodeid      Votes Name\n0x00000001          1 10.0.0.1 (local)\n";
        let noise = "stty: standard input: Inappropriate ioctl for device\nmesg: ttyname failed: Inappropriate ioctl for device\n";
        let s = parse_output(out, noise).unwrap();
        assert_eq!((s.quorate, s.members.len()), (Some(true), 1));
        let none = parse_output(
            "",
            &format!("{noise}Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n"),
        )
        .unwrap();
        assert_eq!(none.state, "no-cluster");
    }

    #[test]
    fn hex_node_ids_and_local() {
        let s = parse(
            "Membership information\n----------------------\n    Nodeid      Votes Name\n0x0000000a          1 10.0.0.1 (local)\n0x0000000b          1 10.0.0.2\nQuorum information\nQuorate:          Yes\n",
        )
        .unwrap();
        assert_eq!(s.members[0].nodeid, 10);
        assert!(s.members[0].local);
        assert_eq!(s.members[1].nodeid, 11);
        assert!(!s.members[1].local);
    }

    #[test]
    fn pve60_without_cluster_block_and_old_ring_id() {
        // PVE 6.0: no "Cluster information" block, Ring ID `%d/%llu` (FORMATS.md §9).
        let text = "Quorum information\n------------------\nDate:             Mon Sep  2 10:00:00 2019\nQuorum provider:  corosync_votequorum\nNodes:            3\nNode ID:          0x00000001\nRing ID:          1/348\nQuorate:          Yes\n\nVotequorum information\n----------------------\nExpected votes:   3\nHighest expected: 3\nTotal votes:      3\nQuorum:           2  \nFlags:            Quorate \n\nMembership information\n----------------------\n    Nodeid      Votes Name\n0x00000001          1 10.1.1.1 (local)\n0x00000002          1 10.1.1.2\n0x00000003          1 10.1.1.3\n";
        let s = parse(text).unwrap();
        assert_eq!(s.cluster_name, None);
        assert_eq!(s.config_version, None);
        assert_eq!(s.ring_id.as_deref(), Some("1/348"));
        assert_eq!(s.state, "quorate");
        assert_eq!(s.members.len(), 3);
    }

    #[test]
    fn activity_blocked_and_empty_flags() {
        let text = "Votequorum information\nExpected votes:   3\nTotal votes:      1\nQuorum:           2 Activity blocked\nFlags:            \n";
        let s = parse(text).unwrap();
        assert!(s.activity_blocked);
        assert_eq!(s.quorum, Some(2));
        assert!(s.flags.is_empty());
        assert_eq!(s.quorate, Some(false));
        assert_eq!(s.state, "not-quorate");
    }

    #[test]
    fn qdevice_pseudo_row_not_voting() {
        let text = "Membership information\n    Nodeid      Votes    Qdevice Name\n0x00000001          1   A,NV,NMW 192.168.1.11 (local)\n0x00000000          0            Qdevice (votes 1)\nQuorum information\nQuorate:          No\n";
        let s = parse(text).unwrap();
        assert_eq!(s.members.len(), 1);
        assert_eq!(s.members[0].qdevice_flags.as_deref(), Some("A,NV,NMW"));
        let q = s.qdevice.unwrap();
        assert_eq!(
            (q.votes, q.name.as_str(), q.voting, q.configured_votes),
            (0, "Qdevice", false, Some(1))
        );
    }

    #[test]
    fn stderr_states() {
        let s = parse("Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?\n").unwrap();
        assert_eq!(s.state, "no-cluster");
        assert_eq!(
            s.error.as_deref(),
            Some("this node is not part of a cluster (/etc/pve/corosync.conf does not exist)")
        );
        let s = parse("ipcc_send_rec[1] failed: Unknown error -1\nUnable to load access control list: Unknown error -1\n").unwrap();
        assert_eq!(s.state, "pmxcfs-down");
        let s = parse("Cannot initialize CMAP service\n").unwrap();
        assert_eq!(s.state, "corosync-down");
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let e = parse("hello\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(e.text, "hello");
        assert!(parse("").is_err());
    }
}
