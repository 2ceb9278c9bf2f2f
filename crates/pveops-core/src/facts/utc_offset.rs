//! `date +%z` (kind `utc-offset`): the node's offset from UTC now, as GNU coreutils `date`
//! prints the `%z` conversion (gnulib `nstrftime`: `+hhmm` numeric time zone, sign always
//! present, `+0000` for UTC). vzdump names its backup files in this local time, while a PBS
//! backup time is UTC (pve-manager `PVE/VZDump.pm`: `strftime("-%Y_%m_%d-%H_%M_%S",
//! localtime($task->{backup_time}))` for the file name, `strftime("%FT%TZ",
//! gmtime($task->{backup_time}))` for PBS), so a vzdump backup's absolute time needs it.

use serde::Serialize;

use super::ParseError;
use super::common::lines;
use super::{Keep, Read, Scope};

pub const KIND: &str = "utc-offset";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "date +%z: the node's UTC offset, for the local times in vzdump file names",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UtcOffset {
    /// As printed (`+0100`).
    pub text: String,
    /// Seconds east of UTC (`+0100` → 3600, `-0530` → -19800).
    pub seconds: i32,
}

/// Reads the one line `date +%z` prints.
pub fn parse(text: &str) -> Result<UtcOffset, ParseError> {
    let all = lines(text);
    let Some(l) = all.iter().find(|l| !l.text.trim().is_empty()) else {
        return Err(ParseError::new(KIND, 0, "", "no output"));
    };
    let t = l.text.trim();
    let bad = || {
        ParseError::new(
            KIND,
            l.no,
            l.text,
            "not a `+hhmm` UTC offset as `date +%z` prints it",
        )
    };
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = digits[2..].parse().map_err(|_| bad())?;
    // Real zones lie within -12:00 and +14:00; minutes are 00, 30 or 45.
    if hours > 14 || minutes > 59 {
        return Err(bad());
    }
    Ok(UtcOffset {
        text: t.to_string(),
        seconds: sign * (hours * 3600 + minutes * 60),
    })
}

/// The `utc-offset` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "utc-offset",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.utc_offset_seconds = Some(parsed.seconds);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn offsets_east_west_and_utc() {
        assert_eq!(parse("+0100\n").unwrap().seconds, 3600);
        assert_eq!(parse("-0530\n").unwrap().seconds, -19800);
        assert_eq!(parse("+0000\n").unwrap().seconds, 0);
        assert_eq!(parse("+0545").unwrap().seconds, 20700);
    }

    #[test]
    fn anything_else_is_an_error_naming_the_line() {
        for bad in ["", "CET\n", "+1\n", "+01:00\n", "0100\n", "+9900\n"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind, KIND, "{bad:?}");
        }
    }
}
