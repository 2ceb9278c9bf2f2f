//! Real OpenSSH sshd processes on 127.0.0.1, one per simulated node, each with its own host
//! key, started in private mount and PID namespaces.
//!
//! Safety: the node's PATH starts with `tests/sim/bin`, which shadows every disruptive tool
//! (`reboot`, `systemctl`, `qm`, ...); `/run` is a private tmpfs (no systemd or D-Bus socket
//! is reachable); and a `reboot(2)` inside a PID namespace only ends that namespace. No test
//! can reboot the machine or touch its services.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{poll_until, sh};

const SSHD: &str = "/usr/sbin/sshd";

/// The extra (non-root) login user that exists only inside the test nodes' namespaces.
pub const TEST_USER: &str = "pveops-test";
pub const TEST_UID: u32 = 4242;

/// How to configure one sshd.
#[derive(Clone, Debug, Default)]
pub struct SshdOptions {
    /// Extra sshd_config lines.
    pub extra_config: Vec<String>,
    /// Sign the host key with this CA key file (a host certificate for 127.0.0.1).
    pub host_ca: Option<PathBuf>,
    /// The first PATH entry instead of tests/sim/bin (a simulated cluster's tools).
    pub path_dir: Option<PathBuf>,
    /// Extra environment for the node's sessions (`SetEnv`).
    pub env: Vec<(String, String)>,
    /// Listen on this address and port instead of 127.0.0.1 and a free port.
    pub listen: Option<(String, u16)>,
    /// Run inside this network namespace (`ip netns exec`), see `netns::NetNs`.
    pub netns: Option<String>,
}

/// One running sshd.
pub struct Sshd {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub dir: PathBuf,
    /// `ssh-ed25519 AAAA...`
    pub host_key: String,
    child: Child,
}

impl Sshd {
    /// `HOST:PORT`
    pub fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The known_hosts line for this node.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.host, self.port, self.host_key)
    }

    /// The sshd listener's pid as the host sees it (the child of `unshare`).
    pub fn pid(&self) -> u32 {
        let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
            .unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("sshd pid")
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the sshd listener.
    pub fn signal(&self, sig: &str) {
        sh("kill", &[&format!("-{sig}"), &self.pid().to_string()]);
    }

    /// Kills the node at once: sshd and every process of its session (the namespace ends).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// sshd's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // SIGKILL to unshare: --kill-child ends the namespace's init, and with it every
        // process of the node (commands left running included).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A set of nodes sharing one client key and one known_hosts file.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    pub nodes: Vec<Sshd>,
}

/// Fails loudly, saying what to install, when the machine has no sshd.
fn require_sshd() {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} not found: these tests run a real OpenSSH server; install it with `apt-get install -y openssh-server`"
    );
    for tool in ["ssh-keygen", "unshare", "timeout"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` not found on PATH: install openssh-client, util-linux and coreutils"
        );
    }
}

/// A free TCP port on 127.0.0.1 (the OS picks it; sshd binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    sh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

fn public_key(path: &Path) -> String {
    let text = fs::read_to_string(path.with_extension("pub")).expect("public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Lab {
    /// `n` nodes with default options, known_hosts holding every host key.
    pub fn start(n: usize) -> Lab {
        let lab = Lab::empty();
        lab.with_nodes(n, &SshdOptions::default())
    }

    /// A lab with a client key and no nodes.
    pub fn empty() -> Lab {
        require_sshd();
        let dir = tempfile::Builder::new()
            .prefix("pveops-test-")
            .tempdir()
            .expect("tempdir");
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key, "ed25519", "");
        let known_hosts = dir.path().join("known_hosts");
        fs::write(&known_hosts, "").unwrap();
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", public_key(&client_key)),
        )
        .unwrap();
        write_namespace_users(dir.path());
        Lab {
            dir,
            client_key,
            known_hosts,
            nodes: Vec::new(),
        }
    }

    /// Adds `n` nodes and records their keys in known_hosts.
    pub fn with_nodes(mut self, n: usize, opts: &SshdOptions) -> Lab {
        for _ in 0..n {
            let node = self.spawn(opts);
            self.trust(&node);
            self.nodes.push(node);
        }
        self
    }

    /// Starts one more sshd without recording its key anywhere.
    pub fn spawn(&self, opts: &SshdOptions) -> Sshd {
        let i = fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let name = format!("node{i}");
        let dir = self.dir.path().join(&name);
        fs::create_dir_all(dir.join("home")).unwrap();
        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&host_key, "ed25519", "");
        let mut config = vec![
            format!("HostKey {}", host_key.display()),
            format!("PidFile {}", dir.join("sshd.pid").display()),
            format!(
                "AuthorizedKeysFile {}",
                self.dir.path().join("authorized_keys").display()
            ),
            "PermitRootLogin prohibit-password".into(),
            "PasswordAuthentication no".into(),
            "KbdInteractiveAuthentication no".into(),
            "UsePAM no".into(),
            "UseDNS no".into(),
            "StrictModes no".into(),
            "LogLevel VERBOSE".into(),
            // Raised for fan-out tests; a test of the limit itself sets its own (sshd takes the
            // first value of a keyword, so the default is left out then).
            // Each node has its own HOME (Debian's bash reads ~/.bashrc even for ssh commands,
            // TESTING.md #5) and a PATH whose first entry shadows every disruptive tool.
            format!(
                "SetEnv HOME={} PATH={}:/usr/sbin:/usr/bin:/sbin:/bin PVEOPS_TEST_NODE={name}{}",
                dir.join("home").display(),
                opts.path_dir.clone().unwrap_or_else(sim_bin).display(),
                opts.env
                    .iter()
                    .map(|(k, v)| format!(" {k}={v}"))
                    .collect::<String>()
            ),
        ];
        if let Some(ca) = &opts.host_ca {
            sh(
                "ssh-keygen",
                &[
                    "-q",
                    "-s",
                    ca.to_str().unwrap(),
                    "-I",
                    &name,
                    "-h",
                    "-n",
                    "127.0.0.1",
                    host_key.with_extension("pub").to_str().unwrap(),
                ],
            );
            config.push(format!(
                "HostCertificate {}",
                dir.join("ssh_host_ed25519_key-cert.pub").display()
            ));
        }
        if !opts
            .extra_config
            .iter()
            .any(|l| l.starts_with("MaxStartups"))
        {
            config.push("MaxStartups 200".into());
        }
        config.extend(opts.extra_config.iter().cloned());
        // Bind the port here, let sshd take it over right after (no fixed port numbers).
        let (host, port) = opts
            .listen
            .clone()
            .unwrap_or_else(|| ("127.0.0.1".to_string(), free_port()));
        config.insert(0, format!("ListenAddress {host}:{port}"));
        let config_path = dir.join("sshd_config");
        fs::write(&config_path, config.join("\n") + "\n").unwrap();
        let child = start_in_namespace(
            self.dir.path(),
            &config_path,
            &dir.join("sshd.log"),
            opts.netns.as_deref(),
        );
        let mut node = Sshd {
            name,
            host,
            port,
            dir: dir.clone(),
            host_key: public_key(&host_key),
            child,
        };
        let ready = poll_until(10, || {
            fs::metadata(dir.join("sshd.pid"))
                .map(|m| m.len() > 0)
                .unwrap_or(false)
                || node.child.try_wait().ok().flatten().is_some()
        });
        let exited = node.child.try_wait().ok().flatten();
        assert!(
            ready && exited.is_none(),
            "sshd did not start ({exited:?}); its log:\n{}",
            node.log()
        );
        node
    }

    /// Adds a node's key to known_hosts.
    pub fn trust(&self, node: &Sshd) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&self.known_hosts)
            .unwrap();
        writeln!(f, "{}", node.known_hosts_line()).unwrap();
    }

    /// The common options: our key and our known_hosts.
    pub fn auth_args(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.client_key.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ]
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }
}

/// tests/sim/bin: the stand-ins that shadow disruptive tools on the test nodes.
pub fn sim_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sim/bin")
}

/// passwd/group/shadow/sudoers for the namespaces: the host's own plus `pveops-test`, who
/// may `sudo` without a password (keeping the variables that tell the simulated tools which
/// lab node they are on, as a real node needs none). Bind-mounted over /etc inside each node's namespace, so
/// the host's files are never changed.
fn write_namespace_users(dir: &Path) {
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let home = dir.join("user-home");
    fs::create_dir_all(&home).unwrap();
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let files = [
        (
            "passwd",
            format!(
                "{}{TEST_USER}:x:{TEST_UID}:{TEST_UID}::{}:/bin/sh\n",
                read("/etc/passwd"),
                home.display()
            ),
        ),
        (
            "group",
            format!("{}{TEST_USER}:x:{TEST_UID}:\n", read("/etc/group")),
        ),
        (
            "shadow",
            format!("{}{TEST_USER}:*:19000:0:99999:7:::\n", read("/etc/shadow")),
        ),
        (
            "sudoers",
            format!(
                "Defaults env_reset\nDefaults env_keep += \"PVEOPS_LAB_STATE PVEOPS_LAB_NODE PVEOPS_LAB_LOG PVEOPS_TEST_NODE\"\nroot ALL=(ALL:ALL) ALL\n{TEST_USER} ALL=(ALL) NOPASSWD: ALL\n"
            ),
        ),
    ];
    for (name, text) in files {
        let p = etc.join(name);
        fs::write(&p, text).unwrap();
        let mode = if name == "sudoers" {
            0o440
        } else if name == "shadow" {
            0o640
        } else {
            0o644
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn start_in_namespace(lab: &Path, config: &Path, log: &Path, netns: Option<&str>) -> Child {
    let etc = lab.join("etc");
    let mut script = String::from(
        "set -e; mount -t tmpfs -o mode=755 tmpfs /run; mkdir -p /run/sshd; mount -t proc proc /proc; ",
    );
    for f in ["passwd", "group", "shadow"] {
        script.push_str(&format!(
            "mount --bind {} /etc/{f}; ",
            etc.join(f).display()
        ));
    }
    script.push_str(&format!(
        "if [ -e /etc/sudoers ]; then mount --bind {} /etc/sudoers; fi; ",
        etc.join("sudoers").display()
    ));
    script.push_str(&format!(
        "exec {SSHD} -D -f {} -E {}",
        config.display(),
        log.display()
    ));
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "unshare"]);
            c
        }
        None => Command::new("unshare"),
    };
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start sshd under unshare")
}
