//! Who a node is: its boot id (`/proc/sys/kernel/random/boot_id`, new at every boot, which is
//! how a reboot is verified) and its PVE node name (`hostname`: PVE names a node by the short
//! host name, `PVE::INotify::nodename`). Both are one line the kernel or coreutils print.

use super::{Keep, Read, Scope};

/// The boot id read of the catalog.
pub const BOOT_ID: Read = Read {
    template: "boot-id",
    scope: Scope::Node,
    vars: super::no_vars,
    keep: keep_boot_id,
};

/// The host name read of the catalog: the node's PVE name.
pub const HOSTNAME: Read = Read {
    template: "hostname",
    scope: Scope::Node,
    vars: super::no_vars,
    keep: keep_hostname,
};

/// The boot id: the one line, trimmed; none when empty.
pub fn boot_id(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// The PVE node name: the host name up to its first dot; none when empty.
pub fn node_name(text: &str) -> Option<String> {
    text.trim()
        .split('.')
        .next()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

fn keep_boot_id(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    k.node.boot_id = boot_id(&out.stdout_text());
    Ok(())
}

fn keep_hostname(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    k.node.pve_node = node_name(&out.stdout_text());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_name_is_the_short_host_name() {
        assert_eq!(node_name("pve1.example.com\n").as_deref(), Some("pve1"));
        assert_eq!(node_name("pve1\n").as_deref(), Some("pve1"));
        assert_eq!(node_name("\n"), None);
        assert_eq!(
            boot_id("5eed0001-0000-0000-0006-6216a673ff77\n").as_deref(),
            Some("5eed0001-0000-0000-0006-6216a673ff77")
        );
        assert_eq!(boot_id(""), None);
    }
}
