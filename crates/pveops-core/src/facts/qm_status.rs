//! `qm status ID [--verbose]` (FORMATS.md §3.2); shared rules in `guest_status`.

use super::ParseError;
pub use super::guest_status::GuestStatus;

pub const KIND: &str = "qm-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "qm status ID [--verbose]: VM status and every other field",
    parse: |text| super::to_json(KIND, parse(text)),
};

pub fn parse(text: &str) -> Result<GuestStatus, ParseError> {
    super::guest_status::parse(KIND, text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn nested_blocks_become_objects() {
        let s = parse("ballooninfo:\n\tactual: 1\nblockstat:\n\tscsi0:\n\t\trd_bytes: 5\n\t\ttimed_stats:\n\t\twr_bytes: 6\nqmpstatus: paused\nstatus: running\n").unwrap();
        assert_eq!(s.status, "running");
        assert_eq!(s.qmpstatus.as_deref(), Some("paused"));
        assert_eq!(s.fields["ballooninfo"]["actual"], "1");
        assert_eq!(s.fields["blockstat"]["scsi0"]["wr_bytes"], "6");
        assert_eq!(
            s.fields["blockstat"]["scsi0"]["timed_stats"],
            serde_json::json!({})
        );
    }

    #[test]
    fn plain_and_errors() {
        assert_eq!(parse("status: paused\n").unwrap().status, "paused");
        let e = parse("Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist\n")
            .unwrap_err();
        assert_eq!(e.reason, "guest 100 does not exist on this node");
        assert!(parse("").is_err());
        assert!(parse("\tstatus: running\n").is_err());
    }
}
