//! `[cluster]` of the fleet file: the etcd cluster that decides which host runs which agent
//! (see [`super`]). Every key is validated as the other tables' are, with errors that name it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

fn err(file: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(file, format!("cluster.{key}"), message)
}

/// What a host does when etcd has lost its quorum (its lease can be neither renewed nor
/// known to be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumLoss {
    /// Stop acting at the lease's deadline; come back when etcd does (no two owners, ever).
    Fence,
    /// Keep the agents already owned, claim nothing (routing goes on; if another host still
    /// reaches etcd after the lease expires, both act until the in-band conflict settles it).
    Keep,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    endpoints: Vec<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    prefix: String,
    member: Option<String>,
    #[serde(default = "d_ttl", with = "humantime_serde")]
    lease_ttl: Duration,
    #[serde(default = "d_weight")]
    weight: f64,
    #[serde(default = "d_quorum")]
    on_quorum_loss: String,
}

fn d_ttl() -> Duration {
    Duration::from_secs(10)
}
fn d_weight() -> f64 {
    1.0
}
fn d_quorum() -> String {
    "fence".into()
}

/// The validated `[cluster]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// etcd's client URLs (`https://` with a CA; `http://` only on loopback).
    pub endpoints: Vec<reqwest::Url>,
    /// The CA that signs etcd's certificates.
    pub ca_file: Option<PathBuf>,
    /// This host's client certificate and key (mutual TLS), both or neither.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The site's key prefix (one per site), ending in `/`.
    pub prefix: String,
    /// This host's name among the members (default: the hostname).
    pub member: String,
    /// The TTL of this host's etcd lease.
    pub lease_ttl: Duration,
    /// This host's relative capacity.
    pub weight: f64,
    /// What to do when etcd has lost its quorum.
    pub on_quorum_loss: QuorumLoss,
}

impl ClusterConfig {
    /// Validates `[cluster]` of fleet file `f` (paths relative to the file's folder).
    pub fn parse(f: &Path, table: toml::Value) -> Result<Self, ConfigError> {
        let raw: RawCluster = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(f, "cluster", e.message().to_owned()))?;
        let here = f.parent().unwrap_or(Path::new("."));
        if raw.endpoints.is_empty() {
            return Err(err(f, "endpoints", "give at least one etcd URL"));
        }
        let mut endpoints = Vec::new();
        for text in &raw.endpoints {
            let url = reqwest::Url::parse(text)
                .map_err(|e| err(f, "endpoints", format!("{text:?}: {e}")))?;
            let loopback = url.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                "http" => {
                    return Err(err(
                        f,
                        "endpoints",
                        format!(
                            "{text}: plain http only on loopback; etcd across hosts needs https"
                        ),
                    ));
                }
                other => {
                    return Err(err(
                        f,
                        "endpoints",
                        format!("{text}: scheme {other} (http or https)"),
                    ));
                }
            }
            if url.port().is_none() {
                return Err(err(
                    f,
                    "endpoints",
                    format!("{text}: give the port (etcd's is usually 2379)"),
                ));
            }
            endpoints.push(url);
        }
        let tls = endpoints.iter().any(|u| u.scheme() == "https");
        let file = |key: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>, ConfigError> {
            let Some(p) = p else { return Ok(None) };
            let p = here.join(p);
            std::fs::metadata(&p).map_err(|e| err(f, key, format!("{}: {e}", p.display())))?;
            Ok(Some(p))
        };
        let ca_file = file("ca_file", &raw.ca_file)?;
        let identity = match (
            file("cert_file", &raw.cert_file)?,
            file("key_file", &raw.key_file)?,
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(err(f, "cert_file", "give cert_file and key_file together")),
        };
        if tls && ca_file.is_none() {
            return Err(err(
                f,
                "ca_file",
                "https endpoints need the CA that signs etcd's certificates",
            ));
        }
        if let Some((_, key)) = &identity {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(key)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(err(
                    f,
                    "key_file",
                    format!(
                        "{} is readable or writable by group or others; chmod 600 it",
                        key.display()
                    ),
                ));
            }
        }
        let prefix = raw.prefix.trim().to_owned();
        if prefix.is_empty() || !prefix.starts_with('/') {
            return Err(err(
                f,
                "prefix",
                "a key prefix such as \"/finesse-taskd/site-1/\"",
            ));
        }
        let prefix = if prefix.ends_with('/') {
            prefix
        } else {
            format!("{prefix}/")
        };
        let member = match raw.member {
            Some(m) => m,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .ok_or_else(|| err(f, "member", "the hostname cannot be read; set member"))?,
        };
        if member.is_empty()
            || !member
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err(
                f,
                "member",
                format!("{member:?}: letters, digits, '-', '_' and '.' only"),
            ));
        }
        if raw.lease_ttl < Duration::from_secs(3) || raw.lease_ttl > Duration::from_secs(30) {
            return Err(err(
                f,
                "lease_ttl",
                format!(
                    "{} is out of range 3s..=30s (a takeover must fit in Finesse's 60 s forced-logout window)",
                    humantime::format_duration(raw.lease_ttl)
                ),
            ));
        }
        if !(raw.weight.is_finite() && raw.weight > 0.0) {
            return Err(err(
                f,
                "weight",
                format!("{} must be above zero", raw.weight),
            ));
        }
        let on_quorum_loss = match raw.on_quorum_loss.as_str() {
            "fence" => QuorumLoss::Fence,
            "keep" => QuorumLoss::Keep,
            other => {
                return Err(err(
                    f,
                    "on_quorum_loss",
                    format!("{other:?}: \"fence\" or \"keep\""),
                ));
            }
        };
        Ok(Self {
            endpoints,
            ca_file,
            identity,
            prefix,
            member,
            lease_ttl: raw.lease_ttl,
            weight: raw.weight,
            on_quorum_loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "x").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
        let f = dir.path().join("fleet.toml");
        let value: toml::Value = toml::from_str(text).unwrap();
        ClusterConfig::parse(&f, value)
    }

    const GOOD: &str = r#"endpoints = ["https://etcd-1.example.com:2379", "https://etcd-2.example.com:2379"]
ca_file = "ca.pem"
cert_file = "cert.pem"
key_file = "key.pem"
prefix = "/finesse-taskd/site-1"
member = "host-a"
"#;

    #[test]
    fn a_site_cluster_parses_with_its_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.prefix, "/finesse-taskd/site-1/");
        assert_eq!(c.member, "host-a");
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.weight, 1.0);
        assert_eq!(c.on_quorum_loss, QuorumLoss::Fence);
        assert!(c.identity.is_some());
        // Without member: the hostname.
        let c = parse(&GOOD.replace("member = \"host-a\"\n", "")).unwrap();
        assert!(!c.member.is_empty());
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "endpoints = [\"https://etcd-1.example.com:2379\", \"https://etcd-2.example.com:2379\"]",
                "endpoints = []",
                "cluster.endpoints",
            ),
            (
                "https://etcd-1.example.com:2379\", \"https://etcd-2.example.com:2379",
                "http://etcd-1.example.com:2379",
                "cluster.endpoints",
            ),
            (
                "https://etcd-1.example.com:2379\", \"https://etcd-2.example.com:2379",
                "https://etcd-1.example.com",
                "cluster.endpoints",
            ),
            (
                "ca_file = \"ca.pem\"",
                "ca_file = \"missing.pem\"",
                "cluster.ca_file",
            ),
            ("ca_file = \"ca.pem\"\n", "", "cluster.ca_file"),
            ("key_file = \"key.pem\"\n", "", "cluster.cert_file"),
            (
                "prefix = \"/finesse-taskd/site-1\"",
                "prefix = \"site-1\"",
                "cluster.prefix",
            ),
            (
                "member = \"host-a\"",
                "member = \"host a\"",
                "cluster.member",
            ),
            (
                "member = \"host-a\"",
                "member = \"host-a\"\nlease_ttl = \"90s\"",
                "cluster.lease_ttl",
            ),
            (
                "member = \"host-a\"",
                "member = \"host-a\"\nweight = 0",
                "cluster.weight",
            ),
            (
                "member = \"host-a\"",
                "member = \"host-a\"\non_quorum_loss = \"pray\"",
                "cluster.on_quorum_loss",
            ),
            (
                "member = \"host-a\"",
                "member = \"host-a\"\nmembr = \"x\"",
                "cluster",
            ),
        ];
        for (from, to, key) in cases {
            assert!(GOOD.contains(from), "{from}");
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert_eq!(e.key, *key, "{to}: {e}");
        }
        // Plain http is for loopback only.
        let local = "endpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/t/\"\nmember = \"m\"\n";
        assert!(parse(local).is_ok());
    }
}
