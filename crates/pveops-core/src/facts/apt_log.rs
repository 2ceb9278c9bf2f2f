//! The log of `apt-get -y dist-upgrade` (kind `apt-upgrade-log`), stdout and stderr merged as a
//! detached run keeps them: which packages dpkg unpacked and set up, which failed, and apt's
//! own errors. The lines are dpkg's and apt's:
//! - `Unpacking PKG (NEW) over (OLD) ...` / `Unpacking PKG (NEW) ...` (dpkg src/main/archives.c),
//!   `Setting up PKG (NEW) ...` (dpkg src/main/configure.c `deferred_configure`);
//! - `dpkg: error processing package PKG (--configure):` then an indented reason
//!   (dpkg src/main/errors.c `print_error_perpackage`, on stderr), and at the end
//!   `Errors were encountered while processing:` with one ` PKG` line each (`reportbroken_retexitstatus`);
//! - `E: …` / `W: …` (apt-pkg/contrib/error.cc `GlobalError::DumpErrors`), e.g.
//!   `E: Sub-process /usr/bin/dpkg returned an error code (1)` (apt-pkg/deb/dpkgpm.cc) or the lock
//!   message `E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)`
//!   (apt-pkg/contrib/fileutl.cc `GetLock`).
//!
//! Everything else (download lines, triggers, maintainer-script chatter) is skipped: a log has
//! no fixed shape, so the parser never fails on unknown lines.

use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, regex};

pub const KIND: &str = "apt-upgrade-log";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "apt-get -y dist-upgrade's log: packages unpacked and set up, dpkg's and apt's errors",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// A package dpkg unpacked or set up, with the version it printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Package {
    pub package: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpgradeLog {
    pub unpacked: Vec<Package>,
    pub set_up: Vec<Package>,
    /// `dpkg: error processing package …` with its reason, one sentence each.
    pub dpkg_errors: Vec<String>,
    /// The packages dpkg listed under `Errors were encountered while processing:`.
    pub failed_packages: Vec<String>,
    /// apt's `E:` lines, without the prefix.
    pub errors: Vec<String>,
    /// apt's `W:` lines, without the prefix.
    pub warnings: Vec<String>,
    /// The process holding a lock apt wanted (`4242 (apt-get)`), when apt said so.
    pub lock_holder: Option<String>,
}

impl UpgradeLog {
    /// One sentence naming what failed, or none when the log shows no failure.
    pub fn failure(&self) -> Option<String> {
        let mut parts: Vec<String> = self.dpkg_errors.clone();
        if parts.is_empty() && !self.failed_packages.is_empty() {
            parts.push(format!(
                "dpkg could not process {}",
                self.failed_packages.join(", ")
            ));
        }
        parts.extend(self.errors.iter().map(|e| format!("E: {e}")));
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

static UNPACK: LazyRegex =
    LazyLock::new(|| regex(r"^Unpacking (\S+) \(([^)\s]+)\)(?: over \([^)]*\))? \.\.\.$"));
static SETUP: LazyRegex = LazyLock::new(|| regex(r"^Setting up (\S+) \(([^)\s]+)\) \.\.\.$"));
static DPKG_ERROR: LazyRegex =
    LazyLock::new(|| regex(r"^dpkg: error processing (?:package|archive) (\S+) \(([^)]*)\):?$"));
static LOCK_HOLDER: LazyRegex = LazyLock::new(|| regex(r"It is held by process (\d+ \([^)]*\))"));

/// Reads a log. It never fails: an empty log is an upgrade that printed nothing.
pub fn parse(text: &str) -> Result<UpgradeLog, ParseError> {
    let mut log = UpgradeLog::default();
    let all = lines(text);
    let mut in_failed = false;
    let mut i = 0;
    while let Some(line) = all.get(i) {
        let t = line.text.trim_end();
        i += 1;
        if in_failed {
            if let Some(pkg) = t.strip_prefix(' ').map(str::trim)
                && !pkg.is_empty()
                && !pkg.contains(' ')
            {
                log.failed_packages.push(pkg.to_string());
                continue;
            }
            in_failed = false;
        }
        if let Some(c) = captures(&UNPACK, t) {
            log.unpacked.push(Package {
                package: group(&c, 0).unwrap_or_default().to_string(),
                version: group(&c, 1).unwrap_or_default().to_string(),
            });
        } else if let Some(c) = captures(&SETUP, t) {
            log.set_up.push(Package {
                package: group(&c, 0).unwrap_or_default().to_string(),
                version: group(&c, 1).unwrap_or_default().to_string(),
            });
        } else if let Some(c) = captures(&DPKG_ERROR, t) {
            // The reason is the next, indented line.
            let reason = all
                .get(i)
                .map(|l| l.text)
                .filter(|l| l.starts_with(' '))
                .map(str::trim);
            if reason.is_some() {
                i += 1;
            }
            log.dpkg_errors.push(match reason {
                Some(r) => format!(
                    "dpkg: error processing package {}: {r}",
                    group(&c, 0).unwrap_or_default()
                ),
                None => format!(
                    "dpkg: error processing package {} ({})",
                    group(&c, 0).unwrap_or_default(),
                    group(&c, 1).unwrap_or_default()
                ),
            });
        } else if t == "Errors were encountered while processing:" {
            in_failed = true;
        } else if let Some(e) = t.strip_prefix("E: ") {
            if log.lock_holder.is_none()
                && let Some(c) = captures(&LOCK_HOLDER, e)
            {
                log.lock_holder = Some(group(&c, 0).unwrap_or_default().to_string());
            }
            log.errors.push(e.trim().to_string());
        } else if let Some(w) = t.strip_prefix("W: ") {
            log.warnings.push(w.trim().to_string());
        }
    }
    Ok(log)
}

/// apt's first `E:` line of an output (its own error: a lock, broken lists, a dpkg failure).
pub fn first_error(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("E: "))
        .map(str::trim)
}

/// apt's own failure in one line: `apt exited N: E: …` (its first `E:` line, else its first).
pub fn failure(code: Option<u32>, stderr: &str) -> String {
    let line = first_error(stderr)
        .map(|e| format!("E: {e}"))
        .or_else(|| {
            stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "no message".into());
    format!("apt {}: {line}", crate::output::exited(code))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_postinst_names_package_and_reason() {
        let log = parse(
            "Unpacking pve-manager (9.1.2) over (9.1.1) ...\n\
             Setting up pve-manager (9.1.2) ...\n\
             dpkg: error processing package pve-manager (--configure):\n \
             installed pve-manager package post-installation script subprocess returned error exit status 1\n\
             Errors were encountered while processing:\n pve-manager\n\
             E: Sub-process /usr/bin/dpkg returned an error code (1)\n",
        )
        .unwrap();
        assert_eq!(log.failed_packages, ["pve-manager"]);
        assert_eq!(
            log.failure().unwrap(),
            "dpkg: error processing package pve-manager: installed pve-manager package \
             post-installation script subprocess returned error exit status 1; \
             E: Sub-process /usr/bin/dpkg returned an error code (1)"
        );
        assert_eq!(log.set_up[0].version, "9.1.2");
    }

    #[test]
    fn a_lock_names_its_holder_and_a_clean_log_has_no_failure() {
        let log = parse(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n\
             E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
        )
        .unwrap();
        assert_eq!(log.lock_holder.as_deref(), Some("4242 (apt-get)"));
        assert!(
            parse("Setting up libc6:amd64 (2.41-12) ...\n")
                .unwrap()
                .failure()
                .is_none()
        );
        assert!(parse("").unwrap().failure().is_none());
        assert_eq!(
            first_error("W: x\nE: Could not open lock file\nE: second"),
            Some("Could not open lock file")
        );
    }
}
