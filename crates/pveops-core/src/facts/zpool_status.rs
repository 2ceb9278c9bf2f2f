//! `zpool status -x` (FORMATS.md §8.3): `all pools are healthy`, `no pools available`, or the
//! full status of each unhealthy pool (`pool:`, `state:`, `status:`, `action:`, `see:`,
//! `scan:`, a `config:` device table with TAB-indented rows, `errors:`).

use serde::Serialize;

use super::ParseError;
use super::common::{Line, lines, locale_noise};

pub const KIND: &str = "zpool-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "zpool status -x: healthy, or each unhealthy pool with its devices",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub name: String,
    /// Nesting level in the config tree: 0 = the pool itself.
    pub depth: usize,
    pub state: Option<String>,
    pub read: Option<String>,
    pub write: Option<String>,
    pub cksum: Option<String>,
    /// Text after the counters, e.g. `was /dev/disk8s1`.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    pub name: String,
    pub state: Option<String>,
    pub status: Option<String>,
    pub action: Option<String>,
    pub see: Option<String>,
    pub scan: Option<String>,
    pub errors: Option<String>,
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZpoolStatus {
    /// True for `all pools are healthy`, `no pools available` and `pool 'x' is healthy`.
    pub healthy: bool,
    pub no_pools: bool,
    /// The unhealthy pools.
    pub pools: Vec<Pool>,
}

const KEYS: &[&str] = &[
    "pool",
    "state",
    "status",
    "action",
    "see",
    "scan",
    "config",
    "errors",
    "remove",
    "checkpoint",
];

fn key_line(t: &str) -> Option<(&str, &str)> {
    // Labels are right-aligned: `  pool: x`, ` state: x`, `   see: x`.
    let (k, v) = t.trim_start().split_once(':')?;
    KEYS.contains(&k).then(|| (k, v.trim()))
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

fn indent_width(raw: &str) -> usize {
    // A TAB is the table's base indent; the tree below it is indented by 2 spaces per level.
    raw.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 8 } else { 1 })
        .sum()
}

pub fn parse(text: &str) -> Result<ZpoolStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = ZpoolStatus {
        healthy: false,
        no_pools: false,
        pools: Vec::new(),
    };
    let mut last_key: Option<&str> = None;
    let mut table_base: Option<usize> = None;
    let mut saw_any = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let trimmed = t.trim();
        if trimmed == "all pools are healthy"
            || (trimmed.starts_with("pool '") && trimmed.ends_with("' is healthy"))
        {
            out.healthy = true;
            saw_any = true;
            continue;
        }
        if trimmed == "no pools available" {
            out.healthy = true;
            out.no_pools = true;
            saw_any = true;
            continue;
        }
        if let Some((k, v)) = key_line(t) {
            saw_any = true;
            if k == "pool" {
                out.pools.push(Pool {
                    name: v.to_owned(),
                    state: None,
                    status: None,
                    action: None,
                    see: None,
                    scan: None,
                    errors: None,
                    devices: Vec::new(),
                });
                table_base = None;
                last_key = Some("pool");
                continue;
            }
            let Some(pool) = out.pools.last_mut() else {
                return Err(err(line, "a field before the first \"pool:\" line"));
            };
            let v = (!v.is_empty()).then(|| v.to_owned());
            match k {
                "state" => pool.state = v,
                "status" => pool.status = v,
                "action" => pool.action = v,
                "see" => pool.see = v,
                "scan" => pool.scan = v,
                "errors" => pool.errors = v,
                _ => {}
            }
            last_key = Some(k);
            continue;
        }
        let Some(pool) = out.pools.last_mut() else {
            return Err(err(
                line,
                "expected \"all pools are healthy\" or a \"pool:\" line",
            ));
        };
        match last_key {
            Some("config") => {
                let tokens: Vec<&str> = trimmed.split_whitespace().collect();
                if tokens.first() == Some(&"NAME") && tokens.get(1) == Some(&"STATE") {
                    table_base = Some(indent_width(line.raw));
                    continue;
                }
                let base = table_base.unwrap_or(0);
                let depth = indent_width(line.raw).saturating_sub(base) / 2;
                let mut it = trimmed.split_whitespace();
                let name = it.next().unwrap_or_default().to_owned();
                let state = it.next().map(str::to_owned);
                let read = it.next().map(str::to_owned);
                let write = it.next().map(str::to_owned);
                let cksum = it.next().map(str::to_owned);
                let note: Vec<&str> = it.collect();
                pool.devices.push(Device {
                    name,
                    depth,
                    state,
                    read,
                    write,
                    cksum,
                    note: (!note.is_empty()).then(|| note.join(" ")),
                });
            }
            // Continuation lines of `status:`, `action:`, `scan:` and the file list of
            // `errors:` are indented with a TAB.
            Some(k) => {
                let slot = match k {
                    "status" => &mut pool.status,
                    "action" => &mut pool.action,
                    "scan" => &mut pool.scan,
                    "errors" => &mut pool.errors,
                    "see" => &mut pool.see,
                    _ => return Err(err(line, "unexpected continuation line")),
                };
                let joined = match slot.take() {
                    Some(prev) => format!("{prev} {trimmed}"),
                    None => trimmed.to_owned(),
                };
                *slot = Some(joined);
            }
            None => return Err(err(line, "unexpected line")),
        }
    }
    if !saw_any {
        return Err(ParseError::new(KIND, 0, "", "no zpool status output"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn healthy_and_no_pools() {
        assert!(parse("all pools are healthy\n").unwrap().healthy);
        let s = parse("no pools available\n").unwrap();
        assert!(s.healthy && s.no_pools);
        assert!(parse("").is_err());
        assert_eq!(parse("zpool: command not found\n").unwrap_err().line, 1);
    }

    #[test]
    fn degraded_with_tabs() {
        let text = "  pool: rpool\n state: DEGRADED\nstatus: One or more devices could not be used.\n\tSufficient replicas exist.\naction: Replace the device.\n  scan: resilvered 1G in 00:01:00\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\trpool       DEGRADED     0     0     0\n\t  mirror-0  DEGRADED     0     0     0\n\t    sda3    ONLINE       0     0     0\n\t    sdb3    FAULTED      3     0     0  too many errors\n\nerrors: No known data errors\n";
        let s = parse(text).unwrap();
        let p = &s.pools[0];
        assert_eq!(p.state.as_deref(), Some("DEGRADED"));
        assert_eq!(
            p.status.as_deref(),
            Some("One or more devices could not be used. Sufficient replicas exist.")
        );
        assert_eq!(p.devices.len(), 4);
        assert_eq!(p.devices[2].depth, 2);
        assert_eq!(p.devices[3].note.as_deref(), Some("too many errors"));
        assert!(!s.healthy);
    }
}
