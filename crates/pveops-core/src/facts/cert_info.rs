//! `pvenode cert info --output-format json` (kind `cert-info`): the node's TLS certificates.
//!
//! pve-manager `PVE/API2/Certificates.pm` (`info`, commit 14a22df3) reads, in this order,
//! `/etc/pve/pve-root-ca.pem` (the cluster CA), `/etc/pve/nodes/NODE/pve-ssl.pem` (the node's
//! certificate the CA signed) and `/etc/pve/nodes/NODE/pveproxy-ssl.pem` (a custom or ACME
//! certificate, which pveproxy then serves instead; usually absent), each through pve-common
//! `src/PVE/Certificate.pm` `get_certificate_info` inside an `eval`: a missing or unreadable
//! file is left out silently. Per certificate: `filename` (the base name), `fingerprint`
//! (SHA-256, `AA:BB:…` upper-case hex, `Net::SSLeay::X509_get_fingerprint`), `subject` and
//! `issuer` (`X509_NAME_oneline`: `/CN=…/O=…`), `notbefore` and `notafter` (epochs,
//! `convert_asn1_to_epoch`; absent when that failed), `san` (DNS names and IPs, IPv6 as eight
//! 4-digit hex groups), `pem`, `public-key-type` (`rsaEncryption`, `id-ecPublicKey`) and
//! `public-key-bits`. With `--output-format json` `PVE/CLI/pvenode.pm` prints the API list as
//! is (`print_api_result`); only the text form sorts by file name.
//! Also what the snapshot keeps of it: each [`Certificate`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ParseError;
use super::pvesh::{read_json, str_of, u64_of};
use super::{Keep, Read, Scope};

pub const KIND: &str = "cert-info";

/// Its `pveops parse` kind: the name, what it reads, and the parser.
pub const PARSE: super::Kind = super::Kind {
    name: KIND,
    what: "pvenode cert info --output-format json: the node's certificates with validity (epochs) and SANs",
    parse: |text| super::to_json(KIND, parse(text)),
};

/// One certificate, as parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParsedCertificate {
    /// `pve-root-ca.pem`, `pve-ssl.pem`, `pveproxy-ssl.pem`.
    pub filename: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Seconds since the epoch.
    pub notbefore: Option<i64>,
    /// Seconds since the epoch.
    pub notafter: Option<i64>,
    /// SHA-256, `AA:BB:…`.
    pub fingerprint: Option<String>,
    pub san: Vec<String>,
    pub public_key_type: Option<String>,
    pub public_key_bits: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CertInfo {
    /// In PVE's order (root CA, node certificate, custom certificate).
    pub certificates: Vec<ParsedCertificate>,
}

/// One certificate of `pvenode cert info` (kind `cert-info`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    pub filename: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub notbefore: Option<i64>,
    pub notafter: Option<i64>,
    pub fingerprint: Option<String>,
}

impl From<&ParsedCertificate> for Certificate {
    fn from(c: &ParsedCertificate) -> Self {
        let ParsedCertificate {
            filename,
            subject,
            issuer,
            notbefore,
            notafter,
            fingerprint,
            san: _,
            public_key_type: _,
            public_key_bits: _,
        } = c;
        Certificate {
            filename: filename.clone(),
            subject: subject.clone(),
            issuer: issuer.clone(),
            notbefore: *notbefore,
            notafter: *notafter,
            fingerprint: fingerprint.clone(),
        }
    }
}

fn i64_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn parse(text: &str) -> Result<CertInfo, ParseError> {
    let (items, start) = read_json(KIND, text)?;
    let mut certificates = Vec::new();
    for item in &items {
        let Some(filename) = str_of(item, "filename") else {
            return Err(ParseError::new(
                KIND,
                start,
                "",
                "a certificate has no \"filename\"",
            ));
        };
        let san = match item.get("san") {
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        certificates.push(ParsedCertificate {
            filename,
            subject: str_of(item, "subject"),
            issuer: str_of(item, "issuer"),
            notbefore: i64_of(item, "notbefore"),
            notafter: i64_of(item, "notafter"),
            fingerprint: str_of(item, "fingerprint"),
            san,
            public_key_type: str_of(item, "public-key-type"),
            public_key_bits: u64_of(item, "public-key-bits"),
        });
    }
    Ok(CertInfo { certificates })
}

/// The `cert-info` read of the catalog: what the snapshot keeps of it.
pub const READ: Read = Read {
    template: "cert-info",
    scope: Scope::Monitoring,
    vars: super::no_vars,
    keep,
};

fn keep(out: &crate::output::Output, k: &mut Keep<'_>) -> Result<(), String> {
    let parsed = parse(&out.stdout_text()).map_err(|e| e.to_string())?;
    k.node.certificates = Some(parsed.certificates.iter().map(Into::into).collect());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn root_ca_and_node_cert() {
        let c = parse(r#"[{"filename":"pve-root-ca.pem","fingerprint":"AA:BB","issuer":"/CN=Proxmox Virtual Environment/OU=x/O=PVE Cluster Manager CA","notafter":2051222400,"notbefore":1735862400,"public-key-bits":4096,"public-key-type":"rsaEncryption","san":[],"subject":"/CN=Proxmox Virtual Environment/OU=x/O=PVE Cluster Manager CA"},{"filename":"pve-ssl.pem","notafter":"1798934400","san":["127.0.0.1","pve1.example.com"]}]"#).unwrap();
        assert_eq!(c.certificates.len(), 2);
        assert_eq!(c.certificates[0].public_key_bits, Some(4096));
        assert_eq!(c.certificates[1].notafter, Some(1798934400));
        assert_eq!(c.certificates[1].san, vec!["127.0.0.1", "pve1.example.com"]);
        assert_eq!(c.certificates[1].subject, None);
    }

    #[test]
    fn garbage() {
        assert!(parse(r#"[{"san":[]}]"#).is_err());
        assert!(parse("{}").is_err());
        assert!(parse("[]").unwrap().certificates.is_empty());
    }
}
