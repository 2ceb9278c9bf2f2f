//! Authentication against real sshd: key file, encrypted key, agent, wrong key, sudo.

use crate::support::{
    Lab, pveops,
    sshd::{TEST_USER, keygen},
    stderr, stdout,
};

fn exec_args<'a>(lab: &'a Lab, extra: &[&'a str], cmd: &'a str) -> Vec<String> {
    let mut a: Vec<String> = vec!["exec".into(), lab.nodes[0].target()];
    a.extend(lab.auth_args());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push("--".into());
    a.push(cmd.into());
    a
}

/// `exec` on the first node logging in with `key` (and no ssh-agent), known_hosts the lab's.
fn exec_with_key(lab: &Lab, key: &std::path::Path, cmd: &str) -> Vec<String> {
    vec![
        "exec".to_string(),
        lab.nodes[0].target(),
        "-i".into(),
        key.display().to_string(),
        "--known-hosts".into(),
        lab.known_hosts.display().to_string(),
        "--".into(),
        cmd.into(),
    ]
}

/// Makes `key` (a new key file) the only key the lab's nodes accept.
fn authorize_only(lab: &Lab, key: &std::path::Path) {
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    std::fs::write(lab.dir.path().join("authorized_keys"), pubkey).unwrap();
}

fn run(lab: &Lab, args: &[String], env: &[(&str, &str)]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    pveops(lab.home(), &refs, env)
}

#[test]
fn key_file_logs_in_as_root() {
    let lab = Lab::start(1);
    let out = run(
        &lab,
        &exec_args(&lab, &[], "id -u; echo $PVEOPS_TEST_NODE"),
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("0\nnode"), "{}", stdout(&out));
}

#[test]
fn encrypted_key_opens_with_the_passphrase_from_the_environment() {
    let lab = Lab::start(1);
    let key = lab.dir.path().join("id_locked");
    keygen(&key, "ed25519", "s3cret pass");
    authorize_only(&lab, &key);
    let args = exec_with_key(&lab, &key, "echo opened");
    let out = run(&lab, &args, &[("PVEOPS_KEY_PASSPHRASE", "s3cret pass")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("opened"));

    let out = run(&lab, &args, &[("PVEOPS_KEY_PASSPHRASE", "wrong")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("passphrase does not open it"),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains("wrong") && !stderr(&out).contains("wrong"),
        "the passphrase leaked"
    );

    let out = run(&lab, &args, &[]);
    assert!(
        stdout(&out).contains("PVEOPS_KEY_PASSPHRASE"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn ssh_agent_keys_are_used_first() {
    let lab = Lab::start(1);
    let sock = lab.dir.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a", sock.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    assert!(
        crate::support::poll_until(10, || sock.exists()),
        "ssh-agent did not start"
    );
    let add = std::process::Command::new("ssh-add")
        .arg(&lab.client_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let args = vec![
        "exec".to_string(),
        lab.nodes[0].target(),
        "--known-hosts".into(),
        lab.known_hosts.display().to_string(),
        "--".into(),
        "echo via-agent".into(),
    ];
    let out = run(&lab, &args, &[("SSH_AUTH_SOCK", sock.to_str().unwrap())]);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("via-agent"));
}

#[test]
fn a_wrong_key_says_what_was_tried() {
    let lab = Lab::start(1);
    let other = lab.dir.path().join("id_other");
    keygen(&other, "ed25519", "");
    let out = run(&lab, &exec_with_key(&lab, &other, "true"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    // HOME is the lab directory, so the key is shown as ~/id_other.
    assert!(
        text.contains("authentication failed (tried: ~/id_other)"),
        "{text}"
    );
}

#[test]
fn rsa_keys_sign_with_sha2() {
    let lab = Lab::start(1);
    let key = lab.dir.path().join("id_rsa");
    keygen(&key, "rsa", "");
    authorize_only(&lab, &key);
    let out = run(&lab, &exec_with_key(&lab, &key, "echo rsa-ok"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn sudo_runs_commands_as_root_for_a_non_root_login() {
    let lab = Lab::start(1);
    let plain = run(&lab, &exec_args(&lab, &["-l", TEST_USER], "id -u"), &[]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&plain),
        stderr(&plain),
        lab.nodes[0].log()
    );
    assert!(stdout(&plain).contains("4242"), "{}", stdout(&plain));
    let out = run(
        &lab,
        &exec_args(
            &lab,
            &["-l", TEST_USER, "--sudo"],
            "id -u; echo \"$LC_ALL\"",
        ),
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("\n0\nC.UTF-8\n"), "{}", stdout(&out));
}
