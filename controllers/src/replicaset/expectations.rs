//! Expectations: what a ReplicaSet has just asked of the API and not yet seen in its pod cache
//! (Kubernetes' `UIDTrackingControllerExpectations`).
//!
//! The reconciler counts pods from a watch-fed cache. Right after it creates two pods, the
//! cache may not hold them yet; counting again then would create two more. So before acting
//! the reconciler records what it expects, the pod watch crosses each expectation off as it
//! sees it, and the reconciler only creates or deletes again once nothing is outstanding.
//!
//! # Guarantees
//! - A creation is crossed off when the watch first shows a pod controlled by the owner, or
//!   when the create call failed (nothing will show up).
//! - A deletion is crossed off when the watch shows that pod gone or terminating, or when the
//!   delete call failed for another reason than "not found".
//!
//! # Caveats
//! A pod created and deleted while the watch was down is never seen; its expectation would
//! block the owner forever, so every expectation lapses after [`TIMEOUT`] (Kubernetes' five
//! minutes), after which the owner acts on its cache as it is.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::owners::controller_of;

/// How long an unmet expectation blocks its owner.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(300);

/// Outstanding creations and deletions per owner, keyed by the owner's uid (a ReplicaSet
/// deleted and created again under the same name starts afresh).
#[derive(Default)]
pub(crate) struct Expectations {
    // A std Mutex: it is never held across an await, and the watch hook that takes it is sync.
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    creations: usize,
    /// uids of the pods whose deletion was asked for.
    deletions: HashSet<String>,
    since: Instant,
}

impl Expectations {
    /// Whether `owner` may act on its cache: nothing outstanding, or the expectation lapsed.
    pub fn satisfied(&self, owner: &str) -> bool {
        self.satisfied_at(owner, Instant::now())
    }

    fn satisfied_at(&self, owner: &str, now: Instant) -> bool {
        let mut pending = self.lock();
        let Some(p) = pending.get(owner) else {
            return true;
        };
        let done =
            (p.creations == 0 && p.deletions.is_empty()) || now.duration_since(p.since) >= TIMEOUT;
        if done {
            pending.remove(owner);
        }
        done
    }

    /// Records that `owner` is about to create `count` pods.
    pub fn expect_creations(&self, owner: &str, count: usize) {
        self.expect(owner, count, Vec::new());
    }

    /// Records that `owner` is about to delete the pods with these uids.
    pub fn expect_deletions(&self, owner: &str, pods: Vec<String>) {
        self.expect(owner, 0, pods);
    }

    fn expect(&self, owner: &str, creations: usize, deletions: Vec<String>) {
        let now = Instant::now();
        let mut pending = self.lock();
        // Owners deleted with expectations outstanding never ask again; drop them here.
        pending.retain(|_, p| now.duration_since(p.since) < TIMEOUT);
        pending.insert(
            owner.to_owned(),
            Pending {
                creations,
                deletions: deletions.into_iter().collect(),
                since: now,
            },
        );
    }

    /// One expected creation happened, or will not happen.
    pub fn creation_observed(&self, owner: &str) {
        if let Some(p) = self.lock().get_mut(owner) {
            p.creations = p.creations.saturating_sub(1);
        }
    }

    /// The pod with `pod_uid` is gone or going, or its deletion failed.
    pub fn deletion_observed(&self, owner: &str, pod_uid: &str) {
        if let Some(p) = self.lock().get_mut(owner) {
            p.deletions.remove(pod_uid);
        }
    }

    /// Crosses off what one pod watch event shows. Called before the event reaches the cache,
    /// so that `cache` still tells a new pod from one already known.
    pub fn observe(&self, event: &watcher::Event<Pod>, cache: &Store<Pod>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let Some(owner) = owner_uid(pod) else { return };
                if !is_cached(pod, cache) {
                    self.creation_observed(owner);
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    self.deletion_observed(owner, uid(pod));
                }
            }
            watcher::Event::Delete(pod) => {
                let Some(owner) = owner_uid(pod) else { return };
                if !is_cached(pod, cache) {
                    // Created and deleted before the cache ever held it.
                    self.creation_observed(owner);
                }
                self.deletion_observed(owner, uid(pod));
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding the lock leaves plain counters behind; they are still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn owner_uid(pod: &Pod) -> Option<&str> {
    controller_of(&pod.metadata)
        .filter(|r| r.kind == "ReplicaSet")
        .map(|r| r.uid.as_str())
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn is_cached(pod: &Pod, cache: &Store<Pod>) -> bool {
    cache
        .get(&ObjectRef::from_obj(pod))
        .is_some_and(|known| known.metadata.uid == pod.metadata.uid)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use kube::runtime::reflector;

    use super::*;

    fn pod(name: &str, owner: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some(format!("uid-{name}"));
        pod.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            uid: owner.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        pod
    }

    #[test]
    fn creations_are_crossed_off_by_new_pods_only() {
        let e = Expectations::default();
        let (cache, mut writer) = reflector::store();
        e.expect_creations("rs", 2);
        let first = watcher::Event::Apply(pod("a", "rs"));
        e.observe(&first, &cache);
        writer.apply_watcher_event(&first);
        // An update of a pod already known is not a creation.
        e.observe(&first, &cache);
        assert!(!e.satisfied("rs"));
        e.observe(&watcher::Event::Apply(pod("b", "rs")), &cache);
        assert!(e.satisfied("rs"));
    }

    #[test]
    fn failed_creations_and_foreign_pods() {
        let e = Expectations::default();
        let (cache, _writer) = reflector::store();
        e.expect_creations("rs", 1);
        e.observe(&watcher::Event::Apply(pod("x", "other")), &cache);
        assert!(!e.satisfied("rs"));
        e.creation_observed("rs");
        assert!(e.satisfied("rs"));
    }

    #[test]
    fn deletions_are_crossed_off_when_terminating_or_gone() {
        let e = Expectations::default();
        let (cache, _writer) = reflector::store();
        e.expect_deletions("rs", vec!["uid-a".into(), "uid-b".into()]);
        let mut a = pod("a", "rs");
        e.observe(&watcher::Event::Apply(a.clone()), &cache);
        assert!(!e.satisfied("rs"), "a plain update is no deletion");
        a.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        e.observe(&watcher::Event::Apply(a), &cache);
        e.observe(&watcher::Event::Delete(pod("b", "rs")), &cache);
        assert!(e.satisfied("rs"));
    }

    #[test]
    fn expectations_lapse() {
        let e = Expectations::default();
        e.expect_creations("rs", 3);
        assert!(!e.satisfied_at("rs", Instant::now()));
        assert!(e.satisfied_at("rs", Instant::now() + TIMEOUT));
        assert!(e.satisfied("rs"), "a lapsed expectation is forgotten");
    }
}
