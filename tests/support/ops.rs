//! Running operations against a simulated cluster: a fast lab, an operation with its evidence
//! directory and change log, `restore`, and the journal read back.

use pveops_lab::state::Cluster;

use super::cluster::SimCluster;
use super::{pveops, stderr};

/// The lab's times shortened: migrations, HA, reboots take fractions of a second.
pub fn fast(mut c: Cluster) -> Cluster {
    c.timing.migrate_secs = 0.3;
    c.timing.ha_delay_secs = 0.2;
    c.timing.reboot_secs = 0.5;
    c.timing.shutdown_secs = 0.1;
    c.timing.upgrade_secs = 0.3;
    c
}

/// What an operation left: its exit status, evidence directory and stderr.
pub struct Op {
    pub code: Option<i32>,
    pub dir: std::path::PathBuf,
    pub stderr: String,
}

/// `pveops -I INVENTORY ARGS… --out DIR --changelog FILE --migrate-timeout 30`.
pub fn op(sim: &SimCluster, args: &[&str]) -> Op {
    let inv = sim.inventory();
    let dir = sim
        .lab
        .dir
        .path()
        .join(format!("op-{}", args.join("-").replace('/', "_")));
    let changelog = sim.lab.dir.path().join("changelog.md");
    let mut a = vec!["-I", inv.to_str().unwrap()];
    a.extend_from_slice(args);
    a.extend_from_slice(&[
        "--out",
        dir.to_str().unwrap(),
        "--changelog",
        changelog.to_str().unwrap(),
        "--migrate-timeout",
        "30",
    ]);
    let out = pveops(sim.lab.home(), &a, &[]);
    Op {
        code: out.status.code(),
        dir,
        stderr: stderr(&out),
    }
}

/// `restore --journal JOURNAL --yes`, its evidence under `restore-TAG`.
pub fn restore(sim: &SimCluster, journal: &std::path::Path, tag: &str) -> Op {
    let inv = sim.inventory();
    let dir = sim.lab.dir.path().join(format!("restore-{tag}"));
    let changelog = sim.lab.dir.path().join("changelog.md");
    let out = pveops(
        sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "restore",
            "--journal",
            journal.to_str().unwrap(),
            "--yes",
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
            "--migrate-timeout",
            "30",
        ],
        &[],
    );
    Op {
        code: out.status.code(),
        dir,
        stderr: stderr(&out),
    }
}

/// The journal's entries.
pub fn journal(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
