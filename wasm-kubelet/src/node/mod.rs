//! The Node object and its heartbeat.
//!
//! [`run`] registers this agent's Node (labels, capacity, addresses, `nodeInfo`), then keeps
//! it alive two ways, as kubelet does: it renews the Node's Lease in `kube-node-lease` every
//! quarter of the lease duration ([`lease`]), and posts the Node's status (conditions with a
//! fresh `lastHeartbeatTime`) every status interval ([`status`]). The node-lifecycle
//! controller marks the node Unknown once both fall silent for its grace period (40 s by
//! default), so the Lease period leaves room for three lost renewals.
//!
//! Nothing here is fatal: the API being unreachable is normal on an edge node, and the
//! agent's pods keep running meanwhile. Failed writes are logged and retried with a
//! back-off; a Node deleted under the agent's feet is registered again.
//!
//! - `capacity.rs`: the machine's resources, capacity and allocatable;
//! - `info.rs`: labels and `nodeInfo`;
//! - `status.rs`: the status to post (pure);
//! - `lease.rs`: the Lease and its renewal;
//! - `runtime.rs`: whether the CRI runtime answers ready, which the `sextant.dev/oci` label
//!   follows.

pub mod capacity;
pub mod info;
pub mod lease;
pub mod runtime;
pub mod status;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::status::Facts;

/// The field manager of every write this module makes.
pub const FIELD_MANAGER: &str = "wasm-kubelet";
/// How long one API call may take before it counts as failed (and is retried): a
/// half-open connection must not stall the heartbeat past the controller's grace period.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry delay after a failed write; it doubles up to the write's own period.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// What this node is and how often it says it is alive.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The Node's name (and its Lease's).
    pub name: String,
    /// `status.addresses`: an `InternalIP` (where the API server reaches the kubelet
    /// endpoint) and a `Hostname`.
    pub addresses: Vec<NodeAddress>,
    /// The kubelet endpoint's port, published as `status.daemonEndpoints.kubeletEndpoint`.
    pub kubelet_port: u16,
    /// Labels laid over the defaults of [`info::labels`] (wasm runtime, hostname, os, arch).
    pub labels: BTreeMap<String, String>,
    /// Resources reported verbatim in capacity and allocatable instead of the measured ones.
    pub capacity_overrides: BTreeMap<String, Quantity>,
    /// The `pods` capacity: how many pods the scheduler may place here.
    pub max_pods: u32,
    /// The Lease's `leaseDurationSeconds`; renewed every quarter of it.
    pub lease_duration: Duration,
    /// How often the Node's status (and Ready's `lastHeartbeatTime`) is posted.
    pub status_interval: Duration,
}

impl NodeSpec {
    /// A spec with kubelet's defaults: 40 s lease, status every 10 s, room for 5,000 pods
    /// (wasm pods are small), addresses `internal_ip` and the node name as `Hostname`.
    pub fn new(name: impl Into<String>, internal_ip: IpAddr, kubelet_port: u16) -> NodeSpec {
        let name = name.into();
        NodeSpec {
            addresses: vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: internal_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
            ],
            name,
            kubelet_port,
            labels: BTreeMap::new(),
            capacity_overrides: BTreeMap::new(),
            max_pods: 5000,
            lease_duration: Duration::from_secs(40),
            status_interval: Duration::from_secs(10),
        }
    }

    /// How often the Lease is renewed.
    pub fn lease_period(&self) -> Duration {
        (self.lease_duration / 4).max(Duration::from_millis(100))
    }
}

/// Why one heartbeat write failed (logged, then retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the API server did not answer within {0:?}; check the network to the server (pods keep running)"
    )]
    Timeout(Duration),
    #[error("the API server refused the request: {}", .0.message)]
    Refused(Box<kube::core::Status>),
    #[error("cannot reach the API server ({0}); pods keep running")]
    Unreachable(kube::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Error {
        match e {
            kube::Error::Api(status) => Error::Refused(status),
            other => Error::Unreachable(other),
        }
    }
}

/// The address this machine uses to reach `server` (a URL): the local end of a UDP socket
/// "connected" to it (no packet is sent). That is the address the API server can reach the
/// kubelet endpoint at, so it is the natural `InternalIP`. `None` if `server` does not
/// resolve.
pub async fn internal_ip(server: &str) -> Option<IpAddr> {
    let uri: http::Uri = server.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let target = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
    socket.connect(target).await.ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// Registers the Node and heartbeats it (Lease and status) until `shutdown`. Never returns
/// early: every API failure is logged and retried with a back-off. On shutdown the Node is
/// left as it is (as kubelet does): the node-lifecycle controller judges its silence.
///
/// `oci_ready` says whether the CRI runtime answers ready (`Some(its name)`; always `None`
/// without one): the
/// Node carries `sextant.dev/oci: "true"` exactly while it does, so the scheduler sends OCI
/// pods only to nodes that can run them.
pub async fn run(
    client: kube::Client,
    spec: NodeSpec,
    mut oci_ready: watch::Receiver<Option<String>>,
    shutdown: CancellationToken,
) {
    let heart = Heart {
        nodes: Api::all(client.clone()),
        leases: Api::namespaced(client, lease::NAMESPACE),
        labels: info::labels(&spec.name, &spec.labels),
        facts: Facts::measure(&spec),
        spec,
    };
    let mut node: Option<Node> = None;
    let mut status_at = Instant::now();
    let mut lease_at = Instant::now();
    let mut status_retry = Backoff::new(heart.spec.status_interval);
    let mut lease_retry = Backoff::new(heart.spec.lease_period());
    loop {
        // `biased`: the status write registers the Node, and the Lease wants its uid.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // The runtime came or went: say so now rather than at the next status post.
            Ok(()) = oci_ready.changed() => status_at = Instant::now(),
            () = tokio::time::sleep_until(status_at) => {
                let oci = oci_ready.borrow_and_update().is_some();
                let Some(result) = bounded(&shutdown, heart.post_status(&mut node, oci)).await else {
                    break;
                };
                status_at = Instant::now() + match result {
                    Ok(()) => {
                        if status_retry.failing() {
                            tracing::info!(node = %heart.spec.name, "the node's status is posted again");
                        }
                        status_retry.reset()
                    }
                    Err(error) => {
                        let delay = status_retry.next();
                        tracing::warn!(node = %heart.spec.name, %error, ?delay, "cannot post the node's status; retrying");
                        delay
                    }
                };
            }
            () = tokio::time::sleep_until(lease_at) => {
                let uid = node.as_ref().and_then(|n| n.metadata.uid.as_deref());
                let renewal = lease::renew(&heart.leases, &heart.spec, uid);
                let Some(result) = bounded(&shutdown, renewal).await else {
                    break;
                };
                lease_at = Instant::now() + match result {
                    Ok(()) => {
                        if lease_retry.failing() {
                            tracing::info!(node = %heart.spec.name, "the node's lease is renewed again");
                        }
                        lease_retry.reset()
                    }
                    Err(error) => {
                        let delay = lease_retry.next();
                        tracing::warn!(node = %heart.spec.name, %error, ?delay, "cannot renew the node's lease; retrying");
                        delay
                    }
                };
            }
        }
    }
    tracing::debug!(node = %heart.spec.name, "node heartbeat stopped");
}

/// Runs one API call with [`CALL_TIMEOUT`]; `None` when `shutdown` comes first.
async fn bounded<T>(
    shutdown: &CancellationToken,
    call: impl Future<Output = Result<T, Error>>,
) -> Option<Result<T, Error>> {
    tokio::select! {
        () = shutdown.cancelled() => None,
        r = tokio::time::timeout(CALL_TIMEOUT, call) => {
            Some(r.unwrap_or(Err(Error::Timeout(CALL_TIMEOUT))))
        }
    }
}

/// Everything the heartbeat writes with, fixed at start.
struct Heart {
    nodes: Api<Node>,
    leases: Api<Lease>,
    spec: NodeSpec,
    labels: BTreeMap<String, String>,
    facts: Facts,
}

impl Heart {
    /// Posts the status, registering the Node first when `node` (the API's last copy) is
    /// unknown — at start, or after the Node was deleted.
    async fn post_status(&self, node: &mut Option<Node>, oci: bool) -> Result<(), Error> {
        for _ in 0..2 {
            let current = match node.take() {
                Some(n) => n,
                None => self.register().await?,
            };
            let current = self.label_oci(current, oci).await?;
            let status = status::build(
                &self.spec,
                &self.facts,
                true,
                current.status.as_ref(),
                Timestamp::now(),
            );
            let patch = serde_json::json!({ "status": status });
            match self
                .nodes
                .patch_status(&self.spec.name, &self.params(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => {
                    *node = Some(updated);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tracing::warn!(node = %self.spec.name, "the Node was deleted; registering it again");
                }
                Err(e) => {
                    *node = Some(current);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Creates the Node, or brings an existing one's labels up to date (a restarted agent,
    /// or a node that was registered before): the Node as the API now holds it.
    async fn register(&self) -> Result<Node, Error> {
        let existing = match self.nodes.get_opt(&self.spec.name).await? {
            Some(n) => n,
            None => {
                let node = Node {
                    metadata: ObjectMeta {
                        name: Some(self.spec.name.clone()),
                        labels: Some(self.labels.clone()),
                        ..ObjectMeta::default()
                    },
                    ..Node::default()
                };
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                match self.nodes.create(&params, &node).await {
                    Ok(created) => {
                        tracing::info!(node = %self.spec.name, "registered the Node");
                        return Ok(created);
                    }
                    // Created meanwhile (another agent of the same name?): update it instead.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        self.nodes.get(&self.spec.name).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if !labels_missing(&existing, &self.labels) {
            tracing::info!(node = %self.spec.name, "the Node is registered already");
            return Ok(existing);
        }
        let patch = serde_json::json!({ "metadata": { "labels": self.labels } });
        let updated = self
            .nodes
            .patch(&self.spec.name, &self.params(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(node = %self.spec.name, "the Node is registered already; its labels are updated");
        Ok(updated)
    }

    /// Sets or removes the OCI runtime label to match `ready`; the Node as it now is.
    async fn label_oci(&self, node: Node, ready: bool) -> Result<Node, Error> {
        let label = sextant_api::runtime::OCI_NODE_LABEL;
        let has = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .is_some_and(|v| v == "true");
        if has == ready {
            return Ok(node);
        }
        let value = ready.then_some("true");
        let patch = serde_json::json!({ "metadata": { "labels": { label: value } } });
        let updated = self
            .nodes
            .patch(&self.spec.name, &self.params(), &Patch::Merge(&patch))
            .await?;
        if ready {
            tracing::info!(node = %self.spec.name, "the CRI runtime is ready: the node takes OCI pods");
        } else {
            tracing::warn!(node = %self.spec.name, "the CRI runtime is not ready: the node takes no new OCI pods");
        }
        Ok(updated)
    }

    fn params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }
}

/// Whether `node` lacks one of `wanted` (or holds another value). Labels the operator added
/// to the Node are left alone.
fn labels_missing(node: &Node, wanted: &BTreeMap<String, String>) -> bool {
    let have = node.metadata.labels.as_ref();
    wanted
        .iter()
        .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v))
}

/// Retry delays after failures: doubling from [`FIRST_RETRY`] up to `cap`.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new(cap: Duration) -> Backoff {
        Backoff {
            next: FIRST_RETRY.min(cap),
            cap,
        }
    }

    /// The delay before the next attempt after a failure.
    fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    /// Whether the last attempt failed.
    fn failing(&self) -> bool {
        self.next != FIRST_RETRY.min(self.cap)
    }

    /// After a success: back to the first delay; returns the regular period.
    fn reset(&mut self) -> Duration {
        self.next = FIRST_RETRY.min(self.cap);
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn backoff_doubles_to_the_period_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(3));
        let delays: Vec<_> = (0..5).map(|_| b.next()).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 3000, 3000].map(Duration::from_millis)
        );
        assert!(b.failing());
        assert_eq!(b.reset(), Duration::from_secs(3));
        assert!(!b.failing());
        assert_eq!(b.next(), Duration::from_millis(500));
    }

    #[test]
    fn the_default_spec_renews_four_times_per_lease() {
        let spec = NodeSpec::new("n1", IpAddr::V4(Ipv4Addr::LOCALHOST), 10250);
        assert_eq!(spec.lease_period(), Duration::from_secs(10));
        assert_eq!(spec.addresses[1].type_, "Hostname");
        assert_eq!(spec.addresses[1].address, "n1");
    }

    #[test]
    fn only_missing_or_changed_labels_need_a_patch() {
        let wanted = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let mut node = Node::default();
        assert!(labels_missing(&node, &wanted));
        node.metadata.labels = Some(BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("operator".to_string(), "x".to_string()),
        ]));
        assert!(!labels_missing(&node, &wanted));
        node.metadata.labels = Some(BTreeMap::from([("a".to_string(), "2".to_string())]));
        assert!(labels_missing(&node, &wanted));
    }

    #[tokio::test]
    async fn the_internal_ip_is_the_route_to_the_server() {
        let ip = internal_ip("https://127.0.0.1:6443").await;
        assert_eq!(ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(internal_ip("not a url").await, None);
    }

    /// The loop ends promptly on shutdown even while the API is unreachable.
    #[tokio::test]
    async fn run_survives_an_unreachable_api_and_stops_on_shutdown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener); // nothing listens there now: every call fails fast
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let shutdown = CancellationToken::new();
        let spec = NodeSpec::new("n1", IpAddr::V4(Ipv4Addr::LOCALHOST), 10250);
        let (_oci, oci_ready) = watch::channel(None);
        let task = tokio::spawn(run(client, spec, oci_ready, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(!task.is_finished(), "API failures are not fatal");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stops on shutdown")
            .unwrap();
    }
}
