//! pveops: assess, plan, execute, verify and record Proxmox VE maintenance from a jump host,
//! over nothing but SSH. See ARCHITECTURE.md for the map of the code.

pub mod atomic;
pub mod cli;
pub mod command;
pub mod error;
pub mod exec;
pub mod facts;
pub mod fleet;
pub mod inventory;
pub mod keys;
pub mod known_hosts;
pub mod lab;
pub mod output;
pub mod progress;
pub mod session;
pub mod ssh_config;
pub mod stream;
pub mod subcommand;
pub mod target;

pub use error::{Error, NodeError};

/// Runs pveops with these arguments and returns the process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.global.verbose);
    match subcommand::dispatch(cli) {
        Ok(code) => code,
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        .with_target(false)
        .without_time()
        .try_init();
}
