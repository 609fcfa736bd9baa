//! Host ports: a port a pod claims on the node's addresses must not be claimed already.

use super::{Attempt, Reason, Verdict, unfit};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

pub fn filter(attempt: &Attempt<'_>, node: &NodeInfo, _: &NodeFacts) -> Verdict {
    let wanted = &attempt.pod.demands.host_ports;
    let clash = wanted
        .iter()
        .any(|w| node.host_ports.iter().any(|used| w.conflicts_with(used)));
    if clash {
        unfit(Reason::HostPorts)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bind, cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    fn with_port(port: i64, ip: Option<&str>) -> serde_json::Value {
        serde_json::json!({"containers": [{"name": "c", "image": "busybox", "ports": [
            {"containerPort": 80, "hostPort": port, "hostIP": ip}
        ]}]})
    }

    #[test]
    fn a_claimed_host_port_keeps_the_next_claimant_away() {
        let mut cache = cache_with(vec![node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")])]);
        bind(
            &mut cache,
            "n1",
            serde_json::json!({"metadata": {"name": "old"}, "spec": with_port(8080, None)}),
        );
        assert_eq!(
            verdict(&cache, &pod_with(with_port(8080, None)), "n1"),
            unfit(Reason::HostPorts)
        );
        assert_eq!(
            verdict(&cache, &pod_with(with_port(8080, Some("10.0.0.1"))), "n1"),
            unfit(Reason::HostPorts)
        );
        assert_eq!(
            verdict(&cache, &pod_with(with_port(8081, None)), "n1"),
            Ok(())
        );
    }
}
