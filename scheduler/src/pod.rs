//! What the scheduler knows about a pod: read once from the Pod when its watch event
//! arrives, so that trying it against a thousand nodes never touches the full object.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Affinity, NodeSelector, Pod, PodAffinityTerm, PodSpec, PreferredSchedulingTerm, Toleration,
};
use sextant_api::labels::Selector;

use crate::resources::PodRequests;

/// The scheduler name a pod gets when it names none.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The node it is bound to; `None` while pending.
    pub node_name: Option<String>,
    /// Succeeded or Failed: it holds nothing on its node any more.
    pub terminal: bool,
    pub deleting: bool,
    /// Whether this scheduler is the one to place it (`schedulerName` unset or ours).
    pub ours: bool,
    /// `spec.schedulingGates` still holds it back.
    pub gated: bool,
    /// Higher goes first (`spec.priority`, set by admission from `priorityClassName`).
    pub priority: i32,
    /// The pod's `PodScheduled` condition as stored, so that an unchanged verdict is not
    /// written again.
    pub scheduled_condition: Option<Condition>,
    pub demands: Demands,
}

/// A pod's `PodScheduled` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Everything about a pod that decides where it may go, and how it constrains the pods
/// placed after it. A change here (not in status) is worth a new scheduling attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demands {
    pub labels: BTreeMap<String, String>,
    pub requests: PodRequests,
    pub host_ports: Vec<HostPort>,
    pub needs_wasm: bool,
    pub needs_oci: bool,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelector>,
    pub preferred_node_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
    /// Required pod affinity terms: a matching pod must be in the same topology domain.
    pub affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms: no matching pod may be in the same domain.
    pub anti_affinity: Vec<AffinityTerm>,
    /// The uid of the controller that owns it (a ReplicaSet): its pods are spread.
    pub owner: Option<String>,
}

/// A host port a container claims; two claims clash when protocol and port are equal and
/// either address is the wildcard or both are the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    pub const WILDCARD: &str = "0.0.0.0";

    pub fn conflicts_with(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == Self::WILDCARD || other.ip == Self::WILDCARD)
    }
}

/// One `requiredDuringSchedulingIgnoredDuringExecution` pod (anti-)affinity term, with its
/// selectors parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityTerm {
    pub selector: Selector,
    /// Namespaces named by the term (the pod's own when it names none and has no selector).
    pub namespaces: Vec<String>,
    /// `namespaceSelector`: `Some(everything)` for `{}`, which selects every namespace.
    pub namespace_selector: Option<Selector>,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, own_namespace: &str) -> AffinityTerm {
        // The API server validates selectors; a bad one selects nothing rather than everything.
        let parse = |s| Selector::from_label_selector(s).unwrap_or_else(|_| Selector::nothing());
        let selector = term
            .label_selector
            .as_ref()
            .map_or_else(Selector::nothing, parse);
        let namespace_selector = term.namespace_selector.as_ref().map(parse);
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.push(own_namespace.to_owned());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` is one of the pods this term is about.
    pub fn matches(
        &self,
        pod: &PodInfo,
        namespace_labels: &HashMap<String, BTreeMap<String, String>>,
    ) -> bool {
        let in_namespace = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.is_everything()
                    || namespace_labels
                        .get(&pod.namespace)
                        .is_some_and(|labels| s.matches(labels))
            });
        in_namespace && self.selector.matches(&pod.demands.labels)
    }
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let empty = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty);
        let namespace = meta.namespace.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let scheduled_condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .map(|c| Condition {
                status: c.status.clone(),
                reason: c.reason.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
            });
        PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            terminal: matches!(phase, Some("Succeeded" | "Failed")),
            deleting: meta.deletion_timestamp.is_some(),
            ours: spec
                .scheduler_name
                .as_deref()
                .is_none_or(|s| s.is_empty() || s == DEFAULT_SCHEDULER),
            gated: spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
            priority: spec.priority.unwrap_or(0),
            scheduled_condition,
            demands: Demands::of(pod, spec, &namespace),
            namespace,
        }
    }

    /// `namespace/name`, as messages name pods.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this scheduler should try to place it now.
    pub fn wants_scheduling(&self) -> bool {
        self.node_name.is_none() && self.ours && !self.gated && !self.deleting && !self.terminal
    }

    /// Whether this pod already carries exactly the verdict `message`.
    pub fn reports_unschedulable(&self, message: &str) -> bool {
        self.scheduled_condition.as_ref().is_some_and(|c| {
            c.status == "False" && c.reason == "Unschedulable" && c.message == message
        })
    }
}

impl Demands {
    fn of(pod: &Pod, spec: &PodSpec, namespace: &str) -> Demands {
        let (needs_wasm, needs_oci) = sextant_api::runtime::needed_by(spec);
        let affinity = spec.affinity.as_ref();
        let node_affinity = affinity.and_then(|a| a.node_affinity.as_ref());
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        Demands {
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: PodRequests::of(spec),
            host_ports: host_ports(spec),
            needs_wasm,
            needs_oci,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity: node_affinity.and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .clone()
            }),
            preferred_node_affinity: node_affinity
                .and_then(|n| {
                    n.preferred_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            affinity: pod_terms(affinity, namespace, false),
            anti_affinity: pod_terms(affinity, namespace, true),
            owner,
        }
    }
}

fn pod_terms(affinity: Option<&Affinity>, namespace: &str, anti: bool) -> Vec<AffinityTerm> {
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(t, namespace))
        .collect()
}

/// The host ports of every container (init containers included, as kube-scheduler counts
/// them); `hostPort: 0` claims nothing.
fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| HostPort::WILDCARD.into()),
                port,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pod from JSON, with a uid and namespace filled in when absent.
    pub fn pod(json: serde_json::Value) -> PodInfo {
        let mut pod: Pod = serde_json::from_value(json).unwrap();
        let name = pod.metadata.name.get_or_insert_with(|| "p".into()).clone();
        pod.metadata.uid.get_or_insert(format!("uid-{name}"));
        pod.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        PodInfo::from_pod(&pod)
    }

    #[test]
    fn only_unbound_live_pods_of_ours_want_scheduling() {
        let c = serde_json::json!([{"name": "c", "image": "busybox"}]);
        let wants = |spec: serde_json::Value| {
            let mut spec = spec;
            spec["containers"] = c.clone();
            pod(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).wants_scheduling()
        };
        assert!(wants(serde_json::json!({})));
        assert!(wants(
            serde_json::json!({"schedulerName": "default-scheduler"})
        ));
        assert!(!wants(serde_json::json!({"schedulerName": "other"})));
        assert!(!wants(serde_json::json!({"nodeName": "n1"})));
        assert!(!wants(
            serde_json::json!({"schedulingGates": [{"name": "wait"}]})
        ));
    }

    #[test]
    fn host_ports_default_to_tcp_on_every_address() {
        let p = pod(
            serde_json::json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
                {"containerPort": 9090},
            ]}]}}),
        );
        assert_eq!(
            p.demands.host_ports,
            vec![
                HostPort {
                    protocol: "TCP".into(),
                    ip: "0.0.0.0".into(),
                    port: 8080
                },
                HostPort {
                    protocol: "UDP".into(),
                    ip: "10.0.0.1".into(),
                    port: 53
                },
            ]
        );
    }

    #[test]
    fn host_port_clashes() {
        let hp = |ip: &str, port, proto: &str| HostPort {
            protocol: proto.into(),
            ip: ip.into(),
            port,
        };
        assert!(hp("0.0.0.0", 80, "TCP").conflicts_with(&hp("10.0.0.1", 80, "TCP")));
        assert!(hp("10.0.0.1", 80, "TCP").conflicts_with(&hp("10.0.0.1", 80, "TCP")));
        assert!(!hp("10.0.0.1", 80, "TCP").conflicts_with(&hp("10.0.0.2", 80, "TCP")));
        assert!(!hp("0.0.0.0", 80, "TCP").conflicts_with(&hp("0.0.0.0", 80, "UDP")));
        assert!(!hp("0.0.0.0", 80, "TCP").conflicts_with(&hp("0.0.0.0", 81, "TCP")));
    }

    #[test]
    fn an_affinity_term_defaults_to_the_pods_own_namespace() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {
                "containers": [{"name": "c", "image": "x"}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
                ]}}
            }}),
        );
        let term = &p.demands.anti_affinity[0];
        let web = |ns: &str| {
            pod(
                serde_json::json!({"metadata": {"name": "w", "namespace": ns, "labels": {"app": "web"}}, "spec": {"containers": []}}),
            )
        };
        assert!(term.matches(&web("team"), &HashMap::new()));
        assert!(!term.matches(&web("other"), &HashMap::new()));
    }
}
