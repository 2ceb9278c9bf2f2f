//! `pvesh get /nodes/localhost/disks/list --output-format json` (kind `disks-list`): the node's
//! local disks with type, size, SMART health and SSD wear.
//!
//! pve-storage `src/PVE/API2/Disks.pm` (`list`, commit 0c56bad8; parameters
//! `include-partitions`, `skipsmart`, `type` = `unused`|`journal_disks`) returns
//! `src/PVE/Diskmanage.pm` `get_disks` sorted by device name. Per disk:
//! - `devpath`, `model` (udev `ID_MODEL`, spaces as `_` for ATA disks, else sysfs
//!   `device/model`), `vendor` (sysfs, space-padded: `ATA     `), `serial` (udev
//!   `ID_SERIAL_SHORT`), `wwn`, each the placeholder `unknown` when not found (null here);
//!   `size` (bytes: sysfs sectors × 512), `gpt`, `mounted`, `rpm`, `by_id_link`;
//! - `type`: `ssd` (not rotational), `nvme` (not rotational and named `nvmeXnY`), `hdd`
//!   (rotational with a udev rotation rate), `usb` (rotational, no rate, on USB), else
//!   `unknown`; `partition` for the partitions `include-partitions` adds (with `parent`);
//! - `health`: `UNKNOWN` unless smartctl (`get_smart_data`, `smartctl -H [-A -f brief]`)
//!   printed `… self-assessment test result: X` (ATA, NVMe: `PASSED`, `FAILED!`) or
//!   `SMART Health Status: X` (SAS: `OK`, …), or `SMART Disabled`. A smartctl exit code with
//!   bit 0 or 1 set is an error that leaves `UNKNOWN`, as does `skipsmart`;
//! - `wearout`: the string `N/A` unless the disk is SSD-like (`is_ssdlike`: ssd, nvme) and a
//!   wear level was found (`get_wear_leveling_info`): for NVMe/SAS text output it is
//!   `100 - Percentage Used` (so **percent of life left**, 100 = new, decimals allowed by the
//!   regex); for ATA it is the normalised VALUE of the first attribute matching
//!   `Media_Wearout_Indicator`, `SSD_Life_Left`, `Wear_Leveling_Count`, … — taken as is, not
//!   `100 - x`, so it is percent left only as far as the vendor's normalised value counts
//!   down from 100 (it does for these attributes in smartmontools' drivedb);
//! - `used`: absent when unused, else `LVM`, `ZFS`, `BIOS boot`, `EFI`, `ZFS reserved`, a file
//!   system type (`ext4`, `xfs`, … from lsblk), `mounted`, `partitions`, `Device Mapper`;
//! - `osdid`: the Ceph OSD id, `-1` when none (read here as null); `osdid-list`, `bluestore`,
//!   `osdencrypted`, `journals`, `db`, `wal` for Ceph disks.
//!
//! PVE's quirks handled: numbers may be strings, `wearout` is the string `N/A` when unknown
//! (null here) and a JSON number otherwise, `osdid` -1 means none.
//! Also what the snapshot keeps of it: each [`Disk`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::pvesh::{bool_of, f64_of, read_json, str_of, u64_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "disks-list";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/NODE/disks/list --output-format json: disks with type, size, SMART health, wearout (% life left)",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One disk, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedDisk {
    pub devpath: String,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// `hdd`, `ssd`, `nvme`, `usb`, `unknown` (`partition` with include-partitions).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub size_bytes: Option<u64>,
    /// As PVE gives it: `PASSED`, `FAILED!`, `OK`, `UNKNOWN`, `SMART Disabled`, …
    pub health: Option<String>,
    /// Percent of life left (100 = new); null for PVE's `N/A`.
    pub wearout: Option<f64>,
    /// What uses the disk: `LVM`, `ZFS`, `partitions`, `ext4`, `Device Mapper`, …; null: unused.
    pub used: Option<String>,
    /// Ceph OSD id; null when PVE says -1 (none).
    pub osdid: Option<i64>,
    /// PVE sets `mounted` only when the disk itself is mounted.
    pub mounted: bool,
    /// The disk a partition is on (include-partitions only).
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisksList {
    pub disks: Vec<ParsedDisk>,
}

/// One disk of `/nodes/N/disks/list` (kind `disks-list`): SMART health and SSD wearout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    pub devpath: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub size_bytes: Option<u64>,
    /// smartctl's overall assessment as PVE passes it: `PASSED`, `OK`, `FAILED!`, ...
    pub health: Option<String>,
    /// Percent of the SSD's life left (100 new); null for HDDs.
    pub wearout: Option<f64>,
    pub used: Option<String>,
}

impl Disk {
    /// smartctl's overall assessment as PVE passes it (pve-storage PVE/Diskmanage.pm
    /// `get_smart_data`): `PASSED` (ATA/NVMe) or `OK` (SAS) is good; none, `UNKNOWN` or
    /// `SMART Disabled…` says nothing either way (None); anything else is a failure.
    pub fn smart_passed(&self) -> Option<bool> {
        match self.health.as_deref()? {
            "" | "UNKNOWN" => None,
            h if h.starts_with("SMART Disabled") => None,
            h => Some(matches!(h, "PASSED" | "OK")),
        }
    }
}

impl From<&ParsedDisk> for Disk {
    fn from(d: &ParsedDisk) -> Self {
        let ParsedDisk {
            devpath,
            model,
            vendor: _,
            serial,
            wwn: _,
            kind,
            size_bytes,
            health,
            wearout,
            used,
            osdid: _,
            mounted: _,
            parent: _,
        } = d;
        Disk {
            devpath: devpath.clone(),
            model: model.clone(),
            serial: serial.clone(),
            kind: kind.clone(),
            size_bytes: *size_bytes,
            health: health.clone(),
            wearout: *wearout,
            used: used.clone(),
        }
    }
}

fn i64_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A udev/sysfs text, null for PVE's `unknown` placeholder (`get_udev_info`,
/// `get_sysdir_info`) or blank; sysfs `vendor` is space-padded (`ATA     `).
fn known(v: &Value, key: &str) -> Option<String> {
    str_of(v, key)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "unknown")
}

pub fn parse(text: &str) -> Result<DisksList, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut disks = Vec::new();
    for item in &items {
        let Some(devpath) = str_of(item, "devpath") else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a disk has no \"devpath\"",
            ));
        };
        disks.push(ParsedDisk {
            devpath,
            model: known(item, "model"),
            vendor: known(item, "vendor"),
            serial: known(item, "serial"),
            wwn: known(item, "wwn"),
            kind: str_of(item, "type"),
            size_bytes: u64_of(item, "size"),
            health: str_of(item, "health"),
            // `N/A` (and anything else not a number) is null.
            wearout: f64_of(item, "wearout").filter(|w| w.is_finite()),
            used: str_of(item, "used").filter(|u| !u.is_empty()),
            osdid: i64_of(item, "osdid").filter(|id| *id >= 0),
            mounted: bool_of(item, "mounted").unwrap_or(false),
            parent: str_of(item, "parent"),
        });
    }
    Ok(DisksList { disks })
}

/// The `disks-list` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "disks-list",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.disks = Some(parsed.disks.iter().map(Into::into).collect());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn wearout_na_and_osdid_minus_one_are_null() {
        let d = parse(r#"[{"devpath":"/dev/sda","health":"PASSED","osdid":-1,"size":"480103981056","type":"ssd","used":"ZFS","wearout":97},{"devpath":"/dev/sdb","health":"UNKNOWN","osdid":"3","type":"hdd","wearout":"N/A"}]"#).unwrap();
        assert_eq!(d.disks[0].wearout, Some(97.0));
        assert_eq!(d.disks[0].osdid, None);
        assert_eq!(d.disks[0].size_bytes, Some(480103981056));
        assert_eq!(d.disks[1].wearout, None);
        assert_eq!(d.disks[1].osdid, Some(3));
        assert_eq!(d.disks[1].used, None);
    }

    #[test]
    fn garbage_and_missing_devpath() {
        assert!(parse("{}").is_err());
        assert!(parse(r#"[{"type":"ssd"}]"#).is_err());
        assert!(parse("[]").unwrap().disks.is_empty());
    }
}
