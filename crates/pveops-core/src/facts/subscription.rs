//! `pvesubscription get` (kind `subscription`): the node's subscription.
//!
//! pve-manager `PVE/CLI/pvesubscription.pm` (`$cmddef->{get}`, commit 14a22df3) prints the hash
//! `PVE/API2/Subscription.pm` `get` returns as `print "$_: $info->{$_}\n" for sort keys`:
//! one `key: value` line per key, keys sorted, a value as Perl stringifies it (an undefined
//! one prints `key: ` with a Perl warning on STDERR). The keys (`get`'s return schema):
//! `status` (enum `new`, `notfound`, `active`, `invalid`, `expired`, `suspended`; the `set`
//! call writes `New` until the shop answers), `checktime` (epoch of the last check), `key`,
//! `level` (`c` community, `b` basic, `s` standard, `p` premium; from the key
//! `pve<sockets><level>-…`), `message`, `nextduedate` (`YYYY-MM-DD`), `productname`,
//! `regdate` (`YYYY-MM-DD HH:MM:SS`), `serverid`, `signature` (offline keys), `sockets` (the
//! host's, `read_cpuinfo`), `url` (the shop). Without a key: `status: notfound`,
//! `message: There is no subscription key`, `serverid`, `url`. `read_etc_subscription` turns
//! an `active` key that does not fit the host (sockets, architecture) into `invalid` with the
//! reason in `message`. A value holding newlines (a shop message) continues on the next lines:
//! a line that is not `key: value` is appended to the previous value.
//! Also what the snapshot keeps of it: [`Subscription`], without the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{Line, lines, locale_noise, split_kv};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "subscription";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesubscription get: subscription status, level, key, due date and every field",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// The subscription, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedSubscription {
    /// As printed: `active`, `notfound`, `expired`, `invalid`, `new`/`New`, `suspended`.
    pub status: String,
    /// `c`, `b`, `s`, `p`.
    pub level: Option<String>,
    pub productname: Option<String>,
    pub key: Option<String>,
    pub nextduedate: Option<String>,
    pub regdate: Option<String>,
    pub serverid: Option<String>,
    /// Epoch of the last check against the shop.
    pub checktime: Option<i64>,
    pub message: Option<String>,
    pub sockets: Option<u64>,
    /// Every key printed, with its value.
    pub fields: BTreeMap<String, String>,
}

/// `pvesubscription get` (kind `subscription`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscription {
    pub status: String,
    pub level: Option<String>,
    pub productname: Option<String>,
    pub nextduedate: Option<String>,
    pub message: Option<String>,
}

/// The key and the server id are secrets, and `fields` repeats them: none of the three may
/// reach a snapshot, whose JSON goes into evidence bundles and onto `--json` output.
impl From<&ParsedSubscription> for Subscription {
    fn from(s: &ParsedSubscription) -> Self {
        let ParsedSubscription {
            status,
            level,
            productname,
            key: _,
            nextduedate,
            regdate: _,
            serverid: _,
            checktime: _,
            message,
            sockets: _,
            fields: _,
        } = s;
        Subscription {
            status: status.clone(),
            level: level.clone(),
            productname: productname.clone(),
            nextduedate: nextduedate.clone(),
            message: message.clone(),
        }
    }
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

/// PVE's keys: lower case words (`nextduedate`, `productname`, `public-key` style allowed).
fn is_field(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub fn parse(text: &str) -> Result<ParsedSubscription, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || (t.is_empty() && last.is_none()) {
            continue;
        }
        // Perl's warning for an undefined value goes to STDERR; skip it if captured along.
        if t.starts_with("Use of uninitialized value") {
            continue;
        }
        if let Some((k, v)) = split_kv(t).filter(|(k, _)| is_field(k)) {
            fields.insert(k.to_owned(), v.to_owned());
            last = Some(k.to_owned());
            continue;
        }
        match last.as_ref().and_then(|k| fields.get_mut(k)) {
            Some(value) => {
                value.push('\n');
                value.push_str(t);
            }
            None => {
                if let Some(d) = stderr::classify(line.no, t) {
                    return Err(err(line, d.message));
                }
                return Err(err(line, "expected `key: value` lines"));
            }
        }
    }
    for value in fields.values_mut() {
        let kept = value.trim_end_matches('\n').len();
        value.truncate(kept);
    }
    let Some(status) = fields.get("status").cloned() else {
        return Err(ParseError::new(KIND, 0, "", "no `status:` line"));
    };
    let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(ParsedSubscription {
        status,
        level: get("level"),
        productname: get("productname"),
        key: get("key"),
        nextduedate: get("nextduedate"),
        regdate: get("regdate"),
        serverid: get("serverid"),
        checktime: get("checktime").and_then(|c| c.trim().parse().ok()),
        message: get("message"),
        sockets: get("sockets").and_then(|s| s.trim().parse().ok()),
        fields,
    })
}

/// The `subscription` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "subscription",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.subscription = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn active_and_notfound() {
        let s = parse("checktime: 1767225600\nkey: pve2c-0123456789\nlevel: c\nnextduedate: 2026-12-31\nproductname: Proxmox VE Community Subscription 2 CPUs/year\nregdate: 2025-12-31 00:00:00\nserverid: 0123456789ABCDEF0123456789ABCDEF\nsockets: 1\nstatus: active\nurl: https://www.proxmox.com/en/proxmox-virtual-environment/pricing\n").unwrap();
        assert_eq!(s.status, "active");
        assert_eq!(s.checktime, Some(1767225600));
        assert_eq!(s.sockets, Some(1));
        assert_eq!(s.level.as_deref(), Some("c"));
        assert_eq!(s.fields.len(), 10);
        let n = parse(
            "message: There is no subscription key\nserverid: AB\nstatus: notfound\nurl: x\n",
        )
        .unwrap();
        assert_eq!((n.status.as_str(), n.key), ("notfound", None));
        assert_eq!(n.message.as_deref(), Some("There is no subscription key"));
    }

    #[test]
    fn multiline_message_and_empty_values() {
        let s = parse("message: first\nsecond\nsignature:\nstatus: invalid\n").unwrap();
        assert_eq!(s.message.as_deref(), Some("first\nsecond"));
        assert_eq!(s.fields.get("signature").map(String::as_str), Some(""));
        assert!(parse("garbage here\n").is_err());
        assert_eq!(parse("key: x\n").unwrap_err().line, 0);
        assert!(parse("").is_err());
    }
}
