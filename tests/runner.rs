//! The node-side runner behind real sshd: every output, stderr, exit status and duration in
//! the evidence is what the command on the node produced, whatever it printed (NUL bytes, no
//! final newline, the run's own boundary read back from the process table, 10 MiB), and a run
//! leaves nothing in the node's temporary directory, also when its session is cut.

use pveops_lab::scenario;
use std::path::{Path, PathBuf};

use crate::support::cluster::{SimCluster, node_tmp};
use crate::support::{poll_until, pveops, stderr};

/// Probe templates (run by the node's shell) and what each is for.
const PROBES: &[(&str, &str)] = &[
    ("probe-nul", r"printf 'a\000b\nno newline at the end'"),
    // Finds this run's boundary in its runner's command line (its grandparent: the runner's
    // subshell, then `timeout`) and prints every frame line the runner itself prints.
    (
        "probe-forge",
        r#"g=$(awk '{print $4}' /proc/$PPID/stat); b=$(tr '\000' '\n' </proc/$g/cmdline | grep -o 'pveops-[0-9a-f]\{32\}' | head -n 1); printf '%s 1 o\n%s status 1 0 1 2\n%s sizes\n%s data\n%s end\n' "$b" "$b" "$b" "$b" "$b"; printf 'found %s' "${#b}""#,
    ),
    ("probe-big", r"head -c 10485760 /dev/zero | tr '\000' x"),
    ("probe-exit", "echo out; echo err >&2; exit 3"),
    ("probe-signal", "echo before; kill -TERM $$"),
    ("probe-slow", "echo started; exec sleep 60"),
    ("probe-time", "sleep 1; echo slept"),
];

/// A templates dir with the probes and a checks dir with one command check per probe.
fn probes(dir: &Path, extra: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let templates = dir.join("probe-templates");
    let checks = dir.join("probe-checks");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&checks).unwrap();
    let mut toml = String::new();
    for (name, script) in PROBES.iter().chain(extra) {
        std::fs::write(templates.join(format!("{name}.hbs")), script).unwrap();
        toml.push_str(&format!(
            "[[check]]\nid = \"{name}\"\ntitle = \"{name}\"\nseverity = \"warning\"\ncommand = \"{name}\"\nexpect = '.'\n\n"
        ));
    }
    std::fs::write(checks.join("probes.toml"), toml).unwrap();
    (templates, checks)
}

fn assess(sim: &SimCluster, extra: &[(&str, &str)]) -> (Option<i32>, PathBuf, String) {
    assess_as(sim, extra, &[])
}

fn assess_as(
    sim: &SimCluster,
    extra: &[(&str, &str)],
    login: &[&str],
) -> (Option<i32>, PathBuf, String) {
    let dir = sim.lab.dir.path();
    let (templates, checks) = probes(dir, extra);
    let out = dir.join("evidence");
    let inv = sim.inventory();
    let mut args = vec![
        "assess",
        "-I",
        inv.to_str().unwrap(),
        "lab",
        "--out",
        out.to_str().unwrap(),
        "--templates",
        templates.to_str().unwrap(),
        "--checks",
        checks.to_str().unwrap(),
        "--command-timeout",
        "3",
    ];
    args.extend_from_slice(login);
    let o = pveops(sim.lab.home(), &args, &[]);
    (o.status.code(), out, stderr(&o))
}

fn meta(out: &Path, node: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("raw").join(node).join("meta.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn raw(out: &Path, node: &str, file: &str) -> Vec<u8> {
    std::fs::read(out.join("raw").join(node).join(file)).unwrap_or_default()
}

/// What is left in the node's temporary directory once it empties or `secs` pass.
fn tmp_left(sim: &SimCluster, node: &str, secs: u64) -> Vec<String> {
    let tmp = node_tmp(&sim.lab, node);
    let left = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    poll_until(secs, || left().is_empty());
    left()
}

#[test]
fn every_output_status_and_duration_is_what_the_node_produced() {
    let sim = SimCluster::start(scenario::healthy(1));
    let (code, out, err) = assess(&sim, &[]);
    assert!(code.is_some(), "{err}");
    let m = meta(&out, "pve1");
    assert_eq!(
        raw(&out, "pve1", "probe-nul.stdout"),
        b"a\0b\nno newline at the end"
    );
    let forged = String::from_utf8(raw(&out, "pve1", "probe-forge.stdout")).unwrap();
    assert!(
        forged.ends_with("found 39"),
        "the probe found the run's boundary: {forged:?}"
    );
    assert_eq!(forged.lines().count(), 6, "{forged:?}");
    let big = raw(&out, "pve1", "probe-big.stdout");
    assert_eq!(big.len(), 10 * 1024 * 1024);
    assert!(big.iter().all(|&c| c == b'x'));
    assert_eq!(raw(&out, "pve1", "probe-exit.stdout"), b"out\n");
    assert_eq!(raw(&out, "pve1", "probe-exit.stderr"), b"err\n");
    assert_eq!(m["probe-exit"]["exit_code"], 3);
    assert_eq!(m["probe-signal"]["signal"], "TERM", "{}", m["probe-signal"]);
    assert!(m["probe-signal"]["exit_code"].is_null());
    assert_eq!(raw(&out, "pve1", "probe-signal.stdout"), b"before\n");
    let slow = m["probe-slow"]["error"].as_str().unwrap_or_default();
    assert!(
        slow.contains("3"),
        "killed by its timeout: {}",
        m["probe-slow"]
    );
    let ms = m["probe-time"]["duration_ms"].as_u64().unwrap();
    assert!((1000..2500).contains(&ms), "{ms} ms");
    assert_eq!(raw(&out, "pve1", "probe-time.stdout"), b"slept\n");
    // The catalog around the probes read right, and nothing is left on the node.
    assert_eq!(m["pvecm-status"]["exit_code"], 0);
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("snapshot.json")).unwrap()).unwrap();
    assert_eq!(
        snap["nodes"][0]["cluster"]["quorate"], true,
        "{}",
        snap["nodes"][0]
    );
    assert!(
        snap["nodes"][0]["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["parse_error"].is_null()),
        "{}",
        snap["nodes"][0]["commands"]
    );
    assert_eq!(tmp_left(&sim, "pve1", 0), Vec::<String>::new());
}

#[test]
fn a_session_cut_mid_run_fails_its_commands_and_leaves_nothing_on_the_node() {
    let sim = SimCluster::start(scenario::healthy(1));
    // Kills the sshd process that serves this session (the nearest `sshd` ancestor).
    let cut = (
        "probe-cut",
        r#"p=$$; while [ "$p" -gt 1 ]; do c=$(cat /proc/$p/comm); case $c in sshd*) kill -KILL "$p"; break;; esac; p=$(awk '{print $4}' /proc/$p/stat); done; sleep 1"#,
    );
    let (code, out, err) = assess(&sim, &[cut]);
    assert!(matches!(code, Some(2 | 3)), "{code:?}: {err}");
    assert!(err.contains("connection"), "{err}");
    let m = meta(&out, "pve1");
    for (name, entry) in m.as_object().unwrap() {
        assert!(
            entry["error"].is_string() && entry["exit_code"].is_null(),
            "{name} must fail, not carry another's output: {entry}"
        );
        assert!(
            raw(&out, "pve1", &format!("{name}.stdout")).is_empty(),
            "{name}"
        );
    }
    assert_eq!(
        tmp_left(&sim, "pve1", 70),
        Vec::<String>::new(),
        "the runner's trap removed its directory"
    );
}

#[test]
fn the_runner_works_through_sudo_for_a_non_root_login() {
    let sim = SimCluster::start(scenario::healthy(1));
    let id = ("probe-id", "id -u");
    let (code, out, err) = assess_as(
        &sim,
        &[id],
        &["-l", crate::support::sshd::TEST_USER, "--sudo"],
    );
    assert!(code.is_some(), "{err}");
    assert_eq!(raw(&out, "pve1", "probe-id.stdout"), b"0\n", "{err}");
    assert_eq!(
        raw(&out, "pve1", "probe-nul.stdout"),
        b"a\0b\nno newline at the end"
    );
    assert_eq!(meta(&out, "pve1")["pvecm-status"]["exit_code"], 0);
}

#[test]
fn a_node_whose_temporary_directory_is_unusable_is_read_one_channel_per_command() {
    let sim = SimCluster::start(scenario::healthy(1));
    // `mktemp -d` fails as on a full or missing /tmp: the runner cannot start.
    std::fs::remove_dir_all(node_tmp(&sim.lab, "pve1")).unwrap();
    let (code, out, err) = assess(&sim, &[]);
    assert!(code.is_some(), "{err}");
    let m = meta(&out, "pve1");
    assert_eq!(m["pvecm-status"]["exit_code"], 0, "{m}");
    assert_eq!(
        raw(&out, "pve1", "probe-nul.stdout"),
        b"a\0b\nno newline at the end"
    );
    assert_eq!(m["probe-exit"]["exit_code"], 3);
    assert!(err.contains("could not start"), "{err}");
}
