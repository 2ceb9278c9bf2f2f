//! A target as typed on the command line: `[user@]host[:port]`, with IPv6 as `[addr]:port`.
//!
//! Parsing only; resolving a target through the inventory and ssh_config is `inventory`'s job.

use std::fmt;

/// One `[user@]host[:port]` as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Target {
    /// Parses `[user@]host[:port]`; `[v6addr]:port` and a bare IPv6 address are accepted.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("target `{text}` has an empty user before `@`")),
            None => (None, text),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("target `{text}` opens `[` without closing `]`"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').unwrap_or(p), text)?),
            };
            (addr.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address has several colons and no port.
            (rest.to_string(), None)
        } else if let Some((h, p)) = rest.split_once(':') {
            (h.to_string(), Some(parse_port(p, text)?))
        } else {
            (rest.to_string(), None)
        };
        if host.is_empty() {
            return Err(format!("target `{text}` has no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "target `{text}` contains whitespace or control characters"
            ));
        }
        Ok(Target { user, host, port })
    }
}

fn parse_port(p: &str, text: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "target `{text}` has an invalid port `{p}` (1-65535)"
        )),
        Ok(n) => Ok(n),
    }
}

/// `host:port` for display, bracketing IPv6 addresses.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        match self.port {
            Some(p) => write!(f, "{}", host_port(&self.host, p)),
            None => write!(f, "{}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user: Option<&str>, host: &str, port: Option<u16>) -> Target {
        Target {
            user: user.map(String::from),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_every_form() {
        let cases = [
            ("pve1", t(None, "pve1", None)),
            ("root@pve1", t(Some("root"), "pve1", None)),
            ("10.0.0.11:2222", t(None, "10.0.0.11", Some(2222))),
            (
                "admin@10.0.0.11:22",
                t(Some("admin"), "10.0.0.11", Some(22)),
            ),
            ("[fd00::11]:2222", t(None, "fd00::11", Some(2222))),
            ("root@[fd00::11]", t(Some("root"), "fd00::11", None)),
            ("fd00::11", t(None, "fd00::11", None)),
        ];
        for (text, want) in cases {
            assert_eq!(Target::parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for text in [
            "",
            "@pve1",
            "pve1:0",
            "pve1:99999",
            "pve1:x",
            "[fd00::1",
            "a b",
        ] {
            assert!(Target::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn displays_with_brackets() {
        assert_eq!(host_port("fd00::1", 22), "[fd00::1]:22");
        assert_eq!(t(Some("u"), "h", Some(2)).to_string(), "u@h:2");
    }
}
