//! A simulated PVE cluster behind real OpenSSH sshd: one sshd per node whose PATH starts with
//! the lab's simulated tools (the `pveops-lab-tool` binary under test, called as `pvecm`, `qm`, ...),
//! all nodes sharing one state file and one JSONL command log.

use std::path::PathBuf;

use pveops_lab::state::Cluster;

use super::sshd::{Lab, Sshd, SshdOptions};

/// The sshd-backed cluster and where its state and log live.
pub struct SimCluster {
    pub lab: Lab,
    pub state: PathBuf,
    pub log: PathBuf,
    /// Node name → its sshd.
    pub nodes: Vec<(String, Sshd)>,
}

/// The sshd options of simulated node `name`: the lab's tools first on PATH, its state and log.
fn node_options(lab: &Lab, name: &str, listen: Option<(String, u16)>) -> SshdOptions {
    let dir = lab.dir.path();
    SshdOptions {
        listen,
        path_dir: Some(dir.join("simbin")),
        env: vec![
            (
                "PVEOPS_LAB_STATE".into(),
                dir.join("state.json").display().to_string(),
            ),
            ("PVEOPS_LAB_NODE".into(), name.to_string()),
            (
                "PVEOPS_LAB_LOG".into(),
                dir.join("commands.jsonl").display().to_string(),
            ),
            // Each node's own temporary directory, so a test can see what a run left there.
            ("TMPDIR".into(), node_tmp(lab, name).display().to_string()),
        ],
        ..Default::default()
    }
}

/// The node's `$TMPDIR`.
pub fn node_tmp(lab: &Lab, name: &str) -> PathBuf {
    let d = lab.dir.path().join("tmp").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl SimCluster {
    /// Starts an sshd for every node of `cluster` that is online (offline nodes have none).
    pub fn start(cluster: Cluster) -> SimCluster {
        Self::start_on(cluster, None)
    }

    /// Like `start`; with `net = Some((prefix, port))` node i listens on `prefix.(i+1):port`
    /// and the state's addresses say so, as `/cluster/status` of a real cluster would.
    pub fn start_on(mut cluster: Cluster, net: Option<(&str, u16)>) -> SimCluster {
        if let Some((prefix, _)) = net {
            for (i, n) in cluster.nodes.iter_mut().enumerate() {
                n.ip = format!("{prefix}.{}", i + 1);
            }
        }
        let lab = Lab::empty();
        let state = lab.dir.path().join("state.json");
        let log = lab.dir.path().join("commands.jsonl");
        let bin = lab.dir.path().join("simbin");
        pveops_lab::sim::install_tools(&bin, &super::tool_exe()).expect("install simulated tools");
        // Everything a test node must not run for real is shadowed too.
        for entry in std::fs::read_dir(super::sshd::sim_bin()).unwrap() {
            let p = entry.unwrap().path();
            let target = bin.join(p.file_name().unwrap());
            if !target.exists() {
                std::os::unix::fs::symlink(&p, &target).unwrap();
            }
        }
        pveops_lab::scenario::resolve_times(&mut cluster, jiff::Timestamp::now());
        let mut nodes = Vec::new();
        let names: Vec<(String, bool, String)> = cluster
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.online, n.ip.clone()))
            .collect();
        pveops_lab::store::write(&state, &cluster).unwrap();
        for (name, online, ip) in names {
            if !online {
                continue;
            }
            let opts = node_options(&lab, &name, net.map(|(_, port)| (ip.clone(), port)));
            let sshd = lab.spawn(&opts);
            lab.trust(&sshd);
            nodes.push((name, sshd));
        }
        SimCluster {
            lab,
            state,
            log,
            nodes,
        }
    }

    /// The sshd of node `name`.
    pub fn node(&self, name: &str) -> &Sshd {
        &self
            .nodes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .1
    }

    /// Node `name` comes back with another host key on the same address (a reinstall, or a
    /// host taking over its address): its sshd is replaced; known_hosts keeps the old key.
    pub fn rekey(&mut self, name: &str) {
        let i = self
            .nodes
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no node {name}"));
        let (host, port) = (self.nodes[i].1.host.clone(), self.nodes[i].1.port);
        self.nodes[i].1.kill();
        let gone = super::poll_until(10, || {
            std::net::TcpStream::connect((host.as_str(), port)).is_err()
        });
        assert!(gone, "the old sshd of {name} still listens");
        let opts = node_options(&self.lab, name, Some((host, port)));
        self.nodes[i].1 = self.lab.spawn(&opts);
    }

    /// The current state (events due applied).
    pub fn state(&self) -> Cluster {
        let mut c = pveops_lab::store::read(&self.state).unwrap();
        c.advance(pveops_lab::store::now());
        c
    }

    /// Changes the state file.
    pub fn edit(&self, f: impl FnOnce(&mut Cluster)) {
        let mut s = pveops_lab::store::Locked::open(&self.state).unwrap();
        f(&mut s.cluster);
        s.save().unwrap();
    }

    /// Every command the simulated tools received: (node, "tool args…"), in order.
    pub fn commands(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSONL");
                let args: Vec<String> = v["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                let line = std::iter::once(v["tool"].as_str().unwrap().to_string())
                    .chain(args)
                    .collect::<Vec<_>>()
                    .join(" ");
                (v["node"].as_str().unwrap().to_string(), line)
            })
            .collect()
    }

    /// The nodes that received exactly `line` (`reboot`), in order.
    pub fn nodes_that_ran(&self, line: &str) -> Vec<String> {
        self.commands()
            .into_iter()
            .filter(|(_, l)| l == line)
            .map(|(n, _)| n)
            .collect()
    }

    /// An inventory naming every node of the state (`pve1`, …, group `lab`); nodes without an
    /// sshd (offline) get a port where nothing listens.
    pub fn inventory(&self) -> PathBuf {
        let c = pveops_lab::store::read(&self.state).unwrap();
        let mut text = format!(
            "[defaults]\nidentity = {:?}\nknown_hosts = {:?}\n",
            self.lab.client_key.display().to_string(),
            self.lab.known_hosts.display().to_string()
        );
        let mut names = Vec::new();
        for n in &c.nodes {
            let port = self
                .nodes
                .iter()
                .find(|(name, _)| name == &n.name)
                .map(|(_, s)| s.port)
                .unwrap_or_else(super::sshd::free_port);
            text.push_str(&format!(
                "\n[[node]]\nname = {:?}\nhost = \"127.0.0.1:{port}\"\n",
                n.name
            ));
            names.push(format!("{:?}", n.name));
        }
        text.push_str(&format!("\n[groups]\nlab = [{}]\n", names.join(", ")));
        let path = self.lab.dir.path().join("inventory.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `pveops exec` on one node and returns (stdout of the command, stderr, exit code, error).
    pub fn exec(&self, node: &str, command: &str, extra: &[&str]) -> serde_json::Value {
        let mut a: Vec<String> = vec!["exec".into(), self.node(node).target()];
        a.extend(self.lab.auth_args());
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--json".into(), "--".into(), command.into()]);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = super::pveops(self.lab.home(), &refs, &[]);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}{}",
                super::stdout(&out),
                super::stderr(&out)
            )
        });
        v.into_iter().next().unwrap()
    }
}
