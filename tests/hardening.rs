//! Hostile conditions: secrets never leave memory, a full disk leaves no partial file.

use pveops_lab::scenario;

use crate::support::cluster::SimCluster;
use crate::support::netns::NetNs;
use crate::support::{pveops, sshd::keygen, stderr};

/// Every file below `dir`, as text (lossy), with its path.
fn all_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    crate::support::files_below(dir)
        .into_iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            (p, text)
        })
        .collect()
}

#[test]
fn a_key_passphrase_appears_in_no_output() {
    let mut c = scenario::healthy(2);
    c.timing.migrate_secs = 0.2;
    let sim = SimCluster::start(c);
    let secret = "pl4nted-S3CRET-passphrase";
    let key = sim.lab.dir.path().join("id_locked");
    keygen(&key, "ed25519", secret);
    std::fs::write(
        sim.lab.dir.path().join("authorized_keys"),
        std::fs::read(key.with_extension("pub")).unwrap(),
    )
    .unwrap();
    let inv = sim.inventory();
    let work = sim.lab.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (inv, key, work_s) = (
        inv.to_str().unwrap(),
        key.to_str().unwrap(),
        work.to_str().unwrap(),
    );
    let env = [("PVEOPS_KEY_PASSPHRASE", secret), ("PVEOPS_LOG", "debug")];
    let runs = [
        pveops(
            sim.lab.home(),
            &[
                "-I",
                inv,
                "-i",
                key,
                "assess",
                "lab",
                "--json",
                "--out",
                &format!("{work_s}/assess"),
            ],
            &env,
        ),
        pveops(
            sim.lab.home(),
            &[
                "-I", inv, "-i", key, "exec", "lab", "--json", "--", "echo", "hi",
            ],
            &env,
        ),
        pveops(
            sim.lab.home(),
            &[
                "-I",
                inv,
                "-i",
                key,
                "migrate",
                "100",
                "--to",
                "pve2",
                "--yes",
                "--out",
                &format!("{work_s}/migrate"),
                "--changelog",
                &format!("{work_s}/changelog.md"),
            ],
            &env,
        ),
    ];
    for out in &runs {
        assert!(out.status.code().is_some_and(|c| c < 3), "{}", stderr(out));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(
            !text.contains(secret),
            "the passphrase leaked on stdout/stderr"
        );
    }
    let files = all_files(&work);
    assert!(files.len() > 20, "the runs wrote their evidence");
    for (path, text) in files {
        assert!(
            !text.contains(secret),
            "the passphrase leaked into {}",
            path.display()
        );
    }
}

#[test]
fn a_full_disk_is_one_clear_error_and_leaves_no_partial_file() {
    let sim = SimCluster::start(scenario::healthy(2));
    let inv = sim.inventory();
    let mnt = sim.lab.dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    // A 48 KiB tmpfs in a private mount namespace: the host's mounts are never touched. The
    // script prints pveops' exit status, the count of temporary files left, and whether a
    // snapshot.json exists (a file that exists must be whole: it is renamed into place).
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &format!("mount -t tmpfs -o size=48k tmpfs {m} && {bin} -I {inv} assess lab --out {m}/ev 2>{m}.err; echo \"exit=$?\"; find {m} -type f -name '.pveops-*' | wc -l; cat {m}/ev/snapshot.json 2>/dev/null | head -c 1 | wc -c", m = mnt.display(), bin = crate::support::bin().display(), inv = inv.display())])
        .env("HOME", sim.lab.home())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("exit=3"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("0"),
        "no temporary file is left behind: {text}"
    );
    let err = std::fs::read_to_string(format!("{}.err", mnt.display())).unwrap_or_default();
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: cannot ") && last.contains("No space left on device"),
        "{err}"
    );
}

#[test]
fn a_node_dropping_off_mid_command_fails_alone_and_fast() {
    let mut lab = crate::support::Lab::start(2);
    let targets = [lab.nodes[0].target(), lab.nodes[1].target()];
    let (home, auth) = (lab.home().to_path_buf(), lab.auth_args());
    // Once the command runs on both nodes, the first node goes away (sshd and its sessions).
    let (out, took) = exec_with_fault(&home, &auth, &targets, &[], 4, || lab.nodes[0].kill());
    assert_eq!(out.status.code(), Some(2));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let err = v[0]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("connection lost") || err.contains("without an exit status"),
        "{}",
        v[0]
    );
    assert_eq!(v[1]["stdout"], "done\n", "the other node is not affected");
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
}

/// Runs `sleep SECS.<pid>; echo done` with `pveops exec --json` on `targets`, and once it runs
/// on all of them, `fault()`; returns the output and the wall time.
fn exec_with_fault(
    home: &std::path::Path,
    auth: &[String],
    targets: &[String],
    opts: &[&str],
    secs: u32,
    fault: impl FnOnce(),
) -> (std::process::Output, std::time::Duration) {
    let marker = format!("sleep {secs}.{}", std::process::id());
    let mut args: Vec<String> = vec!["exec".into()];
    args.extend(targets.iter().cloned());
    args.extend(auth.iter().cloned());
    args.extend(opts.iter().map(|s| s.to_string()));
    args.extend(["--json".into(), "--".into(), format!("{marker}; echo done")]);
    let start = std::time::Instant::now();
    let child = crate::support::command(home, &args).spawn().unwrap();
    let running = crate::support::poll_until(10, || {
        let ps = std::process::Command::new("pgrep")
            .args(["-c", "-f", &format!("^{marker}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
            >= targets.len()
    });
    assert!(running, "the command never ran on every node");
    fault();
    let out = child.wait_with_output().unwrap();
    (out, start.elapsed())
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ten_snapshot_rounds_in_one_process_do_not_grow() {
    // Within one process (the library, as a long-running caller would use it): open file
    // descriptors, threads, tokio tasks and memory after round 10 are where they were after
    // round 2.
    let sim = SimCluster::start(scenario::healthy(50));
    let inv = pveops::inventory::Inventory::load(&sim.inventory()).unwrap();
    let cfg = pveops::ssh_config::ClientConfig::default();
    let overrides = pveops::inventory::Overrides::default();
    let nodes = pveops::inventory::Resolver {
        inventory: &inv,
        ssh_config: &cfg,
        overrides: &overrides,
    }
    .resolve_all(&["lab".into()])
    .unwrap();
    let checks = pveops::check::load(None).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let round = || {
        let collector = pveops::collect::Collector {
            fleet: pveops::fleet::Fleet::new(
                std::sync::Arc::new(pveops::session::Connector::new(pveops::session::Settings {
                    connect_timeout: std::time::Duration::from_secs(10),
                    sudo: false,
                })),
                std::sync::Arc::new(pveops::command::Templates::load(None).unwrap()),
                std::time::Duration::from_secs(30),
                32,
            ),
            // Growth is about connections, channels and tasks, not about which PVE commands
            // run: the classic reads keep the 10 rounds of 50 nodes affordable on 2 cores.
            only: [
                "pvecm-status",
                "pvesm-status",
                "qm-list",
                "pct-list",
                "ha-manager-status",
                "pveversion-v",
                "systemctl-is-active",
            ]
            .map(String::from)
            .to_vec(),
            upgrade_checklist: false,
            package_state: false,
            raw_sink: None,
        };
        let (snap, _) = rt
            .block_on(collector.collect(nodes.clone(), &checks, |_| {}))
            .unwrap();
        assert!(snap.nodes.iter().all(|n| n.reachable));
    };
    round();
    round();
    let (fds, tasks, rss) = (count("/proc/self/fd"), count("/proc/self/task"), rss_kib());
    for _ in 0..8 {
        round();
    }
    let (fds2, tasks2, rss2) = (count("/proc/self/fd"), count("/proc/self/task"), rss_kib());
    assert!(fds2 <= fds + 4, "file descriptors grew: {fds} -> {fds2}");
    assert!(tasks2 <= tasks + 2, "threads grew: {tasks} -> {tasks2}");
    // Every connection's tasks end with its round (nothing left reading a dead session).
    let alive = rt.metrics().num_alive_tasks();
    assert_eq!(alive, 0, "{alive} tokio tasks still alive after the rounds");
    assert!(rss2 <= rss + 16 * 1024, "RSS grew: {rss} KiB -> {rss2} KiB");
}

#[test]
fn a_node_back_from_reboot_with_another_host_key_stops_the_reboot_at_once() {
    let mut c = scenario::healthy(3);
    c.timing.migrate_secs = 0.3;
    c.timing.ha_delay_secs = 0.2;
    c.timing.shutdown_secs = 0.1;
    // Long enough that the node is still "rebooting" when its sshd is replaced below.
    c.timing.reboot_secs = 3.0;
    let mut sim = SimCluster::start(c);
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join("evidence");
    let changelog = sim.lab.dir.path().join("changelog.md");
    let start = std::time::Instant::now();
    let child = crate::support::command(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "reboot",
            "pve2",
            "pve3",
            "--yes",
            "--reboot-timeout",
            "120",
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
        ],
    )
    .spawn()
    .unwrap();
    let rebooted = crate::support::poll_until(60, || {
        sim.commands()
            .iter()
            .any(|(n, l)| n == "pve2" && l == "reboot")
    });
    assert!(rebooted, "pve2 was never rebooted");
    sim.rekey("pve2");
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "waited {took:?}: a changed host key must end the wait at once, not at --reboot-timeout"
    );
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let failed: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["outcome"] == "failed")
        .unwrap_or_else(|| panic!("no failed step:\n{journal}"));
    let msg = failed["message"].as_str().unwrap();
    assert!(
        failed["step"].as_str().unwrap().starts_with("reboot pve2")
            && msg.contains("pve2")
            && msg.contains("host key does not match known_hosts"),
        "{failed}"
    );
    assert_eq!(
        sim.nodes_that_ran("reboot"),
        ["pve2"],
        "pve3 is not touched"
    );
    let known = std::fs::read_to_string(&sim.lab.known_hosts).unwrap();
    assert!(
        !known.contains(&sim.node("pve2").host_key),
        "the new key was not learnt"
    );
    let partial = crate::support::partial_files(&dir);
    assert!(partial.is_empty(), "temporary files left: {partial:?}");
}

/// `pveops exec --json` on `targets` with the lab's key; (exit code, records, wall time).
fn exec_json(
    lab: &crate::support::Lab,
    targets: &[String],
    opts: &[&str],
    command: &str,
) -> (Option<i32>, Vec<serde_json::Value>, std::time::Duration) {
    let mut args: Vec<String> = vec!["exec".into()];
    args.extend(targets.iter().cloned());
    args.extend(lab.auth_args());
    args.extend(opts.iter().map(|s| s.to_string()));
    args.extend(["--json".into(), "--".into(), command.into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = std::time::Instant::now();
    let out = pveops(lab.home(), &refs, &[]);
    let took = start.elapsed();
    let records = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
    (out.status.code(), records, took)
}

/// One sshd in a network namespace of its own (reached over veth) and one on loopback.
fn far_and_near() -> (crate::support::Lab, NetNs) {
    let ns = NetNs::new();
    let mut lab = crate::support::Lab::empty();
    let port = crate::support::sshd::free_port();
    let far = lab.spawn(&crate::support::SshdOptions {
        listen: Some((ns.node_ip.clone(), port)),
        netns: Some(ns.name.clone()),
        ..Default::default()
    });
    let near = lab.spawn(&Default::default());
    lab.trust(&far);
    lab.trust(&near);
    lab.nodes = vec![far, near];
    (lab, ns)
}

#[test]
fn an_unreachable_node_times_out_at_connect_and_the_others_go_on() {
    let (lab, ns) = far_and_near();
    let targets: Vec<String> = lab.nodes.iter().map(|n| n.target()).collect();
    let opts = ["--connect-timeout", "2"];
    let (code, v, _) = exec_json(&lab, &targets, &opts, "echo up");
    assert_eq!(code, Some(0), "both reachable at first: {v:?}");
    assert_eq!(v[0]["stdout"], "up\n");

    // Packets dropped: the SYN arrives, no answer ever comes back.
    ns.drop_replies();
    let (code, v, took) = exec_json(&lab, &targets, &opts, "echo up");
    assert_eq!(code, Some(2), "{v:?}");
    let err = v[0]["error"].as_str().unwrap_or("");
    assert!(
        err.starts_with(&format!("{} (", lab.nodes[0].target())) || err.contains(&ns.node_ip),
        "names the node: {err}"
    );
    assert!(
        err.contains("timed out after 2 s during TCP connect"),
        "{err}"
    );
    assert_eq!(v[1]["stdout"], "up\n", "the other node is not affected");
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_node_whose_link_goes_down_fails_with_one_sentence() {
    let (lab, ns) = far_and_near();
    let targets: Vec<String> = lab.nodes.iter().map(|n| n.target()).collect();

    // Mid-command: the command runs on both nodes, then the far node's link goes down.
    let opts = ["--command-timeout", "3"];
    let (out, took) = exec_with_fault(lab.home(), &lab.auth_args(), &targets, &opts, 6, || {
        ns.link_down()
    });
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let err = v[0]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("command timed out after 3 s (no answer from the node"),
        "{}",
        v[0]
    );
    // --command-timeout 3 also bounds the near node's `sleep 6`: killed on that node, which
    // still answered.
    let near = v[1]["error"].as_str().unwrap_or("");
    assert!(near.contains("killed on the node"), "{}", v[1]);
    // A node that says nothing more is given up after the limit, the remote kill delay (5 s)
    // and the client's grace (5 s): 13 s here, never longer.
    assert!(took < std::time::Duration::from_secs(18), "took {took:?}");

    // A new connection to a node whose link is down.
    let (code, v, took) = exec_json(&lab, &targets, &["--connect-timeout", "2"], "echo up");
    assert_eq!(code, Some(2), "{v:?}");
    let err = v[0]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("timed out after 2 s during TCP connect") || err.contains("No route to host"),
        "{err}"
    );
    assert_eq!(v[1]["stdout"], "up\n");
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
}

/// The peak RSS of the largest child this process has waited for, in KiB.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss
}

#[test]
fn assess_of_two_hundred_nodes_at_parallel_64_completes_in_bounded_memory() {
    // `pveops lab` serves 200 simulated nodes, one loopback address each; assess reads the
    // whole catalog of all 200 with at most 64 connections at once.
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::sshd::free_port().to_string();
    let mut lab = crate::support::command(
        dir.path(),
        &[
            "lab",
            "--nodes",
            "200",
            "--listen",
            "127.0.42.1",
            "--ssh-port",
            &port,
            "--state-dir",
            dir.path().to_str().unwrap(),
        ],
    )
    .stdout(std::process::Stdio::null())
    // A file, not a pipe nobody reads: a full pipe would stall the lab's server.
    .stderr(std::fs::File::create(dir.path().join("lab.log")).unwrap())
    .spawn()
    .unwrap();
    let inv = dir.path().join("inventory.toml");
    let up = crate::support::poll_until(30, || {
        inv.exists()
            && std::net::TcpStream::connect(("127.0.42.200", port.parse::<u16>().unwrap())).is_ok()
    });
    let out_dir = dir.path().join("evidence");
    let out = up.then(|| {
        pveops(
            dir.path(),
            &[
                "-I",
                inv.to_str().unwrap(),
                "assess",
                "lab",
                "--parallel",
                "64",
            ]
            .into_iter()
            // 200 "nodes" share this machine's 2 cores: with 64 connections of up to 10
            // channels each, several hundred simulator processes compete with the lab's
            // server for the CPU, so a banner can take longer than the 10 s default.
            .chain(["--connect-timeout", "60", "--command-timeout", "300"])
            .chain(["--json", "--out", out_dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
            &[],
        )
    });
    let peak_kib = children_max_rss_kib();
    let _ = lab.kill();
    let _ = lab.wait();
    assert!(up, "the lab of 200 nodes did not come up");
    let out = out.unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = snap["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 200);
    assert!(nodes.iter().all(|n| n["reachable"] == true));
    assert!(out_dir.join("snapshot.json").exists());
    // The report stays readable at this size: the 200 identical nodes fold into one row, a
    // shared storage is one row, local storages fold per storage.
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let table = |section: &str| -> Vec<&str> {
        let start = report.find(&format!("## {section}\n")).unwrap();
        report[start..]
            .lines()
            .skip(4)
            .take_while(|l| l.starts_with('|'))
            .collect()
    };
    let nodes_table = table("Nodes");
    assert_eq!(nodes_table.len(), 1, "{}", nodes_table.join("\n"));
    assert!(
        nodes_table[0].starts_with("| pve1 – pve200 (200 nodes) |"),
        "{}",
        nodes_table[0]
    );
    let storage_table = table("Storage");
    assert!(storage_table.len() < 10, "{}", storage_table.join("\n"));
    assert!(
        storage_table
            .iter()
            .any(|l| l.starts_with("| all 200 nodes (shared) |")),
        "{}",
        storage_table.join("\n")
    );
    assert!(report.contains("| VMID | Kind | Name | Node | Status | HA | Newest backup | Lock |"));
    assert!(
        report.contains("| Who | root@"),
        "the login name, not unknown@"
    );
    // Measured: about 48 MiB (release build); the bound leaves room for a debug build.
    assert!(
        peak_kib < 160 * 1024,
        "peak RSS of assess at 200 nodes: {peak_kib} KiB"
    );
}

#[test]
fn hostile_files_are_one_clear_error() {
    // Every file a user can point pveops at, given something that is not that file: a device
    // that never ends, binary bytes, a directory, wrong types, unknown keys. Each is one
    // line naming the file and the cause, exit 3 (or 2 where only one node is concerned), at
    // once: nothing is read past its size limit.
    let lab = crate::support::Lab::start(1);
    let dir = lab.dir.path();
    let (checks, templates) = (dir.join("checks"), dir.join("templates"));
    std::fs::create_dir_all(&checks).unwrap();
    std::fs::create_dir_all(&templates).unwrap();
    std::os::unix::fs::symlink("/dev/zero", checks.join("huge.toml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", templates.join("pvecm-status.hbs")).unwrap();
    let binary = dir.join("binary");
    std::fs::write(&binary, b"\x00\xffPK\x03\x04\x80garbage\xfe").unwrap();
    let types = dir.join("types.toml");
    std::fs::write(&types, "[[node]]\nname = 5\n").unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[[node]]\nname = \"a\"\nhots = \"x\"\n").unwrap();
    let node = lab.nodes[0].target();
    let (c, t, b, ty, u, d) = (
        checks.to_str().unwrap(),
        templates.to_str().unwrap(),
        binary.to_str().unwrap(),
        types.to_str().unwrap(),
        unknown.to_str().unwrap(),
        dir.to_str().unwrap(),
    );
    let kh = lab.known_hosts.to_str().unwrap().to_string();
    let key = lab.client_key.to_str().unwrap().to_string();
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (vec!["-I", "/dev/zero", "exec", "lab", "--", "true"], 3,
         "cannot read the inventory /dev/zero: larger than 16 MiB".into()),
        (vec!["-I", b, "exec", "lab", "--", "true"], 3,
         format!("cannot read the inventory {b}: not UTF-8 text")),
        (vec!["-I", d, "exec", "lab", "--", "true"], 3,
         format!("cannot read the inventory {d}: Is a directory")),
        (vec!["-I", ty, "exec", "lab", "--", "true"], 3,
         "invalid type: integer `5`, expected a string".into()),
        (vec!["-I", u, "exec", "a", "--", "true"], 3, "unknown field `hots`".into()),
        (vec!["-F", "/dev/zero", "exec", &node, "--", "true"], 3,
         "cannot read the ssh config /dev/zero: larger than 16 MiB".into()),
        (vec!["--known-hosts", "/dev/zero", "-i", &key, "exec", &node, "--", "true"], 2,
         "cannot read the known_hosts file /dev/zero: larger than 64 MiB".into()),
        (vec!["-i", "/dev/zero", "--known-hosts", &kh, "exec", &node, "--", "true"], 2,
         "authentication failed (tried: /dev/zero (unreadable: larger than".into()),
        (vec!["assess", "--from", "/dev/zero"], 3,
         "cannot read the snapshot /dev/zero: larger than 256 MiB".into()),
        (vec!["assess", "--from", b], 3, format!("cannot read the snapshot {b}: not UTF-8")),
        (vec!["diff", b, b], 3, format!("cannot read the snapshot {b}: not UTF-8")),
        (vec!["restore", "--journal", "/dev/zero", "--yes"], 3,
         "cannot read the journal /dev/zero: larger than 256 MiB".into()),
        (vec!["parse", "pvecm-status", "/dev/zero"], 3,
         "cannot read /dev/zero: larger than 256 MiB".into()),
        (vec!["checks", "--checks", c], 3,
         format!("cannot read the check file {c}/huge.toml: larger than 16 MiB")),
        (vec!["--templates", t, "exec", &node, "--", "true"], 3,
         format!("cannot read the template {t}/pvecm-status.hbs: larger than 16 MiB")),
    ];
    for (args, code, text) in cases {
        let start = std::time::Instant::now();
        let out = pveops(lab.home(), &args, &[]);
        let took = start.elapsed();
        let all = format!("{}{}", crate::support::stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {all}");
        assert!(
            all.contains(&text),
            "{args:?}: expected {text:?} in:\n{all}"
        );
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        if code == 3 {
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
            assert!(err.starts_with("error: "), "{args:?}: {err}");
        }
        assert!(
            took < std::time::Duration::from_secs(10),
            "{args:?} took {took:?}"
        );
    }
}
