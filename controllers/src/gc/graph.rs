//! The ownership graph: every object the monitors have seen, by uid, with the ownerReferences
//! it holds and the reverse index from an owner's uid to its dependents.
//!
//! The graph is a cache, never the last word: it only decides which objects are worth a look
//! (it returns their uids to queue), and the workers verify against the API server before
//! deleting anything. No IO here, so that every rule below is tested without a server.
//!
//! The reverse index is keyed by the owner's uid whether or not the owner itself was ever
//! seen: a dependent may be listed before its owner (another monitor), or after its owner is
//! gone, and a foreground delete must still find it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::ApiResource;

pub(crate) type Uid = String;

/// The finalizer a `propagationPolicy: Foreground` delete puts on the owner.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer a `propagationPolicy: Orphan` delete puts on the owner.
pub(crate) const ORPHAN: &str = "orphan";

/// Where an object is and what it is called: enough to GET, patch or delete it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The resource its monitor lists it from.
    pub resource: Arc<ApiResource>,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Uid,
}

impl Identity {
    /// `ReplicaSet ns/web-1234`, for logs and Event notes.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.name),
            None => format!("{} {}", self.resource.kind, self.name),
        }
    }
}

/// How far an object has got with its own deletion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Deletion {
    #[default]
    Live,
    /// Deleted with `propagationPolicy: Orphan`: waits for its dependents to be released.
    Orphaning,
    /// Deleted with `propagationPolicy: Foreground`: waits for its blocking dependents to go.
    DeletingDependents,
    /// Deleted, waiting on someone else (a node agent, another finalizer).
    Deleting,
}

impl Deletion {
    pub fn of(meta: &ObjectMeta) -> Deletion {
        if meta.deletion_timestamp.is_none() {
            return Deletion::Live;
        }
        let has = |f: &str| meta.finalizers.iter().flatten().any(|x| x == f);
        // Kubernetes orphans first when both are present: releasing dependents is the
        // stronger promise made to whoever asked for it.
        if has(ORPHAN) {
            Deletion::Orphaning
        } else if has(FOREGROUND) {
            Deletion::DeletingDependents
        } else {
            Deletion::Deleting
        }
    }

    pub fn is_live(self) -> bool {
        self == Deletion::Live
    }
}

/// One object as a monitor reports it.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub deletion: Deletion,
}

impl Observed {
    /// The graph's view of `meta`, listed from `resource`; `None` for an object without a uid
    /// (which the API server never sends).
    pub fn from_meta(resource: &Arc<ApiResource>, meta: &ObjectMeta) -> Option<Observed> {
        Some(Observed {
            identity: Identity {
                resource: resource.clone(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone()?,
                uid: meta.uid.clone()?,
            },
            owners: meta.owner_references.clone().unwrap_or_default(),
            deletion: Deletion::of(meta),
        })
    }
}

/// A dependent as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dependent {
    pub identity: Identity,
    /// Its reference to the owner says `blockOwnerDeletion: true`: a foreground delete of
    /// the owner waits for it.
    pub blocking: bool,
    pub deletion: Deletion,
}

/// How many absent owners to remember. An owner deleted with many dependents is looked up
/// once instead of once per dependent; the memory is bounded because uids never repeat.
const ABSENT_CAPACITY: usize = 1024;

#[derive(Default)]
pub(crate) struct Graph {
    nodes: HashMap<Uid, Observed>,
    dependents: HashMap<Uid, HashSet<Uid>>,
    absent: AbsentOwners,
}

impl Graph {
    /// Records `obj` as it is now, and returns the uids worth a look because of the change.
    pub fn observe(&mut self, obj: Observed) -> Vec<Uid> {
        let uid = obj.identity.uid.clone();
        let old = self.nodes.remove(&uid);
        let (old_owners, old_deletion) = old.map(|n| (n.owners, n.deletion)).unwrap_or_default();
        let mut wake = Vec::new();

        for r in &old_owners {
            let now = obj.owners.iter().find(|n| n.uid == r.uid);
            if now.is_none() {
                self.unlink(&r.uid, &uid);
            }
            // An owner that was waiting on this object may be free to go now.
            let loosened = match now {
                None => true,
                Some(n) => blocks(r) && !blocks(n),
            };
            if loosened && self.deletion(&r.uid) == Some(Deletion::DeletingDependents) {
                wake.push(r.uid.clone());
            }
        }
        for r in &obj.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }

        let refs_changed = !same_refs(&old_owners, &obj.owners);
        if obj.deletion.is_live() && refs_changed && !self.vouches_for_all(&obj) {
            wake.push(uid.clone());
        }
        if obj.deletion != old_deletion {
            match obj.deletion {
                Deletion::Orphaning => wake.push(uid.clone()),
                Deletion::DeletingDependents => {
                    wake.push(uid.clone());
                    wake.extend(self.dependents.get(&uid).into_iter().flatten().cloned());
                }
                Deletion::Live | Deletion::Deleting => {}
            }
        }
        self.nodes.insert(uid, obj);
        wake
    }

    /// Removes the object `uid` (deleted, or found gone), and returns the uids worth a look:
    /// its dependents, and owners waiting for it.
    pub fn forget(&mut self, uid: &str) -> Vec<Uid> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut wake = Vec::new();
        for r in &node.owners {
            self.unlink(&r.uid, uid);
            if self.deletion(&r.uid) == Some(Deletion::DeletingDependents) {
                wake.push(r.uid.clone());
            }
        }
        if let Some(deps) = self.dependents.get(uid) {
            self.absent
                .insert(uid.to_owned(), node.identity.namespace.clone());
            wake.extend(deps.iter().cloned());
        }
        wake
    }

    /// After a relist of `resource`: forgets its objects that were not listed again (deleted
    /// while the watch was down).
    pub fn retain(&mut self, resource: &ApiResource, listed: &HashSet<Uid>) -> Vec<Uid> {
        let gone: Vec<Uid> = self
            .nodes
            .iter()
            .filter(|(uid, n)| *n.identity.resource == *resource && !listed.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().flat_map(|uid| self.forget(uid)).collect()
    }

    pub fn get(&self, uid: &str) -> Option<&Observed> {
        self.nodes.get(uid)
    }

    /// The dependents of `owner` that the graph has seen, with their hold on it.
    pub fn dependents_of(&self, owner: &str) -> Vec<Dependent> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.nodes.get(uid))
            .map(|d| Dependent {
                identity: d.identity.clone(),
                blocking: d.owners.iter().any(|r| r.uid == owner && blocks(r)),
                deletion: d.deletion,
            })
            .collect()
    }

    /// The uids a periodic resync re-examines: objects the graph cannot vouch for (an owner
    /// never seen or being deleted in the foreground), and owners mid-way through an orphan
    /// or foreground delete. Everything else is consistent as far as the graph can tell.
    pub fn suspects(&self) -> Vec<Uid> {
        self.nodes
            .values()
            .filter(|n| self.needs_attention(n))
            .map(|n| n.identity.uid.clone())
            .collect()
    }

    /// `uid` is one of the [`Graph::suspects`].
    pub fn is_suspect(&self, uid: &str) -> bool {
        self.nodes.get(uid).is_some_and(|n| self.needs_attention(n))
    }

    fn needs_attention(&self, n: &Observed) -> bool {
        match n.deletion {
            Deletion::Orphaning | Deletion::DeletingDependents => true,
            Deletion::Deleting => false,
            Deletion::Live => !self.vouches_for_all(n),
        }
    }

    /// The owner `uid` is known gone when looked up in `namespace` (`None`: cluster scope).
    pub fn known_absent(&self, uid: &str, namespace: Option<&str>) -> bool {
        self.absent.contains(uid, namespace)
    }

    pub fn mark_absent(&mut self, uid: &str, namespace: Option<&str>) {
        self.absent
            .insert(uid.to_owned(), namespace.map(str::to_owned));
    }

    /// The namespace in which the graph saw `uid`, if it saw it at all.
    pub fn namespace_of(&self, uid: &str) -> Option<Option<&str>> {
        self.nodes.get(uid).map(|n| n.identity.namespace.as_deref())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    fn deletion(&self, uid: &str) -> Option<Deletion> {
        self.nodes.get(uid).map(|n| n.deletion)
    }

    /// Every owner of `dependent` is one the graph has seen alive (or deleting on its own
    /// terms), where an owner may be: cluster-scoped, or in the dependent's namespace. An
    /// owner with the right uid in another namespace does not count; Kubernetes treats such a
    /// reference as naming nothing.
    fn vouches_for_all(&self, dependent: &Observed) -> bool {
        dependent.owners.iter().all(|r| {
            self.nodes.get(&r.uid).is_some_and(|o| {
                matches!(
                    o.deletion,
                    Deletion::Live | Deletion::Deleting | Deletion::Orphaning
                ) && (o.identity.namespace.is_none()
                    || o.identity.namespace == dependent.identity.namespace)
            })
        })
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }
}

pub(crate) fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

fn same_refs(a: &[OwnerReference], b: &[OwnerReference]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Owners verified gone, per lookup namespace, oldest forgotten first.
#[derive(Default)]
struct AbsentOwners {
    set: HashSet<(Uid, Option<String>)>,
    order: VecDeque<(Uid, Option<String>)>,
}

impl AbsentOwners {
    fn contains(&self, uid: &str, namespace: Option<&str>) -> bool {
        self.set
            .contains(&(uid.to_owned(), namespace.map(str::to_owned)))
    }

    fn insert(&mut self, uid: Uid, namespace: Option<String>) {
        let key = (uid, namespace);
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > ABSENT_CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn configmaps() -> Arc<ApiResource> {
        Arc::new(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        })
    }

    /// A ConfigMap `uid` in namespace `ns`, owned by `owners` (uid, blockOwnerDeletion).
    fn obj(uid: &str, owners: &[(&str, bool)]) -> Observed {
        Observed {
            identity: Identity {
                resource: configmaps(),
                namespace: Some("ns".into()),
                name: format!("cm-{uid}"),
                uid: uid.into(),
            },
            owners: owners
                .iter()
                .map(|(o, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: format!("cm-{o}"),
                    uid: (*o).into(),
                    block_owner_deletion: Some(*block),
                    controller: None,
                })
                .collect(),
            deletion: Deletion::Live,
        }
    }

    fn deleting(mut o: Observed, d: Deletion) -> Observed {
        o.deletion = d;
        o
    }

    fn sorted(mut v: Vec<Uid>) -> Vec<Uid> {
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn deletion_state_follows_finalizers() {
        let mut meta = ObjectMeta {
            finalizers: Some(vec![FOREGROUND.into()]),
            ..ObjectMeta::default()
        };
        assert_eq!(Deletion::of(&meta), Deletion::Live);
        meta.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(Deletion::of(&meta), Deletion::DeletingDependents);
        meta.finalizers = Some(vec![FOREGROUND.into(), ORPHAN.into()]);
        assert_eq!(Deletion::of(&meta), Deletion::Orphaning);
        meta.finalizers = Some(vec!["example.com/keep".into()]);
        assert_eq!(Deletion::of(&meta), Deletion::Deleting);
    }

    #[test]
    fn a_dependent_whose_owner_was_never_seen_is_worth_a_look() {
        let mut g = Graph::default();
        assert_eq!(g.observe(obj("dep", &[("owner", false)])), vec!["dep"]);
        // Once the owner shows up, the same dependent is left alone.
        assert!(g.observe(obj("owner", &[])).is_empty());
        assert!(g.observe(obj("dep2", &[("owner", false)])).is_empty());
        assert_eq!(sorted(g.suspects()), Vec::<Uid>::new());
    }

    #[test]
    fn an_owner_in_another_namespace_vouches_for_nothing() {
        let mut g = Graph::default();
        let mut far = obj("far", &[]);
        far.identity.namespace = Some("elsewhere".into());
        g.observe(far);
        assert_eq!(g.observe(obj("dep", &[("far", false)])), vec!["dep"]);
        assert_eq!(g.suspects(), vec!["dep"]);
    }

    #[test]
    fn deleting_an_owner_wakes_its_dependents_and_remembers_it_absent() {
        let mut g = Graph::default();
        g.observe(obj("owner", &[]));
        g.observe(obj("a", &[("owner", true)]));
        g.observe(obj("b", &[("owner", false)]));
        assert_eq!(sorted(g.forget("owner")), vec!["a", "b"]);
        assert!(g.known_absent("owner", Some("ns")));
        assert!(!g.known_absent("owner", Some("other")));
        // The dependents now point at nothing the graph vouches for.
        assert_eq!(sorted(g.suspects()), vec!["a", "b"]);
        assert!(g.forget("owner").is_empty(), "forgetting twice is harmless");
    }

    #[test]
    fn foreground_deletion_wakes_the_owner_and_all_dependents() {
        let mut g = Graph::default();
        g.observe(obj("owner", &[]));
        g.observe(obj("a", &[("owner", true)]));
        g.observe(obj("b", &[("owner", false)]));
        let woken = g.observe(deleting(obj("owner", &[]), Deletion::DeletingDependents));
        assert_eq!(sorted(woken), vec!["a", "b", "owner"]);
        let deps = g.dependents_of("owner");
        assert_eq!(deps.iter().filter(|d| d.blocking).count(), 1);
        // The same state observed again (a status write) wakes nobody.
        assert!(
            g.observe(deleting(obj("owner", &[]), Deletion::DeletingDependents))
                .is_empty()
        );
    }

    #[test]
    fn a_waiting_owner_is_woken_when_a_blocking_dependent_lets_go() {
        let mut g = Graph::default();
        g.observe(deleting(obj("owner", &[]), Deletion::DeletingDependents));
        g.observe(obj("a", &[("owner", true)]));
        g.observe(obj("b", &[("owner", true)]));
        // a stops blocking: the owner may proceed.
        assert!(
            g.observe(obj("a", &[("owner", false)]))
                .contains(&"owner".to_owned())
        );
        // b drops the reference altogether.
        assert!(g.observe(obj("b", &[])).contains(&"owner".to_owned()));
        assert!(g.dependents_of("owner").iter().all(|d| !d.blocking));
        // a is deleted: the owner is woken again.
        assert_eq!(g.forget("a"), vec!["owner"]);
        assert!(g.dependents_of("owner").is_empty());
    }

    #[test]
    fn orphaning_wakes_the_owner_once() {
        let mut g = Graph::default();
        g.observe(obj("owner", &[]));
        g.observe(obj("a", &[("owner", false)]));
        assert_eq!(
            g.observe(deleting(obj("owner", &[]), Deletion::Orphaning)),
            vec!["owner"]
        );
        assert_eq!(g.suspects(), vec!["owner"]);
        // An orphaning owner still vouches for its dependents: they are released, not deleted.
        assert!(g.observe(obj("c", &[("owner", false)])).is_empty());
    }

    #[test]
    fn a_relist_forgets_what_was_not_listed_again() {
        let mut g = Graph::default();
        g.observe(obj("owner", &[]));
        g.observe(obj("a", &[("owner", false)]));
        let listed: HashSet<Uid> = ["a".to_owned()].into();
        assert_eq!(g.retain(&configmaps(), &listed), vec!["a"]);
        assert!(g.get("owner").is_none());
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn the_absent_cache_is_bounded() {
        let mut g = Graph::default();
        for i in 0..=ABSENT_CAPACITY {
            g.mark_absent(&i.to_string(), None);
        }
        assert!(!g.known_absent("0", None));
        assert!(g.known_absent(&ABSENT_CAPACITY.to_string(), None));
    }
}
