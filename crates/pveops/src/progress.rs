//! Progress on stderr while nodes answer, shown only when stderr is a terminal; log lines are
//! printed above the bar instead of through it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A node counter: `exec 12/50 nodes · pve7 done`.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(what: &str, nodes: usize) -> Progress {
        if !std::io::stderr().is_terminal() || nodes == 0 {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(nodes as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} {pos}/{len} nodes · {elapsed} · {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress { bar: Some(bar) }
    }

    /// One more node finished.
    pub fn node_done(&self, name: &str, ok: bool) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{name} {}", if ok { "done" } else { "failed" }));
            b.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            *BAR.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// The log writer: prints above the progress bar when there is one.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One log record, written out when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(b) => b.suspend(|| eprint!("{text}")),
            None => eprint!("{text}"),
        }
    }
}
