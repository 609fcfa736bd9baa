//! `nodeSelector` and required node affinity: the node's labels (and name) must match.
//!
//! Node selector terms are ORed; within a term every expression and field must hold; a
//! term with neither selects no node. Operators: `In`, `NotIn`, `Exists`, `DoesNotExist`,
//! and `Gt`/`Lt` comparing integers; `matchFields` knows only `metadata.name`.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use super::{Attempt, Reason, Verdict, unfit};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

pub fn filter(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    let d = &attempt.pod.demands;
    let selector_ok = d
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let affinity_ok = d
        .required_node_affinity
        .as_ref()
        .is_none_or(|s| s.node_selector_terms.iter().any(|t| term_matches(t, node)));
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        unfit(Reason::NodeAffinity)
    }
}

/// Whether one node selector term selects `node` (also used to score preferred terms).
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeFacts) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node.labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(&node.name))
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    let compare = |want: std::cmp::Ordering| {
        let (Some(v), [bound]) = (value, values) else {
            return false;
        };
        match (v.parse::<i64>(), bound.parse::<i64>()) {
            (Ok(v), Ok(bound)) => v.cmp(&bound) == want,
            _ => false,
        }
    };
    match r.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => !value.is_some_and(listed),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => compare(std::cmp::Ordering::Greater),
        "Lt" => compare(std::cmp::Ordering::Less),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    fn cache() -> crate::cache::Cache {
        cache_with(vec![node(
            "n1",
            "4",
            "8Gi",
            &[
                ("sextant.dev/oci", "true"),
                ("disk", "ssd"),
                ("cores", "16"),
            ],
        )])
    }

    fn fits(spec: serde_json::Value) -> bool {
        verdict(&cache(), &pod_with(spec), "n1").is_ok()
    }

    fn required(expressions: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": expressions}]
        }}}})
    }

    #[test]
    fn node_selector_needs_every_label() {
        assert!(fits(serde_json::json!({"nodeSelector": {"disk": "ssd"}})));
        assert!(!fits(
            serde_json::json!({"nodeSelector": {"disk": "ssd", "gpu": "yes"}})
        ));
        assert_eq!(
            verdict(
                &cache(),
                &pod_with(serde_json::json!({"nodeSelector": {"disk": "hdd"}})),
                "n1"
            ),
            unfit(Reason::NodeAffinity)
        );
    }

    #[test]
    fn required_affinity_operators() {
        let cases = [
            (
                serde_json::json!([{"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}]),
                true,
            ),
            (
                serde_json::json!([{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]),
                false,
            ),
            (
                serde_json::json!([{"key": "gpu", "operator": "NotIn", "values": ["yes"]}]),
                true,
            ),
            (
                serde_json::json!([{"key": "disk", "operator": "Exists"}]),
                true,
            ),
            (
                serde_json::json!([{"key": "disk", "operator": "DoesNotExist"}]),
                false,
            ),
            (
                serde_json::json!([{"key": "cores", "operator": "Gt", "values": ["8"]}]),
                true,
            ),
            (
                serde_json::json!([{"key": "cores", "operator": "Lt", "values": ["8"]}]),
                false,
            ),
            (
                serde_json::json!([{"key": "disk", "operator": "Gt", "values": ["8"]}]),
                false,
            ),
            (
                serde_json::json!([
                    {"key": "disk", "operator": "In", "values": ["ssd"]},
                    {"key": "cores", "operator": "In", "values": ["4"]}
                ]),
                false,
            ),
        ];
        for (expressions, want) in cases {
            assert_eq!(fits(required(expressions.clone())), want, "{expressions}");
        }
    }

    #[test]
    fn terms_are_ored_and_an_empty_term_selects_nothing() {
        let terms = |terms: serde_json::Value| {
            serde_json::json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": terms
            }}}})
        };
        assert!(fits(terms(serde_json::json!([
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
        ]))));
        assert!(!fits(terms(serde_json::json!([{}]))));
        assert!(!fits(terms(serde_json::json!([
            {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}
        ]))));
    }
}
