//! A test host in a network namespace of its own, reached from the host over a veth pair: the
//! way to make a node unreachable as a real one becomes (link down, packets dropped) without
//! touching the machine's own network. Nothing leaves the machine: the pair's two ends are the
//! only addresses, both made here, and the namespace is deleted when the value is dropped.

use std::process::Command;

/// One namespace `pveops-test-I` with the veth pair `pvohI` (host) — `pvonI` (node), on
/// 10.251.I.1/24 (host) and 10.251.I.2/24 (node).
pub struct NetNs {
    pub name: String,
    /// The node's address, inside the namespace.
    pub node_ip: String,
    /// The host end's address, where the node's replies go.
    pub host_ip: String,
    node_if: String,
}

fn ip(args: &[&str]) {
    super::sh("ip", args);
}

impl NetNs {
    /// Takes the first free index: `ip netns add` refuses a name that exists, so concurrent
    /// test processes (nextest runs each test in its own) never share one.
    pub fn new() -> NetNs {
        assert!(
            std::path::Path::new("/usr/sbin/ip").exists()
                || std::path::Path::new("/sbin/ip").exists(),
            "`ip` not found: these tests need iproute2 (`apt-get install -y iproute2`)"
        );
        // Traffic to a test address whose link is gone must never take the default route off
        // the machine (TESTING.md #10): the whole test prefix is unreachable unless a live
        // pair's more specific route says otherwise.
        ip(&["route", "replace", "unreachable", "10.251.0.0/16"]);
        for i in 0..250 {
            let name = format!("pveops-test-{i}");
            let added = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !added {
                continue;
            }
            let (host_if, node_if) = (format!("pvoh{i}"), format!("pvon{i}"));
            let (host_ip, node_ip) = (format!("10.251.{i}.1"), format!("10.251.{i}.2"));
            // A pair left behind by a test that was killed would make `link add` fail.
            let _ = Command::new("ip").args(["link", "del", &host_if]).output();
            ip(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &node_if, "netns", &name,
            ]);
            ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if]);
            ip(&["link", "set", &host_if, "up"]);
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{node_ip}/24"),
                "dev",
                &node_if,
            ]);
            ip(&["-n", &name, "link", "set", &node_if, "up"]);
            ip(&["-n", &name, "link", "set", "lo", "up"]);
            return NetNs {
                name,
                node_ip,
                host_ip,
                node_if,
            };
        }
        panic!("no free network namespace name pveops-test-0..249 (stale ones: `ip netns list`)");
    }

    /// The node's link goes down (a pulled cable, a dead switch port).
    pub fn link_down(&self) {
        ip(&["-n", &self.name, "link", "set", &self.node_if, "down"]);
    }

    /// The node stops answering: its replies to the host are discarded (a firewall dropping
    /// packets, a powered-off host behind a router): a connection attempt hears nothing back.
    pub fn drop_replies(&self) {
        ip(&[
            "-n",
            &self.name,
            "route",
            "add",
            "blackhole",
            &format!("{}/32", self.host_ip),
        ]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes the pair's node end, and with it the host end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
