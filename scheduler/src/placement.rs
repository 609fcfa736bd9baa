//! Choosing a node for one pod, from the cache alone: filter the nodes, score the ones that
//! fit, take the best.
//!
//! Like kube-scheduler, a big cluster is not searched to the end for every pod: the search
//! stops once it has found enough feasible nodes ([`feasible_to_find`]), and the next
//! search starts where this one stopped, so every node gets its turn. A pod that fits
//! nowhere has seen every node, so its [`Diagnosis`] counts all their reasons.

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::cache::Cache;
use crate::diagnosis::Diagnosis;
use crate::filters::{self, Attempt};
use crate::pod::PodInfo;
use crate::score;

/// Below this many nodes, every node is scored (kube-scheduler's `minFeasibleNodesToFind`).
const MIN_FEASIBLE: usize = 100;
/// The smallest share of a big cluster to score, in percent.
const MIN_FEASIBLE_PERCENT: usize = 5;

/// How many feasible nodes to find before scoring (kube-scheduler's adaptive
/// `percentageOfNodesToScore`: 50% less 1% per 125 nodes, at least 5%, at least 100 nodes).
/// Worked examples: 50 nodes → 50; 1,000 → 420; 5,000 → 500.
pub fn feasible_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percent = 50usize
        .saturating_sub(nodes / 125)
        .max(MIN_FEASIBLE_PERCENT);
    (nodes * percent / 100).max(MIN_FEASIBLE)
}

pub struct Placer {
    /// Where the next search begins, in the cache's node order.
    next_start: usize,
    rng: StdRng,
}

impl Default for Placer {
    fn default() -> Self {
        Placer {
            next_start: 0,
            rng: StdRng::from_entropy(),
        }
    }
}

impl Placer {
    /// The name of the node `pod` should go to, or why none can take it.
    pub fn place(&mut self, cache: &Cache, pod: &PodInfo) -> Result<String, Diagnosis> {
        let mut diagnosis = Diagnosis {
            nodes: cache.node_count(),
            ..Diagnosis::default()
        };
        let nodes = cache.nodes();
        if diagnosis.nodes == 0 {
            return Err(diagnosis);
        }
        let attempt = Attempt::new(pod, cache);
        let want = feasible_to_find(diagnosis.nodes);
        let mut feasible = Vec::with_capacity(want.min(nodes.len()));
        let mut searched = 0;
        for offset in 0..nodes.len() {
            searched = offset + 1;
            let i = (self.next_start + offset) % nodes.len();
            let Some(facts) = nodes[i].facts.as_deref() else {
                continue;
            };
            match filters::check(&attempt, &nodes[i], facts) {
                Ok(()) => {
                    feasible.push(i);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(reasons) => diagnosis.record(reasons),
            }
        }
        self.next_start = (self.next_start + searched) % nodes.len();
        let chosen = match feasible.as_slice() {
            [] => return Err(diagnosis),
            [only] => *only,
            _ => score::best(pod, nodes, &feasible, &mut self.rng),
        };
        Ok(nodes[chosen].name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::filters::tests::{cache_with, pod_with};
    use crate::node::tests::node;

    #[test]
    fn worked_examples_of_how_many_nodes_to_score() {
        assert_eq!(feasible_to_find(50), 50);
        assert_eq!(feasible_to_find(100), 100);
        assert_eq!(feasible_to_find(1_000), 420);
        assert_eq!(feasible_to_find(5_000), 500);
        assert_eq!(feasible_to_find(100_000), 5_000);
    }

    #[test]
    fn the_issues_example_message() {
        let cache = cache_with(vec![
            node("a", "4", "1Gi", &[("sextant.dev/oci", "true")]),
            node("b", "4", "1Gi", &[("sextant.dev/oci", "true")]),
            node("edge", "4", "8Gi", &[("sextant.dev/wasm", "true")]),
        ]);
        let pod = pod_with(serde_json::json!({"containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"memory": "2Gi"}}}
        ]}));
        let why = Placer::default().place(&cache, &pod).unwrap_err();
        assert_eq!(
            why.to_string(),
            "0/3 nodes are available: 1 node(s) lack the OCI runtime, 2 Insufficient memory."
        );
    }

    #[test]
    fn assumed_pods_fill_nodes_one_after_another() {
        let mut cache = cache_with(
            (0..3)
                .map(|i| node(&format!("n{i}"), "1", "8Gi", &[("sextant.dev/oci", "true")]))
                .collect(),
        );
        let mut placer = Placer::default();
        let mut used = Vec::new();
        for i in 0..3 {
            let mut pod = pod_with(serde_json::json!({"containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "600m"}}}
            ]}));
            pod.uid = format!("uid-{i}");
            let node = placer.place(&cache, &pod).unwrap();
            cache.assume(Arc::new(pod), &node);
            used.push(node);
        }
        used.sort();
        assert_eq!(used, ["n0", "n1", "n2"]);
        let one_more = pod_with(serde_json::json!({"containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "600m"}}}
        ]}));
        assert_eq!(
            placer.place(&cache, &one_more).unwrap_err().to_string(),
            "0/3 nodes are available: 3 Insufficient cpu."
        );
    }
}
