//! The routing table: every Service of the cluster with its ready endpoints per port, kept
//! from the Service, EndpointSlice and Endpoints watches and read by the listeners
//! (`listen.rs`) and by the wasm host (outbound connections, Service environment variables).
//!
//! Endpoints come from EndpointSlices; a Service that has none (the API server's own
//! `kubernetes` Service, a Service without a selector whose owner writes Endpoints) is
//! served from its Endpoints object instead, as Kubernetes' slice mirroring would.
//!
//! Reads take a shared lock and never wait on the network; the round-robin turn of each
//! Service port is an atomic counter beside it, so concurrent readers spread their picks
//! without a write lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use tokio::sync::watch;

/// The DNS domain under which Services are named (`NAME.NS.svc.cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service as the table keeps it: what routing and environment variables need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    pub type_: String,
    /// The virtual address; `None` for headless (`clusterIP: None`) and ExternalName
    /// Services, and for one whose address is not allocated yet.
    pub cluster_ip: Option<IpAddr>,
    pub ports: Vec<ServicePortInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    /// The port's name, `""` for the single unnamed port.
    pub name: String,
    pub port: u16,
    /// `TCP` (the default), `UDP` or `SCTP`.
    pub protocol: String,
    pub node_port: Option<u16>,
    pub target_port: Option<IntOrString>,
}

impl ServiceInfo {
    /// The table's view of `svc`; `None` for an object without name or namespace.
    pub fn from_service(svc: &Service) -> Option<ServiceInfo> {
        let namespace = svc.metadata.namespace.clone()?;
        let name = svc.metadata.name.clone()?;
        let spec = svc.spec.clone().unwrap_or_default();
        let type_ = spec.type_.unwrap_or_else(|| "ClusterIP".into());
        let cluster_ip = if type_ == "ExternalName" {
            None
        } else {
            spec.cluster_ip.and_then(|ip| ip.parse().ok())
        };
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(ServicePortInfo {
                    name: p.name.unwrap_or_default(),
                    port: u16::try_from(p.port).ok()?,
                    protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                    node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                    target_port: p.target_port,
                })
            })
            .collect();
        Some(ServiceInfo {
            namespace,
            name,
            type_,
            cluster_ip,
            ports,
        })
    }

    /// Whether the Service is reachable on every node's address (`NodePort`, `LoadBalancer`).
    pub fn has_node_ports(&self) -> bool {
        matches!(self.type_.as_str(), "NodePort" | "LoadBalancer")
    }
}

/// Where a listener receives connections: a Service's `clusterIP:port`, or a node port on
/// the node's address. The listeners are the table's [`ServiceTable::fronts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Front {
    Cluster(SocketAddr),
    Node(u16),
}

/// (namespace, name)
type Key = (String, String);

/// The Services of the cluster and their ready endpoints; a cheap handle, shared by clones.
#[derive(Clone, Default)]
pub struct ServiceTable {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    /// Bumped on every change, so that the listeners reconcile.
    changed: watch::Sender<u64>,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            state: RwLock::default(),
            changed: watch::Sender::new(0),
        }
    }
}

#[derive(Default)]
struct State {
    services: HashMap<Key, Entry>,
    /// The slices of each Service (by the Service they name, then by slice name), kept
    /// apart from `services` so that slices arriving before their Service are not lost.
    slices: HashMap<Key, BTreeMap<String, Slice>>,
    /// (namespace, slice name) → the Service the slice was filed under.
    slice_owner: HashMap<Key, Key>,
    /// Each Endpoints object, one [`Slice`] per subset: used for a Service without slices.
    endpoints: HashMap<Key, Vec<Slice>>,
    by_ip: HashMap<IpAddr, Key>,
    by_node_port: HashMap<u16, Key>,
}

struct Entry {
    info: ServiceInfo,
    /// Per port of `info.ports` (same order): its ready endpoints, sorted.
    ready: Vec<Vec<SocketAddr>>,
    /// Every ready address, whatever the ports: what a headless Service's name answers.
    ready_ips: Vec<IpAddr>,
    /// Round-robin turns: one per port, then one for `ready_ips`.
    turns: Vec<AtomicUsize>,
}

/// An EndpointSlice reduced to what routing needs.
struct Slice {
    ports: Vec<SlicePort>,
    /// Each endpoint's first address (the one consumers use) and whether it is ready.
    endpoints: Vec<(IpAddr, bool)>,
}

struct SlicePort {
    name: String,
    protocol: String,
    port: u16,
}

impl Slice {
    fn from_slice(slice: &EndpointSlice) -> Slice {
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|e| {
                let ip = e.addresses.first()?.parse().ok()?;
                // Kubernetes: an unknown readiness is read as ready.
                let ready = e.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                Some((ip, ready))
            })
            .collect();
        Slice { ports, endpoints }
    }
}

impl Slice {
    /// The slices an Endpoints object amounts to: one per subset.
    fn from_endpoints(endpoints: &Endpoints) -> Vec<Slice> {
        let addresses = |list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>,
                         ready: bool| {
            list.iter()
                .flatten()
                .filter_map(move |a| Some((a.ip.parse().ok()?, ready)))
                .collect::<Vec<_>>()
        };
        endpoints
            .subsets
            .iter()
            .flatten()
            .map(|subset| Slice {
                ports: subset
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        Some(SlicePort {
                            name: p.name.clone().unwrap_or_default(),
                            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                            port: u16::try_from(p.port).ok()?,
                        })
                    })
                    .collect(),
                endpoints: [
                    addresses(&subset.addresses, true),
                    addresses(&subset.not_ready_addresses, false),
                ]
                .concat(),
            })
            .collect()
    }
}

fn slice_service(slice: &EndpointSlice) -> Option<Key> {
    Some((
        slice.metadata.namespace.clone()?,
        slice.labels().get(SERVICE_NAME_LABEL)?.clone(),
    ))
}

fn endpoints_key(endpoints: &Endpoints) -> Option<Key> {
    Some((
        endpoints.metadata.namespace.clone()?,
        endpoints.metadata.name.clone()?,
    ))
}

fn slice_key(slice: &EndpointSlice) -> Option<Key> {
    Some((
        slice.metadata.namespace.clone()?,
        slice.metadata.name.clone()?,
    ))
}

/// A host as a pod may name a Service.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Ip(IpAddr),
    Service(Key),
}

/// Reads `host` as a Service name relative to `namespace`: `NAME`, `NAME.NS`, `NAME.NS.svc`,
/// `NAME.NS.svc.cluster.local` (any case, one trailing dot allowed), or an IP address.
fn parse_name(host: &str, namespace: &str) -> Option<Name> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse() {
        return Some(Name::Ip(ip));
    }
    let host = host.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    let domain: Vec<&str> = CLUSTER_DOMAIN.split('.').collect();
    let (name, ns) = match labels.as_slice() {
        [name] => (*name, namespace),
        [name, ns] | [name, ns, "svc"] => (*name, *ns),
        [name, ns, "svc", rest @ ..] if rest == domain.as_slice() => (*name, *ns),
        _ => return None,
    };
    Some(Name::Service((ns.to_owned(), name.to_owned())))
}

/// `list` starting at the next turn, then the others in order: the round-robin pick first,
/// the fallbacks after it.
fn rotated<T: Copy>(list: &[T], turn: &AtomicUsize) -> Vec<T> {
    if list.is_empty() {
        return Vec::new();
    }
    let start = turn.fetch_add(1, Ordering::Relaxed) % list.len();
    list[start..]
        .iter()
        .chain(&list[..start])
        .copied()
        .collect()
}

impl ServiceTable {
    pub fn new() -> ServiceTable {
        ServiceTable::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change of the table (the listeners reconcile on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// The next ready endpoint of the Service `host` names, round-robin, for a connection
    /// to `host:port` from a pod in `namespace_of_caller`. `host` is a ClusterIP or a
    /// Service name (`NAME`, `NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.cluster.local`, a
    /// trailing dot allowed). For a headless Service the port is kept and the address is one
    /// of its ready endpoints', as its DNS name would answer. `None`: no such Service port,
    /// or no ready endpoint (the connection should be refused).
    pub fn resolve(&self, host: &str, port: u16, namespace_of_caller: &str) -> Option<SocketAddr> {
        self.resolve_all(host, port, namespace_of_caller)
            .into_iter()
            .next()
    }

    /// Every ready endpoint for `host:port`, the round-robin pick first: a caller that finds
    /// the first refusing tries the next ones, as the node's listeners do.
    pub fn resolve_all(&self, host: &str, port: u16, namespace_of_caller: &str) -> Vec<SocketAddr> {
        let state = self.read();
        let entry = match parse_name(host, namespace_of_caller) {
            Some(Name::Ip(ip)) => state.by_ip.get(&ip).and_then(|k| state.services.get(k)),
            Some(Name::Service(key)) => state.services.get(&key),
            None => None,
        };
        let Some(entry) = entry else {
            return Vec::new();
        };
        if entry.info.cluster_ip.is_some() {
            return entry.port_endpoints(port);
        }
        if entry.info.type_ == "ExternalName" {
            return Vec::new();
        }
        let turn = entry.turns.last().expect("one turn beyond the ports");
        rotated(&entry.ready_ips, turn)
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    }

    /// The Services of `namespace` that have a ClusterIP, by name: those Kubernetes gives
    /// `{NAME}_SERVICE_HOST`/`_PORT` environment variables for.
    pub fn services_in(&self, namespace: &str) -> Vec<ServiceInfo> {
        let state = self.read();
        let mut found: Vec<ServiceInfo> = state
            .services
            .values()
            .filter(|e| e.info.namespace == namespace && e.info.cluster_ip.is_some())
            .map(|e| e.info.clone())
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// Whether `host` belongs to the cluster rather than the outside world: a ClusterIP in
    /// the table, any `….svc` or `….svc.cluster.local` name (whether or not the Service
    /// exists, as the cluster's DNS would answer for it), or `NAME.NS` of an existing
    /// Service. A bare `NAME` is cluster-relative only to a namespace: [`Self::resolve`]
    /// answers for it.
    pub fn is_cluster_name(&self, host: &str) -> bool {
        let trimmed = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match parse_name(host, "") {
            Some(Name::Ip(ip)) => self.read().by_ip.contains_key(&ip),
            Some(Name::Service(key)) => {
                let suffixed = trimmed.ends_with(".svc")
                    || trimmed.ends_with(&format!(".svc.{CLUSTER_DOMAIN}"));
                suffixed || (!key.0.is_empty() && self.read().services.contains_key(&key))
            }
            None => false,
        }
    }

    /// The listeners the node should have: `clusterIP:port` for every TCP port of every
    /// Service with a ClusterIP, and `nodePort` for those of NodePort and LoadBalancer
    /// Services; each with the Service's `namespace/name`.
    pub fn fronts(&self) -> BTreeMap<Front, String> {
        let state = self.read();
        let mut fronts = BTreeMap::new();
        for entry in state.services.values() {
            let Some(ip) = entry.info.cluster_ip else {
                continue;
            };
            let who = format!("{}/{}", entry.info.namespace, entry.info.name);
            for p in entry.info.ports.iter().filter(|p| p.protocol == "TCP") {
                fronts.insert(Front::Cluster(SocketAddr::new(ip, p.port)), who.clone());
                if entry.info.has_node_ports()
                    && let Some(n) = p.node_port
                {
                    fronts.insert(Front::Node(n), who.clone());
                }
            }
        }
        fronts
    }

    /// Where a connection to `front` should go: its Service port's ready endpoints, the
    /// round-robin pick first. Empty when nothing serves it.
    pub fn targets(&self, front: Front) -> Vec<SocketAddr> {
        let state = self.read();
        match front {
            Front::Cluster(addr) => state
                .by_ip
                .get(&addr.ip())
                .and_then(|k| state.services.get(k))
                .map(|e| e.port_endpoints(addr.port()))
                .unwrap_or_default(),
            Front::Node(node_port) => {
                let Some(entry) = state
                    .by_node_port
                    .get(&node_port)
                    .and_then(|k| state.services.get(k))
                else {
                    return Vec::new();
                };
                match entry
                    .info
                    .ports
                    .iter()
                    .position(|p| p.node_port == Some(node_port) && p.protocol == "TCP")
                {
                    Some(i) if entry.info.has_node_ports() => {
                        rotated(&entry.ready[i], &entry.turns[i])
                    }
                    _ => Vec::new(),
                }
            }
        }
    }

    /// Adds or updates a Service.
    pub fn apply_service(&self, svc: &Service) {
        if let Some(info) = ServiceInfo::from_service(svc) {
            self.write().put_service(info);
            self.notify();
        }
    }

    /// Removes a Service (its slices stay, for a Service that comes back).
    pub fn delete_service(&self, svc: &Service) {
        if let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) {
            self.write().remove_service(&(ns.clone(), name.clone()));
            self.notify();
        }
    }

    /// Replaces every Service with `services` (a fresh list after a watch restart).
    pub fn replace_services(&self, services: &[Service]) {
        {
            let mut state = self.write();
            let fresh: HashMap<Key, ServiceInfo> = services
                .iter()
                .filter_map(ServiceInfo::from_service)
                .map(|i| ((i.namespace.clone(), i.name.clone()), i))
                .collect();
            let gone: Vec<Key> = state
                .services
                .keys()
                .filter(|k| !fresh.contains_key(*k))
                .cloned()
                .collect();
            for key in gone {
                state.remove_service(&key);
            }
            for info in fresh.into_values() {
                state.put_service(info);
            }
        }
        self.notify();
    }

    /// Adds or updates an EndpointSlice.
    pub fn apply_slice(&self, slice: &EndpointSlice) {
        let Some(id) = slice_key(slice) else {
            return;
        };
        {
            let mut state = self.write();
            state.remove_slice(&id);
            if let Some(service) = slice_service(slice) {
                state.put_slice(id, service, Slice::from_slice(slice));
            }
        }
        self.notify();
    }

    pub fn delete_slice(&self, slice: &EndpointSlice) {
        if let Some(id) = slice_key(slice) {
            self.write().remove_slice(&id);
            self.notify();
        }
    }

    /// Adds or updates an Endpoints object (read only for a Service without slices).
    pub fn apply_endpoints(&self, endpoints: &Endpoints) {
        if let Some(key) = endpoints_key(endpoints) {
            let mut state = self.write();
            state
                .endpoints
                .insert(key.clone(), Slice::from_endpoints(endpoints));
            state.refresh(&key);
        }
        self.notify();
    }

    pub fn delete_endpoints(&self, endpoints: &Endpoints) {
        if let Some(key) = endpoints_key(endpoints) {
            let mut state = self.write();
            state.endpoints.remove(&key);
            state.refresh(&key);
        }
        self.notify();
    }

    /// Replaces every Endpoints object with `all`.
    pub fn replace_endpoints(&self, all: &[Endpoints]) {
        {
            let mut state = self.write();
            let old: Vec<Key> = state.endpoints.drain().map(|(k, _)| k).collect();
            for e in all {
                if let Some(key) = endpoints_key(e) {
                    state.endpoints.insert(key, Slice::from_endpoints(e));
                }
            }
            let touched: BTreeSet<Key> = old
                .into_iter()
                .chain(state.endpoints.keys().cloned())
                .collect();
            for key in touched {
                state.refresh(&key);
            }
        }
        self.notify();
    }

    /// Replaces every EndpointSlice with `slices`.
    pub fn replace_slices(&self, slices: &[EndpointSlice]) {
        {
            let mut state = self.write();
            let ids: Vec<Key> = state.slice_owner.keys().cloned().collect();
            for id in ids {
                state.remove_slice(&id);
            }
            for slice in slices {
                if let (Some(id), Some(service)) = (slice_key(slice), slice_service(slice)) {
                    state.put_slice(id, service, Slice::from_slice(slice));
                }
            }
        }
        self.notify();
    }
}

impl Entry {
    /// The endpoints of the port numbered `port` (TCP preferred, as connections are),
    /// rotated for round-robin.
    fn port_endpoints(&self, port: u16) -> Vec<SocketAddr> {
        let ports = &self.info.ports;
        let i = ports
            .iter()
            .position(|p| p.port == port && p.protocol == "TCP")
            .or_else(|| ports.iter().position(|p| p.port == port));
        match i {
            Some(i) => rotated(&self.ready[i], &self.turns[i]),
            None => Vec::new(),
        }
    }
}

impl State {
    fn put_service(&mut self, info: ServiceInfo) {
        let key = (info.namespace.clone(), info.name.clone());
        // Round-robin turns carry over by port name, so a re-applied Service keeps spreading.
        let old_turns: HashMap<String, usize> = self
            .services
            .get(&key)
            .map(|old| {
                old.info
                    .ports
                    .iter()
                    .zip(&old.turns)
                    .map(|(p, t)| (p.name.clone(), t.load(Ordering::Relaxed)))
                    .collect()
            })
            .unwrap_or_default();
        self.unindex(&key);
        let turns = info
            .ports
            .iter()
            .map(|p| AtomicUsize::new(old_turns.get(&p.name).copied().unwrap_or(0)))
            .chain([AtomicUsize::new(0)])
            .collect();
        if let Some(ip) = info.cluster_ip {
            self.by_ip.insert(ip, key.clone());
        }
        if info.has_node_ports() {
            for n in info.ports.iter().filter_map(|p| p.node_port) {
                self.by_node_port.insert(n, key.clone());
            }
        }
        self.services.insert(
            key.clone(),
            Entry {
                info,
                ready: Vec::new(),
                ready_ips: Vec::new(),
                turns,
            },
        );
        self.refresh(&key);
    }

    fn remove_service(&mut self, key: &Key) {
        self.unindex(key);
        self.services.remove(key);
    }

    /// Drops the index entries that point at `key`.
    fn unindex(&mut self, key: &Key) {
        self.by_ip.retain(|_, k| k != key);
        self.by_node_port.retain(|_, k| k != key);
    }

    fn put_slice(&mut self, id: Key, service: Key, slice: Slice) {
        self.slices
            .entry(service.clone())
            .or_default()
            .insert(id.1.clone(), slice);
        self.slice_owner.insert(id, service.clone());
        self.refresh(&service);
    }

    fn remove_slice(&mut self, id: &Key) {
        let Some(service) = self.slice_owner.remove(id) else {
            return;
        };
        if let Some(slices) = self.slices.get_mut(&service) {
            slices.remove(&id.1);
            if slices.is_empty() {
                self.slices.remove(&service);
            }
        }
        self.refresh(&service);
    }

    /// Recomputes a Service's ready endpoints from its slices (or, having none, from its
    /// Endpoints): per Service port, the addresses of ready endpoints with the number of the
    /// slice port of the same name and protocol.
    fn refresh(&mut self, key: &Key) {
        let Some(entry) = self.services.get_mut(key) else {
            return;
        };
        let slices: Vec<&Slice> = match self.slices.get(key) {
            Some(slices) if !slices.is_empty() => slices.values().collect(),
            _ => self.endpoints.get(key).into_iter().flatten().collect(),
        };
        let mut ready: Vec<BTreeSet<SocketAddr>> = vec![BTreeSet::new(); entry.info.ports.len()];
        let mut ready_ips = BTreeSet::new();
        for slice in slices {
            let ips = slice
                .endpoints
                .iter()
                .filter(|(_, r)| *r)
                .map(|(ip, _)| *ip);
            ready_ips.extend(ips.clone());
            for (i, port) in entry.info.ports.iter().enumerate() {
                for sp in &slice.ports {
                    if sp.name == port.name && sp.protocol == port.protocol {
                        ready[i].extend(ips.clone().map(|ip| SocketAddr::new(ip, sp.port)));
                    }
                }
            }
        }
        entry.ready = ready.into_iter().map(|s| s.into_iter().collect()).collect();
        entry.ready_ips = ready_ips.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn service(ns: &str, name: &str, spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name}, "spec": spec,
        }))
        .unwrap()
    }

    /// A slice of `service` with `ports` (name → number) and endpoints (ip, ready).
    fn slice(
        ns: &str,
        name: &str,
        service: &str,
        ports: &[(&str, u16)],
        endpoints: &[(&str, Option<bool>)],
    ) -> EndpointSlice {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"}))
            .collect();
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|(ip, ready)| match ready {
                Some(r) => json!({"addresses": [ip], "conditions": {"ready": r}}),
                None => json!({"addresses": [ip]}),
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name,
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
        }))
        .unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Web in `shop`: http 80 → 8080 and metrics 9090 → 9100; two ready pods.
    fn web() -> ServiceTable {
        let table = ServiceTable::new();
        table.apply_service(&service(
            "shop",
            "web",
            json!({"type": "NodePort", "clusterIP": "127.96.0.10", "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"},
            ]}),
        ));
        table.apply_slice(&slice(
            "shop",
            "web-abc",
            "web",
            &[("http", 8080), ("metrics", 9100)],
            &[("127.128.0.2", Some(true)), ("127.128.0.3", None)],
        ));
        table
    }

    #[test]
    fn every_name_form_resolves_and_others_do_not() {
        let table = web();
        let pods = [addr("127.128.0.2:8080"), addr("127.128.0.3:8080")];
        for host in [
            "127.96.0.10",
            "web.shop",
            "web.shop.",
            "web.shop.svc",
            "WEB.shop.svc.cluster.local",
            "web.shop.svc.cluster.local.",
        ] {
            let got = table.resolve(host, 80, "elsewhere");
            assert!(got.is_some_and(|a| pods.contains(&a)), "{host}: {got:?}");
        }
        assert!(table.resolve("web", 80, "shop").is_some());
        // A bare name is relative to the caller's namespace.
        assert_eq!(table.resolve("web", 80, "default"), None);
        for host in [
            "web.other",
            "web.shop.svc.example.com",
            "web.shop.cluster.local",
            "web..shop",
            "127.96.0.11",
            "example.com",
        ] {
            assert_eq!(table.resolve(host, 80, "shop"), None, "{host}");
        }
        // A port the Service does not have.
        assert_eq!(table.resolve("web.shop", 8080, "shop"), None);
    }

    #[test]
    fn cluster_names_are_told_from_outside_ones() {
        let table = web();
        for host in [
            "127.96.0.10",
            "web.shop",
            "nosuch.shop.svc",
            "nosuch.ns.svc.cluster.local.",
        ] {
            assert!(table.is_cluster_name(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1", "web", "localhost", "a.b.c"] {
            assert!(!table.is_cluster_name(host), "{host}");
        }
    }

    #[test]
    fn named_ports_map_to_their_slice_ports() {
        let table = web();
        let metrics = table.resolve_all("web.shop", 9090, "");
        assert_eq!(
            BTreeSet::from_iter(metrics),
            BTreeSet::from([addr("127.128.0.2:9100"), addr("127.128.0.3:9100")])
        );
        // A slice port with another name serves no Service port.
        table.apply_slice(&slice(
            "shop",
            "web-abc",
            "web",
            &[("other", 7000)],
            &[("127.128.0.2", Some(true))],
        ));
        assert_eq!(table.resolve("web.shop", 80, ""), None);
    }

    #[test]
    fn picks_go_round_robin_with_the_rest_as_fallbacks() {
        let table = web();
        let picks: Vec<SocketAddr> = (0..4)
            .map(|_| table.resolve("web.shop", 80, "").unwrap())
            .collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        assert_eq!(picks[1], picks[3]);
        let all = table.resolve_all("web.shop", 80, "");
        assert_eq!(all.len(), 2);
        assert_ne!(all[0], all[1]);
        // Node ports and ClusterIP listeners pick the same way.
        let a = table.targets(Front::Node(30080));
        let b = table.targets(Front::Node(30080));
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], b[0]);
        assert_eq!(
            table.targets(Front::Cluster(addr("127.96.0.10:80"))).len(),
            2
        );
    }

    #[test]
    fn only_ready_endpoints_are_picked() {
        let table = web();
        table.apply_slice(&slice(
            "shop",
            "web-abc",
            "web",
            &[("http", 8080)],
            &[("127.128.0.2", Some(false)), ("127.128.0.3", Some(true))],
        ));
        for _ in 0..3 {
            assert_eq!(
                table.resolve("web.shop", 80, ""),
                Some(addr("127.128.0.3:8080"))
            );
        }
        // Endpoints from several slices add up; duplicates count once.
        table.apply_slice(&slice(
            "shop",
            "web-def",
            "web",
            &[("http", 8080)],
            &[("127.128.0.3", Some(true)), ("127.128.0.4", Some(true))],
        ));
        assert_eq!(table.resolve_all("web.shop", 80, "").len(), 2);
        table.delete_slice(&slice("shop", "web-def", "web", &[], &[]));
        table.delete_slice(&slice("shop", "web-abc", "web", &[], &[]));
        assert_eq!(table.resolve("web.shop", 80, ""), None);
        assert!(table.targets(Front::Node(30080)).is_empty());
    }

    #[test]
    fn slices_before_their_service_and_relists_are_kept_straight() {
        let table = ServiceTable::new();
        let s = slice(
            "ns",
            "api-1",
            "api",
            &[("", 8443)],
            &[("127.128.1.2", Some(true))],
        );
        table.apply_slice(&s);
        let svc = service(
            "ns",
            "api",
            json!({"clusterIP": "127.96.0.20", "ports": [{"port": 443}]}),
        );
        table.apply_service(&svc);
        assert_eq!(
            table.resolve("api.ns", 443, ""),
            Some(addr("127.128.1.2:8443"))
        );
        // A relist without the Service removes it and its listeners.
        table.replace_services(&[]);
        assert_eq!(table.resolve("127.96.0.20", 443, ""), None);
        assert!(table.fronts().is_empty());
        table.replace_services(std::slice::from_ref(&svc));
        assert!(table.resolve("api.ns", 443, "").is_some());
        table.replace_slices(&[]);
        assert_eq!(table.resolve("api.ns", 443, ""), None);
    }

    #[test]
    fn endpoints_serve_a_service_without_slices() {
        let table = ServiceTable::new();
        table.apply_service(&service(
            "default",
            "kubernetes",
            json!({"clusterIP": "127.96.0.1", "ports": [
                {"name": "https", "port": 443, "targetPort": 6443}]}),
        ));
        let endpoints: Endpoints = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "kubernetes"},
            "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                         "notReadyAddresses": [{"ip": "127.0.0.2"}],
                         "ports": [{"name": "https", "port": 6443}]}],
        }))
        .unwrap();
        table.apply_endpoints(&endpoints);
        assert_eq!(
            table.resolve_all("kubernetes.default", 443, ""),
            [addr("127.0.0.1:6443")]
        );
        // Slices, once there, take over.
        table.apply_slice(&slice(
            "default",
            "kubernetes",
            "kubernetes",
            &[("https", 7443)],
            &[("127.0.0.3", Some(true))],
        ));
        assert_eq!(
            table.resolve("kubernetes.default", 443, ""),
            Some(addr("127.0.0.3:7443"))
        );
        table.replace_slices(&[]);
        table.replace_endpoints(&[]);
        assert_eq!(table.resolve("kubernetes.default", 443, ""), None);
        table.apply_endpoints(&endpoints);
        table.delete_endpoints(&endpoints);
        assert_eq!(table.resolve("kubernetes.default", 443, ""), None);
    }

    #[test]
    fn headless_and_external_names_have_no_listeners() {
        let table = ServiceTable::new();
        table.apply_service(&service(
            "ns",
            "db",
            json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        ));
        table.apply_service(&service(
            "ns",
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com",
                   "ports": [{"port": 80}]}),
        ));
        table.apply_slice(&slice(
            "ns",
            "db-1",
            "db",
            &[("", 5432)],
            &[("127.128.2.2", Some(true))],
        ));
        assert!(table.fronts().is_empty());
        // A headless name answers with a pod's address, on the port asked for.
        assert_eq!(
            table.resolve("db.ns", 6000, ""),
            Some(addr("127.128.2.2:6000"))
        );
        assert_eq!(table.resolve("ext.ns", 80, ""), None);
        assert!(table.services_in("ns").is_empty());
    }

    #[test]
    fn fronts_and_env_services_follow_the_services() {
        let table = web();
        table.apply_service(&service(
            "shop",
            "cache",
            json!({"clusterIP": "127.96.0.11", "ports": [
                {"port": 6379}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        ));
        let fronts: Vec<Front> = table.fronts().into_keys().collect();
        assert_eq!(
            fronts,
            vec![
                Front::Cluster(addr("127.96.0.10:80")),
                Front::Cluster(addr("127.96.0.10:9090")),
                Front::Cluster(addr("127.96.0.11:6379")),
                Front::Node(30080),
            ]
        );
        let names: Vec<String> = table
            .services_in("shop")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["cache", "web"]);
        // A NodePort Service turned ClusterIP loses its node port.
        table.apply_service(&service(
            "shop",
            "web",
            json!({"clusterIP": "127.96.0.10", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080}]}),
        ));
        assert!(!table.fronts().contains_key(&Front::Node(30080)));
        assert!(table.targets(Front::Node(30080)).is_empty());
        // The endpoints stay through the update.
        assert_eq!(table.resolve_all("web.shop", 80, "").len(), 2);
        table.delete_service(&service("shop", "web", json!({})));
        assert_eq!(table.fronts().len(), 1);
        assert!(table.services_in("other").is_empty());
    }
}
