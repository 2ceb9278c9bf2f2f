//! When the node's package lists were last refreshed (kind `apt-lists-stamp`): the output of
//! `date +%s; stat -c '%Y %n' PATHS…` (GNU coreutils `stat`, `%Y` = modification time in
//! seconds since the epoch, `%n` = the name). The paths are apt's lists directory
//! (`Dir::State::lists`, which `apt-get update` renames fresh indexes into), its `partial/`
//! download directory, the binary cache `Dir::Cache::pkgcache` that apt rebuilds after an
//! update, and `update-success-stamp` of apt's periodic job. The node's own clock comes first,
//! so the age does not depend on the jump host's clock.

use serde::Serialize;

use super::ParseError;
use super::common::lines;
use super::{Keep, Read, Scope};

pub const KIND: &str = "apt-lists-stamp";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "date +%s; stat -c '%Y %n' of apt's lists and cache: when the lists were refreshed",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamp {
    pub path: String,
    pub mtime: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListsStamp {
    /// The node's clock (`date +%s`).
    pub now: i64,
    pub stamps: Vec<Stamp>,
    /// The newest of the stamps: when the lists were last refreshed.
    pub newest: Option<i64>,
    /// `now - newest`, in seconds; null without any stamp.
    pub age_seconds: Option<i64>,
}

/// Parses the clock line, then one `MTIME PATH` line per path that exists (`stat` prints
/// nothing on stdout for a missing one).
pub fn parse(text: &str) -> Result<ListsStamp, ParseError> {
    let lines = lines(text);
    let mut it = lines.iter().filter(|l| !l.text.trim().is_empty());
    let first = it
        .next()
        .ok_or_else(|| ParseError::new(KIND, 0, "", "the output is empty"))?;
    let now: i64 = first.text.trim().parse().map_err(|_| {
        ParseError::new(
            KIND,
            first.no,
            first.text,
            "expected the node's clock (`date +%s`)",
        )
    })?;
    let mut stamps = Vec::new();
    for l in it {
        let (mtime, path) = l
            .text
            .trim()
            .split_once(' ')
            .and_then(|(m, p)| Some((m.parse::<i64>().ok()?, p)))
            .ok_or_else(|| {
                ParseError::new(
                    KIND,
                    l.no,
                    l.text,
                    "expected `MTIME PATH` (`stat -c '%Y %n'`)",
                )
            })?;
        stamps.push(Stamp {
            path: path.to_owned(),
            mtime,
        });
    }
    let newest = stamps.iter().map(|s| s.mtime).max();
    Ok(ListsStamp {
        now,
        age_seconds: newest.map(|n| now - n),
        newest,
        stamps,
    })
}

/// The `apt-lists-stamp` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "apt-lists-stamp",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    // `stat` exits 1 when one of the paths is missing (the binary cache after
    // `apt-get clean`); the others are still printed.
    k.node.apt_lists_age_seconds = parse(&out.stdout_text())
        .map_err(|e| e.to_string())?
        .age_seconds;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_stamp_gives_the_age() {
        let s = parse(
            "1764900000\n1764800000 /var/lib/apt/lists\n1764890000 /var/cache/apt/pkgcache.bin\n",
        )
        .unwrap();
        assert_eq!((s.newest, s.age_seconds), (Some(1764890000), Some(10000)));
        let s = parse("1764900000\n").unwrap();
        assert_eq!(s.age_seconds, None);
        assert_eq!(parse("x\n").unwrap_err().line, 1);
        assert_eq!(parse("1\nnope\n").unwrap_err().line, 2);
    }
}
