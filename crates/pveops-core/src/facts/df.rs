//! `df -B1 --output=avail,target PATH…` (kind `df`): free bytes on the filesystems that hold
//! the paths. GNU coreutils `src/df.c`: with `--output` the header row is the field titles
//! (`Avail` for `avail`, `Mounted on` for `target`; untranslated under `LC_ALL=C.UTF-8`),
//! numbers right-aligned and the last column left-aligned without padding; then one row per
//! PATH argument, in argument order, naming the mount that contains the path (so two paths
//! on `/` give two `/` rows). `-B1` makes every number whole bytes. A path that does not
//! exist gets no row: df says `df: /boot: No such file or directory` on STDERR (skipped here
//! should it be merged in); when no path exists df prints no table at all.

use serde::Serialize;

use super::ParseError;
use super::common::lines;

pub const KIND: &str = "df";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "df -B1 --output=avail,target PATH...: free bytes on the mount holding each path",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mount {
    pub avail_bytes: u64,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskFree {
    pub mounts: Vec<Mount>,
}

/// The header `--output=avail,target` prints, split at whitespace.
const HEADER: &[&str] = &["Avail", "Mounted", "on"];

/// Parses the table. The header is required; each row is the number, a run of whitespace and
/// the mount point, which may itself contain spaces.
pub fn parse(text: &str) -> Result<DiskFree, ParseError> {
    let mut mounts = Vec::new();
    let mut header = false;
    for l in lines(text) {
        let t = l.text;
        if t.trim().is_empty() || t.starts_with("df: ") {
            continue;
        }
        if !header {
            if !t.split_whitespace().eq(HEADER.iter().copied()) {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    "not the `Avail Mounted on` header of df -B1 --output=avail,target",
                ));
            }
            header = true;
            continue;
        }
        let row = t.trim_start();
        let (num, target) = row
            .split_once(char::is_whitespace)
            .map(|(n, rest)| (n, rest.trim_start()))
            .unwrap_or((row, ""));
        let avail_bytes = match num.parse::<u64>() {
            Ok(n) => n,
            // df.c prints a negative Avail when the filesystem reports fewer free blocks than
            // it reserves (f_bavail < 0, not on Linux's ext4/xfs): nothing is available.
            Err(_)
                if num.len() > 1
                    && num
                        .strip_prefix('-')
                        .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit())) =>
            {
                0
            }
            Err(_) if num == "-" => {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    "df does not know the free space of this filesystem (`-`)",
                ));
            }
            Err(_) => {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    "the free space is not a whole number of bytes (df -B1)",
                ));
            }
        };
        if target.is_empty() {
            return Err(ParseError::new(
                KIND,
                l.no,
                t,
                "a row without a mount point",
            ));
        }
        mounts.push(Mount {
            avail_bytes,
            target: target.to_owned(),
        });
    }
    if !header {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no `Avail Mounted on` header: df printed no table (does any path exist?)",
        ));
    }
    Ok(DiskFree { mounts })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_arguments() {
        let d = parse("      Avail Mounted on\n98765432100 /\n  412345678 /boot\n98765432100 /\n")
            .unwrap();
        assert_eq!(d.mounts.len(), 3);
        assert_eq!(
            d.mounts[1],
            Mount {
                avail_bytes: 412345678,
                target: "/boot".into()
            }
        );
        assert_eq!(d.mounts[2].target, "/");
        // A mount point with spaces; a merged STDERR line; only a header.
        let d = parse("Avail Mounted on\ndf: /x: No such file or directory\n5 /mnt/usb  disk\n")
            .unwrap();
        assert_eq!(d.mounts[0].target, "/mnt/usb  disk");
        assert!(parse("    Avail Mounted on\n").unwrap().mounts.is_empty());
        assert_eq!(
            parse("Avail Mounted on\n-4096 /odd\n").unwrap().mounts[0].avail_bytes,
            0
        );
    }

    #[test]
    fn header_and_numbers_are_required() {
        assert_eq!(parse("").unwrap_err().line, 0);
        assert_eq!(parse("98765432100 /\n").unwrap_err().line, 1);
        let e = parse("Avail Mounted on\n1.5G /\n").unwrap_err();
        assert_eq!((e.kind, e.line), (KIND, 2));
        assert_eq!(parse("Avail Mounted on\n- /proc\n").unwrap_err().line, 2);
        assert_eq!(parse("Avail Mounted on\n12345\n").unwrap_err().line, 2);
        assert_eq!(parse("Avail Mounted on\n-- /\n").unwrap_err().line, 2);
    }
}
