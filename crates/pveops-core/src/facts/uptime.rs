//! `cat /proc/uptime` (kind `uptime`): how long the node has run since it booted, read from the
//! kernel without a PVE tool (so it answers when pvestatd or pmxcfs do not). Linux
//! `fs/proc/uptime.c` `uptime_proc_show` prints one line, `"%lu.%02lu %lu.%02lu\n"`: the
//! seconds since boot and the idle seconds summed over every CPU, both with two decimals.
//! The file also holds what the snapshot keeps of it (`NodeSnapshot::uptime_seconds`).

use serde::Serialize;

use super::ParseError;
use super::common::lines;
use super::{Keep, Read, Scope};

pub const KIND: &str = "uptime";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "cat /proc/uptime: seconds since the node booted, idle seconds over all CPUs",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// The uptime read of the catalog, on every node.
pub const READ: Read = Read {
    template: "uptime",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uptime {
    /// Whole seconds since the node booted (the kernel's hundredths dropped).
    pub seconds: u64,
    /// Idle seconds summed over every CPU: more than `seconds` on an idle node with several.
    pub idle_seconds: f64,
}

/// Reads the one line of `/proc/uptime`.
pub fn parse(text: &str) -> Result<Uptime, ParseError> {
    let all = lines(text);
    let Some(l) = all.iter().find(|l| !l.text.trim().is_empty()) else {
        return Err(ParseError::new(KIND, 0, "", "no output"));
    };
    let bad = || {
        ParseError::new(
            KIND,
            l.no,
            l.text,
            "not the two `seconds.hundredths` numbers /proc/uptime holds",
        )
    };
    let mut words = l.text.split_ascii_whitespace();
    let (Some(up), Some(idle), None) = (words.next(), words.next(), words.next()) else {
        return Err(bad());
    };
    let number = |w: &str| {
        let (whole, frac) = w.split_once('.')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(whole) && digits(frac)).then_some(())?;
        Some((whole.parse::<u64>().ok()?, w.parse::<f64>().ok()?))
    };
    let (Some((seconds, _)), Some((_, idle_seconds))) = (number(up), number(idle)) else {
        return Err(bad());
    };
    Ok(Uptime {
        seconds,
        idle_seconds,
    })
}

/// A node whose `/proc/uptime` cannot be read (cat failed) simply lacks the fact: the uptime
/// decides nothing, and the failed command stays in the snapshot's records with its status.
fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    if !out.success() {
        return Ok(());
    }
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.uptime_seconds = Some(parsed.seconds);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_idle_seconds() {
        let u = parse("350735.47 1391213.55\n").unwrap();
        assert_eq!(u.seconds, 350_735);
        assert!((u.idle_seconds - 1_391_213.55).abs() < 1e-6);
    }

    #[test]
    fn anything_else_names_the_line() {
        for bad in [
            "350735.47\n",
            "up 4 days\n",
            "1 2 3\n",
            "-1.00 2.00\n",
            "1e5.00 2.00\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.line, 1, "{bad:?}: {e}");
        }
        assert_eq!(parse("").unwrap_err().line, 0);
    }
}
