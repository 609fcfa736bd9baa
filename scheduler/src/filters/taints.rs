//! Taints and tolerations: a node's NoSchedule and NoExecute taints keep away every pod
//! that does not tolerate them. (PreferNoSchedule taints only lower a node's score.)

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::{Attempt, Reason, Verdict, unfit};
use crate::cache::NodeInfo;
use crate::node::NodeFacts;

pub fn filter(attempt: &Attempt<'_>, _: &NodeInfo, node: &NodeFacts) -> Verdict {
    let tolerations = &attempt.pod.demands.tolerations;
    let untolerated = node.taints.iter().find(|t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerates_any(tolerations, t)
    });
    match untolerated {
        Some(t) => unfit(Reason::UntoleratedTaint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

/// How many PreferNoSchedule taints the pod does not tolerate (fewer is better).
pub fn intolerable_preferences(tolerations: &[Toleration], node: &NodeFacts) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerates_any(tolerations, t))
        .count() as i64
}

pub fn tolerates_any(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerated(
        tolerations,
        &taint.key,
        taint.value.as_deref().unwrap_or(""),
        &taint.effect,
    )
}

/// Kubernetes' `Toleration.ToleratesTaint`: an empty effect or key in a toleration matches
/// any; `Exists` ignores the value, `Equal` (the default) compares it.
pub fn tolerated(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect);
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
        let value_ok = match t.operator.as_deref().unwrap_or("Equal") {
            "Exists" => true,
            "" | "Equal" => t.value.as_deref().unwrap_or("") == value,
            _ => false,
        };
        effect_ok && key_ok && value_ok
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cache_with, pod_with, verdict};
    use super::*;
    use crate::node::tests::node;

    fn tainted(taints: serde_json::Value) -> NodeFacts {
        let mut n = node("n1", "4", "8Gi", &[("sextant.dev/oci", "true")]);
        n.taints = serde_json::from_value(taints).unwrap();
        n
    }

    #[test]
    fn an_untolerated_taint_is_named() {
        let cache = cache_with(vec![tainted(serde_json::json!([
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        ]))]);
        let unfit_reason = Reason::UntoleratedTaint {
            key: "dedicated".into(),
            value: "gpu".into(),
        };
        assert_eq!(
            verdict(&cache, &pod_with(serde_json::json!({})), "n1"),
            unfit(unfit_reason)
        );
    }

    #[test]
    fn tolerations_match_by_key_value_and_effect() {
        let cache = cache_with(vec![tainted(serde_json::json!([
            {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
        ]))]);
        let fits = |tolerations: serde_json::Value| {
            verdict(
                &cache,
                &pod_with(serde_json::json!({"tolerations": tolerations})),
                "n1",
            )
            .is_ok()
        };
        assert!(fits(
            serde_json::json!([{"key": "dedicated", "value": "gpu"}])
        ));
        assert!(fits(
            serde_json::json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}])
        ));
        assert!(fits(serde_json::json!([{"operator": "Exists"}])));
        assert!(!fits(
            serde_json::json!([{"key": "dedicated", "value": "cpu"}])
        ));
        assert!(!fits(
            serde_json::json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}])
        ));
    }

    #[test]
    fn prefer_no_schedule_only_counts_against_the_score() {
        let n = tainted(serde_json::json!([{"key": "soft", "effect": "PreferNoSchedule"}]));
        let cache = cache_with(vec![n.clone()]);
        assert!(verdict(&cache, &pod_with(serde_json::json!({})), "n1").is_ok());
        assert_eq!(intolerable_preferences(&[], &n), 1);
        let t: Vec<Toleration> =
            serde_json::from_value(serde_json::json!([{"key": "soft", "operator": "Exists"}]))
                .unwrap();
        assert_eq!(intolerable_preferences(&t, &n), 0);
    }
}
