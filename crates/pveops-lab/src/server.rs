//! `pveops lab`: one in-process SSH server (russh) per simulated node on loopback. Each command
//! line runs through a real `/bin/sh` with the simulated tools first on PATH, so pipes, `;`,
//! quoting and detached commands behave as on a node. A node that is offline (rebooting,
//! unreachable) stops listening, so clients see a refused connection, as with a real node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::store;

/// What every node server shares.
pub struct Shared {
    pub state: PathBuf,
    pub log: PathBuf,
    pub sim_dir: PathBuf,
    pub home: PathBuf,
    pub client_key: PublicKey,
    /// Print every command received on stderr.
    pub verbose: std::sync::atomic::AtomicBool,
}

/// One node's SSH server: its name, host key and address.
pub struct NodeServer {
    pub node: String,
    pub host_key: PrivateKey,
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

#[derive(Clone)]
struct Handler {
    node: String,
    shared: Arc<Shared>,
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if user == "root" && offer.public_key.key_data() == self.shared.client_key.key_data() {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if user == "root" && key.public_key.key_data() == self.shared.client_key.key_data() {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        if self
            .shared
            .verbose
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!("lab: {}: {line}", self.node);
        }
        let handle = session.handle();
        let (node, shared) = (self.node.clone(), self.shared.clone());
        tokio::spawn(async move { run(handle, channel, &node, &shared, &line).await });
        Ok(())
    }
}

/// Runs one command line under `/bin/sh` as the node would, streaming its output back.
async fn run(
    handle: russh::server::Handle,
    channel: ChannelId,
    node: &str,
    shared: &Shared,
    line: &str,
) {
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", shared.sim_dir.display());
    let home = shared.home.join(node);
    let _ = std::fs::create_dir_all(&home);
    let mut command = tokio::process::Command::new("/bin/sh");
    command.env_clear();
    // Node-local tool time (`sim::tool_latency`), when the lab was started with it.
    if let Some(v) = std::env::var_os("PVEOPS_LAB_TOOL_LATENCY") {
        command.env("PVEOPS_LAB_TOOL_LATENCY", v);
    }
    let child = command
        .arg("-c")
        .arg(line)
        .env("PATH", path)
        .env("HOME", &home)
        .env("SHELL", "/bin/sh")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("LANG", "C.UTF-8")
        .env("PVEOPS_LAB_STATE", &shared.state)
        .env("PVEOPS_LAB_NODE", node)
        .env("PVEOPS_LAB_LOG", &shared.log)
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = handle
                .extended_data(
                    channel,
                    1,
                    format!("lab: cannot start /bin/sh: {e}\n").into_bytes(),
                )
                .await;
            let _ = handle.exit_status_request(channel, 127).await;
            let _ = handle.close(channel).await;
            return;
        }
    };
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let h1 = handle.clone();
    let pump_out = async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Some(o) = out.as_mut() {
            match o.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if h1.data(channel, buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let h2 = handle.clone();
    let pump_err = async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Some(e) = err.as_mut() {
            match e.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if h2
                        .extended_data(channel, 1, buf[..n].to_vec())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    tokio::join!(pump_out, pump_err);
    let status = child.wait().await;
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(code) = s.code() {
                let _ = handle.exit_status_request(channel, code as u32).await;
            } else if let Some(sig) = s.signal() {
                let _ = handle
                    .exit_signal_request(channel, signal_of(sig), false, String::new(), "en".into())
                    .await;
            }
        }
        Err(_) => {
            let _ = handle.exit_status_request(channel, 255).await;
        }
    }
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

fn signal_of(sig: i32) -> russh::Sig {
    match sig {
        libc::SIGTERM => russh::Sig::TERM,
        libc::SIGKILL => russh::Sig::KILL,
        libc::SIGINT => russh::Sig::INT,
        libc::SIGHUP => russh::Sig::HUP,
        libc::SIGSEGV => russh::Sig::SEGV,
        libc::SIGABRT => russh::Sig::ABRT,
        libc::SIGPIPE => russh::Sig::PIPE,
        libc::SIGQUIT => russh::Sig::QUIT,
        _ => russh::Sig::Custom(format!("SIG{sig}")),
    }
}

/// Which nodes accept connections: online and not marked unreachable.
pub type Reachability = std::collections::BTreeMap<String, bool>;

pub fn reachability_of(c: &super::state::Cluster) -> Reachability {
    c.nodes
        .iter()
        .map(|n| (n.name.clone(), n.online && !n.faults.unreachable))
        .collect()
}

/// Watches the state file for every node at once: re-reads it when it changed, applies events
/// when one is due (a reboot ending) even when no command runs, and publishes which nodes are
/// up. Reading only on change keeps a 50-node lab from parsing its state 500 times a second.
pub async fn watch_state(shared: Arc<Shared>, tx: tokio::sync::watch::Sender<Reachability>) {
    let mut last_mtime = None;
    let mut next_due: Option<f64> = None;
    loop {
        let mtime = std::fs::metadata(&shared.state)
            .and_then(|m| m.modified())
            .ok();
        let due = next_due.is_some_and(|d| d <= store::now());
        if mtime != last_mtime || due {
            last_mtime = mtime;
            let cluster = if due {
                store::Locked::open(&shared.state).ok().map(|s| {
                    if s.changed {
                        let _ = s.save();
                    }
                    s.cluster
                })
            } else {
                store::read(&shared.state).ok()
            };
            if let Some(c) = cluster {
                next_due = c.events.iter().map(|e| e.due).min_by(f64::total_cmp);
                let map = reachability_of(&c);
                tx.send_if_modified(|m| {
                    let changed = *m != map;
                    *m = map;
                    changed
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl NodeServer {
    /// Serves until the task is dropped: listens while the node is reachable, not otherwise.
    pub async fn serve(self, mut up: tokio::sync::watch::Receiver<Reachability>) {
        let config = Arc::new(russh::server::Config {
            keys: vec![self.host_key.clone()],
            auth_rejection_time: Duration::from_millis(50),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        });
        let mut listener: Option<TcpListener> = None;
        loop {
            let reachable = up
                .borrow_and_update()
                .get(&self.node)
                .copied()
                .unwrap_or(false);
            if reachable && listener.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => listener = Some(l),
                    Err(e) => eprintln!("lab: {}: cannot listen on {}: {e}", self.node, self.addr),
                }
            } else if !reachable && listener.is_some() {
                if self
                    .shared
                    .verbose
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    eprintln!("lab: {}: down, not listening", self.node);
                }
                listener = None;
            }
            let Some(l) = &listener else {
                if up.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tokio::select! {
                accepted = l.accept() => {
                    if let Ok((socket, _)) = accepted {
                        let _ = socket.set_nodelay(true);
                        let handler = Handler { node: self.node.clone(), shared: self.shared.clone() };
                        let config = config.clone();
                        tokio::spawn(async move {
                            if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                                let _ = session.await;
                            }
                        });
                    }
                }
                changed = up.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
