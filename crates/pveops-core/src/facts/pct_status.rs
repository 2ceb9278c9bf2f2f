//! `pct status ID [--verbose]` (FORMATS.md §4.2): flat `key: value` lines; shared rules in
//! `guest_status`.

use super::ParseError;
pub use super::guest_status::GuestStatus;

pub const KIND: &str = "pct-status";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pct status ID [--verbose]: container status and every other field",
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
    fn verbose_with_lock() {
        let s = parse("cpus: 2\nlock: backup\nname: pihole\nstatus: running\ntype: lxc\n").unwrap();
        assert_eq!(s.status, "running");
        assert_eq!(s.lock.as_deref(), Some("backup"));
        assert_eq!(s.fields["name"], "pihole");
        assert!(!s.fields.contains_key("status"));
    }
}
