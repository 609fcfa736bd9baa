//! The cluster's certificates: a CA made on first start, and a serving certificate per
//! control-plane node signed by it. Files live in `DATA_DIR/pki/`, keys readable by their
//! owner only.
//!
//! The serving certificate is re-issued whenever the names it must cover change (a new
//! `--listen` address), so a moved server never presents a certificate for the old one.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::files::{read_if_exists, write_private, write_public};

pub struct Pki {
    pub ca_cert_pem: String,
    ca_key_pem: String,
    pub server_cert_pem: String,
    server_key_pem: String,
}

impl Pki {
    /// Loads the CA from `dir` or creates it (`ca` supplies one fetched from the cluster when
    /// joining), then makes sure the serving certificate covers `names`.
    pub fn load_or_create(
        dir: &Path,
        ca: Option<(String, String)>,
        names: &[String],
    ) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (ca_cert_pem, ca_key_pem) = match (
            read_if_exists(&dir.join("ca.crt"))?,
            read_if_exists(&dir.join("ca.key"))?,
        ) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let (c, k) = match ca {
                    Some(ca) => ca,
                    None => new_ca()?,
                };
                write_public(&dir.join("ca.crt"), &c)?;
                write_private(&dir.join("ca.key"), &k)?;
                (c, k)
            }
        };
        let names_file = dir.join("server.names");
        let wanted = names.join("\n");
        let (server_cert_pem, server_key_pem) = match (
            read_if_exists(&dir.join("server.crt"))?,
            read_if_exists(&dir.join("server.key"))?,
            read_if_exists(&names_file)?,
        ) {
            (Some(c), Some(k), Some(n)) if n == wanted => (c, k),
            _ => {
                let (c, k) = issue_server_cert(&ca_key_pem, names)?;
                write_public(&dir.join("server.crt"), &c)?;
                write_private(&dir.join("server.key"), &k)?;
                write_public(&names_file, &wanted)?;
                (c, k)
            }
        };
        Ok(Pki {
            ca_cert_pem,
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
        })
    }

    /// The CA key, handed to control-plane nodes that join (over TLS, to token holders).
    pub fn ca_key_pem(&self) -> &str {
        &self.ca_key_pem
    }

    /// TLS for the HTTPS listener: HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .context("the serving certificate does not parse")?;
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes())
            .context("the serving key does not parse")?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// An HTTP client that trusts exactly this cluster's CA (for store peers).
    pub fn peer_client(&self) -> anyhow::Result<reqwest::Client> {
        client_trusting(&self.ca_cert_pem)
    }
}

pub fn client_trusting(ca_pem: &str) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.context("the CA certificate does not parse")?)?;
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(std::time::Duration::from_secs(3))
        .build()?)
}

/// The CA's identity. Issuing needs only its name and key, so the same parameters serve to
/// create the CA and, with the stored key, to sign with it (no certificate parsing needed).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "sextant-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    params
}

fn new_ca() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_server_cert(ca_key_pem: &str, names: &[String]) -> anyhow::Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA key does not parse")?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "sextant-apiserver");
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The SHA-256 of the CA certificate, as the join token pins it.
pub fn ca_hash(ca_pem: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
