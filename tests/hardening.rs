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
