//! The integration test binary: real OpenSSH sshd on loopback, the real `pveops` binary.

// Shared harness: sshd per node, the pveops runner, polling.
mod support;

// Source structure: PVE output read only in facts/, the CLI known only to its layer.
mod architecture;
// `pveops assess`: snapshots, checks and evidence against the lab behind sshd.
mod assess;
// Authentication: key files, encrypted keys, ssh-agent, sudo.
mod auth;
// `--help`: connection options only where they apply, headings, examples.
mod help;
// Hostile conditions: secrets, a full disk.
mod hardening;
// Host key verification: unknown, changed, accept-new, hashed, revoked, certificates.
mod host_keys;
// Ceph as PVE has it: none, external, hyper-converged (noout around reboots), HEALTH_ERR.
mod ceph;
// `pveops exec`: output, JSON, exit codes, faults, timeouts, fan-out, jump hosts.
mod exec;
// Faults injected through real sshd and the lab's knobs into every operation.
mod faults;
// The lab: simulated PVE tools over real sshd, and `pveops lab`.
mod lab;
// The morning after: night leftovers, check_pve parity, monitoring runs, verify's baseline.
mod morning;
// Operations: migrate, drain, maintenance against the lab behind sshd.
mod operations;
// `pveops parse`: the parsers from the command line.
mod parse;
// `pveops snapshot`, `diff` and `verify`: before/after against the lab.
mod verify;
// Refusals before the first change: non-members, locks, unwritable outputs, reused --out.
mod safety;
// Shell quoting: arbitrary values survive template → sh -c → argv.
mod quoting;
// `pveops update`: rolling package updates against the lab's apt behind sshd.
mod update;
// The node-side runner: outputs, statuses and durations as the node produced them.
mod runner;
