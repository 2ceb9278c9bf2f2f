//! `systemctl is-active UNIT...` (FORMATS.md §8.4): one state word per unit in argument order,
//! without unit names; the exit status only says whether any unit is active, so the words
//! are read, not the status.

use serde::Serialize;

use super::ParseError;
use super::common::{lines, locale_noise};
use super::{Keep, Read, Scope};

pub const KIND: &str = "systemctl-is-active";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "systemctl is-active UNIT...: one state per unit",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// The words systemd prints (`unknown` on older systemd for a missing unit, `inactive` now).
const STATES: &[&str] = &[
    "active",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "reloading",
    "refreshing",
    "maintenance",
    "unknown",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitState {
    /// The unit, when known (from the argument list or a `unit state` line); else null.
    pub unit: Option<String>,
    pub state: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemctlIsActive {
    pub units: Vec<UnitState>,
    pub all_active: bool,
}

/// Parses the words; lines may also be `unit state` / `unit: state` pairs (hand-made
/// captures). Without unit names the states are paired by position by [`parse_with_units`].
pub fn parse(text: &str) -> Result<SystemctlIsActive, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut units = Vec::new();
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text.trim();
        if is_noise || t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        let (unit, state) = match tokens.as_slice() {
            [s] => (None, *s),
            [u, s] => (Some(u.trim_end_matches(':').to_owned()), *s),
            _ => {
                return Err(ParseError::new(
                    KIND,
                    line.no,
                    line.text,
                    "expected one state word per line",
                ));
            }
        };
        if !STATES.contains(&state) {
            return Err(ParseError::new(
                KIND,
                line.no,
                line.text,
                format!("\"{state}\" is not a systemd unit state"),
            ));
        }
        units.push(UnitState {
            unit,
            state: state.to_owned(),
            active: state == "active",
        });
    }
    if units.is_empty() {
        return Err(ParseError::new(KIND, 0, "", "no unit states"));
    }
    Ok(SystemctlIsActive {
        all_active: units.iter().all(|u| u.active),
        units,
    })
}

/// Pairs the words with the unit list given to `systemctl is-active`, by position.
pub fn parse_with_units(units: &[&str], text: &str) -> Result<SystemctlIsActive, ParseError> {
    let mut out = parse(text)?;
    if out.units.len() != units.len() {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            format!("{} states for {} units", out.units.len(), units.len()),
        ));
    }
    for (u, name) in out.units.iter_mut().zip(units) {
        if u.unit.is_none() {
            u.unit = Some((*name).to_owned());
        }
    }
    Ok(out)
}

/// The PVE units whose state the snapshot records.
pub const UNITS: &[&str] = &[
    "pve-cluster",
    "pvedaemon",
    "pveproxy",
    "pvestatd",
    "corosync",
    "pve-ha-lrm",
    "pve-ha-crm",
];

fn units() -> serde_json::Value {
    serde_json::json!({ "units": UNITS })
}

/// The `systemctl-is-active` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "systemctl-is-active",
    scope: Scope::Node,
    vars: units,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse_with_units(UNITS, &out.stdout_text()).map_err(|e| e.to_string())?;
    for u in parsed.units {
        if let Some(name) = u.unit {
            k.node.services.insert(name, u.state);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_position() {
        let s = parse_with_units(&["pve-cluster", "corosync"], "active\ninactive\n").unwrap();
        assert_eq!(s.units[1].unit.as_deref(), Some("corosync"));
        assert!(!s.units[1].active);
        assert!(!s.all_active);
        assert!(parse_with_units(&["a"], "active\nactive\n").is_err());
    }

    #[test]
    fn rejects_non_words() {
        assert_eq!(
            parse("active\nFailed to connect to bus: No such file\n")
                .unwrap_err()
                .line,
            2
        );
        assert!(parse("").is_err());
    }
}
