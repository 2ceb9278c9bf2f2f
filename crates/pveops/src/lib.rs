//! pveops: assess, plan, execute, verify and record Proxmox VE maintenance from a jump host,
//! over nothing but SSH. See ARCHITECTURE.md for the map of the code.

pub mod adhoc;
pub mod atomic;
pub mod batch;
pub mod changelog;
pub mod cli;
pub mod collect;
pub mod discover;
pub mod evidence;
pub mod executor;
pub mod fleet;
pub mod inventory;
pub mod keys;
pub mod known_hosts;
pub mod operation;
pub mod progress;
pub mod session;
pub mod signals;
pub mod ssh_config;
pub mod stream;
pub mod subcommand;
pub mod target;

pub mod journal;

// The pure part lives in pveops-core; its modules keep their paths here (`pveops::facts`).
pub use pveops_core::{
    Error, NodeError, check, command, diff, error, facts, finding, input, markdown, monitoring,
    output, plan, report, snapshot, units,
};

/// Runs pveops with these arguments and returns the process exit status.
/// The exit status of an operation the operator declined at its confirmation prompt: nothing
/// was changed, yet the change asked for did not happen (not 0, so `pveops drain … && next`
/// stops; outside the Nagios range 0–3 and the usage error 64).
pub const EXIT_DECLINED: i32 = 4;

pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.global.verbose);
    if cli.command.ends_quietly_on_closed_stdout() {
        // Rust ignores SIGPIPE, so `pveops completions bash | head -1` would panic on the
        // closed pipe; a command that only reads and prints ends as any filter does. Operations
        // and the lab keep ignoring it (an operation records its end; the lab serves shells).
        // Sockets are not concerned: std writes them with MSG_NOSIGNAL.
        // SAFETY: setting a signal's disposition to the default before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match subcommand::dispatch(cli) {
        Ok(code) => code,
        // The operation said what happened and what to do next; those stay the last lines.
        Err(Error::Signal(s)) => s.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,russh=error",
        1 => "info,russh=warn",
        _ => "debug,russh=info",
    };
    let filter = EnvFilter::try_from_env("PVEOPS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // tracing-subscriber colours by default; only a terminal gets colour, and never with
    // NO_COLOR set (no-color.org).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(progress::LogWriter)
        .with_target(false)
        .without_time()
        .try_init();
}
