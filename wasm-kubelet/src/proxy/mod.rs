//! The node's Service proxy, in the manner of kube-proxy's userspace mode: no iptables, the
//! agent itself listens on every Service's `clusterIP:port` and, for NodePort and
//! LoadBalancer Services, on `NODE_IP:nodePort`, and splices each connection to a ready
//! endpoint on any node, chosen round-robin.
//!
//! Pod and Service addresses all lie in 127.0.0.0/8, where every address can be bound
//! without setup: pods in `--cluster-cidr` (127.128.0.0/9), ClusterIPs in
//! `--service-cluster-ip-range` (127.96.0.0/12).
//!
//! - `table.rs`: [`ServiceTable`], the Services and their ready endpoints per port, from the
//!   Service, EndpointSlice and Endpoints watches below; the wasm host reads it too
//!   ([`ServiceTable::resolve`] for outbound connections, [`ServiceTable::services_in`] for
//!   environment variables);
//! - `listen.rs`: the listeners, reconciled whenever the table changes;
//! - `splice.rs`: one connection, to the first endpoint that accepts.
//!
//! # Caveats
//! - TCP only: UDP and SCTP ports get no listener (a userspace UDP proxy would need per-client
//!   sessions; nothing in the cluster needs it yet).
//! - Endpoints come from EndpointSlices (labelled `kubernetes.io/service-name`), and from the
//!   Endpoints object of a Service that has no slice (Sextant has no slice-mirroring
//!   controller; the `kubernetes` Service has Endpoints only).
//! - `sessionAffinity`, `externalTrafficPolicy`/`internalTrafficPolicy` and topology hints are
//!   not honoured: every ready endpoint of the cluster is a candidate.
//! - Ports below 1024 need the agent to run as root or with `CAP_NET_BIND_SERVICE`.

mod listen;
mod splice;
mod table;

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

pub use splice::connect_any;
pub use table::{
    CLUSTER_DOMAIN, Front, SERVICE_NAME_LABEL, ServiceInfo, ServicePortInfo, ServiceTable,
};

/// What the proxy needs to know about its node.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The address node ports are served on (the node's `InternalIP`).
    pub node_ip: IpAddr,
    /// How long a connection to one endpoint may take before the next is tried.
    pub connect_timeout: Duration,
}

impl ProxyConfig {
    pub fn new(node_ip: IpAddr) -> ProxyConfig {
        ProxyConfig {
            node_ip,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// Keeps `table` filled from the API and serves its Services until `shutdown`. While the API
/// is unreachable the table keeps what it last knew, and traffic keeps flowing.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    table: ServiceTable,
    shutdown: CancellationToken,
) {
    tokio::join!(
        follow::<Service>(Api::all(client.clone()), &table, &shutdown),
        follow::<EndpointSlice>(Api::all(client.clone()), &table, &shutdown),
        follow::<Endpoints>(Api::all(client), &table, &shutdown),
        listen::run(table.clone(), config, shutdown.clone()),
    );
}

/// An object kind the table is kept from.
trait Tracked: kube::Resource + Clone + std::fmt::Debug + Send + 'static {
    const WHAT: &'static str;
    fn apply(table: &ServiceTable, obj: &Self);
    fn delete(table: &ServiceTable, obj: &Self);
    fn replace(table: &ServiceTable, all: &[Self]);
}

impl Tracked for Service {
    const WHAT: &'static str = "Service";
    fn apply(table: &ServiceTable, obj: &Self) {
        table.apply_service(obj);
    }
    fn delete(table: &ServiceTable, obj: &Self) {
        table.delete_service(obj);
    }
    fn replace(table: &ServiceTable, all: &[Self]) {
        table.replace_services(all);
    }
}

impl Tracked for EndpointSlice {
    const WHAT: &'static str = "EndpointSlice";
    fn apply(table: &ServiceTable, obj: &Self) {
        table.apply_slice(obj);
    }
    fn delete(table: &ServiceTable, obj: &Self) {
        table.delete_slice(obj);
    }
    fn replace(table: &ServiceTable, all: &[Self]) {
        table.replace_slices(all);
    }
}

impl Tracked for Endpoints {
    const WHAT: &'static str = "Endpoints";
    fn apply(table: &ServiceTable, obj: &Self) {
        table.apply_endpoints(obj);
    }
    fn delete(table: &ServiceTable, obj: &Self) {
        table.delete_endpoints(obj);
    }
    fn replace(table: &ServiceTable, all: &[Self]) {
        table.replace_endpoints(all);
    }
}

/// Watches every object of kind `K` into the table. A (re)list is gathered whole and swapped
/// in at its end, so that a watch restart never empties the table for a moment.
async fn follow<K>(api: Api<K>, table: &ServiceTable, shutdown: &CancellationToken)
where
    K: Tracked + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Vec<K> = Vec::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            Some(Ok(watcher::Event::Apply(obj))) => K::apply(table, &obj),
            Some(Ok(watcher::Event::Delete(obj))) => K::delete(table, &obj),
            Some(Ok(watcher::Event::Init)) => listing.clear(),
            Some(Ok(watcher::Event::InitApply(obj))) => listing.push(obj),
            Some(Ok(watcher::Event::InitDone)) => K::replace(table, &std::mem::take(&mut listing)),
            Some(Err(e)) => tracing::warn!(
                error = %e,
                "the {} watch failed; Services keep their last known endpoints, retrying",
                K::WHAT
            ),
            None => return,
        }
    }
}
