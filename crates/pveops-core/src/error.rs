//! Errors: `Error` stops a whole run (bad usage, unreadable files); `NodeError` concerns one
//! node and never stops the others. Each displays as one sentence saying what failed, where,
//! and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure of the run as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments, unknown target names, a change asked for without a TTY or `--yes`.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// A file pveops reads (inventory, ssh_config, key) is malformed.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A command template is missing, malformed or failed to render.
    #[error("command template `{name}`: {message}")]
    Template { name: String, message: String },
    /// The run was interrupted.
    #[error("interrupted")]
    Interrupted,
    /// An operation ended by a signal (SIGINT, SIGTERM, SIGHUP), after recording it.
    #[error("interrupted by {}", .0.name())]
    Signal(Sig),
}

impl Error {
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub fn file(path: &Path, message: impl Into<String>) -> Error {
        Error::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// Exit status per PRODUCT.md: 64 for usage, 130 when interrupted, else 3 (UNKNOWN).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Interrupted => 130,
            Error::Signal(s) => s.exit_code(),
            _ => 3,
        }
    }
}

/// The phase of a connection, for timeout messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Banner,
    KeyExchange,
    Authentication,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "TCP connect",
            Phase::Banner => "banner exchange",
            Phase::KeyExchange => "key exchange",
            Phase::Authentication => "authentication",
        })
    }
}

/// Why one node could not be reached or could not run a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    Resolve(String),
    Refused,
    Network(String),
    Timeout {
        secs: u64,
        phase: Phase,
    },
    HostKeyUnknown {
        fingerprint: String,
        files: String,
    },
    HostKeyChanged {
        file: PathBuf,
        line: usize,
    },
    HostKeyRevoked {
        file: PathBuf,
        line: usize,
    },
    Certificate(String),
    AuthFailed {
        tried: Vec<String>,
    },
    HandshakeDropped {
        attempts: u32,
    },
    /// The port answered, but not with SSH (an HTTP or other server): its first line.
    NotSsh {
        first_line: String,
    },
    Disconnected(String),
    Protocol(String),
    Jump {
        jump: String,
        cause: Box<Cause>,
    },
    ChannelOpen(String),
    CommandTimeout {
        secs: u64,
        killed: bool,
    },
    SudoRefused(String),
    Interrupted,
}

impl Cause {
    /// Whether waiting cannot cure it: the node's identity or our credentials were refused.
    /// A node that comes back from a reboot with another host key must stop the operation at
    /// once, not be polled until a timeout (nor be skipped for another node that answers).
    pub fn is_permanent(&self) -> bool {
        match self {
            Cause::HostKeyUnknown { .. }
            | Cause::HostKeyChanged { .. }
            | Cause::HostKeyRevoked { .. }
            | Cause::Certificate(_)
            | Cause::AuthFailed { .. }
            | Cause::SudoRefused(_) => true,
            Cause::Jump { cause, .. } => cause.is_permanent(),
            _ => false,
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Resolve(e) => write!(f, "cannot resolve the host name ({e})"),
            Cause::Refused => write!(f, "connection refused — is sshd running on that port?"),
            Cause::Network(e) => write!(f, "cannot connect ({e})"),
            Cause::Timeout { secs, phase } => write!(f, "timed out after {secs} s during {phase}"),
            Cause::HostKeyUnknown { fingerprint, files } => write!(
                f,
                "host key {fingerprint} is not in known_hosts ({files}) — verify it and add it, or pass --host-keys accept-new"
            ),
            Cause::HostKeyChanged { file, line } => write!(
                f,
                "host key does not match known_hosts line {line} ({}) — if the node was reinstalled, remove that line",
                file.display()
            ),
            Cause::HostKeyRevoked { file, line } => write!(
                f,
                "host key is marked @revoked in known_hosts line {line} ({}) — refusing to connect",
                file.display()
            ),
            Cause::Certificate(e) => write!(f, "{e} — refusing to connect"),
            Cause::AuthFailed { tried } if tried.is_empty() => write!(
                f,
                "authentication failed (no key to offer: no ssh-agent and no identity file) — pass -i KEY"
            ),
            Cause::AuthFailed { tried } => {
                write!(f, "authentication failed (tried: {})", tried.join(", "))
            }
            Cause::HandshakeDropped { attempts } => write!(
                f,
                "the server closed the connection during the handshake {attempts} times (sshd MaxStartups reached?)"
            ),
            Cause::NotSsh { first_line } => write!(
                f,
                "the port does not speak SSH: it answered {first_line:?} (another service, e.g. a web server, listens there) — check the port"
            ),
            Cause::Disconnected(e) => write!(f, "connection lost ({e})"),
            Cause::Protocol(e) => write!(f, "SSH error ({e})"),
            Cause::Jump { jump, cause } => write!(f, "through jump host {jump}: {cause}"),
            Cause::ChannelOpen(e) => write!(f, "could not open a session channel ({e})"),
            Cause::CommandTimeout { secs, killed: true } => {
                write!(f, "command timed out after {secs} s (killed on the node)")
            }
            Cause::CommandTimeout {
                secs,
                killed: false,
            } => write!(
                f,
                "command timed out after {secs} s (no answer from the node; it may still be running there)"
            ),
            Cause::SudoRefused(e) => write!(
                f,
                "sudo -n refused ({e}) — allow this user passwordless sudo, or log in as root"
            ),
            Cause::Interrupted => write!(f, "interrupted"),
        }
    }
}

/// A `Cause` with the node it concerns: `pve2 (10.0.0.12:22): connection refused`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{node} ({address}): {cause}")]
pub struct NodeError {
    pub node: String,
    pub address: String,
    pub cause: Cause,
}

/// Which signal arrived (the listeners are `pveops::signals`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    Int,
    Term,
    Hup,
}

impl Sig {
    /// The shell's status for a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        // POSIX fixes these three numbers (SIGHUP 1, SIGINT 2, SIGTERM 15).
        128 + match self {
            Sig::Hup => 1,
            Sig::Int => 2,
            Sig::Term => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT (Ctrl-C)",
            Sig::Term => "SIGTERM",
            Sig::Hup => "SIGHUP (the terminal or SSH session went away)",
        }
    }
}
