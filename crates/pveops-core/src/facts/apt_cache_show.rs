//! `apt-cache show PKG=VERSION…` (kind `apt-cache-show`): the package records of the
//! selected versions. apt's `ShowPackage` (apt-private/private-show.cc, called by
//! cmdline/apt-cache.cc) prints, per selected version, with `DisplayRecordV1` (apt-cache's
//! `APT::Cache::Show::Version` 1; `apt show` uses the rewritten V2 layout instead) the version's
//! deb822 record as it stands in its index: a Packages index when one has the version
//! (`LookupParser` skips the `NotSource` /var/lib/dpkg/status), else dpkg's status record
//! (with `Status:`). The record's `Description` is replaced by the translated one, followed by
//! `Description-md5:`; each record ends with one empty line. Fields are `Name: value`;
//! continuation lines start with a space (Description bodies, `Conffiles`). Debian Policy
//! §5.6.20: `Installed-Size` is in KiB; `Size` is the .deb's size in bytes, a field of the
//! Packages index, absent from a record that only dpkg's status has. apt's notices and errors
//! (`N: Unable to locate package foo`, `E: No packages found`) go to STDERR; lines starting
//! `N: `, `W: ` or `E: ` are skipped should they be merged in.

use serde::Serialize;

use super::ParseError;
use super::common::{Line, lines};

pub const KIND: &str = "apt-cache-show";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "apt-cache show PKG=VERSION...: each version's record, Size (bytes) and Installed-Size (KiB)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub package: String,
    pub version: String,
    pub architecture: Option<String>,
    /// bytes
    pub size: Option<u64>,
    /// KiB
    pub installed_size_kib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Records {
    pub records: Vec<Record>,
}

/// The record being read: where it started and the fields taken so far.
struct Partial<'a> {
    first: Line<'a>,
    package: Option<String>,
    version: Option<String>,
    architecture: Option<String>,
    size: Option<u64>,
    installed_size_kib: Option<u64>,
}

impl<'a> Partial<'a> {
    fn new(first: Line<'a>) -> Self {
        Partial {
            first,
            package: None,
            version: None,
            architecture: None,
            size: None,
            installed_size_kib: None,
        }
    }

    fn finish(self) -> Result<Record, ParseError> {
        let first = self.first;
        let missing = |field: &str| {
            ParseError::new(
                KIND,
                first.no,
                first.text,
                format!("the record starting here has no {field}: field"),
            )
        };
        Ok(Record {
            package: self.package.ok_or_else(|| missing("Package"))?,
            version: self.version.ok_or_else(|| missing("Version"))?,
            architecture: self.architecture,
            size: self.size,
            installed_size_kib: self.installed_size_kib,
        })
    }
}

/// apt's messages (`_error->Notice/Warning/Error` print `N: `, `W: `, `E: `), normally on STDERR.
fn is_apt_message(t: &str) -> bool {
    ["N: ", "W: ", "E: "].iter().any(|p| t.starts_with(p))
}

/// Sets a field read once per record; a second one means two records ran together.
fn set_once<T>(slot: &mut Option<T>, value: T, l: Line<'_>, field: &str) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::new(
            KIND,
            l.no,
            l.text,
            format!(
                "a second {field}: field in one record (the empty line between records is missing)"
            ),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn number(value: &str, l: Line<'_>, what: &str) -> Result<u64, ParseError> {
    value
        .parse::<u64>()
        .map_err(|_| ParseError::new(KIND, l.no, l.text, format!("{what} is not a whole number")))
}

/// Parses the records in order. Empty input (nothing found, apt said so on STDERR) is no records.
pub fn parse(text: &str) -> Result<Records, ParseError> {
    let mut records = Vec::new();
    let mut cur: Option<Partial<'_>> = None;
    for l in lines(text) {
        let t = l.text;
        if t.trim().is_empty() {
            // Debian Policy §5.1: a blank (or whitespace-only) line ends a record.
            if let Some(p) = cur.take() {
                records.push(p.finish()?);
            }
            continue;
        }
        if is_apt_message(t) {
            continue;
        }
        if t.starts_with([' ', '\t']) {
            // A continuation line (Description body, Conffiles, …): no field we read has one.
            if cur.is_none() {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    "a continuation line outside any record",
                ));
            }
            continue;
        }
        let Some((name, value)) = t.split_once(':') else {
            return Err(ParseError::new(KIND, l.no, t, "not a `Field: value` line"));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError::new(KIND, l.no, t, "not a field name"));
        }
        let value = value.trim();
        let p = cur.get_or_insert_with(|| Partial::new(l));
        // Field names are case-insensitive (Debian Policy §5.1).
        let is = |f: &str| name.eq_ignore_ascii_case(f);
        if is("Package") || is("Version") {
            let field = if is("Package") { "Package" } else { "Version" };
            if value.is_empty() {
                return Err(ParseError::new(
                    KIND,
                    l.no,
                    t,
                    format!("an empty {field}: field"),
                ));
            }
            let slot = if is("Package") {
                &mut p.package
            } else {
                &mut p.version
            };
            set_once(slot, value.to_owned(), l, field)?;
        } else if is("Architecture") {
            set_once(&mut p.architecture, value.to_owned(), l, "Architecture")?;
        } else if is("Size") {
            let n = number(value, l, "the Size (bytes)")?;
            set_once(&mut p.size, n, l, "Size")?;
        } else if is("Installed-Size") {
            let n = number(value, l, "the Installed-Size (KiB)")?;
            set_once(&mut p.installed_size_kib, n, l, "Installed-Size")?;
        }
        // Every other field is skipped.
    }
    if let Some(p) = cur {
        records.push(p.finish()?);
    }
    Ok(Records { records })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const TWO: &str = "Package: pve-manager\nVersion: 9.1.2\nArchitecture: amd64\nInstalled-Size: 3412\nFilename: pool/pve-manager_9.1.2_amd64.deb\nSize: 612345\nDescription: Proxmox Virtual Environment Management Tools\n This package contains the management tools.\n .\n More text.\nDescription-md5: 0123\n\nPackage: pve-manager\nStatus: install ok installed\nInstalled-Size: 3409\nArchitecture: amd64\nVersion: 9.1.1\nConffiles:\n /etc/vzdump.conf 5b5b\nDescription: Proxmox Virtual Environment Management Tools\n This package contains the management tools.\n\n";

    #[test]
    fn records_are_read_in_order_with_sizes() {
        let r = parse(TWO).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(
            r.records[0],
            Record {
                package: "pve-manager".into(),
                version: "9.1.2".into(),
                architecture: Some("amd64".into()),
                size: Some(612345),
                installed_size_kib: Some(3412),
            }
        );
        // dpkg's status record has no Size.
        assert_eq!(r.records[1].version, "9.1.1");
        assert_eq!(r.records[1].size, None);
        assert_eq!(r.records[1].installed_size_kib, Some(3409));
    }

    #[test]
    fn apt_messages_empty_input_and_missing_trailing_blank_line() {
        assert!(parse("").unwrap().records.is_empty());
        let r = parse("N: Unable to locate package nope\nE: No packages found\n").unwrap();
        assert!(r.records.is_empty());
        let r = parse("W: x\nPackage: a\nVersion: 1\nSize: 5").unwrap();
        assert_eq!(r.records[0].size, Some(5));
        assert_eq!(r.records[0].architecture, None);
        // Case-insensitive field names, CRLF endings.
        let r = parse("package: a\r\nVERSION: 2\r\ninstalled-size: 7\r\n\r\n").unwrap();
        assert_eq!(r.records[0].installed_size_kib, Some(7));
    }

    #[test]
    fn bad_records_name_their_line() {
        let e = parse("Package: a\nSize: 1\n\nVersion: 2\n").unwrap_err();
        assert_eq!((e.line, e.kind), (1, KIND));
        assert!(e.reason.contains("Version"), "{e}");
        let e = parse("Package: a\nVersion: 1\n\nArchitecture: all\nVersion: 2\n").unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.reason.contains("Package"), "{e}");
        let e = parse("Package: a\nVersion: 1\nSize: 1.5M\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("Package: a\nVersion: 1\nInstalled-Size: -4\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse(" continuation\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("Package: a\nVersion: 1\nPackage: b\nVersion: 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("Package: a\nno colon here\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("Package:\nVersion: 1\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
