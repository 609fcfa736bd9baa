//! `sextant server`: one control-plane node.
//!
//! Start-up, in order: data dir → cluster token (`DIR/node-token`, made on first start) →
//! store → listener → bootstrap a new cluster, or join the one `--join` names → serve until
//! the shutdown future resolves → stop serving (in-flight requests get a grace period) →
//! stop the store.
//!
//! Everything is served over HTTPS on `--listen`: the Kubernetes API, the store's peer
//! endpoints (`/sextant.dev/store/v1/`) and the join endpoints (`/sextant.dev/v1/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sextant_apiserver::{Authenticator, Identity, tokens};
use sextant_store::{Store, StoreConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::files::{read_if_exists, write_private};
use crate::join::{self, JoinToken};
use crate::pki::{self, Pki};
use crate::standalone::{LeaderArgs, NodeLifecycleArgs, controllers_config, scheduler_config};
use crate::{https, inprocess, kubeconfig};

/// How long the scheduler and controllers may take to stop and hand over their Leases.
const CONTROL_STOP_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// URL at which clients and other control-plane nodes reach this one (default: https://LISTEN).
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// URL of any node of a running cluster to join, instead of starting a new cluster.
    #[arg(long, requires = "token")]
    pub join: Option<String>,
    /// The cluster's join token (the first server's DATA_DIR/node-token).
    #[arg(long, env = "SEXTANT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds between compactions of watch history: a watch can resume from any
    /// resourceVersion up to this old (Kubernetes compacts every 300).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub compaction_interval: u64,
    #[command(flatten)]
    pub nodes: NodeLifecycleArgs,
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// This server's node name, under which its node agent runs pods (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Run no node agent here: this server serves the control plane only.
    #[arg(long)]
    pub disable_agent: bool,
    /// Where the node agent's kubelet endpoint (logs, health) listens; port 0 takes any free
    /// port, which the Node publishes.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub kubelet_listen: SocketAddr,
    /// A CRI runtime's socket for the node agent's OCI containers. Default: containerd's
    /// usual socket, when it exists; without one the node runs wasm only.
    #[arg(long, value_name = "PATH", conflicts_with = "disable_cri")]
    pub cri_socket: Option<PathBuf>,
    /// Run OCI containers nowhere on this node, even if containerd's socket exists.
    #[arg(long)]
    pub disable_cri: bool,
    /// Services' virtual IPs (ClusterIP), from /12 to /30; the first is the `kubernetes`
    /// Service's. The default lies inside loopback, apart from --cluster-cidr's default.
    /// Every server of a cluster must be given the same range.
    #[arg(long, default_value = sextant_apiserver::DEFAULT_SERVICE_CLUSTER_IP_RANGE, value_name = "CIDR")]
    pub service_cluster_ip_range: sextant_apiserver::ServiceIpRange,
    /// The ports NodePort and LoadBalancer Services get (FIRST-LAST, or FIRST+COUNT).
    #[arg(long, default_value = sextant_apiserver::DEFAULT_SERVICE_NODE_PORT_RANGE, value_name = "PORTS")]
    pub service_node_port_range: sextant_apiserver::NodePortRange,
}

impl ServerArgs {
    /// The Service ranges, checked against the pods' range.
    fn service_ranges(&self) -> anyhow::Result<sextant_apiserver::ServiceRanges> {
        let (ips, pods) = (self.service_cluster_ip_range, self.nodes.cluster_cidr);
        if ips.overlaps(pods.network(), pods.prefix_len()) {
            bail!(
                "--service-cluster-ip-range {ips} overlaps --cluster-cidr {pods}: Services and pods \
                 need addresses apart; pick ranges that do not overlap"
            );
        }
        Ok(sextant_apiserver::ServiceRanges {
            cluster_ip: ips,
            node_ports: self.service_node_port_range,
        })
    }
}

/// Where containerd listens when installed from a distribution's package.
const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

pub async fn run(args: ServerArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // ring is the process-wide crypto provider: it builds with cc alone (aws-lc needs cmake).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let service_ranges = args.service_ranges()?;
    let dir = &args.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server running there? (--listen)",
                args.listen
            )
        })?;
    let local = listener.local_addr()?;
    let creds = credentials(&args, local).await?;
    let url = args
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", client_addr(local)));

    let mut config = StoreConfig::new(dir.join("store"), url.clone(), creds.secret.clone());
    config.progress_interval = Duration::from_secs(5);
    config.compaction_interval = Duration::from_secs(args.compaction_interval.max(1));
    let store = Store::open(config, creds.pki.peer_client()?)
        .await
        .context("cannot open the store")?;

    let auth = Authenticator::default();
    auth.add_token(creds.admin_token.clone(), Identity::admin());
    // The in-process scheduler and controllers authenticate like any client, with a token
    // that lives only as long as this process.
    let control_token = tokens::random_hex(24);
    auth.add_token(control_token.clone(), control_plane_identity());
    let agent = if args.disable_agent {
        None
    } else {
        let config = agent_config(&args, &creds.pki, local)?;
        let token = tokens::random_hex(24);
        auth.add_token(token.clone(), tokens::node_identity(&config.node_name));
        Some((config, token))
    };
    let stop_serving = CancellationToken::new();
    let api = sextant_apiserver::state(store.clone(), auth, stop_serving.clone())
        .with_service_ranges(service_ranges);
    sextant_apiserver::set_kubelet_client(&api, creds.pki.kubelet_connector()?);
    let crd_loop = tokio::spawn(sextant_apiserver::run_crd_loop(api.clone()));
    let bootstrap = join::Bootstrap {
        ca_cert: creds.pki.ca_cert_pem.clone(),
        ca_key: creds.pki.ca_key_pem().to_owned(),
        admin_token: creds.admin_token.clone(),
    };
    let control_router = sextant_apiserver::router(api.clone());
    let app = sextant_apiserver::router(api)
        .merge(sextant_store::router(store.clone()))
        .merge(join::router(&creds.secret, bootstrap, store.clone()));
    let mut server = tokio::spawn(https::serve(
        listener,
        creds.pki.server_config()?,
        app,
        stop_serving.clone(),
        DRAIN_TIMEOUT,
    ));

    let started = async {
        match &args.join {
            Some(seed) => store
                .join(seed)
                .await
                .with_context(|| format!("cannot join the cluster at {seed}"))?,
            None => store
                .bootstrap()
                .await
                .context("cannot start the store as a new cluster")?,
        }
        sextant_apiserver::ensure_defaults(&store)
            .await
            .context("cannot create the system namespaces")?;
        sextant_apiserver::ensure_services(&store, &service_ranges, &url)
            .await
            .context("cannot create the `kubernetes` Service")
    };
    tokio::pin!(shutdown);
    tokio::select! {
        res = started => res?,
        () = &mut shutdown => return stop(store, stop_serving, server, crd_loop, ControlLoops::none()).await,
    }
    let control = ControlLoops::start(&args, &url, control_router, &control_token, agent);
    let kubeconfig = dir.join("kubeconfig.yaml");
    write_private(
        &kubeconfig,
        &kubeconfig::admin(&url, &creds.pki.ca_cert_pem, &creds.admin_token),
    )?;
    let status = store.status()?;
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), node = status.id, voters = status.voters.len(), "sextant server ready");

    tokio::select! {
        () = &mut shutdown => {}
        res = &mut server => {
            res.context("the HTTPS server task failed")?;
            bail!("the HTTPS server stopped unexpectedly");
        }
    }
    stop(store, stop_serving, server, crd_loop, control).await
}

/// Who the in-process control loops are, to the API server.
fn control_plane_identity() -> Identity {
    Identity {
        user: "system:sextant:control-plane".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

/// The scheduler and the controller manager, each campaigning for its own Lease; with three
/// servers, one of each acts (not necessarily on the same server).
struct ControlLoops {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl ControlLoops {
    fn none() -> Self {
        ControlLoops {
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    fn start(
        args: &ServerArgs,
        url: &str,
        api: axum::Router,
        token: &str,
        agent: Option<(wasm_kubelet::Config, String)>,
    ) -> Self {
        let identity = leader_identity(url);
        let scheduler = scheduler_config(&identity, &args.leader);
        let controllers = controllers_config(&identity, &args.leader, &args.nodes);
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let client = inprocess::client(api.clone(), token, "kube-scheduler");
        tasks.spawn(sextant_scheduler::run(client, scheduler, stop.clone()));
        let client = inprocess::client(api.clone(), token, "kube-controller-manager");
        tasks.spawn(sextant_controllers::run(client, controllers, stop.clone()));
        if let Some((config, token)) = agent {
            let client = inprocess::client(api, &token, "kubelet");
            let stop = stop.clone();
            tasks.spawn(async move {
                if let Err(e) = wasm_kubelet::run(client, config, stop).await {
                    tracing::error!(error = %e, "the node agent could not start; this server runs no pods");
                }
            });
        }
        ControlLoops { stop, tasks }
    }

    /// Stops the loops and waits for them; they release their Leases through the API on the
    /// way out, so another server's loops take over at once instead of waiting for expiry.
    /// A write can hang when the store has lost its quorum (the other servers stopped
    /// first): past the timeout the loops are cut, and their Leases simply expire.
    async fn shutdown(mut self) {
        self.stop.cancel();
        let drained = tokio::time::timeout(CONTROL_STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("the scheduler or controllers did not stop in time; cutting them");
            self.tasks.shutdown().await;
        }
    }
}

/// The in-process node agent: its data under `DATA_DIR/agent`, a serving certificate from
/// the cluster CA (so the API server, holding the kubelet client certificate, can read its
/// logs), reachable where the server is.
fn agent_config(
    args: &ServerArgs,
    pki: &Pki,
    local: SocketAddr,
) -> anyhow::Result<wasm_kubelet::Config> {
    let name = match &args.node_name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cannot read the hostname; pass --node-name")?
            .trim()
            .to_lowercase(),
    };
    let mut config = wasm_kubelet::Config::new(&name, args.data_dir.join("agent"));
    config.node_ip = client_addr(local).ip();
    config.kubelet_listen = args.kubelet_listen;
    config.cri_socket = match &args.cri_socket {
        Some(path) => Some(path.clone()),
        None if args.disable_cri => None,
        None => {
            let default = std::path::Path::new(CONTAINERD_SOCKET);
            default.exists().then(|| default.to_path_buf())
        }
    };
    let (cert_pem, key_pem) = pki.issue_kubelet_serving(&name, &[config.node_ip])?;
    config.serving = Some(wasm_kubelet::ServingCert {
        ca_pem: pki.ca_cert_pem.clone(),
        cert_pem,
        key_pem,
    });
    Ok(config)
}

/// Unique per server process: the host, the URL it serves, and a random suffix so that a
/// restarted server does not mistake its predecessor's Lease for its own.
pub fn leader_identity(url: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}_{}", host.trim(), url, &tokens::random_hex(4))
}

/// 0.0.0.0 is where a server listens, not an address a client can dial.
fn client_addr(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
        }
        _ => local,
    }
}

struct Credentials {
    pki: Pki,
    /// The store peers' shared secret (the last part of the join token).
    secret: String,
    admin_token: String,
}

/// This node's certificates and secrets: kept from an earlier start, fetched from the
/// cluster when joining, or made afresh for a new cluster.
async fn credentials(args: &ServerArgs, local: SocketAddr) -> anyhow::Result<Credentials> {
    let dir = &args.data_dir;
    let token_path = dir.join("node-token");
    let admin_path = dir.join("pki").join("admin.token");
    let mut names = vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
    ];
    if !local.ip().is_unspecified() {
        names.push(local.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(h.trim().to_owned());
    }
    if let Some(host) = args
        .advertise_url
        .as_deref()
        .and_then(|u| u.split("://").nth(1))
        .and_then(|r| r.split([':', '/']).next())
    {
        names.push(host.to_owned());
    }
    names.sort();
    names.dedup();

    if let Some(stored) = read_if_exists(&token_path)? {
        let stored = stored.trim().to_owned();
        if let Some(given) = &args.token
            && given.trim() != stored
        {
            bail!(
                "{} holds another cluster's token; use a fresh --data-dir to join a different cluster",
                token_path.display()
            );
        }
        let token = JoinToken::parse(&stored)?;
        let pki = Pki::load_or_create(&dir.join("pki"), None, &names)?;
        let admin_token =
            read_if_exists(&admin_path)?.context("the admin token is missing from DATA_DIR/pki")?;
        return Ok(Credentials {
            pki,
            secret: token.secret,
            admin_token: admin_token.trim().to_owned(),
        });
    }
    let (pki, secret, admin_token) = match (&args.join, &args.token) {
        (Some(url), Some(token)) => {
            let token_parsed = JoinToken::parse(token)?;
            let b = join::fetch(url, &token_parsed).await?;
            let pki = Pki::load_or_create(&dir.join("pki"), Some((b.ca_cert, b.ca_key)), &names)?;
            (pki, token_parsed.secret, b.admin_token)
        }
        (Some(_), None) => bail!("--join needs --token, the first server's DATA_DIR/node-token"),
        (None, _) => {
            let pki = Pki::load_or_create(&dir.join("pki"), None, &names)?;
            (pki, tokens::random_hex(24), tokens::random_hex(24))
        }
    };
    write_private(&admin_path, &admin_token)?;
    write_private(
        &token_path,
        &JoinToken::format(&pki::ca_hash(&pki.ca_cert_pem), &secret),
    )?;
    Ok(Credentials {
        pki,
        secret,
        admin_token,
    })
}

async fn stop(
    store: Store,
    stop_serving: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    crd_loop: tokio::task::JoinHandle<()>,
    control: ControlLoops,
) -> anyhow::Result<()> {
    control.shutdown().await;
    stop_serving.cancel();
    let _ = server.await;
    let _ = crd_loop.await;
    store
        .shutdown()
        .await
        .context("the store did not stop cleanly")?;
    tracing::info!("sextant server stopped");
    Ok(())
}
