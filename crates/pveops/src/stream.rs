//! The byte stream under an SSH connection: counts what the server sent (so a timeout can say
//! whether the banner ever came) and keeps `TCP_QUICKACK` armed during the handshake.
//!
//! Linux clears `TCP_QUICKACK` after it fires; re-arming it after every read removes the two
//! ~40 ms Nagle/delayed-ACK stalls of an SSH login on loopback (TESTING.md, "where the time goes").

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared counters of one stream.
#[derive(Debug, Default)]
pub struct Probe {
    pub bytes_read: AtomicU64,
    pub handshaking: AtomicBool,
    /// The first bytes the server sent, to tell its SSH banner from a refusal message.
    first: std::sync::Mutex<Vec<u8>>,
}

impl Probe {
    /// True once the server's `SSH-` identification line arrived. sshd past MaxStartups
    /// writes "Exceeded MaxStartups" and closes instead (OpenSSH >= 8.x), which is not it.
    pub fn got_banner(&self) -> bool {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        has_ssh_line(&first)
    }

    /// What another service answered instead of SSH: the first line it sent, when it sent
    /// something and none of it is an SSH identification line (RFC 4253 4.2 lets a server send
    /// other lines first, so this is only judged once the handshake has failed).
    pub fn foreign_answer(&self) -> Option<String> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_empty() || has_ssh_line(&first) {
            return None;
        }
        let line = String::from_utf8_lossy(&first);
        let line: String = line
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        Some(line)
    }

    fn record(&self, data: &[u8]) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        let room = 256usize.saturating_sub(first.len());
        first.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Whether a line of `data` starts with `SSH-` (RFC 4253 4.2: the identification line; other
/// lines may come first). Only at a line's start: a web server echoing our own identification
/// in its error page has it mid-line.
fn has_ssh_line(data: &[u8]) -> bool {
    data.split(|b| *b == b'\n').any(|l| l.starts_with(b"SSH-"))
}

/// A stream wrapper; `fd` is the TCP socket when there is one (not through a jump host).
pub struct ProbeStream<S> {
    inner: S,
    fd: Option<RawFd>,
    probe: Arc<Probe>,
}

impl<S> ProbeStream<S> {
    pub fn new(inner: S, fd: Option<RawFd>, probe: Arc<Probe>) -> Self {
        probe.handshaking.store(true, Ordering::Relaxed);
        ProbeStream { inner, fd, probe }
    }
}

/// Sets `TCP_QUICKACK` on a socket; failures only cost latency, so they are ignored.
pub fn quickack(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer to `one`; an
    // invalid fd only makes the call fail with EBADF.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProbeStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            if this.probe.bytes_read.fetch_add(n as u64, Ordering::Relaxed) < 256 {
                this.probe.record(&buf.filled()[before..]);
            }
            if let Some(fd) = this
                .fd
                .filter(|_| this.probe.handshaking.load(Ordering::Relaxed))
            {
                quickack(fd);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProbeStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
