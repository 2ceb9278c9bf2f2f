//! `ha-manager status` (FORMATS.md §5.1): one `<type> <status>` line per entry of
//! GET /cluster/ha/status/current: quorum, master, fencing (2026+), lrm per node, services.
//! Also what the snapshot keeps of it: [`Ha`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, Line, lines, locale_noise, regex};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "ha-manager-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "ha-manager status: quorum, master, fencing, LRMs, services",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Master {
    pub node: String,
    /// `active`, `idle`, `old timestamp - dead?`, `detected time drift!`.
    pub state: String,
    /// Perl `localtime` as printed (`Mon Apr 13 17:35:48 2026`), node-local time.
    pub time: Option<String>,
    /// The ` - ...` suffixes: disarm state / resource mode, `<crs> load CRS`.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fencing {
    /// `armed`, `standby`, `disarming`, `disarmed`.
    pub state: String,
    /// `freeze`/`ignore` while disarming or disarmed.
    pub resource_mode: Option<String>,
    /// The parenthesised watchdog state, e.g. `CRM watchdog active`.
    pub watchdog: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lrm {
    pub node: String,
    /// `active`, `idle`, `wait_for_agent_lock`, `maintenance mode`, `old timestamp - dead?`,
    /// ...; `unknown` for `(unable to read lrm status)`.
    pub state: String,
    /// `watchdog active|standby|released` (pve-ha-manager >= 5.1.3), else null.
    pub watchdog: Option<String>,
    pub time: Option<String>,
    /// The whole parenthesised text when it is not a state (`unable to read lrm status`).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// `vm:100`, `ct:103`.
    pub sid: String,
    /// `vm` or `ct`.
    #[serde(rename = "type")]
    pub kind: String,
    pub vmid: Option<u64>,
    pub node: String,
    pub state: String,
    /// Further comma-separated fields, if any.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HaStatus {
    pub quorum_ok: bool,
    /// The quorum text as printed (`OK`, `No quorum on node 'pve2'!`).
    pub quorum_message: String,
    pub master: Option<Master>,
    pub fencing: Option<Fencing>,
    pub lrms: Vec<Lrm>,
    pub services: Vec<Service>,
    /// `--verbose`: the JSON after `full cluster state:`, when it parses.
    pub full_cluster_state: Option<serde_json::Value>,
}

/// `ha-manager status` (kind `ha-manager-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ha {
    pub quorum_ok: bool,
    pub master: Option<HaMaster>,
    pub lrms: Vec<HaLrm>,
    pub services: Vec<HaService>,
}

/// The HA master as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaMaster {
    pub node: String,
    pub state: String,
}

/// A node's local resource manager as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaLrm {
    pub node: String,
    pub state: String,
}

/// An HA-managed guest as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HaService {
    pub sid: String,
    pub node: String,
    pub state: String,
}

impl From<&HaStatus> for Ha {
    fn from(h: &HaStatus) -> Self {
        let HaStatus {
            quorum_ok,
            quorum_message: _,
            master,
            fencing: _,
            lrms,
            services,
            full_cluster_state: _,
        } = h;
        Ha {
            quorum_ok: *quorum_ok,
            master: master.as_ref().map(HaMaster::from),
            lrms: lrms.iter().map(HaLrm::from).collect(),
            services: services.iter().map(HaService::from).collect(),
        }
    }
}

impl From<&Master> for HaMaster {
    fn from(m: &Master) -> Self {
        let Master {
            node,
            state,
            time: _,
            extra: _,
        } = m;
        HaMaster {
            node: node.clone(),
            state: state.clone(),
        }
    }
}

impl From<&Lrm> for HaLrm {
    fn from(l: &Lrm) -> Self {
        let Lrm {
            node,
            state,
            watchdog: _,
            time: _,
            error: _,
        } = l;
        HaLrm {
            node: node.clone(),
            state: state.clone(),
        }
    }
}

impl From<&Service> for HaService {
    fn from(s: &Service) -> Self {
        let Service {
            sid,
            kind: _,
            vmid: _,
            node,
            state,
            extra: _,
        } = s;
        HaService {
            sid: sid.clone(),
            node: node.clone(),
            state: state.clone(),
        }
    }
}

static LOCALTIME: LazyRegex =
    LazyLock::new(|| regex(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}$"));

fn is_localtime(s: &str) -> bool {
    LOCALTIME.as_ref().is_some_and(|re| re.is_match(s))
}

/// Splits `<head> (<inner>)<tail>` at the first `(` and the `)` that closes it.
fn split_parens(s: &str) -> Option<(&str, &str, &str)> {
    let (head, rest) = s.split_once(" (")?;
    let (inner, tail) = rest.split_once(')')?;
    Some((head, inner, tail))
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

#[derive(Default)]
pub(crate) struct Builder {
    quorum: Option<(bool, String)>,
    master: Option<Master>,
    fencing: Option<Fencing>,
    lrms: Vec<Lrm>,
    services: Vec<Service>,
}

impl Builder {
    /// Reads one `<type> <status>` entry; `Ok(false)` when the type is not known.
    pub(crate) fn entry(
        &mut self,
        line: &Line<'_>,
        kind: &str,
        status: &str,
    ) -> Result<bool, ParseError> {
        match kind {
            "quorum" => {
                self.quorum = Some((status == "OK", status.to_owned()));
            }
            "master" => {
                // `<node> (<state>, <localtime>)[ - <disarm state>, resource mode: <m>][ - <crs> load CRS]`
                let (node, inner, tail) = split_parens(status)
                    .ok_or_else(|| err(line, "expected \"<node> (<state>, <time>)\""))?;
                let mut fields: Vec<&str> = inner.split(", ").collect();
                let time = match fields.last() {
                    Some(t) if fields.len() > 1 && is_localtime(t) => {
                        fields.pop().map(str::to_owned)
                    }
                    _ => None,
                };
                self.master = Some(Master {
                    node: node.to_owned(),
                    state: fields.join(", "),
                    time,
                    extra: tail
                        .split(" - ")
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                });
            }
            "fencing" => {
                // New in pve-ha-manager 5.1.3 (2026, FORMATS.md §9):
                // `armed (CRM watchdog active)`, `disarming, resource mode: freeze (...)`.
                let (head, watchdog) = match split_parens(status) {
                    Some((h, w, _)) => (h, Some(w.to_owned())),
                    None => (status, None),
                };
                let (state, mode) = match head.split_once(", resource mode: ") {
                    Some((s, m)) => (s, Some(m.trim().to_owned())),
                    None => (head, None),
                };
                self.fencing = Some(Fencing {
                    state: state.trim().to_owned(),
                    resource_mode: mode,
                    watchdog,
                });
            }
            "lrm" => {
                let (node, inner, _) = split_parens(status)
                    .ok_or_else(|| err(line, "expected \"<node> (<state>, ...)\""))?;
                if inner == "unable to read lrm status" {
                    self.lrms.push(Lrm {
                        node: node.to_owned(),
                        state: "unknown".to_owned(),
                        watchdog: None,
                        time: None,
                        error: Some(inner.to_owned()),
                    });
                    return Ok(true);
                }
                // `(<state>, <time>)` up to 5.1.2; `(<state>, watchdog <x>, <time>)` since
                // 5.1.3 (FORMATS.md §5.1): identify the fields by their shape.
                let mut state = None;
                let mut watchdog = None;
                let mut time = None;
                for f in inner.split(", ") {
                    if state.is_none() {
                        state = Some(f.to_owned());
                    } else if f.starts_with("watchdog ") {
                        watchdog = Some(f.to_owned());
                    } else if is_localtime(f) {
                        time = Some(f.to_owned());
                    }
                }
                self.lrms.push(Lrm {
                    node: node.to_owned(),
                    state: state.unwrap_or_default(),
                    watchdog,
                    time,
                    error: None,
                });
            }
            "service" => {
                // `<sid> (<node>, <state>)`
                let (sid, inner, _) = split_parens(status)
                    .ok_or_else(|| err(line, "expected \"<sid> (<node>, <state>)\""))?;
                let mut fields = inner.split(", ");
                let node = fields.next().unwrap_or_default().to_owned();
                let state = fields.next().unwrap_or_default().to_owned();
                let (kind, id) = sid.split_once(':').unwrap_or((sid, ""));
                self.services.push(Service {
                    sid: sid.to_owned(),
                    kind: kind.to_owned(),
                    vmid: id.parse().ok(),
                    node,
                    state,
                    extra: fields.map(str::to_owned).collect(),
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn finish(self, full: Option<serde_json::Value>) -> Result<HaStatus, ParseError> {
        let Some((quorum_ok, quorum_message)) = self.quorum else {
            return Err(ParseError::new(
                KIND,
                0,
                "",
                "no \"quorum\" line (it is always printed first)",
            ));
        };
        Ok(HaStatus {
            quorum_ok,
            quorum_message,
            master: self.master,
            fencing: self.fencing,
            lrms: self.lrms,
            services: self.services,
            full_cluster_state: full,
        })
    }
}

pub fn parse(text: &str) -> Result<HaStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut b = Builder::default();
    let mut full = None;
    for (i, (line, is_noise)) in lines.iter().zip(noise).enumerate() {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        if t == "full cluster state:" {
            // `--verbose` appends pretty JSON of the manager status.
            let rest: Vec<&str> = lines.iter().skip(i + 1).map(|l| l.raw).collect();
            full = serde_json::from_str(&rest.join("\n")).ok();
            break;
        }
        let Some((kind, status)) = t.split_once(' ') else {
            return Err(err(line, "expected \"<type> <status>\""));
        };
        if !b.entry(line, kind, status.trim())? {
            let reason = match stderr::classify(line.no, t) {
                Some(d) => d.message,
                None => format!("unknown entry type \"{kind}\""),
            };
            return Err(err(line, reason));
        }
    }
    b.finish(full)
}

/// The `ha-manager-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "ha-manager-status",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.ha = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn new_format_with_fencing_and_watchdog() {
        let text = "quorum OK\nmaster pve1 (active, Fri Apr  3 04:05:16 2026) - dynamic load CRS\nfencing armed (CRM watchdog active)\nlrm pve1 (active, watchdog active, Fri Apr  3 04:05:16 2026)\nlrm pve2 (idle, watchdog standby, Fri Apr  3 04:05:13 2026)\nservice vm:100 (pve1, started)\n";
        let s = parse(text).unwrap();
        assert!(s.quorum_ok);
        let m = s.master.unwrap();
        assert_eq!((m.node.as_str(), m.state.as_str()), ("pve1", "active"));
        assert_eq!(m.time.as_deref(), Some("Fri Apr  3 04:05:16 2026"));
        assert_eq!(m.extra, vec!["dynamic load CRS"]);
        let f = s.fencing.unwrap();
        assert_eq!(
            (f.state.as_str(), f.watchdog.as_deref()),
            ("armed", Some("CRM watchdog active"))
        );
        assert_eq!(s.lrms[1].state, "idle");
        assert_eq!(s.lrms[1].watchdog.as_deref(), Some("watchdog standby"));
        assert_eq!(s.lrms[1].time.as_deref(), Some("Fri Apr  3 04:05:13 2026"));
        assert_eq!(s.services[0].vmid, Some(100));
    }

    #[test]
    fn disarmed_fencing_and_dead_states() {
        let text = "quorum No quorum on node 'pve2'!\nmaster pve1 (old timestamp - dead?, Tue Mar  3 10:02:11 2026)\nfencing disarmed, resource mode: freeze (CRM watchdog released)\nlrm pve1 (maintenance mode, Tue Mar  3 10:02:08 2026)\nlrm pve3 (unable to read lrm status)\n";
        let s = parse(text).unwrap();
        assert!(!s.quorum_ok);
        assert_eq!(s.master.unwrap().state, "old timestamp - dead?");
        let f = s.fencing.unwrap();
        assert_eq!(
            (f.state.as_str(), f.resource_mode.as_deref()),
            ("disarmed", Some("freeze"))
        );
        assert_eq!(s.lrms[0].state, "maintenance mode");
        assert_eq!(s.lrms[1].state, "unknown");
    }

    #[test]
    fn errors() {
        assert!(parse("").is_err());
        assert_eq!(parse("quorum OK\nwhat ever\n").unwrap_err().line, 2);
    }
}
