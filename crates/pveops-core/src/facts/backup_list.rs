//! `pvesm list STORAGE --content backup` (pve-storage `PVE/CLI/pvesm.pm` `$print_content`):
//! `Volid Format Type Size VMID` with a per-listing Volid width. The backup time comes from
//! the vzdump file name (`vzdump-qemu-100-2026_03_04-11_20_01.vma.zst`, node-local time) or,
//! on Proxmox Backup Server storages, from the snapshot volid (`backup/vm/100/<RFC 3339>`).

use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, Line, captures, group, lines, locale_noise, regex};
use super::stderr;

pub const KIND: &str = "backup-list";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesm list STORAGE --content backup: backups with VMID and time (vzdump and PBS)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backup {
    pub volid: String,
    /// The storage id (before the first `:`).
    pub storage: String,
    /// `vma.zst`, `tar.zst`, `pbs-vm`, `pbs-ct`, ...
    pub format: String,
    /// `backup` (missing on listings from before the Type column).
    pub content: Option<String>,
    pub size_bytes: Option<u64>,
    pub vmid: Option<u64>,
    /// `qemu`/`lxc`/`openvz` (vzdump) or `vm`/`ct`/`host` (PBS).
    pub guest_type: Option<String>,
    /// `vzdump` (file on a storage) or `pbs` (Proxmox Backup Server snapshot).
    pub source: Option<&'static str>,
    /// `YYYY-MM-DDTHH:MM:SS`, plus `Z`/offset for PBS; null when the name carries none.
    pub backup_time: Option<String>,
    /// `local` (vzdump names use the node's local time) or `utc` (PBS).
    pub time_zone: Option<&'static str>,
    /// Unix time for PBS snapshots (their time is absolute); null for vzdump names.
    pub epoch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupList {
    pub backups: Vec<Backup>,
    pub diagnostics: Vec<stderr::Diagnostic>,
}

static VZDUMP: LazyRegex = LazyLock::new(|| {
    regex(r"vzdump-(qemu|lxc|openvz)-(\d+)-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.")
});
static PBS: LazyRegex = LazyLock::new(|| {
    regex(
        r"backup/(vm|ct|host)/([^/]+)/(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))$",
    )
});

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

/// Reads what the volid says about the backup: guest, source and time (also for the
/// `storage-content` kind, whose volids are the same).
pub(super) fn classify(b: &mut Backup) {
    if let Some(c) = captures(&VZDUMP, &b.volid) {
        let g = |n| group(&c, n).unwrap_or_default();
        let time = format!("{}-{}-{}T{}:{}:{}", g(2), g(3), g(4), g(5), g(6), g(7));
        // Only keep a time that is a real calendar time.
        if time.parse::<jiff::civil::DateTime>().is_ok() {
            b.backup_time = Some(time);
            b.time_zone = Some("local");
        }
        b.guest_type = Some(g(0).to_owned());
        b.source = Some("vzdump");
        if b.vmid.is_none() {
            b.vmid = g(1).parse().ok();
        }
    } else if let Some(c) = captures(&PBS, &b.volid) {
        let g = |n| group(&c, n).unwrap_or_default();
        if let Ok(ts) = g(2).parse::<jiff::Timestamp>() {
            b.backup_time = Some(g(2).to_owned());
            b.time_zone = Some("utc");
            b.epoch = Some(ts.as_second());
        }
        b.guest_type = Some(g(0).to_owned());
        b.source = Some("pbs");
        if b.vmid.is_none() {
            b.vmid = g(1).parse().ok();
        }
    }
}

pub fn parse(text: &str) -> Result<BackupList, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = BackupList {
        backups: Vec::new(),
        diagnostics: Vec::new(),
    };
    let mut header = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.first() == Some(&"Volid") && tokens.get(1) == Some(&"Format") {
            header = true;
            continue;
        }
        if let Some(d) = stderr::classify(line.no, t) {
            out.diagnostics.push(d);
            continue;
        }
        // Current layout: `volid format type size [vmid]` (vmid omitted for volumes without
        // one). Before the header existed (PVE <= 6.1): `volid format size [vmid]`.
        let (volid, format, content, size, vmid) = match (header, tokens.as_slice()) {
            (true, [v, f, c, s, id]) => (v, f, Some(c), Some(s), Some(id)),
            (true, [v, f, c, s]) => (v, f, Some(c), Some(s), None),
            (false, [v, f, s, id]) => (v, f, None, Some(s), Some(id)),
            (false, [v, f, s]) => (v, f, None, Some(s), None),
            _ => {
                return Err(err(
                    line,
                    format!(
                        "expected \"Volid Format Type Size VMID\" columns, found {}",
                        tokens.len()
                    ),
                ));
            }
        };
        let Some((storage, _)) = volid.split_once(':') else {
            return Err(err(line, "the volid has no \"storage:\" prefix"));
        };
        let size_bytes = match size {
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| err(line, "the size is not a number"))?,
            ),
            None => None,
        };
        let vmid = match vmid {
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| err(line, "the VMID is not a number"))?,
            ),
            None => None,
        };
        let mut b = Backup {
            volid: (*volid).to_owned(),
            storage: storage.to_owned(),
            format: (*format).to_owned(),
            content: content.map(|c| (*c).to_owned()),
            size_bytes,
            vmid,
            guest_type: None,
            source: None,
            backup_time: None,
            time_zone: None,
            epoch: None,
        };
        classify(&mut b);
        out.backups.push(b);
    }
    if !header && out.backups.is_empty() && out.diagnostics.is_empty() {
        // `pvesm list` always prints the header, even for an empty storage.
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no \"Volid Format Type Size VMID\" header",
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const LISTING: &str = "Volid                                                           Format  Type          Size VMID\nlocal:backup/vzdump-qemu-100-2026_03_04-11_20_01.vma.zst       vma.zst backup   1234567890 100\nlocal:backup/vzdump-lxc-101-2026_03_05-01_00_00.tar.zst        tar.zst backup     98765432 101\npbs:backup/vm/102/2026-03-06T02:00:00Z                          pbs-vm  backup  42949672960 102\npbs:backup/ct/103/2026-03-06T02:10:05Z                          pbs-ct  backup      1048576 103\n";

    #[test]
    fn vzdump_and_pbs_times() {
        let l = parse(LISTING).unwrap();
        assert_eq!(l.backups.len(), 4);
        let a = &l.backups[0];
        assert_eq!(
            (a.vmid, a.source, a.guest_type.as_deref()),
            (Some(100), Some("vzdump"), Some("qemu"))
        );
        assert_eq!(a.backup_time.as_deref(), Some("2026-03-04T11:20:01"));
        assert_eq!(a.time_zone, Some("local"));
        assert_eq!(a.size_bytes, Some(1234567890));
        let p = &l.backups[2];
        assert_eq!(
            (p.storage.as_str(), p.source, p.guest_type.as_deref()),
            ("pbs", Some("pbs"), Some("vm"))
        );
        assert_eq!(p.backup_time.as_deref(), Some("2026-03-06T02:00:00Z"));
        assert_eq!(p.epoch, Some(1772762400));
        assert_eq!(l.backups[3].vmid, Some(103));
    }

    #[test]
    fn empty_storage_and_errors() {
        assert!(
            parse("Volid Format  Type      Size VMID\n")
                .unwrap()
                .backups
                .is_empty()
        );
        assert!(parse("").is_err());
        let l = parse("storage 'pbs' is not online\n").unwrap();
        assert_eq!(l.diagnostics[0].code, "storage-offline");
        assert_eq!(
            parse("Volid Format Type Size VMID\nlocal:x raw images lots 100\n")
                .unwrap_err()
                .line,
            2
        );
    }

    #[test]
    fn impossible_dates_give_no_time() {
        let l = parse("Volid Format Type Size VMID\nlocal:backup/vzdump-qemu-1-2026_13_40-99_00_00.vma raw backup 1 1\n").unwrap();
        assert_eq!(l.backups[0].backup_time, None);
        assert_eq!(l.backups[0].vmid, Some(1));
    }
}
