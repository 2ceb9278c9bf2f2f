//! `diff` and `verify`: compare two snapshots (or a baseline with a fresh one); the exit
//! status says whether the change made things worse.

use super::assess::{assess_status, colour_stderr, finding_line, snapshot_into_bundle};
use crate::cli::{DiffArgs, Global, VerifyArgs};

pub(super) fn diff(args: DiffArgs) -> Result<i32, crate::Error> {
    let before = crate::snapshot::Snapshot::load(&args.before)?;
    let after = crate::snapshot::Snapshot::load(&args.after)?;
    let diffs = crate::diff::diff(&before, &after);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "differences": diffs }))
                .unwrap_or_default()
        );
    } else {
        print!("{}", crate::diff::markdown(&diffs));
    }
    let regressions = diffs.iter().filter(|d| d.regression).count();
    eprintln!(
        "diff: {} difference(s), {regressions} regression(s)",
        diffs.len()
    );
    Ok(if regressions > 0 { 2 } else { 0 })
}

/// What a verify concludes: its exit status and the Outcome line, decided together.
/// 2: a regression (something other than a finding got worse) or a new critical finding;
/// 1: a new warning; 3: no node answered, or a new finding is UNKNOWN; 0 otherwise. Findings
/// that were there before are listed, not counted against the change.
pub(super) fn verify_outcome(
    after: &crate::snapshot::Snapshot,
    diffs: &[crate::diff::Difference],
    findings: &crate::diff::FindingChanges,
    against: &std::path::Path,
) -> (i32, String) {
    use crate::finding::Severity;
    let regressions = diffs
        .iter()
        .filter(|d| d.regression && d.kind != crate::diff::DiffKind::FindingNew)
        .count();
    let count = |s: Severity| findings.new.iter().filter(|f| f.severity == s).count();
    let (critical, unknown, warning) = (
        count(Severity::Critical),
        count(Severity::Unknown),
        count(Severity::Warning),
    );
    let mut parts = Vec::new();
    if regressions > 0 {
        parts.push(format!("{regressions} regression(s)"));
    }
    for (n, what) in [
        (critical, "critical"),
        (unknown, "unknown"),
        (warning, "warning"),
    ] {
        if n > 0 {
            parts.push(format!("{n} new {what} finding(s)"));
        }
    }
    let unchanged = if findings.unchanged.is_empty() {
        String::new()
    } else {
        format!(
            "; {} finding(s) unchanged since then (listed, not counted)",
            findings.unchanged.len()
        )
    };
    let against = against.display();
    if assess_status(after) == Severity::Unknown && after.nodes.iter().all(|n| !n.reachable) {
        return (
            3,
            format!("could not verify against {against}: no node answered"),
        );
    }
    let code = if regressions > 0 || critical > 0 {
        2
    } else if unknown > 0 {
        3
    } else if warning > 0 {
        1
    } else {
        0
    };
    let outcome = if parts.is_empty() {
        format!("no regression and no new finding against {against}{unchanged}")
    } else {
        format!("{} against {against}{unchanged}", parts.join(", "))
    };
    (code, outcome)
}

pub(super) fn verify(global: &Global, args: VerifyArgs) -> Result<i32, crate::Error> {
    let before = crate::snapshot::Snapshot::load(&args.against)?;
    let checks = crate::check::load(args.checks.as_deref())?;
    let started = jiff::Timestamp::now();
    // The after-snapshot reads what the baseline read: a finding of a read that did not run
    // again would look resolved.
    let upgrade_checklist = args.upgrade_checklist || before.ran_upgrade_checklist();
    let (after, bundle) = snapshot_into_bundle(
        global,
        &args.targets,
        &checks,
        Vec::new(),
        upgrade_checklist,
        args.out.clone(),
        "verify",
        started,
    )?;
    let diffs = crate::diff::diff(&before, &after);
    let findings = crate::diff::compare_findings(&before, &after);
    let (code, outcome) = verify_outcome(&after, &diffs, &findings, &args.against);
    bundle.write("before.json", before.to_json().as_bytes())?;
    bundle.write("snapshot.json", after.to_json().as_bytes())?;
    let hb = crate::report::registry(global.templates.as_deref())?;
    let summary = crate::report::Summary {
        command: "verify".into(),
        operator: crate::changelog::operator(),
        targets: args.targets.join(", "),
        started_at: started
            .round(jiff::Unit::Second)
            .unwrap_or(started)
            .to_string(),
        outcome: outcome.clone(),
        status: crate::finding::Severity::from_exit_code(code)
            .word()
            .to_uppercase(),
        exit_status: code,
        pveops_version: env!("CARGO_PKG_VERSION").into(),
    };
    let report =
        crate::report::render_verify(&hb, &summary, &after, &diffs, &findings, &bundle.raw_files)?;
    let report_path = bundle.write("report.md", report.as_bytes())?;
    bundle.sync()?;
    if args.json {
        let doc = serde_json::json!({
            "outcome": outcome,
            "exit_status": code,
            "differences": diffs,
            "findings": findings,
            "snapshot": after,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let colour = colour_stderr();
    let reachable = after.nodes.iter().filter(|n| n.reachable).count();
    eprintln!(
        "{reachable} of {} nodes answered; outcome: {outcome}",
        after.nodes.len()
    );
    // The differences (findings follow as new, unchanged and resolved).
    let changed: Vec<&crate::diff::Difference> = diffs
        .iter()
        .filter(|d| {
            !matches!(
                d.kind,
                crate::diff::DiffKind::FindingNew | crate::diff::DiffKind::FindingResolved
            )
        })
        .collect();
    if changed.is_empty() {
        eprintln!("differences: none");
    } else {
        eprintln!("differences:");
    }
    for d in changed {
        eprintln!(
            "  {:<10} {:<16} {:<14} {} {} -> {}",
            if d.regression { "REGRESSION" } else { "" },
            d.kind,
            d.node.as_deref().unwrap_or("(cluster)"),
            d.subject.as_deref().unwrap_or(""),
            d.before.as_deref().unwrap_or("-"),
            d.after.as_deref().unwrap_or("-")
        );
    }
    for (title, list) in [
        ("new", &findings.new),
        ("unchanged", &findings.unchanged),
        ("resolved", &findings.resolved),
        ("not re-read", &findings.unverified),
    ] {
        if !list.is_empty() {
            eprintln!("{title}:");
            for f in list {
                eprintln!("  {}", finding_line(f, colour));
            }
        }
    }
    eprintln!("evidence: {}", report_path.display());
    Ok(code)
}
