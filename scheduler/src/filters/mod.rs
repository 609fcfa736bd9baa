//! Filters: each says whether one node can take the pod, and if not, why, in the words
//! kube-scheduler uses (they end up counted in the pod's `PodScheduled` condition).
//!
//! [`FILTERS`] lists them in the order they run; a node's first failing filter gives its
//! reasons, as in kube-scheduler, where the cheap checks on the node alone come first.

mod node_affinity;
mod node_state;
pub mod pod_affinity;
mod ports;
mod resources;
mod runtime;
pub mod taints;

use std::fmt;

use sextant_api::runtime::Runtime;

use crate::cache::{Cache, NodeInfo};
use crate::node::NodeFacts;
use crate::pod::PodInfo;

pub use node_affinity::term_matches as node_selector_term_matches;

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Cordoned (`spec.unschedulable`).
    Unschedulable,
    /// Its `Ready` condition is not `True`.
    NotReady,
    UntoleratedTaint {
        key: String,
        value: String,
    },
    /// `nodeSelector` or required node affinity.
    NodeAffinity,
    MissingRuntime(Runtime),
    HostPorts,
    TooManyPods,
    /// Not enough of a resource left (`cpu`, `memory`, `nvidia.com/gpu`).
    Insufficient(String),
    PodAffinity,
    PodAntiAffinity,
    /// A pod already there has anti-affinity against this one.
    ExistingPodsAntiAffinity,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NotReady => f.write_str("node(s) were not ready"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => {
                f.write_str("node(s) didn't match Pod's node affinity/selector")
            }
            Reason::MissingRuntime(r) => write!(f, "node(s) lack the {} runtime", r.display_name()),
            Reason::HostPorts => {
                f.write_str("node(s) didn't have free ports for the requested pod ports")
            }
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Reason::PodAffinity => f.write_str("node(s) didn't match pod affinity rules"),
            Reason::PodAntiAffinity => f.write_str("node(s) didn't match pod anti-affinity rules"),
            Reason::ExistingPodsAntiAffinity => {
                f.write_str("node(s) didn't satisfy existing pods anti-affinity rules")
            }
        }
    }
}

/// A filter's answer: the node fits, or these reasons say why not (usually one; the
/// resource filter names every resource that is short).
pub type Verdict = Result<(), Vec<Reason>>;

fn unfit(reason: Reason) -> Verdict {
    Err(vec![reason])
}

/// One pod being placed, with what its filters compute once rather than per node.
pub struct Attempt<'a> {
    pub pod: &'a PodInfo,
    pub pod_affinity: pod_affinity::State<'a>,
}

impl<'a> Attempt<'a> {
    pub fn new(pod: &'a PodInfo, cache: &'a Cache) -> Attempt<'a> {
        Attempt {
            pod,
            pod_affinity: pod_affinity::State::compute(pod, cache),
        }
    }
}

type Filter = fn(&Attempt<'_>, &NodeInfo, &NodeFacts) -> Verdict;

/// Every filter, in the order they run (kube-scheduler's order, with the runtime check
/// beside node affinity since both read only the node's labels).
pub const FILTERS: &[(&str, Filter)] = &[
    ("NodeUnschedulable", node_state::schedulable),
    ("NodeReady", node_state::ready),
    ("TaintToleration", taints::filter),
    ("NodeAffinity", node_affinity::filter),
    ("NodeRuntime", runtime::filter),
    ("NodePorts", ports::filter),
    ("NodeResourcesFit", resources::filter),
    ("InterPodAffinity", pod_affinity::filter),
];

/// Runs the filters until one fails. A node without facts (known only from its pods)
/// takes nothing and is not asked.
pub fn check(attempt: &Attempt<'_>, node: &NodeInfo, facts: &NodeFacts) -> Verdict {
    for (_, filter) in FILTERS {
        filter(attempt, node, facts)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pod::tests::pod;

    /// Runs every filter for `pod` against node `name` of `cache`.
    pub fn verdict(cache: &Cache, pod: &PodInfo, name: &str) -> Verdict {
        let node = cache.node(name).expect("the node is in the cache");
        check(
            &Attempt::new(pod, cache),
            node,
            node.facts.as_deref().unwrap(),
        )
    }

    /// A pod with one container of `image` and the extra `spec` fields.
    pub fn pod_with(spec: serde_json::Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = serde_json::json!([{"name": "c", "image": "busybox"}]);
        }
        pod(
            serde_json::json!({"metadata": {"name": "new", "labels": {"app": "new"}}, "spec": spec}),
        )
    }

    pub fn cache_with(nodes: Vec<NodeFacts>) -> Cache {
        let mut cache = Cache::default();
        for n in nodes {
            cache.set_node(n);
        }
        cache
    }

    pub fn bind(cache: &mut Cache, node: &str, json: serde_json::Value) {
        let mut p = pod(json);
        p.node_name = Some(node.into());
        cache.add_pod(Arc::new(p));
    }

    #[test]
    fn reasons_read_as_kube_scheduler_writes_them() {
        let cases = [
            (Reason::Unschedulable, "node(s) were unschedulable"),
            (
                Reason::UntoleratedTaint {
                    key: "dedicated".into(),
                    value: "gpu".into(),
                },
                "node(s) had untolerated taint {dedicated: gpu}",
            ),
            (
                Reason::MissingRuntime(Runtime::Oci),
                "node(s) lack the OCI runtime",
            ),
            (
                Reason::MissingRuntime(Runtime::Wasm),
                "node(s) lack the wasm runtime",
            ),
            (Reason::Insufficient("memory".into()), "Insufficient memory"),
            (
                Reason::NodeAffinity,
                "node(s) didn't match Pod's node affinity/selector",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
