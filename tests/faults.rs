//! Faults injected into every operation through real OpenSSH sshd and the lab's fault knobs: a
//! node refusing connections, hung at the banner, a read-only gate command hanging past its
//! timeout, failing, or printing garbage, stderr noise from the login shell, a change command
//! hanging, a node dropping off in the middle of a drain, a node that never returns from its
//! reboot. Each case is a row of a table: the operation, the fault, and what must follow: the
//! exit status (PRODUCT.md), one stderr line naming the node and the cause, the journal, the
//! change commands the lab received, and where the guests are afterwards. Every case also
//! asserts no panic and no temporary file left in the evidence directory.
//!
//! One SimCluster serves the cases of a group; the lab state is put back between cases.

use pveops_lab::scenario;
use pveops_lab::state::{Cluster, Failure};

use crate::support::cluster::SimCluster;
use crate::support::{poll_until, pveops, stderr};

/// What is done to the cluster before the operation runs.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// The inventory points the node at a port nothing listens on (connection refused).
    Refuse(&'static str),
    /// The node's sshd is SIGSTOPped: TCP connects, the banner never comes.
    Banner(&'static str),
    /// `faults.hang` on these nodes: commands starting with the prefix never answer.
    Hang(&'static [&'static str], &'static str),
    /// `faults.fail` on these nodes: the prefix exits with this code and stderr.
    Fail(&'static [&'static str], &'static str, i32, &'static str),
    /// `faults.garbage` on these nodes.
    Garbage(&'static [&'static str], &'static str),
    /// Every node's login shell prints noise on stderr (`~/.bashrc`), for every command.
    Noise,
    /// `faults.no_return_after_reboot` on the node.
    NoReturn(&'static str),
}

const ALL: &[&str] = &["pve1", "pve2", "pve3"];
const PVE1: &[&str] = &["pve1"];
const IPCC: &str = "ipcc_send_rec[1] failed: Connection refused";
/// What `~/.bashrc` of a node prints on stderr in the noise cases (classic non-interactive
/// ssh noise on Debian/PVE).
const NOISE: &str = "echo 'stty: standard input: Inappropriate ioctl for device' >&2\necho 'mesg: ttyname failed: Inappropriate ioctl for device' >&2\n";

/// One row: the operation, the fault, and the outcome that must follow.
struct Case {
    /// The operation's arguments (`{journal}` is replaced by the group's journal).
    op: &'static [&'static str],
    fault: Fault,
    code: i32,
    /// Fragments that must all be on one stderr line: the node and the cause.
    says: &'static [&'static str],
    /// The `(seq, outcome)` of every journal end line; `None`: no journal was written.
    journal: Option<&'static [(u64, &'static str)]>,
    /// The change commands the lab received, in order, as `node: command` prefixes.
    sent: &'static [&'static str],
    /// Guests no longer where they were: vmid → node (`!pve1`: anywhere but pve1).
    moved: &'static [(u32, &'static str)],
}

use crate::support::ops::fast;

/// healthy-3node with VM 100 HA-managed: drains and reboots use both plain migrations and HA
/// node maintenance.
fn cluster() -> Cluster {
    let mut c = fast(scenario::healthy(3));
    c.guest_mut(100).unwrap().ha = Some("started".into());
    c.ha.master = Some("pve2".into());
    c
}

/// One cluster for a group of cases, with the state to return to between them.
struct Group {
    sim: SimCluster,
    pristine: Cluster,
    n: usize,
    journal: String,
}

impl Group {
    fn start() -> Group {
        let sim = SimCluster::start(cluster());
        let pristine = sim.state();
        Group {
            sim,
            pristine,
            n: 0,
            journal: String::new(),
        }
    }

    /// An inventory of every node; `dead` gets a port nothing listens on.
    fn inventory(&self, dead: Option<&str>) -> std::path::PathBuf {
        let mut text = format!(
            "[defaults]\nidentity = {:?}\nknown_hosts = {:?}\n",
            self.sim.lab.client_key.display().to_string(),
            self.sim.lab.known_hosts.display().to_string()
        );
        for (name, sshd) in &self.sim.nodes {
            let port = if dead == Some(name.as_str()) {
                crate::support::sshd::free_port()
            } else {
                sshd.port
            };
            text.push_str(&format!(
                "\n[[node]]\nname = {name:?}\nhost = \"127.0.0.1:{port}\"\n"
            ));
        }
        let path = self.sim.lab.dir.path().join(format!("inv-{}.toml", self.n));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Puts the lab back to `state` with `fault` applied.
    fn set(&self, state: &Cluster, fault: Fault) {
        self.sim.edit(|c| {
            *c = state.clone();
            let mut each = |nodes: &[&str], f: &dyn Fn(&mut pveops_lab::state::Faults)| {
                for n in nodes {
                    f(&mut c.node_mut(n).unwrap().faults);
                }
            };
            match fault {
                Fault::Hang(nodes, prefix) => each(nodes, &|f| f.hang = vec![prefix.into()]),
                Fault::Garbage(nodes, prefix) => each(nodes, &|f| f.garbage = vec![prefix.into()]),
                Fault::Fail(nodes, prefix, exit, text) => each(nodes, &|f| {
                    f.fail.insert(
                        prefix.into(),
                        Failure {
                            exit,
                            stderr: text.into(),
                        },
                    );
                }),
                Fault::NoReturn(node) => each(&[node], &|f| f.no_return_after_reboot = true),
                _ => {}
            }
        });
        for (_, sshd) in &self.sim.nodes {
            let rc = sshd.dir.join("home/.bashrc");
            if matches!(fault, Fault::Noise) {
                std::fs::write(&rc, NOISE).unwrap();
            } else {
                let _ = std::fs::remove_file(&rc);
            }
        }
    }

    /// Runs one case from the pristine state.
    fn case(&mut self, case: &Case) -> Run {
        let pristine = self.pristine.clone();
        self.case_from(&pristine, case)
    }

    /// Runs one case from `state` and asserts everything the row says.
    fn case_from(&mut self, state: &Cluster, case: &Case) -> Run {
        self.n += 1;
        self.set(state, case.fault);
        let dead = match case.fault {
            Fault::Refuse(n) => Some(n),
            _ => None,
        };
        let inv = self.inventory(dead);
        let stopped = match case.fault {
            Fault::Banner(n) => Some(Stopped::new(&self.sim, n)),
            _ => None,
        };
        let before = self.sim.commands().len();
        let run = self.run(&inv, case.op);
        drop(stopped);
        let what = format!("{:?} under {:?}", case.op, case.fault);
        check(&run, case, &what);
        let sent = changes(&self.sim.commands()[before..]);
        assert_eq!(
            sent.len(),
            case.sent.len(),
            "{what}: change commands sent: {sent:?}\n{}",
            run.stderr
        );
        for (got, want) in sent.iter().zip(case.sent) {
            assert!(got.starts_with(want), "{what}: sent {sent:?}, want {want}");
        }
        let now = self.sim.state();
        for g in &now.guests {
            let was = &state.guest(g.vmid).unwrap().node;
            match case.moved.iter().find(|(id, _)| *id == g.vmid) {
                None => assert_eq!(&g.node, was, "{what}: guest {} moved", g.vmid),
                Some((_, want)) => match want.strip_prefix('!') {
                    Some(not) => assert_ne!(g.node, not, "{what}: guest {}", g.vmid),
                    None => assert_eq!(&g.node, want, "{what}: guest {}", g.vmid),
                },
            }
        }
        run
    }

    fn run(&self, inv: &std::path::Path, op: &[&str]) -> Run {
        let dir = self.sim.lab.dir.path().join(format!("ev-{}", self.n));
        let changelog = self.sim.lab.dir.path().join("changelog.md");
        let mut a: Vec<&str> = vec!["-I", inv.to_str().unwrap()];
        a.extend(op.iter().map(|w| {
            if *w == "{journal}" {
                self.journal.as_str()
            } else {
                w
            }
        }));
        a.extend([
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
            "--connect-timeout",
            "2",
            "--command-timeout",
            "2",
            "--migrate-timeout",
            "10",
            "--reboot-timeout",
            "3",
        ]);
        let out = pveops(self.sim.lab.home(), &a, &[]);
        Run {
            code: out.status.code(),
            stderr: stderr(&out),
            dir,
        }
    }
}

/// A node's sshd stopped for the length of one case (continued even when the case panics).
struct Stopped<'a>(&'a crate::support::sshd::Sshd);

impl<'a> Stopped<'a> {
    fn new(sim: &'a SimCluster, node: &str) -> Stopped<'a> {
        let sshd = sim.node(node);
        sshd.signal("STOP");
        Stopped(sshd)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

struct Run {
    code: Option<i32>,
    stderr: String,
    dir: std::path::PathBuf,
}

/// The change commands among the lab's log lines, as `node: command`.
fn changes(log: &[(String, String)]) -> Vec<String> {
    log.iter()
        .filter(|(_, l)| {
            l.contains(" migrate ") || l.starts_with("ha-manager crm-command") || l == "reboot"
        })
        .map(|(n, l)| format!("{n}: {l}"))
        .collect()
}

/// Exit status, no panic, the one line naming node and cause, no temporary file, the journal.
fn check(run: &Run, case: &Case, what: &str) {
    assert_eq!(run.code, Some(case.code), "{what}:\n{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{what}:\n{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .any(|l| case.says.iter().all(|s| l.contains(s))),
        "{what}: no stderr line says all of {:?}:\n{}",
        case.says,
        run.stderr
    );
    let partial = crate::support::partial_files(&run.dir);
    assert!(partial.is_empty(), "{what}: partial files {partial:?}");
    let journal = run.dir.join("journal.jsonl");
    match case.journal {
        None => assert!(!journal.exists(), "{what}: a journal was written"),
        Some(want) => {
            let text = std::fs::read_to_string(&journal)
                .unwrap_or_else(|e| panic!("{what}: no journal: {e}\n{}", run.stderr));
            let ends: Vec<(u64, String)> = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|e| e["phase"] == "end")
                .map(|e| {
                    (
                        e["seq"].as_u64().unwrap(),
                        e["outcome"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let want: Vec<(u64, String)> = want.iter().map(|(s, o)| (*s, o.to_string())).collect();
            assert_eq!(ends, want, "{what}: journal\n{text}");
        }
    }
}

const MIGRATE: &[&str] = &["migrate", "101", "--to", "pve2", "--yes"];
const DRAIN: &[&str] = &["drain", "pve1", "--yes"];
const ENTER: &[&str] = &["maintenance", "enter", "pve1", "--yes"];
const REBOOT: &[&str] = &["reboot", "pve1", "--yes"];
const PLAN: &[&str] = &["plan", "migrate", "101", "--to", "pve2"];
const RESTORE: &[&str] = &["restore", "--journal", "{journal}", "--yes"];

/// A gate refused: exit 2, no journal, nothing sent, every guest where it was.
const fn refused(op: &'static [&'static str], fault: Fault, says: &'static [&'static str]) -> Case {
    Case {
        op,
        fault,
        code: 2,
        says,
        journal: None,
        sent: &[],
        moved: &[],
    }
}

const PREFLIGHT: &str = "pvesh get /nodes/pve1/qemu/101/migrate";
const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

/// The node that must run a step does not answer, for every operation: refused before any
/// change by the node-reachable gate (or, for maintenance, whose command goes to another node,
/// by the version gate that needs the node's own answer), naming node, address and cause.
const CONNECTION: &[Case] = &[
    refused(
        MIGRATE,
        Fault::Refuse("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "pve1 (127.0.0.1:",
            "connection refused",
        ],
    ),
    refused(
        MIGRATE,
        Fault::Banner("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "timed out after 2 s during banner exchange",
        ],
    ),
    // The target is reached by PVE over the cluster network, not by pveops: the cluster says
    // pve2 is online, so the migration goes ahead; the unreachable node is said at once, and
    // it is no worse after than before (exit 0).
    Case {
        op: MIGRATE,
        fault: Fault::Refuse("pve2"),
        code: 0,
        says: &[
            "migrate 101 to pve2: pve2 (127.0.0.1:",
            "connection refused",
        ],
        journal: Some(&[(1, "ok")]),
        sent: &["pve1: qm migrate 101 pve2 --online"],
        moved: &[(101, "pve2")],
    },
    refused(
        DRAIN,
        Fault::Refuse("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "connection refused",
        ],
    ),
    refused(
        DRAIN,
        Fault::Banner("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "during banner exchange",
        ],
    ),
    refused(
        ENTER,
        Fault::Refuse("pve1"),
        &[
            "refused by gate ha-maintenance-supported: the pve-manager version of pve1 is unknown",
            "connection refused",
        ],
    ),
    refused(
        ENTER,
        Fault::Banner("pve1"),
        &[
            "refused by gate ha-maintenance-supported: the pve-manager version of pve1 is unknown",
            "during banner exchange",
        ],
    ),
    refused(
        REBOOT,
        Fault::Refuse("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "connection refused",
        ],
    ),
    refused(
        REBOOT,
        Fault::Banner("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "during banner exchange",
        ],
    ),
    // A drain target the jump host cannot reach: the rolling reboot would have to bring the
    // guest back from it (step 6 runs there), so it is refused before the drain starts.
    refused(
        REBOOT,
        Fault::Refuse("pve2"),
        &[
            "refused by gate node-reachable: step 6 runs on pve2",
            "connection refused",
        ],
    ),
    refused(
        PLAN,
        Fault::Refuse("pve1"),
        &[
            "refused by gate node-reachable: step 1 runs on pve1",
            "connection refused",
        ],
    ),
];

/// A read-only command a gate needs hangs past --command-timeout, fails, or prints garbage:
/// the gate refuses, naming the command, the node and the cause, and nothing changes.
const COMMANDS: &[Case] = &[
    refused(
        MIGRATE,
        Fault::Hang(PVE1, PREFLIGHT),
        &[
            "refused by gate migrate-preflight: the migrate preflight of guest 101 on pve1 could not be read",
            "command timed out after 2 s (killed on the node)",
        ],
    ),
    refused(
        MIGRATE,
        Fault::Fail(PVE1, PREFLIGHT, 255, IPCC),
        &[
            "refused by gate migrate-preflight",
            "on pve1",
            "exited 255: ipcc_send_rec",
        ],
    ),
    refused(
        MIGRATE,
        Fault::Garbage(PVE1, PREFLIGHT),
        &[
            "refused by gate migrate-preflight",
            "on pve1",
            "expected JSON (run pvesh with --output-format json)",
        ],
    ),
    refused(
        DRAIN,
        Fault::Hang(ALL, "pvecm status"),
        &[
            "refused by gate cluster-quorate: no reachable node reported its quorum",
            "`pvecm status` on pve1: command timed out after 2 s",
        ],
    ),
    refused(
        DRAIN,
        Fault::Fail(ALL, "ha-manager status", 255, IPCC),
        &[
            "refused by gate ha-healthy: no reachable node reported the HA state",
            "`ha-manager status` on pve1 exited 255",
        ],
    ),
    refused(
        DRAIN,
        Fault::Garbage(ALL, "pvesh get /cluster/resources"),
        &[
            "refused by gate cluster-state",
            "the output of `pvesh get /cluster/resources --output-format json` on pve1 could not be read",
        ],
    ),
    refused(
        ENTER,
        Fault::Hang(ALL, "ha-manager status"),
        &[
            "refused by gate ha-healthy",
            "`ha-manager status` on pve1: command timed out after 2 s",
        ],
    ),
    refused(
        ENTER,
        Fault::Fail(PVE1, "pveversion", 1, "pveversion: cannot open apt cache"),
        &[
            "refused by gate ha-maintenance-supported: the pve-manager version of pve1 is unknown",
            "`pveversion -v` on pve1 exited 1",
        ],
    ),
    refused(
        ENTER,
        Fault::Garbage(ALL, "pvecm status"),
        &[
            "refused by gate cluster-quorate",
            "the output of `pvecm status` on pve1 could not be read",
        ],
    ),
    refused(
        REBOOT,
        Fault::Hang(PVE1, BOOT_ID),
        &[
            "refused by gate boot-id-known: the boot id of pve1 could not be read",
            "command timed out after 2 s",
        ],
    ),
    refused(
        REBOOT,
        Fault::Fail(
            ALL,
            "pvesh get /nodes/localhost/storage/",
            255,
            "storage 'pbs' is not online",
        ),
        &[
            "refused by gate backup-recent",
            "the backup listing could not be read: `pvesh get /nodes/localhost/storage/",
            "on pve1 exited 255",
        ],
    ),
    refused(
        REBOOT,
        Fault::Garbage(ALL, "ha-manager status"),
        &[
            "refused by gate ha-healthy",
            "the output of `ha-manager status` on pve1 could not be read",
        ],
    ),
    refused(
        PLAN,
        Fault::Fail(PVE1, PREFLIGHT, 255, IPCC),
        &["refused by gate migrate-preflight", "exited 255"],
    ),
    refused(
        PLAN,
        Fault::Garbage(ALL, "ha-manager status"),
        &["refused by gate ha-healthy", "on pve1 could not be read"],
    ),
];

#[test]
fn a_node_that_does_not_answer_refuses_every_operation_before_any_change() {
    let mut g = Group::start();
    for case in CONNECTION {
        g.case(case);
    }
}

#[test]
fn a_gate_command_that_hangs_fails_or_garbles_refuses_every_operation() {
    let mut g = Group::start();
    for case in COMMANDS {
        g.case(case);
    }
}

#[test]
fn restore_under_faults_refuses_then_recovers() {
    let mut g = Group::start();
    // The journal to restore: VM 101 moved from pve1 to pve2.
    let setup = g.case(&Case {
        op: MIGRATE,
        fault: Fault::None,
        code: 0,
        says: &["every step verified"],
        journal: Some(&[(1, "ok")]),
        sent: &["pve1: qm migrate 101 pve2 --online"],
        moved: &[(101, "pve2")],
    });
    g.journal = setup.dir.join("journal.jsonl").display().to_string();
    let moved = g.sim.state();
    // The undo runs on pve2, where the guest is now.
    let cases = [
        refused(
            RESTORE,
            Fault::Refuse("pve2"),
            &[
                "refused by gate node-reachable: step 1 runs on pve2",
                "connection refused",
            ],
        ),
        refused(
            RESTORE,
            Fault::Banner("pve2"),
            &[
                "refused by gate node-reachable: step 1 runs on pve2",
                "during banner exchange",
            ],
        ),
        refused(
            RESTORE,
            Fault::Hang(ALL, "pvecm status"),
            &[
                "refused by gate cluster-quorate",
                "on pve1: command timed out after 2 s",
            ],
        ),
        // Before, an unreadable /cluster/resources made every guest look gone: restore
        // planned "nothing to move back" and reported rolled-back, exit 0.
        refused(
            RESTORE,
            Fault::Fail(ALL, "pvesh get /cluster/resources", 255, IPCC),
            &[
                "refused by gate cluster-state",
                "`pvesh get /cluster/resources --output-format json` on pve1 exited 255",
            ],
        ),
    ];
    for case in &cases {
        g.case_from(&moved, case);
    }
    // Garbage from the first node's /cluster/resources alone: the cluster's state is read
    // from the next node that answered, and the restore goes ahead.
    let garbled_first = Case {
        op: RESTORE,
        fault: Fault::Garbage(PVE1, "pvesh get /cluster/resources"),
        code: 0,
        says: &["restore", "every step verified"],
        journal: Some(&[(1, "ok")]),
        sent: &["pve2: qm migrate 101 pve1 --online"],
        moved: &[(101, "pve1")],
    };
    g.case_from(&moved, &garbled_first);
    // With the faults gone the same journal is restored: the guest goes back to pve1.
    let back = Case {
        op: RESTORE,
        fault: Fault::None,
        code: 0,
        says: &["restore", "every step verified"],
        journal: Some(&[(1, "ok")]),
        sent: &["pve2: qm migrate 101 pve1 --online"],
        moved: &[(101, "pve1")],
    };
    g.case_from(&moved, &back);
}

fn noisy(
    op: &'static [&'static str],
    journal: &'static [(u64, &'static str)],
    sent: &'static [&'static str],
    moved: &'static [(u32, &'static str)],
) -> Case {
    Case {
        op,
        fault: Fault::Noise,
        code: 0,
        says: &["every step verified"],
        journal: Some(journal),
        sent,
        moved,
    }
}

/// Before, the noise joined `pvecm status`'s output and made the quorum unreadable: every
/// operation was refused by cluster-quorate.
#[test]
fn stderr_noise_from_the_login_shell_stops_no_migration_drain_or_restore() {
    let mut g = Group::start();
    g.case(&noisy(
        MIGRATE,
        &[(1, "ok")],
        &["pve1: qm migrate 101 pve2 --online"],
        &[(101, "pve2")],
    ));
    let drain = g.case(&noisy(
        DRAIN,
        &[(1, "ok"), (2, "ok"), (3, "ok")],
        &[
            "pve1: qm migrate 101 ",
            "pve1: pct migrate 102 ",
            "pve2: ha-manager crm-command node-maintenance enable pve1",
        ],
        &[(100, "!pve1"), (101, "!pve1"), (102, "!pve1")],
    ));
    // Restore that drain under the same noise: every guest back on pve1.
    g.journal = drain.dir.join("journal.jsonl").display().to_string();
    let drained = g.sim.state();
    g.case_from(
        &drained,
        &noisy(
            RESTORE,
            // Leave maintenance, move 101 and 102 home, see HA bring 100 home.
            &[(1, "ok"), (2, "ok"), (3, "ok"), (4, "ok")],
            &[
                "pve2: ha-manager crm-command node-maintenance disable pve1",
                "pve",
                "pve",
            ],
            &[(100, "pve1"), (101, "pve1"), (102, "pve1")],
        ),
    );
}

#[test]
fn stderr_noise_from_the_login_shell_stops_no_maintenance_reboot_or_plan() {
    let mut g = Group::start();
    g.case(&noisy(
        ENTER,
        &[(1, "ok")],
        &["pve2: ha-manager crm-command node-maintenance enable pve1"],
        &[(100, "!pve1")],
    ));
    // The reboot's own verification reads `pvecm status` too (quorate again?).
    g.case(&noisy(
        REBOOT,
        &[
            (1, "ok"),
            (2, "ok"),
            (3, "ok"),
            (4, "ok"),
            (5, "ok"),
            (6, "ok"),
            (7, "ok"),
        ],
        &[
            "pve1: qm migrate 101 ",
            "pve1: pct migrate 102 ",
            "pve2: ha-manager crm-command node-maintenance enable pve1",
            "pve1: reboot",
            "pve2: ha-manager crm-command node-maintenance disable pve1",
            "pve",
            "pve",
        ],
        &[],
    ));
    let mut plan = noisy(PLAN, &[], &[], &[]);
    plan.says = &["dry run, nothing changed"];
    plan.journal = None;
    g.case(&plan);
}

#[test]
fn faults_during_the_change_stop_at_that_step_and_say_where() {
    let mut g = Group::start();
    // The change command itself hangs: killed at --command-timeout, the step fails naming the
    // node it was sent to; the lab never acted on it.
    g.case(&Case {
        op: ENTER,
        fault: Fault::Hang(ALL, "ha-manager crm-command"),
        code: 2,
        says: &[
            "step 1 failed",
            "pve2 (127.0.0.1:",
            "command timed out after 2 s (killed on the node)",
        ],
        journal: Some(&[(1, "failed")]),
        sent: &["pve2: ha-manager crm-command node-maintenance enable pve1"],
        moved: &[],
    });
    assert_eq!(
        g.sim.state().node("pve1").unwrap().lrm.as_deref(),
        Some("active")
    );
    // A node that reboots and never returns: the reboot step fails at --reboot-timeout, the
    // steps after it (guests back) do not run; the guests stay where the drain put them.
    g.case(&Case {
        op: REBOOT,
        fault: Fault::NoReturn("pve1"),
        code: 2,
        says: &[
            "step 4 failed",
            "not verified within 3 s: pve1 has not rebooted yet",
        ],
        journal: Some(&[(1, "ok"), (2, "ok"), (3, "ok"), (4, "failed")]),
        sent: &[
            "pve1: qm migrate 101 ",
            "pve1: pct migrate 102 ",
            "pve2: ha-manager crm-command node-maintenance enable pve1",
            "pve1: reboot",
        ],
        moved: &[(100, "!pve1"), (101, "!pve1"), (102, "!pve1")],
    });
    assert!(!g.sim.state().node("pve1").unwrap().online);

    // A node dropping off in the middle of a drain: its sshd (and every session) is killed
    // while the first migration runs. The migration was started detached, so it completes;
    // step 1 is verified through the other nodes; step 2 must run on pve1 and fails naming it.
    let pristine = g.pristine.clone();
    g.set(&pristine, Fault::None);
    g.n += 1;
    let inv = g.inventory(None);
    let dir = g.sim.lab.dir.path().join("ev-dropoff");
    let changelog = g.sim.lab.dir.path().join("changelog.md");
    let before = g.sim.commands().len();
    let child = crate::support::command(
        g.sim.lab.home(),
        &[
            "-I",
            inv.to_str().unwrap(),
            "drain",
            "pve1",
            "--yes",
            "--out",
            dir.to_str().unwrap(),
            "--changelog",
            changelog.to_str().unwrap(),
            "--connect-timeout",
            "2",
            "--command-timeout",
            "2",
            "--migrate-timeout",
            "10",
        ],
    )
    .spawn()
    .unwrap();
    let migrating = poll_until(30, || {
        g.sim
            .state()
            .guest(101)
            .is_some_and(|v| v.lock.as_deref() == Some("migrate"))
    });
    assert!(migrating, "the first migration never started");
    g.sim
        .nodes
        .iter_mut()
        .find(|(n, _)| n == "pve1")
        .unwrap()
        .1
        .kill();
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code(),
        stderr: stderr(&out),
        dir,
    };
    let case = Case {
        op: DRAIN,
        fault: Fault::None,
        code: 2,
        says: &["step 2 failed", "pve1 (127.0.0.1:", "connection refused"],
        journal: Some(&[(1, "ok"), (2, "failed")]),
        sent: &["pve1: qm migrate 101 "],
        moved: &[(101, "!pve1")],
    };
    check(&run, &case, "drain with pve1 dropping off");
    let sent = changes(&g.sim.commands()[before..]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let now = g.sim.state();
    assert_ne!(now.guest(101).unwrap().node, "pve1", "step 1 completed");
    assert_eq!(now.guest(102).unwrap().node, "pve1", "step 2 never ran");
    assert_eq!(now.guest(100).unwrap().node, "pve1", "step 3 never ran");
}
