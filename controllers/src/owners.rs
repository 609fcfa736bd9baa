//! ownerReferences as the workload controllers use them: a controller owns the objects whose
//! controller reference names it, adopts matching orphans, and releases owned objects that
//! stopped matching (Kubernetes' `ControllerRefManager`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Error;

/// The reference a controller puts on what it creates: `controller: true` (one controller
/// per object) and `blockOwnerDeletion: true` (a foreground delete waits for it).
pub(crate) fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controller reference of an object, if any.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// What the owner with `uid` should do with one candidate object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Already ours, and it matches.
    Owned,
    /// Ours but no longer matching the selector: release it.
    Release,
    /// An orphan that matches: adopt it.
    Adopt,
    /// Someone else's, or not matching: leave it alone.
    Ignore,
}

pub(crate) fn claim(meta: &ObjectMeta, owner_uid: &str, matches: bool) -> Claim {
    if meta.deletion_timestamp.is_some() {
        return match controller_of(meta) {
            Some(r) if r.uid == owner_uid => Claim::Owned,
            _ => Claim::Ignore,
        };
    }
    match (controller_of(meta), matches) {
        (Some(r), true) if r.uid == owner_uid => Claim::Owned,
        (Some(r), false) if r.uid == owner_uid => Claim::Release,
        (None, true) => Claim::Adopt,
        _ => Claim::Ignore,
    }
}

/// Adds `owner` as the controller of `obj`. The patch carries the object's uid as a
/// precondition-like guard (a strategic merge keyed by uid), so adopting twice is harmless.
pub(crate) async fn adopt<K>(api: &Api<K>, obj: &K, owner: OwnerReference) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let patch = json!({"metadata": {
        "uid": obj.meta().uid,
        "ownerReferences": [owner],
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

/// Removes the reference to `owner_uid` from `obj`.
pub(crate) async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let patch = json!({"metadata": {
        "uid": obj.meta().uid,
        "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
    }});
    api.patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

/// Adopting, releasing or deleting an object that is already gone is no error: there is
/// nothing left to do with it. `None` then.
pub(crate) fn ignore_not_found<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::Api(kube::Error::Api(s))) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn claims_follow_controller_refs_and_selectors() {
        assert_eq!(claim(&meta(Some("a")), "a", true), Claim::Owned);
        assert_eq!(claim(&meta(Some("a")), "a", false), Claim::Release);
        assert_eq!(claim(&meta(None), "a", true), Claim::Adopt);
        assert_eq!(claim(&meta(None), "a", false), Claim::Ignore);
        assert_eq!(claim(&meta(Some("b")), "a", true), Claim::Ignore);
    }
}
