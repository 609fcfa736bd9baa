//! The scheduler's picture of the cluster: every node with what the pods on it (bound, or
//! assumed bound while their binding is in flight) hold. It is fed by watches and by the
//! scheduler's own decisions, and read for every pod, so it never has to ask the API.
//!
//! # The life of a placement
//! 1. The scheduler picks node N for pod P and [`Cache::assume`]s P on N at once: the next
//!    pod already sees N's resources reduced, although the binding has not been sent.
//! 2. The binding succeeds ([`Cache::finish_binding`]) or fails ([`Cache::forget`]: N gets
//!    its resources back and P returns to the queue).
//! 3. The watch brings P bound to N: [`Cache::add_pod`] replaces the assumption with the
//!    real thing. This may come before step 2 — the order does not matter.
//! 4. P is deleted or ends: [`Cache::remove_pod`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::node::NodeFacts;
use crate::pod::{HostPort, PodInfo};
use crate::resources::PodRequests;

/// One node and what it holds.
#[derive(Debug, Default)]
pub struct NodeInfo {
    /// `None` for a node we know only because pods are bound to it (it was deleted, or its
    /// watch event has not come yet); such a node takes no new pods.
    pub facts: Option<Arc<NodeFacts>>,
    pub name: String,
    /// The sum of what its pods request.
    pub requested: PodRequests,
    pub pods: HashMap<String, Arc<PodInfo>>,
    /// Host ports in use, one entry per claim (two pods may share a port on different IPs).
    pub host_ports: Vec<HostPort>,
    /// Pods per owning controller uid, for spreading.
    pub owners: HashMap<String, u32>,
    /// Pods here with required pod anti-affinity terms, which new pods must respect.
    pub anti_affinity_pods: u32,
}

impl NodeInfo {
    fn add(&mut self, pod: Arc<PodInfo>) {
        let d = &pod.demands;
        self.requested.add(&d.requests);
        self.host_ports.extend(d.host_ports.iter().cloned());
        if let Some(owner) = &d.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
        if !d.anti_affinity.is_empty() {
            self.anti_affinity_pods += 1;
        }
        self.pods.insert(pod.uid.clone(), pod);
    }

    fn remove(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let pod = self.pods.remove(uid)?;
        let d = &pod.demands;
        self.requested.subtract(&d.requests);
        for port in &d.host_ports {
            if let Some(i) = self.host_ports.iter().position(|p| p == port) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = &d.owner
            && let Some(n) = self.owners.get_mut(owner)
        {
            *n -= 1;
            if *n == 0 {
                self.owners.remove(owner);
            }
        }
        if !d.anti_affinity.is_empty() {
            self.anti_affinity_pods -= 1;
        }
        Some(pod)
    }

    pub fn pod_count(&self) -> i64 {
        self.pods.len() as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementState {
    /// The API says it is bound there.
    Bound,
    /// We decided it; `binding` while the binding request is in flight.
    Assumed { binding: bool },
}

#[derive(Debug)]
struct Placement {
    node: String,
    state: PlacementState,
}

#[derive(Debug, Default)]
pub struct Cache {
    /// Nodes in a vector, so that one pass over them touches contiguous memory.
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Where each pod we count is, by uid.
    placements: HashMap<String, Placement>,
    /// Labels of each namespace, for affinity terms with a `namespaceSelector`.
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
    /// How many nodes have facts (ghost nodes do not count as "nodes are available").
    known_nodes: usize,
    /// Pods placed anywhere with required anti-affinity terms: while there are none, a pod
    /// without terms of its own need not look at other pods at all.
    anti_affinity_pods: usize,
}

impl Cache {
    /// Every node, ghosts included (skip those without facts).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    #[cfg(test)]
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn anti_affinity_pods(&self) -> usize {
        self.anti_affinity_pods
    }

    /// The number of nodes the API knows of.
    pub fn node_count(&self) -> usize {
        self.known_nodes
    }

    /// Stores a node's facts; true when they differ from what was known (a new node or a
    /// change that may let a waiting pod fit).
    pub fn set_node(&mut self, facts: NodeFacts) -> bool {
        let i = self.slot(&facts.name);
        let node = &mut self.nodes[i];
        if node.facts.as_deref() == Some(&facts) {
            return false;
        }
        if node.facts.is_none() {
            self.known_nodes += 1;
        }
        node.facts = Some(Arc::new(facts));
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].facts.take().is_some() {
            self.known_nodes -= 1;
        }
        self.drop_if_empty(i);
    }

    /// After a relist: forgets the nodes not in `names`.
    pub fn retain_nodes(&mut self, names: &HashSet<String>) {
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.facts.is_some() && !names.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    /// Whether the pod is counted on some node (bound, or assumed).
    pub fn is_placed(&self, uid: &str) -> bool {
        self.placements.contains_key(uid)
    }

    #[cfg(test)]
    pub fn placement(&self, uid: &str) -> Option<(&str, PlacementState)> {
        self.placements.get(uid).map(|p| (p.node.as_str(), p.state))
    }

    /// A pod the API says is bound (it replaces any assumption). Returns true when this
    /// freed something on a node (the pod ended), which may let a waiting pod fit.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) -> bool {
        let Some(node) = pod.node_name.clone() else {
            return false;
        };
        if pod.terminal {
            return self.remove_pod(&pod.uid);
        }
        self.place(pod, node, PlacementState::Bound);
        false
    }

    /// Counts `pod` on `node` before the API has heard of it.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(
            pod,
            node.to_owned(),
            PlacementState::Assumed { binding: true },
        );
    }

    /// The binding went through: the assumption stands until the watch confirms it.
    pub fn finish_binding(&mut self, uid: &str) {
        if let Some(p) = self.placements.get_mut(uid)
            && let PlacementState::Assumed { binding } = &mut p.state
        {
            *binding = false;
        }
    }

    /// The binding failed: the node gets back what the assumption took. A placement the
    /// watch has confirmed meanwhile is kept. True when something was freed.
    pub fn forget(&mut self, uid: &str) -> bool {
        match self.placements.get(uid) {
            Some(p) if matches!(p.state, PlacementState::Assumed { .. }) => self.remove_pod(uid),
            _ => false,
        }
    }

    /// A pod is gone (deleted, ended): its node gets back what it held.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(placement) = self.placements.remove(uid) else {
            return false;
        };
        if let Some(&i) = self.index.get(&placement.node) {
            let removed = self.nodes[i].remove(uid);
            if removed.is_some_and(|p| !p.demands.anti_affinity.is_empty()) {
                self.anti_affinity_pods -= 1;
            }
            self.drop_if_empty(i);
        }
        true
    }

    /// After a relist: forgets the pods not in `uids`, except those whose binding is
    /// still in flight (the list may have been taken before the binding landed).
    pub fn retain_pods(&mut self, uids: &HashSet<String>) {
        let gone: Vec<String> = self
            .placements
            .iter()
            .filter(|(uid, p)| {
                !uids.contains(*uid) && p.state != PlacementState::Assumed { binding: true }
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.remove_pod(&uid);
        }
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: String, state: PlacementState) {
        self.remove_pod(&pod.uid);
        let i = self.slot(&node);
        self.placements
            .insert(pod.uid.clone(), Placement { node, state });
        if !pod.demands.anti_affinity.is_empty() {
            self.anti_affinity_pods += 1;
        }
        self.nodes[i].add(pod);
    }

    /// The index of `name`'s entry, made (without facts) if missing.
    fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.nodes.push(NodeInfo {
            name: name.to_owned(),
            ..NodeInfo::default()
        });
        self.index.insert(name.to_owned(), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// Drops a node entry that has neither facts nor pods.
    fn drop_if_empty(&mut self, i: usize) {
        if self.nodes[i].facts.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        let gone = self.nodes.swap_remove(i);
        self.index.remove(&gone.name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::node;
    use crate::pod::tests::pod;

    fn requesting(name: &str, cpu: &str, node_name: Option<&str>) -> Arc<PodInfo> {
        Arc::new(pod(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node_name, "containers": [
                {"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}},
                 "ports": [{"containerPort": 80, "hostPort": 80}]}
            ]},
        })))
    }

    fn cpu_on(cache: &Cache, node: &str) -> i64 {
        cache.node(node).unwrap().requested.exact.cpu_millis
    }

    #[test]
    fn an_assumption_counts_at_once_and_a_failed_binding_gives_it_back() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4", "8Gi", &[]));
        let p = requesting("p", "1", None);
        cache.assume(p.clone(), "n1");
        assert_eq!(cpu_on(&cache, "n1"), 1000);
        assert_eq!(cache.node("n1").unwrap().host_ports.len(), 1);
        assert!(cache.forget(&p.uid));
        assert_eq!(cpu_on(&cache, "n1"), 0);
        assert!(cache.node("n1").unwrap().host_ports.is_empty());
    }

    #[test]
    fn the_watch_confirms_an_assumption_without_counting_twice() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4", "8Gi", &[]));
        cache.assume(requesting("p", "1", None), "n1");
        cache.add_pod(requesting("p", "1", Some("n1")));
        assert_eq!(cpu_on(&cache, "n1"), 1000);
        // A late failure report does not undo a confirmed placement.
        assert!(!cache.forget("uid-p"));
        assert_eq!(cpu_on(&cache, "n1"), 1000);
        assert_eq!(
            cache.placement("uid-p"),
            Some(("n1", PlacementState::Bound))
        );
    }

    #[test]
    fn an_ended_pod_frees_its_node() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4", "8Gi", &[]));
        cache.add_pod(requesting("p", "1", Some("n1")));
        let mut ended = (*requesting("p", "1", Some("n1"))).clone();
        ended.terminal = true;
        assert!(cache.add_pod(Arc::new(ended)));
        assert_eq!(cpu_on(&cache, "n1"), 0);
    }

    #[test]
    fn pods_on_an_unknown_node_are_kept_until_it_appears() {
        let mut cache = Cache::default();
        cache.add_pod(requesting("p", "1", Some("later")));
        assert_eq!(cache.node_count(), 0);
        assert!(cache.set_node(node("later", "4", "8Gi", &[])));
        assert_eq!(cache.node_count(), 1);
        assert_eq!(cpu_on(&cache, "later"), 1000);
        assert!(
            !cache.set_node(node("later", "4", "8Gi", &[])),
            "unchanged facts are no news"
        );
        cache.remove_node("later");
        assert_eq!(cache.node_count(), 0);
        cache.remove_pod("uid-p");
        assert!(cache.node("later").is_none());
    }

    #[test]
    fn pods_with_anti_affinity_are_counted() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4", "8Gi", &[]));
        let loner = Arc::new(pod(serde_json::json!({
            "metadata": {"name": "loner"},
            "spec": {"containers": [], "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}
            ]}}},
        })));
        cache.assume(loner.clone(), "n1");
        cache.add_pod(Arc::new(PodInfo {
            node_name: Some("n1".into()),
            ..(*loner).clone()
        }));
        assert_eq!(cache.anti_affinity_pods(), 1);
        cache.remove_pod("uid-loner");
        assert_eq!(cache.anti_affinity_pods(), 0);
    }

    #[test]
    fn a_relist_keeps_only_listed_pods_and_bindings_in_flight() {
        let mut cache = Cache::default();
        cache.set_node(node("n1", "4", "8Gi", &[]));
        cache.add_pod(requesting("listed", "1", Some("n1")));
        cache.add_pod(requesting("gone", "1", Some("n1")));
        cache.assume(requesting("binding", "1", None), "n1");
        cache.assume(requesting("bound-unseen", "1", None), "n1");
        cache.finish_binding("uid-bound-unseen");
        cache.retain_pods(&HashSet::from(["uid-listed".to_owned()]));
        assert!(cache.is_placed("uid-listed"));
        assert!(cache.is_placed("uid-binding"));
        assert!(!cache.is_placed("uid-gone"));
        assert!(!cache.is_placed("uid-bound-unseen"));
        assert_eq!(cpu_on(&cache, "n1"), 2000);
    }
}
