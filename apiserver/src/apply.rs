//! Server-side apply (`PATCH` with `application/apply-patch+yaml`): the field-ownership
//! logic is `sextant_api::apply`; this is where it meets the store.

use serde_json::json;

use crate::body::{self, BodyType};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_mut, now_rfc3339};
use crate::request::{Params, Target};
use crate::rest::{CONFLICT_RETRIES, ObjectResponse, conflict, create_object, write_update_as};
use crate::state::ApiState;

/// `kubectl apply --server-side`: merge the applied configuration into the object, owning
/// exactly its fields, and refuse (409) to change fields another manager owns unless forced.
pub(crate) async fn server_side_apply(
    state: &ApiState,
    t: &Target,
    params: &Params,
    bytes: &[u8],
) -> ApiResult<ObjectResponse> {
    use sextant_api::apply::ApplyError;
    let r = &t.resource;
    if t.subresource.is_some() {
        return Err(ApiError::UnsupportedMediaType {
            message: "server-side apply to subresources is not supported".into(),
        });
    }
    let manager = params
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("PATCH requests of server-side apply must name a fieldManager")
        })?;
    let mut applied = body::decode_object(BodyType::ApplyPatch, bytes)?;
    objects::check_type(&mut applied, r)?;
    if objects::name(&applied).is_some_and(|n| Some(n) != t.name.as_deref()) {
        return Err(ApiError::bad_request(
            "the name in the applied configuration does not match the name on the URL",
        ));
    }
    meta_mut(&mut applied).insert("name".into(), json!(t.name.clone().unwrap_or_default()));
    if let Some(ns) = &t.namespace {
        meta_mut(&mut applied).insert("namespace".into(), json!(ns));
    }
    let api_version = r.api_version();
    let kind = sextant_api::patch::TypeRef::new(&api_version, &r.kind);
    let apply_err = |e: ApplyError| match e {
        ApplyError::Conflict { .. } => ApiError::Conflict {
            group: r.group.clone(),
            kind_plural: r.plural.clone(),
            name: t.name.clone().unwrap_or_default(),
            detail: e.to_string(),
        },
        other => ApiError::bad_request(other.to_string()),
    };
    for _ in 0..CONFLICT_RETRIES {
        let key = t.key()?;
        let live = state.store.get(&key).await?;
        let Some(kv) = live else {
            // Apply creates: the merged object goes through the same path as a create.
            let created = sextant_api::apply::apply(
                None,
                &applied,
                &manager,
                params.force(),
                &kind,
                &now_rfc3339(),
            )
            .map_err(apply_err)?;
            let collection = Target {
                name: None,
                ..t.clone()
            };
            return match create_object(state, &collection, params, created, true).await {
                Err(ApiError::AlreadyExists { .. }) => continue,
                other => other,
            };
        };
        let old = objects::from_store_as(r, &kv)?;
        let merged = sextant_api::apply::apply(
            Some(&old),
            &applied,
            &manager,
            params.force(),
            &kind,
            &now_rfc3339(),
        )
        .map_err(apply_err)?;
        match write_update_as(state, t, params, old, kv.mod_revision, merged, true).await {
            Err(ApiError::Conflict { detail, .. })
                if detail.starts_with("the object has been modified") =>
            {
                continue;
            }
            other => return other,
        }
    }
    Err(conflict(t))
}
