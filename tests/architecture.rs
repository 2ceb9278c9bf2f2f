//! The structure ARCHITECTURE.md promises, checked on the source where the compiler cannot:
//! PVE output is read only in `pveops-core/src/facts/` (one fact, one place), the core writes
//! no file and depends on no runtime, and only the CLI layer knows the CLI and the lab.

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

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every source file of a crate but the simulator (`pveops-lab`), with its test module cut
/// off (tests may hold PVE output as data), as (path relative to `crates/`, code).
fn crate_sources(krate: &str) -> Vec<(String, String)> {
    let crates = root().join("crates");
    let mut files = Vec::new();
    sources(&crates.join(krate).join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&crates)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (rel, code)
        })
        .collect()
}

/// Every source file outside the parsers and the simulator.
fn core_sources() -> Vec<(String, String)> {
    let mut all = crate_sources("pveops-core");
    all.extend(crate_sources("pveops"));
    // facts/ reads PVE's output; the lab prints it.
    all.retain(|(rel, _)| !rel.starts_with("pveops-core/src/facts/"));
    all
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
                hits.push(format!("{rel}: {word:?}"));
            }
        }
        // JSON from a node goes through a facts parser; only pveops' own files (the journal,
        // a saved snapshot) are read with serde here.
        let own_format = matches!(
            rel.as_str(),
            "pveops-core/src/journal.rs" | "pveops-core/src/snapshot.rs"
        );
        for call in [
            "serde_json::from_str",
            "serde_json::from_slice",
            "from_str::<serde_json::Value>",
        ] {
            if code.contains(call) && !own_format {
                hits.push(format!("{rel}: {call}"));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "PVE output read outside pveops-core/src/facts/ (add a `pveops parse` kind instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn only_the_cli_layer_knows_the_cli() {
    // pveops-core cannot name the CLI, clap or the lab: it does not depend on them (see
    // the_core_has_no_runtime_and_writes_no_file). Within pveops, the operation loop
    // (`operation::Request` is plain data) is driven by the CLI layer and never reaches back.
    let cli_layer = |rel: &str| {
        [
            "pveops/src/lib.rs",
            "pveops/src/main.rs",
            "pveops/src/cli.rs",
        ]
        .contains(&rel)
            || rel.starts_with("pveops/src/subcommand/")
    };
    let outside = || {
        crate_sources("pveops")
            .into_iter()
            .filter(|(rel, _)| !cli_layer(rel))
    };
    let hits: Vec<String> = outside()
        .filter(|(_, code)| code.contains("crate::cli") || code.contains("crate::subcommand"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(hits.is_empty(), "modules importing the CLI: {hits:?}");
    // Nor does it know the argument parser: clap's types stay in the CLI layer.
    let clap: Vec<String> = outside()
        .filter(|(_, code)| code.contains("clap::"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(clap.is_empty(), "modules naming clap: {clap:?}");
    // Nor the simulator: only the `lab` and `demo` commands reach it (and main.rs, which runs
    // a lab tool for `pveops lab-tool`, and the help, which names the scenarios).
    let reaching_lab = [
        "pveops/src/main.rs",
        "pveops/src/cli.rs",
        "pveops/src/subcommand/lab.rs",
        "pveops/src/subcommand/demo.rs",
    ];
    let lab: Vec<String> = crate_sources("pveops")
        .into_iter()
        .filter(|(rel, code)| !reaching_lab.contains(&rel.as_str()) && code.contains("pveops_lab"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(lab.is_empty(), "modules reaching the lab: {lab:?}");
}

/// The core's manifest names no runtime, no SSH, no CLI and not the lab, so the compiler
/// keeps them out; and no core module writes to the filesystem.
#[test]
fn the_core_has_no_runtime_and_writes_no_file() {
    let manifest = std::fs::read_to_string(root().join("crates/pveops-core/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap();
    for name in ["tokio", "russh", "clap", "pveops-lab", "pveops ", "pveops."] {
        assert!(
            !deps.contains(name),
            "pveops-core depends on {name}:\n{deps}"
        );
    }
    let writes = [
        "fs::write",
        "File::create",
        "OpenOptions",
        "create_dir",
        "fs::rename",
        "remove_file",
        "remove_dir",
        "set_permissions",
    ];
    let hits: Vec<String> = crate_sources("pveops-core")
        .into_iter()
        .flat_map(|(rel, code)| {
            writes
                .iter()
                .filter(|w| code.contains(*w))
                .map(|w| format!("{rel}: {w}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(hits.is_empty(), "pveops-core writes files: {hits:?}");
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
    let src = root().join("crates/pveops-core/src");
    let operation = std::fs::read_to_string(src.join("plan.rs")).unwrap();
    let journal = std::fs::read_to_string(src.join("journal.rs")).unwrap();
    for (file, code, name) in [
        ("plan.rs", &operation, "Step"),
        ("plan.rs", &operation, "Plan"),
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

/// Only the SSH layer touches the network, and only the fleet opens sessions: everything else
/// hands a `Fleet` on. (The demo waits for its own lab's ports on loopback.)
#[test]
fn only_the_ssh_layer_touches_the_network() {
    let net = [
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "lookup_host",
        "to_socket_addrs",
    ];
    let allowed = ["pveops/src/session.rs", "pveops/src/subcommand/demo.rs"];
    let mut all = crate_sources("pveops-core");
    all.extend(crate_sources("pveops"));
    let hits: Vec<String> = all
        .iter()
        .filter(|(rel, code)| {
            !allowed.contains(&rel.as_str()) && net.iter().any(|n| code.contains(n))
        })
        .map(|(rel, _)| rel.clone())
        .collect();
    assert!(hits.is_empty(), "modules touching the network: {hits:?}");
    let ssh: Vec<String> = all
        .iter()
        .filter(|(rel, code)| {
            code.contains("russh::")
                && ![
                    "pveops/src/session.rs",
                    "pveops/src/keys.rs",
                    "pveops/src/known_hosts.rs",
                ]
                .contains(&rel.as_str())
        })
        .map(|(rel, _)| rel.clone())
        .collect();
    assert!(ssh.is_empty(), "modules naming russh: {ssh:?}");
    let connecting: Vec<String> = all
        .iter()
        .filter(|(rel, code)| {
            code.contains("connector.connect(")
                && !["pveops/src/fleet.rs", "pveops/src/session.rs"].contains(&rel.as_str())
        })
        .map(|(rel, _)| rel.clone())
        .collect();
    assert!(
        connecting.is_empty(),
        "modules opening sessions: {connecting:?}"
    );
}

/// The lab is a second, independent reading of PVE: it uses nothing of pveops-core but the
/// error type and the bounded file reader, so it cannot share a parser's mistake.
#[test]
fn the_lab_shares_no_code_with_the_parsers() {
    let mut used: Vec<String> = crate_sources("pveops-lab")
        .iter()
        .flat_map(|(_, code)| {
            code.match_indices("pveops_core::")
                .map(|(i, m)| {
                    code[i + m.len()..]
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    used.sort();
    used.dedup();
    assert!(
        used.iter().all(|m| m == "Error" || m == "input"),
        "pveops-lab uses pveops_core::{used:?}"
    );
}
