//! `qm list [--full]` (FORMATS.md §3.1): `%10s %-20s %-10s %-10s %12.2f %-10s`, no column
//! truncated, names `VM <vmid>` (with a space) for VMs without a name, nothing at all when
//! the node has no VMs.
//! Also what the snapshot keeps of it: [`Vm`].

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{Line, json_number, lines, locale_noise};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "qm-list";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "qm list [--full]: VMs of this node",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One row of `qm list`, as parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParsedVm {
    pub vmid: u64,
    pub name: String,
    /// `running`/`stopped`; with `--full` the QMP run state (`paused`, `prelaunch`, ...).
    pub status: String,
    /// MEM(MB) is MiB despite the label; a Perl number, so possibly fractional.
    pub mem_mib: serde_json::Number,
    /// BOOTDISK(GB) is GiB; `0.00` when the boot disk cannot be resolved.
    pub bootdisk_gib: f64,
    /// As printed: 0 for a VM without a process (`pid||0`).
    pub pid: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QmList {
    pub vms: Vec<ParsedVm>,
}

/// One row of `qm list` (kind `qm-list`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    pub vmid: u64,
    pub name: String,
    pub status: String,
    pub mem_mib: f64,
    pub bootdisk_gib: f64,
    pub pid: u64,
}

/// `mem_mib` is a float here, so the snapshot (a public format) writes `4096.0` where
/// `pveops parse` prints the number as `qm list` did (`4096`).
impl From<&ParsedVm> for Vm {
    fn from(v: &ParsedVm) -> Self {
        let ParsedVm {
            vmid,
            name,
            status,
            mem_mib,
            bootdisk_gib,
            pid,
        } = v;
        Vm {
            vmid: *vmid,
            name: name.clone(),
            status: status.clone(),
            mem_mib: mem_mib.as_f64().unwrap_or_default(),
            // NaN or infinity (`f64` parses both) would be written as `null`, which the
            // snapshot cannot read back; 0 is what `qm list` prints for an unknown size.
            bootdisk_gib: if bootdisk_gib.is_finite() {
                *bootdisk_gib
            } else {
                0.0
            },
            pid: *pid,
        }
    }
}

fn err(line: &Line<'_>, reason: impl Into<String>) -> ParseError {
    ParseError::new(KIND, line.no, line.text, reason)
}

pub fn parse(text: &str) -> Result<QmList, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut vms = Vec::new();
    let mut header = false;
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.first() == Some(&"VMID") && tokens.get(1) == Some(&"NAME") {
            header = true;
            continue;
        }
        if !header {
            if let Some(d) = stderr::classify(line.no, t) {
                return Err(err(line, d.message));
            }
            return Err(err(
                line,
                "expected the \"VMID NAME STATUS\" header before any row",
            ));
        }
        // Names longer than 20 characters shift the rest of the row, and the fallback name
        // `VM 105` contains a space (FORMATS.md §3.1, §0.10): take the fixed-format columns
        // from both ends and the name from what is left in the middle.
        let n = tokens.len();
        if n < 6 {
            return Err(err(line, format!("expected at least 6 columns, found {n}")));
        }
        let vmid = tokens
            .first()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| err(line, "the VMID is not a number"))?;
        let from_end = |k: usize| tokens.get(n - k).copied().unwrap_or_default();
        let pid = from_end(1)
            .parse::<u64>()
            .map_err(|_| err(line, "the PID is not a number"))?;
        let bootdisk_gib = from_end(2)
            .parse::<f64>()
            .map_err(|_| err(line, "BOOTDISK(GB) is not a number"))?;
        let mem_mib =
            json_number(from_end(3)).ok_or_else(|| err(line, "MEM(MB) is not a number"))?;
        let status = from_end(4).to_owned();
        let name = tokens
            .get(1..n - 4)
            .map(|s| s.join(" "))
            .unwrap_or_default();
        vms.push(ParsedVm {
            vmid,
            name,
            status,
            mem_mib,
            bootdisk_gib,
            pid,
        });
    }
    Ok(QmList { vms })
}

/// The `qm-list` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "qm-list",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.vms = parsed.vms.iter().map(Into::into).collect();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_vm_keeps_its_space() {
        let text = "      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID       \n       105 VM 105               stopped    2048               0.00 0         \n";
        let l = parse(text).unwrap();
        assert_eq!(l.vms[0].name, "VM 105");
        assert_eq!(l.vms[0].status, "stopped");
        assert_eq!(l.vms[0].pid, 0);
    }

    #[test]
    fn long_name_shifts_columns() {
        let text = "VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n       250 ubuntu-24-base-working stopped    4096              32.00 0         \n";
        let l = parse(text).unwrap();
        assert_eq!(l.vms[0].name, "ubuntu-24-base-working");
        assert_eq!(l.vms[0].bootdisk_gib, 32.0);
    }

    #[test]
    fn no_vms_is_empty_output() {
        assert!(parse("").unwrap().vms.is_empty());
    }

    #[test]
    fn fractional_memory() {
        let l = parse("VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n 1 a running 1536.5 1.00 9\n")
            .unwrap();
        assert_eq!(l.vms[0].mem_mib.as_f64(), Some(1536.5));
    }

    #[test]
    fn the_snapshot_keeps_a_vm_whose_boot_disk_is_not_a_finite_number() {
        let l = parse("VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n 101 a running 4096 NaN 9\n 102 b running 2048 inf 10\n")
            .unwrap();
        let kept: Vec<Vm> = l.vms.iter().map(Vm::from).collect();
        assert_eq!(
            kept.iter()
                .map(|v| (v.vmid, v.mem_mib, v.bootdisk_gib, v.pid))
                .collect::<Vec<_>>(),
            [(101, 4096.0, 0.0, 9), (102, 2048.0, 0.0, 10)]
        );
        let json = serde_json::to_string(&kept).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Vm>>(&json).unwrap(), kept);
    }
}
