//! SSH sessions with russh: connect (directly or through a shared jump connection), verify the
//! host key, authenticate, and run commands on channels of one connection (a single command
//! each, or a node's catalog as one node-side runner program, `crate::batch`).
//!
//! The only module that touches the network. Every phase is bounded (russh has no timeouts of
//! its own, CRATES.md P6), every channel is drained to the end (P1, P3), and at most
//! `MAX_CHANNELS` channels are open per connection (sshd's MaxSessions, P4).

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, client};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{Cause, NodeError, Phase};
use crate::inventory::{KnownHostsFiles, Node};
use crate::known_hosts::{KnownHosts, Policy, Verdict};
use crate::output::{Exit, Output, capture};
use crate::stream::{Probe, ProbeStream, quickack};

/// Channels open at once on one connection: OpenSSH's default MaxSessions.
pub const MAX_CHANNELS: usize = 10;

/// Attempts at a handshake that the server drops before its banner (MaxStartups, P12).
/// Retries go on within `--connect-timeout`, each wait doubling up to `MAX_BACKOFF`.
const HANDSHAKE_ATTEMPTS: u32 = 40;
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// Grace on top of a command's limit and the remote `timeout`'s kill delay before the client
/// gives up waiting for the node.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// Settings shared by every connection of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub connect_timeout: Duration,
    pub sudo: bool,
}

/// A value computed once and shared by every task that asks for it.
type Shared<T> = Arc<OnceCell<T>>;
/// A decrypted key, or why it could not be loaded.
type LoadedKey = Result<Arc<PrivateKey>, String>;
/// A jump host connection, or why it failed.
type JumpSession = Result<Arc<Session>, NodeError>;

/// Opens sessions; shares known_hosts files, decrypted keys and jump connections across nodes.
pub struct Connector {
    settings: Settings,
    known_hosts: Mutex<HashMap<KnownHostsFiles, Arc<KnownHosts>>>,
    keys: Mutex<HashMap<PathBuf, Shared<LoadedKey>>>,
    jumps: Mutex<HashMap<String, Shared<JumpSession>>>,
}

/// An authenticated connection to one node.
pub struct Session {
    pub node: String,
    pub address: String,
    handle: client::Handle<Verifier>,
    channels: Semaphore,
    sudo: bool,
    /// Keeps the jump connection open while this session uses it.
    _jump: Option<Arc<Session>>,
}

/// The russh handler: checks the host key against known_hosts and remembers why it refused.
struct Verifier {
    host: String,
    port: u16,
    known: Arc<KnownHosts>,
    policy: Policy,
    refusal: Arc<Mutex<Option<Cause>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        let (verdict, plain) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                self.known.check_key(&self.host, self.port, key),
                key.clone(),
            ),
            PublicKeyOrCertificate::Certificate(cert) => (
                self.known
                    .check_certificate(&self.host, self.port, cert, now),
                russh::keys::PublicKey::new(cert.public_key().clone(), ""),
            ),
        };
        let cause = match verdict {
            Verdict::Trusted => return Ok(true),
            Verdict::Unknown if self.policy == Policy::AcceptNew => {
                match self.known.learn(&self.host, self.port, &plain) {
                    Ok(()) => {
                        tracing::warn!(
                            "{}: recorded new host key {} in {}",
                            crate::target::host_port(&self.host, self.port),
                            plain.fingerprint(HashAlg::Sha256),
                            self.known
                                .files()
                                .first()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default()
                        );
                        return Ok(true);
                    }
                    Err(e) => Cause::Protocol(format!("could not record the new host key: {e}")),
                }
            }
            Verdict::Unknown => Cause::HostKeyUnknown {
                fingerprint: format!(
                    "{} {}",
                    plain.algorithm().as_str(),
                    plain.fingerprint(HashAlg::Sha256)
                ),
                files: self
                    .known
                    .files()
                    .iter()
                    .map(|p| tilde(p))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            Verdict::Changed(loc) => Cause::HostKeyChanged {
                file: loc.file,
                line: loc.line,
            },
            Verdict::Revoked(loc) => Cause::HostKeyRevoked {
                file: loc.file,
                line: loc.line,
            },
            Verdict::CertificateInvalid(why) => Cause::Certificate(why),
        };
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(cause);
        Ok(false)
    }
}

/// `/root/.ssh/id_rsa` as `~/.ssh/id_rsa`, for messages.
pub fn tilde(p: &Path) -> String {
    match crate::ssh_config::home() {
        Some(h) if p.starts_with(&h) && h != Path::new("/") => {
            format!(
                "~/{}",
                p.strip_prefix(&h)
                    .map(|r| r.display().to_string())
                    .unwrap_or_default()
            )
        }
        _ => p.display().to_string(),
    }
}

type BoxStream = Box<dyn AsyncReadWrite>;
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

impl Connector {
    pub fn new(settings: Settings) -> Connector {
        Connector {
            settings,
            known_hosts: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            jumps: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Connects, verifies and authenticates within `connect_timeout`.
    pub async fn connect(&self, node: &Node) -> Result<Session, NodeError> {
        let err = |cause| NodeError {
            node: node.name.clone(),
            address: node.address(),
            cause,
        };
        let known = self
            .known_hosts_for(&node.known_hosts)
            .map_err(|e| err(Cause::Protocol(e.to_string())))?;
        let deadline = tokio::time::Instant::now() + self.settings.connect_timeout;
        let secs = self.settings.connect_timeout.as_secs();
        let jump = match &node.jump {
            Some(j) => Some(self.jump_session(j).await.map_err(|e| {
                err(Cause::Jump {
                    jump: format!("{} ({})", j.name, j.address()),
                    cause: Box::new(e.cause),
                })
            })?),
            None => None,
        };
        let mut attempt = 0;
        let handle = loop {
            attempt += 1;
            let refusal = Arc::new(Mutex::new(None));
            let probe = Arc::new(Probe::default());
            let stream = match &jump {
                None => tcp_connect(&node.host, node.port, deadline, secs)
                    .await
                    .map_err(err)?,
                Some(j) => j
                    .direct_tcpip(&node.host, node.port, deadline, secs)
                    .await
                    .map_err(err)?,
            };
            let (stream, fd) = stream;
            let verifier = Verifier {
                host: node.host.clone(),
                port: node.port,
                known: known.clone(),
                policy: node.host_keys,
                refusal: refusal.clone(),
            };
            let config = Arc::new(client_config(&known, node));
            let handshake = client::connect_stream(
                config,
                ProbeStream::new(stream, fd, probe.clone()),
                verifier,
            );
            match tokio::time::timeout_at(deadline, handshake).await {
                Ok(Ok(handle)) => break (handle, probe, fd),
                Ok(Err(e)) => {
                    // Another service on the port (a web server answering our identification
                    // line with an error) is not a dropped handshake: no retry helps.
                    if let Some(first_line) = probe.foreign_answer()
                        && !first_line.starts_with("Exceeded MaxStartups")
                    {
                        return Err(err(Cause::NotSsh { first_line }));
                    }
                    if let Some(cause) = refusal.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        return Err(err(cause));
                    }
                    let got_banner = probe.got_banner();
                    // sshd drops connections past MaxStartups before it sends its banner;
                    // such a handshake is retried with backoff, anything else is final.
                    if !got_banner && attempt < HANDSHAKE_ATTEMPTS {
                        let backoff =
                            Duration::from_millis(20 << attempt.min(8)).min(MAX_BACKOFF) + jitter();
                        if tokio::time::Instant::now() + backoff < deadline {
                            tracing::debug!(node = %node.name, attempt, "handshake dropped, retrying");
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    }
                    return Err(err(if got_banner {
                        classify(&e)
                    } else {
                        Cause::HandshakeDropped { attempts: attempt }
                    }));
                }
                Err(_) => {
                    if let Some(first_line) = probe.foreign_answer() {
                        return Err(err(Cause::NotSsh { first_line }));
                    }
                    let phase = if !probe.got_banner() {
                        Phase::Banner
                    } else {
                        Phase::KeyExchange
                    };
                    return Err(err(Cause::Timeout { secs, phase }));
                }
            }
        };
        let (mut handle, probe, fd) = handle;
        match tokio::time::timeout_at(deadline, self.authenticate(&mut handle, node)).await {
            Ok(Ok(())) => {}
            Ok(Err(cause)) => return Err(err(cause)),
            Err(_) => {
                return Err(err(Cause::Timeout {
                    secs,
                    phase: Phase::Authentication,
                }));
            }
        }
        probe.handshaking.store(false, Ordering::Relaxed);
        if let Some(fd) = fd {
            quickack(fd);
        }
        Ok(Session {
            node: node.name.clone(),
            address: node.address(),
            handle,
            channels: Semaphore::new(MAX_CHANNELS),
            sudo: self.settings.sudo,
            _jump: jump,
        })
    }

    /// One shared connection per jump host (CRATES.md P12: many handshakes to one bastion
    /// would hit its MaxStartups).
    async fn jump_session(&self, jump: &Node) -> Result<Arc<Session>, NodeError> {
        let key = format!("{}@{}", jump.user, jump.address());
        let cell = self
            .jumps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(|| async { Box::pin(self.connect(jump)).await.map(Arc::new) })
            .await
            .clone()
    }

    fn known_hosts_for(&self, files: &KnownHostsFiles) -> Result<Arc<KnownHosts>, crate::Error> {
        let mut map = self.known_hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = map.get(files) {
            return Ok(k.clone());
        }
        let k = Arc::new(KnownHosts::load(&files.read, &files.append_to)?);
        map.insert(files.clone(), k.clone());
        Ok(k)
    }

    /// ssh-agent keys first, then identity files, as OpenSSH orders them.
    async fn authenticate(
        &self,
        handle: &mut client::Handle<Verifier>,
        node: &Node,
    ) -> Result<(), Cause> {
        let mut tried = Vec::new();
        let rsa_hash = match handle.best_supported_rsa_hash().await {
            // A server that lists no algorithms still takes rsa-sha2-256 (OpenSSH >= 7.2);
            // SHA-1 `ssh-rsa` is refused by OpenSSH >= 8.8 (CRATES.md P10).
            Ok(Some(h)) => h,
            _ => Some(HashAlg::Sha256),
        };
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            match AgentClient::connect_env().await {
                Ok(mut agent) => {
                    let ids = agent.request_identities().await.unwrap_or_default();
                    tried.push(if ids.is_empty() {
                        "agent (no keys)".to_string()
                    } else {
                        "agent".to_string()
                    });
                    for id in ids {
                        let AgentIdentity::PublicKey { key, .. } = id else {
                            continue;
                        };
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash
                        } else {
                            None
                        };
                        match handle
                            .authenticate_publickey_with(&node.user, key, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return Ok(()),
                            Ok(_) if handle.is_closed() => return Err(closed_during_auth()),
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(node = %node.name, "agent signing failed: {e}")
                            }
                        }
                    }
                }
                Err(e) => tried.push(format!("agent (unreachable: {e})")),
            }
        }
        for path in &node.identities {
            let key = match self.key(path).await {
                Ok(k) => k,
                Err(why) => {
                    tried.push(format!("{} ({why})", tilde(path)));
                    continue;
                }
            };
            tried.push(tilde(path));
            let hash = if key.algorithm().is_rsa() {
                rsa_hash
            } else {
                None
            };
            match handle
                .authenticate_publickey(&node.user, PrivateKeyWithHashAlg::new(key, hash))
                .await
            {
                Ok(r) if r.success() => return Ok(()),
                Ok(_) if handle.is_closed() => return Err(closed_during_auth()),
                Ok(_) => {}
                Err(e) => return Err(classify(&e)),
            }
        }
        Err(Cause::AuthFailed { tried })
    }

    /// A private key, decrypted once per run whatever the number of nodes using it.
    async fn key(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let cell = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        let path = path.to_path_buf();
        cell.get_or_init(|| async move {
            tokio::task::spawn_blocking(move || crate::keys::load(&path))
                .await
                .unwrap_or_else(|e| Err(format!("key loading failed: {e}")))
        })
        .await
        .clone()
    }
}

fn client_config(known: &KnownHosts, node: &Node) -> client::Config {
    let mut preferred = russh::Preferred::default();
    // Ask first for the key types known_hosts already holds for this node, as OpenSSH does.
    let known_algs = known.known_algorithms(&node.host, node.port);
    if !known_algs.is_empty() {
        let mut keys: Vec<_> = known_algs.clone();
        keys.extend(
            preferred
                .key
                .iter()
                .filter(|a| !known_algs.contains(a))
                .cloned(),
        );
        preferred.key = keys.into();
    }
    if known.has_authority_for(&node.host, node.port) {
        preferred.host_key_certificates = preferred.key.clone();
    }
    client::Config {
        preferred,
        nodelay: true,
        // Keepalives detect a dead node during a long command; no inactivity timeout, which
        // would cut silent long commands (CRATES.md P7).
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        inactivity_timeout: None,
        ..Default::default()
    }
}

fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(u64::from(nanos % 100))
}

async fn tcp_connect(
    host: &str,
    port: u16,
    deadline: tokio::time::Instant,
    secs: u64,
) -> Result<(BoxStream, Option<std::os::fd::RawFd>), Cause> {
    let timeout = Cause::Timeout {
        secs,
        phase: Phase::Connect,
    };
    let addrs: Vec<_> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(timeout),
            Ok(Err(e)) => return Err(Cause::Resolve(e.to_string())),
            Ok(Ok(a)) => a.collect(),
        };
    let mut last = Cause::Resolve("no address".into());
    for addr in addrs {
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(addr)).await {
            Err(_) => return Err(timeout),
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                let fd = s.as_raw_fd();
                quickack(fd);
                return Ok((Box::new(s), Some(fd)));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Cause::Refused
            }
            Ok(Err(e)) => last = Cause::Network(e.to_string()),
        }
    }
    Err(last)
}

/// russh answers a connection lost while authenticating as a refusal (an auth failure with no
/// methods left): it is a lost connection, which waiting may cure, not a refused key.
fn closed_during_auth() -> Cause {
    Cause::Disconnected("the server closed the connection during authentication".into())
}

fn classify(e: &russh::Error) -> Cause {
    match e {
        russh::Error::IO(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Cause::Refused
        }
        russh::Error::IO(io) => Cause::Disconnected(io.to_string()),
        russh::Error::Disconnect | russh::Error::HUP => {
            Cause::Disconnected("the server closed the connection".into())
        }
        russh::Error::ConnectionTimeout | russh::Error::KeepaliveTimeout => {
            Cause::Disconnected("the node stopped answering keepalives".into())
        }
        other => Cause::Protocol(other.to_string()),
    }
}

impl Session {
    /// Opens a direct-tcpip channel to `host:port` through this (jump) session.
    async fn direct_tcpip(
        &self,
        host: &str,
        port: u16,
        deadline: tokio::time::Instant,
        secs: u64,
    ) -> Result<(BoxStream, Option<std::os::fd::RawFd>), Cause> {
        let open = self
            .handle
            .channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0);
        match tokio::time::timeout_at(deadline, open).await {
            Err(_) => Err(Cause::Timeout {
                secs,
                phase: Phase::Connect,
            }),
            Ok(Ok(ch)) => Ok((Box::new(ch.into_stream()), None)),
            Ok(Err(russh::Error::ChannelOpenFailure(f))) => Err(Cause::Network(format!(
                "the jump host could not connect: {f:?}"
            ))),
            Ok(Err(e)) => Err(classify(&e)),
        }
    }

    /// True when commands go through `sudo -n`.
    pub fn sudo(&self) -> bool {
        self.sudo
    }

    /// Runs one shell line on its own channel and waits for the end; `limit` is how long the
    /// remote `timeout` lets it run, the client waits that plus the kill delay and a grace.
    pub async fn run(&self, line: &str, limit: Duration) -> Result<Output, Cause> {
        let permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| Cause::Interrupted)?;
        let started_at = jiff::Timestamp::now();
        let start = Instant::now();
        let mut channel = self.open_channel().await?;
        channel.exec(true, line).await.map_err(|e| classify(&e))?;
        let mut out = Output {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit: Exit::Unknown,
            started_at,
            duration: Duration::ZERO,
            truncated: false,
        };
        let wait = limit + crate::command::kill_after() + CLIENT_GRACE;
        let drained = tokio::time::timeout(wait, async {
            // Read until the channel is gone: Eof and ExitStatus come in either order and data
            // may follow ExitStatus (CRATES.md P1).
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.truncated |= !capture(&mut out.stdout, &data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        out.truncated |= !capture(&mut out.stderr, &data)
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.exit = Exit::Code(exit_status),
                    ChannelMsg::ExitSignal {
                        signal_name,
                        core_dumped,
                        ..
                    } => {
                        out.exit = Exit::Signal {
                            name: signal_name_of(&signal_name),
                            core_dumped,
                        }
                    }
                    _ => {}
                }
            }
        })
        .await;
        out.duration = start.elapsed();
        drop(permit);
        if drained.is_err() {
            let _ = channel.close().await;
            return Err(Cause::CommandTimeout {
                secs: limit.as_secs(),
                killed: false,
            });
        }
        // GNU timeout exits 124 after TERM, 137 after KILL.
        if matches!(out.exit, Exit::Code(124 | 137)) && out.duration >= limit {
            return Err(Cause::CommandTimeout {
                secs: limit.as_secs(),
                killed: true,
            });
        }
        if self.sudo && out.exit == Exit::Code(1) && out.stdout.is_empty() {
            let err = out.stderr_text();
            if let Some(first) = err.lines().next().filter(|l| l.starts_with("sudo: ")) {
                return Err(Cause::SudoRefused(
                    first.trim_start_matches("sudo: ").to_string(),
                ));
            }
        }
        Ok(out)
    }

    /// Opens a session channel; when sshd refuses one because its MaxSessions slots are still
    /// held by ending commands (P5), waits for a slot of ours and tries again.
    async fn open_channel(&self) -> Result<russh::Channel<client::Msg>, Cause> {
        let mut delay = Duration::from_millis(5);
        for _ in 0..8 {
            match self.handle.channel_open_session().await {
                Ok(ch) => return Ok(ch),
                Err(russh::Error::ChannelOpenFailure(_)) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(classify(&e)),
            }
        }
        Err(Cause::ChannelOpen(
            "the server refused every new channel (MaxSessions reached)".into(),
        ))
    }

    /// Closes the connection politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn signal_name_of(sig: &russh::Sig) -> String {
    let name = format!("{sig:?}");
    // `Sig::Custom("X")` prints as `Custom("X")`; keep just the name.
    name.strip_prefix("Custom(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .map(str::to_string)
        .unwrap_or(name)
}
