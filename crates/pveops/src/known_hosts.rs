//! Host key verification against OpenSSH known_hosts files, our own reader.
//!
//! russh's helper skips `@revoked` and `@cert-authority`, ignores `/etc/ssh/ssh_known_hosts`
//! and splits on single spaces (CRATES.md §2), so this module reads the files itself: hashed
//! names, `[host]:port`, comma lists, globs and negation, markers, several files. There is no
//! "accept anything" path: `Policy::AcceptNew` records a never-seen host and nothing else.

#[cfg(test)]
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, PublicKey, certificate::CertType};

/// What to do with a host whose key is not in any file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Refuse unknown and changed keys.
    Strict,
    /// Record a never-seen key, refuse a changed one.
    AcceptNew,
}

#[derive(Clone, Debug)]
enum Marker {
    CertAuthority,
    Revoked,
}

#[derive(Clone, Debug)]
enum Patterns {
    List(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Clone, Debug)]
struct Entry {
    file: PathBuf,
    line: usize,
    marker: Option<Marker>,
    patterns: Patterns,
    key: PublicKey,
}

/// Where a known_hosts line is, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

/// The result of checking one presented host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key (or the certificate's authority) is listed for this host.
    Trusted,
    /// Nothing is known about this host.
    Unknown,
    /// The host is listed with a different key; the first such line.
    Changed(Location),
    /// The key is marked `@revoked`.
    Revoked(Location),
    /// A certificate signed by a trusted authority failed validation.
    CertificateInvalid(String),
}

/// Every known_hosts entry from the files in force, plus where new keys are recorded.
#[derive(Debug)]
pub struct KnownHosts {
    entries: Mutex<Vec<Entry>>,
    files: Vec<PathBuf>,
    append_to: PathBuf,
}

/// The name a host is listed under: `host`, or `[host]:port` when the port is not 22.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// Reads every file that exists; `append_to` is the file `accept-new` writes to.
    pub fn load(files: &[PathBuf], append_to: &Path) -> Result<KnownHosts, crate::Error> {
        let mut entries = Vec::new();
        for file in files {
            match crate::input::read_to_string(file, crate::input::MAX_KNOWN_HOSTS) {
                Ok(text) => entries.extend(parse(file, &text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(crate::Error::io(file, "read the known_hosts file", e)),
            }
        }
        Ok(KnownHosts {
            entries: Mutex::new(entries),
            files: files.to_vec(),
            append_to: append_to.to_path_buf(),
        })
    }

    /// The files read, for messages.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Host key algorithms already known for this host, so the server is asked for those first
    /// (as OpenSSH's `order_hostkeyalgs` does; PVE's cluster known_hosts holds only RSA keys).
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = lookup_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut algs = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.marker.is_none() && matches(&e.patterns, &name))
        {
            let alg = e.key.algorithm();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }

    /// True when some `@cert-authority` line applies to this host.
    pub fn has_authority_for(&self, host: &str, port: u16) -> bool {
        let name = lookup_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .any(|e| matches!(e.marker, Some(Marker::CertAuthority)) && matches(&e.patterns, &name))
    }

    /// Checks a plain key presented by `host:port`.
    pub fn check_key(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = lookup_name(host, port);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(loc) = revoked(&entries, &name, key) {
            return Verdict::Revoked(loc);
        }
        let listed: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.marker.is_none() && matches(&e.patterns, &name))
            .collect();
        if listed.iter().any(|e| e.key.key_data() == key.key_data()) {
            return Verdict::Trusted;
        }
        // A listed key of the same type comes first in the message; any listed key at all
        // means the host is known, and a different key from it is a change, never "new".
        let first = listed
            .iter()
            .find(|e| e.key.algorithm() == key.algorithm())
            .or(listed.first());
        match first {
            Some(e) => Verdict::Changed(Location {
                file: e.file.clone(),
                line: e.line,
            }),
            None => Verdict::Unknown,
        }
    }

    /// Checks a host certificate: a trusted authority validates it, else its key is checked
    /// as a plain key (OpenSSH falls back the same way).
    pub fn check_certificate(
        &self,
        host: &str,
        port: u16,
        cert: &Certificate,
        now: u64,
    ) -> Verdict {
        let name = lookup_name(host, port);
        let ca_key = PublicKey::new(cert.signature_key().clone(), "");
        let plain = PublicKey::new(cert.public_key().clone(), "");
        let authority = {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            for k in [&ca_key, &plain] {
                if let Some(loc) = revoked(&entries, &name, k) {
                    return Verdict::Revoked(loc);
                }
            }
            entries
                .iter()
                .find(|e| {
                    matches!(e.marker, Some(Marker::CertAuthority))
                        && matches(&e.patterns, &name)
                        && e.key.key_data() == ca_key.key_data()
                })
                .cloned()
        };
        let Some(authority) = authority else {
            return self.check_key(host, port, &plain);
        };
        let fingerprint = authority.key.fingerprint(HashAlg::Sha256);
        if let Err(e) = cert.validate_at(now, [&fingerprint]) {
            return Verdict::CertificateInvalid(format!("host certificate is not valid ({e})"));
        }
        if cert.cert_type() != CertType::Host {
            return Verdict::CertificateInvalid(
                "certificate is a user certificate, not a host certificate".into(),
            );
        }
        if !cert.valid_principals().is_empty() && !cert.valid_principals().iter().any(|p| p == host)
        {
            return Verdict::CertificateInvalid(format!(
                "host certificate is not valid for `{host}` (principals: {})",
                cert.valid_principals().join(", ")
            ));
        }
        if let Some((opt, _)) = cert.critical_options().iter().next() {
            return Verdict::CertificateInvalid(format!(
                "host certificate has unknown critical option `{opt}`"
            ));
        }
        Verdict::Trusted
    }

    /// Records a never-seen key (accept-new): the whole file is rewritten to a temporary file
    /// and renamed, so a crash never leaves a half-written known_hosts.
    pub fn learn(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), crate::Error> {
        static WRITING: Mutex<()> = Mutex::new(());
        let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let path = &self.append_to;
        let mut text = match crate::input::read_to_string(path, crate::input::MAX_KNOWN_HOSTS) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(crate::Error::io(path, "read the known_hosts file", e)),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let openssh = key
            .to_openssh()
            .map_err(|e| crate::Error::io(path, "encode the host key", std::io::Error::other(e)))?;
        let line = format!("{} {}\n", lookup_name(host, port), strip_comment(&openssh));
        text.push_str(&line);
        crate::atomic::write(path, text.as_bytes(), Some(0o600))?;
        let line_no = text.lines().count();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.extend(parse(path, &line).into_iter().map(|mut e| {
            e.line = line_no;
            e
        }));
        Ok(())
    }
}

fn strip_comment(openssh: &str) -> &str {
    let mut parts = openssh.splitn(3, ' ');
    let (a, b) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    &openssh[..a.len() + 1 + b.len()]
}

fn revoked(entries: &[Entry], name: &str, key: &PublicKey) -> Option<Location> {
    entries
        .iter()
        .find(|e| {
            matches!(e.marker, Some(Marker::Revoked))
                && matches(&e.patterns, name)
                && e.key.key_data() == key.key_data()
        })
        .map(|e| Location {
            file: e.file.clone(),
            line: e.line,
        })
}

/// Parses the lines of one file; lines it cannot read are skipped, as OpenSSH does.
fn parse(file: &Path, text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Fields are separated by any run of blanks (sshd's own reader skips whitespace).
        let mut fields = line.split_whitespace().peekable();
        let marker = match fields.peek() {
            Some(&"@cert-authority") => Some(Marker::CertAuthority),
            Some(&"@revoked") => Some(Marker::Revoked),
            Some(m) if m.starts_with('@') => continue,
            _ => None,
        };
        if marker.is_some() {
            fields.next();
        }
        let (Some(hosts), Some(kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            tracing::debug!(file = %file.display(), line = i + 1, "unreadable known_hosts line skipped");
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{kind} {blob}")) else {
            tracing::debug!(file = %file.display(), line = i + 1, "unreadable key in known_hosts skipped");
            continue;
        };
        let Some(patterns) = parse_patterns(hosts) else {
            continue;
        };
        out.push(Entry {
            file: file.to_path_buf(),
            line: i + 1,
            marker,
            patterns,
            key,
        });
    }
    out
}

fn parse_patterns(hosts: &str) -> Option<Patterns> {
    if let Some(rest) = hosts.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Patterns::Hashed {
            salt: B64.decode(salt).ok()?,
            hash: B64.decode(hash).ok()?,
        });
    }
    Some(Patterns::List(
        hosts.split(',').map(str::to_string).collect(),
    ))
}

/// OpenSSH `match_hostname`: a negated pattern that matches excludes the line.
fn matches(patterns: &Patterns, name: &str) -> bool {
    match patterns {
        Patterns::Hashed { salt, hash } => {
            let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        Patterns::List(list) => {
            let mut hit = false;
            for p in list {
                if let Some(neg) = p.strip_prefix('!') {
                    if glob(&neg.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                        return false;
                    }
                } else if glob(&p.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                    hit = true;
                }
            }
            hit
        }
    }
}

/// `*` and `?` globbing as in OpenSSH's `match_pattern`.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Writes `text` to a new line of `w`; used by tests that build files.
#[cfg(test)]
fn write_line(w: &mut impl std::io::Write, text: &str) {
    writeln!(w, "{text}").unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOo9v4ajL5QvJYWN8z9FYo136lHWHF+bnVaNjwYGA737";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPo91B1S3+UZKwb/759oa7M8CekdomQcbSPxTtmFnuOK";

    fn hosts(text: &str) -> KnownHosts {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        let mut f = fs::File::create(&path).unwrap();
        write_line(&mut f, text);
        KnownHosts::load(std::slice::from_ref(&path), &path).unwrap()
    }

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn globs_like_openssh() {
        assert!(glob("*.example.org", "pve1.example.org"));
        assert!(glob("pve?", "pve1"));
        assert!(!glob("pve?", "pve10"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acbd"));
    }

    #[test]
    fn plain_port_and_list_entries() {
        let kh = hosts(&format!("pve1,10.0.0.11 {K1}\n[10.0.0.12]:2222 {K1}"));
        assert_eq!(kh.check_key("10.0.0.11", 22, &key(K1)), Verdict::Trusted);
        assert_eq!(kh.check_key("10.0.0.12", 2222, &key(K1)), Verdict::Trusted);
        assert_eq!(kh.check_key("10.0.0.12", 22, &key(K1)), Verdict::Unknown);
        assert!(matches!(kh.check_key("pve1", 22, &key(K2)), Verdict::Changed(l) if l.line == 1));
    }

    #[test]
    fn tabs_and_double_spaces_are_field_separators() {
        let kh = hosts(&format!("pve1\t{}", K1.replace(' ', "  ")));
        assert_eq!(kh.check_key("pve1", 22, &key(K1)), Verdict::Trusted);
    }

    #[test]
    fn negation_excludes() {
        let kh = hosts(&format!("*.lab,!bad.lab {K1}"));
        assert_eq!(kh.check_key("ok.lab", 22, &key(K1)), Verdict::Trusted);
        assert_eq!(kh.check_key("bad.lab", 22, &key(K1)), Verdict::Unknown);
    }

    #[test]
    fn hashed_entry() {
        // `ssh-keygen -H` form of "pve1": HMAC-SHA1 of the name keyed by the salt.
        let salt = [7u8; 20];
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"pve1");
        let hash = mac.finalize().into_bytes();
        let kh = hosts(&format!(
            "|1|{}|{} {K1}",
            B64.encode(salt),
            B64.encode(hash)
        ));
        assert_eq!(kh.check_key("pve1", 22, &key(K1)), Verdict::Trusted);
        assert_eq!(kh.check_key("pve2", 22, &key(K1)), Verdict::Unknown);
    }

    #[test]
    fn revoked_wins() {
        let kh = hosts(&format!("pve1 {K1}\n@revoked * {K1}"));
        assert!(matches!(kh.check_key("pve1", 22, &key(K1)), Verdict::Revoked(l) if l.line == 2));
    }

    #[test]
    fn learn_appends_and_trusts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        fs::write(&path, format!("pve1 {K1}")).unwrap();
        let kh = KnownHosts::load(std::slice::from_ref(&path), &path).unwrap();
        kh.learn("10.0.0.12", 2222, &key(K2)).unwrap();
        assert_eq!(kh.check_key("10.0.0.12", 2222, &key(K2)), Verdict::Trusted);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("pve1 {K1}\n[10.0.0.12]:2222 {K2}\n"));
    }
}
