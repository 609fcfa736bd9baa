//! What the scheduler knows about a node: read once from the Node when its watch event
//! arrives. Two readings compare equal when nothing that matters to placement changed, so
//! that a status heartbeat does not send every unschedulable pod round again.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};
use sextant_api::runtime::Runtime;

use crate::resources::{Resources, thousandths};

#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Taints that bear on scheduling (NoSchedule, NoExecute, PreferNoSchedule).
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// How many pods it takes (`status.allocatable.pods`).
    pub max_pods: i64,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (set by `kubectl cordon`).
    pub unschedulable: bool,
    /// Its `sextant.dev/wasm` label is `"true"` (read once: every pod asks).
    pub runs_wasm: bool,
    /// Its `sextant.dev/oci` label is `"true"`.
    pub runs_oci: bool,
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> NodeFacts {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let runs = |r: Runtime| labels.get(r.node_label()).is_some_and(|v| v == "true");
        let (runs_wasm, runs_oci) = (runs(Runtime::Wasm), runs(Runtime::Oci));
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let allocatable = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .cloned()
            .unwrap_or_default();
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels,
            taints: spec
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    matches!(
                        t.effect.as_str(),
                        "NoSchedule" | "NoExecute" | "PreferNoSchedule"
                    )
                })
                .collect(),
            max_pods: allocatable.get("pods").map_or(0, |q| thousandths(q) / 1000),
            allocatable: Resources::from_map(&allocatable),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            runs_wasm,
            runs_oci,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Ready node with `cpu`, `memory` and `pods` allocatable, and `labels`.
    pub fn node(name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)]) -> NodeFacts {
        let labels: BTreeMap<_, _> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeFacts::from_node(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "status": {
                    "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn reads_allocatable_readiness_and_taints() {
        let n = NodeFacts::from_node(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n1"},
                "spec": {"unschedulable": true, "taints": [
                    {"key": "a", "effect": "NoSchedule"}, {"key": "b", "value": "x", "effect": "NoExecute"}
                ]},
                "status": {
                    "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "False"}],
                },
            }))
            .unwrap(),
        );
        assert_eq!(n.allocatable.cpu_millis, 4000);
        assert_eq!(n.allocatable.memory_bytes, 8 << 30);
        assert_eq!(n.max_pods, 110);
        assert!(!n.ready);
        assert!(n.unschedulable);
        assert_eq!(n.taints.len(), 2);
    }

    #[test]
    fn a_node_without_a_ready_condition_is_not_ready() {
        let n = NodeFacts::from_node(
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).unwrap(),
        );
        assert!(!n.ready);
        assert_eq!(n.max_pods, 0);
    }
}
