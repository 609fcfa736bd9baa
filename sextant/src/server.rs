//! `sextant server`: one control-plane node.
//!
//! Start-up, in order: data dir → cluster token (`DIR/node-token`, made on first start) →
//! store → listener → bootstrap a new cluster, or join the one `--join` names → serve until
//! the shutdown future resolves → stop serving (in-flight requests get a grace period) →
//! stop the store.
//!
//! Until the API server lands (issue #3) the node serves only the store's peer endpoints,
//! over plain HTTP on `--listen`; TLS arrives with the cluster CA in that issue.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sextant_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;

/// How long in-flight requests may run after a shutdown signal before they are cut.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where this node keeps its state, token and credentials.
    #[arg(long, default_value = "./sextant-data")]
    pub data_dir: PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// URL at which other control-plane nodes reach this one (default: http://LISTEN).
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// URL of any node of a running cluster to join, instead of starting a new cluster.
    #[arg(long, requires = "token")]
    pub join: Option<String>,
    /// The cluster's join token (the first server's DATA_DIR/node-token).
    #[arg(long, env = "SEXTANT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub async fn run(args: ServerArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let token = cluster_token(&args.data_dir, args.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another server running there? (--listen)", args.listen))?;
    let local = listener.local_addr()?;
    let advertise = args.advertise_url.clone().unwrap_or_else(|| format!("http://{local}"));

    let mut config = StoreConfig::new(args.data_dir.join("store"), advertise.clone(), token);
    config.progress_interval = Duration::from_secs(5);
    let http = peer_http_client()?;
    let store = Store::open(config, http).await.context("cannot open the store")?;

    let stop_serving = CancellationToken::new();
    let app = sextant_store::router(store.clone());
    let mut server = tokio::spawn({
        let stop = stop_serving.clone();
        async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await }
    });

    let started = async {
        match &args.join {
            Some(seed) => store.join(seed).await.with_context(|| format!("cannot join the cluster at {seed}")),
            None => store.bootstrap().await.context("cannot start the store as a new cluster"),
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        res = started => res?,
        () = &mut shutdown => {
            return stop(store, stop_serving, server).await;
        }
    }
    let status = store.status()?;
    tracing::info!(url = %advertise, node = status.id, voters = status.voters.len(), "sextant server ready");

    tokio::select! {
        () = &mut shutdown => {}
        res = &mut server => {
            res.context("the HTTP server task failed")?.context("the HTTP server stopped")?;
            bail!("the HTTP server stopped unexpectedly");
        }
    }
    stop(store, stop_serving, server).await
}

async fn stop(
    store: Store,
    stop_serving: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    stop_serving.cancel();
    if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; cutting them off");
    }
    store.shutdown().await.context("the store did not stop cleanly")?;
    tracing::info!("sextant server stopped");
    Ok(())
}

/// The cluster token: the one in `DIR/node-token`, or the one given, or a new random one.
/// A given token that differs from the stored one is refused: a node cannot change clusters.
fn cluster_token(dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    let path = dir.join("node-token");
    let stored = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let token = match (stored, given) {
        (Some(s), Some(g)) if s != g => bail!(
            "{} holds another cluster's token; use a fresh --data-dir to join a different cluster",
            path.display()
        ),
        (Some(s), _) => return Ok(s),
        (None, Some(g)) => g.to_owned(),
        (None, None) => {
            let bytes: [u8; 24] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    write_private(&path, &token)?;
    Ok(token)
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn peer_http_client() -> anyhow::Result<reqwest::Client> {
    // ring is the process-wide crypto provider: it builds with cc alone (aws-lc needs cmake).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?)
}
