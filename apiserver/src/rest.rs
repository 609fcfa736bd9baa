//! The verbs on one object: create, get, update, patch, delete (and `status`, which is the
//! same verbs on part of the object). Other subresources are in `subresources.rs`,
//! server-side apply in `apply.rs`.
//!
//! Every write reads the current object, decides, and writes back with a compare-and-swap
//! on the revision it read, so two writers never overwrite each other unseen: a client that
//! sent a stale `resourceVersion` gets 409, and a patch (which names no version) is retried
//! against the fresh object, as Kubernetes retries it.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use sextant_api::resources::ResourceInfo;
use sextant_store::{Op, Precondition};

use crate::body::{self, BodyType};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_mut, meta_str, now_rfc3339};
use crate::request::{Params, Target};
use crate::state::ApiState;
use crate::{services, subresources};

/// How many times a patch or a status change is retried on a concurrent write.
pub(crate) const CONFLICT_RETRIES: usize = 5;

/// An object response with optional warnings.
pub struct ObjectResponse {
    pub code: StatusCode,
    pub object: Value,
    pub warnings: Vec<String>,
}

impl IntoResponse for ObjectResponse {
    fn into_response(self) -> Response {
        let mut resp = (self.code, axum::Json(self.object)).into_response();
        for w in self.warnings {
            let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
                resp.headers_mut().append("warning", v);
            }
        }
        resp
    }
}

fn not_found(t: &Target) -> ApiError {
    ApiError::NotFound {
        group: t.resource.group.clone(),
        kind_plural: t.resource.plural.clone(),
        name: t.name.clone().unwrap_or_default(),
    }
}

/// Reads the addressed object (linearizable) with its revision.
pub(crate) async fn current(state: &ApiState, t: &Target) -> ApiResult<(Value, u64)> {
    let kv = state
        .store
        .get(&t.key()?)
        .await?
        .ok_or_else(|| not_found(t))?;
    Ok((objects::from_store_as(&t.resource, &kv)?, kv.mod_revision))
}

pub(crate) fn is_pod(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.kind == "Pod"
}

// ----- create -----

pub async fn create(
    state: &ApiState,
    t: &Target,
    params: &Params,
    body_type: BodyType,
    bytes: &[u8],
) -> ApiResult<ObjectResponse> {
    if let Some(sub) = &t.subresource {
        return match sub.as_str() {
            "binding" => subresources::bind(state, t, body::decode_object(body_type, bytes)?).await,
            "eviction" => {
                subresources::evict(state, t, body::decode_object(body_type, bytes)?).await
            }
            "token" => {
                subresources::request_token(state, t, body::decode_object(body_type, bytes)?).await
            }
            _ => Err(ApiError::MethodNotAllowed),
        };
    }
    if t.name.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    create_object(
        state,
        t,
        params,
        body::decode_object(body_type, bytes)?,
        false,
    )
    .await
}

/// Creates `obj` in the collection `t`. `applied`: it comes from server-side apply, which has
/// already recorded its manager.
pub(crate) async fn create_object(
    state: &ApiState,
    t: &Target,
    params: &Params,
    mut obj: Value,
    applied: bool,
) -> ApiResult<ObjectResponse> {
    let r = &t.resource;
    objects::check_type(&mut obj, r)?;
    let dry_run = params.dry_run()?;
    // Namespace from the URL; a different one in the body is an error.
    if r.namespaced {
        let ns = t.namespace.clone().ok_or_else(|| {
            ApiError::bad_request(format!("{} must be created in a namespace", r.plural))
        })?;
        match meta_str(&obj, "namespace") {
            Some(body_ns) if body_ns != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta_mut(&mut obj).insert("namespace".into(), json!(ns));
            }
        }
        crate::admission::namespace_accepts_content(state, &ns).await?;
    } else {
        meta_mut(&mut obj).remove("namespace");
    }
    if objects::name(&obj).is_none()
        && let Some(prefix) = meta_str(&obj, "generateName").map(str::to_owned)
    {
        let name = sextant_api::names::generate_name(&prefix, rand_below);
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    prepare_create(r, &mut obj);
    crate::admission::default_on_create(r, &mut obj);
    if is_pod(r) {
        let ns = t.namespace.clone().unwrap_or_default();
        crate::admission::admit_pod(state, &ns, &mut obj)
            .await
            .map_err(|e| match e {
                // As Kubernetes words an admission refusal: `pods "web" is forbidden: …`.
                ApiError::Forbidden { message } => ApiError::Forbidden {
                    message: format!(
                        "pods \"{}\" is forbidden: {message}",
                        objects::name(&obj).unwrap_or("")
                    ),
                },
                other => other,
            })?;
    }
    let (validated, warnings) = validate_and_record(state, r, params, None, &obj, applied)?;
    let name = objects::name(&validated).unwrap_or_default().to_owned();
    let key = crate::request::object_key(r, t.namespace.as_deref(), &name);
    let allocates = services::applies(r);
    // A Service that exists is refused before its addresses are checked: a second create
    // of one manifest gets 409, not "already allocated" for the first one's address.
    if (dry_run || allocates) && state.store.get(&key).await?.is_some() {
        return Err(ApiError::AlreadyExists {
            group: r.group.clone(),
            kind_plural: r.plural.clone(),
            name,
        });
    }
    for _ in 0..=services::ALLOCATION_RETRIES {
        let mut obj = validated.clone();
        let plan = if allocates {
            services::plan(state, None, &mut obj).await?
        } else {
            services::Plan::default()
        };
        if dry_run {
            return Ok(ObjectResponse {
                code: StatusCode::CREATED,
                object: obj,
                warnings,
            });
        }
        let mut ops = vec![Op::Put {
            key: key.clone(),
            value: objects::to_store_as(r, &obj),
            precondition: Precondition::Absent,
        }];
        ops.extend(plan.ops());
        match state.store.txn(ops).await {
            Ok((rev, _)) => {
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
                return Ok(ObjectResponse {
                    code: StatusCode::CREATED,
                    object: obj,
                    warnings,
                });
            }
            Err(e) => {
                if let Some(err) =
                    plan.explain(e, |e| ApiError::from_store(e, &r.group, &r.plural, &name))
                {
                    return Err(err);
                }
            }
        }
    }
    Err(services::busy())
}

/// A uniform draw below `n`, for generated names.
fn rand_below(n: usize) -> usize {
    rand::Rng::gen_range(&mut rand::thread_rng(), 0..n)
}

/// Fields the server owns on a new object.
fn prepare_create(r: &ResourceInfo, obj: &mut Value) {
    let m = meta_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(server_owned);
    }
    if obj.get("spec").is_some() {
        meta_mut(obj).insert("generation".into(), json!(1));
    } else {
        meta_mut(obj).remove("generation");
    }
    if r.has_subresource("status") {
        // Status is written through /status by the controllers and agents that own it.
        if is_pod(r) {
            obj["status"] = json!({"phase": "Pending"});
        } else if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
}

// ----- get -----

pub async fn get(state: &ApiState, t: &Target) -> ApiResult<Value> {
    let (obj, _) = current(state, t).await?;
    match t.subresource.as_deref() {
        None | Some("status") => Ok(obj),
        Some("scale") => Ok(subresources::to_scale(&obj)),
        Some(_) => Err(ApiError::MethodNotAllowed),
    }
}

// ----- update -----

pub async fn update(
    state: &ApiState,
    t: &Target,
    params: &Params,
    body_type: BodyType,
    bytes: &[u8],
) -> ApiResult<ObjectResponse> {
    let mut new = body::decode_object(body_type, bytes)?;
    if t.subresource.as_deref() == Some("scale") {
        return subresources::update_scale(state, t, params, new).await;
    }
    objects::check_type(&mut new, &t.resource)?;
    if objects::name(&new).is_some_and(|n| Some(n) != t.name.as_deref()) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    let (old, rev) = current(state, t).await?;
    let sent = objects::resource_version(&new)?;
    if let Some(sent) = sent
        && sent != rev
    {
        return Err(conflict(t));
    }
    write_update(state, t, params, old, rev, new).await
}

pub(crate) fn conflict(t: &Target) -> ApiError {
    ApiError::Conflict {
        group: t.resource.group.clone(),
        kind_plural: t.resource.plural.clone(),
        name: t.name.clone().unwrap_or_default(),
        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// Merges what the client may change into the stored object and writes it with a CAS on `rev`.
pub(crate) async fn write_update(
    state: &ApiState,
    t: &Target,
    params: &Params,
    old: Value,
    rev: u64,
    new: Value,
) -> ApiResult<ObjectResponse> {
    write_update_as(state, t, params, old, rev, new, false).await
}

/// `applied`: the object comes from server-side apply, whose managedFields are already set.
pub(crate) async fn write_update_as(
    state: &ApiState,
    t: &Target,
    params: &Params,
    old: Value,
    rev: u64,
    mut new: Value,
    applied: bool,
) -> ApiResult<ObjectResponse> {
    let r = &t.resource;
    // A uid in the new object is a precondition (as in Kubernetes): a writer that names the
    // object it read must not overwrite a different object created since under its name.
    check_uid(t, meta_str(&new, "uid"), &old)?;
    let status_only = t.subresource.as_deref() == Some("status");
    if status_only {
        // Only status changes through /status.
        let status = new.get("status").cloned();
        new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    } else if r.has_subresource("status") {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    // Server-owned metadata is kept from the stored object.
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match objects::meta(&old).get(field).cloned() {
            Some(v) => {
                meta_mut(&mut new).insert(field.into(), v);
            }
            None => {
                meta_mut(&mut new).remove(field);
            }
        }
    }
    // What the server allocated and the client left out is kept before the spec is
    // compared, so a `replace` without `clusterIP` does not count as a change.
    let allocates = services::applies(r) && !status_only;
    if allocates {
        services::prepare_update(&old, &mut new);
    }
    let old_gen = objects::meta(&old)
        .get("generation")
        .and_then(Value::as_i64);
    let generation = match (old_gen, old.get("spec") != new.get("spec")) {
        (Some(g), true) => Some(g + 1),
        (Some(g), false) => Some(g),
        (None, _) if new.get("spec").is_some() => Some(1),
        (None, _) => None,
    };
    match generation {
        Some(g) => {
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        None => {
            meta_mut(&mut new).remove("generation");
        }
    }
    let (validated, warnings) = validate_and_record(state, r, params, Some(&old), &new, applied)?;
    let key = t.key()?;
    // The last finalizer gone from an object being deleted: the object goes.
    let finished = objects::meta(&validated).contains_key("deletionTimestamp")
        && pending_finalizers(r, &validated) == 0
        && !(is_pod(r) && grace_pending(&validated));
    if finished {
        if params.dry_run()? {
            return Ok(ObjectResponse {
                code: StatusCode::OK,
                object: validated,
                warnings,
            });
        }
        let release = if services::applies(r) {
            services::release(state, &old).await?
        } else {
            services::Plan::default()
        };
        let mut ops = vec![Op::Delete {
            key,
            precondition: Precondition::Revision(rev),
        }];
        ops.extend(release.ops());
        state.store.txn(ops).await.map_err(|e| {
            release
                .explain(e, |e| t.store_error(e))
                .unwrap_or_else(services::busy)
        })?;
        return Ok(ObjectResponse {
            code: StatusCode::OK,
            object: validated,
            warnings,
        });
    }
    for _ in 0..=services::ALLOCATION_RETRIES {
        let mut new = validated.clone();
        let plan = if allocates {
            services::plan(state, Some(&old), &mut new).await?
        } else {
            services::Plan::default()
        };
        if params.dry_run()? {
            return Ok(ObjectResponse {
                code: StatusCode::OK,
                object: new,
                warnings,
            });
        }
        let mut ops = vec![Op::Put {
            key: key.clone(),
            value: objects::to_store_as(r, &new),
            precondition: Precondition::Revision(rev),
        }];
        ops.extend(plan.ops());
        match state.store.txn(ops).await {
            Ok((rev, _)) => {
                meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
                return Ok(ObjectResponse {
                    code: StatusCode::OK,
                    object: new,
                    warnings,
                });
            }
            Err(e) => {
                if let Some(err) = plan.explain(e, |e| t.store_error(e)) {
                    return Err(err);
                }
            }
        }
    }
    Err(services::busy())
}

fn pending_finalizers(r: &ResourceInfo, obj: &Value) -> usize {
    let meta = objects::meta(obj)
        .get("finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ns = if r.group.is_empty() && r.kind == "Namespace" {
        obj.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    } else {
        0
    };
    meta + ns
}

/// A pod being deleted gracefully stays until its node agent has stopped it.
fn grace_pending(pod: &Value) -> bool {
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let grace = objects::meta(pod)
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    bound && grace > 0
}

// ----- patch -----

pub async fn patch(
    state: &ApiState,
    t: &Target,
    params: &Params,
    body_type: BodyType,
    bytes: &[u8],
) -> ApiResult<ObjectResponse> {
    use sextant_api::patch::{PatchType, TypeRef};
    let patch_type = match body_type {
        BodyType::JsonPatch => PatchType::Json,
        BodyType::MergePatch => PatchType::Merge,
        BodyType::StrategicMergePatch => PatchType::Strategic,
        BodyType::ApplyPatch => {
            return crate::apply::server_side_apply(state, t, params, bytes).await;
        }
        BodyType::Json | BodyType::Yaml | BodyType::Protobuf => {
            return Err(ApiError::UnsupportedMediaType {
                message: "a PATCH needs a patch content type: application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json".into(),
            });
        }
    };
    let r = &t.resource;
    let api_version = r.api_version();
    // The scale subresource is patched as an autoscaling/v1 Scale.
    let kind = if t.subresource.as_deref() == Some("scale") {
        TypeRef::new("autoscaling/v1", "Scale")
    } else {
        TypeRef::new(&api_version, &r.kind)
    };
    let mut attempt = 0;
    loop {
        let (old, rev) = current(state, t).await?;
        let base = if t.subresource.as_deref() == Some("scale") {
            subresources::to_scale(&old)
        } else {
            old.clone()
        };
        let patched =
            sextant_api::patch::apply(&kind, &base, patch_type, bytes).map_err(patch_error)?;
        let result = if t.subresource.as_deref() == Some("scale") {
            subresources::apply_scale(state, t, params, old, rev, &patched).await
        } else {
            // A resourceVersion in the patch is a precondition.
            if let Some(sent) = objects::resource_version(&patched)?
                && sent != rev
            {
                return Err(conflict(t));
            }
            write_update(state, t, params, old, rev, patched).await
        };
        match result {
            Err(ApiError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

/// The last step before any write: validation (with the CRD schema for custom resources)
/// and, unless server-side apply already did it, recording the field manager.
fn validate_and_record(
    state: &ApiState,
    r: &ResourceInfo,
    params: &Params,
    old: Option<&Value>,
    obj: &Value,
    applied: bool,
) -> ApiResult<(Value, Vec<String>)> {
    let schema = state.registry.custom_schema(r);
    let (obj, warnings) = objects::validate(r, obj, params.field_validation()?, schema.as_ref())?;
    let obj = if applied {
        obj
    } else {
        record_manager(r, old, obj, params)
    };
    Ok((obj, warnings))
}

/// Records `manager` as the owner of the fields this write changes (`metadata.managedFields`).
pub(crate) fn record_manager(
    r: &ResourceInfo,
    old: Option<&Value>,
    new: Value,
    params: &Params,
) -> Value {
    let api_version = r.api_version();
    let kind = sextant_api::patch::TypeRef::new(&api_version, &r.kind);
    let manager = params.field_manager.as_deref().unwrap_or("unknown");
    sextant_api::apply::record_update(old, &new, manager, &kind, &now_rfc3339())
}

fn patch_error(e: sextant_api::patch::PatchError) -> ApiError {
    match e.code() {
        415 => ApiError::UnsupportedMediaType {
            message: e.to_string(),
        },
        413 => ApiError::TooLarge {
            limit: crate::body::MAX_BODY,
        },
        422 => ApiError::Unprocessable {
            message: e.to_string(),
        },
        _ => ApiError::bad_request(e.to_string()),
    }
}

// ----- delete -----

pub async fn delete(
    state: &ApiState,
    t: &Target,
    params: &Params,
    bytes: &[u8],
) -> ApiResult<ObjectResponse> {
    let opts: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body::decode_object(BodyType::Json, bytes)?
    };
    let r = &t.resource;
    let (mut obj, rev) = current(state, t).await?;
    check_uid(
        t,
        opts.pointer("/preconditions/uid").and_then(Value::as_str),
        &obj,
    )?;
    if let Some(want) = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        && want != rev.to_string()
    {
        return Err(conflict(t));
    }
    let grace = params
        .grace_period_seconds()?
        .or_else(|| opts.get("gracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or_else(|| {
            if is_pod(r) {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            } else {
                0
            }
        })
        .max(0);
    let policy = params
        .propagation_policy
        .clone()
        .or_else(|| {
            opts.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| {
            let orphan = params
                .orphan_dependents
                .as_deref()
                .map(|v| v == "true")
                .or_else(|| opts.get("orphanDependents").and_then(Value::as_bool));
            orphan.and_then(|o| o.then(|| "Orphan".to_owned()))
        });
    let added_finalizer = match policy.as_deref() {
        None | Some("Background") => None,
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy {other:?} is not supported: use Background, Foreground or Orphan"
            )));
        }
    };
    let dry_run = params.dry_run()?;

    let already_deleting = objects::meta(&obj).contains_key("deletionTimestamp");
    let before = already_deleting.then(|| obj.clone());
    if let Some(f) = added_finalizer {
        let m = meta_mut(&mut obj);
        let list = m.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(a) = list.as_array_mut()
            && !a.iter().any(|v| v == f)
        {
            a.push(json!(f));
        }
    }
    let graceful_pod = is_pod(r)
        && grace > 0
        && obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
    if r.group.is_empty() && r.kind == "Namespace" && !already_deleting {
        obj["status"] = json!({"phase": "Terminating"});
    }
    if pending_finalizers(r, &obj) > 0 || graceful_pod {
        // Mark for deletion; the owners of the finalizers (or the pod's node agent) finish it.
        let m = meta_mut(&mut obj);
        if !already_deleting {
            let at = jiff::Timestamp::now()
                + jiff::SignedDuration::from_secs(if graceful_pod { grace } else { 0 });
            m.insert(
                "deletionTimestamp".into(),
                json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            m.insert(
                "deletionGracePeriodSeconds".into(),
                json!(if graceful_pod { grace } else { 0 }),
            );
        } else if graceful_pod {
            // A shorter grace period may replace a longer one, never the other way.
            let cur = m
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(grace);
            m.insert("deletionGracePeriodSeconds".into(), json!(grace.min(cur)));
        }
        // Deleting again what is already being deleted changes nothing (unless it adds a
        // finalizer or shortens a pod's grace): no write, no new resourceVersion, no event.
        if dry_run || before.as_ref() == Some(&obj) {
            return Ok(ObjectResponse {
                code: StatusCode::OK,
                object: obj,
                warnings: vec![],
            });
        }
        let new_rev = state
            .store
            .put(
                t.key()?,
                objects::to_store_as(r, &obj),
                Precondition::Revision(rev),
            )
            .await
            .map_err(|e| t.store_error(e))?;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(new_rev.to_string()));
        return Ok(ObjectResponse {
            code: StatusCode::OK,
            object: obj,
            warnings: vec![],
        });
    }
    if dry_run {
        return Ok(ObjectResponse {
            code: StatusCode::OK,
            object: obj,
            warnings: vec![],
        });
    }
    // A Service's cluster IP and node ports are freed with it, in one transaction.
    let release = if services::applies(r) {
        services::release(state, &obj).await?
    } else {
        services::Plan::default()
    };
    let mut ops = vec![Op::Delete {
        key: t.key()?,
        precondition: Precondition::Revision(rev),
    }];
    ops.extend(release.ops());
    let (revision, mut prev) = state.store.txn(ops).await.map_err(|e| {
        release
            .explain(e, |e| t.store_error(e))
            .unwrap_or_else(services::busy)
    })?;
    let deleted = prev
        .swap_remove(0)
        .ok_or_else(|| ApiError::Internal("a delete that applied had no previous value".into()))?;
    let deleted = sextant_store::KeyValue {
        mod_revision: revision,
        ..deleted
    };
    Ok(ObjectResponse {
        code: StatusCode::OK,
        object: objects::from_store_as(r, &deleted)?,
        warnings: vec![],
    })
}

/// A uid precondition: the object must still be the one the client named (Kubernetes answers
/// 409 when it was deleted and created again under the same name).
fn check_uid(t: &Target, want: Option<&str>, obj: &Value) -> ApiResult<()> {
    match want {
        Some(uid) if Some(uid) != meta_str(obj, "uid") => Err(ApiError::Conflict {
            group: t.resource.group.clone(),
            kind_plural: t.resource.plural.clone(),
            name: t.name.clone().unwrap_or_default(),
            detail: format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(obj, "uid").unwrap_or("")
            ),
        }),
        _ => Ok(()),
    }
}
