//! One home for trust and HTTP: the rustls client configuration that REST, the orphan probes
//! and XMPP all use (exactly the certificates of `ca_file` when it is set, else the platform's
//! verifier, the same way for every connection), and the one reqwest client builder over it.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;

/// Why a trust store or client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text holds no usable certificate.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// A certificate could not be read or added.
    #[error("certificate: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The trust store holding exactly the PEM certificates in `pem`.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsError::Certificate(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(roots)
}

/// The client configuration for every TLS connection to Finesse: the certificates of
/// `ca_pem` when given, else the platform's verifier. No ALPN (XMPP sets none).
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match ca_pem {
        Some(pem) => builder
            .with_root_certificates(roots_from_pem(pem)?)
            .with_no_client_auth(),
        None => builder.with_platform_verifier()?.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How long a whole request may take, and how long of that its connection may take (the TCP
/// connect and the TLS handshake): a node that accepts and never answers is given up on
/// after `connect`, not after a whole request's time. And the local address connections
/// leave from, when one is set (`[finesse] source_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// The whole request.
    pub request: Duration,
    /// Its connection, when a new one is needed.
    pub connect: Duration,
    /// The local address to connect from (none: the system's choice).
    pub source: Option<std::net::IpAddr>,
}

impl HttpSettings {
    /// The same bound for both.
    pub fn both(timeout: Duration) -> Self {
        Self {
            request: timeout,
            connect: timeout,
            source: None,
        }
    }
}

/// The reqwest client over `tls` (with HTTP/2 and HTTP/1.1 offered by ALPN): no redirects
/// followed, `timeouts` for connecting and for each whole request.
pub fn http_client(
    tls: &ClientConfig,
    timeouts: HttpSettings,
) -> Result<reqwest::Client, TlsError> {
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeouts.request)
        .connect_timeout(timeouts.connect.min(timeouts.request))
        .local_address(timeouts.source)
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| TlsError::Http(e.to_string()))
}

/// SHA-256 of `data`, from the same crypto provider TLS uses (no second crypto crate).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|suite| suite.common.hash_provider.hash(data).as_ref().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_a_certificate_is_refused_and_the_platform_store_builds() {
        assert!(matches!(
            roots_from_pem(b"not a certificate"),
            Err(TlsError::NoCertificate)
        ));
        let platform = client_config(None).unwrap();
        assert!(platform.alpn_protocols.is_empty());
        assert!(http_client(&platform, HttpSettings::both(Duration::from_secs(1))).is_ok());
    }

    #[test]
    fn sha256_is_sha256() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
