//! `pve8to9 [--full]`, `pve7to8 [--full]` (and pve6to7, same logger), FORMATS.md §7:
//! `= TITLE =` sections, `LEVEL: message` lines with unprefixed continuation lines, free-text
//! progress lines, ANSI colours, and the SUMMARY counters.
//! Also what the snapshot keeps of it: each [`ChecklistResult`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::common::{LazyRegex, captures, group, lines, locale_noise, regex, strip_ansi};
use super::{Keep, Read, Scope};

pub const KIND: &str = "upgrade-checklist";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pve8to9 / pve7to8 [--full]: check results by section and the summary",
    parse: |text| super::to_json(KIND, parse(text)),
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// PASS, INFO, SKIP, NOTICE, WARN or FAIL.
    pub level: String,
    /// Section title without the `=` marks; null before the first header.
    pub section: Option<String>,
    /// Text after `LEVEL: `, continuation lines joined with `\n`.
    pub message: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub total: u64,
    pub passed: u64,
    pub skipped: u64,
    pub warnings: u64,
    pub failures: u64,
    /// Not printed by the tool (TOTAL minus the others), FORMATS.md §7.
    pub notices: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpgradeChecklist {
    pub results: Vec<CheckResult>,
    /// The printed SUMMARY; counted from `results` when the output has none (cut short).
    pub summary: Summary,
    /// True when the SUMMARY section was present.
    pub complete: bool,
    /// Section titles in order.
    pub sections: Vec<String>,
}

/// One WARN or FAIL (or other) line of the upgrade checker (kind `upgrade-checklist`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChecklistResult {
    pub level: String,
    pub section: Option<String>,
    pub message: String,
}

impl From<&CheckResult> for ChecklistResult {
    fn from(r: &CheckResult) -> Self {
        let CheckResult {
            level,
            section,
            message,
            line: _,
        } = r;
        ChecklistResult {
            level: level.clone(),
            section: section.clone(),
            message: message.clone(),
        }
    }
}

static LOG_LINE: LazyRegex = LazyLock::new(|| regex(r"^(PASS|INFO|SKIP|NOTICE|WARN|FAIL): ?(.*)$"));
static HEADER: LazyRegex = LazyLock::new(|| regex(r"^= (.+) =$"));
static COUNTER: LazyRegex =
    LazyLock::new(|| regex(r"^(TOTAL|PASSED|SKIPPED|WARNINGS|FAILURES): +(\d+)$"));
// Free-text progress lines printed with a leading "\n" (`Checking for package updates..`,
// `Analzying quorum settings and state..` [sic]): they are not continuations.
static PROGRESS: LazyRegex =
    LazyLock::new(|| regex(r"^(?:Checking|Analy[sz]ing|Analzying) .*\.\.$"));

fn matches(re: &LazyRegex, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

pub fn parse(text: &str) -> Result<UpgradeChecklist, ParseError> {
    // Colours are always emitted and the reset lands at the start of the next line
    // (FORMATS.md §0.7); stripping SGR codes changes no line count.
    let clean = strip_ansi(text);
    let lines = lines(&clean);
    let noise = locale_noise(&lines);
    let mut results: Vec<CheckResult> = Vec::new();
    let mut sections = Vec::new();
    let mut section: Option<String> = None;
    let mut in_summary = false;
    let mut printed: [Option<u64>; 5] = [None; 5];
    // Continuation lines of the current message (blank lines kept until proven internal).
    let mut open = false;
    let mut pending_blank = 0usize;
    let mut prev_blank = true;

    for (line, is_noise) in lines.iter().zip(noise) {
        let t = line.text;
        if is_noise {
            continue;
        }
        if t.is_empty() {
            pending_blank += 1;
            prev_blank = true;
            continue;
        }
        let was_blank = prev_blank;
        prev_blank = false;
        if let Some(c) = captures(&HEADER, t) {
            let title = group(&c, 0).unwrap_or_default().trim().to_owned();
            in_summary = title == "SUMMARY";
            sections.push(title.clone());
            section = Some(title);
            open = false;
            continue;
        }
        if in_summary {
            if let Some(c) = captures(&COUNTER, t) {
                let idx = match group(&c, 0) {
                    Some("TOTAL") => 0,
                    Some("PASSED") => 1,
                    Some("SKIPPED") => 2,
                    Some("WARNINGS") => 3,
                    _ => 4,
                };
                if let Some(slot) = printed.get_mut(idx) {
                    *slot = group(&c, 1).and_then(|n| n.parse().ok());
                }
            }
            // `ATTENTION: ...` and `Try to solve the problems ...` lines need no parsing.
            continue;
        }
        if let Some(c) = captures(&LOG_LINE, t) {
            results.push(CheckResult {
                level: group(&c, 0).unwrap_or_default().to_owned(),
                section: section.clone(),
                message: group(&c, 1).unwrap_or_default().to_owned(),
                line: line.no,
            });
            open = true;
            pending_blank = 0;
            continue;
        }
        if was_blank && matches(&PROGRESS, t) {
            open = false;
            continue;
        }
        // Anything else continues the previous message (indented with spaces or TAB, or
        // even unindented after a blank line), FORMATS.md §7.
        if open && let Some(last) = results.last_mut() {
            for _ in 0..pending_blank {
                last.message.push('\n');
            }
            last.message.push('\n');
            last.message.push_str(t);
        }
        // Before the first log line (a progress line without blank, or other free text):
        // nothing to attach to; it carries no result.
        pending_blank = 0;
    }
    if results.is_empty() && sections.is_empty() {
        let first = lines
            .iter()
            .find(|l| !l.text.is_empty())
            .map_or((0, ""), |l| (l.no, l.text));
        return Err(ParseError::new(
            KIND,
            first.0,
            first.1,
            "no checklist output (no \"= SECTION =\" header and no \"LEVEL: message\" line)",
        ));
    }
    let count = |lvl: &str| results.iter().filter(|r| r.level == lvl).count() as u64;
    let (pass, skip, notice, warn, fail) = (
        count("PASS"),
        count("SKIP"),
        count("NOTICE"),
        count("WARN"),
        count("FAIL"),
    );
    let complete = sections.iter().any(|s| s == "SUMMARY");
    let [total, passed, skipped, warnings, failures] = printed;
    let passed = passed.unwrap_or(pass);
    let skipped = skipped.unwrap_or(skip);
    let warnings = warnings.unwrap_or(warn);
    let failures = failures.unwrap_or(fail);
    // TOTAL counts pass+skip+notice+warn+fail; INFO is not counted.
    let total = total.unwrap_or(pass + skip + notice + warn + fail);
    let summary = Summary {
        total,
        passed,
        skipped,
        warnings,
        failures,
        // The printed counters are whatever digits follow `PASSED:` etc. in the SUMMARY
        // (FORMATS.md §7), so a damaged or hostile capture can hold numbers near u64::MAX:
        // add them saturating, or the sum overflows (a panic in debug builds, a wrong count
        // in release). Spotted in review during the fuzzing work and reproduced with the
        // upgrade_checklist fuzz target: tests/fixtures/fuzz/upgrade-checklist/.
        notices: total.saturating_sub(
            passed
                .saturating_add(skipped)
                .saturating_add(warnings)
                .saturating_add(failures),
        ),
    };
    Ok(UpgradeChecklist {
        results,
        summary,
        complete,
        sections,
    })
}

/// The `upgrade-checklist` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "upgrade-checklist",
    scope: Scope::UpgradeChecklist,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.upgrade_checklist = Some(parsed.results.iter().map(Into::into).collect());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ansi_continuations_and_progress_lines() {
        let text = "= CHECKING VERSION INFORMATION FOR PVE PACKAGES =\n\nChecking for package updates..\n\x1b[33mWARN: updates available:\n  pve-manager, qemu-server\n\x1b[0m\nChecking proxmox-ve package version..\n\x1b[1;31mFAIL: too old\n\x1b[0m\n= SUMMARY =\n\nTOTAL:    2\n\x1b[32mPASSED:   0\n\x1b[0mSKIPPED:  0\n\x1b[33mWARNINGS: 1\n\x1b[0m\x1b[1;31mFAILURES: 1\n\x1b[0m";
        let c = parse(text).unwrap();
        assert_eq!(c.results.len(), 2);
        assert_eq!(
            c.results[0].message,
            "updates available:\n  pve-manager, qemu-server"
        );
        assert_eq!(
            c.results[0].section.as_deref(),
            Some("CHECKING VERSION INFORMATION FOR PVE PACKAGES")
        );
        assert_eq!(c.results[1].level, "FAIL");
        assert_eq!(c.results[1].message, "too old");
        assert_eq!(c.summary.failures, 1);
        assert!(c.complete);
    }

    #[test]
    fn unindented_continuation_with_blank_lines() {
        let text = "= MISC =\n\nNOTICE: first\nYou can run:\n\n\t/usr/bin/x\n\nINFO: next\n";
        let c = parse(text).unwrap();
        assert_eq!(c.results[0].message, "first\nYou can run:\n\n\t/usr/bin/x");
        assert_eq!(c.summary.total, 1);
        assert!(!c.complete);
    }

    #[test]
    fn huge_printed_counters_saturate() {
        let text = std::fs::read_to_string(concat!(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../.."),
            "/tests/fixtures/fuzz/upgrade-checklist/summary-sum-overflow"
        ))
        .unwrap();
        let c = parse(&text).unwrap();
        assert_eq!(c.summary.passed, u64::MAX);
        assert_eq!(c.summary.skipped, 1);
        // No TOTAL was printed: it is the count of results (none), so no notices either.
        assert_eq!((c.summary.total, c.summary.notices), (0, 0));
        assert!(c.complete);
    }

    #[test]
    fn garbage() {
        assert_eq!(parse("hello\n").unwrap_err().line, 1);
        assert!(parse("").is_err());
    }
}
