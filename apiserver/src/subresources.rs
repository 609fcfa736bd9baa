//! Subresources with their own shape: `scale` (an autoscaling/v1 Scale view), `binding`
//! (the scheduler's write), `eviction` (a graceful delete) and `serviceaccounts/token`.

use http::StatusCode;
use serde_json::{Value, json};
use sextant_store::Precondition;

use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_str, now_rfc3339};
use crate::request::{Params, Target};
use crate::rest::{CONFLICT_RETRIES, ObjectResponse, conflict, current, delete, write_update};
use crate::state::ApiState;

/// The autoscaling/v1 `Scale` view of a Deployment or ReplicaSet.
pub(crate) fn to_scale(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .and_then(|s| sextant_api::Selector::from_label_selector(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = objects::meta(obj);
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

pub(crate) async fn update_scale(
    state: &ApiState,
    t: &Target,
    params: &Params,
    scale: Value,
) -> ApiResult<ObjectResponse> {
    let (old, rev) = current(state, t).await?;
    if let Some(sent) = objects::resource_version(&scale)?
        && sent != rev
    {
        return Err(conflict(t));
    }
    apply_scale(state, t, params, old, rev, &scale).await
}

pub(crate) async fn apply_scale(
    state: &ApiState,
    t: &Target,
    params: &Params,
    old: Value,
    rev: u64,
    scale: &Value,
) -> ApiResult<ObjectResponse> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::Invalid(sextant_api::Error::Invalid {
                group: "autoscaling".into(),
                kind: "Scale".into(),
                name: t.name.clone().unwrap_or_default(),
                errors: vec![sextant_api::FieldError::invalid(
                    "spec.replicas",
                    &scale
                        .pointer("/spec/replicas")
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    "must be greater than or equal to 0",
                )],
            })
        })?;
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(replicas);
    let t_main = Target {
        subresource: None,
        ..t.clone()
    };
    let resp = write_update(state, &t_main, params, old, rev, new).await?;
    Ok(ObjectResponse {
        object: to_scale(&resp.object),
        ..resp
    })
}

/// `pods/binding`: the scheduler's write. A pod is bound once; binding it again is a 409.
pub(crate) async fn bind(
    state: &ApiState,
    t: &Target,
    binding: Value,
) -> ApiResult<ObjectResponse> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("a Binding needs target.name, the node to bind to"))?
        .to_owned();
    let pod_t = Target {
        subresource: None,
        ..t.clone()
    };
    for _ in 0..CONFLICT_RETRIES {
        let (mut pod, rev) = current(state, &pod_t).await?;
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::Conflict {
                group: String::new(),
                kind_plural: "pods".into(),
                name: t.name.clone().unwrap_or_default(),
                detail: format!(
                    "pod {} is already assigned to node \"{existing}\"",
                    t.name.as_deref().unwrap_or("")
                ),
            });
        }
        if objects::meta(&pod).contains_key("deletionTimestamp") {
            return Err(ApiError::Conflict {
                group: String::new(),
                kind_plural: "pods".into(),
                name: t.name.clone().unwrap_or_default(),
                detail: "the pod is being deleted".into(),
            });
        }
        pod["spec"]["nodeName"] = json!(node);
        objects::set_condition(&mut pod, "PodScheduled", "True", None, None);
        match state
            .store
            .put(
                pod_t.key()?,
                objects::to_store(&pod),
                Precondition::Revision(rev),
            )
            .await
        {
            Ok(_) => {
                return Ok(ObjectResponse {
                    code: StatusCode::CREATED,
                    object: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    warnings: vec![],
                });
            }
            Err(sextant_store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(conflict(t))
}

/// `pods/eviction`: a graceful delete on the eviction's terms. PodDisruptionBudgets are not
/// served yet, so nothing blocks an eviction.
pub(crate) async fn evict(
    state: &ApiState,
    t: &Target,
    eviction: Value,
) -> ApiResult<ObjectResponse> {
    let opts = eviction.get("deleteOptions").cloned().unwrap_or(json!({}));
    let pod_t = Target {
        subresource: None,
        ..t.clone()
    };
    let bytes = serde_json::to_vec(&opts).expect("JSON encodes");
    delete(state, &pod_t, &Params::default(), &bytes).await?;
    Ok(ObjectResponse {
        code: StatusCode::CREATED,
        object: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        warnings: vec![],
    })
}

/// `serviceaccounts/token` (TokenRequest): a bearer token for the ServiceAccount, valid for
/// `spec.expirationSeconds` (default one hour, at least ten minutes, as Kubernetes bounds it).
pub(crate) async fn request_token(
    state: &ApiState,
    t: &Target,
    req: Value,
) -> ApiResult<ObjectResponse> {
    let sa_t = Target {
        subresource: None,
        ..t.clone()
    };
    let (sa, _) = current(state, &sa_t).await?;
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let seconds = req
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600)
        .max(600);
    let who = crate::tokens::service_account_identity(&ns, &name);
    let (token, expires) = crate::tokens::issue(
        &state.store,
        &who,
        Some(std::time::Duration::from_secs(seconds as u64)),
    )
    .await?;
    let expires = jiff::Timestamp::from_second(expires.unwrap_or_default())
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut resp = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
        "spec": {"audiences": req.pointer("/spec/audiences").cloned().unwrap_or(json!([])), "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    if let Some(uid) = meta_str(&sa, "uid") {
        resp["spec"]["boundObjectRef"] = Value::Null;
        resp["metadata"]["uid"] = json!(uid);
    }
    Ok(ObjectResponse {
        code: StatusCode::CREATED,
        object: resp,
        warnings: vec![],
    })
}
