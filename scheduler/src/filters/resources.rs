//! Resources: what the pod requests must fit in the node's allocatable minus what the pods
//! already there (or assumed there) request, and the node must have room for one more pod.
//! A best-effort pod (no requests) needs only the room.

use super::{Attempt, Reason, Verdict};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

pub fn filter(attempt: &Attempt<'_>, node: &NodeInfo, facts: &NodeFacts) -> Verdict {
    let want = &attempt.pod.demands.requests.exact;
    let used = &node.requested.exact;
    let free = &facts.allocatable;
    let mut short = Vec::new();
    if node.pod_count() + 1 > facts.max_pods {
        short.push(Reason::TooManyPods);
    }
    let mut check = |name: &str, want: i64, free: i64, used: i64| {
        if want > 0 && want > free - used {
            short.push(Reason::Insufficient(name.to_owned()));
        }
    };
    check("cpu", want.cpu_millis, free.cpu_millis, used.cpu_millis);
    check(
        "memory",
        want.memory_bytes,
        free.memory_bytes,
        used.memory_bytes,
    );
    check(
        "ephemeral-storage",
        want.ephemeral_storage_bytes,
        free.ephemeral_storage_bytes,
        used.ephemeral_storage_bytes,
    );
    for (name, amount) in &want.extended {
        let free = free.extended.get(name).copied().unwrap_or(0);
        let used = used.extended.get(name).copied().unwrap_or(0);
        check(name, *amount, free, used);
    }
    if short.is_empty() { Ok(()) } else { Err(short) }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bind, cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    fn requesting(requests: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]})
    }

    fn cache() -> crate::cache::Cache {
        let mut cache = cache_with(vec![node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")])]);
        bind(
            &mut cache,
            "n1",
            serde_json::json!({"metadata": {"name": "old"}, "spec": requesting(serde_json::json!({"cpu": "3", "memory": "4Gi"}))}),
        );
        cache
    }

    #[test]
    fn what_is_left_after_bound_pods_decides() {
        let cache = cache();
        let fits = |r| verdict(&cache, &pod_with(requesting(r)), "n1");
        assert_eq!(
            fits(serde_json::json!({"cpu": "1", "memory": "4Gi"})),
            Ok(())
        );
        assert_eq!(
            fits(serde_json::json!({"cpu": "1001m"})),
            Err(vec![Reason::Insufficient("cpu".into())])
        );
        assert_eq!(
            fits(serde_json::json!({"cpu": "2", "memory": "5Gi"})),
            Err(vec![
                Reason::Insufficient("cpu".into()),
                Reason::Insufficient("memory".into())
            ])
        );
        assert_eq!(
            fits(serde_json::json!({"example.com/dongle": "1"})),
            Err(vec![Reason::Insufficient("example.com/dongle".into())])
        );
    }

    #[test]
    fn a_full_node_takes_not_even_a_best_effort_pod() {
        let mut n = node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")]);
        n.max_pods = 1;
        let mut cache = cache_with(vec![n]);
        assert_eq!(
            verdict(&cache, &pod_with(serde_json::json!({})), "n1"),
            Ok(())
        );
        bind(
            &mut cache,
            "n1",
            serde_json::json!({"metadata": {"name": "old"}, "spec": {"containers": []}}),
        );
        assert_eq!(
            verdict(&cache, &pod_with(serde_json::json!({})), "n1"),
            Err(vec![Reason::TooManyPods])
        );
    }
}
