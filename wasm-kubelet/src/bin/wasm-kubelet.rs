//! `wasm-kubelet`: a node agent on its own (an edge node, or a worker of a Sextant cluster).
//! Thin on purpose: it reads flags, trades the join token for the node's credential
//! (`wasm_kubelet::credentials`), and runs `wasm_kubelet::run` until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use wasm_kubelet::{Config, ServingCert, credentials, node};

/// Runs a Sextant node agent: wasm pods in wasmtime (and OCI containers through a CRI
/// runtime), reported to the API server.
#[derive(Parser, Debug)]
#[command(name = "wasm-kubelet", version)]
struct Args {
    /// The API server's URL, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token, from the server's DATA_DIR/node-token.
    #[arg(long, env = "SEXTANT_TOKEN", hide_env_values = true)]
    token: String,
    /// The Node's name (default: this machine's host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Pods' files and logs, the module cache and this node's credential.
    #[arg(long, default_value = "./wasm-kubelet-data")]
    data_dir: PathBuf,
    /// A CRI runtime's socket (e.g. /run/containerd/containerd.sock): OCI containers run
    /// through it. Without it the node runs wasm only (an edge node).
    #[arg(long)]
    cri_socket: Option<PathBuf>,
    /// Where the kubelet's HTTPS endpoint listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    kubelet_listen: SocketAddr,
    /// The address the API server reaches this node at (default: this machine's address on
    /// the route to --server).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The node's pod address range, when not given by the controller manager.
    #[arg(long)]
    pod_cidr: Option<ipnet::Ipv4Net>,
    /// How long the node's Lease lasts; it is renewed every quarter of this.
    #[arg(long, default_value_t = 40)]
    node_lease_seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    raise_file_limit();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every HTTP pod holds a listening socket, and every request a connection: the soft limit of
/// 1,024 open files that most systems start processes with would cap a node near a thousand
/// pods. The hard limit is the administrator's word, so the soft one is raised to it (as Go
/// programs, Kubernetes' kubelet among them, do at start).
fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit; the node may run out of sockets with many pods")
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // One TLS provider for every client and server in the process (kube, reqwest, the
    // kubelet endpoint).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let node_name = match &args.node_name {
        Some(name) => name.clone(),
        None => node::info::hostname()
            .context("cannot read this machine's host name; pass --node-name")?
            .to_lowercase(),
    };
    let shutdown = CancellationToken::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);

    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => node::internal_ip(&args.server).await.with_context(|| {
            format!(
                "cannot tell this node's address towards {}; pass --node-ip",
                args.server
            )
        })?,
    };

    let addresses = [node_ip];
    let creds = tokio::select! {
        creds = credentials::bootstrap(&args.server, &args.token, &node_name, &addresses, &args.data_dir) => creds?,
        () = &mut signal => return Ok(()),
    };
    let client = kube::Client::try_from(creds.kube_config)
        .context("cannot build the API client from the node's credential")?;
    let mut config = Config::new(&node_name, &args.data_dir);
    config.kubelet_listen = args.kubelet_listen;
    config.node_ip = node_ip;
    config.pod_cidr = args.pod_cidr;
    config.cri_socket = args.cri_socket;
    config.lease_duration = Duration::from_secs(args.node_lease_seconds.max(1));
    config.serving = creds.serving.map(|(cert_pem, key_pem)| ServingCert {
        ca_pem: creds.ca_pem.clone(),
        cert_pem,
        key_pem,
    });
    tracing::info!(node = %node_name, server = %args.server, %node_ip, "starting the node agent");

    let agent = wasm_kubelet::run(client, config, shutdown.clone());
    tokio::pin!(agent);
    tokio::select! {
        result = &mut agent => return result.context("the node agent stopped"),
        () = &mut signal => shutdown.cancel(),
    }
    agent.await.context("the node agent failed while stopping")
}

/// Logs go to stderr through `tracing`, filtered by `RUST_LOG` (default `info`). kube's
/// client logs every failed request as an ERROR; with the API away (normal at the edge) that
/// would drown the agent's own messages, which say what failed and that it is retried.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// SIGINT or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
        () = term => tracing::info!("SIGTERM received, stopping"),
    }
}
