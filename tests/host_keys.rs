//! Host key verification against real sshd host keys.

use std::fs;

use crate::support::{Lab, SshdOptions, pveops, sh, sshd::keygen, stderr, stdout};

fn exec(lab: &Lab, target: &str, extra: &[&str]) -> std::process::Output {
    let mut a: Vec<String> = vec![
        "exec".into(),
        target.into(),
        "-i".into(),
        lab.client_key.display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(["--".into(), "echo connected".into()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    pveops(lab.home(), &refs, &[])
}

fn kh_arg(lab: &Lab) -> [String; 2] {
    [
        "--known-hosts".into(),
        lab.known_hosts.display().to_string(),
    ]
}

#[test]
fn unknown_host_key_is_refused_under_strict() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("host key ssh-ed25519 SHA256:") && text.contains("is not in known_hosts"),
        "{text}"
    );
    assert!(text.contains("--host-keys accept-new"), "{text}");
    assert!(!text.contains("connected"));
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    let imposter = lab.dir.path().join("imposter");
    keygen(&imposter, "ed25519", "");
    let fake = fs::read_to_string(imposter.with_extension("pub")).unwrap();
    let fake: Vec<&str> = fake.split_whitespace().take(2).collect();
    fs::write(
        &lab.known_hosts,
        format!(
            "# comment\n\n[127.0.0.1]:{} {}\n",
            node.port,
            fake.join(" ")
        ),
    )
    .unwrap();
    let before = fs::read_to_string(&lab.known_hosts).unwrap();
    let [a, b] = kh_arg(&lab);
    for policy in ["strict", "accept-new"] {
        let out = exec(&lab, &node.target(), &[&a, &b, "--host-keys", policy]);
        assert_eq!(out.status.code(), Some(2), "{policy}");
        let text = stdout(&out);
        let want = format!(
            "host key does not match known_hosts line 3 ({}) — if the node was reinstalled, remove that line",
            lab.known_hosts.display()
        );
        assert!(text.contains(&want), "{policy}: {text}");
    }
    assert_eq!(
        fs::read_to_string(&lab.known_hosts).unwrap(),
        before,
        "known_hosts must not change"
    );
}

#[test]
fn accept_new_records_the_key_then_strict_trusts_it() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b, "--host-keys", "accept-new"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(&lab.known_hosts).unwrap(),
        format!("{}\n", node.known_hosts_line())
    );
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn default_files_are_the_users_and_the_global_one() {
    // No --known-hosts: ~/.ssh/known_hosts is read and, with accept-new, written.
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    let out = exec(&lab, &node.target(), &["--host-keys", "accept-new"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let user_file = lab.home().join(".ssh/known_hosts");
    assert_eq!(
        fs::read_to_string(&user_file).unwrap(),
        format!("{}\n", node.known_hosts_line())
    );
    let out = exec(&lab, &node.target(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn hashed_entries_match() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    fs::write(&lab.known_hosts, format!("{}\n", node.known_hosts_line())).unwrap();
    sh(
        "ssh-keygen",
        &["-q", "-H", "-f", lab.known_hosts.to_str().unwrap()],
    );
    let text = fs::read_to_string(&lab.known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn port_entries_do_not_match_another_port() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    // The key is listed for port 22 only; the node listens elsewhere.
    fs::write(&lab.known_hosts, format!("127.0.0.1 {}\n", node.host_key)).unwrap();
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("is not in known_hosts"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn revoked_key_is_refused() {
    let lab = Lab::empty();
    let node = lab.spawn(&SshdOptions::default());
    fs::write(
        &lab.known_hosts,
        format!(
            "{}\n@revoked * {}\n",
            node.known_hosts_line(),
            node.host_key
        ),
    )
    .unwrap();
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("marked @revoked in known_hosts line 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn host_certificate_is_accepted_through_cert_authority() {
    let lab = Lab::empty();
    let ca = lab.dir.path().join("host_ca");
    keygen(&ca, "ed25519", "");
    let node = lab.spawn(&SshdOptions {
        host_ca: Some(ca.clone()),
        ..Default::default()
    });
    let ca_pub = fs::read_to_string(ca.with_extension("pub")).unwrap();
    let ca_pub: Vec<&str> = ca_pub.split_whitespace().take(2).collect();
    // Only the authority is listed, not the node's own key.
    fs::write(
        &lab.known_hosts,
        format!("@cert-authority [127.0.0.1]:* {}\n", ca_pub.join(" ")),
    )
    .unwrap();
    let [a, b] = kh_arg(&lab);
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        node.log()
    );

    // A certificate from another authority is not trusted, and its key is unknown.
    let other = lab.dir.path().join("other_ca");
    keygen(&other, "ed25519", "");
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    fs::write(&lab.known_hosts, format!("@cert-authority * {other_pub}")).unwrap();
    let out = exec(&lab, &node.target(), &[&a, &b]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("is not in known_hosts"),
        "{}",
        stdout(&out)
    );
}
