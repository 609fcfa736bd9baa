//! Required inter-pod affinity and anti-affinity, as kube-scheduler's InterPodAffinity.
//!
//! A term names pods (label selector, namespaces) and a topology key: the nodes sharing
//! one value of that label form a domain (with `kubernetes.io/hostname`, one node each).
//! - affinity: the pod goes only to a domain holding a pod matching every term — unless
//!   no such pod exists anywhere and the pod matches its own terms (the first of a group);
//! - anti-affinity: the pod avoids every domain holding a pod matching a term;
//! - symmetry: it also avoids domains where a pod already there has an anti-affinity term
//!   matching it.
//!
//! [`State::compute`] counts matching pods per (topology key, value) once per attempt, so
//! each node is then a few map lookups.

use std::collections::HashMap;

use super::{Attempt, Reason, Verdict, unfit};
use crate::cache::{Cache, NodeInfo};
use crate::node::NodeFacts;
use crate::pod::{AffinityTerm, PodInfo};

/// (topology key, value): one topology domain.
type Domain<'a> = (&'a str, &'a str);

#[derive(Debug, Default)]
pub struct State<'a> {
    /// Domains holding pods that match all the pod's affinity terms.
    affinity: HashMap<Domain<'a>, u32>,
    /// Domains holding pods that match one of the pod's anti-affinity terms.
    anti_affinity: HashMap<Domain<'a>, u32>,
    /// Domains whose pods' anti-affinity terms match the pod.
    existing_anti_affinity: HashMap<Domain<'a>, u32>,
    terms: &'a [AffinityTerm],
    anti_terms: &'a [AffinityTerm],
    /// The pod matches its own affinity terms (so it may start a group).
    matches_itself: bool,
}

impl<'a> State<'a> {
    pub fn compute(pod: &'a PodInfo, cache: &'a Cache) -> State<'a> {
        let d = &pod.demands;
        let ns = &cache.namespace_labels;
        let mut state = State {
            terms: &d.affinity,
            anti_terms: &d.anti_affinity,
            matches_itself: d.affinity.iter().all(|t| t.matches(pod, ns)),
            ..State::default()
        };
        let own_terms = !d.affinity.is_empty() || !d.anti_affinity.is_empty();
        if !own_terms && cache.anti_affinity_pods() == 0 {
            return state;
        }
        for node in cache.nodes() {
            let Some(facts) = node.facts.as_deref() else {
                continue;
            };
            if !own_terms && node.anti_affinity_pods == 0 {
                continue;
            }
            for other in node.pods.values() {
                if other.uid == pod.uid {
                    continue;
                }
                for term in &other.demands.anti_affinity {
                    if term.matches(pod, ns) {
                        count(&mut state.existing_anti_affinity, facts, &term.topology_key);
                    }
                }
                if !d.affinity.is_empty() && d.affinity.iter().all(|t| t.matches(other, ns)) {
                    for term in &d.affinity {
                        count(&mut state.affinity, facts, &term.topology_key);
                    }
                }
                for term in &d.anti_affinity {
                    if term.matches(other, ns) {
                        count(&mut state.anti_affinity, facts, &term.topology_key);
                    }
                }
            }
        }
        state
    }

    fn satisfies_affinity(&self, node: &NodeFacts) -> bool {
        let mut pods_exist = true;
        for term in self.terms {
            let Some(value) = node.labels.get(&term.topology_key) else {
                return false;
            };
            if !self
                .affinity
                .contains_key(&(term.topology_key.as_str(), value.as_str()))
            {
                pods_exist = false;
            }
        }
        pods_exist || (self.affinity.is_empty() && self.matches_itself)
    }

    fn satisfies_anti_affinity(&self, node: &NodeFacts) -> bool {
        self.anti_affinity.is_empty()
            || self.anti_terms.iter().all(|term| {
                node.labels.get(&term.topology_key).is_none_or(|value| {
                    !self
                        .anti_affinity
                        .contains_key(&(term.topology_key.as_str(), value.as_str()))
                })
            })
    }

    fn satisfies_existing_anti_affinity(&self, node: &NodeFacts) -> bool {
        self.existing_anti_affinity.is_empty()
            || !node.labels.iter().any(|(k, v)| {
                self.existing_anti_affinity
                    .contains_key(&(k.as_str(), v.as_str()))
            })
    }
}

fn count<'a>(counts: &mut HashMap<Domain<'a>, u32>, node: &'a NodeFacts, key: &'a str) {
    if let Some(value) = node.labels.get(key) {
        *counts.entry((key, value.as_str())).or_default() += 1;
    }
}

pub fn filter(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    let state = &attempt.pod_affinity;
    if !state.satisfies_affinity(node) {
        return unfit(Reason::PodAffinity);
    }
    if !state.satisfies_anti_affinity(node) {
        return unfit(Reason::PodAntiAffinity);
    }
    if !state.satisfies_existing_anti_affinity(node) {
        return unfit(Reason::ExistingPodsAntiAffinity);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bind, cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    const HOST: &str = "kubernetes.io/hostname";

    fn nodes() -> Cache {
        cache_with(
            ["n1", "n2", "n3"]
                .map(|n| {
                    node(
                        n,
                        "4",
                        "8Gi",
                        &[
                            ("sextant.dev/oci", "true"),
                            (HOST, n),
                            ("zone", if n == "n3" { "b" } else { "a" }),
                        ],
                    )
                })
                .into(),
        )
    }

    fn terms(kind: &str, app: &str, key: &str) -> serde_json::Value {
        serde_json::json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}
        ]}}})
    }

    fn web(name: &str, spec: serde_json::Value) -> serde_json::Value {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([{"name": "c", "image": "busybox"}]);
        serde_json::json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec})
    }

    #[test]
    fn anti_affinity_keeps_a_pod_off_hosts_with_a_match() {
        let mut cache = nodes();
        bind(&mut cache, "n1", web("web-1", serde_json::json!({})));
        let pod = pod_with(terms("podAntiAffinity", "web", HOST));
        assert_eq!(verdict(&cache, &pod, "n1"), unfit(Reason::PodAntiAffinity));
        assert_eq!(verdict(&cache, &pod, "n2"), Ok(()));
    }

    #[test]
    fn anti_affinity_by_zone_covers_every_node_of_the_zone() {
        let mut cache = nodes();
        bind(&mut cache, "n1", web("web-1", serde_json::json!({})));
        let pod = pod_with(terms("podAntiAffinity", "web", "zone"));
        assert_eq!(verdict(&cache, &pod, "n2"), unfit(Reason::PodAntiAffinity));
        assert_eq!(verdict(&cache, &pod, "n3"), Ok(()));
    }

    #[test]
    fn a_pods_anti_affinity_also_keeps_others_away_from_it() {
        let mut cache = nodes();
        bind(
            &mut cache,
            "n1",
            web("loner", terms("podAntiAffinity", "new", HOST)),
        );
        let newcomer = pod_with(serde_json::json!({}));
        assert_eq!(
            verdict(&cache, &newcomer, "n1"),
            unfit(Reason::ExistingPodsAntiAffinity)
        );
        assert_eq!(verdict(&cache, &newcomer, "n2"), Ok(()));
    }

    #[test]
    fn affinity_follows_a_matching_pod_or_lets_the_first_of_a_group_anywhere() {
        let mut cache = nodes();
        // Nothing labelled app=web yet, and the pod is not one: nowhere.
        let pod = pod_with(terms("podAffinity", "web", HOST));
        assert_eq!(verdict(&cache, &pod, "n1"), unfit(Reason::PodAffinity));
        // The pod matches its own term: it may start the group anywhere.
        let first = pod_with(terms("podAffinity", "new", HOST));
        assert_eq!(verdict(&cache, &first, "n2"), Ok(()));
        bind(&mut cache, "n2", web("web-1", serde_json::json!({})));
        assert_eq!(verdict(&cache, &pod, "n2"), Ok(()));
        assert_eq!(verdict(&cache, &pod, "n1"), unfit(Reason::PodAffinity));
    }
}
