//! Scores: among the nodes that can take a pod, which should. Each score is 0–100 per
//! node, summed with kube-scheduler's default weights:
//!
//! | score | weight | prefers |
//! |---|---|---|
//! | least allocated | 1 | the node with the most CPU and memory left |
//! | balanced allocation | 1 | the node whose CPU and memory stay equally used |
//! | node affinity | 2 | the nodes matching the heaviest preferred node-affinity terms |
//! | spread | 2 | the nodes holding fewest pods of the pod's owner (its ReplicaSet) |
//! | taint toleration | 3 | the nodes with fewest untolerated PreferNoSchedule taints |
//!
//! Scores that compare nodes with each other (affinity, spread, taints) are normalised so
//! that the best node gets 100.

use rand::Rng;

use crate::cache::NodeInfo;
use crate::filters::{node_selector_term_matches, taints};
use crate::node::NodeFacts;
use crate::pod::PodInfo;

const MAX: i64 = 100;
const LEAST_ALLOCATED_WEIGHT: i64 = 1;
const BALANCED_WEIGHT: i64 = 1;
const NODE_AFFINITY_WEIGHT: i64 = 2;
const SPREAD_WEIGHT: i64 = 2;
const TAINT_WEIGHT: i64 = 3;

/// One feasible node's scores before normalisation.
#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    /// Least allocated and balanced allocation, already weighted.
    resources: i64,
    /// Sum of the weights of the preferred node-affinity terms the node matches.
    affinity: i64,
    /// Pods of the same owner already on the node.
    siblings: i64,
    /// Untolerated PreferNoSchedule taints.
    intolerable: i64,
}

/// Picks the best of `feasible` (indices into `nodes`); ties are broken at random, so
/// that identical nodes fill evenly and two schedulers would not chase the same node.
pub fn best(pod: &PodInfo, nodes: &[NodeInfo], feasible: &[usize], rng: &mut impl Rng) -> usize {
    let raw: Vec<Raw> = feasible
        .iter()
        .map(|&i| {
            raw(
                pod,
                &nodes[i],
                nodes[i]
                    .facts
                    .as_deref()
                    .expect("feasible nodes have facts"),
            )
        })
        .collect();
    let max_affinity = raw.iter().map(|r| r.affinity).max().unwrap_or(0);
    let max_siblings = raw.iter().map(|r| r.siblings).max().unwrap_or(0);
    let max_intolerable = raw.iter().map(|r| r.intolerable).max().unwrap_or(0);
    let mut best = (i64::MIN, feasible[0]);
    let mut ties = 0u32;
    for (r, &i) in raw.iter().zip(feasible) {
        let total = r.resources
            + NODE_AFFINITY_WEIGHT * normalise(r.affinity, max_affinity, false)
            + SPREAD_WEIGHT * normalise(r.siblings, max_siblings, true)
            + TAINT_WEIGHT * normalise(r.intolerable, max_intolerable, true);
        if total > best.0 {
            best = (total, i);
            ties = 1;
        } else if total == best.0 {
            // Reservoir sampling: each of the tied nodes ends up chosen with equal odds.
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best.1 = i;
            }
        }
    }
    best.1
}

fn raw(pod: &PodInfo, node: &NodeInfo, facts: &NodeFacts) -> Raw {
    let d = &pod.demands;
    Raw {
        resources: LEAST_ALLOCATED_WEIGHT * least_allocated(pod, node, facts)
            + BALANCED_WEIGHT * balanced_allocation(pod, node, facts),
        affinity: d
            .preferred_node_affinity
            .iter()
            .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, facts))
            .map(|t| i64::from(t.weight))
            .sum(),
        siblings: d
            .owner
            .as_ref()
            .and_then(|o| node.owners.get(o))
            .map_or(0, |n| i64::from(*n)),
        intolerable: taints::intolerable_preferences(&d.tolerations, facts),
    }
}

/// kube-scheduler's `DefaultNormalizeScore`: scales to 0–100 by the highest; `reverse`
/// makes fewer better.
fn normalise(score: i64, max: i64, reverse: bool) -> i64 {
    if max == 0 {
        return if reverse { MAX } else { 0 };
    }
    let scaled = MAX * score / max;
    if reverse { MAX - scaled } else { scaled }
}

/// The share of CPU and memory left free once the pod is there, averaged (0–100).
/// Unset requests count as 100m CPU and 200Mi, so best-effort pods still spread.
fn least_allocated(pod: &PodInfo, node: &NodeInfo, facts: &NodeFacts) -> i64 {
    let want = &pod.demands.requests.non_zero;
    let used = &node.requested.non_zero;
    let free = |requested: i64, capacity: i64| {
        if capacity == 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * MAX / capacity
        }
    };
    let cpu = free(
        used.cpu_millis + want.cpu_millis,
        facts.allocatable.cpu_millis,
    );
    let memory = free(
        used.memory_bytes + want.memory_bytes,
        facts.allocatable.memory_bytes,
    );
    (cpu + memory) / 2
}

/// 100 when CPU and memory would be used in the same proportion, less the further apart
/// they are (one minus their standard deviation).
fn balanced_allocation(pod: &PodInfo, node: &NodeInfo, facts: &NodeFacts) -> i64 {
    let want = &pod.demands.requests.exact;
    let used = &node.requested.exact;
    let fraction = |requested: i64, capacity: i64| {
        (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0))
    };
    let cpu = fraction(
        used.cpu_millis + want.cpu_millis,
        facts.allocatable.cpu_millis,
    );
    let memory = fraction(
        used.memory_bytes + want.memory_bytes,
        facts.allocatable.memory_bytes,
    );
    let std = match (cpu, memory) {
        (Some(c), Some(m)) => ((c - m) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX as f64) as i64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::cache::Cache;
    use crate::filters::tests::{bind, cache_with, pod_with};
    use crate::node::tests::node;
    use crate::pod::tests::pod;

    fn oci(name: &str) -> NodeFacts {
        node(name, "4", "8Gi", &[("sextant.dev/oci", "true")])
    }

    /// The node `best` picks among all of `cache`'s.
    fn pick(cache: &Cache, pod: &PodInfo) -> String {
        let all: Vec<usize> = (0..cache.nodes().len()).collect();
        let i = best(pod, cache.nodes(), &all, &mut StdRng::seed_from_u64(7));
        cache.nodes()[i].name.clone()
    }

    fn requesting(cpu: &str, memory: &str) -> serde_json::Value {
        serde_json::json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
    }

    #[test]
    fn the_least_used_node_wins() {
        let mut cache = cache_with(vec![oci("busy"), oci("idle")]);
        bind(
            &mut cache,
            "busy",
            serde_json::json!({"metadata": {"name": "old"}, "spec": requesting("2", "4Gi")}),
        );
        assert_eq!(pick(&cache, &pod_with(requesting("1", "1Gi"))), "idle");
    }

    #[test]
    fn least_allocated_and_balanced_worked_example() {
        // 4 CPU / 8Gi node, 1 CPU and 6Gi used after the pod: 75% and 25% free, average 50;
        // fractions 0.25 and 0.75, standard deviation 0.25: balanced 75.
        let mut cache = cache_with(vec![oci("n1")]);
        bind(
            &mut cache,
            "n1",
            serde_json::json!({"metadata": {"name": "old"}, "spec": requesting("500m", "4Gi")}),
        );
        let pod = pod_with(requesting("500m", "2Gi"));
        let n = cache.node("n1").unwrap();
        let facts = n.facts.as_deref().unwrap();
        assert_eq!(least_allocated(&pod, n, facts), 50);
        assert_eq!(balanced_allocation(&pod, n, facts), 75);
    }

    #[test]
    fn preferred_node_affinity_outweighs_a_little_load() {
        let mut cache = cache_with(vec![
            node("plain", "4", "8Gi", &[("sextant.dev/oci", "true")]),
            node(
                "ssd",
                "4",
                "8Gi",
                &[("sextant.dev/oci", "true"), ("disk", "ssd")],
            ),
        ]);
        bind(
            &mut cache,
            "ssd",
            serde_json::json!({"metadata": {"name": "old"}, "spec": requesting("500m", "1Gi")}),
        );
        let pod = pod_with(
            serde_json::json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
            ]}}}),
        );
        assert_eq!(pick(&cache, &pod), "ssd");
    }

    #[test]
    fn pods_of_one_replicaset_spread_out() {
        let mut cache = cache_with(vec![oci("a"), oci("b")]);
        let owned = |name: &str| {
            serde_json::json!({"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}
            ]}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        };
        // "a" is the emptier node by resources, but already holds a sibling.
        bind(&mut cache, "a", owned("sibling"));
        bind(
            &mut cache,
            "b",
            serde_json::json!({"metadata": {"name": "other"}, "spec": requesting("100m", "100Mi")}),
        );
        assert_eq!(pick(&cache, &pod(owned("new"))), "b");
    }

    #[test]
    fn untolerated_soft_taints_lower_a_node() {
        let mut soft = oci("soft");
        soft.taints = serde_json::from_value(
            serde_json::json!([{"key": "spot", "effect": "PreferNoSchedule"}]),
        )
        .unwrap();
        let cache = cache_with(vec![soft, oci("plain")]);
        assert_eq!(pick(&cache, &pod_with(serde_json::json!({}))), "plain");
    }

    #[test]
    fn ties_are_broken_evenly() {
        let cache = cache_with((0..4).map(|i| oci(&format!("n{i}"))).collect());
        let pod = pod_with(serde_json::json!({}));
        let all: Vec<usize> = (0..4).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let mut picks: HashMap<usize, u32> = HashMap::new();
        for _ in 0..400 {
            *picks
                .entry(best(&pod, cache.nodes(), &all, &mut rng))
                .or_default() += 1;
        }
        assert_eq!(
            picks.len(),
            4,
            "every tied node is picked sometimes: {picks:?}"
        );
        assert!(picks.values().all(|n| *n > 50), "{picks:?}");
    }
}
