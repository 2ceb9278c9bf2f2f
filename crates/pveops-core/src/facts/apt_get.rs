//! `apt-get -s dist-upgrade` (kind `apt-simulate`): what an upgrade would install, remove and
//! keep back. The simulation lines are apt's `pkgSimulate` (apt-pkg/algorithms.cc):
//! `Inst PKG [OLD] (NEW RELEASE [ARCH])`, `Conf PKG (NEW RELEASE [ARCH])`, `Remv PKG [OLD]`,
//! each possibly followed by a ` [pkg:arch ]` list of packages left broken at that point in the
//! ordering; `RELEASE` is `pkgCache::VerIterator::RelStr` (`Label:Version/Archive`, several
//! joined with `, `). The counts are apt 2.x's `N upgraded, N newly installed, … N to remove and
//! N not upgraded.` (apt-private/private-install.cc) or apt 3.0's `Upgrading: N, Installing: N,
//! Removing: N, Not Upgrading: N` (Debian 13, PVE 9). Fixtures: `tests/fixtures/pve/apt-get-*`.
//! Also what the snapshot keeps of it: [`Updates`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, regex};
use super::pveversion::kernel_release;
use super::{Keep, Read, Scope};

pub const KIND: &str = "apt-simulate";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "apt-get -s dist-upgrade: packages to install, upgrade, remove, keep back; new kernels",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One package the upgrade installs or upgrades (an `Inst` line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Install {
    pub package: String,
    /// The architecture qualifier apt prints for a foreign-architecture package (`:i386`).
    pub arch_qualifier: Option<String>,
    /// The installed version; null for a newly installed package.
    pub old_version: Option<String>,
    pub new_version: String,
    /// Where the new version comes from (`Proxmox:9.1/stable`, `Debian:13.2/stable, ...`).
    pub release: Option<String>,
    pub arch: Option<String>,
    /// The `uname -r` release when the package is a concrete PVE kernel
    /// (`proxmox-kernel-6.17.4-1-pve-signed` → `6.17.4-1-pve`).
    pub kernel_release: Option<String>,
}

/// One package the upgrade removes (`Remv` or `Purg`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removal {
    pub package: String,
    pub version: Option<String>,
    pub purge: bool,
}

/// The counts apt prints in its summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub upgraded: u64,
    pub newly_installed: u64,
    pub reinstalled: u64,
    pub downgraded: u64,
    pub removed: u64,
    pub not_upgraded: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub installs: Vec<Install>,
    pub removals: Vec<Removal>,
    /// Packages the simulation configures (`Conf` lines), in order.
    pub configures: Vec<String>,
    /// Packages apt keeps back (apt 2.x "have been kept back", apt 3.0 "Not upgrading").
    pub kept_back: Vec<String>,
    /// The summary counts; null when apt printed none (then the lists above are all there is).
    pub counts: Option<Counts>,
    /// Concrete kernels the upgrade installs (`uname -r` form): a reboot will be due.
    pub new_kernels: Vec<String>,
    /// Installs of Proxmox's own packages (`pve-*`, `proxmox-*`, `libpve-*`, `qemu-server`, ...).
    pub pve_packages: Vec<String>,
    /// `W:`/`E:`/`N:` lines apt printed (on stdout when the streams are merged).
    pub messages: Vec<String>,
}

impl Simulation {
    /// Whether the upgrade would change nothing.
    pub fn nothing_to_do(&self) -> bool {
        self.installs.is_empty() && self.removals.is_empty()
    }
}

/// Pending package updates (kind `apt-simulate`): what `apt-get -s dist-upgrade` would do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Updates {
    pub installs: Vec<PackageChange>,
    pub removals: Vec<PackageRemoval>,
    pub kept_back: Vec<String>,
    pub counts: Option<UpdateCounts>,
    /// Kernels (`uname -r` form) the upgrade installs: a reboot will be due.
    pub new_kernels: Vec<String>,
    /// Proxmox's own packages among the installs.
    pub pve_packages: Vec<String>,
}

/// A package the upgrade installs or upgrades, as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageChange {
    pub package: String,
    pub old_version: Option<String>,
    pub new_version: String,
    pub release: Option<String>,
    pub kernel_release: Option<String>,
}

/// A package the upgrade removes, as the snapshot keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PackageRemoval {
    pub package: String,
    pub version: Option<String>,
}

/// apt's summary counts as the snapshot keeps them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateCounts {
    pub upgraded: u64,
    pub newly_installed: u64,
    pub removed: u64,
    pub not_upgraded: u64,
}

impl From<&Simulation> for Updates {
    fn from(s: &Simulation) -> Self {
        let Simulation {
            installs,
            removals,
            configures: _,
            kept_back,
            counts,
            new_kernels,
            pve_packages,
            messages: _,
        } = s;
        Updates {
            installs: installs.iter().map(PackageChange::from).collect(),
            removals: removals.iter().map(PackageRemoval::from).collect(),
            kept_back: kept_back.clone(),
            counts: counts.as_ref().map(UpdateCounts::from),
            new_kernels: new_kernels.clone(),
            pve_packages: pve_packages.clone(),
        }
    }
}

impl From<&Install> for PackageChange {
    fn from(i: &Install) -> Self {
        let Install {
            package,
            arch_qualifier: _,
            old_version,
            new_version,
            release,
            arch: _,
            kernel_release,
        } = i;
        PackageChange {
            package: package.clone(),
            old_version: old_version.clone(),
            new_version: new_version.clone(),
            release: release.clone(),
            kernel_release: kernel_release.clone(),
        }
    }
}

impl From<&Removal> for PackageRemoval {
    fn from(r: &Removal) -> Self {
        let Removal {
            package,
            version,
            purge: _,
        } = r;
        PackageRemoval {
            package: package.clone(),
            version: version.clone(),
        }
    }
}

impl From<&Counts> for UpdateCounts {
    fn from(c: &Counts) -> Self {
        let Counts {
            upgraded,
            newly_installed,
            reinstalled: _,
            downgraded: _,
            removed,
            not_upgraded,
        } = c;
        UpdateCounts {
            upgraded: *upgraded,
            newly_installed: *newly_installed,
            removed: *removed,
            not_upgraded: *not_upgraded,
        }
    }
}

static INST: LazyRegex = LazyLock::new(|| {
    regex(r"^Inst (\S+?)(?::(\S+))?(?: \[([^\]]*)\])? \((\S+) (.*?) ?\[([^\]\s]+)\]\)(?: \[.*\])?$")
});
// A package apt has no candidate for cannot be installed, so `(...)` is always there for Inst
// and Conf; Remv/Purg describe the current version only.
static CONF: LazyRegex = LazyLock::new(|| {
    regex(r"^Conf (\S+?)(?::(\S+))? \((\S+) (.*?) ?\[([^\]\s]+)\]\)(?: \[.*\])?$")
});
static REMV: LazyRegex =
    LazyLock::new(|| regex(r"^(Remv|Purg) (\S+?)(?::(\S+))?(?: \[([^\]]*)\])?(?: \[.*\])?$"));
static COUNTS2: LazyRegex = LazyLock::new(|| {
    regex(
        r"^(\d+) upgraded, (\d+) newly installed, (?:(\d+) reinstalled, )?(?:(\d+) downgraded, )?(\d+) to remove and (\d+) not upgraded\.$",
    )
});
static COUNTS3: LazyRegex = LazyLock::new(|| {
    regex(
        r"^\s*Upgrading: (\d+), Installing: (\d+), (?:Reinstalling: (\d+), )?(?:Downgrading: (\d+), )?Removing: (\d+), Not Upgrading: (\d+)$",
    )
});

/// Headers after which apt lists packages kept back (2.x wording, then 3.0's).
const KEPT_BACK: &[&str] = &[
    "The following packages have been kept back:",
    "The following upgrades have been deferred due to phasing:",
    "Not upgrading:",
    "Not upgrading yet due to phasing:",
];

/// Progress and notice lines apt prints around the simulation (apt-private, apt-pkg progress:
/// without a terminal the "... Done" is on the same line, or absent on older apt).
fn is_chatter(t: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "Reading package lists...",
        "Building dependency tree...",
        "Reading state information...",
        "Calculating upgrade...",
        "NOTE: This is only a simulation!",
        "apt-get needs root privileges",
        "Keep also in mind that locking",
        "so don't depend on the relevance",
        "Summary:",
        "Download size:",
        "Space needed:",
        "Freed space:",
        "Need to get",
        "After this operation",
        "Done",
    ];
    let t = t.trim_start();
    PREFIXES.iter().any(|p| t.starts_with(p))
}

fn num(c: &[Option<&str>], i: usize) -> u64 {
    group(c, i).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Whether a package is one of Proxmox's own: the names of the PVE, PBS-client and QEMU
/// packages `pveversion -v` lists (pve-manager `PVE/API2/APTAPI.pm` `$get_versions` list).
pub fn is_pve_package(name: &str) -> bool {
    const PREFIXES: &[&str] = &["pve-", "proxmox-", "libpve-", "libproxmox-", "pve"];
    const NAMES: &[&str] = &[
        "qemu-server",
        "lxc-pve",
        "lxcfs",
        "novnc-pve",
        "spiceterm",
        "vncterm",
        "smartmontools",
        "corosync",
        "libknet1",
        "ceph",
        "ceph-common",
        "ceph-fuse",
        "criu",
        "ifupdown2",
        "zfsutils-linux",
        "libjs-extjs",
    ];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Parses `apt-get -s dist-upgrade` (or `-s upgrade`). Any line that is neither apt's chatter,
/// a header, a package list, a simulation line nor a message is an error naming it: garbage
/// is not "nothing to do".
pub fn parse(text: &str) -> Result<Simulation, ParseError> {
    let mut s = Simulation {
        installs: Vec::new(),
        removals: Vec::new(),
        configures: Vec::new(),
        kept_back: Vec::new(),
        counts: None,
        new_kernels: Vec::new(),
        pve_packages: Vec::new(),
        messages: Vec::new(),
    };
    let mut in_kept_back = false;
    let mut seen_any = false;
    for line in lines(text) {
        let t = line.text;
        if t.trim().is_empty() {
            in_kept_back = false;
            continue;
        }
        seen_any = true;
        if let Some(c) = captures(&COUNTS2, t).or_else(|| captures(&COUNTS3, t)) {
            s.counts = Some(Counts {
                upgraded: num(&c, 0),
                newly_installed: num(&c, 1),
                reinstalled: num(&c, 2),
                downgraded: num(&c, 3),
                removed: num(&c, 4),
                not_upgraded: num(&c, 5),
            });
            in_kept_back = false;
            continue;
        }
        // A package list: indented names under the header before it (apt 3.0 indents its
        // summary's size lines too).
        if t.starts_with(' ') {
            if in_kept_back && !is_chatter(t) {
                s.kept_back.extend(
                    t.split_whitespace()
                        .filter(|w| !w.starts_with('(') && !w.ends_with(')'))
                        .map(|w| package_name(w).to_owned()),
                );
            }
            continue;
        }
        in_kept_back = false;
        if let Some(c) = captures(&INST, t) {
            let package = group(&c, 0).unwrap_or_default().to_owned();
            let kernel = kernel_release(&package).flatten();
            if let Some(k) = &kernel {
                s.new_kernels.push(k.clone());
            }
            if is_pve_package(&package) {
                s.pve_packages.push(package.clone());
            }
            s.installs.push(Install {
                arch_qualifier: group(&c, 1).map(str::to_owned),
                old_version: group(&c, 2).map(str::to_owned),
                new_version: group(&c, 3).unwrap_or_default().to_owned(),
                release: group(&c, 4).map(str::to_owned).filter(|r| !r.is_empty()),
                arch: group(&c, 5).map(str::to_owned),
                kernel_release: kernel,
                package,
            });
            continue;
        }
        if let Some(c) = captures(&CONF, t) {
            s.configures
                .push(group(&c, 0).unwrap_or_default().to_owned());
            continue;
        }
        if let Some(c) = captures(&REMV, t) {
            s.removals.push(Removal {
                package: group(&c, 1).unwrap_or_default().to_owned(),
                version: group(&c, 3).map(str::to_owned),
                purge: group(&c, 0) == Some("Purg"),
            });
            continue;
        }
        if t.starts_with("Inst ") || t.starts_with("Conf ") || t.starts_with("Remv ") {
            return Err(ParseError::new(
                KIND,
                line.no,
                t,
                "a simulation line that is not `Inst|Conf|Remv PKG [OLD] (NEW RELEASE [ARCH])`",
            ));
        }
        if ["W: ", "E: ", "N: "].iter().any(|p| t.starts_with(p)) {
            s.messages.push(t.to_owned());
            continue;
        }
        if KEPT_BACK.contains(&t) {
            in_kept_back = true;
            continue;
        }
        if is_chatter(t) || (t.ends_with(':') && t.starts_with(|c: char| c.is_ascii_uppercase())) {
            continue;
        }
        return Err(ParseError::new(
            KIND,
            line.no,
            t,
            "not a line apt-get -s prints (progress, a package list, Inst/Conf/Remv or the summary)",
        ));
    }
    if !seen_any {
        return Err(ParseError::new(KIND, 0, "", "the output is empty"));
    }
    if s.counts.is_none() && s.installs.is_empty() && s.removals.is_empty() {
        return Err(ParseError::new(
            KIND,
            0,
            "",
            "no summary line (`N upgraded, …` or `Upgrading: N, …`) and no Inst/Remv line",
        ));
    }
    Ok(s)
}

/// `pkg:arch` → `pkg` (apt 3.0 lists may carry versions in parentheses too: those are skipped
/// by the caller splitting on whitespace, a version token is never a package name).
fn package_name(word: &str) -> &str {
    word.split(':').next().unwrap_or(word)
}

/// The `apt-simulate` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "apt-simulate",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    // apt reports its own failures (broken lists, a lock) as `E:` lines and exit 100.
    if out.exit_code() != Some(0) {
        return Err(super::apt_log::failure(out.exit_code(), &out.stderr_text()));
    }
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.updates = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const APT2: &str = "Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  proxmox-kernel-6.17.4-1-pve-signed
The following packages have been kept back:
  zfsutils-linux
The following packages will be upgraded:
  pve-manager libc6
2 upgraded, 1 newly installed, 0 to remove and 1 not upgraded.
Inst libc6 [2.41-12] (2.41-12+deb13u1 Debian:13.2/stable, Debian-Security:13/stable-security [amd64]) [libc-bin:amd64 ]
Inst proxmox-kernel-6.17.4-1-pve-signed (6.17.4-1 Proxmox:9.1/stable [amd64])
Inst pve-manager [9.1.1] (9.1.2 Proxmox:9.1/stable [all])
Conf libc6 (2.41-12+deb13u1 Debian:13.2/stable, Debian-Security:13/stable-security [amd64])
Conf proxmox-kernel-6.17.4-1-pve-signed (6.17.4-1 Proxmox:9.1/stable [amd64])
Conf pve-manager (9.1.2 Proxmox:9.1/stable [all])
";

    #[test]
    fn reads_installs_kernels_and_counts() {
        let s = parse(APT2).unwrap();
        assert_eq!(s.installs.len(), 3);
        let libc = &s.installs[0];
        assert_eq!(libc.package, "libc6");
        assert_eq!(libc.old_version.as_deref(), Some("2.41-12"));
        assert_eq!(libc.new_version, "2.41-12+deb13u1");
        assert_eq!(
            libc.release.as_deref(),
            Some("Debian:13.2/stable, Debian-Security:13/stable-security")
        );
        assert_eq!(libc.arch.as_deref(), Some("amd64"));
        let k = &s.installs[1];
        assert_eq!(k.old_version, None);
        assert_eq!(k.kernel_release.as_deref(), Some("6.17.4-1-pve"));
        assert_eq!(s.new_kernels, vec!["6.17.4-1-pve"]);
        assert_eq!(
            s.pve_packages,
            vec!["proxmox-kernel-6.17.4-1-pve-signed", "pve-manager"]
        );
        assert_eq!(s.kept_back, vec!["zfsutils-linux"]);
        assert_eq!(s.configures.len(), 3);
        let c = s.counts.unwrap();
        assert_eq!(
            (c.upgraded, c.newly_installed, c.removed, c.not_upgraded),
            (2, 1, 0, 1)
        );
    }

    #[test]
    fn nothing_to_do_and_apt3_counts() {
        let s = parse("Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n").unwrap();
        assert!(s.nothing_to_do());
        let s = parse("Summary:\n  Upgrading: 2, Installing: 1, Removing: 1, Not Upgrading: 0\nRemv old-thing [1.0]\n").unwrap();
        let c = s.counts.unwrap();
        assert_eq!((c.upgraded, c.newly_installed, c.removed), (2, 1, 1));
        assert_eq!(s.removals[0].version.as_deref(), Some("1.0"));
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let e = parse("Reading package lists...\n#!@ garbage\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("").is_err());
        assert!(parse("Reading package lists...\n").is_err());
        assert_eq!(parse("Inst broken\n").unwrap_err().line, 1);
    }
}
