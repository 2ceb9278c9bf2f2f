//! The signals that end an operation early: Ctrl-C (SIGINT), SIGTERM (a service manager, `kill`)
//! and SIGHUP (the jump host's SSH session dropped). One listener set for the whole operation,
//! from before its first read to after its last, so none is lost between steps and each is
//! recorded the same way: the step in flight journaled `aborted`, the change log told, the way
//! back printed. A second signal ends the process at once.

use tokio::signal::unix::{Signal, SignalKind, signal};

pub use crate::error::Sig;

/// The three listeners. Once they exist, the signals no longer end the process by default:
/// the operation decides.
pub struct Signals {
    int: Option<Signal>,
    term: Option<Signal>,
    hup: Option<Signal>,
}

impl Signals {
    pub fn new() -> Signals {
        Signals {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// A signal that came since the last look, without waiting.
    pub fn pending(&mut self) -> Option<Sig> {
        use futures::FutureExt;
        self.wait().now_or_never()
    }

    /// Waits for the next signal.
    pub async fn wait(&mut self) -> Sig {
        async fn next(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            biased;
            _ = next(&mut self.int) => Sig::Int,
            _ = next(&mut self.term) => Sig::Term,
            _ = next(&mut self.hup) => Sig::Hup,
        }
    }

    /// After the first signal has been recorded: any further one ends the process at once, with
    /// its own status (the journal's lines are written whole and synced, so none is torn).
    pub fn exit_on_next(mut self) {
        tokio::spawn(async move {
            let s = self.wait().await;
            eprintln!("{}: a second signal; stopping now", s.name());
            std::process::exit(s.exit_code());
        });
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}
