//! The lab: a simulated PVE cluster that speaks real SSH and prints PVE's exact bytes, for
//! tests, demos and rehearsal. `state` is the model, `render` prints PVE's formats from it,
//! `sim` is the simulated tools (the `pveops` binary called as `pvecm`, `qm`, ...), `store`
//! keeps the shared state file, `server` serves nodes over SSH (`pveops lab`), `scenario`
//! holds the built-in clusters. The lab shares no code with the parsers in `facts`.

pub mod apt;
pub mod ceph;
pub mod health;
pub mod render;
pub mod scenario;
pub mod server;
pub mod sim;
pub mod state;
pub mod store;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{Algorithm, PrivateKey};

use state::Cluster;

/// How to start a lab.
#[derive(Clone, Debug)]
pub struct Options {
    /// A built-in scenario name or a JSON file; `None` reuses the state dir's state, else
    /// `healthy-3node`.
    pub scenario: Option<String>,
    /// A healthy cluster of this many nodes instead of a scenario.
    pub nodes: Option<u32>,
    /// The first node's address; the others take the next addresses (all in 127.0.0.0/8).
    pub listen: Ipv4Addr,
    pub port: u16,
    pub state_dir: PathBuf,
}

/// A lab ready to serve: its files written, its nodes' addresses and keys chosen.
pub struct Prepared {
    pub dir: PathBuf,
    pub nodes: Vec<(String, SocketAddr, PrivateKey)>,
    pub shared: Arc<server::Shared>,
}

/// Whether the node servers print every command they receive (the `lab` command does; the
/// demo keeps its output to the assessment).
pub fn set_verbose(p: &Prepared, verbose: bool) {
    p.shared
        .verbose
        .store(verbose, std::sync::atomic::Ordering::Relaxed);
}

impl Prepared {
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.toml")
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    pub fn identity(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
}

fn err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl Fn(std::io::Error) -> pveops_core::Error + 'a {
    move |e| pveops_core::Error::io(path, what, e)
}

/// Writes the state, keys, known_hosts, inventory and the simulated tools into the state dir.
pub fn prepare(opts: &Options) -> Result<Prepared, pveops_core::Error> {
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(err(&opts.state_dir, "create the lab directory"))?;
    // Absolute, because the nodes' PATH and environment must not depend on a working
    // directory: with a relative PATH entry the real tools would be found instead.
    let dir = &std::path::absolute(&opts.state_dir)
        .map_err(err(&opts.state_dir, "resolve the lab directory"))?;
    let state_path = dir.join("state.json");
    let mut cluster = load_scenario(opts, &state_path)?;
    let client = key(&dir.join("id_ed25519"))?;
    std::fs::create_dir_all(dir.join("hostkeys"))
        .map_err(err(dir, "create the host key directory"))?;
    let mut nodes = Vec::new();
    let mut known_hosts = String::new();
    let mut cluster_known = Vec::new();
    let first = u32::from(opts.listen);
    for (i, n) in cluster.nodes.iter_mut().enumerate() {
        let ip = Ipv4Addr::from(first + i as u32);
        if !ip.is_loopback() {
            return Err(pveops_core::Error::Usage(format!(
                "lab address {ip} is outside 127.0.0.0/8; the lab listens on loopback only"
            )));
        }
        n.ip = ip.to_string();
        let host_key = key(&dir.join("hostkeys").join(&n.name))?;
        let public = host_key.public_key().to_openssh().unwrap_or_default();
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let lookup = known_hosts_name(&ip.to_string(), opts.port);
        known_hosts.push_str(&format!("{lookup} {public}\n"));
        // PVE's cluster-wide /etc/pve/priv/known_hosts lists every node by name and address
        // (for port 22); the lab's nodes listen elsewhere, so their `[ip]:port` form is added.
        cluster_known.push(format!("{},{},{lookup} {public}", n.name, ip));
        nodes.push((n.name.clone(), SocketAddr::from((ip, opts.port)), host_key));
    }
    cluster.known_hosts = cluster_known;
    store::write(&state_path, &cluster).map_err(|m| pveops_core::Error::file(&state_path, m))?;
    let known_path = dir.join("known_hosts");
    store::write_file(&known_path, known_hosts.as_bytes(), Some(0o644))?;
    let mut inv = String::from(
        "# Written by `pveops lab`: the simulated cluster's nodes.\n[defaults]\nuser = \"root\"\n",
    );
    inv.push_str(&format!(
        "identity = [{:?}]\nknown_hosts = {:?}\n",
        dir.join("id_ed25519").display().to_string(),
        known_path.display().to_string()
    ));
    for (name, addr, _) in &nodes {
        inv.push_str(&format!(
            "\n[[node]]\nname = {name:?}\nhost = {:?}\n",
            addr.to_string()
        ));
    }
    let names: Vec<String> = nodes.iter().map(|(n, _, _)| format!("{n:?}")).collect();
    inv.push_str(&format!("\n[groups]\nlab = [{}]\n", names.join(", ")));
    store::write_file(&dir.join("inventory.toml"), inv.as_bytes(), Some(0o644))?;
    let sim_dir = dir.join("bin");
    let exe = std::env::current_exe().map_err(err(dir, "find the pveops binary for"))?;
    // The tools-only binary built beside this one starts in a fraction of the time (a fleet
    // assess runs hundreds of tools on this machine's cores); `pveops lab-tool` is the fallback.
    let exe = tool_binary(exe);
    sim::install_tools(&sim_dir, &exe).map_err(err(&sim_dir, "install the simulated tools in"))?;
    install_standins(&sim_dir)?;
    let shared = Arc::new(server::Shared {
        state: state_path,
        log: dir.join("commands.jsonl"),
        sim_dir,
        home: dir.join("home"),
        client_key: client.public_key().clone(),
        verbose: std::sync::atomic::AtomicBool::new(true),
    });
    Ok(Prepared {
        dir: dir.clone(),
        nodes,
        shared,
    })
}

/// The binary the simulated tools run: `pveops-lab-tool` beside `exe` when it was built from
/// the same sources (it prints [`sim::SOURCE_ID`]), else `exe lab-tool`. `cargo run` rebuilds
/// only `pveops`, so a tool binary left in `target/` by an earlier build would answer with an
/// earlier simulator.
pub fn tool_binary(exe: PathBuf) -> sim::ToolExe {
    let tool = exe.with_file_name(sim::TOOL_BINARY);
    let same = std::process::Command::new(&tool)
        .arg(sim::SOURCE_ID_FLAG)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == sim::SOURCE_ID.as_bytes());
    if same {
        sim::ToolExe::Binary(tool)
    } else {
        sim::ToolExe::Pveops(exe)
    }
}

fn load_scenario(opts: &Options, state_path: &Path) -> Result<Cluster, pveops_core::Error> {
    let mut c = if let Some(n) = opts.nodes {
        scenario::healthy(n.max(1))
    } else {
        match opts.scenario.as_deref() {
            None if state_path.exists() => {
                return store::read(state_path)
                    .map_err(|m| pveops_core::Error::file(state_path, m));
            }
            None => scenario::healthy(3),
            Some(name) => match scenario::builtin(name) {
                Some(c) => c,
                None => {
                    let path = Path::new(name);
                    let text = pveops_core::input::read_to_string(
                        path,
                        pveops_core::input::MAX_CONFIG,
                    )
                    .map_err(|_| {
                        pveops_core::Error::Usage(format!(
                            "`{name}` is neither a scenario file nor a built-in scenario ({})",
                            scenario::NAMES.join(", ")
                        ))
                    })?;
                    serde_json::from_str(&text).map_err(|e| {
                        pveops_core::Error::file(path, format!("invalid scenario: {e}"))
                    })?
                }
            },
        }
    };
    scenario::resolve_times(&mut c, jiff::Timestamp::now());
    Ok(c)
}

/// Reads an OpenSSH private key, or creates and stores a new ed25519 one (stable host keys).
fn key(path: &Path) -> Result<PrivateKey, pveops_core::Error> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|e| pveops_core::Error::file(path, format!("unreadable key: {e}")));
    }
    let k = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| pveops_core::Error::file(path, e.to_string()))?;
    let text = k
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| pveops_core::Error::file(path, e.to_string()))?;
    store::write_file(path, text.as_bytes(), Some(0o600))?;
    let public = k.public_key().to_openssh().unwrap_or_default();
    store::write_file(
        &path.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        Some(0o644),
    )?;
    Ok(k)
}

/// Tools a lab node must never run for real: stand-ins that refuse.
const STANDINS: &[&str] = &[
    "shutdown", "poweroff", "halt", "init", "telinit", "apt", "pveceph",
];

fn install_standins(dir: &Path) -> Result<(), pveops_core::Error> {
    for tool in STANDINS {
        let text = format!(
            "#!/bin/sh\necho \"{tool}: not available on a simulated node\" >&2\nexit 127\n"
        );
        store::write_file(&dir.join(tool), text.as_bytes(), Some(0o755))?;
    }
    Ok(())
}

/// Serves every node until the returned tasks are aborted.
pub fn serve(p: &Prepared) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    let initial = store::read(&p.shared.state)
        .map(|c| server::reachability_of(&c))
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::watch::channel(initial);
    set.spawn(server::watch_state(p.shared.clone(), tx));
    for (name, addr, key) in &p.nodes {
        let s = server::NodeServer {
            node: name.clone(),
            host_key: key.clone(),
            addr: *addr,
            shared: p.shared.clone(),
        };
        set.spawn(s.serve(rx.clone()));
    }
    set
}

/// A host as OpenSSH's known_hosts names it: `host`, or `[host]:port` off port 22.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(p: &Path, body: &str) {
        std::fs::write(p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_tool_binary_is_used_only_when_built_from_the_same_sources() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("pveops");
        let tool = dir.path().join(sim::TOOL_BINARY);
        script(&exe, "exit 0");
        assert_eq!(
            tool_binary(exe.clone()),
            sim::ToolExe::Pveops(exe.clone()),
            "no tool binary: pveops itself"
        );
        script(&tool, "echo 0123456789abcdef");
        assert_eq!(
            tool_binary(exe.clone()),
            sim::ToolExe::Pveops(exe.clone()),
            "a stale tool binary is not used"
        );
        script(&tool, &format!("echo {}", sim::SOURCE_ID));
        assert_eq!(
            tool_binary(exe.clone()),
            sim::ToolExe::Binary(tool),
            "a current tool binary is used"
        );
    }
}
