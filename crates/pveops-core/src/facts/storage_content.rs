//! `pvesh get /nodes/NODE/storage/STORAGE/content --content backup --output-format json`: the
//! backups on one storage with their creation time as an epoch.
//!
//! pve-storage `src/PVE/API2/Storage/Content.pm` (`index`) lists `volid`, `format`, `content`,
//! `size`, `vmid`, `ctime` ("seconds since the UNIX Epoch"), `subtype`, `notes`, `protected`,
//! `encrypted` and, for PBS, `verification` (`state`, `upid`). For a vzdump file `ctime` comes
//! from `PVE::Storage::archive_info`, which reads the file name's time with `timelocal`: the
//! node's own time zone is already applied, so unlike the name (`backup-list` kind) the epoch
//! needs no UTC offset. PBS snapshots carry their backup time as `ctime` too.
//! Also what the snapshot keeps of it: [`Backup`].

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::pvesh::{bool_of, read_json, str_of, u64_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "storage-content";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvesh get /nodes/N/storage/S/content --content backup: volumes with ctime (epoch)",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageContent {
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Volume {
    pub volid: String,
    /// The storage id, from the volid (`nfs-backup:backup/…`).
    pub storage: Option<String>,
    pub content: Option<String>,
    pub format: Option<String>,
    pub size_bytes: Option<u64>,
    pub vmid: Option<u64>,
    /// Creation time, seconds since the epoch (UTC).
    pub ctime: Option<i64>,
    /// The time the volid's name carries, as the `backup-list` kind reads it: `local` for a
    /// vzdump name (the node's local time), `utc` for a PBS snapshot.
    pub backup_time: Option<String>,
    pub time_zone: Option<&'static str>,
    /// `qemu`, `lxc`, `openvz` (vzdump) or `unknown`.
    pub subtype: Option<String>,
    pub notes: Option<String>,
    pub protected: Option<bool>,
    /// PBS: the last verification's state (`ok`, `failed`).
    pub verification: Option<String>,
}

/// One backup (kind `storage-content`): vzdump files and PBS snapshots alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backup {
    pub volid: String,
    pub storage: String,
    pub vmid: Option<u64>,
    pub size_bytes: Option<u64>,
    pub backup_time: Option<String>,
    /// `local` (a vzdump name: the node's local time) or `utc` (PBS).
    pub time_zone: Option<String>,
    pub epoch: Option<i64>,
}

/// The content API's `ctime` is the backup's epoch (pve-storage `archive_info` applies the
/// listing node's time zone to a vzdump name); the name's own time stays beside it for a
/// listing without `ctime`.
impl From<&Volume> for Backup {
    fn from(v: &Volume) -> Self {
        let Volume {
            volid,
            storage,
            content: _,
            format: _,
            size_bytes,
            vmid,
            ctime,
            backup_time,
            time_zone,
            subtype: _,
            notes: _,
            protected: _,
            verification: _,
        } = v;
        Backup {
            volid: volid.clone(),
            storage: storage.clone().unwrap_or_default(),
            vmid: *vmid,
            size_bytes: *size_bytes,
            backup_time: backup_time.clone(),
            time_zone: time_zone.map(str::to_string),
            epoch: *ctime,
        }
    }
}

pub fn parse(text: &str) -> Result<StorageContent, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut volumes = Vec::new();
    for item in &items {
        let Some(volid) = str_of(item, "volid") else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a volume has no \"volid\"",
            ));
        };
        let mut named = super::backup_list::Backup {
            volid: volid.clone(),
            ..Default::default()
        };
        super::backup_list::classify(&mut named);
        volumes.push(Volume {
            storage: volid.split_once(':').map(|(s, _)| s.to_string()),
            backup_time: named.backup_time,
            time_zone: named.time_zone,
            content: str_of(item, "content"),
            format: str_of(item, "format"),
            size_bytes: u64_of(item, "size").or_else(|| u64_of(item, "approximate-size")),
            vmid: u64_of(item, "vmid"),
            ctime: u64_of(item, "ctime").and_then(|c| i64::try_from(c).ok()),
            subtype: str_of(item, "subtype"),
            notes: str_of(item, "notes"),
            protected: bool_of(item, "protected"),
            verification: item.get("verification").and_then(|v| str_of(v, "state")),
            volid,
        });
    }
    Ok(StorageContent { volumes })
}

/// The backup listing of one storage (`{"storage": ID}`), once per backup storage.
pub const READ: Read = Read {
    template: "storage-content",
    scope: Scope::Storage,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.backups.extend(parsed.volumes.iter().map(Backup::from));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn vzdump_and_pbs() {
        let c = parse(
            r#"[{"content":"backup","ctime":1796245205,"format":"vma.zst","size":12884901888,"subtype":"qemu","vmid":100,"volid":"nfs-backup:backup/vzdump-qemu-100-2026_12_02-22_00_05.vma.zst"},{"content":"backup","ctime":1796248800,"format":"pbs-vm","size":42949672960,"verification":{"state":"ok","upid":"UPID:pbs:x"},"vmid":"100","volid":"pbs:backup/vm/100/2026-12-02T22:00:00Z"}]"#,
        )
        .unwrap();
        assert_eq!(c.volumes[0].ctime, Some(1796245205));
        assert_eq!(c.volumes[0].storage.as_deref(), Some("nfs-backup"));
        assert_eq!(c.volumes[1].vmid, Some(100));
        assert_eq!(c.volumes[1].verification.as_deref(), Some("ok"));
    }

    #[test]
    fn garbage() {
        assert!(parse("storage 'x' is not online").is_err());
        assert!(parse(r#"[{"ctime":1}]"#).is_err());
        assert!(parse("[]").unwrap().volumes.is_empty());
    }
}
