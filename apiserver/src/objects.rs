//! Objects as the server handles them: JSON values whose metadata the server owns.
//!
//! Objects are stored as JSON without `resourceVersion`: the version is the store revision
//! that last wrote the key, put back in on every read. That keeps the two from ever
//! disagreeing.
//!
//! Built-in kinds are decoded into their `k8s-openapi` type and encoded back before they are
//! stored. That checks their structure (a string where a number belongs is a 400), drops
//! fields the type does not know (as Kubernetes prunes them) and tells which fields those
//! were, for `fieldValidation=Strict` (400) or `Warn` (a `Warning` header).

use serde_json::{Map, Value, json};
use sextant_api::k8s_openapi::api::{apps, batch, coordination, core, discovery, events, node};
use sextant_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use sextant_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sextant_api::resources::ResourceInfo;
use sextant_api::validation::{NameRule, validate_object_meta};
use sextant_store::KeyValue;

use crate::error::{ApiError, ApiResult};
use crate::request::FieldValidation;

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub fn meta(obj: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    obj.get("metadata")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    meta(obj)
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes a stored object and puts its resourceVersion back.
pub fn from_store(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::Internal(format!("stored object {} does not decode: {e}", kv.key))
    })?;
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    Ok(obj)
}

/// Encodes an object for the store, without its resourceVersion.
pub fn to_store(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    meta_mut(&mut obj).remove("resourceVersion");
    serde_json::to_vec(&obj).expect("a JSON value always encodes")
}

/// A stored object as resource `r` serves it.
pub fn from_store_as(r: &ResourceInfo, kv: &KeyValue) -> ApiResult<Value> {
    Ok(crate::convert::to_served(r, from_store(kv)?))
}

/// An object written through resource `r`, encoded for the store.
pub fn to_store_as(r: &ResourceInfo, obj: &Value) -> Vec<u8> {
    to_store(&crate::convert::to_stored(r, obj.clone()))
}

/// The resourceVersion a client sent, as a store revision (`None` when absent or empty).
pub fn resource_version(obj: &Value) -> ApiResult<Option<u64>> {
    match meta_str(obj, "resourceVersion") {
        None => Ok(None),
        Some(rv) => rv.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion {rv:?} is not one this server handed out"
            ))
        }),
    }
}

/// Checks that the body's apiVersion and kind match the URL, filling them in when absent.
pub fn check_type(obj: &mut Value, resource: &ResourceInfo) -> ApiResult<()> {
    let want_av = resource.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(resource.kind),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) for {}",
                resource.kind, resource.plural
            )));
        }
    }
    Ok(())
}

/// Decodes into `T` and back; returns the normalised object and the fields `T` dropped.
fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    obj: &Value,
) -> ApiResult<(Value, Vec<String>)> {
    let typed: T = serde_json::from_value(obj.clone())
        .map_err(|e| ApiError::bad_request(format!("the object does not decode: {e}")))?;
    let back = serde_json::to_value(&typed).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut unknown = Vec::new();
    dropped_fields(obj, &back, "", &mut unknown);
    Ok((back, unknown))
}

fn dropped_fields(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => dropped_fields(v, bv, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                dropped_fields(ov, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Normalises a built-in object through its Rust type, and a custom resource through its
/// CRD's schema (`schema`); a custom resource without one passes unchanged.
pub fn normalize(
    resource: &ResourceInfo,
    obj: &Value,
    schema: Option<&Value>,
) -> ApiResult<(Value, Vec<String>)> {
    if let Some(schema) = schema {
        let mut pruned = obj.clone();
        let checked = sextant_api::schema::check(schema, &mut pruned);
        sextant_api::Error::check_invalid(
            &resource.group,
            &resource.kind,
            name(obj).unwrap_or(""),
            checked.errors,
        )?;
        return Ok((pruned, checked.unknown));
    }
    macro_rules! kinds {
        ($($group:literal, $kind:literal => $t:ty),* $(,)?) => {
            match (resource.group.as_str(), resource.kind.as_str()) {
                $(($group, $kind) => roundtrip::<$t>(obj),)*
                _ => Ok((obj.clone(), Vec::new())),
            }
        };
    }
    kinds! {
        "", "Pod" => core::v1::Pod,
        "", "Service" => core::v1::Service,
        "", "Endpoints" => core::v1::Endpoints,
        "", "ConfigMap" => core::v1::ConfigMap,
        "", "Secret" => core::v1::Secret,
        "", "ServiceAccount" => core::v1::ServiceAccount,
        "", "Event" => core::v1::Event,
        "", "LimitRange" => core::v1::LimitRange,
        "", "ResourceQuota" => core::v1::ResourceQuota,
        "", "Namespace" => core::v1::Namespace,
        "", "Node" => core::v1::Node,
        "apps", "Deployment" => apps::v1::Deployment,
        "apps", "ReplicaSet" => apps::v1::ReplicaSet,
        "batch", "Job" => batch::v1::Job,
        "batch", "CronJob" => batch::v1::CronJob,
        "discovery.k8s.io", "EndpointSlice" => discovery::v1::EndpointSlice,
        "events.k8s.io", "Event" => events::v1::Event,
        "coordination.k8s.io", "Lease" => coordination::v1::Lease,
        "node.k8s.io", "RuntimeClass" => node::v1::RuntimeClass,
        "apiextensions.k8s.io", "CustomResourceDefinition" => apiextensions::v1::CustomResourceDefinition,
    }
}

/// Normalises, applies the field validation the client asked for, and validates metadata.
/// Returns the object to store and the warnings to send back.
pub fn validate(
    resource: &ResourceInfo,
    obj: &Value,
    validation: FieldValidation,
    schema: Option<&Value>,
) -> ApiResult<(Value, Vec<String>)> {
    let (normalized, unknown) = normalize(resource, obj, schema)?;
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match validation {
            FieldValidation::Strict => {
                let list = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {list}; remove the field{} or check the spelling against `kubectl explain {}`",
                    if unknown.len() == 1 { "" } else { "s" },
                    resource.plural
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
            }
            FieldValidation::Ignore => {}
        }
    }
    let object_meta: ObjectMeta =
        serde_json::from_value(normalized.get("metadata").cloned().unwrap_or(json!({})))
            .map_err(|e| ApiError::bad_request(format!("metadata does not decode: {e}")))?;
    let errors = validate_object_meta(
        &object_meta,
        resource.namespaced,
        NameRule::for_kind(&resource.group, &resource.kind),
    );
    sextant_api::Error::check_invalid(
        &resource.group,
        &resource.kind,
        name(obj).unwrap_or(""),
        errors,
    )?;
    Ok((normalized, warnings))
}

/// Sets (or replaces) a condition in `status.conditions`.
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let now = now_rfc3339();
    let conditions = obj["status"]
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    let mut cond =
        json!({"type": kind, "status": status, "lastTransitionTime": now, "lastProbeTime": null});
    if let Some(r) = reason {
        cond["reason"] = json!(r);
    }
    if let Some(m) = message {
        cond["message"] = json!(m);
    }
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            if existing["status"] == status {
                cond["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = cond;
        }
        None => list.push(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> ResourceInfo {
        sextant_api::resources::builtin()
            .into_iter()
            .find(|r| r.plural == "pods")
            .unwrap()
    }

    #[test]
    fn unknown_fields_are_found_and_dropped() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}], "bogus": 1}});
        let (norm, warnings) = validate(&pods(), &pod, FieldValidation::Warn, None).unwrap();
        assert_eq!(
            warnings,
            vec![
                "unknown field \"spec.bogus\"",
                "unknown field \"spec.containers[0].colour\""
            ]
        );
        assert!(norm["spec"].get("bogus").is_none());
        let err = validate(&pods(), &pod, FieldValidation::Strict, None).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("spec.bogus"), "{err}");
    }

    #[test]
    fn wrong_types_and_bad_names_are_refused() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": "nope"}});
        assert_eq!(
            validate(&pods(), &pod, FieldValidation::Warn, None)
                .unwrap_err()
                .code(),
            400
        );
        let pod = json!({"metadata": {"name": "Bad_Name", "namespace": "default"}, "spec": {"containers": []}});
        let err = validate(&pods(), &pod, FieldValidation::Warn, None).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(err.status()["reason"], "Invalid");
    }

    #[test]
    fn type_mismatch_with_the_url() {
        let mut cm = json!({"apiVersion": "apps/v1", "kind": "Pod"});
        assert!(check_type(&mut cm, &pods()).is_err());
        let mut bare = json!({});
        check_type(&mut bare, &pods()).unwrap();
        assert_eq!(bare["kind"], "Pod");
    }
}
