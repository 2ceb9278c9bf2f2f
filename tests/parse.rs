//! `pveops parse` from the outside: kinds, stdin and files, exit 3 on unreadable input.

use crate::support::{pveops, stderr, stdout};

fn fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/pve/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn parses_a_file_into_json() {
    let home = tempfile::tempdir().unwrap();
    let out = pveops(
        home.path(),
        &[
            "parse",
            "pvecm-status",
            &fixture("pvecm-status.3node.pve8.2.txt"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cluster_name"], "pve-cluster");
    assert_eq!(v["quorate"], true);
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert_eq!(v["members"][0]["local"], true);
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "one document, compact when not a terminal"
    );
}

#[test]
fn reads_stdin_and_fails_with_exit_3_naming_kind_and_line() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(crate::support::bin());
    cmd.args(["parse", "qm-list"]).env("HOME", home.path());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"this is not qm list output\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.starts_with("error: qm-list: line 1: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn lists_the_kinds_and_refuses_unknown_ones() {
    let home = tempfile::tempdir().unwrap();
    let out = pveops(home.path(), &["parse", "--list"], &[]);
    assert_eq!(out.status.code(), Some(0));
    for kind in [
        "pvecm-status",
        "pvecm-nodes",
        "pvesm-status",
        "qm-list",
        "pct-list",
        "qm-config",
        "pct-config",
        "qm-status",
        "pct-status",
        "ha-manager-status",
        "pveversion",
        "pveversion-v",
        "upgrade-checklist",
        "corosync-cfgtool",
        "task-log",
    ] {
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(kind)),
            "{kind} missing"
        );
    }
    let out = pveops(home.path(), &["parse", "no-such-kind"], &[]);
    assert_eq!(out.status.code(), Some(64));
}
