//! The node's own state: cordoned, or not ready.
//!
//! kube-scheduler leaves readiness to the `not-ready` taint the node lifecycle controller
//! puts on; Sextant also checks the condition itself, so that a node is passed over in
//! the seconds before its taint lands. A pod tolerating the matching taint (as DaemonSet
//! pods do) is placed regardless, as it would be in Kubernetes.

use super::{Attempt, Reason, Verdict, taints, unfit};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

pub fn schedulable(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    if node.unschedulable
        && !taints::tolerated(
            &attempt.pod.demands.tolerations,
            UNSCHEDULABLE_TAINT,
            "",
            "NoSchedule",
        )
    {
        return unfit(Reason::Unschedulable);
    }
    Ok(())
}

pub fn ready(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    if !node.ready
        && !taints::tolerated(
            &attempt.pod.demands.tolerations,
            NOT_READY_TAINT,
            "",
            "NoSchedule",
        )
    {
        return unfit(Reason::NotReady);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    #[test]
    fn a_cordoned_node_takes_only_pods_that_tolerate_it() {
        let mut n = node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")]);
        n.unschedulable = true;
        let cache = cache_with(vec![n]);
        assert_eq!(
            verdict(&cache, &pod_with(serde_json::json!({})), "n1"),
            unfit(Reason::Unschedulable)
        );
        let tolerant = pod_with(serde_json::json!({"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
        ]}));
        assert_eq!(verdict(&cache, &tolerant, "n1"), Ok(()));
    }

    #[test]
    fn a_node_that_is_not_ready_is_passed_over() {
        let mut n = node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")]);
        n.ready = false;
        let cache = cache_with(vec![n]);
        assert_eq!(
            verdict(&cache, &pod_with(serde_json::json!({})), "n1"),
            unfit(Reason::NotReady)
        );
        let tolerant = pod_with(serde_json::json!({"tolerations": [{"operator": "Exists"}]}));
        assert_eq!(verdict(&cache, &tolerant, "n1"), Ok(()));
    }
}
