//! The simulated node's package tools: what `apt-get`, `apt-cache policy`, `dpkg --audit`,
//! `lslocks` and `stat` of apt's lists print from the node's [`Apt`] state, and how
//! `apt-get update` and `apt-get -y dist-upgrade` change the node (installed versions,
//! kernels, `/run/reboot-required`). Formats are apt's own, cited per function; like `render`,
//! this module shares no code with the parsers in `crate::facts`.

use std::fmt::Write as _;

use super::render::Reply;
use super::state::{AptPackage, Node, version_key};

/// Apt's exit status for every error (`apt-get` returns 100, apt-private/private-main.cc).
pub const APT_ERROR: i32 = 100;

/// One upgrade the node's lists offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Upgrade {
    pub package: String,
    pub old: Option<String>,
    pub new: String,
    pub release: String,
    pub arch: String,
}

fn debian(n: &Node) -> (&'static str, &'static str) {
    if version_key(&n.manager_version)
        .first()
        .copied()
        .unwrap_or(0)
        >= 9
    {
        ("trixie", "13.2")
    } else {
        ("bookworm", "12.12")
    }
}

fn is_proxmox(p: &str) -> bool {
    ["pve-", "proxmox-", "libpve-", "libproxmox-"]
        .iter()
        .any(|x| p.starts_with(x))
        || matches!(
            p,
            "qemu-server" | "lxc-pve" | "lxcfs" | "zfsutils-linux" | "corosync"
        )
}

/// apt's `VerIterator::RelStr` (apt-pkg/pkgcache.cc): `Origin:Version/Archive` of the index;
/// Proxmox's Release files have no `Version`, so theirs is `Proxmox:stable`.
fn release(n: &Node, p: &AptPackage) -> String {
    p.release.clone().unwrap_or_else(|| {
        if is_proxmox(&p.package) {
            "Proxmox:stable".into()
        } else {
            format!("Debian:{}/stable", debian(n).1)
        }
    })
}

/// `proxmox-kernel-6.17.4-1-pve-signed` → `6.17.4-1-pve`.
fn kernel_of(package: &str) -> Option<String> {
    let rest = package
        .strip_prefix("proxmox-kernel-")
        .or_else(|| package.strip_prefix("pve-kernel-"))?;
    let rest = rest.strip_suffix("-signed").unwrap_or(rest);
    rest.ends_with("-pve").then(|| rest.to_string())
}

/// The installed version of `package`, as dpkg's status file would have it.
pub fn installed(n: &Node, package: &str) -> Option<String> {
    if package == "pve-manager" {
        return Some(n.manager_version.clone());
    }
    if let Some(k) = kernel_of(package) {
        return n
            .kernels_installed
            .contains(&k)
            .then(|| k.trim_end_matches("-pve").to_string());
    }
    // The series meta package (`proxmox-kernel-6.17`) is at its newest installed kernel.
    if let Some(series) = package.strip_prefix("proxmox-kernel-")
        && version_key(series).len() == 2
    {
        return n
            .kernels_installed
            .iter()
            .filter(|k| k.starts_with(&format!("{series}.")))
            .max_by_key(|k| version_key(k))
            .map(|k| k.trim_end_matches("-pve").to_string());
    }
    n.packages
        .get(package)
        .or_else(|| n.apt.installed.get(package))
        .cloned()
}

/// What `dist-upgrade` would do: every offered version newer than the installed one, new
/// kernel packages, minus what apt keeps back; sorted by name.
pub fn upgrades(n: &Node) -> Vec<Upgrade> {
    let mut out: Vec<Upgrade> = n
        .apt
        .available
        .iter()
        .filter(|p| !n.apt.kept_back.contains(&p.package))
        .filter_map(|p| {
            let old = installed(n, &p.package);
            let newer = match &old {
                None => kernel_of(&p.package).is_some(),
                Some(o) => version_key(&p.version) > version_key(o),
            };
            newer.then(|| Upgrade {
                package: p.package.clone(),
                old,
                new: p.version.clone(),
                release: release(n, p),
                arch: p.arch.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.package.cmp(&b.package));
    out.dedup_by(|a, b| a.package == b.package);
    out
}

fn kept_back(n: &Node) -> Vec<String> {
    n.apt
        .kept_back
        .iter()
        .filter(|k| n.apt.available.iter().any(|p| &p.package == *k))
        .cloned()
        .collect()
}

fn apt3(n: &Node) -> bool {
    version_key(&n.manager_version)
        .first()
        .copied()
        .unwrap_or(0)
        >= 9
}

/// The package lists and the summary `apt-get` prints before acting. apt 2.x
/// (apt-private/private-install.cc `ShowNew`, `ShowKept`, `ShowUpgraded` and the
/// `N upgraded, …` line); apt 3.0 (Debian 13) the `Upgrading:`/`Installing:`/`Not upgrading:`
/// lists, each followed by an empty line, and the `Summary:` block. Without a terminal the
/// lists are indented by two spaces; apt 3.0 separates names by two spaces.
fn changes(n: &Node, ups: &[Upgrade]) -> String {
    let new: Vec<&str> = ups
        .iter()
        .filter(|u| u.old.is_none())
        .map(|u| u.package.as_str())
        .collect();
    let upgraded: Vec<&str> = ups
        .iter()
        .filter(|u| u.old.is_some())
        .map(|u| u.package.as_str())
        .collect();
    let kept = kept_back(n);
    let mut o = String::new();
    if apt3(n) {
        let list = |o: &mut String, head: &str, names: &[&str]| {
            if !names.is_empty() {
                let _ = writeln!(o, "{head}\n  {}\n", names.join("  "));
            }
        };
        list(&mut o, "Upgrading:", &upgraded);
        list(&mut o, "Installing:", &new);
        let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
        list(&mut o, "Not upgrading:", &kept);
        let _ = writeln!(
            o,
            "Summary:\n  Upgrading: {}, Installing: {}, Removing: 0, Not Upgrading: {}",
            upgraded.len(),
            new.len(),
            kept.len()
        );
    } else {
        let list = |o: &mut String, head: &str, names: &[&str]| {
            if !names.is_empty() {
                let _ = writeln!(o, "{head}\n  {}", names.join(" "));
            }
        };
        list(
            &mut o,
            "The following NEW packages will be installed:",
            &new,
        );
        let kept_s: Vec<&str> = kept.iter().map(String::as_str).collect();
        list(
            &mut o,
            "The following packages have been kept back:",
            &kept_s,
        );
        list(
            &mut o,
            "The following packages will be upgraded:",
            &upgraded,
        );
        let _ = writeln!(
            o,
            "{} upgraded, {} newly installed, 0 to remove and {} not upgraded.",
            upgraded.len(),
            new.len(),
            kept.len()
        );
    }
    o
}

const HEAD: &str = "Reading package lists...\nBuilding dependency tree...\nReading state information...\nCalculating upgrade...\n";

/// `apt-get -s dist-upgrade` as root: the lists, the summary, then pkgSimulate's lines
/// (apt-pkg/algorithms.cc `pkgSimulate::Install`/`Configure`: `Inst PKG [OLD] (NEW REL [ARCH])`,
/// then `Conf PKG (NEW REL [ARCH])`). A simulation returns before the download sizes.
pub fn simulate(n: &Node) -> Reply {
    let ups = upgrades(n);
    let mut o = String::from(HEAD);
    o.push_str(&changes(n, &ups));
    for u in &ups {
        let old = u
            .old
            .as_ref()
            .map(|v| format!(" [{v}]"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "Inst {}{old} ({} {} [{}])",
            u.package, u.new, u.release, u.arch
        );
    }
    for u in &ups {
        let _ = writeln!(
            o,
            "Conf {} ({} {} [{}])",
            u.package, u.new, u.release, u.arch
        );
    }
    Reply {
        stdout: o,
        stderr: String::new(),
        exit: 0,
    }
}

/// The two lines apt prints when another process holds the dpkg frontend lock
/// (apt-pkg/deb/debsystem.cc `debSystem::Lock` via `GetLock`), exit 100.
pub fn lock_error(n: &Node) -> Option<Reply> {
    let l = n.apt.lock.as_ref()?;
    Some(Reply {
        stdout: String::new(),
        stderr: format!(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process {} ({})\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
            l.pid, l.command
        ),
        exit: APT_ERROR,
    })
}

fn source_line(n: &Node) -> (String, String) {
    let (suite, _) = debian(n);
    let channel = channel(n);
    let host = if channel == "pve-enterprise" {
        "https://enterprise.proxmox.com/debian/pve"
    } else {
        "http://download.proxmox.com/debian/pve"
    };
    (host.to_string(), format!("{suite}/{channel}"))
}

fn channel(n: &Node) -> String {
    n.apt
        .channel
        .clone()
        .unwrap_or_else(|| "pve-no-subscription".into())
}

/// `apt-get update` (apt-private/acqprogress.cc without a terminal: `Hit:N URI SUITE InRelease`
/// per unchanged index, `Get:N …` per fetched one, then `Reading package lists...`).
pub fn update_output(n: &Node, fetched: bool) -> String {
    let (suite, _) = debian(n);
    let (pve, dist) = source_line(n);
    let word = if fetched { "Get" } else { "Hit" };
    let mut o = String::new();
    let _ = writeln!(o, "Hit:1 http://deb.debian.org/debian {suite} InRelease");
    let _ = writeln!(
        o,
        "Hit:2 http://security.debian.org/debian-security {suite}-security InRelease"
    );
    let _ = writeln!(
        o,
        "{word}:3 {pve} {} InRelease",
        dist.split('/').next().unwrap_or(suite)
    );
    o.push_str("Reading package lists...\n");
    o
}

/// `apt-get -y dist-upgrade`'s output up to the end of dpkg's run (apt-pkg/acquire progress
/// `Get:` lines, dpkg's `Preparing to unpack`, `Unpacking P (NEW) over (OLD)`, `Setting up P
/// (NEW)`), and the failure dpkg reports for a failing maintainer script
/// (dpkg src/main/errors.c, apt's `E: Sub-process /usr/bin/dpkg returned an error code (1)`).
pub fn upgrade_output(n: &Node, ups: &[Upgrade], fail: Option<&str>) -> Reply {
    let mut o = String::from(HEAD);
    o.push_str(&changes(n, ups));
    let (pve, dist) = source_line(n);
    let (suite, _) = debian(n);
    for (i, u) in ups.iter().enumerate() {
        let base = if is_proxmox(&u.package) {
            format!("{pve} {dist}")
        } else {
            format!("http://deb.debian.org/debian {suite}/main")
        };
        let _ = writeln!(
            o,
            "Get:{} {base} amd64 {} {} {} [{} kB]",
            i + 1,
            u.package,
            u.arch,
            u.new,
            120 + 37 * i
        );
    }
    if !ups.is_empty() {
        o.push_str("Fetched 2048 kB in 1s (2048 kB/s)\n");
        o.push_str("(Reading database ... 74211 files and directories currently installed.)\n");
    }
    for u in ups {
        let _ = writeln!(
            o,
            "Preparing to unpack .../{}_{}_{}.deb ...",
            u.package, u.new, u.arch
        );
        match &u.old {
            Some(old) => {
                let _ = writeln!(o, "Unpacking {} ({}) over ({old}) ...", u.package, u.new);
            }
            None => {
                let _ = writeln!(o, "Selecting previously unselected package {}.", u.package);
                let _ = writeln!(o, "Unpacking {} ({}) ...", u.package, u.new);
            }
        }
    }
    let mut stderr = String::new();
    for u in ups {
        let _ = writeln!(o, "Setting up {} ({}) ...", u.package, u.new);
        if fail == Some(u.package.as_str()) {
            let _ = writeln!(
                stderr,
                "dpkg: error processing package {} (--configure):\n installed {} package post-installation script subprocess returned error exit status 1",
                u.package, u.package
            );
        }
    }
    let failed = fail.is_some_and(|f| ups.iter().any(|u| u.package == f));
    if failed {
        let f = fail.unwrap_or_default();
        // dpkg src/main/errors.c reportbroken_retexitstatus writes this to stderr.
        let _ = writeln!(stderr, "Errors were encountered while processing:\n {f}");
        stderr.push_str("E: Sub-process /usr/bin/dpkg returned an error code (1)\n");
    }
    Reply {
        stdout: o,
        stderr,
        exit: if failed { APT_ERROR } else { 0 },
    }
}

/// Applies `ups` to the node as dpkg would: versions, kernels, `pve-manager`; a package whose
/// postinst failed stays half configured (unpacked at its new version).
pub fn apply(n: &mut Node, ups: &[Upgrade], fail: Option<&str>) {
    for u in ups {
        if let Some(k) = kernel_of(&u.package) {
            if !n.kernels_installed.contains(&k) {
                n.kernels_installed.push(k);
            }
            n.apt.reboot_required = true;
        } else if u.package == "pve-manager" {
            n.manager_version = u.new.clone();
            n.repoid = repoid(&u.new);
        } else if u.package.starts_with("proxmox-kernel-") {
            // The series meta package follows its newest kernel (see `installed`).
        } else if n.packages.contains_key(&u.package) {
            n.packages.insert(u.package.clone(), u.new.clone());
        } else {
            n.apt.installed.insert(u.package.clone(), u.new.clone());
        }
        if fail == Some(u.package.as_str()) && !n.apt.broken.contains(&u.package) {
            n.apt.broken.push(u.package.clone());
        }
    }
}

/// A stable 16-hex-digit git-like repoid for a pve-manager version.
pub(crate) fn repoid(version: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in version.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `apt-cache policy` (cmdline/apt-cache.cc `Policy`): ` PRIO URI DIST ARCH Packages`, the
/// index's `release` fields and `origin HOST`, after dpkg's status file.
pub fn policy(n: &Node) -> Reply {
    let (suite, ver) = debian(n);
    let (pve, dist) = source_line(n);
    let channel = channel(n);
    let pve_host = pve
        .split("//")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_default()
        .to_string();
    let mut o = String::from("Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n");
    let _ = writeln!(
        o,
        " 500 {pve} {dist} amd64 Packages\n     release o=Proxmox,a=stable,n={suite},l=Proxmox Debian Repository,c={channel},b=amd64\n     origin {pve_host}"
    );
    let major = ver.split('.').next().unwrap_or(ver);
    let _ = writeln!(
        o,
        " 500 http://security.debian.org/debian-security {suite}-security/main amd64 Packages\n     release v={major},o=Debian,a=stable-security,n={suite}-security,l=Debian-Security,c=main,b=amd64\n     origin security.debian.org"
    );
    let _ = writeln!(
        o,
        " 500 http://deb.debian.org/debian {suite}/main amd64 Packages\n     release v={ver},o=Debian,a=stable,n={suite},l=Debian,c=main,b=amd64\n     origin deb.debian.org"
    );
    o.push_str("Pinned packages:\n");
    Reply {
        stdout: o,
        stderr: String::new(),
        exit: 0,
    }
}

/// `dpkg --audit` (dpkg src/main/enquiry.c `audit`): the half-configured explanation and one
/// ` %-20s %s` line per package; nothing when all is well.
pub fn dpkg_audit(n: &Node) -> Reply {
    // dpkg `src/main/enquiry.c` `audit`: packages sorted by name; a held lock prints its
    // warning first; each problem's explanation, ` %-20s %.*s` per package (`describebriefly`:
    // the synopsis cut to 57 columns less the name's excess over 20), then an empty line.
    let mut o = String::new();
    let mut broken = n.apt.broken.clone();
    broken.sort();
    broken.dedup();
    if !broken.is_empty() {
        if n.apt.lock.is_some() {
            o.push_str("Another process has locked the database for writing, and might currently be\nmodifying it, some of the following problems might just be due to that.\n\n");
        }
        o.push_str("The following packages are only half configured, probably due to problems\nconfiguring them the first time.  The configuration should be retried using\ndpkg --configure <package> or the configure menu option in dselect:\n");
        for p in &broken {
            let maxl = 57usize.saturating_sub(p.len().saturating_sub(20));
            let syn = synopsis(p);
            let syn: String = syn.chars().take(maxl).collect();
            let _ = writeln!(o, " {p:<20} {syn}");
        }
        o.push('\n');
    }
    Reply {
        stdout: o,
        stderr: String::new(),
        exit: 0,
    }
}

/// The first line of a package's `Description:` (its debian/control), for the packages an
/// upgrade of a PVE node leaves half configured; others get a generic one.
fn synopsis(p: &str) -> String {
    match p {
        "pve-manager" => "Proxmox Virtual Environment Management Tools".into(),
        "qemu-server" => "Qemu Server Tools".into(),
        "zfsutils-linux" => "command-line tools to manage OpenZFS filesystems".into(),
        _ => format!("{p} package"),
    }
}

/// `lslocks --json --output COMMAND,PID,PATH` (util-linux misc-utils/lslocks.c: a `locks`
/// table, `pid` a number): the apt frontend and dpkg locks of the holder, if any.
pub fn lslocks(n: &Node) -> Reply {
    let locks: Vec<serde_json::Value> = n
        .apt
        .lock
        .iter()
        .flat_map(|l| {
            ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"]
                .map(|path| serde_json::json!({"command": l.command, "pid": l.pid, "path": path}))
        })
        .collect();
    let text =
        serde_json::to_string_pretty(&serde_json::json!({ "locks": locks })).unwrap_or_default();
    Reply {
        stdout: format!("{text}\n"),
        stderr: String::new(),
        exit: 0,
    }
}

/// Paths whose `stat` the lab answers: apt's lists and caches.
pub const STAT_PATHS: &[&str] = &[
    "/var/lib/apt/lists",
    "/var/lib/apt/lists/partial",
    "/var/cache/apt/pkgcache.bin",
    "/var/lib/apt/periodic/update-success-stamp",
];

/// `stat -c '%Y %n' PATHS…` (GNU coreutils): one line per path that exists; a missing one is
/// `stat: cannot statx 'P': No such file or directory` on stderr and exit 1.
pub fn stat(n: &Node, now: i64, paths: &[&str]) -> Reply {
    let t = match n.apt.lists_time {
        Some(t) => t,
        None => now - 3600,
    };
    let mut r = Reply::default();
    for p in paths {
        if STAT_PATHS[..3].contains(p) {
            let _ = writeln!(r.stdout, "{t} {p}");
        } else {
            let _ = writeln!(
                r.stderr,
                "stat: cannot statx '{p}': No such file or directory"
            );
            r.exit = 1;
        }
    }
    r
}

/// The `Size:` (bytes) and `Installed-Size:` (KiB) of a package version: the state's own, or
/// sizes of the order real Proxmox packages have (a signed 6.17 kernel is a ~100 MB .deb that
/// unpacks to ~570 MiB of modules; pve-manager ~0.6 MB / 3.4 MiB).
fn sizes(package: &str, given: Option<&AptPackage>) -> (u64, u64) {
    let default = if kernel_of(package).is_some() {
        (104_857_600, 590_000)
    } else if package.starts_with("proxmox-kernel-") || package.starts_with("pve-kernel-") {
        (10_240, 40)
    } else if package == "pve-qemu-kvm" {
        (31_457_280, 131_072)
    } else {
        (614_400, 3_400)
    };
    (
        given.and_then(|p| p.size).unwrap_or(default.0),
        given
            .and_then(|p| p.installed_size_kib)
            .unwrap_or(default.1),
    )
}

/// `apt-cache show PKG=VERSION…` (apt apt-private/private-show.cc `ShowPackage` with
/// `DisplayRecordV1`, apt-cache's default layout): each selected version's record, the candidate's from the Packages index (with `Filename`, `Size`,
/// `SHA256`), the installed one's from /var/lib/dpkg/status (with `Status:`, no `Size`), one
/// empty line after each. A version it does not know: `E: Version 'V' for 'P' was not found`
/// on stderr and exit 100 (apt-private/private-cacheset.cc `CacheSetHelperAPTGet`-style error),
/// after the records it did find.
pub fn show(n: &Node, specs: &[&str]) -> Reply {
    let mut r = Reply::default();
    for spec in specs {
        let Some((package, version)) = spec.split_once('=') else {
            let _ = writeln!(
                r.stderr,
                "E: simulated apt-cache show needs PACKAGE=VERSION"
            );
            r.exit = APT_ERROR;
            continue;
        };
        let offered = n
            .apt
            .available
            .iter()
            .find(|p| p.package == package && p.version == version);
        let is_installed = installed(n, package).as_deref() == Some(version);
        if offered.is_none() && !is_installed {
            let _ = writeln!(
                r.stderr,
                "E: Version '{version}' for '{package}' was not found"
            );
            r.exit = APT_ERROR;
            continue;
        }
        let (size, kib) = sizes(package, offered);
        let arch = offered
            .map(|p| p.arch.as_str())
            .unwrap_or(if kernel_of(package).is_some() {
                "amd64"
            } else {
                "all"
            });
        let _ = writeln!(r.stdout, "Package: {package}");
        if offered.is_none() {
            let _ = writeln!(r.stdout, "Status: install ok installed");
            let _ = writeln!(r.stdout, "Priority: optional");
        }
        let _ = writeln!(r.stdout, "Version: {version}");
        let _ = writeln!(r.stdout, "Architecture: {arch}");
        let _ = writeln!(
            r.stdout,
            "Maintainer: {}",
            if is_proxmox(package) {
                "Proxmox Support Team <support@proxmox.com>"
            } else {
                "GNU Libc Maintainers <debian-glibc@lists.debian.org>"
            }
        );
        let _ = writeln!(r.stdout, "Installed-Size: {kib}");
        if offered.is_some() {
            let first = package.chars().next().unwrap_or('x');
            let _ = writeln!(
                r.stdout,
                "Filename: pool/main/{first}/{package}/{package}_{version}_{arch}.deb"
            );
            let _ = writeln!(r.stdout, "Size: {size}");
            let _ = writeln!(
                r.stdout,
                "SHA256: {:064x}",
                size.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
        }
        let _ = writeln!(r.stdout, "Description: {package} (lab package)");
        let _ = writeln!(
            r.stdout,
            " Simulated by the pveops lab; sizes as real ones have."
        );
        r.stdout.push('\n');
    }
    r
}

/// `df -B1 --output=avail,target PATH…` (GNU coreutils src/df.c with `--output`): the titles
/// `Avail` (right-aligned) and `Mounted on`, then per PATH the mount that holds it. `/boot` is
/// its own mount only when `disk_avail` has it; everything else is on `/`.
pub fn df(n: &Node, paths: &[&str]) -> Reply {
    let root = n.apt.disk_avail.get("/").copied().unwrap_or(60 << 30);
    let rows: Vec<(u64, &str)> = paths
        .iter()
        .map(|p| match n.apt.disk_avail.get("/boot") {
            Some(b) if *p == "/boot" || p.starts_with("/boot/") => (*b, "/boot"),
            _ => (root, "/"),
        })
        .collect();
    let width = rows
        .iter()
        .map(|(a, _)| a.to_string().len())
        .chain(std::iter::once("Avail".len()))
        .max()
        .unwrap_or(5);
    let mut r = Reply::default();
    let _ = writeln!(r.stdout, "{:>width$} Mounted on", "Avail");
    for (a, t) in rows {
        let _ = writeln!(r.stdout, "{a:>width$} {t}");
    }
    r
}
