//! `pct config ID` (FORMATS.md §4.3); shared rules in `guest_config`.

use super::ParseError;
pub use super::guest_config::GuestConfig;

pub const KIND: &str = "pct-config";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pct config ID: container configuration and raw lxc.* keys in order",
    parse: |text| super::to_json(KIND, parse(text)),
};

pub fn parse(text: &str) -> Result<GuestConfig, ParseError> {
    super::guest_config::parse(KIND, text, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn raw_lxc_keys_keep_order_and_repeats() {
        let c = parse("hostname: ct\nlxc.mount.entry: /a a none bind\nlxc.cgroup2.devices.allow: c 10:200 rwm\nlxc.mount.entry: /b b none bind\n").unwrap();
        let lxc = c.lxc.unwrap();
        assert_eq!(lxc.len(), 3);
        assert_eq!(
            lxc[0],
            ("lxc.mount.entry".to_owned(), "/a a none bind".to_owned())
        );
        assert_eq!(lxc[2].1, "/b b none bind");
        assert!(!c.config.contains_key("lxc.mount.entry"));
    }

    #[test]
    fn ipv6_values_split_on_first_separator() {
        let c = parse("net0: name=eth0,gw6=fd00::1,ip6=fd00::53/64\n").unwrap();
        assert_eq!(c.config["net0"], "name=eth0,gw6=fd00::1,ip6=fd00::53/64");
    }
}
