//! Admission: what the server adds to, or refuses about, an object before it is stored.
//!
//! - NamespaceLifecycle: nothing is created in a namespace that does not exist or is
//!   being deleted;
//! - defaults per kind (`sextant_api::defaults`), including the `default` ServiceAccount
//!   for pods;
//! - LimitRange: default requests and limits for containers, and their min/max;
//! - ResourceQuota: pods that would take a namespace past its quota are refused (403).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sextant_api::quantity::Milli;
use sextant_api::quota::{counts_against_quota, pod_resources, quantities, quota_usage};
use sextant_api::resources::ResourceInfo;
use sextant_store::ListRequest;

use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::state::ApiState;

pub async fn namespace_accepts_content(state: &ApiState, ns: &str) -> ApiResult<()> {
    let key = format!("/registry/core/namespaces/{ns}");
    match state.store.get(&key).await? {
        None => Err(ApiError::NotFound {
            group: String::new(),
            kind_plural: "namespaces".into(),
            name: ns.into(),
        }),
        Some(kv) => {
            let obj = objects::from_store(&kv)?;
            if objects::meta(&obj).contains_key("deletionTimestamp") {
                return Err(ApiError::Forbidden {
                    message: format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                });
            }
            Ok(())
        }
    }
}

pub fn default_on_create(r: &ResourceInfo, obj: &mut Value) {
    sextant_api::defaults::apply(&r.group, &r.kind, obj);
}

fn containers_mut(pod: &mut Value) -> impl Iterator<Item = &mut Value> {
    let spec = pod.get_mut("spec").and_then(Value::as_object_mut);
    let mut out = Vec::new();
    if let Some(spec) = spec {
        for (k, v) in spec.iter_mut() {
            if (k == "containers" || k == "initContainers")
                && let Some(list) = v.as_array_mut()
            {
                out.extend(list.iter_mut());
            }
        }
    }
    out.into_iter()
}

fn forbidden(message: String) -> ApiError {
    ApiError::Forbidden { message }
}

/// LimitRange (type Container): fills default limits and requests, then checks min and max.
fn apply_limit_ranges(pod: &mut Value, ranges: &[Value]) -> ApiResult<()> {
    let items: Vec<&Value> = ranges
        .iter()
        .flat_map(|lr| {
            lr.pointer("/spec/limits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|l| l["type"] == "Container")
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    for c in containers_mut(pod) {
        let cname = c["name"].as_str().unwrap_or("").to_owned();
        for item in &items {
            if !c.get("resources").is_some_and(Value::is_object) {
                c["resources"] = json!({});
            }
            let res = c["resources"].as_object_mut().expect("just made an object");
            for (field, default_field) in [("limits", "default"), ("requests", "defaultRequest")] {
                if let Some(defaults) = item.get(default_field).and_then(Value::as_object) {
                    let slot = res.entry(field).or_insert_with(|| json!({}));
                    for (r, q) in defaults {
                        if slot.get(r).is_none() {
                            slot[r] = q.clone();
                        }
                    }
                }
            }
            // An unset request defaults to the limit, as Kubernetes defaults pods.
            let limits = res.get("limits").cloned().unwrap_or(json!({}));
            let requests = res.entry("requests").or_insert_with(|| json!({}));
            if let Some(l) = limits.as_object() {
                for (r, q) in l {
                    if requests.get(r).is_none() {
                        requests[r] = q.clone();
                    }
                }
            }
            let (requests, limits) = (quantities(&res["requests"]), quantities(&limits));
            for (r, min) in quantities(&item["min"]) {
                match requests.get(&r) {
                    Some(q) if *q >= min => {}
                    Some(q) => {
                        return Err(forbidden(format!(
                            "minimum {r} usage per Container is {min}, but request is {q} (container {cname})"
                        )));
                    }
                    None => {
                        return Err(forbidden(format!(
                            "minimum {r} usage per Container is {min}: container {cname} must request {r}"
                        )));
                    }
                }
            }
            for (r, max) in quantities(&item["max"]) {
                match limits.get(&r) {
                    Some(q) if *q <= max => {}
                    Some(q) => {
                        return Err(forbidden(format!(
                            "maximum {r} usage per Container is {max}, but limit is {q} (container {cname})"
                        )));
                    }
                    None => {
                        return Err(forbidden(format!(
                            "maximum {r} usage per Container is {max}: container {cname} must set a {r} limit"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// ResourceQuota: refuses a pod that would take the namespace past any quota's hard limits.
///
/// Usage is counted from the pods stored when the pod is admitted, so two pods admitted at
/// the same moment can together overshoot a quota by one pod's worth; Kubernetes closes that
/// gap with a compare-and-swap on the quota's status, which the quota controller (issue #4)
/// will own here too.
fn check_quotas(pod: &Value, quotas: &[Value], existing: &[Value]) -> ApiResult<()> {
    let wanted = quota_usage(pod);
    let res = pod_resources(pod);
    for quota in quotas {
        let name = objects::name(quota).unwrap_or("");
        let hard = quantities(&quota["spec"]["hard"]);
        if hard.is_empty() {
            continue;
        }
        for (key, _) in hard.iter().filter(|(k, _)| !wanted.contains_key(*k)) {
            let (kind, res_name) = key.split_once('.').unwrap_or(("requests", key.as_str()));
            let missing = if kind == "limits" {
                res.missing_limits.get(res_name)
            } else {
                res.missing_requests.get(res_name)
            };
            if let Some(containers) = missing {
                return Err(forbidden(format!(
                    "failed quota: {name}: must specify {key} for: {}",
                    containers.join(",")
                )));
            }
        }
        let mut used: BTreeMap<String, Milli> = BTreeMap::new();
        for p in existing.iter().filter(|p| counts_against_quota(p)) {
            for (k, q) in quota_usage(p) {
                used.entry(k).or_default().0 += q.0;
            }
        }
        let over: Vec<&String> = hard
            .iter()
            .filter(|(k, h)| {
                used.get(*k).map_or(0, |u| u.0) + wanted.get(*k).map_or(0, |w| w.0) > h.0
            })
            .map(|(k, _)| k)
            .collect();
        if !over.is_empty() {
            let show = |m: &BTreeMap<String, Milli>| {
                over.iter()
                    .map(|k| format!("{k}={}", m.get(*k).copied().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(forbidden(format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                show(&wanted),
                show(&used),
                show(&hard)
            )));
        }
    }
    Ok(())
}

/// LimitRange then ResourceQuota, for a pod being created in `ns`.
pub async fn admit_pod(state: &ApiState, ns: &str, pod: &mut Value) -> ApiResult<()> {
    let read = |plural: &str| {
        let prefix = format!("/registry/core/{plural}/{ns}/");
        async move {
            let listed = state
                .store
                .list(ListRequest {
                    prefix,
                    ..Default::default()
                })
                .await?;
            listed
                .items
                .iter()
                .map(objects::from_store)
                .collect::<ApiResult<Vec<Value>>>()
        }
    };
    let ranges = read("limitranges").await?;
    apply_limit_ranges(pod, &ranges)?;
    let quotas = read("resourcequotas").await?;
    if !quotas.is_empty() {
        let pods = read("pods").await?;
        check_quotas(pod, &quotas, &pods)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}, "status": {"phase": "Running"}})
    }

    #[test]
    fn limit_ranges_default_and_bound_containers() {
        let lr = json!({"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}});
        let mut p = pod(json!([{"name": "a"}]));
        apply_limit_ranges(&mut p, std::slice::from_ref(&lr)).unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}})
        );
        let mut big = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "2"}}}]));
        let err = apply_limit_ranges(&mut big, &[lr]).unwrap_err();
        assert_eq!(err.code(), 403);
        assert!(
            err.to_string()
                .contains("maximum cpu usage per Container is 1, but limit is 2"),
            "{err}"
        );
    }

    #[test]
    fn quotas_count_live_pods_and_refuse_the_excess() {
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}});
        let running = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "600m"}}}]));
        let mut done = running.clone();
        done["status"]["phase"] = json!("Succeeded");
        let new = pod(json!([{"name": "b", "resources": {"requests": {"cpu": "300m"}}}]));
        check_quotas(&new, std::slice::from_ref(&quota), &[running.clone(), done]).unwrap();
        let greedy = pod(json!([{"name": "b", "resources": {"requests": {"cpu": "500m"}}}]));
        let err = check_quotas(
            &greedy,
            std::slice::from_ref(&quota),
            std::slice::from_ref(&running),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "exceeded quota: q, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
        );
        let unbounded = pod(json!([{"name": "c"}]));
        let err = check_quotas(&unbounded, &[quota], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed quota: q: must specify requests.cpu for: c"
        );
    }
}
