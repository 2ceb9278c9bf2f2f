//! `--help`: the connection options only on commands that connect, under their own heading,
//! and examples at the end; help never runs the command.

use std::time::{Duration, Instant};

use crate::support;

/// The options that only matter to commands that reach nodes.
const SSH_OPTIONS: &[&str] = &[
    "--inventory",
    "--ssh-config",
    "--user",
    "--port <PORT>",
    "--identity",
    "--known-hosts",
    "--host-keys",
    "--jump",
    "--connect-timeout",
    "--command-timeout",
    "--parallel",
    "--discover",
    "--sudo",
    "--templates",
    "Targets and SSH",
];

/// Runs `pveops ARGS`, failing the test if it has not exited within 20 s (help that started
/// the lab would run until killed).
fn help(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut child = support::command(home.path(), args).spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "`pveops {}` did not exit: it ran instead of printing help",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "pveops {}: {}",
        args.join(" "),
        support::stderr(&out)
    );
    support::stdout(&out)
}

#[test]
fn offline_commands_show_no_connection_option() {
    for args in [
        &["lab", "--help"][..],
        &["lab", "-h"],
        &["help", "lab"],
        &["parse", "--help"],
        &["diff", "--help"],
        &["-v", "diff", "-h"],
        &["checks", "--help"],
        &["demo", "--help"],
        &["completions", "--help"],
    ] {
        let text = help(args);
        assert!(
            text.contains("Usage: pveops "),
            "{args:?}: no usage in\n{text}"
        );
        for opt in SSH_OPTIONS {
            assert!(!text.contains(opt), "{args:?} shows {opt}:\n{text}");
        }
    }
    // The lab's own port option is the only port it shows.
    let lab = help(&["lab", "--help"]);
    assert!(
        lab.contains("--ssh-port <PORT>") && !lab.contains("-p, --port"),
        "{lab}"
    );
}

#[test]
fn connecting_commands_group_the_connection_options_and_end_with_examples() {
    for cmd in [
        "assess", "exec", "snapshot", "verify", "drain", "migrate", "reboot", "update",
    ] {
        for flag in ["--help", "-h"] {
            let text = help(&[cmd, flag]);
            let heading = text
                .find("\nTargets and SSH:\n")
                .unwrap_or_else(|| panic!("{cmd} {flag}: no SSH heading in\n{text}"));
            for opt in SSH_OPTIONS.iter().filter(|o| o.starts_with("--")) {
                let at = text
                    .find(opt)
                    .unwrap_or_else(|| panic!("{cmd} {flag}: no {opt}"));
                assert!(at > heading, "{cmd} {flag}: {opt} is not under its heading");
            }
            assert!(
                text.contains("\nOutput:\n"),
                "{cmd} {flag}: no Output heading"
            );
            assert!(text.contains("\nExamples:\n"), "{cmd} {flag}: no examples");
        }
    }
}

#[test]
fn connection_options_are_still_accepted_on_offline_commands() {
    let home = tempfile::tempdir().unwrap();
    let out = support::pveops(
        home.path(),
        &[
            "parse",
            "--list",
            "-J",
            "bastion",
            "--parallel",
            "3",
            "--sudo",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    assert!(support::stdout(&out).contains("pvecm-status"));
}

#[test]
fn the_command_list_follows_the_discipline() {
    let text = help(&["help"]);
    let order = [
        "assess",
        "plan",
        "migrate",
        "drain",
        "maintenance",
        "reboot",
        "update",
        "verify",
        "restore",
        "snapshot",
        "diff",
        "exec",
        "checks",
        "parse",
        "lab",
        "demo",
        "completions",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|c| {
            text.find(&format!("\n  {c} "))
                .unwrap_or_else(|| panic!("{c} missing from\n{text}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "order wrong:\n{text}");
}

#[test]
fn lab_help_names_every_built_in_scenario() {
    let text = help(&["lab", "--help"]);
    for name in pveops_lab::scenario::NAMES {
        assert!(text.contains(name), "`lab --help` lacks {name}:\n{text}");
    }
}
