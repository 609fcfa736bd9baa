//! What a pod counts against a ResourceQuota: the admission check that refuses pods over
//! quota and the quota controller that reports `status.used` count the same way.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::Milli;

/// Requests and limits of every container, after LimitRange defaults.
pub struct PodResources {
    pub requests: BTreeMap<String, Milli>,
    pub limits: BTreeMap<String, Milli>,
    /// Per resource, the containers that request nothing of it (for quota messages).
    pub missing_requests: BTreeMap<String, Vec<String>>,
    pub missing_limits: BTreeMap<String, Vec<String>>,
}

pub fn quantities(v: &Value) -> BTreeMap<String, Milli> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Milli::from_json(q).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn pod_resources(pod: &Value) -> PodResources {
    let mut out = PodResources {
        requests: BTreeMap::new(),
        limits: BTreeMap::new(),
        missing_requests: BTreeMap::new(),
        missing_limits: BTreeMap::new(),
    };
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &containers {
        let name = c["name"].as_str().unwrap_or("").to_owned();
        let (req, lim) = (
            quantities(&c["resources"]["requests"]),
            quantities(&c["resources"]["limits"]),
        );
        for r in ["cpu", "memory"] {
            match req.get(r) {
                Some(q) => {
                    *out.requests.entry(r.into()).or_default() =
                        Milli(out.requests.get(r).map_or(0, |m| m.0) + q.0)
                }
                None => out
                    .missing_requests
                    .entry(r.into())
                    .or_default()
                    .push(name.clone()),
            }
            match lim.get(r) {
                Some(q) => {
                    *out.limits.entry(r.into()).or_default() =
                        Milli(out.limits.get(r).map_or(0, |m| m.0) + q.0)
                }
                None => out
                    .missing_limits
                    .entry(r.into())
                    .or_default()
                    .push(name.clone()),
            }
        }
    }
    out
}

/// What one pod counts against each quota key Kubernetes defines for pods.
pub fn quota_usage(pod: &Value) -> BTreeMap<String, Milli> {
    let r = pod_resources(pod);
    let mut usage = BTreeMap::from([
        ("pods".to_owned(), Milli(1000)),
        ("count/pods".to_owned(), Milli(1000)),
    ]);
    for (res, q) in &r.requests {
        usage.insert(format!("requests.{res}"), *q);
        usage.insert(res.clone(), *q);
    }
    for (res, q) in &r.limits {
        usage.insert(format!("limits.{res}"), *q);
    }
    usage
}

/// Pods that finished or are being deleted no longer count (Kubernetes' quota evaluator).
pub fn counts_against_quota(pod: &Value) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    phase != "Succeeded"
        && phase != "Failed"
        && pod
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
}
