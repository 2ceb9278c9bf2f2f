//! `qm config ID` (FORMATS.md §3.3); shared rules in `guest_config`.

use super::ParseError;
pub use super::guest_config::GuestConfig;

pub const KIND: &str = "qm-config";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "qm config ID: VM configuration, description/sshkeys decoded",
    parse: |text| super::to_json(KIND, parse(text)),
};

pub fn parse(text: &str) -> Result<GuestConfig, ParseError> {
    super::guest_config::parse(KIND, text, false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn sshkeys_and_description_are_decoded() {
        let c = parse("description: line1%0Aa%3Ab 100%25\nlock: backup\nnet0: virtio=BC:24:11:66:A4:E7,bridge=vmbr30\nsshkeys: ssh-ed25519%20AAAAC3Nz%2Bx%2F%3D%20me%40host%0A\n").unwrap();
        assert_eq!(c.config["description"], "line1\na:b 100%");
        assert_eq!(c.config["sshkeys"], "ssh-ed25519 AAAAC3Nz+x/= me@host\n");
        assert_eq!(c.config["net0"], "virtio=BC:24:11:66:A4:E7,bridge=vmbr30");
        assert_eq!(c.lock.as_deref(), Some("backup"));
        assert!(c.lxc.is_none());
    }

    #[test]
    fn missing_vm_is_a_precise_error() {
        let e = parse("Configuration file 'nodes/pve/qemu-server/105.conf' does not exist\n")
            .unwrap_err();
        assert_eq!(e.reason, "guest 105 does not exist on this node");
    }
}
