//! Hostile conditions: secrets never leave memory, a full disk leaves no partial file.

use pveops::lab::scenario;

use crate::support::cluster::SimCluster;
use crate::support::{pveops, sshd::keygen, stderr};

/// Every file below `dir`, as text (lossy), with its path.
fn all_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.clone(),
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned(),
                ));
            }
        }
    }
    out
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
    let marker = format!("sleep 4.{}", std::process::id());
    let mut args: Vec<String> = vec!["exec".into(), lab.nodes[0].target(), lab.nodes[1].target()];
    args.extend(lab.auth_args());
    args.extend(["--json".into(), "--".into(), format!("{marker}; echo done")]);
    let start = std::time::Instant::now();
    let child = std::process::Command::new(crate::support::bin())
        .args(&args)
        .env("HOME", lab.home())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the command runs on both nodes, the first node goes away (sshd and its sessions).
    let running = crate::support::poll_until(10, || {
        let ps = std::process::Command::new("pgrep")
            .args(["-c", "-f", &format!("^{marker}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    assert!(running, "the command never ran on both nodes");
    lab.nodes[0].kill();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
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
    // descriptors, threads and memory after round 10 are where they were after round 2.
    let sim = SimCluster::start(scenario::healthy(20));
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
            connector: std::sync::Arc::new(pveops::session::Connector::new(
                pveops::session::Settings {
                    connect_timeout: std::time::Duration::from_secs(10),
                    sudo: false,
                },
            )),
            templates: std::sync::Arc::new(pveops::command::Templates::load(None).unwrap()),
            command_timeout: std::time::Duration::from_secs(30),
            parallel: 32,
            only: Vec::new(),
            upgrade_checklist: false,
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
    assert!(rss2 <= rss + 16 * 1024, "RSS grew: {rss} KiB -> {rss2} KiB");
}
