//! The command line (clap): the only module that knows clap. Options shared by every command
//! that reaches nodes are global, so they are accepted before or after the command name.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

const AFTER_HELP: &str = "\
Targets are [user@]host[:port] (IPv6 as [addr]:port), OpenSSH config aliases, or node and group
names of the inventory (-I). Settings come from, in order: the target as typed, these options,
the inventory node, the inventory [defaults], the ssh config, built-in defaults (user root,
port 22, keys from ssh-agent then ~/.ssh/id_ed25519, id_ecdsa, id_rsa).

Exit status: 0 OK, 1 WARNING, 2 CRITICAL (a node failed or was unreachable), 3 UNKNOWN,
4 declined at the prompt (nothing changed), 64 usage error, 130 interrupted.";

/// Assess, plan, execute, verify and record Proxmox VE maintenance over plain SSH.
/// The help heading of the options that reach nodes.
pub const SSH_HEADING: &str = "Targets and SSH";
/// The help heading of the options that choose what is written and printed.
pub const OUTPUT_HEADING: &str = "Output";

/// Commands that never reach a node: their help leaves out the connection options (still
/// accepted, since those are global and may stand anywhere on the line).
const OFFLINE: &[&str] = &["lab", "parse", "diff", "checks", "demo", "completions"];

/// Why parsing stopped short of a command: clap's own message (usage error, `--version`, help)
/// or the help of an offline command.
#[derive(Debug)]
pub enum Stop {
    Clap(clap::Error),
    Help(clap::builder::StyledStr),
}

impl Stop {
    /// True for a usage error (exit 64, on stderr); help and version go to stdout.
    pub fn use_stderr(&self) -> bool {
        match self {
            Stop::Clap(e) => e.use_stderr(),
            Stop::Help(_) => false,
        }
    }

    /// Prints the message where it belongs, styled only on a terminal.
    pub fn print(&self) -> std::io::Result<()> {
        use std::io::{IsTerminal, Write};
        match self {
            Stop::Clap(e) => e.print(),
            Stop::Help(help) => {
                let mut out = std::io::stdout().lock();
                if out.is_terminal() {
                    write!(out, "{}", help.ansi())
                } else {
                    write!(out, "{help}")
                }
            }
        }
    }
}

/// Parses the command line (`--help` and `--version` come back as a [`Stop`] to print).
pub fn parse<I, T>(args: I) -> Result<Cli, Stop>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    match Cli::try_parse_from(&args) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Err(offline_help(&args).map_or(Stop::Clap(e), Stop::Help))
        }
        parsed => parsed.map_err(Stop::Clap),
    }
}

/// The help of an offline command without the connection options, or `None` when `args`
/// asked for another command's help. The command is the first word naming one
/// (`pveops lab --help`, `pveops help lab`, `pveops -v diff -h`).
fn offline_help(args: &[std::ffi::OsString]) -> Option<clap::builder::StyledStr> {
    let mut cli = Cli::command();
    cli.build();
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let name = words
        .iter()
        .find(|w| **w != "help" && cli.get_subcommands().any(|c| c.get_name() == **w))?;
    if !OFFLINE.contains(name) {
        return None;
    }
    let mut sub = cli.find_subcommand(name)?.clone();
    // The connection options are the global ones under the SSH heading.
    let connection: Vec<clap::Id> = sub
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_help_heading() == Some(SSH_HEADING))
        .map(|a| a.get_id().clone())
        .collect();
    for id in connection {
        sub = sub.mut_arg(id, |a| a.hide(true));
    }
    let mut sub = sub.bin_name(format!("pveops {name}"));
    let short = words.contains(&"-h") && !words.contains(&"--help");
    Some(if short {
        sub.render_help()
    } else {
        sub.render_long_help()
    })
}

#[derive(Debug, Parser)]
#[command(name = "pveops", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Connection options, accepted anywhere on the command line.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML inventory of nodes and groups
    #[arg(
        short = 'I',
        long,
        global = true,
        help_heading = SSH_HEADING,
        value_name = "FILE",
        env = "PVEOPS_INVENTORY"
    )]
    pub inventory: Option<PathBuf>,
    /// OpenSSH client config to read [default: ~/.ssh/config]
    #[arg(
        short = 'F',
        long = "ssh-config",
        global = true,
        help_heading = SSH_HEADING,
        value_name = "FILE"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Login user for targets that do not name one [default: root]
    #[arg(
        short = 'l',
        long,
        global = true,
        help_heading = SSH_HEADING,
        value_name = "USER"
    )]
    pub user: Option<String>,
    /// SSH port for targets that do not name one [default: 22]
    #[arg(short = 'p', long, global = true, help_heading = SSH_HEADING, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Private key file, as `ssh -i` (repeatable); encrypted keys read PVEOPS_KEY_PASSPHRASE or ask on the terminal
    #[arg(
        short = 'i',
        long = "identity",
        global = true,
        help_heading = SSH_HEADING,
        value_name = "FILE"
    )]
    pub identities: Vec<PathBuf>,
    /// known_hosts file to verify against and, with accept-new, to append to [default: ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts]
    #[arg(
        long = "known-hosts",
        global = true,
        help_heading = SSH_HEADING,
        value_name = "FILE"
    )]
    pub known_hosts: Option<PathBuf>,
    /// Unknown host keys: `strict` refuses them, `accept-new` records them; a changed key is always refused [default: strict]
    #[arg(
        long = "host-keys",
        global = true,
        help_heading = SSH_HEADING,
        value_enum,
        value_name = "POLICY"
    )]
    pub host_keys: Option<HostKeys>,
    /// Connect through this bastion, as `ssh -J` ([user@]host[:port], comma-separated for a chain)
    #[arg(
        short = 'J',
        long,
        global = true,
        help_heading = SSH_HEADING,
        value_name = "[USER@]HOST[:PORT]"
    )]
    pub jump: Option<String>,
    /// Seconds allowed for connecting, the SSH handshake and authentication
    #[arg(long = "connect-timeout", global = true, help_heading = SSH_HEADING, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
    /// Seconds a remote command may run; past it, it is killed on the node too
    #[arg(long = "command-timeout", global = true, help_heading = SSH_HEADING, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub command_timeout: u64,
    /// Nodes worked on at once (one connection each)
    #[arg(long, global = true, help_heading = SSH_HEADING, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub parallel: u64,
    /// Expand the first reachable target into every member of its cluster (addresses from /cluster/status, host keys also checked against the cluster's /etc/pve/priv/known_hosts)
    #[arg(long, global = true, help_heading = SSH_HEADING)]
    pub discover: bool,
    /// Run every remote command through `sudo -n` (for a non-root login)
    #[arg(long, global = true, help_heading = SSH_HEADING)]
    pub sudo: bool,
    /// Directory of templates overriding the embedded ones (`commands/*.hbs`)
    #[arg(long, global = true, help_heading = SSH_HEADING, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug); PVEOPS_LOG takes a tracing filter
    #[arg(short, long, global = true, help_heading = OUTPUT_HEADING, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The help shared by the operations, then the operation's own examples.
macro_rules! ops_help {
    ($examples:literal) => {
        concat!(
            "\
Every operation follows assess -> plan -> execute -> verify -> record: a before-snapshot, the
gates (quorate and still quorate without the node, targets online and not in maintenance, no
HA service in error, migrate preflight, free memory, a recent backup of every guest touched),
the plan with the exact commands and their undo (printed, and written as runbook.md), one step
at a time verified by polling the cluster, an after-snapshot and its diff, the report and the
change log. The cluster is reached through --targets, or every node of the inventory (-I).

On a terminal the plan is confirmed interactively; without one, --yes is required. --dry-run
stops after the plan. Exit status: 0 every step verified, 1 a new warning appeared, 2 a gate
refused or a step failed or something regressed, 4 declined at the prompt (nothing changed),
64 usage, 130 interrupted (the journal says
what was done; a migration already started goes on on the node).

Examples:
",
            $examples
        )
    };
}

const UPDATE_HELP: &str = "\
First `apt-get update` runs on every node (a change to the package lists only, journaled; skip
it with --no-refresh), then the cluster is assessed and the plan shows, per node, every package
and version apt will change and whether a reboot follows (yes: a new kernel, or one already due;
if-needed: decided after the upgrade by /run/reboot-required or a kernel newer than the running
one). A node with nothing to install is skipped. Besides the gates of `reboot`: no process holds
dpkg's lock, `dpkg --audit` is clean, every node uses the same repositories (a mix of Proxmox
channels is a warning).

Per node: drain, `apt-get -y dist-upgrade` run detached (a dropped SSH session does not kill
dpkg; its exit status and log are kept on the node and copied to raw/), the reboot when needed
(verified by boot id), then pveversion -v must show the new versions, nothing may be left to
install, the node quorate with its services active; then its guests come back. A failed upgrade
stops the rollout there: that node stays drained, the nodes after it are untouched. There is no
automatic downgrade; the runbook lists the previous versions.

Exit status as for every operation: 0 every step verified, 1 a new warning, 2 refused or failed,
4 declined at the prompt, 64 usage, 130 interrupted.

Examples:
  pveops update -I cluster.toml pve1 pve2 pve3 --dry-run
  pveops update -I cluster.toml pve1 pve2 pve3 --yes \\
      --window \"2026-12-06 22:00/3h\"
  pveops plan update -I cluster.toml pve2";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot every target (read-only), run the health checks, write the evidence bundle
    #[command(after_help = "\
Runs the read-only command catalog on every target (one SSH connection each; on the node the
commands run at once, each under its own timeout), reads cluster-wide facts once, runs the
checks (`pveops checks`), prints a summary on stderr and writes the evidence bundle: report.md,
snapshot.json and raw/<node>/...

Examples:
  pveops assess -I inventory.toml prod
  pveops assess root@10.0.0.11 root@10.0.0.12 --out /srv/evidence/pre-upgrade
  pveops assess --from pveops-evidence/20261127T030000Z-assess/snapshot.json
  pveops assess -I inventory.toml prod --json > snapshot.json
  pveops assess -I inventory.toml prod --format nagios   # an NRPE/Icinga check
  pveops assess -I inventory.toml prod --prom-file /srv/prom/pveops.prom

Exit status: the worst finding: 0 OK, 1 WARNING, 2 CRITICAL (an unreachable node is critical),
3 UNKNOWN (no target reachable, or output that could not be read); 64 usage error.")]
    #[command(display_order = 1)]
    Assess(AssessArgs),
    /// Write a snapshot (JSON) of the targets and nothing else
    #[command(after_help = "\
The same read as `assess`, without checks, report or raw outputs: the before-image for `verify`
or `diff`.

Examples:
  pveops snapshot -I inventory.toml prod -o before.json
  pveops snapshot root@10.0.0.11 -o pve1.json")]
    #[command(display_order = 10)]
    Snapshot(SnapshotArgs),
    /// Typed differences between two snapshots; exit 2 if anything regressed
    #[command(after_help = "\
Markdown on stdout, or with --json: {\"differences\": [{\"kind\", \"node\", \"subject\", \"before\",
\"after\", \"regression\"}]}. Kinds: node-reachable, quorum, node-rebooted, kernel, package,
service, storage-state, storage-usage (a jump of 10 points or more), storage-vanished,
guest-moved, guest-started, guest-stopped, guest-locked, guest-unlocked, guest-appeared,
guest-vanished, finding-new, finding-resolved.

Examples:
  pveops diff before.json after.json
  cd pveops-evidence/*-drain-pve1 && pveops diff before.json after.json --json

Exit status: 2 when a difference is a regression, else 0.")]
    #[command(display_order = 11)]
    Diff(DiffArgs),
    /// Take an after-snapshot, diff it against BEFORE and run the checks: the post-upgrade check
    #[command(after_help = "\
Examples:
  pveops snapshot -I inventory.toml prod -o before.json
  ... upgrade ...
  pveops verify -I inventory.toml prod --against before.json

What the baseline read is read again (with --upgrade-checklist when it ran the upgrade
checker). Each finding is new, unchanged or resolved by its check, node and subject; the
unchanged ones are listed, not counted against the change.

Exit status (the same as the Outcome line): 2 a regression or a new critical finding, 1 a new
warning, 3 no node answered (or a new UNKNOWN finding), else 0.")]
    #[command(display_order = 8)]
    Verify(VerifyArgs),
    /// List the checks in force with their ids, severities and thresholds
    #[command(after_help = "\
The embedded checks (checks/*.toml in the source), overridden or extended by the files of
--checks DIR (same id: replaced; `enabled = false`: switched off).

Examples:
  pveops checks
  pveops checks --checks /etc/pveops/checks")]
    #[command(display_order = 13)]
    Checks(ChecksArgs),
    /// Run an ad-hoc command on every target in parallel
    #[command(after_help = "\
The COMMAND words are joined with spaces and run by each node's login shell, as `ssh host
COMMAND...` does, under `timeout` (--command-timeout) and with LC_ALL=C.UTF-8.

Examples:
  pveops exec pve1 pve2 pve3 -- pveversion
  pveops exec -I inventory.toml prod -- 'pvecm status | grep -i quorate'
  pveops exec --json root@10.0.0.11 -- qm list

Exit status: 0 when every node ran the command with exit 0, else 2; 64 on usage errors.")]
    #[command(display_order = 12)]
    Exec(ExecArgs),
    /// Parse captured output of one PVE command and print it as JSON
    #[command(after_help = "\
Reads FILE, or standard input without one, and prints one JSON document (pretty when stdout is
a terminal). Output it cannot read exits 3 with one line naming the kind, the line number and
the offending line. `pveops parse --list` lists the kinds.

Examples:
  ssh root@pve1 pvecm status | pveops parse pvecm-status
  pveops parse pvesm-status captured/pvesm-status.txt")]
    #[command(display_order = 14)]
    Parse(ParseArgs),
    /// Run a simulated PVE cluster on loopback over real SSH (for rehearsal, demos and tests)
    #[command(after_help = "\
Each node is an SSH server on its own loopback address (from --listen, one address per node)
and --ssh-port, running every command line through /bin/sh with simulated PVE tools first on PATH.
The state dir receives state.json (the cluster, editable), inventory.toml, known_hosts,
id_ed25519 (the client key), hostkeys/ (stable across restarts) and commands.jsonl (every
simulated command each node ran). Runs until Ctrl-C.

Examples:
  pveops lab                       # healthy 3-node cluster in ./pveops-lab
  pveops lab --scenario degraded-3node
  pveops lab --nodes 50 --state-dir /tmp/fleet
  pveops exec -I pveops-lab/inventory.toml lab -- pvecm status
  cd pveops-lab && ssh -i id_ed25519 -o UserKnownHostsFile=known_hosts \\
      -p 2222 root@127.0.10.1 pvecm status")]
    #[command(display_order = 15)]
    Lab(LabArgs),
    /// Start a lab and run the main job against it: the whole of pveops on this machine, no cluster needed
    #[command(after_help = "\
Starts a simulated cluster (`pveops lab`) in the background on loopback, then runs the main job
against it over real SSH exactly as against a real cluster: assess, drain a node, verify
against the assessment, restore the drain from its journal. Evidence goes under
./pveops-evidence/<time>-demo/, the change log to ./pveops-changelog.md; the lab's state, keys
and command log stay in --state-dir for a look afterwards.
Exit status: 0 when the demo ran (the assessment's own status is in its report), else 3.")]
    #[command(display_order = 16)]
    Demo(DemoArgs),
    /// Migrate one guest to a node: assess, plan, confirm, migrate, verify, record
    #[command(after_help = ops_help!("  pveops migrate 100 --to pve2 -I cluster.toml --dry-run
  pveops migrate 100 --to pve2 -I cluster.toml --yes
  pveops migrate 104 --to pve3 --targets root@10.0.0.11 --discover \\
      --with-local-disks"))]
    #[command(display_order = 3)]
    Migrate(MigrateArgs),
    /// Move every running guest off a node (HA guests through HA node maintenance)
    #[command(after_help = ops_help!("  pveops drain pve1 -I cluster.toml --dry-run
  pveops drain pve1 -I cluster.toml --to pve2,pve3 --yes \\
      --window \"2026-12-06 22:00/2h\"
  pveops drain pve1 -I cluster.toml --max-migrations 3 --yes
  pveops restore -I cluster.toml \\
      --journal pveops-evidence/20261206T220000Z-drain-pve1/journal.jsonl"))]
    #[command(display_order = 4)]
    Drain(DrainArgs),
    /// HA node maintenance: enter (HA moves the node's HA guests away) or exit (they come back)
    #[command(after_help = ops_help!("  pveops maintenance enter pve2 -I cluster.toml --yes
  pveops maintenance exit pve2 -I cluster.toml --yes"))]
    #[command(display_order = 5)]
    Maintenance(MaintenanceArgs),
    /// Rolling reboot: per node drain, reboot, wait until really back, bring its guests back
    #[command(after_help = ops_help!("  pveops reboot pve1 pve2 pve3 -I cluster.toml --dry-run
  pveops reboot pve1 pve2 pve3 -I cluster.toml --yes --reboot-timeout 1200"))]
    #[command(display_order = 6)]
    Reboot(RebootArgs),
    /// Rolling package update: per node apt-get update, drain, dist-upgrade, reboot when needed, verify, guests back
    #[command(after_help = UPDATE_HELP)]
    #[command(display_order = 7)]
    Update(UpdateArgs),
    /// Undo what an operation's journal recorded: wait for steps in flight, move guests back, leave maintenance
    #[command(after_help = ops_help!("  pveops restore -I cluster.toml \\
      --journal pveops-evidence/20261206T220000Z-drain-pve1/journal.jsonl
  pveops restore --journal journal.jsonl --targets root@10.0.0.11 \\
      --discover --yes"))]
    #[command(display_order = 9)]
    Restore(RestoreArgs),
    /// Assess, then write the runbook of an operation without changing anything
    #[command(subcommand)]
    #[command(after_help = "\
The same arguments as the operation; the runbook (window, affected guests, success criteria,
backup readiness, steps with their commands, rollback) is printed and written as runbook.md in
the evidence directory. Exit status: 0 the plan passes its gates, 2 a gate refuses.

Examples:
  pveops plan drain pve1 -I cluster.toml
  pveops plan reboot pve1 pve2 pve3 -I cluster.toml \\
      --window \"2026-12-06 22:00/3h\"
  pveops plan migrate 100 --to pve2 --targets root@10.0.0.11 --discover")]
    #[command(display_order = 2)]
    Plan(PlanCommand),
    /// Print shell completions
    #[command(after_help = "\
Examples:
  pveops completions bash > /etc/bash_completion.d/pveops
  pveops completions zsh > \"${fpath[1]}/_pveops\"")]
    #[command(display_order = 17)]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Commands that only read and print: a closed stdout (`| head`) ends them quietly, as it
    /// ends any filter. Operations record their own end and the lab serves shells, so they do
    /// not.
    pub fn ends_quietly_on_closed_stdout(&self) -> bool {
        matches!(
            self,
            Command::Assess(_)
                | Command::Snapshot(_)
                | Command::Diff(_)
                | Command::Verify(_)
                | Command::Checks(_)
                | Command::Exec(_)
                | Command::Parse(_)
                | Command::Plan(_)
                | Command::Completions { .. }
        )
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Nodes to run on: [user@]host[:port], ssh config aliases, inventory nodes or groups
    #[arg(required = true, value_name = "TARGETS")]
    pub targets: Vec<String>,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Print one JSON array on stdout (node, stdout, stderr, exit_code, signal, duration_ms, error)
    #[arg(long, help_heading = OUTPUT_HEADING)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The kind of output (see --list)
    #[arg(required_unless_present = "list", value_name = "KIND")]
    pub kind: Option<String>,
    /// File with the captured output [default: standard input]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// List the kinds and what each parses
    #[arg(long, conflicts_with = "kind")]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// A built-in scenario (healthy-3node, degraded-3node, noquorum-3node, ha-5node, fleet-50,
    /// updates-4node, pve9-3node, hyperconverged-3node) or a JSON file
    #[arg(long, value_name = "NAME|FILE", conflicts_with = "nodes")]
    pub scenario: Option<String>,
    /// A healthy cluster of N nodes
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    pub nodes: Option<u32>,
    /// Address of the first node; the next nodes take the next addresses (loopback only)
    #[arg(long, value_name = "ADDR", default_value = "127.0.10.1")]
    pub listen: std::net::Ipv4Addr,
    /// SSH port of every node
    #[arg(long = "ssh-port", value_name = "PORT", default_value_t = 2222)]
    pub ssh_port: u16,
    /// Where the state, keys, inventory and command log are kept
    #[arg(long, value_name = "DIR", default_value = "pveops-lab")]
    pub state_dir: PathBuf,
    /// Print a built-in scenario as JSON and exit
    #[arg(long, value_name = "NAME")]
    pub dump_scenario: Option<String>,
}

#[derive(Debug, Args)]
pub struct AssessArgs {
    /// Nodes to assess: [user@]host[:port], ssh config aliases, inventory nodes or groups
    #[arg(value_name = "TARGETS", required_unless_present = "from")]
    pub targets: Vec<String>,
    /// Evidence directory [default: ./pveops-evidence/<UTC time>-assess[-<target>]/]
    #[arg(long, short = 'o', value_name = "DIR", help_heading = OUTPUT_HEADING)]
    pub out: Option<PathBuf>,
    /// Print the snapshot document (JSON) on stdout (the same as --format json)
    #[arg(long, help_heading = OUTPUT_HEADING)]
    pub json: bool,
    /// What stdout gets: nothing (text: the summary goes to stderr), the snapshot document (json), one Nagios/Icinga plugin status line with perfdata and the findings (nagios), or the Prometheus text format (prometheus). nagios and prometheus write no evidence unless --out is given
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text", help_heading = OUTPUT_HEADING)]
    pub format: Format,
    /// Also write the Prometheus text format to FILE, replaced atomically (for node_exporter's textfile collector)
    #[arg(long, value_name = "FILE", help_heading = OUTPUT_HEADING)]
    pub prom_file: Option<PathBuf>,
    /// Directory of check files overriding or extending the embedded checks
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    /// Re-run the checks on a saved snapshot, without SSH
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "targets")]
    pub from: Option<PathBuf>,
    /// Run only these catalog commands (comma-separated template names), e.g. for benchmarks
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Also run the node's upgrade checker (pve8to9 --full, or pve7to8): each WARN/FAIL becomes an `upgrade.checklist` finding
    #[arg(long)]
    pub upgrade_checklist: bool,
}

/// `--host-keys`: the command line's words for `known_hosts::Policy` (the core knows no clap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKeys {
    /// Refuse unknown and changed keys
    Strict,
    /// Record a never-seen key, refuse a changed one
    AcceptNew,
}

impl From<HostKeys> for crate::known_hosts::Policy {
    fn from(h: HostKeys) -> Self {
        match h {
            HostKeys::Strict => crate::known_hosts::Policy::Strict,
            HostKeys::AcceptNew => crate::known_hosts::Policy::AcceptNew,
        }
    }
}

/// What `assess` prints on stdout (docs/monitoring.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The summary table on stderr; stdout only gets the snapshot with --json
    Text,
    /// The snapshot document on stdout (the same as --json)
    Json,
    /// The Nagios plugin format: status line | perfdata, then one line per finding
    Nagios,
    /// The Prometheus text exposition format (node_exporter textfile collector)
    Prometheus,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Nodes to snapshot
    #[arg(required = true, value_name = "TARGETS")]
    pub targets: Vec<String>,
    /// The snapshot file to write
    #[arg(long, short = 'o', value_name = "FILE", help_heading = OUTPUT_HEADING)]
    pub output: PathBuf,
    /// Directory of check files overriding or extending the embedded checks
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    /// Directory of check files overriding or extending the embedded checks
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    /// Print the checks as JSON
    #[arg(long, help_heading = OUTPUT_HEADING)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The lab scenario to run against
    #[arg(long, value_name = "NAME|FILE", default_value = "degraded-3node")]
    pub scenario: String,
    /// Where the lab keeps its state, keys and command log
    #[arg(long, value_name = "DIR", default_value = "pveops-demo-lab")]
    pub state_dir: PathBuf,
    /// Address of the first lab node
    #[arg(long, value_name = "ADDR", default_value = "127.0.10.1")]
    pub listen: std::net::Ipv4Addr,
    /// The node the demo drains and restores
    #[arg(long, value_name = "NODE", default_value = "pve3")]
    pub drain: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier snapshot
    #[arg(value_name = "BEFORE.json")]
    pub before: PathBuf,
    /// The later snapshot
    #[arg(value_name = "AFTER.json")]
    pub after: PathBuf,
    /// Print {"differences": [...]} as JSON
    #[arg(long, help_heading = OUTPUT_HEADING)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Nodes to verify
    #[arg(required = true, value_name = "TARGETS")]
    pub targets: Vec<String>,
    /// The snapshot taken before the change
    #[arg(long, value_name = "BEFORE.json")]
    pub against: PathBuf,
    /// Evidence directory [default: ./pveops-evidence/<UTC time>-verify[-<target>]/]
    #[arg(long, short = 'o', value_name = "DIR", help_heading = OUTPUT_HEADING)]
    pub out: Option<PathBuf>,
    /// Print {"differences": [...], "findings": {"new", "unchanged", "resolved"}, "snapshot": {...}} as JSON
    #[arg(long, help_heading = OUTPUT_HEADING)]
    pub json: bool,
    /// Directory of check files overriding or extending the embedded checks
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    /// Also run the node's upgrade checker (pve8to9 --full, or pve7to8); implied when the baseline ran it
    #[arg(long)]
    pub upgrade_checklist: bool,
}

/// Options shared by the operations.
#[derive(Debug, Args)]
pub struct OpArgs {
    /// The nodes to reach the cluster through (comma-separated targets) [default: every node of the inventory]
    #[arg(long, value_name = "T1,T2", value_delimiter = ',', help_heading = SSH_HEADING)]
    pub targets: Vec<String>,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the plan and the runbook, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Evidence directory [default: ./pveops-evidence/<UTC time>-<operation>-<node>/]
    #[arg(long, short = 'o', value_name = "DIR", help_heading = OUTPUT_HEADING)]
    pub out: Option<PathBuf>,
    /// The change log to append to (and FILE.jsonl)
    #[arg(long, value_name = "FILE", default_value = "pveops-changelog.md", help_heading = OUTPUT_HEADING)]
    pub changelog: PathBuf,
    /// Do not require a recent backup of every guest the operation touches
    #[arg(long)]
    pub no_backup_gate: bool,
    /// The age a backup may have, in hours (or with a unit: 36h, 7d)
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = parse_hours)]
    pub backup_max_age: f64,
    /// Allow migrating VMs with disks on local storage (qm migrate --with-local-disks)
    #[arg(long)]
    pub with_local_disks: bool,
    /// Seconds a migration step may take until it is verified
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub migrate_timeout: u64,
    /// Migrations run at once while draining, in waves, each wave verified before the next [default: max_workers of /etc/pve/datacenter.cfg, else 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_migrations: Option<u32>,
    /// The maintenance window, local time: "YYYY-MM-DD HH:MM/2h"; outside it the operation refuses
    #[arg(long, value_name = "START/DURATION")]
    pub window: Option<String>,
    /// Go ahead outside the maintenance window
    #[arg(long)]
    pub force_window: bool,
    /// Seconds a rebooted node may take to come back (new boot id, SSH, quorate, services)
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub reboot_timeout: u64,
    /// Directory of check files overriding or extending the embedded checks
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
}

fn parse_hours(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 24.0),
        Some('h') => (&s[..s.len() - 1], 1.0),
        _ => (s, 1.0),
    };
    num.parse::<f64>()
        .map(|n| n * mult)
        .map_err(|_| format!("`{s}` is not an age such as 36, 36h or 7d"))
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The guest's VMID
    pub vmid: u64,
    /// The node to move it to (target name or PVE node name)
    #[arg(long, value_name = "NODE")]
    pub to: String,
    #[command(flatten)]
    pub op: OpArgs,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The node to drain (target name or PVE node name)
    pub node: String,
    /// Only move guests to these nodes [default: by free memory]
    #[arg(long, value_name = "NODES", value_delimiter = ',')]
    pub to: Vec<String>,
    /// Move HA guests with HA migration requests instead of HA node maintenance
    #[arg(long)]
    pub no_ha_maintenance: bool,
    /// Also move the stopped guests (offline migration), e.g. before the node is reinstalled; by default they stay
    #[arg(long)]
    pub include_stopped: bool,
    #[command(flatten)]
    pub op: OpArgs,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// enter or exit
    #[arg(value_parser = ["enter", "exit"])]
    pub action: String,
    /// The node (target name or PVE node name)
    pub node: String,
    #[command(flatten)]
    pub op: OpArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The journal.jsonl of the operation to undo
    #[arg(long, value_name = "FILE")]
    pub journal: PathBuf,
    #[command(flatten)]
    pub op: OpArgs,
}

#[derive(Debug, Args)]
pub struct RebootArgs {
    /// The nodes to reboot, one after the other (target names or PVE node names)
    #[arg(required = true, value_name = "NODES")]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub op: OpArgs,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The nodes to update, one after the other (target names or PVE node names)
    #[arg(required = true, value_name = "NODES")]
    pub nodes: Vec<String>,
    /// Do not run `apt-get update` first: plan on the package lists as they are
    #[arg(long)]
    pub no_refresh: bool,
    /// Seconds `apt-get -y dist-upgrade` may take on one node until it is verified
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub upgrade_timeout: u64,
    #[command(flatten)]
    pub op: OpArgs,
}

/// `pveops plan OPERATION …`: the same arguments as the operation itself.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Plan a migration
    Migrate(MigrateArgs),
    /// Plan a drain
    Drain(DrainArgs),
    /// Plan HA node maintenance
    Maintenance(MaintenanceArgs),
    /// Plan a rolling reboot
    Reboot(RebootArgs),
    /// Plan a rolling package update (runs `apt-get update` first, a change to the lists only)
    Update(UpdateArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every example (an indented line) of every command's help fits 80 columns, so clap never
    /// wraps an example command onto a second line on an 80-column terminal (a copied example
    /// must run as is); prose may wrap.
    #[test]
    fn help_lines_fit_80_columns() {
        fn walk(cmd: &clap::Command, path: &str, long: &mut Vec<String>) {
            for text in [cmd.get_after_help(), cmd.get_after_long_help()]
                .into_iter()
                .flatten()
            {
                for line in text.to_string().lines() {
                    if line.starts_with("  ") && line.chars().count() > 80 {
                        long.push(format!("{path}: {line}"));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), long);
            }
        }
        let mut long = Vec::new();
        walk(&super::Cli::command(), "pveops", &mut long);
        assert!(
            long.is_empty(),
            "lines over 80 columns:\n{}",
            long.join("\n")
        );
    }

    /// `lab --help` names every built-in scenario.
    #[test]
    fn lab_help_lists_every_scenario() {
        let mut cmd = super::Cli::command();
        let lab = cmd.find_subcommand_mut("lab").expect("lab");
        let help = lab.render_long_help().to_string();
        for name in pveops_lab::scenario::NAMES {
            assert!(
                help.contains(name),
                "{name} missing from lab --help:\n{help}"
            );
        }
    }
}
