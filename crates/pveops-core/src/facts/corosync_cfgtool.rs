//! `corosync-cfgtool -s` (and `-n`), FORMATS.md §8.1: the knet link status layout of
//! corosync >= 3.1.5 (PVE 7.1+), the 3.0.x-3.1.4 layout (PVE 6, 7.0), the corosync 2 ring
//! layout (PVE <= 5), and the `-n` per-node reachability layout.

use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, Line, captures, group, lines, locale_noise, regex};
use super::stderr;

pub const KIND: &str = "corosync-cfgtool";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "corosync-cfgtool -s (or -n): links and peer states",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    pub nodeid: u32,
    /// `localhost`, `connected`, `disconnected` (`-s`); `connected`/`disconnected` from the
    /// LINK line with `-n`.
    pub status: String,
    /// False when corosync 3.0 printed ` (not enabled)`, or `-n` said `disabled`.
    pub enabled: bool,
    /// `-n`: the remote address of this link.
    pub dst: Option<String>,
    /// `-n`: the link MTU.
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub link_id: u32,
    /// `udp`/`sctp` (corosync >= 3.1.5), null before.
    pub protocol: Option<String>,
    /// This node's address on the link.
    pub addr: Option<String>,
    pub peers: Vec<Peer>,
    /// corosync 2 rings: `ring 0 active with no faults` / `Marking ringid 0 interface X FAULTY`;
    /// `-b` brief output: the one-character-per-node string.
    pub ring_status: Option<String>,
    /// corosync 2: true when the ring status says FAULTY.
    pub faulty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorosyncCfgtool {
    pub node_id: Option<u32>,
    /// `knet` etc. (corosync >= 3.1.5 prints it after the node id).
    pub transport: Option<String>,
    /// `knet` (3.1.5+), `corosync3.0` (3.0.x-3.1.4), `corosync2` (rings) or `nodes` (`-n`).
    pub layout: &'static str,
    pub links: Vec<Link>,
    pub diagnostics: Vec<stderr::Diagnostic>,
}

static LOCAL_NODE: LazyRegex =
    LazyLock::new(|| regex(r"^Local node ID (\d+)(?:, transport (\S+))?$"));
static LINK_HDR: LazyRegex = LazyLock::new(|| regex(r"^(LINK|RING) ID (\d+)(?: (\S+))?$"));
static ADDR: LazyRegex = LazyLock::new(|| regex(r"^(?:addr|id)\s*=\s*(\S+)$"));
static STATUS_EQ: LazyRegex = LazyLock::new(|| regex(r"^status\s*=\s*(.+)$"));
// `nodeid: %10u:\t<state>` (3.1.5+) or `nodeid %2d:\t<state>` (3.0.x).
static PEER: LazyRegex = LazyLock::new(|| regex(r"^nodeid:?\s*(\d+):\s*(\S+)(.*)$"));
static N_NODE: LazyRegex =
    LazyLock::new(|| regex(r"^nodeid:?\s*(\d+)\s+(reachable|unreachable)\b.*$"));
static N_LINK: LazyRegex = LazyLock::new(|| {
    regex(
        r"^LINK:\s*(\d+)\s+(\S+)\s+\(([^)]*?)->([^)]*)\)\s+(enabled|disabled)\s+(connected|disconnected)(?:\s+mtu:\s*(\d+))?",
    )
});

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

fn link_mut(links: &mut Vec<Link>, id: u32, protocol: Option<String>) -> Option<&mut Link> {
    if !links.iter().any(|l| l.link_id == id) {
        links.push(Link {
            link_id: id,
            protocol,
            addr: None,
            peers: Vec::new(),
            ring_status: None,
            faulty: false,
        });
    }
    links.iter_mut().find(|l| l.link_id == id)
}

pub fn parse(text: &str) -> Result<CorosyncCfgtool, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = CorosyncCfgtool {
        node_id: None,
        transport: None,
        layout: "knet",
        links: Vec::new(),
        diagnostics: Vec::new(),
    };
    let mut current: Option<u32> = None;
    let mut n_node: Option<u32> = None;
    let mut saw_anything = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        // Markdown pastes turn the TABs into spaces: match on the trimmed text.
        let t = line.text.trim();
        if is_noise || t.is_empty() || t == "status:" {
            continue;
        }
        if t == "Printing link status." {
            out.layout = "corosync3.0";
            continue;
        }
        if t == "Printing ring status." {
            out.layout = "corosync2";
            continue;
        }
        if let Some(c) = captures(&LOCAL_NODE, t) {
            out.node_id = group(&c, 0).and_then(|v| v.parse().ok());
            out.transport = group(&c, 1).map(str::to_owned);
            saw_anything = true;
            continue;
        }
        if let Some(c) = captures(&LINK_HDR, t) {
            let id = group(&c, 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| err(line, "bad link id"))?;
            link_mut(&mut out.links, id, group(&c, 2).map(str::to_owned));
            current = Some(id);
            continue;
        }
        if let Some(c) = captures(&ADDR, t) {
            let Some(l) = current.and_then(|id| out.links.iter_mut().find(|l| l.link_id == id))
            else {
                return Err(err(line, "address outside a LINK/RING block"));
            };
            l.addr = group(&c, 0).map(str::to_owned);
            continue;
        }
        if let Some(c) = captures(&STATUS_EQ, t) {
            let Some(l) = current.and_then(|id| out.links.iter_mut().find(|l| l.link_id == id))
            else {
                return Err(err(line, "status outside a LINK/RING block"));
            };
            let s = group(&c, 0).unwrap_or_default();
            l.faulty = s.contains("FAULTY");
            l.ring_status = Some(s.to_owned());
            continue;
        }
        if let Some(c) = captures(&N_NODE, t) {
            out.layout = "nodes";
            n_node = group(&c, 0).and_then(|v| v.parse().ok());
            continue;
        }
        if let Some(c) = captures(&N_LINK, t) {
            // `-n`: `LINK: <n> <proto> (<src>-><dst>) enabled connected mtu: <n>` under a
            // `nodeid: N reachable` line; only reachable peers are listed.
            let Some(nodeid) = n_node else {
                return Err(err(
                    line,
                    "LINK line before any \"nodeid: N reachable\" line",
                ));
            };
            let id: u32 = group(&c, 0)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default();
            if let Some(l) = link_mut(&mut out.links, id, group(&c, 1).map(str::to_owned)) {
                l.addr = group(&c, 2).map(|s| s.trim().to_owned());
                l.peers.push(Peer {
                    nodeid,
                    status: group(&c, 5).unwrap_or_default().to_owned(),
                    enabled: group(&c, 4) == Some("enabled"),
                    dst: group(&c, 3).map(|s| s.trim().to_owned()),
                    mtu: group(&c, 6).and_then(|v| v.parse().ok()),
                });
            }
            continue;
        }
        if let Some(c) = captures(&PEER, t) {
            let Some(l) = current.and_then(|id| out.links.iter_mut().find(|l| l.link_id == id))
            else {
                return Err(err(line, "node status outside a LINK block"));
            };
            let rest = group(&c, 2).unwrap_or_default();
            l.peers.push(Peer {
                nodeid: group(&c, 0)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default(),
                status: group(&c, 1).unwrap_or_default().to_owned(),
                // corosync 3.0.x: ` (not enabled)` after a connected but disabled link.
                enabled: !rest.contains("not enabled"),
                dst: None,
                mtu: None,
            });
            continue;
        }
        if let Some(d) = stderr::classify(line.no, t) {
            out.diagnostics.push(d);
            continue;
        }
        if t.starts_with("Could not initialize corosync configuration API")
            || t.starts_with("Cannot initialise CFG service")
        {
            continue;
        }
        return Err(err(line, "not a corosync-cfgtool line"));
    }
    if !saw_anything && out.links.is_empty() {
        if let Some(d) = out.diagnostics.first() {
            return Err(ParseError::new(KIND, d.line, &d.text, d.message.clone()));
        }
        return Err(ParseError::new(KIND, 0, "", "no \"Local node ID\" line"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn knet_layout() {
        let c = parse("Local node ID 1, transport knet\nLINK ID 0 udp\n\taddr\t= 192.168.1.9\n\tstatus:\n\t\tnodeid:          1:\tlocalhost\n\t\tnodeid:          2:\tdisconnected\n").unwrap();
        assert_eq!(c.node_id, Some(1));
        assert_eq!(c.transport.as_deref(), Some("knet"));
        assert_eq!(c.links[0].protocol.as_deref(), Some("udp"));
        assert_eq!(c.links[0].peers[1].status, "disconnected");
    }

    #[test]
    fn corosync30_not_enabled() {
        let c = parse("Printing link status.\nLocal node ID 1\nLINK ID 0\n\taddr\t= 10.0.0.1\n\tstatus:\n\t\tnodeid  2:\tconnected (not enabled)\n").unwrap();
        assert_eq!(c.layout, "corosync3.0");
        assert!(!c.links[0].peers[0].enabled);
    }

    #[test]
    fn corosync2_faulty_ring() {
        let c = parse("Printing ring status.\nLocal node ID 2\nRING ID 0\n\tid\t= 10.10.10.26\n\tstatus\t= Marking ringid 0 interface 10.10.10.26 FAULTY\n").unwrap();
        assert!(c.links[0].faulty);
        assert_eq!(c.links[0].addr.as_deref(), Some("10.10.10.26"));
    }

    #[test]
    fn reachability_layout_with_onwire() {
        let c = parse("Local node ID 1, transport knet\nnodeid: 2 reachable   onwire (min/max/cur): 0, 1, 1\n   LINK: 0 udp (10.0.0.1->10.0.0.2) enabled connected mtu: 1397\n\n").unwrap();
        assert_eq!(c.layout, "nodes");
        assert_eq!(c.links[0].peers[0].nodeid, 2);
        assert_eq!(c.links[0].peers[0].mtu, Some(1397));
    }
}
