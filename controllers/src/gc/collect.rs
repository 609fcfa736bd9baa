//! One look at one object, by uid: the step that decides, against the API server's current
//! state, whether the object goes, loses a reference, releases its dependents or may finally
//! be deleted itself. Each step is safe to repeat; the queue repeats it until it succeeds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::ApiResource;
use serde_json::{Value, json};
use sextant_events::{Event, EventType, Recorder};

use super::graph::{Deletion, FOREGROUND, Graph, Identity, ORPHAN};
use super::monitors::Monitors;
use super::queue::WorkQueue;
use crate::Error;

/// When the graph is not yet complete (a monitor still listing), finalizers wait this long.
const UNSYNCED_RETRY: Duration = Duration::from_secs(1);

pub(super) enum Next {
    Done,
    After(Duration),
}

/// What an owner, looked up live, means for its dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// It exists: the dependent stays.
    Present,
    /// Gone, or replaced by an object with another uid.
    Absent,
    /// Deleted in the foreground: it waits for its dependents to go first.
    DeletingDependents,
}

/// What to do with a live object that has ownerReferences.
#[derive(Debug, PartialEq)]
enum Verdict {
    Keep,
    /// Some owners still exist: drop only the references to these uids.
    DropRefs(Vec<String>),
    /// No owner holds it any more. `unblock` first turns its `blockOwnerDeletion` off, so
    /// that an owner waiting on it cannot wait on a cycle.
    Delete {
        policy: PropagationPolicy,
        unblock: bool,
    },
}

/// Kubernetes' `attemptToDeleteItem` decision, from the owners' states.
///
/// - any owner present: keep the object, dropping references to owners gone or being
///   deleted in the foreground;
/// - else, an owner deleting in the foreground and the object has dependents of its own:
///   delete it in the foreground too, so the cascade goes all the way down before the
///   owner goes (with its own references made non-blocking if one of its dependents is also
///   deleting in the foreground, which could otherwise be a cycle);
/// - else delete it, with the policy its own finalizers ask for (Background by default).
fn decide(
    owners: &[(&OwnerReference, Owner)],
    has_dependents: bool,
    a_dependent_deletes_in_foreground: bool,
    finalizers: &[String],
) -> Verdict {
    let any = |s: Owner| owners.iter().any(|(_, o)| *o == s);
    if any(Owner::Present) {
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, o)| *o != Owner::Present)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if drop.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropRefs(drop)
        };
    }
    if any(Owner::DeletingDependents) && has_dependents {
        return Verdict::Delete {
            policy: PropagationPolicy::Foreground,
            unblock: a_dependent_deletes_in_foreground,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let policy = if has(ORPHAN) {
        PropagationPolicy::Orphan
    } else if has(FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    Verdict::Delete {
        policy,
        unblock: false,
    }
}

pub(super) struct Collector {
    pub client: kube::Client,
    pub graph: Arc<Mutex<Graph>>,
    pub monitors: Arc<Monitors>,
    pub queue: Arc<WorkQueue>,
    pub recorder: Recorder,
}

impl Collector {
    pub async fn sync(&self, uid: &str) -> Result<Next, Error> {
        let Some(identity) = self.worth_a_look(uid) else {
            return Ok(Next::Done);
        };
        let api = api_for(
            &self.client,
            &identity.resource,
            identity.namespace.as_deref(),
        );
        let latest = match api.get_opt(&identity.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(uid) => o,
            // Gone, or a new object under the same name: what the graph knew is gone.
            _ => {
                let wake = self.graph().forget(uid);
                self.queue.add_all(wake);
                return Ok(Next::Done);
            }
        };
        match Deletion::of(&latest.metadata) {
            Deletion::Orphaning => self.orphan_dependents(&identity, &api, &latest).await,
            Deletion::DeletingDependents => self.delete_dependents(&identity, &api, &latest).await,
            Deletion::Deleting => Ok(Next::Done),
            Deletion::Live => self.collect_if_unowned(&identity, &api, &latest).await,
        }
    }

    /// The object's identity, if the graph thinks it may need work: a live object with an
    /// owner the graph does not vouch for, or an owner part-way through an orphan or
    /// foreground delete. Anything else is skipped without asking the API server.
    fn worth_a_look(&self, uid: &str) -> Option<Identity> {
        let graph = self.graph();
        let node = graph.get(uid)?;
        graph.is_suspect(uid).then(|| node.identity.clone())
    }

    async fn collect_if_unowned(
        &self,
        identity: &Identity,
        api: &Api<DynamicObject>,
        latest: &DynamicObject,
    ) -> Result<Next, Error> {
        let refs = latest.metadata.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(Next::Done);
        }
        let mut owners = Vec::with_capacity(refs.len());
        for r in &refs {
            match self.owner(identity, r).await? {
                Some(state) => owners.push((r, state)),
                None => return Ok(Next::Done),
            }
        }
        let (has_dependents, dependent_in_foreground) = {
            let graph = self.graph();
            let deps = graph.dependents_of(&identity.uid);
            (
                !deps.is_empty(),
                deps.iter()
                    .any(|d| d.deletion == Deletion::DeletingDependents),
            )
        };
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        match decide(
            &owners,
            has_dependents,
            dependent_in_foreground,
            &finalizers,
        ) {
            Verdict::Keep => {}
            Verdict::DropRefs(uids) => {
                let kept: Vec<OwnerReference> = refs
                    .iter()
                    .filter(|r| !uids.contains(&r.uid))
                    .cloned()
                    .collect();
                write_owner_refs(api, latest, &kept).await?;
            }
            Verdict::Delete { policy, unblock } => {
                if unblock {
                    let unblocked: Vec<OwnerReference> = refs
                        .iter()
                        .map(|r| OwnerReference {
                            block_owner_deletion: r.block_owner_deletion.map(|_| false),
                            ..r.clone()
                        })
                        .collect();
                    write_owner_refs(api, latest, &unblocked).await?;
                }
                self.delete(identity, api, policy, &owners).await?;
            }
        }
        Ok(Next::Done)
    }

    /// The state of the owner `r` of `dependent`, looked up live; `None` when the reference
    /// can never resolve (a cluster-scoped object naming a namespaced owner: Kubernetes
    /// leaves such an object alone and warns).
    async fn owner(
        &self,
        dependent: &Identity,
        r: &OwnerReference,
    ) -> Result<Option<Owner>, Error> {
        let Some((ar, namespaced)) = self.monitors.mapper().resolve(&r.api_version, &r.kind) else {
            return Err(Error::invalid(
                "ownerReference",
                format!("{} of {}", r.name, dependent.describe()),
                format!(
                    "the API server serves no kind {} in {}; the garbage collector leaves the object alone and retries (a CustomResourceDefinition may not be established yet)",
                    r.kind, r.api_version
                ),
            ));
        };
        if namespaced && dependent.namespace.is_none() {
            self.warn_invalid_namespace(
                dependent,
                format!(
                    "ownerRef [{}/{}, namespace: , name: {}, uid: {}] is namespaced, but a cluster-scoped object cannot have a namespaced owner",
                    r.api_version, r.kind, r.name, r.uid
                ),
            )
            .await;
            return Ok(None);
        }
        let ns = if namespaced {
            dependent.namespace.as_deref()
        } else {
            None
        };
        if self.graph().known_absent(&r.uid, ns) {
            return Ok(Some(Owner::Absent));
        }
        let found = api_for(&self.client, &ar, ns).get_opt(&r.name).await?;
        match found {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                Ok(Some(match Deletion::of(&o.metadata) {
                    Deletion::DeletingDependents => Owner::DeletingDependents,
                    _ => Owner::Present,
                }))
            }
            _ => {
                let elsewhere = {
                    let mut graph = self.graph();
                    graph.mark_absent(&r.uid, ns);
                    graph
                        .namespace_of(&r.uid)
                        .flatten()
                        .filter(|other| Some(*other) != ns)
                        .map(str::to_owned)
                };
                if let Some(other) = elsewhere {
                    self.warn_invalid_namespace(
                        dependent,
                        format!(
                            "ownerRef [{}/{}, namespace: {}, name: {}, uid: {}] does not exist in namespace {:?}; it is in namespace {other:?}, and owners must be in their dependents' namespace",
                            r.api_version,
                            r.kind,
                            ns.unwrap_or_default(),
                            r.name,
                            r.uid,
                            ns.unwrap_or_default()
                        ),
                    )
                    .await;
                }
                Ok(Some(Owner::Absent))
            }
        }
    }

    async fn delete(
        &self,
        identity: &Identity,
        api: &Api<DynamicObject>,
        policy: PropagationPolicy,
        owners: &[(&OwnerReference, Owner)],
    ) -> Result<(), Error> {
        let params = DeleteParams {
            propagation_policy: Some(policy.clone()),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&identity.name, &params).await {
            Ok(_) => {}
            // Gone already, or replaced (the uid precondition failed): nothing to collect.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let why = owners
            .iter()
            .map(|(r, o)| match o {
                Owner::DeletingDependents => {
                    format!("{} {} is being deleted in the foreground", r.kind, r.name)
                }
                _ => format!("{} {} is gone", r.kind, r.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        tracing::debug!(object = %identity.describe(), ?policy, "garbage collector: deleted, its owners are gone");
        self.record(
            identity,
            EventType::Normal,
            "SuccessfulDelete",
            format!(
                "Deleted {} by garbage collection ({policy:?}): {why}",
                identity.describe()
            ),
        )
        .await;
        Ok(())
    }

    /// `propagationPolicy: Orphan`: every dependent loses its reference to the owner, then
    /// the owner loses its `orphan` finalizer (and goes, if it was the last).
    async fn orphan_dependents(
        &self,
        owner: &Identity,
        api: &Api<DynamicObject>,
        latest: &DynamicObject,
    ) -> Result<Next, Error> {
        if !self.monitors.all_synced() {
            return Ok(Next::After(UNSYNCED_RETRY));
        }
        let dependents = self.graph().dependents_of(&owner.uid);
        for d in &dependents {
            self.release(&d.identity, &owner.uid).await?;
        }
        remove_finalizer(api, latest, ORPHAN).await?;
        if !dependents.is_empty() {
            tracing::debug!(owner = %owner.describe(), count = dependents.len(), "garbage collector: orphaned dependents");
        }
        Ok(Next::Done)
    }

    async fn release(&self, dependent: &Identity, owner_uid: &str) -> Result<(), Error> {
        let api = api_for(
            &self.client,
            &dependent.resource,
            dependent.namespace.as_deref(),
        );
        let Some(latest) = api.get_opt(&dependent.name).await? else {
            return Ok(());
        };
        if latest.metadata.uid.as_deref() != Some(dependent.uid.as_str()) {
            return Ok(());
        }
        let refs = latest.metadata.owner_references.clone().unwrap_or_default();
        if !refs.iter().any(|r| r.uid == owner_uid) {
            return Ok(());
        }
        let kept: Vec<OwnerReference> = refs.into_iter().filter(|r| r.uid != owner_uid).collect();
        write_owner_refs(&api, &latest, &kept).await
    }

    /// `propagationPolicy: Foreground`: the owner's dependents are deleted (they find their
    /// owner deleting in the foreground, see [`decide`]); once none with
    /// `blockOwnerDeletion: true` is left, the owner loses its `foregroundDeletion`
    /// finalizer. Dependents going wake the owner again (the graph sees to that).
    async fn delete_dependents(
        &self,
        owner: &Identity,
        api: &Api<DynamicObject>,
        latest: &DynamicObject,
    ) -> Result<Next, Error> {
        if !self.monitors.all_synced() {
            return Ok(Next::After(UNSYNCED_RETRY));
        }
        let dependents = self.graph().dependents_of(&owner.uid);
        if dependents.iter().all(|d| !d.blocking) {
            remove_finalizer(api, latest, FOREGROUND).await?;
            return Ok(Next::Done);
        }
        self.queue.add_all(
            dependents
                .into_iter()
                .filter(|d| d.deletion.is_live())
                .map(|d| d.identity.uid),
        );
        Ok(Next::Done)
    }

    async fn warn_invalid_namespace(&self, dependent: &Identity, note: String) {
        tracing::warn!(object = %dependent.describe(), "garbage collector: {note}");
        self.record(
            dependent,
            EventType::Warning,
            "OwnerRefInvalidNamespace",
            note,
        )
        .await;
    }

    async fn record(&self, about: &Identity, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some(about.resource.api_version.clone()),
            kind: Some(about.resource.kind.clone()),
            name: Some(about.name.clone()),
            namespace: about.namespace.clone(),
            uid: Some(about.uid.clone()),
            ..ObjectReference::default()
        };
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "GarbageCollect".into(),
            secondary: None,
        };
        // An Event is a courtesy: a namespace being deleted refuses new ones, for one.
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "garbage collector: could not record an Event");
        }
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn api_for(client: &kube::Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// Replaces the object's ownerReferences, if it is still at the version `latest` was read
/// at (see [`replace_meta_list`]).
async fn write_owner_refs(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    refs: &[OwnerReference],
) -> Result<(), Error> {
    replace_meta_list(api, latest, "ownerReferences", refs).await
}

/// Removes `finalizer` from `latest`, under the same precondition as [`write_owner_refs`].
/// With the last finalizer gone the API server deletes the object.
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    finalizer: &str,
) -> Result<(), Error> {
    let all = latest.metadata.finalizers.clone().unwrap_or_default();
    if !all.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let rest: Vec<&String> = all.iter().filter(|f| *f != finalizer).collect();
    replace_meta_list(api, latest, "finalizers", &rest).await
}

/// Replaces one list in the object's metadata (an empty list removes the field), if the
/// object is still at the version `latest` was read at: a merge patch carrying
/// `resourceVersion` is a precondition, so a concurrent change makes this a 409 and the whole
/// step is retried from a fresh read. A merge patch, not a strategic one, because custom
/// resources accept only the former.
async fn replace_meta_list<T: serde::Serialize>(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    field: &str,
    items: &[T],
) -> Result<(), Error> {
    let items = if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    };
    let patch = json!({"metadata": {
        "resourceVersion": latest.metadata.resource_version,
        field: items,
    }});
    patch_meta(api, latest, patch).await
}

async fn patch_meta(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    patch: Value,
) -> Result<(), Error> {
    let name = latest.metadata.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: uid.into(),
            uid: uid.into(),
            ..OwnerReference::default()
        }
    }

    fn background() -> Verdict {
        Verdict::Delete {
            policy: PropagationPolicy::Background,
            unblock: false,
        }
    }

    #[test]
    fn an_object_with_a_present_owner_stays_and_sheds_the_others() {
        let (a, b, c) = (owner("a"), owner("b"), owner("c"));
        assert_eq!(
            decide(&[(&a, Owner::Present)], false, false, &[]),
            Verdict::Keep
        );
        assert_eq!(
            decide(
                &[
                    (&a, Owner::Present),
                    (&b, Owner::Absent),
                    (&c, Owner::DeletingDependents)
                ],
                true,
                false,
                &[]
            ),
            Verdict::DropRefs(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn an_object_whose_owners_are_all_gone_is_deleted_in_the_background() {
        let (a, b) = (owner("a"), owner("b"));
        assert_eq!(
            decide(
                &[(&a, Owner::Absent), (&b, Owner::Absent)],
                true,
                false,
                &[]
            ),
            background()
        );
    }

    #[test]
    fn a_foreground_delete_cascades_in_the_foreground_through_objects_with_dependents() {
        let a = owner("a");
        let waiting = [(&a, Owner::DeletingDependents)];
        assert_eq!(
            decide(&waiting, true, false, &[]),
            Verdict::Delete {
                policy: PropagationPolicy::Foreground,
                unblock: false
            }
        );
        // A leaf has nothing to wait for.
        assert_eq!(decide(&waiting, false, false, &[]), background());
        // A dependent that is itself deleting in the foreground: unblock first (a cycle).
        assert_eq!(
            decide(&waiting, true, true, &[]),
            Verdict::Delete {
                policy: PropagationPolicy::Foreground,
                unblock: true
            }
        );
    }

    #[test]
    fn the_objects_own_finalizers_choose_the_policy() {
        let a = owner("a");
        assert_eq!(
            decide(&[(&a, Owner::Absent)], true, false, &[ORPHAN.into()]),
            Verdict::Delete {
                policy: PropagationPolicy::Orphan,
                unblock: false
            }
        );
        assert_eq!(
            decide(&[(&a, Owner::Absent)], true, false, &[FOREGROUND.into()]),
            Verdict::Delete {
                policy: PropagationPolicy::Foreground,
                unblock: false
            }
        );
    }
}
