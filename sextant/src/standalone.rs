//! `sextant scheduler` and `sextant controller-manager`: the control loops that `sextant
//! server` runs in-process, run alone against any API server (as kube-scheduler and
//! kube-controller-manager run beside kube-apiserver).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sextant_leader::Timing;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Kubeconfig of the cluster to act on (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// The flags of leader election, shared by `sextant server` and both loops run alone.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderArgs {
    /// Seconds the scheduler's and controller manager's leader Leases last: how long a dead
    /// leader blocks its successor.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub leader_lease_seconds: u64,
}

/// The node lifecycle flags, shared by `sextant server` and `sextant controller-manager`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeLifecycleArgs {
    /// Seconds a node may go without renewing its heartbeat Lease before it is marked
    /// NotReady (Unknown) and tainted unreachable.
    #[arg(long, default_value_t = 40, value_name = "SECONDS")]
    pub node_monitor_grace_period: u64,
    /// Seconds pods stay on an unreachable or not-ready node before they are evicted (unless
    /// they tolerate the taint longer).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub pod_eviction_timeout: u64,
    /// The pods' address range, split into one range per node. The default lies inside
    /// loopback (127.0.0.0/8), so pods are reachable on this machine with no network setup.
    #[arg(long, default_value = sextant_controllers::DEFAULT_CLUSTER_CIDR, value_name = "CIDR")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's share of --cluster-cidr (19: 8,190 pods per node).
    #[arg(long, default_value_t = 19, value_name = "BITS")]
    pub node_cidr_mask_size: u8,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ControllerManagerArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub nodes: NodeLifecycleArgs,
}

/// The scheduler's configuration from its flags.
pub(crate) fn scheduler_config(identity: &str, leader: &LeaderArgs) -> sextant_scheduler::Config {
    let mut config = sextant_scheduler::Config::new(identity);
    config.leader = Timing::with_lease_duration(Duration::from_secs(leader.leader_lease_seconds));
    config
}

/// The controller manager's configuration from its flags.
pub(crate) fn controllers_config(
    identity: &str,
    leader: &LeaderArgs,
    nodes: &NodeLifecycleArgs,
) -> sextant_controllers::Config {
    let mut config = sextant_controllers::Config::new(identity);
    config.leader = Timing::with_lease_duration(Duration::from_secs(leader.leader_lease_seconds));
    config.node_grace_period = Duration::from_secs(nodes.node_monitor_grace_period.max(1));
    config.pod_eviction_timeout = Duration::from_secs(nodes.pod_eviction_timeout);
    config.ipam = sextant_controllers::Ipam {
        cluster_cidr: nodes.cluster_cidr,
        node_mask: nodes.node_cidr_mask_size,
    };
    config
}

pub async fn scheduler(args: ClientArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let client = client(&args).await?;
    let identity = crate::server::leader_identity("scheduler");
    let config = scheduler_config(&identity, &args.leader);
    run_until(shutdown, |stop| {
        sextant_scheduler::run(client, config, stop)
    })
    .await;
    Ok(())
}

pub async fn controller_manager(
    args: ControllerManagerArgs,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = client(&args.client).await?;
    let identity = crate::server::leader_identity("controller-manager");
    let config = controllers_config(&identity, &args.client.leader, &args.nodes);
    run_until(shutdown, |stop| {
        sextant_controllers::run(client, config, stop)
    })
    .await;
    Ok(())
}

/// Runs a control loop until the shutdown future resolves, then lets it stop cleanly
/// (it releases its Lease on the way out).
async fn run_until<F, Fut>(shutdown: impl Future<Output = ()>, start: F)
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let stop = CancellationToken::new();
    let running = start(stop.clone());
    tokio::pin!(running);
    tokio::select! {
        () = &mut running => return,
        () = shutdown => {}
    }
    stop.cancel();
    if tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .is_err()
    {
        tracing::warn!("did not stop within 15 s; exiting anyway");
    }
}

async fn client(args: &ClientArgs) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster to act on: pass --kubeconfig (e.g. DATA_DIR/kubeconfig.yaml)")?,
    };
    kube::Client::try_from(config).context("cannot build an API client from the kubeconfig")
}
