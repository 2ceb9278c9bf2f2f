//! `qm status ID [--verbose]` and `pct status ID [--verbose]` (FORMATS.md §3.2, §4.2):
//! `status: X`, and with `--verbose` every key sorted; qm nests hashes as `key:` followed by
//! TAB-indented children (`print_recursive_hash`), pct prints flat lines.

use serde::Serialize;
use serde_json::{Map, Value};

use super::ParseError;
use super::common::{Line, lines, locale_noise};
use super::stderr;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuestStatus {
    /// `running`, `stopped`, a QMP run state (`paused`, ...) or `unknown`.
    pub status: String,
    /// `qmpstatus` with `qm status --verbose` (the QMP run state).
    pub qmpstatus: Option<String>,
    pub lock: Option<String>,
    /// Every other `key: value`; nested blocks as objects (values kept as printed).
    pub fields: Map<String, Value>,
}

struct Entry<'a> {
    line: Line<'a>,
    depth: usize,
    body: &'a str,
}

fn depth_of(raw: &str) -> (usize, &str) {
    // Children are indented with one more TAB per level; tolerate pastes where a TAB
    // became 4 or 8 spaces.
    let mut depth = 0;
    let mut rest = raw;
    loop {
        if let Some(r) = rest.strip_prefix('\t') {
            depth += 1;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("    ") {
            depth += 1;
            rest = r;
        } else {
            break;
        }
    }
    (depth, rest.trim_end())
}

fn build(
    kind: &'static str,
    entries: &[Entry<'_>],
    pos: &mut usize,
    depth: usize,
) -> Result<Value, ParseError> {
    let mut map = Map::new();
    let mut items = Vec::new();
    while let Some(e) = entries.get(*pos) {
        if e.depth < depth {
            break;
        }
        if e.depth > depth {
            return Err(ParseError::new(
                kind,
                e.line.no,
                e.line.text,
                "indented deeper than its parent",
            ));
        }
        *pos += 1;
        if let Some((k, v)) = e.body.split_once(": ") {
            map.insert(k.to_owned(), Value::String(v.to_owned()));
        } else if let Some(k) = e.body.strip_suffix(':') {
            let has_children = entries.get(*pos).is_some_and(|n| n.depth > depth);
            if has_children {
                let child = build(kind, entries, pos, depth + 1)?;
                map.insert(k.to_owned(), child);
            } else if e.line.raw.ends_with(": ") {
                // `key: ` with an empty scalar (trailing blank preserved).
                map.insert(k.to_owned(), Value::String(String::new()));
            } else {
                // An empty hash or array prints a bare `key:` (e.g. `timed_stats:`).
                map.insert(k.to_owned(), Value::Object(Map::new()));
            }
        } else if depth > 0 {
            // Array items print without a key.
            items.push(Value::String(e.body.to_owned()));
        } else {
            let reason = match stderr::classify(e.line.no, e.line.text) {
                Some(d) => d.message,
                None => "expected a \"key: value\" line".to_owned(),
            };
            return Err(ParseError::new(kind, e.line.no, e.line.text, reason));
        }
    }
    if map.is_empty() && !items.is_empty() {
        return Ok(Value::Array(items));
    }
    Ok(Value::Object(map))
}

pub(crate) fn parse(kind: &'static str, text: &str) -> Result<GuestStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let entries: Vec<Entry<'_>> = lines
        .iter()
        .zip(noise)
        .filter(|(l, n)| !n && !l.text.is_empty())
        .map(|(l, _)| {
            let (depth, body) = depth_of(l.raw);
            Entry {
                line: *l,
                depth,
                body,
            }
        })
        .collect();
    if let Some(first) = entries.first()
        && first.depth > 0
    {
        return Err(ParseError::new(
            kind,
            first.line.no,
            first.line.text,
            "the first line is indented",
        ));
    }
    let mut pos = 0;
    let Value::Object(mut fields) = build(kind, &entries, &mut pos, 0)? else {
        return Err(ParseError::new(kind, 0, "", "no status lines"));
    };
    let Some(Value::String(status)) = fields.remove("status") else {
        let (no, text) = entries
            .first()
            .map_or((0, ""), |e| (e.line.no, e.line.text));
        return Err(ParseError::new(kind, no, text, "no \"status:\" line"));
    };
    let get = |k: &str| match fields.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(GuestStatus {
        qmpstatus: get("qmpstatus"),
        lock: get("lock"),
        status,
        fields,
    })
}
