//! The taints a node's conditions call for, and when a pod on a `NoExecute`-tainted node
//! must go (Kubernetes' `TaintNodesByCondition` and taint-eviction controller).
//!
//! | node                              | taints (effect)                                     |
//! |-----------------------------------|-----------------------------------------------------|
//! | Ready `False` (kubelet says so)   | `node.kubernetes.io/not-ready` (NoSchedule, NoExecute) |
//! | Ready `Unknown` (kubelet silent)  | `node.kubernetes.io/unreachable` (NoSchedule, NoExecute) |
//! | MemoryPressure / DiskPressure / PIDPressure / NetworkUnavailable `True` | `node.kubernetes.io/memory-pressure` … (NoSchedule) |
//! | `spec.unschedulable` (cordoned)   | `node.kubernetes.io/unschedulable` (NoSchedule)      |

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::health;

pub(crate) const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub(crate) const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub(crate) const NO_SCHEDULE: &str = "NoSchedule";
pub(crate) const NO_EXECUTE: &str = "NoExecute";

/// Conditions that, when `True`, keep new pods off the node.
const PRESSURE: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// Whether this controller owns a taint: it adds and removes these, and only these.
fn is_managed(taint: &Taint) -> bool {
    let key = taint.key.as_str();
    match taint.effect.as_str() {
        NO_EXECUTE => key == NOT_READY || key == UNREACHABLE,
        NO_SCHEDULE => {
            key == NOT_READY
                || key == UNREACHABLE
                || key == UNSCHEDULABLE
                || PRESSURE.iter().any(|(_, k)| *k == key)
        }
        _ => false,
    }
}

/// The managed taints the node should carry, as `(key, effect)`.
fn wanted(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    let readiness = match health::ready(node).map(|c| c.status.as_str()) {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    };
    if let Some(key) = readiness {
        wanted.push((key, NO_SCHEDULE));
        wanted.push((key, NO_EXECUTE));
    }
    for (condition, key) in PRESSURE {
        if health::condition(node, condition).is_some_and(|c| c.status == "True") {
            wanted.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    wanted
}

/// The node's taints with the managed ones made right, or `None` when they already are.
/// Taints others set are kept as they are, in place; a managed taint that stays keeps its
/// `timeAdded`; a new `NoExecute` one is stamped `now`, from which tolerations count.
pub(crate) fn reconciled(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted = wanted(node);
    let is_wanted = |t: &Taint| wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e);
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !is_managed(t) || is_wanted(t))
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !taints.iter().any(|t| t.key == *key && t.effect == *effect) {
            taints.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                time_added: (*effect == NO_EXECUTE).then_some(Time(now)),
                value: None,
            });
        }
    }
    (taints != current).then_some(taints)
}

/// Kubernetes' `ToleratesTaint`: the effect and key match (empty means any), and the
/// value is equal — or anything, with operator `Exists`.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = toleration
        .key
        .as_deref()
        .is_none_or(|k| k.is_empty() || k == taint.key);
    let value_ok = match toleration.operator.as_deref() {
        None | Some("" | "Equal") => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        Some("Exists") => true,
        Some(_) => false,
    };
    effect_ok && key_ok && value_ok
}

/// When `pod` must be evicted from a node with `taints`, or `None` if it may stay: the
/// earliest, over the node's `NoExecute` taints, of when the taint appeared (or the pod did,
/// if later) plus the pod's `tolerationSeconds` for it. A taint the pod does not tolerate
/// at all evicts it at once — except `not-ready` and `unreachable`, which every pod is
/// taken to tolerate for `default_toleration` (what Kubernetes' `DefaultTolerationSeconds`
/// admission writes into each pod). `added` says when a taint without `timeAdded` was
/// first seen.
///
/// A pod without tolerations on a node unreachable since 12:00:00, `default_toleration`
/// 60 s → 12:01:00. The same pod tolerating `unreachable` with no `tolerationSeconds` →
/// `None` (it waits for the node, however long).
pub(crate) fn eviction_time(
    pod: &Pod,
    taints: &[Taint],
    default_toleration: Duration,
    added: impl Fn(&Taint) -> Timestamp,
) -> Option<Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let since = taint
            .time_added
            .as_ref()
            .map_or_else(|| added(taint), |t| t.0);
        let start = created.map_or(since, |c| c.max(since));
        let seconds = match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => match t.toleration_seconds {
                None => continue,
                Some(s) => s.max(0),
            },
            None if taint.key == NOT_READY || taint.key == UNREACHABLE => {
                i64::try_from(default_toleration.as_secs()).unwrap_or(i64::MAX)
            }
            None => 0,
        };
        let at = start
            .saturating_add(SignedDuration::from_secs(seconds))
            .unwrap_or(start);
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::tests::{at, node};
    use super::*;

    fn tainted(n: &mut Node, taints: serde_json::Value) {
        n.spec = Some(serde_json::from_value(json!({"taints": taints})).unwrap());
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints
            .iter()
            .map(|t| (t.key.clone(), t.effect.clone()))
            .collect()
    }

    #[test]
    fn an_unreachable_node_gets_both_unreachable_taints() {
        let n = node("Unknown", 0);
        let taints = reconciled(&n, at(10)).unwrap();
        assert_eq!(
            keys(&taints),
            [
                (UNREACHABLE.into(), NO_SCHEDULE.into()),
                (UNREACHABLE.into(), NO_EXECUTE.into())
            ]
        );
        assert_eq!(taints[0].time_added, None);
        assert_eq!(taints[1].time_added, Some(Time(at(10))));
    }

    #[test]
    fn taints_swap_and_clear_with_readiness_but_others_stay() {
        let mut n = node("False", 0);
        tainted(
            &mut n,
            json!([
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": UNREACHABLE, "effect": "NoSchedule"},
                {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": at(1).to_string()},
            ]),
        );
        let taints = reconciled(&n, at(10)).unwrap();
        assert_eq!(
            keys(&taints),
            [
                ("dedicated".into(), NO_SCHEDULE.into()),
                (NOT_READY.into(), NO_SCHEDULE.into()),
                (NOT_READY.into(), NO_EXECUTE.into())
            ]
        );
        let mut healthy = node("True", 0);
        healthy.spec = n.spec.clone();
        assert_eq!(
            keys(&reconciled(&healthy, at(10)).unwrap()),
            [("dedicated".into(), NO_SCHEDULE.into())]
        );
    }

    #[test]
    fn settled_taints_are_left_alone() {
        let mut n = node("Unknown", 0);
        let taints = reconciled(&n, at(10)).unwrap();
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(taints),
            ..Default::default()
        });
        assert!(reconciled(&n, at(20)).is_none(), "timeAdded must not move");
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": at(0).to_string()},
            "spec": {"containers": [], "tolerations": tolerations},
        }))
        .unwrap()
    }

    fn unreachable_since(secs: i64) -> Vec<Taint> {
        serde_json::from_value(json!([
            {"key": UNREACHABLE, "effect": "NoSchedule"},
            {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": at(secs).to_string()},
        ]))
        .unwrap()
    }

    #[test]
    fn eviction_waits_for_the_toleration() {
        let never = |_: &Taint| at(999);
        let default = Duration::from_secs(60);
        let taints = unreachable_since(100);
        assert_eq!(
            eviction_time(&pod(json!(null)), &taints, default, never),
            Some(at(160))
        );
        let short = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        assert_eq!(
            eviction_time(&short, &taints, default, never),
            Some(at(105))
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_time(&forever, &taints, default, never), None);
        let other: Vec<Taint> = serde_json::from_value(
            json!([{"key": "maintenance", "value": "now", "effect": "NoExecute"}]),
        )
        .unwrap();
        assert_eq!(
            eviction_time(&pod(json!(null)), &other, default, never),
            Some(at(999)),
            "untolerated: at once"
        );
        let equal = pod(json!([{"key": "maintenance", "value": "later", "effect": "NoExecute"}]));
        assert_eq!(
            eviction_time(&equal, &other, default, never),
            Some(at(999)),
            "the value must match"
        );
        assert_eq!(eviction_time(&pod(json!(null)), &[], default, never), None);
    }
}
