//! The arithmetic of a rollout: how far each ReplicaSet may be scaled in one step. Pure
//! functions over the Deployment and its ReplicaSets (Kubernetes' `deployment/util` and
//! `rolling.go`), so that each rule is tested on its own.
//!
//! Worked example: `replicas: 4`, `maxSurge: 25%` (rounded up: 1), `maxUnavailable: 25%`
//! (rounded down: 1). At most 5 pods exist and at least 3 are available at any time. From
//! 4 old pods the new ReplicaSet grows to 1 (5 pods); the old one shrinks by what is
//! available beyond 3, and so on, each step waiting for pods to become available.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::revision;
use crate::Error;

/// `spec.replicas` of the Deployment (1 when left out, as defaulting sets it).
pub(crate) fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub(crate) fn size(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Available pods of a ReplicaSet, never more than it is asked to keep: a ReplicaSet just
/// scaled down still reports the pods it is about to delete, and counting them would let a
/// rollout take away more than `maxUnavailable`.
pub(crate) fn available(rs: &ReplicaSet) -> i32 {
    let reported = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    reported.min(size(rs))
}

pub(crate) fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t != "Recreate")
}

/// `maxSurge` and `maxUnavailable` as pod counts (Kubernetes' `ResolveFenceposts`): surge
/// rounds up, unavailability down, and both zero would stall, so unavailability becomes 1.
/// A Recreate Deployment has neither.
pub(crate) fn limits(d: &Deployment) -> Result<(i32, i32), Error> {
    if !is_rolling(d) {
        return Ok((0, 0));
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::String("25%".into());
    let replicas = desired(d);
    let field = |name: &str, value: Option<&IntOrString>, round_up: bool| {
        scaled(value.unwrap_or(&quarter), replicas, round_up).map_err(|reason| {
            Error::invalid(
                "Deployment",
                d.name_any(),
                format!("spec.strategy.rollingUpdate.{name}: {reason}"),
            )
        })
    };
    let surge = field("maxSurge", ru.and_then(|r| r.max_surge.as_ref()), true)?;
    let unavailable = field(
        "maxUnavailable",
        ru.and_then(|r| r.max_unavailable.as_ref()),
        false,
    )?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

pub(crate) fn max_surge(d: &Deployment) -> Result<i32, Error> {
    Ok(limits(d)?.0)
}

/// Never more than the Deployment's size, and 0 for an empty Deployment.
pub(crate) fn max_unavailable(d: &Deployment) -> Result<i32, Error> {
    let replicas = desired(d);
    if !is_rolling(d) || replicas == 0 {
        return Ok(0);
    }
    Ok(limits(d)?.1.min(replicas))
}

/// An int, or a percentage of `total` rounded up or down (Kubernetes'
/// `GetScaledValueFromIntOrPercent`).
fn scaled(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    format!("{s:?} is neither an integer nor a percentage such as \"25%\"")
                })?;
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).map_err(|_| format!("{s:?} of {total} is out of range"))
        }
    }
}

/// The new ReplicaSet's size for the next step (Kubernetes' `NewRSNewReplicas`): under
/// RollingUpdate, grow while the total stays within `replicas + maxSurge`; under Recreate,
/// straight to `replicas`.
pub(crate) fn new_replicaset_size(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: &ReplicaSet,
) -> Result<i32, Error> {
    let replicas = desired(d);
    if !is_rolling(d) {
        return Ok(replicas);
    }
    let current: i32 = all.iter().map(|rs| size(rs)).sum();
    let max_total = replicas + max_surge(d)?;
    if current >= max_total {
        return Ok(size(new));
    }
    let up = (max_total - current).min(replicas - size(new));
    Ok(size(new) + up)
}

/// How many old pods may go now without breaking `maxUnavailable` (the first bound in
/// Kubernetes' `reconcileOldReplicaSets`): counted on sizes, and the new ReplicaSet's
/// pods that are not yet available count against it.
pub(crate) fn max_scale_down(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
) -> Result<i32, Error> {
    let all_pods: i32 = all.iter().map(|rs| size(rs)).sum();
    let min_available = desired(d) - max_unavailable(d)?;
    let new_unavailable = new.map_or(0, |rs| size(rs) - available(rs));
    Ok(all_pods - min_available - new_unavailable)
}

/// Sizes for old ReplicaSets with unavailable pods, oldest first, taking away at most
/// `budget` unavailable pods (Kubernetes' `cleanupUnhealthyReplicas`): pods that are not
/// serving anyway go before healthy ones. Returns `(index into old, new size)`.
pub(crate) fn shrink_unhealthy(old: &[ReplicaSet], budget: i32) -> Vec<(usize, i32)> {
    let mut plan = Vec::new();
    let mut taken = 0;
    for i in by_age(old) {
        if taken >= budget {
            break;
        }
        let rs = &old[i];
        let unhealthy = size(rs) - available(rs);
        if size(rs) == 0 || unhealthy <= 0 {
            continue;
        }
        let n = unhealthy.min(budget - taken);
        plan.push((i, size(rs) - n));
        taken += n;
    }
    plan
}

/// Sizes for old ReplicaSets so that no more than `maxUnavailable` pods are unavailable,
/// oldest first (Kubernetes' `scaleDownOldReplicaSetsForRollingUpdate`). Returns
/// `(index into old, new size)`.
pub(crate) fn shrink_old(
    d: &Deployment,
    all: &[&ReplicaSet],
    old: &[ReplicaSet],
) -> Result<Vec<(usize, i32)>, Error> {
    let min_available = desired(d) - max_unavailable(d)?;
    let available_now: i32 = all.iter().map(|rs| available(rs)).sum();
    let mut budget = available_now - min_available;
    let mut plan = Vec::new();
    for i in by_age(old) {
        if budget <= 0 {
            break;
        }
        let rs = &old[i];
        if size(rs) == 0 {
            continue;
        }
        let n = size(rs).min(budget);
        plan.push((i, size(rs) - n));
        budget -= n;
    }
    Ok(plan)
}

/// Indices of `sets`, oldest first (ties by name).
pub(crate) fn by_age(sets: &[ReplicaSet]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|a, b| older_first(&sets[*a], &sets[*b]));
    order
}

fn older_first(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// Whether the new ReplicaSet holds the whole Deployment, all available: the old ones can
/// then go at once.
pub(crate) fn is_saturated(d: &Deployment, new: Option<&ReplicaSet>) -> bool {
    let Some(rs) = new else { return false };
    let replicas = desired(d);
    size(rs) == replicas
        && revision::desired_replicas(rs) == Some(replicas)
        && rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            == replicas
}

/// The one ReplicaSet with pods, or the newest if none has any; `None` when several have
/// pods (Kubernetes' `FindActiveOrLatest`).
pub(crate) fn active_or_latest<'a>(
    new: Option<&'a ReplicaSet>,
    old: &'a [ReplicaSet],
) -> Option<&'a ReplicaSet> {
    let newest_old = by_age(old).last().map(|i| &old[*i]);
    let mut active = old.iter().chain(new).filter(|rs| size(rs) > 0);
    match (active.next(), active.next()) {
        (None, _) => new.or(newest_old),
        (Some(one), None) => Some(one),
        (Some(_), Some(_)) => None,
    }
}

/// Whether the Deployment was resized since it last scaled its ReplicaSets: a resize is
/// applied to every ReplicaSet in proportion, without starting a rollout.
pub(crate) fn is_scaling_event(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> bool {
    let replicas = desired(d);
    old.iter()
        .chain(new)
        .filter(|rs| size(rs) > 0)
        .any(|rs| revision::desired_replicas(rs).is_some_and(|n| n != replicas))
}

/// New sizes for the active ReplicaSets after a resize mid-rollout (Kubernetes'
/// proportional scaling): each gets its share of the pods to add or remove, in proportion
/// to its size, and the rounding leftover goes to the largest. Returns `(name, size)`.
pub(crate) fn proportional_sizes(
    d: &Deployment,
    active: &[&ReplicaSet],
) -> Result<Vec<(String, i32)>, Error> {
    let replicas = desired(d);
    let surge = max_surge(d)?;
    let allowed = if replicas > 0 { replicas + surge } else { 0 };
    let current: i32 = active.iter().map(|rs| size(rs)).sum();
    let to_add = allowed - current;
    let mut order: Vec<&ReplicaSet> = active.to_vec();
    order.sort_by(|a, b| {
        size(b).cmp(&size(a)).then_with(|| {
            // Equal sizes: grow the newer first, shrink the older first.
            if to_add > 0 {
                older_first(b, a)
            } else {
                older_first(a, b)
            }
        })
    });
    let reported = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = order
        .iter()
        .map(|rs| {
            let share = proportion(rs, replicas, replicas + surge, reported, to_add, added);
            added += share;
            (rs.name_any(), size(rs) + share)
        })
        .collect();
    if to_add != 0
        && added != to_add
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    Ok(sizes)
}

/// One ReplicaSet's share of `to_add` (Kubernetes' `GetProportion`).
fn proportion(
    rs: &ReplicaSet,
    replicas: i32,
    with_surge: i32,
    reported: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if size(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas == 0 {
        -size(rs)
    } else {
        let annotated = revision::max_replicas(rs).unwrap_or(reported);
        if annotated <= 0 {
            return 0;
        }
        let scaled = f64::from(size(rs)) * f64::from(with_surge) / f64::from(annotated);
        round(scaled) - size(rs)
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "a pod count scaled by a ratio of pod counts fits an i32"
)]
fn round(x: f64) -> i32 {
    x.round() as i32
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    /// A ReplicaSet of `size` pods, `available` of them available, created at `age`.
    fn rs(name: &str, age: i64, size: i32, available: i32) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some(name.into());
        rs.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::from_second(1_700_000_000 + age).unwrap(),
        ));
        rs.spec = Some(ReplicaSetSpec {
            replicas: Some(size),
            ..ReplicaSetSpec::default()
        });
        rs.status = Some(ReplicaSetStatus {
            replicas: available,
            available_replicas: Some(available),
            ..ReplicaSetStatus::default()
        });
        rs
    }

    fn annotated(mut rs: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
        revision::set_replicas_annotations(&mut rs, desired, max);
        rs
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailability_down() {
        let d = deployment(10, pct("25%"), pct("25%"));
        assert_eq!(limits(&d).unwrap(), (3, 2));
        let d = deployment(1, pct("0%"), pct("0%"));
        assert_eq!(
            limits(&d).unwrap(),
            (0, 1),
            "both zero would never progress"
        );
        let d = deployment(3, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d).unwrap(), 3, "capped at replicas");
        let d = deployment(3, pct("half"), IntOrString::Int(1));
        let err = limits(&d).unwrap_err().to_string();
        assert!(
            err.contains("maxSurge") && err.contains("percentage"),
            "{err}"
        );
    }

    #[test]
    fn recreate_has_no_surge_and_goes_straight_to_size() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!(limits(&d).unwrap(), (0, 0));
        assert_eq!(max_unavailable(&d).unwrap(), 0);
        let new = rs("new", 1, 0, 0);
        assert_eq!(new_replicaset_size(&d, &[&new], &new).unwrap(), 3);
    }

    #[test]
    fn the_new_replicaset_grows_within_surge() {
        let d = deployment(4, pct("25%"), pct("25%"));
        let old = rs("old", 0, 4, 4);
        let new = rs("new", 1, 0, 0);
        assert_eq!(new_replicaset_size(&d, &[&old, &new], &new).unwrap(), 1);
        let new = rs("new", 1, 1, 0);
        assert_eq!(
            new_replicaset_size(&d, &[&old, &new], &new).unwrap(),
            1,
            "5 pods is the cap"
        );
        let old = rs("old", 0, 2, 2);
        assert_eq!(new_replicaset_size(&d, &[&old, &new], &new).unwrap(), 3);
        let old = rs("old", 0, 0, 0);
        assert_eq!(
            new_replicaset_size(&d, &[&old, &new], &new).unwrap(),
            4,
            "never past replicas"
        );
    }

    #[test]
    fn old_pods_go_only_while_enough_are_available() {
        let d = deployment(4, pct("25%"), pct("25%"));
        let old = vec![rs("old", 0, 4, 4)];
        let new = rs("new", 1, 1, 0);
        let all: Vec<&ReplicaSet> = vec![&old[0], &new];
        // 5 pods, 3 must stay available, 1 new one unavailable: 1 may go.
        assert_eq!(max_scale_down(&d, &all, Some(&new)).unwrap(), 1);
        assert_eq!(shrink_old(&d, &all, &old).unwrap(), vec![(0, 3)]);
        // The old one reports 4 available but was scaled to 3: only 3 count.
        let old = vec![rs("old", 0, 3, 4)];
        let all: Vec<&ReplicaSet> = vec![&old[0], &new];
        assert_eq!(shrink_old(&d, &all, &old).unwrap(), vec![]);
    }

    #[test]
    fn unhealthy_old_pods_go_first_oldest_first() {
        let old = vec![rs("b", 2, 3, 1), rs("a", 1, 2, 0), rs("c", 3, 2, 2)];
        assert_eq!(shrink_unhealthy(&old, 3), vec![(1, 0), (0, 2)]);
        assert_eq!(shrink_unhealthy(&old, 0), vec![]);
    }

    #[test]
    fn active_or_latest() {
        let old = vec![rs("a", 1, 0, 0), rs("b", 2, 0, 0)];
        let new = rs("n", 3, 0, 0);
        assert_eq!(
            super::active_or_latest(Some(&new), &old)
                .unwrap()
                .name_any(),
            "n"
        );
        assert_eq!(super::active_or_latest(None, &old).unwrap().name_any(), "b");
        let old = vec![rs("a", 1, 2, 2), rs("b", 2, 0, 0)];
        assert_eq!(
            super::active_or_latest(Some(&new), &old)
                .unwrap()
                .name_any(),
            "a"
        );
        let new = rs("n", 3, 1, 0);
        assert!(super::active_or_latest(Some(&new), &old).is_none());
    }

    #[test]
    fn saturation_and_scaling_events() {
        let d = deployment(3, pct("25%"), pct("25%"));
        let new = annotated(rs("n", 1, 3, 3), 3, 4);
        assert!(is_saturated(&d, Some(&new)));
        assert!(!is_saturated(&d, Some(&annotated(rs("n", 1, 3, 2), 3, 4))));
        assert!(!is_scaling_event(&d, Some(&new), &[]));
        let d = deployment(6, pct("25%"), pct("25%"));
        assert!(is_scaling_event(&d, Some(&new), &[]));
    }

    #[test]
    fn a_resize_mid_rollout_is_shared_in_proportion() {
        // 10 → 20 replicas with maxSurge 3 (was 13 allowed, now 23): 8 old and 5 new pods.
        let d = deployment(20, IntOrString::Int(3), IntOrString::Int(2));
        let old = annotated(rs("old", 0, 8, 8), 10, 13);
        let new = annotated(rs("new", 1, 5, 0), 10, 13);
        let mut sizes = proportional_sizes(&d, &[&old, &new]).unwrap();
        sizes.sort();
        assert_eq!(sizes, vec![("new".into(), 9), ("old".into(), 14)]);
        // Down to 0: everything goes.
        let d = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        let mut sizes = proportional_sizes(&d, &[&old, &new]).unwrap();
        sizes.sort();
        assert_eq!(sizes, vec![("new".into(), 0), ("old".into(), 0)]);
    }
}
