//! A ReplicaSet's status, computed from the pods it owns (Kubernetes' `calculateStatus`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pods;

/// Why the last attempt to reach `replicas` failed: the `ReplicaFailure` condition's reason
/// (`FailedCreate`, `FailedDelete`) and message.
pub(crate) struct Failure {
    pub reason: &'static str,
    pub message: String,
}

/// The status `rs` should have given its active `pods`.
pub(crate) fn compute(
    rs: &ReplicaSet,
    pods: &[&Pod],
    failure: Option<&Failure>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let count = |f: &dyn Fn(&Pod) -> bool| count_i32(pods.iter().filter(|p| f(p)).count());
    let old = rs.status.clone().unwrap_or_default();
    ReplicaSetStatus {
        replicas: count_i32(pods.len()),
        fully_labeled_replicas: nonzero(count(&|p| has_labels(p, template_labels))),
        ready_replicas: nonzero(count(&pods::is_ready)),
        available_replicas: nonzero(count(&|p| pods::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: failure_condition(old.conditions, failure, now),
        terminating_replicas: old.terminating_replicas,
    }
}

/// How long until the next ready pod counts as available, when one is waiting out
/// `minReadySeconds`: the status must change then, with no watch event to say so.
pub(crate) fn next_availability(
    rs: &ReplicaSet,
    pods: &[&Pod],
    now: jiff::Timestamp,
) -> Option<Duration> {
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| pods::is_ready(p) && !pods::is_available(p, min_ready, now))
        .filter_map(|p| pods::ready_since(p))
        .map(|since| since + jiff::SignedDuration::from_secs(i64::from(min_ready)))
        .min()
        .map(|at| {
            let wait = now.duration_until(at);
            Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(100)
        })
}

/// Zero counts are left out, as Kubernetes (Go's `omitempty`) writes them.
pub(crate) fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn has_labels(pod: &Pod, wanted: Option<&BTreeMap<String, String>>) -> bool {
    let have = pod.metadata.labels.as_ref();
    wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
}

/// The `ReplicaFailure` condition is set while creating or deleting fails and removed once
/// it works; an unchanged failure keeps its first timestamp.
fn failure_condition(
    conditions: Option<Vec<ReplicaSetCondition>>,
    failure: Option<&Failure>,
    now: jiff::Timestamp,
) -> Option<Vec<ReplicaSetCondition>> {
    let mut conditions = conditions.unwrap_or_default();
    let existing = conditions.iter().position(|c| c.type_ == "ReplicaFailure");
    match (failure, existing) {
        (Some(f), None) => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(f.reason.into()),
            message: Some(f.message.clone()),
            last_transition_time: Some(Time(now)),
        }),
        (None, Some(i)) => {
            conditions.remove(i);
        }
        _ => {}
    }
    (!conditions.is_empty()).then_some(conditions)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn rs(min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(4),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                min_ready_seconds: Some(min_ready),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [
                                ("app".to_owned(), "web".to_owned()),
                                ("tier".to_owned(), "fe".to_owned()),
                            ]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                }),
                ..ReplicaSetSpec::default()
            }),
            status: None,
        }
    }

    fn pod(labels: &[(&str, &str)], ready_since: Option<i64>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        if let Some(secs) = ready_since {
            pod.status = Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(secs))),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            });
        }
        pod
    }

    #[test]
    fn counts_ready_available_and_fully_labeled() {
        let full = [("app", "web"), ("tier", "fe")];
        let pods = [
            pod(&full, Some(0)),
            pod(&full, Some(95)),
            pod(&[("app", "web")], None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = compute(&rs(10), &refs, None, ts(100));
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(
            status.available_replicas,
            Some(1),
            "one pod is ready for only 5s of 10"
        );
        assert_eq!(status.observed_generation, Some(4));
        let wait = next_availability(&rs(10), &refs, ts(100)).unwrap();
        assert!(
            wait >= Duration::from_secs(5) && wait < Duration::from_secs(6),
            "{wait:?}"
        );
    }

    #[test]
    fn replica_failure_comes_and_goes() {
        let failure = Failure {
            reason: "FailedCreate",
            message: "quota".into(),
        };
        let mut set = rs(0);
        let status = compute(&set, &[], Some(&failure), ts(0));
        let conditions = status.conditions.clone().unwrap();
        assert_eq!(conditions[0].reason.as_deref(), Some("FailedCreate"));
        set.status = Some(status);
        let again = compute(&set, &[], Some(&failure), ts(50));
        assert_eq!(
            again.conditions,
            Some(conditions),
            "the first failure's time is kept"
        );
        set.status = Some(again);
        assert_eq!(compute(&set, &[], None, ts(60)).conditions, None);
    }
}
