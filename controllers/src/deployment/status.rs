//! A Deployment's status: counts summed over its ReplicaSets, and the conditions
//! `kubectl rollout status` and users read (Kubernetes' `sync.go` and `deployment/util`).
//!
//! - `Available`: True (`MinimumReplicasAvailable`) while at least `replicas -
//!   maxUnavailable` pods are available, else False (`MinimumReplicasUnavailable`).
//! - `Progressing`: True with `NewReplicaSetCreated`, `FoundNewReplicaSet` or
//!   `ReplicaSetUpdated` while a rollout moves, `NewReplicaSetAvailable` once it is done;
//!   False with `ProgressDeadlineExceeded` when it has not moved for
//!   `progressDeadlineSeconds`; Unknown with `DeploymentPaused`/`DeploymentResumed`.
//!   Its `lastUpdateTime` is when the rollout last moved, which the deadline counts from.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rollout;
use crate::replicaset::nonzero;

pub(crate) const AVAILABLE: &str = "Available";
pub(crate) const PROGRESSING: &str = "Progressing";
const REPLICA_FAILURE: &str = "ReplicaFailure";

pub(crate) const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub(crate) const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
const RS_UPDATED: &str = "ReplicaSetUpdated";
const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub(crate) const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// A condition as Kubernetes makes them: both times now.
pub(crate) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub(crate) fn get<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Sets a condition unless one with the same status and reason is there; keeps the
/// transition time when only the reason changes (Kubernetes' `SetDeploymentCondition`).
pub(crate) fn set(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time
                .clone_from(&current.last_transition_time);
        }
    }
    remove(status, &c.type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub(crate) fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// `progressDeadlineSeconds`, unless unset or "never" (`i32::MAX`).
pub(crate) fn progress_deadline(d: &Deployment) -> Option<Duration> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

/// The counts and the Available condition for `d` with these ReplicaSets (Kubernetes'
/// `calculateStatus`); other conditions are carried over from `d.status`.
pub(crate) fn calculate(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    max_unavailable: i32,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let reported =
        |rs: &ReplicaSet, f: fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| {
            rs.status.as_ref().map_or(0, f)
        };
    let replicas: i32 = all.iter().map(|rs| reported(rs, |s| s.replicas)).sum();
    let ready: i32 = all
        .iter()
        .map(|rs| reported(rs, |s| s.ready_replicas.unwrap_or(0)))
        .sum();
    let available: i32 = all
        .iter()
        .map(|rs| reported(rs, |s| s.available_replicas.unwrap_or(0)))
        .sum();
    let wanted: i32 = all.iter().map(|rs| rollout::size(rs)).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(replicas),
        updated_replicas: nonzero(new.map_or(0, |rs| reported(rs, |s| s.replicas))),
        ready_replicas: nonzero(ready),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((wanted - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions,
        terminating_replicas: None,
    };
    let available_condition = if available >= rollout::desired(d) - max_unavailable {
        condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set(&mut status, available_condition);
    status
}

/// Every new pod is there and available, and nothing old is left.
pub(crate) fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let replicas = rollout::desired(d);
    s.updated_replicas.unwrap_or(0) == replicas
        && s.replicas.unwrap_or(0) == replicas
        && s.available_replicas.unwrap_or(0) == replicas
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether anything moved since `d.status`: more new pods, fewer old ones, more ready or
/// available.
fn is_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_pods = |st: &DeploymentStatus| n(st.replicas) - n(st.updated_replicas);
    n(s.updated_replicas) > n(old.updated_replicas)
        || old_pods(s) < old_pods(&old)
        || n(s.ready_replicas) > n(old.ready_replicas)
        || n(s.available_replicas) > n(old.available_replicas)
}

fn is_timed_out(d: &Deployment, s: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    let (Some(deadline), Some(c)) = (progress_deadline(d), get(s, PROGRESSING)) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| since(t.0, now) > deadline),
    }
}

fn since(t: jiff::Timestamp, now: jiff::Timestamp) -> Duration {
    Duration::try_from(now.duration_since(t)).unwrap_or_default()
}

/// Updates the Progressing condition of `s` for a rollout towards `new_rs` (Kubernetes'
/// `syncRolloutStatus`).
pub(crate) fn progress(
    d: &Deployment,
    s: &mut DeploymentStatus,
    new_rs: Option<&str>,
    now: jiff::Timestamp,
) {
    if progress_deadline(d).is_none() {
        remove(s, PROGRESSING);
        return;
    }
    let current = d
        .status
        .as_ref()
        .and_then(|st| get(st, PROGRESSING))
        .cloned();
    let done = s.replicas == s.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if done {
        return;
    }
    let subject = new_rs.map_or_else(|| "Deployment".to_owned(), |n| format!("ReplicaSet {n:?}"));
    if is_complete(d, s) {
        let message = format!("{subject} has successfully progressed.");
        set(
            s,
            condition(PROGRESSING, "True", NEW_RS_AVAILABLE, message, now),
        );
    } else if is_progressing(d, s) {
        let mut c = condition(
            PROGRESSING,
            "True",
            RS_UPDATED,
            format!("{subject} is progressing."),
            now,
        );
        if let Some(current) = current.filter(|c| c.status == "True") {
            c.last_transition_time = current.last_transition_time;
        }
        // Replaced outright (not `set`) so that `lastUpdateTime` moves on every step.
        remove(s, PROGRESSING);
        s.conditions.get_or_insert_with(Vec::new).push(c);
    } else if is_timed_out(d, s, now) {
        let message = format!("{subject} has timed out progressing.");
        set(s, condition(PROGRESSING, "False", TIMED_OUT, message, now));
    }
}

/// When to look again at a rollout that has not finished: just after its deadline would
/// pass, since no event marks that moment.
pub(crate) fn recheck_after(
    d: &Deployment,
    s: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let c = get(s, PROGRESSING)?;
    if is_complete(d, s) || c.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    let left = deadline.saturating_sub(since(from, now));
    Some(left.max(Duration::from_millis(500)) + Duration::from_secs(1))
}

/// Sets Progressing to Unknown while paused and back when resumed, unless the rollout has
/// already timed out (Kubernetes' `checkPausedConditions`).
pub(crate) fn pause_condition(d: &Deployment, s: &mut DeploymentStatus, now: jiff::Timestamp) {
    if progress_deadline(d).is_none() {
        return;
    }
    let reason = get(s, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused = d.spec.as_ref().and_then(|sp| sp.paused).unwrap_or(false);
    let shown = reason.as_deref() == Some(PAUSED);
    if paused && !shown {
        set(
            s,
            condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if !paused && shown {
        set(
            s,
            condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                now,
            ),
        );
    }
}

/// Carries a `ReplicaFailure` of the new ReplicaSet, else of any, into the Deployment.
pub(crate) fn replica_failure(
    s: &mut DeploymentStatus,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
) {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .cloned()
    };
    let found = new
        .and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)));
    match found {
        Some(c) => set(
            s,
            DeploymentCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time,
            },
        ),
        None => remove(s, REPLICA_FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec, ReplicaSetStatus};

    use super::*;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn deployment(replicas: i32, generation: i64) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: Some(600),
            ..DeploymentSpec::default()
        });
        d
    }

    fn rs(size: i32, replicas: i32, ready: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(size),
                ..ReplicaSetSpec::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
            ..ReplicaSet::default()
        }
    }

    fn reason(s: &DeploymentStatus, type_: &str) -> Option<String> {
        get(s, type_).and_then(|c| c.reason.clone())
    }

    #[test]
    fn counts_and_availability() {
        let d = deployment(4, 2);
        let old = rs(2, 3, 3, 3);
        let new = rs(3, 2, 1, 0);
        let s = calculate(&d, &[&old, &new], Some(&new), 1, ts(0));
        assert_eq!(s.replicas, Some(5));
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(4));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            reason(&s, AVAILABLE).as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let s = calculate(&d, &[&old, &new], Some(&new), 0, ts(0));
        assert_eq!(
            reason(&s, AVAILABLE).as_deref(),
            Some("MinimumReplicasUnavailable")
        );
    }

    #[test]
    fn progressing_moves_completes_and_times_out() {
        let mut d = deployment(2, 1);
        let mut s = DeploymentStatus::default();
        set(
            &mut s,
            condition(PROGRESSING, "True", NEW_RS_CREATED, "created".into(), ts(0)),
        );
        d.status = Some(s.clone());
        // One new pod: progress, lastUpdateTime moves, transition time stays.
        s.replicas = Some(1);
        s.updated_replicas = Some(1);
        progress(&d, &mut s, Some("web-1"), ts(10));
        let c = get(&s, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-1\" is progressing.")
        );
        assert_eq!(c.last_update_time, Some(Time(ts(10))));
        assert_eq!(c.last_transition_time, Some(Time(ts(0))));
        d.status = Some(s.clone());
        // Nothing moves for longer than the deadline.
        assert!(recheck_after(&d, &s, ts(20)).unwrap() > Duration::from_secs(590));
        progress(&d, &mut s, Some("web-1"), ts(700));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(TIMED_OUT));
        assert_eq!(get(&s, PROGRESSING).unwrap().status, "False");
        assert_eq!(recheck_after(&d, &s, ts(700)), None);
        // Then it completes after all.
        d.status = Some(s.clone());
        s.replicas = Some(2);
        s.updated_replicas = Some(2);
        s.available_replicas = Some(2);
        s.observed_generation = Some(1);
        progress(&d, &mut s, Some("web-1"), ts(800));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            get(&s, PROGRESSING).unwrap().message.as_deref(),
            Some("ReplicaSet \"web-1\" has successfully progressed.")
        );
    }

    #[test]
    fn paused_and_resumed() {
        let mut d = deployment(1, 1);
        let mut s = DeploymentStatus::default();
        d.spec.as_mut().unwrap().paused = Some(true);
        pause_condition(&d, &mut s, ts(0));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(PAUSED));
        assert_eq!(get(&s, PROGRESSING).unwrap().status, "Unknown");
        d.spec.as_mut().unwrap().paused = Some(false);
        pause_condition(&d, &mut s, ts(1));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(RESUMED));
    }

    #[test]
    fn no_deadline_no_progressing() {
        let mut d = deployment(1, 1);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        let mut s = DeploymentStatus::default();
        set(
            &mut s,
            condition(PROGRESSING, "True", FOUND_NEW_RS, String::new(), ts(0)),
        );
        progress(&d, &mut s, None, ts(1));
        assert!(get(&s, PROGRESSING).is_none());
    }
}
