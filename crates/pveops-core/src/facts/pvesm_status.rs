//! `pvesm status` (FORMATS.md §2): a table with a per-node Name width, sizes in KiB, `N/A`
//! for disabled storages, and storage errors warned to STDERR that may be mixed in.
//! Also what the snapshot keeps of it: [`Storage`].

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{Line, finite, lines, locale_noise};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "pvesm-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesm status: storages with status and sizes in bytes, storage errors from STDERR",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One row of `pvesm status`, as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedStorage {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `active`, `inactive` (enabled but not available) or `disabled`.
    pub status: String,
    pub enabled: bool,
    pub active: bool,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
    /// Used percentage as printed; null for `N/A` (disabled storages).
    pub used_pct: Option<f64>,
    /// The STDERR message about this storage, when one was captured.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PvesmStatus {
    pub storages: Vec<ParsedStorage>,
    /// `kib` (`Total (KiB)`, libpve-storage-perl >= 9.0.14) or `plain` (`Total`, PVE 5.1-9.0).
    pub header_style: Option<&'static str>,
    /// Recognised STDERR messages (storage errors) found in the capture.
    pub diagnostics: Vec<stderr::Diagnostic>,
}

/// One row of `pvesm status` (kind `pvesm-status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Storage {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
    pub used_pct: Option<f64>,
    pub error: Option<String>,
}

impl From<&ParsedStorage> for Storage {
    fn from(s: &ParsedStorage) -> Self {
        let ParsedStorage {
            name,
            kind,
            status,
            enabled: _,
            active: _,
            total_bytes,
            used_bytes,
            avail_bytes,
            used_pct,
            error,
        } = s;
        Storage {
            name: name.clone(),
            kind: kind.clone(),
            status: status.clone(),
            total_bytes: *total_bytes,
            used_bytes: *used_bytes,
            avail_bytes: *avail_bytes,
            used_pct: finite(*used_pct),
            error: error.clone(),
        }
    }
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

fn is_header(t: &str) -> bool {
    let tokens: Vec<&str> = t.split_whitespace().collect();
    tokens.first() == Some(&"Name")
        && tokens.get(1) == Some(&"Type")
        && tokens.get(2) == Some(&"Status")
}

fn kib(line: &Line<'_>, s: Option<&&str>, what: &str) -> Result<u64, ParseError> {
    // Sizes are KiB (API bytes / 1024, `%d`), FORMATS.md §2 / §0.9.
    s.and_then(|v| v.parse::<u64>().ok())
        .map(|v| v.saturating_mul(1024))
        .ok_or_else(|| err(line, format!("the {what} size is not a number")))
}

/// Parses stdout (possibly with STDERR mixed in, as a terminal capture has it).
pub fn parse(text: &str) -> Result<PvesmStatus, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = PvesmStatus {
        storages: Vec::new(),
        header_style: None,
        diagnostics: Vec::new(),
    };
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        // Locate the table by its header line, never by line number: storage plugins warn
        // to STDERR before it (FORMATS.md §0.5c, pvesm-status.zfs-pool-missing-stderr-mixed).
        if is_header(t) {
            out.header_style = Some(if t.contains("(KiB)") { "kib" } else { "plain" });
            continue;
        }
        if let Some(d) = stderr::classify(line.no, t) {
            out.diagnostics.push(d);
            continue;
        }
        if out.header_style.is_none() {
            return Err(err(
                line,
                "expected the \"Name Type Status\" header before any row",
            ));
        }
        // The Name column is `%-${maxlen}s` with maxlen = longest id + 1, so its width varies
        // per node (FORMATS.md §2): split on whitespace (storage ids contain none).
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.len() != 7 {
            return Err(err(
                line,
                format!("expected 7 columns, found {}", tokens.len()),
            ));
        }
        let status = tokens.get(2).copied().unwrap_or_default();
        if !matches!(status, "active" | "inactive" | "disabled") {
            return Err(err(line, format!("unknown status \"{status}\"")));
        }
        let pct = tokens.get(6).copied().unwrap_or_default();
        // `N/A` for disabled storages (`% 8s`), else `% 7.2f%%`.
        let used_pct = if pct == "N/A" {
            None
        } else {
            Some(
                pct.strip_suffix('%')
                    .and_then(|p| p.parse::<f64>().ok())
                    .ok_or_else(|| err(line, "the % column is neither a percentage nor N/A"))?,
            )
        };
        out.storages.push(ParsedStorage {
            name: tokens.first().copied().unwrap_or_default().to_owned(),
            kind: tokens.get(1).copied().unwrap_or_default().to_owned(),
            status: status.to_owned(),
            enabled: status != "disabled",
            active: status == "active",
            total_bytes: kib(line, tokens.get(3), "total")?,
            used_bytes: kib(line, tokens.get(4), "used")?,
            avail_bytes: kib(line, tokens.get(5), "available")?,
            used_pct,
            error: None,
        });
    }
    if out.header_style.is_none() && out.diagnostics.is_empty() {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no \"Name Type Status\" table header found",
        ));
    }
    attach_errors(&mut out);
    Ok(out)
}

/// Parses stdout and STDERR captured separately: errors are attached to their storages.
pub fn parse_with_stderr(stdout: &str, stderr_text: &str) -> Result<PvesmStatus, ParseError> {
    let mut out = parse(stdout)?;
    if let Ok(e) = stderr::parse(stderr_text) {
        out.diagnostics.extend(e.diagnostics);
    }
    attach_errors(&mut out);
    Ok(out)
}

fn attach_errors(out: &mut PvesmStatus) {
    for s in &mut out.storages {
        if s.error.is_none() {
            s.error = out
                .diagnostics
                .iter()
                .find(|d| d.subject.as_deref() == Some(s.name.as_str()))
                .map(|d| d.message.clone());
        }
    }
}

/// The `pvesm-status` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "pvesm-status",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed =
        parse_with_stderr(&out.stdout_text(), &out.stderr_text()).map_err(|e| e.to_string())?;
    k.node.storages = parsed.storages.iter().map(Into::into).collect();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn both_header_styles() {
        let new = "Name             Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %\nlocal             dir     active        10               5               5   50.00%\n";
        let old = "Name         Type     Status           Total            Used       Available        %\nlocal         dir     active        10               5               5   50.00%\n";
        let a = parse(new).unwrap();
        let b = parse(old).unwrap();
        assert_eq!(a.header_style, Some("kib"));
        assert_eq!(b.header_style, Some("plain"));
        assert_eq!(a.storages, b.storages);
        assert_eq!(a.storages[0].total_bytes, 10240);
    }

    #[test]
    fn variable_name_width_and_na() {
        let text = "Name                           Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %\na-very-long-storage-name-here   nfs   disabled               0               0               0      N/A\n";
        let s = parse(text).unwrap();
        assert_eq!(s.storages[0].name, "a-very-long-storage-name-here");
        assert_eq!(s.storages[0].used_pct, None);
        assert!(!s.storages[0].enabled);
    }

    #[test]
    fn stderr_mixed_in_is_attached() {
        let text = "zfs error: cannot open 'vmdata': no such pool\n\nName Type Status Total Used Available %\nvmdata zfspool inactive 0 0 0 0.00%\n";
        let s = parse(text).unwrap();
        assert_eq!(s.diagnostics.len(), 1);
        assert_eq!(
            s.storages[0].error.as_deref(),
            Some("ZFS pool vmdata does not exist on this node")
        );
    }

    #[test]
    fn separate_stderr() {
        let s = parse_with_stderr(
            "Name Type Status Total Used Available %\nbackup-nas nfs inactive 0 0 0 0.00%\n",
            "storage 'backup-nas' is not online\n",
        )
        .unwrap();
        assert_eq!(
            s.storages[0].error.as_deref(),
            Some("storage backup-nas is not online (its server does not answer)")
        );
    }

    #[test]
    fn unreadable_row() {
        let e =
            parse("Name Type Status Total Used Available %\nlocal dir active lots\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
