//! The annotations a Deployment keeps on its ReplicaSets, which `kubectl rollout history`
//! and `kubectl rollout undo` read back.
//!
//! - `deployment.kubernetes.io/revision`: the rollout number; the new ReplicaSet always has
//!   the highest, one more than every old one. A rollback makes an old ReplicaSet new again,
//!   so it gets a fresh number, and its former numbers go to `revision-history`.
//! - `desired-replicas` / `max-replicas`: the Deployment's size (and size plus surge) when it
//!   last scaled this ReplicaSet, so that a later resize can scale every ReplicaSet in
//!   proportion.
//! - Every other annotation of the Deployment (such as `kubernetes.io/change-cause`) is
//!   copied to its new ReplicaSet, which is where `rollout history` finds it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub(crate) const REVISION: &str = "deployment.kubernetes.io/revision";
pub(crate) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub(crate) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub(crate) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations that describe the Deployment object itself, not a version of its template.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// `revision-history` is cut from the front to stay under this many characters.
const MAX_HISTORY_CHARS: usize = 2000;

/// The revision of an object; 0 when absent or unreadable.
pub(crate) fn revision(meta: &ObjectMeta) -> i64 {
    annotation(meta, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn max_revision<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    sets.into_iter()
        .map(|rs| revision(&rs.metadata))
        .max()
        .unwrap_or(0)
}

/// The `desired-replicas` annotation, when readable.
pub(crate) fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

/// The `max-replicas` annotation, when readable.
pub(crate) fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Brings the annotations of the new ReplicaSet up to date for `new_revision`; `exists` is
/// false for one about to be created, which also gets its replica annotations. Returns
/// whether anything changed (Kubernetes' `SetNewReplicaSetAnnotations`).
pub(crate) fn set_new_replicaset_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            // An unreadable revision is left for a person to fix rather than overwritten.
            Err(_) => return changed,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            push_history(annotations, &old);
        }
    }
    if !exists {
        let replicas = super::rollout::desired(d);
        changed |= set_replicas_annotations(rs, replicas, replicas + max_surge);
    }
    changed
}

/// A ReplicaSet that becomes new again keeps its earlier revision numbers in
/// `revision-history` ("1,3"), oldest dropped first past [`MAX_HISTORY_CHARS`].
fn push_history(annotations: &mut BTreeMap<String, String>, old_revision: &str) {
    let history = annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    let mut revisions: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
    revisions.push(old_revision);
    while revisions.len() > 1 && revisions.join(",").len() > MAX_HISTORY_CHARS {
        revisions.remove(0);
    }
    annotations.insert(REVISION_HISTORY.into(), revisions.join(","));
}

/// Copies the Deployment's own annotations (bar [`NOT_COPIED`]) onto `rs`; whether any
/// changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Whether `rs` lacks the replica annotations for a Deployment of `desired` (`max` with
/// surge).
pub(crate) fn replicas_annotations_needed(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Sets the replica annotations; whether they changed.
pub(crate) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    if !replicas_annotations_needed(rs, desired, max) {
        return false;
    }
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
    true
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentSpec;

    use super::*;

    fn deployment(annotations: &[(&str, &str)]) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        d.spec = Some(DeploymentSpec {
            replicas: Some(3),
            ..DeploymentSpec::default()
        });
        d
    }

    fn rs_with(annotations: &[(&str, &str)]) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        rs
    }

    #[test]
    fn a_created_replicaset_gets_revision_replicas_and_change_cause() {
        let d = deployment(&[
            ("kubernetes.io/change-cause", "v2"),
            (REVISION, "1"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
        ]);
        let mut rs = ReplicaSet::default();
        assert!(set_new_replicaset_annotations(&d, &mut rs, 2, false, 1));
        let a = rs.metadata.annotations.unwrap();
        assert_eq!(a[REVISION], "2");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn a_rollback_renumbers_and_keeps_history() {
        let d = deployment(&[]);
        let mut rs = rs_with(&[(REVISION, "3"), (REVISION_HISTORY, "1")]);
        assert!(set_new_replicaset_annotations(&d, &mut rs, 5, true, 0));
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[REVISION_HISTORY], "1,3");
        assert!(
            !a.contains_key(DESIRED_REPLICAS),
            "an existing ReplicaSet is scaled separately"
        );
        // Already current: nothing to do.
        assert!(!set_new_replicaset_annotations(&d, &mut rs, 5, true, 0));
    }

    #[test]
    fn history_is_capped() {
        let long: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let mut a = BTreeMap::from([(REVISION_HISTORY.to_owned(), long.join(","))]);
        push_history(&mut a, "9999");
        assert!(a[REVISION_HISTORY].len() <= MAX_HISTORY_CHARS);
        assert!(a[REVISION_HISTORY].ends_with(",9999"));
    }

    #[test]
    fn max_revision_skips_unreadable() {
        let sets = [
            rs_with(&[(REVISION, "2")]),
            rs_with(&[(REVISION, "x")]),
            rs_with(&[]),
        ];
        assert_eq!(max_revision(&sets), 2);
    }
}
