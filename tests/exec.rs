//! `pveops exec` end to end against real sshd: output, JSON, exit codes, faults, fan-out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Lab, poll_until, pveops, sshd::free_port, stderr, stdout};

fn exec(lab: &Lab, targets: &[String], extra: &[&str], cmd: &str) -> std::process::Output {
    let mut a: Vec<String> = vec!["exec".into()];
    a.extend(targets.iter().cloned());
    a.extend(lab.auth_args());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(["--".into(), cmd.into()]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    pveops(lab.home(), &refs, &[])
}

fn json(out: &std::process::Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn stdout_stderr_and_exit_status_are_kept_apart() {
    let lab = Lab::start(1);
    let t = lab.nodes[0].target();
    let out = exec(
        &lab,
        std::slice::from_ref(&t),
        &["--json"],
        "echo out; echo err >&2; exit 3",
    );
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["node"], t.as_str());
    assert_eq!(v[0]["stdout"], "out\n");
    assert_eq!(v[0]["stderr"], "err\n");
    assert_eq!(v[0]["exit_code"], 3);
    assert_eq!(v[0]["signal"], serde_json::Value::Null);
    assert_eq!(v[0]["error"], serde_json::Value::Null);
    assert!(v[0]["duration_ms"].is_u64());

    let out = exec(
        &lab,
        std::slice::from_ref(&t),
        &[],
        "echo out; echo err >&2",
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("=== {t} ({t}) · exit 0 · ")),
        "{text}"
    );
    assert!(
        text.contains("\nout\n") && text.contains(&format!("--- {t} stderr\nerr\n")),
        "{text}"
    );
    assert!(
        stderr(&out).contains("exec: 1 node: 1 ok"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exit_by_signal_has_no_exit_code() {
    let lab = Lab::start(1);
    let out = exec(&lab, &[lab.nodes[0].target()], &["--json"], "kill -TERM $$");
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v[0]["signal"], "TERM");
    assert_eq!(v[0]["exit_code"], serde_json::Value::Null);
}

#[test]
fn words_are_joined_and_run_by_the_login_shell() {
    let lab = Lab::start(1);
    let mut a: Vec<String> = vec!["exec".into(), lab.nodes[0].target()];
    a.extend(lab.auth_args());
    a.extend([
        "--".into(),
        "echo".into(),
        "a".into(),
        "'b  c'".into(),
        "$((1+2))".into(),
    ]);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = pveops(lab.home(), &refs, &[]);
    assert!(stdout(&out).contains("\na b  c 3\n"), "{}", stdout(&out));
}

#[test]
fn connection_refused_is_one_sentence_and_others_go_on() {
    let lab = Lab::start(1);
    let dead = format!("127.0.0.1:{}", free_port());
    let out = exec(
        &lab,
        &[dead.clone(), lab.nodes[0].target()],
        &["--json"],
        "echo alive",
    );
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v[0]["node"], dead.as_str());
    assert_eq!(
        v[0]["error"],
        format!("{dead} ({dead}): connection refused — is sshd running on that port?")
    );
    assert_eq!(v[1]["stdout"], "alive\n");
}

#[test]
fn node_hung_at_banner_times_out() {
    let lab = Lab::start(1);
    lab.nodes[0].signal("STOP");
    let start = Instant::now();
    let out = exec(
        &lab,
        &[lab.nodes[0].target()],
        &["--connect-timeout", "2", "--json"],
        "true",
    );
    let took = start.elapsed();
    lab.nodes[0].signal("CONT");
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let err = v[0]["error"].as_str().unwrap();
    assert!(
        err.ends_with("timed out after 2 s during banner exchange"),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn command_past_its_timeout_is_killed_on_the_node() {
    let lab = Lab::start(1);
    // A marker no other process has, to find the remote process from the host.
    let marker = format!("sleep 3{}.5", std::process::id());
    let out = exec(
        &lab,
        &[lab.nodes[0].target()],
        &["--command-timeout", "1", "--json"],
        &format!("echo started; {marker}"),
    );
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    let err = v[0]["error"].as_str().unwrap();
    assert!(
        err.ends_with("command timed out after 1 s (killed on the node)"),
        "{err}"
    );
    let gone = poll_until(5, || {
        let ps = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        !ps.status.success()
    });
    assert!(gone, "the remote `{marker}` is still running");
}

#[test]
fn eleven_and_more_commands_share_one_connection() {
    // Beyond sshd's MaxSessions (10): all complete, through the library's fan-out.
    let lab = Lab::start(1);
    let node = node_of(&lab, 0);
    let templates = Arc::new(pveops::command::Templates::load(None).unwrap());
    let commands: Vec<_> = (0..15)
        .map(|i| pveops::command::Command::operator(&[format!("sleep 0.3; echo cmd{i}")]))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fleet = pveops::fleet::Fleet::new(connector(), templates, Duration::from_secs(30), 4);
    let results = rt.block_on(fleet.run(vec![node], commands, |_| {}));
    let cmds = results[0].outcome.as_ref().expect("node reachable");
    assert_eq!(cmds.len(), 15);
    for (i, c) in cmds.iter().enumerate() {
        let o = c.result.as_ref().unwrap_or_else(|e| panic!("cmd{i}: {e}"));
        assert_eq!(o.stdout_text(), format!("cmd{i}\n"));
    }
}

#[test]
fn fifty_nodes_at_once() {
    let lab = Lab::start(50);
    let targets: Vec<String> = lab.nodes.iter().map(|n| n.target()).collect();
    let out = exec(
        &lab,
        &targets,
        &["--parallel", "64", "--json"],
        "echo $PVEOPS_TEST_NODE",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v.len(), 50);
    for (rec, node) in v.iter().zip(&lab.nodes) {
        assert_eq!(rec["node"], node.target().as_str());
        assert_eq!(rec["stdout"], format!("{}\n", node.name));
    }
}

#[test]
fn proxy_jump_through_a_second_sshd() {
    let lab = Lab::start(2);
    let (jump, target) = (&lab.nodes[0], &lab.nodes[1]);
    let mut targets = vec![target.target()];
    // A target behind the jump that refuses, to show the error names the path.
    let dead = format!("127.0.0.1:{}", free_port());
    targets.push(dead.clone());
    let out = exec(
        &lab,
        &targets,
        &["-J", &jump.target(), "--json"],
        "echo $PVEOPS_TEST_NODE; echo $SSH_CLIENT",
    );
    let v = json(&out);
    assert_eq!(
        v[0]["stdout"].as_str().unwrap().lines().next(),
        Some(target.name.as_str()),
        "{v:?}"
    );
    let err = v[1]["error"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "{dead} ({dead}): cannot connect (the jump host could not connect"
        )),
        "{err}"
    );
    // Every connection to the jump host is one: its log shows a single accepted login.
    let logins = jump.log().matches("Accepted publickey").count();
    assert_eq!(logins, 1, "{}", jump.log());
}

#[test]
fn inventory_groups_and_ssh_config_aliases() {
    let lab = Lab::start(2);
    let (a, b) = (&lab.nodes[0], &lab.nodes[1]);
    let inv = lab.dir.path().join("inventory.toml");
    std::fs::write(
        &inv,
        format!(
            "[defaults]\nidentity = \"{}\"\nknown_hosts = \"{}\"\n\n[[node]]\nname = \"pve1\"\nhost = \"127.0.0.1:{}\"\n\n[[node]]\nname = \"pve2\"\nhost = \"alias2\"\n\n[groups]\nlab = [\"pve1\", \"pve2\"]\n",
            lab.client_key.display(),
            lab.known_hosts.display(),
            a.port
        ),
    )
    .unwrap();
    let cfg = lab.dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host alias2\n  HostName 127.0.0.1\n  Port {}\n  User root\n",
            b.port
        ),
    )
    .unwrap();
    let out = pveops(
        lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "exec",
            "lab",
            "-F",
            cfg.to_str().unwrap(),
            "--json",
            "--",
            "echo $PVEOPS_TEST_NODE",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v = json(&out);
    assert_eq!(
        (v[0]["node"].as_str(), v[0]["stdout"].as_str()),
        (Some("pve1"), Some(format!("{}\n", a.name).as_str()))
    );
    assert_eq!(
        (v[1]["node"].as_str(), v[1]["stdout"].as_str()),
        (Some("pve2"), Some(format!("{}\n", b.name).as_str()))
    );
}

#[test]
fn usage_errors_exit_64() {
    let lab = Lab::empty();
    for args in [
        vec!["exec", "pve1"],
        vec!["exec", "--", "true"],
        vec!["exec", "pve1", "--bogus", "--", "true"],
        vec!["nope"],
    ] {
        let out = pveops(lab.home(), &args, &[]);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
    let bad = lab.dir.path().join("bad.toml");
    std::fs::write(&bad, "[[node]]\nname = 1\n").unwrap();
    let out = pveops(
        lab.home(),
        &["-I", bad.to_str().unwrap(), "exec", "x", "--", "true"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {}: invalid inventory", bad.display()))
            && err.lines().count() == 1,
        "{err}"
    );
    let out = pveops(lab.home(), &["exec", "@nohost", "--", "true"], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}

fn connector() -> Arc<pveops::session::Connector> {
    Arc::new(pveops::session::Connector::new(pveops::session::Settings {
        connect_timeout: Duration::from_secs(10),
        sudo: false,
    }))
}

fn node_of(lab: &Lab, i: usize) -> pveops::inventory::Node {
    let n = &lab.nodes[i];
    pveops::inventory::Node {
        name: n.name.clone(),
        host: "127.0.0.1".into(),
        port: n.port,
        user: "root".into(),
        identities: vec![lab.client_key.clone()],
        known_hosts: pveops::inventory::KnownHostsFiles {
            read: vec![lab.known_hosts.clone()],
            append_to: lab.known_hosts.clone(),
        },
        host_keys: pveops::known_hosts::Policy::Strict,
        jump: None,
    }
}

#[test]
fn discover_expands_one_target_into_the_cluster() {
    use crate::support::cluster::SimCluster;
    let port = free_port();
    let sim = SimCluster::start_on(pveops_lab::scenario::healthy(3), Some(("127.0.31", port)));
    // Locally only the seed's key is known; the others come from the cluster's known_hosts,
    // except pve3's, which nobody lists: it must be refused.
    let seed = sim.node("pve1");
    std::fs::write(
        &sim.lab.known_hosts,
        format!("{}\n", seed.known_hosts_line()),
    )
    .unwrap();
    sim.edit(|c| c.known_hosts = vec![format!("pve2,{}", sim.node("pve2").known_hosts_line())]);
    let out = pveops(
        sim.lab.home(),
        &[
            "exec",
            "--discover",
            &seed.target(),
            "-i",
            sim.lab.client_key.to_str().unwrap(),
            "--known-hosts",
            sim.lab.known_hosts.to_str().unwrap(),
            "--json",
            "--",
            "hostname",
        ],
        &[],
    );
    let v = json(&out);
    let names: Vec<&str> = v.iter().map(|r| r["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["pve1", "pve2", "pve3"], "{}", stderr(&out));
    assert_eq!(v[0]["stdout"], "pve1\n");
    assert_eq!(v[1]["stdout"], "pve2\n");
    assert!(
        v[2]["error"]
            .as_str()
            .unwrap()
            .contains("is not in known_hosts"),
        "{}",
        v[2]
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn handshakes_dropped_by_max_startups_are_retried() {
    // sshd drops unauthenticated connections beyond MaxStartups before its banner; twenty
    // targets on one sshd that takes two at a time all get through with retries.
    let lab = crate::support::Lab::empty();
    let node = lab.spawn(&crate::support::SshdOptions {
        extra_config: vec!["MaxStartups 2".into()],
        ..Default::default()
    });
    lab.trust(&node);
    let inv = lab.dir.path().join("inventory.toml");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "[[node]]\nname = \"n{i:02}\"\nhost = \"{}\"\n",
            node.target()
        ));
    }
    std::fs::write(&inv, text).unwrap();
    let mut args: Vec<String> = vec!["-I".into(), inv.display().to_string(), "exec".into()];
    args.extend((0..20).map(|i| format!("n{i:02}")));
    args.extend(lab.auth_args());
    args.extend(["--json".into(), "--".into(), "echo ok".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = pveops(lab.home(), &refs, &[]);
    let v = json(&out);
    let failed: Vec<&serde_json::Value> = v.iter().filter(|r| r["stdout"] != "ok\n").collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        node.log().contains("past MaxStartups"),
        "the limit was never hit: {}",
        node.log()
    );
}
