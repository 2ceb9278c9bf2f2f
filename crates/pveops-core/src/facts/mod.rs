//! Facts: pure parsers that turn the text PVE commands print into typed, serialisable
//! structs (the `pveops parse` kinds). The ground truth for every format is
//! `shared/spec/FORMATS.md`; each quirk is handled where it occurs, with a comment citing it.
//! No parser does I/O, and none may panic on any input: the lints below forbid the usual ways.
//!
//! A command's file also holds what the snapshot keeps of it, and a `From` that builds it from
//! the parser's output. Each `From` names every field of the fact, kept or dropped, so a field
//! added to or renamed in a parser is a compile error there, never a silently empty snapshot
//! field; a type the fact shares with the snapshot (`pct_list::Container`, `lslocks::Lock`)
//! is stored as it is.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

use std::fmt;

use serde::Serialize;

mod common;
pub mod stderr;

/// Debian-ish version order, for the plan's version gates (the same the parsers use).
pub(crate) use common::version_cmp;

pub mod apt_cache_show;
pub mod apt_get;
pub mod apt_lists;
pub mod apt_log;
pub mod apt_policy;
pub mod backup_list;
pub mod ceph_status;
pub mod cert_info;
pub mod cluster_options;
pub mod corosync_cfgtool;
pub mod df;
pub mod disks_list;
pub mod dpkg_audit;
pub mod guest_config;
pub mod guest_status;
pub mod ha_groups;
pub mod ha_manager_status;
pub mod ha_resources;
pub mod ha_rules;
pub mod lslocks;
pub mod migrate_preflight;
pub mod node_identity;
pub mod node_rrddata;
pub mod node_status;
pub mod pct_config;
pub mod pct_list;
pub mod pct_status;
pub mod pvecm_nodes;
pub mod pvecm_status;
pub mod pvesh;
pub mod pvesm_status;
pub mod pvesr_status;
pub mod pveversion;
pub mod qm_config;
pub mod qm_list;
pub mod qm_status;
pub mod reboot_required;
pub mod storage_content;
pub mod subscription;
pub mod systemctl_is_active;
pub mod task_log;
pub mod tasks;
pub mod upgrade_checklist;
pub mod uptime;
pub mod utc_offset;
pub mod zpool_status;

/// Output a parser cannot read: which kind, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: &'static str,
    /// 1-based line number; 0 when the problem is the input as a whole (e.g. empty).
    pub line: usize,
    /// The offending line.
    pub text: String,
    pub reason: String,
}

impl ParseError {
    pub fn new(kind: &'static str, line: usize, text: &str, reason: impl Into<String>) -> Self {
        ParseError {
            kind,
            line,
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Long lines are cut in the one-line message; the full line stays in `text`.
const SHOWN_CHARS: usize = 160;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: cannot read the input: {}", self.kind, self.reason);
        }
        let mut shown: String = self.text.chars().take(SHOWN_CHARS).collect();
        if self.text.chars().count() > SHOWN_CHARS {
            shown.push('…');
        }
        write!(
            f,
            "{}: line {}: cannot read {:?}: {}",
            self.kind, self.line, shown, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// When a catalog read runs (`collect` in the `pveops` crate sends them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// On every node, in every assessment.
    Node,
    /// On every node, for the monitoring checks (load, disks, tasks, replication,
    /// subscription, certificates). A PVE release without the API path (`pvesh`: "No 'get'
    /// handler defined", PVE/RESTHandler.pm) simply lacks the fact: no finding.
    Monitoring,
    /// On every node, when a package upgrade is assessed (`pveops update`).
    PackageState,
    /// On every node, with `--upgrade-checklist`.
    UpgradeChecklist,
    /// Once per cluster, on the first node that answers (pmxcfs shows every member the same).
    Cluster,
    /// Once per backup storage, with the storage as the template's `storage`.
    Storage,
}

/// Where a read's output is kept: the node's snapshot, or the lists read once per cluster.
pub struct Keep<'a> {
    pub node: &'a mut crate::snapshot::NodeSnapshot,
    pub resources: &'a mut Vec<pvesh::Resource>,
    pub backups: &'a mut Vec<storage_content::Backup>,
}

/// One read of the catalog, declared in the facts file of its command beside the parser: its
/// template, when it runs, the template's variables, and what the snapshot keeps of it.
pub struct Read {
    /// The template (`templates/commands/NAME.hbs`), also the name of the command record.
    pub template: &'static str,
    pub scope: Scope,
    /// The template's variables (most have none: [`no_vars`]).
    pub vars: fn() -> serde_json::Value,
    /// Parses the output into the snapshot; the error is one sentence (the parser's).
    pub keep: fn(&crate::output::Output, &mut Keep<'_>) -> Result<(), String>,
}

/// The variables of a template that has none.
pub fn no_vars() -> serde_json::Value {
    serde_json::json!({})
}

/// Every read of the catalog, in the order a node runs them (the snapshot's command records
/// keep this order).
pub const READS: &[Read] = &[
    pvecm_status::READ,
    pvesm_status::READ,
    qm_list::READ,
    pct_list::READ,
    ha_manager_status::READ,
    pveversion::READ,
    node_identity::BOOT_ID,
    node_identity::HOSTNAME,
    uptime::READ,
    utc_offset::READ,
    apt_get::READ,
    apt_lists::READ,
    ceph_status::READ,
    dpkg_audit::READ,
    apt_policy::READ,
    node_status::READ,
    node_rrddata::READ,
    disks_list::READ,
    tasks::FAILED,
    tasks::RUNNING,
    pvesr_status::READ,
    subscription::READ,
    cert_info::READ,
    systemctl_is_active::READ,
    upgrade_checklist::READ,
    lslocks::READ,
    reboot_required::READ,
    pvesh::CLUSTER_RESOURCES,
    storage_content::READ,
];

/// The catalog read of template `template`, if it is one.
pub fn read(template: &str) -> Option<&'static Read> {
    READS.iter().find(|r| r.template == template)
}

/// Every kind `parse` knows, with a one-line description (`pveops parse --list`).
/// A `pveops parse` kind: its name, what it reads (for `--list`), and its parser as JSON.
/// Each is declared in the facts file of its command, beside the parser.
pub struct Kind {
    pub name: &'static str,
    pub what: &'static str,
    pub parse: fn(&str) -> Result<serde_json::Value, ParseError>,
}

/// Every `pveops parse` kind, in the order `--list` prints them.
pub const KINDS: &[Kind] = &[
    pvecm_status::PARSE,
    pvecm_nodes::PARSE,
    pvesm_status::PARSE,
    qm_list::PARSE,
    pct_list::PARSE,
    qm_config::PARSE,
    pct_config::PARSE,
    qm_status::PARSE,
    pct_status::PARSE,
    ha_manager_status::PARSE,
    pveversion::PARSE,
    pveversion::PARSE_V,
    upgrade_checklist::PARSE,
    corosync_cfgtool::PARSE,
    task_log::PARSE,
    pvesh::PARSE_CLUSTER_STATUS,
    pvesh::PARSE_CLUSTER_RESOURCES,
    pvesh::PARSE_NODES_STORAGE,
    pvesh::PARSE_HA_STATUS,
    systemctl_is_active::PARSE,
    zpool_status::PARSE,
    backup_list::PARSE,
    stderr::PARSE,
    apt_get::PARSE,
    apt_lists::PARSE,
    apt_log::PARSE,
    apt_policy::PARSE,
    dpkg_audit::PARSE,
    lslocks::PARSE,
    apt_cache_show::PARSE,
    df::PARSE,
    utc_offset::PARSE,
    uptime::PARSE,
    migrate_preflight::PARSE,
    storage_content::PARSE,
    ceph_status::PARSE,
    cluster_options::PARSE,
    ha_rules::PARSE,
    ha_groups::PARSE,
    ha_resources::PARSE,
    node_status::PARSE,
    node_rrddata::PARSE,
    disks_list::PARSE,
    tasks::PARSE,
    pvesr_status::PARSE,
    subscription::PARSE,
    cert_info::PARSE,
];

fn to_json<T: Serialize>(
    kind: &'static str,
    r: Result<T, ParseError>,
) -> Result<serde_json::Value, ParseError> {
    r.and_then(|v| {
        serde_json::to_value(v).map_err(|e| {
            ParseError::new(
                kind,
                0,
                "",
                format!("cannot represent the result as JSON: {e}"),
            )
        })
    })
}

/// Parses `text` as `kind` and returns its JSON. An unknown kind is an error with line 0.
pub fn parse(kind: &str, text: &str) -> Result<serde_json::Value, ParseError> {
    match KINDS.iter().find(|k| k.name == kind) {
        Some(k) => (k.parse)(text),
        None => Err(ParseError::new(
            "parse",
            0,
            kind,
            format!("unknown kind \"{kind}\" (pveops parse --list shows the kinds)"),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    /// Every catalog read renders from its embedded template with its variables, once each.
    #[test]
    fn every_read_has_its_template_and_one_place() {
        let templates = crate::command::Templates::load(None).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for r in READS {
            assert!(seen.insert(r.template), "{} is read twice", r.template);
            let mut vars = (r.vars)();
            if r.scope == Scope::Storage {
                vars = serde_json::json!({ "storage": "backup" });
            }
            let c = templates.render(r.template, &vars).unwrap();
            assert_eq!(c.name, r.template);
            assert!(read(r.template).is_some());
        }
    }

    /// Fixture file name prefix → kind. Longest prefixes first where they overlap.
    const FIXTURE_KINDS: &[(&str, &str)] = &[
        ("pvecm-status.", "pvecm-status"),
        ("corosync-quorumtool-p.", "pvecm-status"),
        ("pvecm-nodes.", "pvecm-nodes"),
        ("pvesm-status.", "pvesm-status"),
        ("pvesm-list.", "backup-list"),
        ("qm-list.", "qm-list"),
        ("pct-list.", "pct-list"),
        ("qm-config.", "qm-config"),
        ("pct-config.", "pct-config"),
        ("qm-status-verbose.", "qm-status"),
        ("qm-status.", "qm-status"),
        ("pct-status-verbose.", "pct-status"),
        ("pct-status.", "pct-status"),
        ("ha-manager-status.", "ha-manager-status"),
        ("pveversion-v.", "pveversion-v"),
        ("pveversion.", "pveversion"),
        ("pve8to9", "upgrade-checklist"),
        ("pve7to8", "upgrade-checklist"),
        ("pve6to7", "upgrade-checklist"),
        ("corosync-cfgtool-", "corosync-cfgtool"),
        ("qm-migrate.", "task-log"),
        ("pct-migrate.", "task-log"),
        ("qm-start.", "task-log"),
        ("qm-shutdown.", "task-log"),
        ("pct-start.", "task-log"),
        ("pvesh-get-cluster-status.json", "pvesh-cluster-status"),
        (
            "pvesh-get-cluster-resources.json",
            "pvesh-cluster-resources",
        ),
        ("pvesh-get-nodes-storage.json", "pvesh-nodes-storage"),
        ("pvesh-get-cluster-ha-status.json", "pvesh-ha-status"),
        ("systemctl-is-active.", "systemctl-is-active"),
        ("zpool-status-x.", "zpool-status"),
        ("apt-get-s-dist-upgrade.", "apt-simulate"),
        ("apt-lists-stamp.", "apt-lists-stamp"),
        ("apt-cache-policy.", "apt-policy"),
        ("apt-get-y-dist-upgrade.", "apt-upgrade-log"),
        ("dpkg-audit.", "dpkg-audit"),
        ("lslocks.", "lslocks"),
        ("apt-cache-show.", "apt-cache-show"),
        ("df.", "df"),
        ("date-z.", "utc-offset"),
        ("proc-uptime.", "uptime"),
        ("pvesh-get-migrate.", "migrate-preflight"),
        ("pvesh-get-cluster-ha-rules.json", "ha-rules"),
        ("pvesh-get-cluster-options.json", "cluster-options"),
        ("pvesh-get-cluster-ha-groups.json", "ha-groups"),
        ("pvesh-get-cluster-ha-resources.json", "ha-resources"),
        ("pvesh-get-storage-content.", "storage-content"),
        ("ceph-status.", "ceph-status"),
        ("pvesh-get-nodes-status.json", "node-status"),
        ("pvesh-get-nodes-rrddata.json", "node-rrddata"),
        ("pvesh-get-disks-list.json", "disks-list"),
        ("pvesh-get-nodes-tasks.json", "tasks"),
        ("pvesh-get-cluster-tasks.json", "tasks"),
        ("pvesr-status.", "pvesr-status"),
        ("pvesubscription-get.", "subscription"),
        ("pvenode-cert-info.json", "cert-info"),
    ];

    fn kind_for(name: &str) -> Option<&'static str> {
        // STDERR captures of pvesm are read as STDERR; pvecm and task STDERR go through their
        // own kind, which turns them into a state (no cluster, corosync down, failed task).
        if name.starts_with("pvesm-status.") && name.contains(".stderr") {
            return Some("pve-stderr");
        }
        FIXTURE_KINDS
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .map(|(_, k)| *k)
    }

    fn fixtures() -> Vec<(String, String)> {
        let dir =
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("tests/fixtures/pve");
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("tests/fixtures/pve exists")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let bytes = std::fs::read(&p).unwrap();
                (name, String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_fixture_matches_its_reviewed_snapshot() {
        let mut covered = 0;
        for (name, text) in fixtures() {
            let kind = kind_for(&name).unwrap_or_else(|| {
                panic!("{name}: no kind for this fixture; add its prefix to FIXTURE_KINDS")
            });
            let value = parse(kind, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let snap = name.trim_end_matches(".txt").to_owned();
            insta::with_settings!({
                snapshot_path => "snapshots",
                prepend_module_to_snapshot => false,
                info => &kind,
            }, {
                insta::assert_json_snapshot!(snap, value);
            });
            covered += 1;
        }
        assert!(covered >= 40, "only {covered} fixtures covered");
    }

    #[test]
    fn every_fixture_has_its_provenance() {
        for (name, _) in fixtures() {
            let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("tests/fixtures/pve")
                .join(name.replace(".txt", ".src"));
            assert!(src.exists(), "{name} has no .src");
        }
    }

    #[test]
    fn kinds_list_and_dispatch_agree() {
        for Kind {
            name: kind,
            what: desc,
            ..
        } in KINDS
        {
            assert!(!desc.is_empty());
            let e = parse(kind, "\u{1}garbage\u{1}\n").err();
            assert_ne!(
                e.map(|e| e.kind),
                Some("parse"),
                "{kind} is listed but not dispatched"
            );
        }
        for (_, kind) in FIXTURE_KINDS {
            assert!(KINDS.iter().any(|k| k.name == *kind), "{kind} not listed");
        }
    }

    #[test]
    fn unknown_kind_is_line_zero() {
        let e = parse("nope", "x").unwrap_err();
        assert_eq!(e.line, 0);
        assert_eq!(
            e.to_string(),
            "parse: cannot read the input: unknown kind \"nope\" (pveops parse --list shows the kinds)"
        );
    }

    #[test]
    fn display_is_one_sentence_with_kind_line_and_text() {
        let e = parse(
            "pvesm-status",
            "Name Type Status Total Used Available %\nlocal dir active x 1 1 1%\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "pvesm-status: line 2: cannot read \"local dir active x 1 1 1%\": the total size is not a number"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn stderr_fixtures_become_precise_states() {
        let all = fixtures();
        let get = |n: &str| {
            all.iter()
                .find(|(name, _)| name == n)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let s = pvecm_status::parse(&get("pvecm-status.no-cluster.stderr.txt")).unwrap();
        assert_eq!(s.state, "no-cluster");
        assert_eq!(
            s.error.as_deref(),
            Some("this node is not part of a cluster (/etc/pve/corosync.conf does not exist)")
        );
        let s = pvecm_status::parse(&get("pvecm-status.pmxcfs-down.stderr.txt")).unwrap();
        assert_eq!(s.state, "pmxcfs-down");
        let s =
            pvecm_status::parse(&get("pvecm-status.corosync-down.stderr.constructed.txt")).unwrap();
        assert_eq!(s.state, "corosync-down");
        // The stdout half alone (Cluster information, then nothing) says the same.
        let s = pvecm_status::parse(&get("pvecm-status.corosync-down.constructed.txt")).unwrap();
        assert_eq!(
            (s.state, s.cluster_name.as_deref(), s.quorate),
            ("corosync-down", Some("prod-cluster"), None)
        );
        let st = pvesm_status::parse_with_stderr(
            &get("pvesm-status.nfs-offline-notmounted.constructed.txt"),
            &get("pvesm-status.nfs-offline-notmounted.stderr.constructed.txt"),
        )
        .unwrap();
        let by = |n: &str| st.storages.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(
            by("backup-nas").error.as_deref(),
            Some("storage backup-nas is not online (its server does not answer)")
        );
        assert_eq!(
            by("usb-dump").error.as_deref(),
            Some("storage usb-dump is not mounted although it is configured as a mount point")
        );
        assert_eq!(by("local").error, None);
        let t = task_log::parse_with_stderr(
            "",
            &get("qm-start.already-running.stderr.constructed.txt"),
            Some(255),
        )
        .unwrap();
        assert_eq!(
            (t.outcome, t.error.as_deref()),
            ("error", Some("guest 100 is already running"))
        );
        let t = task_log::parse_with_stderr(
            "",
            &get("qm-shutdown.timeout.stderr.constructed.txt"),
            Some(255),
        )
        .unwrap();
        assert_eq!(
            t.error.as_deref(),
            Some("the guest did not shut down before the timeout")
        );
    }

    #[test]
    fn checklist_counts_agree_with_the_printed_summary() {
        for (name, text) in fixtures()
            .into_iter()
            .filter(|(n, _)| n.starts_with("pve8to9") || n.starts_with("pve7to8"))
        {
            let c = upgrade_checklist::parse(&text).unwrap();
            let n = |l: &str| c.results.iter().filter(|r| r.level == l).count() as u64;
            assert!(c.complete, "{name}");
            assert_eq!(n("PASS"), c.summary.passed, "{name}");
            assert_eq!(n("SKIP"), c.summary.skipped, "{name}");
            assert_eq!(n("WARN"), c.summary.warnings, "{name}");
            assert_eq!(n("FAIL"), c.summary.failures, "{name}");
            assert_eq!(n("NOTICE"), c.summary.notices, "{name}");
        }
    }

    #[test]
    fn locale_warnings_before_any_output_are_skipped() {
        let warn = "perl: warning: Setting locale failed.\nperl: warning: Please check that your locale settings:\n\tLANGUAGE = (unset),\n\tLC_ALL = (unset),\n\tLANG = \"en_US.UTF-8\"\n    are supported and installed on your system.\nperl: warning: Falling back to a fallback locale (\"en_US.UTF-8\").\n";
        let cases = [
            (
                "pvesm-status",
                "Name Type Status Total Used Available %\nlocal dir active 1 1 0 100.00%\n",
            ),
            (
                "qm-list",
                "VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID\n 100 a running 1 1.00 5\n",
            ),
            ("pct-list", "VMID Status Lock Name\n100 running  a\n"),
            ("qm-config", "name: a\n"),
            (
                "pveversion",
                "pve-manager/8.4.11/14a32011146091ed (running kernel: 6.8.12-8-pve)\n",
            ),
            (
                "pveversion-v",
                "proxmox-ve: 8.4.0 (running kernel: 6.8.12-8-pve)\n",
            ),
            ("ha-manager-status", "quorum OK\n"),
            (
                "pvecm-status",
                "Quorum information\nQuorate:          Yes\n",
            ),
            (
                "pvesh-cluster-status",
                "[{\"id\":\"node/a\",\"name\":\"a\",\"type\":\"node\"}]\n",
            ),
            ("systemctl-is-active", "active\n"),
            ("zpool-status", "all pools are healthy\n"),
        ];
        for (kind, body) in cases {
            let with =
                parse(kind, &format!("{warn}{body}")).unwrap_or_else(|e| panic!("{kind}: {e}"));
            let without = parse(kind, body).unwrap();
            // Only line numbers recorded in diagnostics may differ; these bodies have none.
            assert_eq!(with, without, "{kind}");
        }
    }

    #[test]
    fn every_fixture_truncated_at_every_line_never_panics() {
        for (_, text) in fixtures() {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for n in 0..=lines.len() {
                let prefix: String = lines.iter().take(n).copied().collect();
                for Kind { name: kind, .. } in KINDS {
                    let _ = parse(kind, &prefix);
                }
            }
        }
    }

    /// Inputs found by the cargo-fuzz targets (docs/fuzzing.md), minimised, one folder per
    /// kind: `tests/fixtures/fuzz/<kind>/<short-name>`. Each once panicked (or hung) in its
    /// parser; now it must parse to a value or to a ParseError of that kind with a reason and
    /// a line number inside the input.
    #[test]
    fn fuzz_regressions_parse_without_panic() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/fixtures/fuzz");
        let mut checked = 0;
        for dir in std::fs::read_dir(&root).expect("tests/fixtures/fuzz exists") {
            let dir = dir.unwrap().path();
            let kind = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                KINDS.iter().any(|k| k.name == kind),
                "tests/fixtures/fuzz/{kind} is not a kind"
            );
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().path();
                let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
                let started = std::time::Instant::now();
                let result = std::panic::catch_unwind(|| parse(&kind, &text));
                let name = file.display();
                let result = result.unwrap_or_else(|_| panic!("{name}: the parser panicked"));
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(5),
                    "{name}: took {:?}",
                    started.elapsed()
                );
                match result {
                    Ok(v) => assert!(v.is_object() || v.is_array(), "{name}: {v}"),
                    Err(e) => {
                        assert_eq!(e.kind, kind, "{name}");
                        assert!(!e.reason.is_empty(), "{name}");
                        assert!(e.line <= text.lines().count(), "{name}: {e}");
                    }
                }
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "no fuzz regression inputs under {}",
            root.display()
        );
    }

    fn pve_fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Quorum information".to_owned()),
            Just("Membership information".to_owned()),
            Just("    Nodeid      Votes    Qdevice Name".to_owned()),
            Just("0x00000000          0            Qdevice (votes 1)".to_owned()),
            Just("Name Type Status Total (KiB) Used (KiB) Available (KiB) %".to_owned()),
            Just("VMID NAME STATUS MEM(MB) BOOTDISK(GB) PID".to_owned()),
            Just("VMID Status Lock Name".to_owned()),
            Just("= SUMMARY =".to_owned()),
            Just("LINK ID 0 udp".to_owned()),
            Just("config:".to_owned()),
            Just("\tNAME STATE READ WRITE CKSUM".to_owned()),
            Just("Volid Format Type Size VMID".to_owned()),
            Just("full cluster state:".to_owned()),
            Just("perl: warning: Please check that your locale settings:".to_owned()),
            "[ \t]{0,3}[a-zA-Z0-9:()%,./_ -]{0,40}",
            "\\PC{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC*") {
            for Kind { name: kind, .. } in KINDS {
                let _ = parse(kind, &s);
            }
        }

        #[test]
        fn pve_like_line_soup_never_panics(lines in prop::collection::vec(pve_fragment(), 0..24)) {
            let text = lines.join("\n");
            for Kind { name: kind, .. } in KINDS {
                let _ = parse(kind, &text);
            }
        }
    }
}
