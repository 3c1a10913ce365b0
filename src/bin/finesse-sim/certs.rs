//! A throwaway PKI per run: a test CA, and a server certificate signed by it for the XMPP
//! domain, its pubsub service, `localhost` and 127.0.0.1. The CA file is what the daemon's
//! `ca_file` names, so the custom-CA path is the one exercised.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Where the generated PEM files were written.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (trust anchor for clients).
    pub ca_file: PathBuf,
    /// The server certificate.
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
}

/// Generates the CA and the server certificate for `domain` into `dir`.
pub fn generate(dir: &Path, domain: &str) -> anyhow::Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "finesse-sim test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A validity servers can compute with (rcgen's default ends in 4096, which Erlang's
    // certificate expiry check in ejabberd cannot handle).
    ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let names = vec![
        domain.to_owned(),
        format!("pubsub.{domain}"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, domain);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;

    let pki = Pki {
        ca_file: dir.join("ca.pem"),
        // Named after the domain: Prosody's certificate index (used for direct TLS) finds
        // certificates by file name in its `certificates` directory.
        cert_file: dir.join(format!("{domain}.crt")),
        key_file: dir.join(format!("{domain}.key")),
    };
    std::fs::write(&pki.ca_file, ca.pem())?;
    std::fs::write(&pki.cert_file, cert.pem())?;
    std::fs::write(&pki.key_file, key.serialize_pem())?;
    Ok(pki)
}
