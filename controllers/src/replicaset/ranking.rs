//! Which pods a ReplicaSet gives up first when it has too many (Kubernetes'
//! `ActivePodsWithRanks`): the ones whose loss costs least.
//!
//! Worked example: of a pod not yet scheduled, a Pending one, a Running-but-not-Ready one and
//! two Ready ones, the order is exactly that; of the two Ready ones, the one on a node
//! crowded with its siblings goes first, then the one Ready for less time.

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use crate::pods;

/// The annotation a user sets to say how much deleting a pod costs (lower goes first).
pub(crate) const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The `count` pods of `pods` to delete first. `related` are the active pods of the owner and
/// of its siblings (the other ReplicaSets of the same Deployment): a pod sharing its node
/// with many of them is a better victim, as it spreads the rest.
pub(crate) fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], count: usize) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related {
        if let Some(node) = node_name(pod) {
            *on_node.entry(node).or_default() += 1;
        }
    }
    let rank = |pod: &Pod| node_name(pod).map_or(0, |n| on_node.get(n).copied().unwrap_or(0));
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(delete_first);
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

/// `Less` when `a` should be deleted before `b`.
fn delete_first((a, rank_a): &(&Pod, usize), (b, rank_b): &(&Pod, usize)) -> Ordering {
    // Not scheduled before scheduled.
    node_name(a)
        .is_some()
        .cmp(&node_name(b).is_some())
        // Pending before Unknown before Running.
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        // Not ready before ready.
        .then_with(|| pods::is_ready(a).cmp(&pods::is_ready(b)))
        // Lower deletion cost first.
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        // More siblings on the same node first.
        .then_with(|| rank_b.cmp(rank_a))
        // Ready for less time first (a later or unknown ready time goes first).
        .then_with(|| {
            if pods::is_ready(a) && pods::is_ready(b) {
                later_or_unknown_first(pods::ready_since(a), pods::ready_since(b))
            } else {
                Ordering::Equal
            }
        })
        // More restarts first.
        .then_with(|| restarts(b).cmp(&restarts(a)))
        // Newer first.
        .then_with(|| later_or_unknown_first(created(a), created(b)))
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn phase_rank(pod: &Pod) -> u8 {
    match pods::phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// An unparsable cost counts as 0, as in Kubernetes (validation rejects it anyway).
fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Unknown before known, then later before earlier.
fn later_or_unknown_first(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    struct P(Pod);

    impl P {
        fn new(name: &str) -> P {
            let mut pod = Pod::default();
            pod.metadata.name = Some(name.into());
            pod.metadata.creation_timestamp = Some(Time(ts(0)));
            P(pod)
        }
        fn on(mut self, node: &str) -> P {
            self.0.spec = Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            });
            self
        }
        fn phase(mut self, phase: &str) -> P {
            self.0.status.get_or_insert_with(PodStatus::default).phase = Some(phase.into());
            self
        }
        fn ready_since(mut self, secs: i64) -> P {
            let status = self.0.status.get_or_insert_with(PodStatus::default);
            status.phase = Some("Running".into());
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(secs))),
                ..PodCondition::default()
            }]);
            self
        }
        fn created(mut self, secs: i64) -> P {
            self.0.metadata.creation_timestamp = Some(Time(ts(secs)));
            self
        }
        fn cost(mut self, cost: &str) -> P {
            self.0
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(DELETION_COST.into(), cost.into());
            self
        }
    }

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn order(pods: &[P], related: &[P]) -> Vec<String> {
        let pods: Vec<&Pod> = pods.iter().map(|p| &p.0).collect();
        let related: Vec<&Pod> = related.iter().map(|p| &p.0).collect();
        pods_to_delete(&pods, &related, pods.len())
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn least_ready_goes_first() {
        let pods = [
            P::new("ready").on("n1").ready_since(10),
            P::new("running").on("n1").phase("Running"),
            P::new("unscheduled"),
            P::new("pending").on("n1").phase("Pending"),
            P::new("unknown").on("n1").phase("Unknown"),
        ];
        assert_eq!(
            order(&pods, &[]),
            ["unscheduled", "pending", "unknown", "running", "ready"]
        );
    }

    #[test]
    fn among_ready_pods_cost_then_crowding_then_ready_time() {
        let pods = [
            P::new("old-ready").on("n2").ready_since(0),
            P::new("new-ready").on("n2").ready_since(50),
            P::new("crowded").on("n1").ready_since(0),
            P::new("cheap").on("n3").ready_since(0).cost("-5"),
        ];
        let related = [
            P::new("x").on("n1"),
            P::new("y").on("n1"),
            P::new("z").on("n1"),
        ];
        assert_eq!(
            order(&pods, &related),
            ["cheap", "crowded", "new-ready", "old-ready"]
        );
    }

    #[test]
    fn newer_pods_go_first_all_else_equal() {
        let pods = [
            P::new("old").on("n1").created(1),
            P::new("new").on("n1").created(9),
        ];
        assert_eq!(order(&pods, &[]), ["new", "old"]);
    }

    #[test]
    fn takes_only_what_is_asked() {
        let pods = [P::new("a"), P::new("b"), P::new("c")];
        let refs: Vec<&Pod> = pods.iter().map(|p| &p.0).collect();
        assert_eq!(pods_to_delete(&refs, &[], 2).len(), 2);
    }
}
