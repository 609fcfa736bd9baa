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

/// The API server's identity towards node agents: their endpoints admit any client
/// certificate the cluster CA signed for client use; this name says who is asking.
pub const KUBELET_CLIENT_CN: &str = "system:sextant:apiserver-kubelet-client";

impl Pki {
    /// TLS towards node agents' endpoints (`pods/log`, `pods/exec`): trusts the cluster CA
    /// and presents a client certificate for [`KUBELET_CLIENT_CN`], issued afresh at each
    /// start (it is never written to disk, so there is nothing to rotate).
    fn kubelet_tls(&self) -> anyhow::Result<rustls::ClientConfig> {
        let (cert_pem, key_pem) = issue_client_cert(&self.ca_key_pem, KUBELET_CLIENT_CN)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
            roots.add(cert.context("the CA certificate does not parse")?)?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
        Ok(rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?)
    }

    /// The API server's client for node agents, as it takes it:
    /// `sextant_apiserver::set_kubelet_client(&api, pki.kubelet_connector()?)`. Upgrades
    /// (`pods/exec`) go over HTTP/1.1 with the same identity: a WebSocket or SPDY upgrade
    /// has no HTTP/2 form that node agents serve.
    pub fn kubelet_connector(&self) -> anyhow::Result<Arc<dyn sextant_apiserver::KubeletClient>> {
        let tls = self.kubelet_tls()?;
        let mut upgrade = tls.clone();
        upgrade.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(KubeletHttps {
            http: kubelet_reqwest(tls)?,
            upgrade: tokio_rustls::TlsConnector::from(Arc::new(upgrade)),
        }))
    }

    /// A serving certificate for node `node`'s agent endpoint, covering its name and `ips`.
    pub fn issue_kubelet_serving(
        &self,
        node: &str,
        ips: &[std::net::IpAddr],
    ) -> anyhow::Result<(String, String)> {
        issue_kubelet_serving(&self.ca_key_pem, node, ips)
    }
}

/// No overall timeout: `kubectl logs -f` streams for as long as the user watches.
fn kubelet_reqwest(tls: rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(KUBELET_CONNECT_TIMEOUT)
        .build()?)
}

/// How long a node agent may take to accept a connection.
const KUBELET_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a node agent may take to answer an upgrade request (it reaches the container
/// runtime before it answers).
const KUBELET_UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest refusal body read from a node agent.
const MAX_UPGRADE_ERROR_BODY: usize = 4096;

/// A serving certificate (serverAuth only, so it cannot pose as a client) for node `node`'s
/// agent endpoint, signed with the CA key: the API server checks it against the Node's
/// address, so it covers `ips`, and the node name for clients that dial by name.
pub fn issue_kubelet_serving(
    ca_key_pem: &str,
    node: &str,
    ips: &[std::net::IpAddr],
) -> anyhow::Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA key does not parse")?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("system:node:{node}"));
    params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
    if let Ok(name) = node.to_owned().try_into() {
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate (clientAuth only) for `cn`, signed with the CA key.
fn issue_client_cert(ca_key_pem: &str, cn: &str) -> anyhow::Result<(String, String)> {
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA key does not parse")?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The kubelet client as the API server's [`sextant_apiserver::KubeletClient`].
struct KubeletHttps {
    http: reqwest::Client,
    /// HTTP/1.1 only, for upgrades.
    upgrade: tokio_rustls::TlsConnector,
}

type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl sextant_apiserver::KubeletClient for KubeletHttps {
    fn get(
        &self,
        url: String,
    ) -> Boxed<'static, Result<sextant_apiserver::KubeletResponse, String>> {
        let request = self.http.get(url);
        Box::pin(async move {
            let response = request.send().await.map_err(|e| causes(&e))?;
            Ok(sextant_apiserver::KubeletResponse {
                status: response.status().as_u16(),
                body: Box::new(KubeletBody(response)),
            })
        })
    }

    fn upgrade(
        &self,
        url: String,
        method: http::Method,
        headers: http::HeaderMap,
    ) -> Boxed<'static, Result<sextant_apiserver::KubeletUpgrade, String>> {
        let tls = self.upgrade.clone();
        Box::pin(async move {
            tokio::time::timeout(KUBELET_UPGRADE_TIMEOUT, upgrade(tls, &url, method, headers))
                .await
                .map_err(|_| format!("no answer in {KUBELET_UPGRADE_TIMEOUT:?}"))?
        })
    }
}

/// One upgrade request to a node agent on a connection of its own (hyper's client: the
/// upgraded connection is handed over, which reqwest cannot do).
async fn upgrade(
    tls: tokio_rustls::TlsConnector,
    url: &str,
    method: http::Method,
    headers: http::HeaderMap,
) -> Result<sextant_apiserver::KubeletUpgrade, String> {
    use hyper_util::rt::TokioIo;

    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("no host in {url}"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::time::timeout(
        KUBELET_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("connecting took longer than {KUBELET_CONNECT_TIMEOUT:?}"))?
    .map_err(|e| causes(&e))?;
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| causes(&e))?;
    let stream = tls.connect(name, tcp).await.map_err(|e| causes(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| causes(&e))?;
    let mut conn = Box::pin(conn.with_upgrades());
    let mut request = http::Request::new(axum::body::Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    *request.headers_mut() = headers;
    if let Some(authority) = uri.authority() {
        let value = http::HeaderValue::from_str(authority.as_str()).map_err(|e| causes(&e))?;
        request.headers_mut().insert(http::header::HOST, value);
    }
    // With a 101 the connection future ends as soon as it hands the connection over, which
    // may be before the answer is read from `send`; it is not polled after it ended.
    let mut send = Box::pin(sender.send_request(request));
    let mut conn_done = false;
    let response = loop {
        tokio::select! {
            r = send.as_mut() => break r.map_err(|e| causes(&e))?,
            r = conn.as_mut(), if !conn_done => match r {
                Ok(()) => conn_done = true,
                Err(e) => return Err(causes(&e)),
            },
        }
    };
    drop(sender);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if status == 101 {
        let upgraded = if conn_done {
            hyper::upgrade::on(response).await
        } else {
            tokio::join!(conn, hyper::upgrade::on(response)).1
        };
        let upgraded = upgraded.map_err(|e| causes(&e))?;
        return Ok(sextant_apiserver::KubeletUpgrade {
            status,
            headers,
            io: Some(Box::new(TokioIo::new(upgraded))),
            body: axum::body::Bytes::new(),
        });
    }
    // Node agents' refusals are a short Status; anything longer is cut to nothing.
    let read = axum::body::to_bytes(
        axum::body::Body::new(response.into_body()),
        MAX_UPGRADE_ERROR_BODY,
    );
    let body = if conn_done {
        read.await
    } else {
        tokio::join!(read, conn).0
    };
    Ok(sextant_apiserver::KubeletUpgrade {
        status,
        headers,
        io: None,
        body: body.unwrap_or_default(),
    })
}

struct KubeletBody(reqwest::Response);

impl sextant_apiserver::KubeletBody for KubeletBody {
    fn next_chunk(&mut self) -> Boxed<'_, Option<Result<axum::body::Bytes, String>>> {
        Box::pin(async move { self.0.chunk().await.map_err(|e| causes(&e)).transpose() })
    }
}

/// An error with its causes ("error sending request" alone does not say "connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the miniature node agent saw: a client certificate, the protocol agreed by
    /// ALPN, the request's head.
    struct Seen {
        presented: bool,
        alpn: Option<Vec<u8>>,
        request: String,
    }

    /// A node agent's endpoint in miniature: TLS with the kubelet serving certificate
    /// (offering HTTP/2 and HTTP/1.1 as the real one does), admitting only clients the
    /// cluster CA signed, answering one request with `answer`; after a 101 it echoes.
    async fn node_endpoint(
        pki: &Pki,
        answer: &'static [u8],
    ) -> (u16, tokio::task::JoinHandle<Seen>) {
        let (cert, key) = pki
            .issue_kubelet_serving("edge-1", &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return Seen {
                    presented: false,
                    alpn: None,
                    request: String::new(),
                };
            };
            let session = tls.get_ref().1;
            let presented = session.peer_certificates().is_some_and(|c| !c.is_empty());
            let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
            let mut buf = [0u8; 4096];
            let n = tls.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            tls.write_all(answer).await.unwrap();
            if answer.starts_with(b"HTTP/1.1 101") {
                let (mut rd, mut wr) = tokio::io::split(tls);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
                let _ = wr.shutdown().await;
            } else {
                tls.shutdown().await.unwrap();
            }
            Seen {
                presented,
                alpn,
                request,
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn kubelet_client_and_serving_certificates_fit_together() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), None, &["127.0.0.1".into()]).unwrap();
        let (port, node) = node_endpoint(
            &pki,
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
        )
        .await;
        let client = pki.kubelet_connector().unwrap();
        let mut reply = client
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let chunk = reply.body.next_chunk().await.unwrap().unwrap();
        assert_eq!(&chunk[..], b"hello");
        assert!(
            node.await.unwrap().presented,
            "the client presented no certificate"
        );

        // A node that is not there: the error says why, for the user's Status message.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = gone.local_addr().unwrap().port();
        drop(gone);
        let err = client
            .get(format!("https://127.0.0.1:{port}/"))
            .await
            .err()
            .unwrap();
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn upgrades_hand_over_the_connection_over_http1() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), None, &["127.0.0.1".into()]).unwrap();
        let client = pki.kubelet_connector().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONNECTION, "Upgrade".parse().unwrap());
        headers.insert(http::header::UPGRADE, "SPDY/3.1".parse().unwrap());
        headers.insert(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().unwrap(),
        );

        let (port, node) = node_endpoint(
            &pki,
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
              X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        )
        .await;
        let reply = client
            .upgrade(
                format!("https://127.0.0.1:{port}/exec/ns/p/c?command=sh&output=1"),
                http::Method::POST,
                headers.clone(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 101);
        assert_eq!(
            reply.headers["x-stream-protocol-version"],
            "v4.channel.k8s.io"
        );
        let mut io = reply.io.expect("the upgraded connection");
        io.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        io.shutdown().await.unwrap();
        drop(io);
        let seen = node.await.unwrap();
        assert!(seen.presented, "the client presented no certificate");
        assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
        let request = seen.request.to_lowercase();
        assert!(
            request.starts_with("post /exec/ns/p/c?command=sh&output=1 http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("upgrade: spdy/3.1\r\n"), "{request}");
        assert!(
            request.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n"),
            "{request}"
        );

        // A refusal: its status and body, for the user's message.
        let (port, _node) = node_endpoint(
            &pki,
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\n\r\nno such pod",
        )
        .await;
        let reply = client
            .upgrade(
                format!("https://127.0.0.1:{port}/exec/ns/p/c"),
                http::Method::GET,
                headers,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 400);
        assert!(reply.io.is_none());
        assert_eq!(&reply.body[..], b"no such pod");
    }
}
