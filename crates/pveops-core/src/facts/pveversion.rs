//! `pveversion` and `pveversion -v` (FORMATS.md §5.2): the manager version line, and the
//! per-package list with its kernel group (`pve-kernel-*` up to PVE 8.0, `proxmox-kernel-*`
//! since 8.1) and non-installed states.
//! Also what the snapshot keeps of `pveversion -v`: [`Version`].

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, locale_noise, regex, version_cmp};
use super::stderr;
use super::{Keep, Read, Scope};

pub const KIND: &str = "pveversion";
pub const KIND_V: &str = "pveversion-v";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pveversion: manager version and running kernel",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE_V: super::Kind = super::Kind {
    name: KIND_V,
    what: "pveversion -v: package versions, kernels, reboot pending",
    parse: |text| super::to_json(KIND_V, parse_v(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PveVersion {
    /// `9.1.1` (PVE >= 8) or `7.4-15` (PVE <= 7).
    pub manager_version: String,
    /// 8 hex digits up to PVE 7, 16 since PVE 8.
    pub manager_repoid: String,
    pub running_kernel: String,
    /// Lines printed before the version line (apt/locale warnings), recognised.
    pub diagnostics: Vec<stderr::Diagnostic>,
}

static MANAGER_LINE: LazyRegex =
    LazyLock::new(|| regex(r"^pve-manager/(\S+)/(\S+) \(running kernel: (\S+)\)$"));

/// Parses `pveversion`. The version line is found by its shape, not taken from line 1:
/// libapt warnings may precede it (pveversion.apt-warnings-not-rebooted.pve9.0).
pub fn parse(text: &str) -> Result<PveVersion, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut diagnostics = Vec::new();
    let mut first_unknown = None;
    for (line, is_noise) in lines.iter().zip(noise) {
        if is_noise || line.text.is_empty() {
            continue;
        }
        if let Some(c) = captures(&MANAGER_LINE, line.text) {
            return Ok(PveVersion {
                manager_version: group(&c, 0).unwrap_or_default().to_owned(),
                manager_repoid: group(&c, 1).unwrap_or_default().to_owned(),
                running_kernel: group(&c, 2).unwrap_or_default().to_owned(),
                diagnostics,
            });
        }
        match stderr::classify(line.no, line.text) {
            Some(d) => diagnostics.push(d),
            None => {
                first_unknown.get_or_insert(*line);
            }
        }
    }
    Err(match first_unknown {
        Some(l) => ParseError::new(
            KIND,
            l.no,
            l.text,
            "expected \"pve-manager/<version>/<repoid> (running kernel: <kernel>)\"",
        ),
        None => ParseError::new(KIND, 0, "", "no pve-manager version line"),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kernel {
    pub package: String,
    pub version: Option<String>,
    /// `uname -r` form (`6.17.2-2-pve`) for a concrete kernel; null for a series
    /// meta-package such as `proxmox-kernel-6.17`.
    pub release: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PveVersionV {
    /// Without the `/repoid` (taken from `running version:` of the pve-manager line).
    pub manager_version: Option<String>,
    pub manager_repoid: Option<String>,
    pub running_kernel: Option<String>,
    pub proxmox_ve_version: Option<String>,
    /// name → version token; null when the package is `not correctly installed` or only
    /// `residual config` (see `package_states`).
    pub packages: BTreeMap<String, Option<String>>,
    /// Packages apt knows but that are not installed: name → `not correctly installed` |
    /// `residual config`.
    pub package_states: BTreeMap<String, String>,
    /// Kernel packages in printed order (newest first).
    pub kernels: Vec<Kernel>,
    /// Highest installed kernel release (`uname -r` form).
    pub newest_kernel: Option<String>,
    /// True when the running kernel is not the newest installed one (reboot pending).
    pub reboot_required: Option<bool>,
    pub diagnostics: Vec<stderr::Diagnostic>,
}

/// `pveversion -v` (kind `pveversion-v`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Version {
    pub manager_version: Option<String>,
    pub running_kernel: Option<String>,
    pub packages: BTreeMap<String, Option<String>>,
    pub newest_kernel: Option<String>,
    pub reboot_required: Option<bool>,
}

impl From<&PveVersionV> for Version {
    fn from(v: &PveVersionV) -> Self {
        let PveVersionV {
            manager_version,
            manager_repoid: _,
            running_kernel,
            proxmox_ve_version: _,
            packages,
            package_states: _,
            kernels: _,
            newest_kernel,
            reboot_required,
            diagnostics: _,
        } = v;
        Version {
            manager_version: manager_version.clone(),
            running_kernel: running_kernel.clone(),
            packages: packages.clone(),
            newest_kernel: newest_kernel.clone(),
            reboot_required: *reboot_required,
        }
    }
}

static PKG_LINE: LazyRegex = LazyLock::new(|| regex(r"^([a-z0-9][a-z0-9+.\-]*): (.+)$"));
static RUNNING_KERNEL: LazyRegex = LazyLock::new(|| regex(r"\(running kernel: (\S+)\)"));
static RUNNING_VERSION: LazyRegex =
    LazyLock::new(|| regex(r"\(running version: ([^/\s]+)/(\S+)\)"));

/// The `uname -r` release of a kernel package, if it is one: `proxmox-kernel-<rel>-signed`
/// and `pve-kernel-<rel>` where `<rel>` ends in `-pve` (FORMATS.md §9: renamed in PVE 8.1).
pub(crate) fn kernel_release(pkg: &str) -> Option<Option<String>> {
    let rest = pkg
        .strip_prefix("proxmox-kernel-")
        .or_else(|| pkg.strip_prefix("pve-kernel-"))?;
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        // `proxmox-kernel-helper`, `pve-kernel-helper`: not a kernel.
        return None;
    }
    let rest = rest.strip_suffix("-signed").unwrap_or(rest);
    Some(rest.ends_with("-pve").then(|| rest.to_owned()))
}

pub fn parse_v(text: &str) -> Result<PveVersionV, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = PveVersionV {
        manager_version: None,
        manager_repoid: None,
        running_kernel: None,
        proxmox_ve_version: None,
        packages: BTreeMap::new(),
        package_states: BTreeMap::new(),
        kernels: Vec::new(),
        newest_kernel: None,
        reboot_required: None,
        diagnostics: Vec::new(),
    };
    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise || t.is_empty() {
            continue;
        }
        let Some(c) = captures(&PKG_LINE, t) else {
            if let Some(d) = stderr::classify(line.no, t) {
                out.diagnostics.push(d);
                continue;
            }
            return Err(ParseError::new(
                KIND_V,
                line.no,
                t,
                "expected \"<package>: <version>\"",
            ));
        };
        let name = group(&c, 0).unwrap_or_default();
        let value = group(&c, 1).unwrap_or_default().trim();
        // The version is the first token; a parenthesised remark follows it.
        let version = match value {
            "not correctly installed" | "residual config" => {
                out.package_states.insert(name.to_owned(), value.to_owned());
                None
            }
            _ => value.split_whitespace().next().map(str::to_owned),
        };
        if name == "proxmox-ve" {
            out.proxmox_ve_version.clone_from(&version);
            if let Some(k) = captures(&RUNNING_KERNEL, value) {
                out.running_kernel = group(&k, 0).map(str::to_owned);
            }
        }
        if name == "pve-manager" {
            match captures(&RUNNING_VERSION, value) {
                Some(v) => {
                    out.manager_version = group(&v, 0).map(str::to_owned);
                    out.manager_repoid = group(&v, 1).map(str::to_owned);
                }
                None => out.manager_version.clone_from(&version),
            }
        }
        if let Some(release) = kernel_release(name) {
            out.kernels.push(Kernel {
                package: name.to_owned(),
                version: version.clone(),
                release,
            });
        }
        // `proxmox-kernel-helper` is printed twice (kernel group and fixed list): keep the
        // first, they are the same package.
        out.packages.entry(name.to_owned()).or_insert(version);
    }
    if out.packages.is_empty() {
        return Err(ParseError::new(
            KIND_V,
            0,
            "",
            "no \"<package>: <version>\" lines",
        ));
    }
    out.newest_kernel = out
        .kernels
        .iter()
        .filter(|k| k.version.is_some())
        .filter_map(|k| k.release.clone())
        .max_by(|a, b| version_cmp(a, b));
    out.reboot_required = match (&out.running_kernel, &out.newest_kernel) {
        (Some(r), Some(n)) => Some(r != n),
        _ => None,
    };
    Ok(out)
}

/// The `pveversion-v` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "pveversion-v",
    scope: Scope::Node,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse_v(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.version = Some((&parsed).into());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn version_line_after_warnings() {
        let v = parse("W: something\nTarget Packages (x) is configured multiple times in a and b\npve-manager/7.4-15/a5d2a31e (running kernel: 5.15.108-1-pve)\n").unwrap();
        assert_eq!(v.manager_version, "7.4-15");
        assert_eq!(v.manager_repoid, "a5d2a31e");
        assert_eq!(v.diagnostics.len(), 2);
        assert!(parse("nothing here\n").is_err());
    }

    #[test]
    fn pve7_kernel_naming() {
        let text = "proxmox-ve: 7.3-1 (running kernel: 5.15.74-1-pve)\npve-manager: 7.3-3 (running version: 7.3-3/c3928077)\npve-kernel-helper: 7.3-1\npve-kernel-5.15: 7.2-14\npve-kernel-5.15.83-1-pve: 5.15.83-1\npve-kernel-5.15.74-1-pve: 5.15.74-1\nceph-fuse: 15.2.17-pve1\n";
        let v = parse_v(text).unwrap();
        assert_eq!(v.manager_version.as_deref(), Some("7.3-3"));
        assert_eq!(v.manager_repoid.as_deref(), Some("c3928077"));
        assert_eq!(v.kernels.len(), 3);
        assert_eq!(v.kernels[0].release, None);
        assert_eq!(v.newest_kernel.as_deref(), Some("5.15.83-1-pve"));
        assert_eq!(v.reboot_required, Some(true));
        assert_eq!(v.packages["proxmox-ve"].as_deref(), Some("7.3-1"));
    }

    #[test]
    fn not_correctly_installed() {
        let v =
            parse_v("pve-edk2-firmware: not correctly installed\nfoo: residual config\nbar: 1.0\n")
                .unwrap();
        assert_eq!(v.packages["pve-edk2-firmware"], None);
        assert_eq!(
            v.package_states["pve-edk2-firmware"],
            "not correctly installed"
        );
        assert_eq!(v.package_states["foo"], "residual config");
    }
}
