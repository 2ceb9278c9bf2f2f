//! Findings: the result of a check that did not pass, and the severity order that turns them
//! into an exit status (Nagios: OK < WARNING < UNKNOWN < CRITICAL).

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Unknown,
    Critical,
}

impl Severity {
    /// The order of PRODUCT.md: OK < WARNING < UNKNOWN < CRITICAL.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Unknown => 2,
            Severity::Critical => 3,
        }
    }

    /// The Nagios exit status: 0, 1, 3, 2.
    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Unknown => 3,
            Severity::Critical => 2,
        }
    }

    /// The severity an exit status stands for (0, 1, 2, 3; anything else is UNKNOWN).
    pub fn from_exit_code(code: i32) -> Severity {
        match code {
            0 => Severity::Ok,
            1 => Severity::Warning,
            2 => Severity::Critical,
            _ => Severity::Unknown,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Unknown => "unknown",
            Severity::Critical => "critical",
        }
    }

    /// The worse of two.
    pub fn max(self, other: Severity) -> Severity {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// One check result that is not OK.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    pub severity: Severity,
    /// The target name where it was observed; null for a judgement over the whole cluster.
    pub node: Option<String>,
    /// The storage id, the VMID as a string, the unit or package name, or null.
    pub subject: Option<String>,
    /// One sentence naming node, subject and the observed value.
    pub message: String,
}

/// The worst severity of `findings` (OK when there are none).
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .fold(Severity::Ok, |acc, f| acc.max(f.severity))
}

/// Findings worst first, then by check, node and subject (stable for reports and tests).
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .rank()
            .cmp(&a.severity.rank())
            .then_with(|| a.check.cmp(&b.check))
            .then_with(|| a.node.cmp(&b.node))
            .then_with(|| natural(a.subject.as_deref()).cmp(&natural(b.subject.as_deref())))
    });
}

/// Sort key that puts "9" before "10".
fn natural(s: Option<&str>) -> (u64, String) {
    let s = s.unwrap_or("");
    (s.parse::<u64>().unwrap_or(u64::MAX), s.to_string())
}
