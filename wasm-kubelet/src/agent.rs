//! The whole agent: its pieces started together and stopped together.
//!
//! Start-up order: data dir → wasm runtime and module cache → the CRI runtime's client and
//! health check (with `--cri-socket`) → kubelet endpoint (its port goes into the Node) →
//! Node registration and heartbeat → the node's pod range (given by the controller manager,
//! kept on disk so an agent restarted while cut off still knows it) → the Service proxy →
//! pods. Each
//! long-lived loop is one task under one shutdown token.

use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::cri::Cri;
use crate::error::Error;
use crate::modules::Fetcher;
use crate::node::{self, NodeSpec};
use crate::pods::{self, Containers, Ipam, Reporter, Shared};
use crate::proxy::{self, ProxyConfig, ServiceTable};
use crate::server;
use crate::wasm::{Runtime, RuntimeConfig};

/// Runs the node agent until `shutdown`. Errors only when it cannot start; once running,
/// failures belong to single pods (their status and Events) or are retried (the API).
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let dir = &config.data_dir;
    let data_dir_error = |source| Error::DataDir {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(dir.join("pods")).map_err(data_dir_error)?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: dir.join("wasmtime-cache"),
        max_instances: config.max_pods.max(1000),
    })?;
    let fetcher = Fetcher::new(dir.join("modules"))?;
    let listener = tokio::net::TcpListener::bind(config.kubelet_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.kubelet_listen,
            source,
        })?;
    let port = listener.local_addr().map_err(data_dir_error)?.port();
    let tls = server_tls(&config)?;

    let mut tasks = JoinSet::new();
    {
        let runtime = runtime.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move { runtime.tick_epochs(stop).await });
    }
    let (oci_tx, oci_ready) = watch::channel(None);
    let cri = match &config.cri_socket {
        Some(socket) => {
            let cri = Cri::connect(socket)?;
            tasks.spawn(node::runtime::watch(cri.clone(), oci_tx, shutdown.clone()));
            Some(cri)
        }
        None => {
            tracing::info!("no --cri-socket: this node runs wasm containers only");
            None
        }
    };
    let containers = Containers::default();
    tasks.spawn(server::serve_with(
        listener,
        tls,
        dir.clone(),
        Some(Arc::new(pods::ExecTargets::new(
            containers.clone(),
            cri.clone(),
        ))),
        shutdown.clone(),
    ));
    // The Service proxy: ClusterIPs and NodePorts served on this node, and the table wasm
    // containers' requests to Services are routed by.
    let services = ServiceTable::new();
    tasks.spawn(proxy::run(
        client.clone(),
        ProxyConfig::new(config.node_ip),
        services.clone(),
        shutdown.clone(),
    ));
    let mut spec = NodeSpec::new(&config.node_name, config.node_ip, port);
    spec.max_pods = config.max_pods;
    spec.lease_duration = config.lease_duration;
    spec.status_interval = config.status_interval;
    tasks.spawn(node::run(
        client.clone(),
        spec,
        oci_ready.clone(),
        shutdown.clone(),
    ));

    let Some(range) = pod_range(&client, &config, &shutdown).await else {
        return stop(tasks).await;
    };
    tracing::info!(node = %config.node_name, %range, kubelet_port = port, "node agent running");
    let reporter = Reporter::new();
    let recorder = sextant_events::Recorder::new(
        client.clone(),
        sextant_events::Reporter {
            controller: "kubelet".into(),
            instance: Some(config.node_name.clone()),
        },
    );
    tasks.spawn(
        reporter
            .clone()
            .run(client.clone(), recorder, shutdown.clone()),
    );
    let shared = Arc::new(Shared {
        client,
        config,
        runtime,
        fetcher,
        ipam: Ipam::new(range),
        reporter,
        cri,
        oci_ready,
        containers,
        services,
    });
    tasks.spawn(pods::run(shared, shutdown.clone()));
    stop(tasks).await
}

async fn stop(mut tasks: JoinSet<()>) -> Result<(), Error> {
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a node agent task panicked");
        }
    }
    Ok(())
}

/// The kubelet endpoint's TLS: the serving certificate the cluster issued, or (run without
/// one) a self-signed one, which the API server will not trust: logs then stay local.
fn server_tls(config: &Config) -> Result<Arc<rustls::ServerConfig>, Error> {
    let serving = match &config.serving {
        Some(s) => s.clone(),
        None => {
            tracing::warn!(
                "no serving certificate from the cluster; `kubectl logs` cannot reach this node"
            );
            let names = vec![config.node_ip.to_string(), config.node_name.clone()];
            let key = rcgen::KeyPair::generate().map_err(|e| Error::Tls(e.to_string()))?;
            let cert = rcgen::CertificateParams::new(names)
                .and_then(|p| p.self_signed(&key))
                .map_err(|e| Error::Tls(e.to_string()))?;
            crate::config::ServingCert {
                ca_pem: cert.pem(),
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            }
        }
    };
    server::tls_config(&serving.ca_pem, &serving.cert_pem, &serving.key_pem)
        .map_err(|e| Error::Tls(e.to_string()))
}

/// The node's pod range: from the flag, from the Node once the controller manager has
/// given one, or as kept from an earlier run (so an edge node restarted offline goes on).
async fn pod_range(
    client: &kube::Client,
    config: &Config,
    shutdown: &CancellationToken,
) -> Option<Ipv4Net> {
    if let Some(r) = config.pod_cidr {
        return Some(r);
    }
    let kept_file = config.data_dir.join("pod-cidr");
    let kept = std::fs::read_to_string(&kept_file)
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Net>().ok());
    let nodes: Api<Node> = Api::all(client.clone());
    let mut warned = false;
    loop {
        let given =
            match tokio::time::timeout(Duration::from_secs(5), nodes.get_opt(&config.node_name))
                .await
            {
                Ok(Ok(Some(n))) => n
                    .spec
                    .and_then(|s| s.pod_cidr)
                    .and_then(|c| c.parse::<Ipv4Net>().ok()),
                _ => None,
            };
        match (given, kept) {
            (Some(r), _) => {
                if kept != Some(r)
                    && let Err(e) = std::fs::write(&kept_file, r.to_string())
                {
                    tracing::warn!(error = %e, "cannot keep the node's pod range on disk");
                }
                return Some(r);
            }
            // Cut off from the API: go on with what we had.
            (None, Some(r)) => return Some(r),
            (None, None) => {
                if !warned {
                    tracing::info!(
                        "waiting for the controller manager to give this node a pod range (spec.podCIDR)"
                    );
                    warned = true;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
