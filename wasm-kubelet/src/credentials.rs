//! Trading a join token for this node's own credential.
//!
//! The join token (`SXT1::<sha256 of the CA PEM>::<secret>`, from the server's
//! `DATA_DIR/node-token`) is what an operator copies to a new node. The agent fetches the
//! cluster CA without trusting it yet, checks it against the hash in the token (so a man in
//! the middle cannot substitute his own), then — talking only to servers that CA signed —
//! presents the secret once and receives a bearer token of its own (`system:node:<name>`).
//! That credential is kept in `DATA_DIR/credentials.json` (mode 0600), so a restart needs
//! neither the secret nor the network: an edge node whose server is away still starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file the credential is kept in, under the data directory.
pub const FILE_NAME: &str = "credentials.json";

const PREFIX: &str = "SXT1";
const TOKEN_HELP: &str = "copy the token again from the server's DATA_DIR/node-token";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the token is not a Sextant join token (SXT1::HASH::SECRET); {TOKEN_HELP}")]
    BadToken,
    #[error("--server {0:?} is not a URL such as https://10.0.0.1:6443")]
    BadUrl(String),
    #[error("cannot reach {url}: {source}; is `sextant server` running at {url}?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the CA certificate served by {url} does not match the join token: {TOKEN_HELP}, and check that --server points at that server"
    )]
    CaMismatch { url: String },
    #[error("{url} refused the join token; {TOKEN_HELP}")]
    Refused { url: String },
    #[error("{url} answered {status} to {what}: {body}")]
    Server {
        url: String,
        what: &'static str,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error(
        "the answer of {url} to {what} does not decode ({source}); are the agent and the server the same version?"
    )]
    Decode {
        url: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the cluster CA certificate does not parse: {0}")]
    BadCa(String),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot use {path}: {source}; check --data-dir (or delete the file to join again)")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A join token's two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the CA certificate's PEM text.
    pub ca_hash: String,
    pub secret: String,
}

impl JoinToken {
    pub fn parse(token: &str) -> Result<JoinToken, Error> {
        match token.trim().split("::").collect::<Vec<_>>().as_slice() {
            [PREFIX, hash, secret]
                if hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit())
                    && !secret.is_empty() =>
            {
                Ok(JoinToken {
                    ca_hash: hash.to_ascii_lowercase(),
                    secret: (*secret).to_owned(),
                })
            }
            _ => Err(Error::BadToken),
        }
    }
}

/// Hex SHA-256 of the CA certificate's PEM text, as the join token pins it.
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

/// What the agent gets by joining: a client configuration for the API server and, when the
/// server issued one, a serving certificate for the kubelet endpoint.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The API server, trusted through the cluster CA, with the node's bearer token.
    pub kube_config: kube::Config,
    /// The cluster CA certificate (PEM): the kubelet endpoint accepts clients it signed.
    pub ca_pem: String,
    /// The kubelet endpoint's certificate and key (PEM), when the server issued them.
    pub serving: Option<(String, String)>,
}

/// `DATA_DIR/credentials.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    server: String,
    node_name: String,
    ca_cert: String,
    token: String,
    #[serde(default)]
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serving_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serving_key: Option<String>,
    /// The addresses the serving certificate covers: a node whose address changed needs
    /// a new one.
    #[serde(default)]
    addresses: Vec<String>,
}

/// The server's answer to `POST /sextant.dev/v1/node-credentials`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    token: String,
    #[serde(default)]
    user: String,
    ca_cert: String,
    #[serde(default)]
    serving_cert: Option<String>,
    #[serde(default)]
    serving_key: Option<String>,
}

/// This node's credentials for `server`: those kept in `DATA_DIR/credentials.json` when
/// they were issued by the same server for the same node under the same CA (no network
/// needed), otherwise fetched with the join `token` and kept there.
pub async fn bootstrap(
    server: &str,
    token: &str,
    node_name: &str,
    addresses: &[std::net::IpAddr],
    data_dir: &Path,
) -> Result<NodeCredentials, Error> {
    let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    let server = server.trim_end_matches('/');
    let join = JoinToken::parse(token)?;
    let path = data_dir.join(FILE_NAME);
    if let Some(stored) = load(&path)? {
        if stored.server == server
            && stored.node_name == node_name
            && ca_hash(&stored.ca_cert) == join.ca_hash
            && stored.addresses == addresses
        {
            tracing::debug!(path = %path.display(), "using the stored node credential");
            return credentials(stored);
        }
        tracing::info!(
            path = %path.display(),
            "the stored credential is for another server, node or CA; joining again"
        );
    }
    let mut stored = join_cluster(server, &join, node_name, &addresses).await?;
    stored.addresses = addresses;
    save(&path, &stored)?;
    tracing::info!(node = node_name, user = %stored.user, "joined the cluster; credential kept in {}", path.display());
    credentials(stored)
}

/// Fetches and checks the CA, then trades the secret for a credential.
async fn join_cluster(
    server: &str,
    join: &JoinToken,
    node_name: &str,
    addresses: &[String],
) -> Result<Stored, Error> {
    let unreachable = |source| Error::Unreachable {
        url: server.to_owned(),
        source,
    };
    let ca = insecure_client()?
        .get(format!("{server}/sextant.dev/v1/cacerts"))
        .send()
        .await
        .map_err(unreachable)?;
    let ca = answer(server, "the CA request", ca).await?;
    if ca_hash(&ca) != join.ca_hash {
        return Err(Error::CaMismatch {
            url: server.to_owned(),
        });
    }
    let resp = client_trusting(&ca)?
        .post(format!("{server}/sextant.dev/v1/node-credentials"))
        .bearer_auth(&join.secret)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({ "nodeName": node_name, "addresses": addresses }).to_string())
        .send()
        .await
        .map_err(unreachable)?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Error::Refused {
            url: server.to_owned(),
        });
    }
    let what = "the node-credentials request";
    let body = answer(server, what, resp).await?;
    let issued: Issued = serde_json::from_str(&body).map_err(|source| Error::Decode {
        url: server.to_owned(),
        what,
        source,
    })?;
    if ca_hash(&issued.ca_cert) != join.ca_hash {
        return Err(Error::CaMismatch {
            url: server.to_owned(),
        });
    }
    Ok(Stored {
        server: server.to_owned(),
        node_name: node_name.to_owned(),
        ca_cert: issued.ca_cert,
        token: issued.token,
        user: issued.user,
        serving_cert: issued.serving_cert,
        serving_key: issued.serving_key,
        addresses: Vec::new(),
    })
}

/// The body of a successful answer, or the server's complaint.
async fn answer(
    server: &str,
    what: &'static str,
    resp: reqwest::Response,
) -> Result<String, Error> {
    let status = resp.status();
    let body = resp.text().await.map_err(|source| Error::Unreachable {
        url: server.to_owned(),
        source,
    })?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(Error::Server {
            url: server.to_owned(),
            what,
            status,
            body: body.chars().take(300).collect(),
        })
    }
}

fn credentials(stored: Stored) -> Result<NodeCredentials, Error> {
    let url: http::Uri = stored
        .server
        .parse()
        .map_err(|_| Error::BadUrl(stored.server.clone()))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(ca_ders(&stored.ca_cert)?);
    config.auth_info.token = Some(stored.token.into());
    let serving = stored.serving_cert.zip(stored.serving_key);
    Ok(NodeCredentials {
        kube_config: config,
        ca_pem: stored.ca_cert,
        serving,
    })
}

/// The DER certificates of a PEM bundle (at least one).
fn ca_ders(ca_pem: &str) -> Result<Vec<Vec<u8>>, Error> {
    let ders = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadCa(e.to_string()))?;
    if ders.is_empty() {
        return Err(Error::BadCa("no certificate in it".into()));
    }
    Ok(ders)
}

fn load(path: &Path) -> Result<Option<Stored>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(stored) => Ok(Some(stored)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "the stored credential does not decode; joining again");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the credential readable by its owner only, through a temporary file so that a
/// crash never leaves half a credential behind.
fn save(path: &Path, stored: &Stored) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(file_error)?;
    let json = serde_json::to_vec_pretty(stored).expect("credentials serialise");
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(file_error)?;
    std::fs::rename(&tmp, path).map_err(file_error)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts only `ca_pem`.
fn client_trusting(ca_pem: &str) -> Result<reqwest::Client, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ca_ders(ca_pem)? {
        roots.add(CertificateDer::from(der))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(Error::Client)
}

/// A client that accepts any server certificate: used once, to fetch the CA that the join
/// token's hash then verifies. Nothing secret is sent over it.
fn insecure_client() -> Result<reqwest::Client, Error> {
    let tls = crate::tls::trust_any()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(Error::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn tokens_parse_or_say_where_to_find_one() {
        let hash = "ab".repeat(32);
        let t = JoinToken::parse(&format!(" SXT1::{hash}::s3cret\n")).unwrap();
        assert_eq!(
            (t.ca_hash.as_str(), t.secret.as_str()),
            (hash.as_str(), "s3cret")
        );
        for bad in [
            "wrong".to_string(),
            format!("SXT2::{hash}::s"),
            format!("SXT1::{}::s", "ab".repeat(31)),
            format!("SXT1::{}::s", "zz".repeat(32)),
            format!("SXT1::{hash}::"),
        ] {
            let err = JoinToken::parse(&bad).unwrap_err().to_string();
            assert!(err.contains("DATA_DIR/node-token"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_ca_hash_is_the_sha256_of_the_pem_text() {
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            ca_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_stored_credential_is_reused_without_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_pem();
        let stored = Stored {
            server: "https://127.0.0.1:1".into(), // nothing listens: no network is used
            node_name: "n1".into(),
            ca_cert: ca.clone(),
            token: "node-token".into(),
            user: "system:node:n1".into(),
            serving_cert: Some("CERT".into()),
            serving_key: Some("KEY".into()),
            addresses: Vec::new(),
        };
        save(&dir.path().join(FILE_NAME), &stored).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let token = format!("SXT1::{}::secret", ca_hash(&ca));
        let creds = bootstrap("https://127.0.0.1:1/", &token, "n1", &[], dir.path())
            .await
            .unwrap();
        assert_eq!(
            creds.kube_config.cluster_url.to_string(),
            "https://127.0.0.1:1/"
        );
        assert_eq!(creds.kube_config.root_cert.as_ref().unwrap().len(), 1);
        assert_eq!(creds.ca_pem, ca);
        assert_eq!(creds.serving, Some(("CERT".into(), "KEY".into())));

        // Another node name means joining again, which needs the server.
        let err = bootstrap("https://127.0.0.1:1", &token, "n2", &[], dir.path())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is `sextant server` running at https://127.0.0.1:1"),
            "{err}"
        );
    }
}
