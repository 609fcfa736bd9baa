//! The kubelet's own HTTPS endpoint: container logs and exec sessions (which the API server
//! proxies `pods/log` and `pods/exec` to), health and metrics, on the paths a Kubernetes
//! kubelet serves them.
//!
//! Only the control plane may call it: TLS requires a client certificate signed by the cluster
//! CA with the clientAuth usage (the API server's kubelet-client certificate). Logs are read
//! from the CRI-format files [`crate::logs`] writes, so the endpoint needs no link to the pods'
//! in-memory state and keeps serving the logs of a restarted agent.
//!
//! One task accepts; each connection is a task in a `JoinSet` it owns, so no connection
//! outlives [`serve`]; follow streams and exec sessions (upgraded connections, which hyper no
//! longer tracks) end with the shutdown token too.

pub mod exec;
mod logs;
mod metrics;
mod spdy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodFilter, get, on};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use exec::{ExecBackend, ExecError, ExecRequest};

/// A TLS handshake that has not finished by then belongs to a client not worth waiting for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the cluster CA certificate does not parse as PEM: {0}")]
    Ca(String),
    #[error("the kubelet serving certificate does not parse as PEM: {0}")]
    Cert(String),
    #[error("the kubelet serving key does not parse as PEM: {0}")]
    Key(String),
    #[error("cannot build the client-certificate check from the cluster CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("the kubelet serving certificate and key do not make a TLS identity: {0}")]
    Tls(#[from] rustls::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct State {
    pub data_dir: PathBuf,
    /// Follow streams end with it, so a stopping agent is not held open by `kubectl logs -f`.
    pub shutdown: CancellationToken,
    /// Where exec sessions go; without one, exec answers 503.
    pub exec: Option<Arc<dyn ExecBackend>>,
    /// The exec sessions under way, waited for when the endpoint stops.
    pub sessions: TaskTracker,
}

/// TLS for the endpoint: serves `cert_pem`/`key_pem` and admits only clients whose
/// certificate `ca_pem` signed; HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Ca(e.to_string()))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(Error::Ca("no certificate found".into()));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Cert(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::Key(e.to_string()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The endpoint's routes, as a kubelet lays them out.
fn router(state: State) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            on(MethodFilter::GET.or(MethodFilter::POST), exec::exec),
        )
        .with_state(state)
}

/// Serves the endpoint on `listener` until `shutdown`, then lets in-flight requests finish
/// (follow streams end at once) for a few seconds before closing what is left. Exec answers
/// 503: [`serve_with`] gives it a backend.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    data_dir: PathBuf,
    shutdown: CancellationToken,
) {
    serve_with(listener, tls, data_dir, None, shutdown).await
}

/// [`serve`], with exec sessions going to `exec`.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    data_dir: PathBuf,
    exec: Option<Arc<dyn ExecBackend>>,
    shutdown: CancellationToken,
) {
    let sessions = TaskTracker::new();
    let app = router(State {
        data_dir,
        shutdown: shutdown.clone(),
        exec,
        sessions: sessions.clone(),
    });
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tasks.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "kubelet endpoint: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let builder = Builder::new(TokioExecutor::new());
            // With upgrades: exec sessions switch to WebSocket or SPDY.
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "kubelet endpoint: connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("kubelet endpoint: connections still open after {DRAIN:?}; closing them"),
    }
    tasks.shutdown().await;
    // Exec sessions saw the token too; they end as soon as their connections close.
    sessions.close();
    if tokio::time::timeout(DRAIN, sessions.wait()).await.is_err() {
        tracing::warn!("kubelet endpoint: exec sessions still open after {DRAIN:?}");
    }
}

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
pub(crate) mod tests;
