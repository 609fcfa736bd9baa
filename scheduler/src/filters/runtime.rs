//! The runtimes a pod needs (wasm and/or OCI, from its images and `runtimeClassName`)
//! against what the node says it runs: the `sextant.dev/wasm` and `sextant.dev/oci` labels
//! set to `"true"`.

use sextant_api::runtime::Runtime;

use super::{Attempt, Reason, Verdict};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

pub fn filter(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    let d = &attempt.pod.demands;
    let lacks_wasm = d.needs_wasm && !node.runs_wasm;
    let lacks_oci = d.needs_oci && !node.runs_oci;
    if !lacks_wasm && !lacks_oci {
        return Ok(());
    }
    let missing = [(lacks_wasm, Runtime::Wasm), (lacks_oci, Runtime::Oci)];
    Err(missing
        .into_iter()
        .filter(|&(lacks, _)| lacks)
        .map(|(_, r)| Reason::MissingRuntime(r))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    #[test]
    fn a_pod_goes_only_where_its_runtimes_are() {
        let cache = cache_with(vec![
            node("edge", "4", "8Gi", &[("sextant.dev/wasm", "true")]),
            node(
                "both",
                "4",
                "8Gi",
                &[("sextant.dev/wasm", "true"), ("sextant.dev/oci", "true")],
            ),
            node("off", "4", "8Gi", &[("sextant.dev/wasm", "false")]),
        ]);
        let oci = pod_with(serde_json::json!({}));
        let wasm = pod_with(
            serde_json::json!({"containers": [{"name": "w", "image": "file:///app.wasm"}]}),
        );
        let class = pod_with(serde_json::json!({"runtimeClassName": "wasm"}));
        let mixed = pod_with(serde_json::json!({"containers": [
            {"name": "w", "image": "file:///app.wasm"}, {"name": "o", "image": "busybox"}
        ]}));
        assert_eq!(
            verdict(&cache, &oci, "edge"),
            Err(vec![Reason::MissingRuntime(Runtime::Oci)])
        );
        assert_eq!(verdict(&cache, &wasm, "edge"), Ok(()));
        assert_eq!(verdict(&cache, &class, "edge"), Ok(()));
        assert_eq!(verdict(&cache, &mixed, "both"), Ok(()));
        assert_eq!(
            verdict(&cache, &mixed, "off"),
            Err(vec![
                Reason::MissingRuntime(Runtime::Wasm),
                Reason::MissingRuntime(Runtime::Oci)
            ])
        );
    }
}
