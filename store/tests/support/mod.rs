//! Real store nodes for tests: each on its own data dir, serving its peer endpoints over
//! HTTP on an ephemeral loopback port.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sextant_store::{Store, StoreConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-cluster-token";

/// Logging for tests, and the process-wide TLS crypto provider reqwest needs (ring, which
/// builds without a C toolchain beyond cc).
pub fn init_tracing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

pub struct TestNode {
    pub store: Store,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

impl TestNode {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and shuts the node down cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.server.await;
        self.store.shutdown().await.expect("clean shutdown");
    }

    /// Stops like a crash: raft stops first, without a goodbye, while peers still talk to
    /// it; then the listener closes. (A kill -9 of a real process is in `crash.rs`.)
    pub async fn kill(self) {
        let _ = self.store.shutdown().await;
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

pub fn fast_config(dir: &Path, url: &str) -> StoreConfig {
    let mut config = StoreConfig::new(dir, url, TOKEN);
    config.heartbeat_interval = Duration::from_millis(50);
    config.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    config.progress_interval = Duration::from_millis(200);
    config
}

/// Starts a node on `dir`, on a fresh port (or `addr` to come back on the same one).
pub async fn start_node(
    dir: &Path,
    addr: Option<SocketAddr>,
    tweak: impl FnOnce(&mut StoreConfig),
) -> TestNode {
    let listener =
        tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let mut config = fast_config(dir, &format!("http://{addr}"));
    tweak(&mut config);
    let store = Store::open(config, reqwest::Client::new())
        .await
        .expect("open store");
    let stop = CancellationToken::new();
    let app = sextant_store::router(store.clone());
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
            .unwrap();
    });
    TestNode {
        store,
        addr,
        dir: dir.to_owned(),
        stop,
        server,
    }
}

/// Polls `f` until it returns true, for up to `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs}s waiting for: {what}");
}
