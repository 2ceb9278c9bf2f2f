//! The structure ARCHITECTURE.md promises, checked on the source: PVE output is read only in
//! `src/facts/` (one fact, one place), and only the CLI layer knows the CLI.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every source file outside the parsers and the simulator, with its test module cut off
/// (tests may hold PVE output as data), as (path relative to src/, code).
fn core_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            // facts/ reads PVE's output; lab/ (and its tools binary) prints it.
            if rel.starts_with("facts/") || rel.starts_with("lab/") || rel.starts_with("bin/") {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            Some((rel, code))
        })
        .collect()
}

/// Words of PVE's own output (keys, messages, table headers) that only a parser may look for.
const PVE_OUTPUT: &[&str] = &[
    "not_allowed_nodes",
    "allowed_nodes",
    "not-allowed-nodes",
    "unavailable_storages",
    "blocking-ha-resources",
    "No 'get' handler",
    "migration aborted",
    "migration problems",
    "TASK ERROR",
    "TASK OK",
    "ipcc_send_rec",
    "Name Type Status",
    "Quorate:",
    "Expected votes",
    "vzdump-",
    "\"ctime\"",
    "\"hastate\"",
    "\"maxmem\"",
];

#[test]
fn pve_output_is_read_only_in_facts() {
    let mut hits = Vec::new();
    for (rel, code) in core_sources() {
        for word in PVE_OUTPUT {
            if code.contains(word) {
                hits.push(format!("src/{rel}: {word:?}"));
            }
        }
        // JSON from a node goes through a facts parser; only pveops' own files (the journal,
        // a saved snapshot) are read with serde here.
        let own_format = matches!(rel.as_str(), "journal.rs" | "snapshot.rs");
        for call in [
            "serde_json::from_str",
            "serde_json::from_slice",
            "from_str::<serde_json::Value>",
        ] {
            if code.contains(call) && !own_format {
                hits.push(format!("src/{rel}: {call}"));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "PVE output read outside src/facts/ (add a `pveops parse` kind instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn only_the_cli_layer_knows_the_cli() {
    // The core (the operation loop included: `operate::Request` is plain data) is driven by the
    // CLI layer and never reaches back into it.
    let allowed = ["lib.rs", "main.rs", "cli.rs", "subcommand.rs"];
    let hits: Vec<String> = core_sources()
        .into_iter()
        .filter(|(rel, code)| {
            !allowed.contains(&rel.as_str())
                && (code.contains("crate::cli") || code.contains("crate::subcommand"))
        })
        .map(|(rel, _)| format!("src/{rel}"))
        .collect();
    assert!(hits.is_empty(), "modules importing the CLI: {hits:?}");
    // Nor does it know the argument parser: clap's types stay in the CLI layer.
    let clap: Vec<String> = core_sources()
        .into_iter()
        .filter(|(rel, code)| !allowed.contains(&rel.as_str()) && code.contains("clap::"))
        .map(|(rel, _)| format!("src/{rel}"))
        .collect();
    assert!(clap.is_empty(), "modules naming clap: {clap:?}");
    // Nor the simulator: planning, gates and checks never reach the lab.
    let lab: Vec<String> = core_sources()
        .into_iter()
        .filter(|(rel, code)| {
            !allowed.contains(&rel.as_str())
                && !rel.starts_with("lab")
                && code.contains("crate::lab")
        })
        .map(|(rel, _)| format!("src/{rel}"))
        .collect();
    assert!(lab.is_empty(), "modules reaching the lab: {lab:?}");
}

/// The body of `pub struct NAME { … }` in `code`.
fn struct_body<'a>(code: &'a str, name: &str) -> &'a str {
    let start = code
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let end = code[start..].find("\n}").unwrap() + start;
    &code[start..end]
}

/// The plan, its steps and the journal are types: no untyped JSON in a step or a journal
/// line, no `detail["…"]` lookups, and no decision taken by matching the tool's own words.
#[test]
fn the_plan_and_the_journal_are_typed_and_nothing_matches_our_own_messages() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let operation = std::fs::read_to_string(src.join("operation.rs")).unwrap();
    let journal = std::fs::read_to_string(src.join("journal.rs")).unwrap();
    for (file, code, name) in [
        ("operation.rs", &operation, "Step"),
        ("operation.rs", &operation, "Plan"),
        ("journal.rs", &journal, "Entry"),
    ] {
        assert!(
            !struct_body(code, name).contains("serde_json::Value"),
            "{file}: {name} holds untyped JSON"
        );
    }
    // Words pveops itself writes into messages: deciding on them would tie behaviour to
    // wording.
    let own_words = [
        "detail[\"",
        "starts_with(\"FAILED",
        "starts_with(\"failed",
        "starts_with(\"rebooted",
        "starts_with(\"restore",
        "contains(\"reboot is due",
        "contains(\"nothing to",
        "starts_with(\"interrupted",
    ];
    for (file, code) in core_sources() {
        for w in own_words {
            assert!(
                !code.contains(w),
                "{file} decides on its own message text (`{w}`): use the typed value instead"
            );
        }
    }
}
