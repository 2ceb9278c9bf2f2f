//! Recognises the error and warning texts PVE tools print on STDERR (FORMATS.md §0.5, §0.6,
//! §1.1, §2, §3.4, §4.4) and turns each into a code and one precise sentence. Used on its own
//! (kind `pve-stderr`) and by the other parsers when such lines are mixed into a capture.

use std::sync::LazyLock;

use serde::Serialize;

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, locale_noise, regex};

pub const KIND: &str = "pve-stderr";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "STDERR of any PVE command: known errors as codes and sentences",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One recognised STDERR message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// 1-based line number in the input.
    pub line: usize,
    /// The line as printed.
    pub text: String,
    /// Stable identifier, e.g. `no-cluster`, `storage-offline`.
    pub code: &'static str,
    /// What it is about: storage id, VMID, unit, or null.
    pub subject: Option<String>,
    /// One sentence saying what the message means.
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnrecognisedLine {
    pub line: usize,
    pub text: String,
}

/// Everything read from a STDERR capture.
#[derive(Debug, Clone, Serialize)]
pub struct Stderr {
    pub diagnostics: Vec<Diagnostic>,
    /// Lines that are not a known message (kept, not an error: STDERR is free text).
    pub unrecognised: Vec<UnrecognisedLine>,
}

impl Stderr {
    /// True when any diagnostic carries `code`.
    pub fn has(&self, code: &str) -> bool {
        self.diagnostics.iter().any(|d| d.code == code)
    }
}

type Rule = (LazyRegex, &'static str, fn(Option<&str>) -> String);

macro_rules! rule {
    ($re:expr, $code:expr, $msg:expr) => {
        (LazyLock::new(|| regex($re)), $code, $msg)
    };
}

fn subject_or(s: Option<&str>) -> &str {
    s.unwrap_or("?")
}

/// Ordered: the first matching rule wins. Group 1, when present, is the subject.
static RULES: [Rule; 28] = [
    // FORMATS.md §1.1: missing corosync.conf; with `Error: ` since pve-cluster Nov 2019,
    // plain warn() before.
    rule!(
        r"^(?:Error: )?Corosync config '([^']*)' does not exist - is this node part of a cluster\?$",
        "no-cluster",
        |s| format!(
            "this node is not part of a cluster ({} does not exist)",
            subject_or(s)
        )
    ),
    // FORMATS.md §0.5d: pmxcfs (pve-cluster.service) down or unreachable.
    rule!(
        r"^ipcc_send_rec\[\d+\] failed: (.*)$",
        "pmxcfs-down",
        |_| "the cluster filesystem (pmxcfs, pve-cluster.service) is not running or not reachable"
            .to_owned()
    ),
    rule!(
        r"^Unable to load access control list: (.*)$",
        "pmxcfs-down",
        |_| "the cluster filesystem (pmxcfs, pve-cluster.service) is not running or not reachable"
            .to_owned()
    ),
    rule!(r"^Connection refused$", "pmxcfs-down", |_| {
        "the cluster filesystem (pmxcfs, pve-cluster.service) refused the connection".to_owned()
    }),
    // FORMATS.md §1.1: corosync not running (corosync-quorumtool init_all()).
    rule!(
        r"^Cannot initiali[sz]e (CMAP|QUORUM|CFG|VOTEQUORUM) service$",
        "corosync-down",
        |s| format!(
            "corosync is not running on this node (cannot initialise its {} service)",
            subject_or(s)
        )
    ),
    rule!(
        r"^Unable to set expected votes: (.*)$",
        "expected-votes-failed",
        |s| format!(
            "corosync refused to set the expected votes: {}",
            subject_or(s)
        )
    ),
    // FORMATS.md §2: storage activation errors, warned while the table still prints.
    rule!(
        r"^storage '([^']+)' is not online$",
        "storage-offline",
        |s| format!(
            "storage {} is not online (its server does not answer)",
            subject_or(s)
        )
    ),
    rule!(
        r"^connection check for storage '([^']+)' failed - .*$",
        "storage-connection-failed",
        |s| format!("the connection check for storage {} failed", subject_or(s))
    ),
    rule!(
        r"^unable to activate storage '([^']+)' - directory is expected to be a mount point but is not mounted: '[^']*'$",
        "storage-not-mounted",
        |s| format!(
            "storage {} is not mounted although it is configured as a mount point",
            subject_or(s)
        )
    ),
    rule!(
        r"^unable to activate storage '([^']+)' - .*$",
        "storage-activation-failed",
        |s| format!("storage {} could not be activated", subject_or(s))
    ),
    rule!(
        r"^could not activate storage '([^']+)', .*$",
        "storage-activation-failed",
        |s| format!("storage {} could not be activated", subject_or(s))
    ),
    rule!(
        r"^zfs error: cannot (?:open|import) '([^']+)': no such pool.*$",
        "zfs-pool-missing",
        |s| format!("ZFS pool {} does not exist on this node", subject_or(s))
    ),
    rule!(
        r"^storage '([^']+)' does not exist$",
        "storage-unknown",
        |s| format!("storage {} is not configured", subject_or(s))
    ),
    // pvesh on a node whose PVE has no such API path (pve-manager `PVE/CLI/pvesh.pm`): older
    // PVE without `/cluster/ha/rules` (< 9.0) or the containers' migrate preflight (< 9.0).
    rule!(
        r"^No '\w+' handler defined for '([^']*)'$",
        "api-path-missing",
        |s| format!(
            "this node's PVE has no API path {}",
            s.unwrap_or("(unnamed)")
        )
    ),
    // FORMATS.md §3.2/§3.4/§4.4: guest command errors (exit 255).
    rule!(
        r"^Configuration file 'nodes/[^/]+/(?:qemu-server|lxc)/(\d+)\.conf' does not exist$",
        "guest-not-found",
        |s| format!("guest {} does not exist on this node", subject_or(s))
    ),
    rule!(
        r"^(?:VM|CT) (\d+) already running$",
        "guest-already-running",
        |s| format!("guest {} is already running", subject_or(s))
    ),
    rule!(
        r"^(?:VM|CT) (\d+) not running$",
        "guest-not-running",
        |s| format!("guest {} is not running", subject_or(s))
    ),
    rule!(
        r"^(?:VM|CT) is locked \(([^)]+)\)$",
        "guest-locked",
        |s| format!("the guest is locked ({})", subject_or(s))
    ),
    rule!(
        r"^VM quit/powerdown failed - got timeout$",
        "shutdown-timeout",
        |_| "the guest did not shut down before the timeout".to_owned()
    ),
    rule!(r"^VM is paused - cannot shutdown$", "guest-paused", |_| {
        "the guest is paused and cannot be shut down".to_owned()
    }),
    rule!(
        r"^(?:lxc live migration is currently not implemented|running container can only be migrated in restart mode)$",
        "ct-needs-restart-mode",
        |_| "a running container can only be migrated with --restart".to_owned()
    ),
    rule!(
        r"^Task finished with (\d+) warning\(s\)!$",
        "task-warnings",
        |s| format!("the task finished with {} warning(s)", subject_or(s))
    ),
    rule!(
        r"^(?:TASK ERROR: )?migration aborted.*$",
        "migration-aborted",
        |_| "the migration was aborted".to_owned()
    ),
    // FORMATS.md §6.1: a sub-command without --output-format.
    rule!(r"^Unknown option: (.+)$", "unknown-option", |s| format!(
        "the command does not accept the option {}",
        subject_or(s)
    )),
    rule!(r"^400 unable to parse option$", "unknown-option", |_| {
        "the command rejected its options".to_owned()
    }),
    // FORMATS.md §0.5b: libapt warnings printed by tools that read the apt cache.
    rule!(
        r"^(?:W: )?Target \S+ \(.*\) is configured multiple times in (.*)$",
        "apt-warning",
        |_| "apt warns that a repository is configured more than once".to_owned()
    ),
    rule!(r"^[WE]: (.*)$", "apt-warning", |_| "apt printed a warning"
        .to_owned()),
    rule!(r"^(?:TASK ERROR|ERROR): (.*)$", "task-error", |s| format!(
        "the task failed: {}",
        subject_or(s)
    )),
];

/// Classifies one line, if it is a known STDERR message (locale warnings are handled by
/// [`super::common::locale_noise`]).
pub fn classify(line_no: usize, text: &str) -> Option<Diagnostic> {
    let text = text.trim();
    for (re, code, msg) in RULES.iter() {
        if let Some(caps) = captures(re, text) {
            let subject = group(&caps, 0).map(str::to_owned);
            // The free-text groups are not subjects.
            let subject = match *code {
                "pmxcfs-down" | "task-error" | "apt-warning" => None,
                _ => subject,
            };
            return Some(Diagnostic {
                line: line_no,
                text: text.to_owned(),
                code,
                message: msg(group(&caps, 0)),
                subject,
            });
        }
    }
    None
}

/// Reads a whole STDERR capture. Never fails: unknown lines are listed, not rejected.
pub fn parse(text: &str) -> Result<Stderr, ParseError> {
    let lines = lines(text);
    let noise = locale_noise(&lines);
    let mut out = Stderr {
        diagnostics: Vec::new(),
        unrecognised: Vec::new(),
    };
    for (line, is_noise) in lines.iter().zip(noise) {
        if line.text.is_empty() {
            continue;
        }
        if is_noise {
            if line
                .text
                .starts_with("perl: warning: Setting locale failed")
            {
                out.diagnostics.push(Diagnostic {
                    line: line.no,
                    text: line.text.to_owned(),
                    code: "locale-warning",
                    subject: None,
                    message: "the node lacks a locale the SSH client forwarded (run remote commands with LC_ALL=C.UTF-8)".to_owned(),
                });
            }
            continue;
        }
        match classify(line.no, line.text) {
            Some(d) => out.diagnostics.push(d),
            None => out.unrecognised.push(UnrecognisedLine {
                line: line.no,
                text: line.text.to_owned(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn no_cluster_both_generations() {
        let new = classify(
            1,
            "Error: Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?",
        )
        .unwrap();
        assert_eq!(new.code, "no-cluster");
        assert_eq!(
            new.message,
            "this node is not part of a cluster (/etc/pve/corosync.conf does not exist)"
        );
        // PVE 6.0 and older: same text via warn(), no `Error: ` prefix.
        let old = classify(
            1,
            "Corosync config '/etc/pve/corosync.conf' does not exist - is this node part of a cluster?",
        )
        .unwrap();
        assert_eq!(old.code, "no-cluster");
    }

    #[test]
    fn storage_errors_name_the_storage() {
        let d = classify(3, "storage 'backup-nas' is not online").unwrap();
        assert_eq!(
            (d.code, d.subject.as_deref()),
            ("storage-offline", Some("backup-nas"))
        );
        let d = classify(
            1,
            "unable to activate storage 'usb-dump' - directory is expected to be a mount point but is not mounted: '/mnt/usb-dump'",
        )
        .unwrap();
        assert_eq!(
            (d.code, d.subject.as_deref()),
            ("storage-not-mounted", Some("usb-dump"))
        );
        let d = classify(1, "zfs error: cannot open 'vmdata': no such pool").unwrap();
        assert_eq!(
            (d.code, d.subject.as_deref()),
            ("zfs-pool-missing", Some("vmdata"))
        );
    }

    #[test]
    fn guest_errors() {
        assert_eq!(
            classify(1, "VM 100 already running").unwrap().code,
            "guest-already-running"
        );
        assert_eq!(
            classify(1, "VM is locked (backup)")
                .unwrap()
                .subject
                .as_deref(),
            Some("backup")
        );
        assert_eq!(
            classify(1, "VM quit/powerdown failed - got timeout")
                .unwrap()
                .code,
            "shutdown-timeout"
        );
        assert!(classify(1, "just some text").is_none());
    }

    #[test]
    fn locale_block_is_one_diagnostic() {
        let text = "perl: warning: Setting locale failed.\nperl: warning: Please check that your locale settings:\n\tLANGUAGE = (unset),\n\tLANG = \"en_US.UTF-8\"\n    are supported and installed on your system.\nperl: warning: Falling back to a fallback locale (\"en_US.UTF-8\").\nVM 100 not running\n";
        let s = parse(text).unwrap();
        assert_eq!(s.diagnostics.len(), 2);
        assert_eq!(s.diagnostics[0].code, "locale-warning");
        assert_eq!(s.diagnostics[1].code, "guest-not-running");
        assert!(s.unrecognised.is_empty());
    }
}
