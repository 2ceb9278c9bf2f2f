//! `qm config ID` and `pct config ID` (FORMATS.md §3.3, §4.3): sorted `key: value` lines,
//! `description` (and `sshkeys`) URI-encoded, and for containers the raw `lxc.*` entries
//! last, in file order, possibly repeated.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ParseError;
use super::common::{is_key, lines, locale_noise, percent_decode, split_kv};
use super::stderr;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuestConfig {
    /// key → value; `description` and `sshkeys` percent-decoded.
    pub config: BTreeMap<String, String>,
    /// The `lock` key (backup, migrate, snapshot-delete, ...), or null.
    pub lock: Option<String>,
    /// `template: 1`.
    pub template: bool,
    /// Containers: raw `lxc.*` keys as `[key, value]`, in order (keys may repeat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lxc: Option<Vec<(String, String)>>,
}

pub(crate) fn parse(
    kind: &'static str,
    text: &str,
    container: bool,
) -> Result<GuestConfig, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut config = BTreeMap::new();
    let mut lxc = Vec::new();
    let mut seen_any = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let kv = split_kv(t).filter(|(k, _)| is_key(k));
        let Some((key, value)) = kv else {
            // e.g. `Configuration file 'nodes/pve/qemu-server/105.conf' does not exist`.
            let reason = match stderr::classify(line.no, t) {
                Some(d) => d.message,
                None => "expected a \"key: value\" line".to_owned(),
            };
            return Err(ParseError::new(kind, line.no, t, reason));
        };
        seen_any = true;
        if container && key.starts_with("lxc.") {
            // Raw LXC keys are printed last, unsorted and possibly repeated
            // (`lxc.mount.entry`, `lxc.cgroup2.devices.allow`): keep them as an ordered list.
            lxc.push((key.to_owned(), value.to_owned()));
            continue;
        }
        let value = match key {
            // encode_text escapes control/high-bit chars, `:` and `%` (FORMATS.md §3.3);
            // sshkeys are stored URI-encoded.
            "description" | "sshkeys" => percent_decode(value),
            _ => value.to_owned(),
        };
        config.insert(key.to_owned(), value);
    }
    if !seen_any {
        return Err(ParseError::new(kind, 0, "", "no configuration lines"));
    }
    Ok(GuestConfig {
        lock: config.get("lock").cloned(),
        template: config.get("template").is_some_and(|v| v == "1"),
        config,
        lxc: container.then_some(lxc),
    })
}
