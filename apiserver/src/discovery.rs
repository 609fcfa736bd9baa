//! Discovery: which groups, versions and resources the server offers, in the legacy form
//! (`/api`, `/apis`, `/api/v1`, `/apis/G/V`) and the aggregated v2 form that kubectl 1.30+
//! asks for first (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`).

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_api::resources::ResourceInfo;

use crate::registry::Registry;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client asked for aggregated discovery.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let p: Vec<&str> = part.split(';').map(str::trim).collect();
            p.contains(&"g=apidiscovery.k8s.io")
                && p.contains(&"v=v2")
                && p.contains(&"as=APIGroupDiscoveryList")
        })
    })
}

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "status" | "scale" => vec!["get", "patch", "update"],
        "log" => vec!["get"],
        "exec" => vec!["create", "get"],
        "binding" | "eviction" | "token" => vec!["create"],
        "finalize" => vec!["update"],
        _ => vec!["get"],
    }
}

fn subresource_kind(r: &ResourceInfo, sub: &str) -> (String, String, String) {
    match sub {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into()),
        "binding" => ("".into(), "v1".into(), "Binding".into()),
        "eviction" => ("policy".into(), "v1".into(), "Eviction".into()),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
        ),
        "log" => ("".into(), "v1".into(), "Pod".into()),
        "exec" => ("".into(), "v1".into(), "PodExecOptions".into()),
        _ => (r.group.clone(), r.version.clone(), r.kind.clone()),
    }
}

/// `APIResourceList` for one group-version.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let all: Vec<ResourceInfo> = registry
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if all.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &all {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": r.verbs, "shortNames": r.short_names, "categories": r.categories,
        }));
        for sub in &r.subresources {
            let (g, v, k) = subresource_kind(r, sub);
            let mut entry = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": subresource_verbs(sub)});
            if g != r.group || v != r.version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry
        .groups()
        .iter()
        .find(|(g, _)| g == name)
        .map(|(g, vs)| {
            let mut v = group_entry(g, vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

/// The aggregated document for the core group (`core == true`) or all named groups.
pub fn aggregated(registry: &Registry, core: bool) -> Response {
    let all = registry.all();
    let mut groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".into()])]
    } else {
        registry.groups()
    };
    groups.retain(|(g, _)| g.is_empty() == core);
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = all
                        .iter()
                        .filter(|r| &r.group == g && &r.version == v)
                        .map(|r| {
                            let subs: Vec<Value> = r.subresources.iter().map(|s| {
                                let (sg, sv, sk) = subresource_kind(r, s);
                                json!({"subresource": s, "responseKind": {"group": sg, "version": sv, "kind": sk}, "verbs": subresource_verbs(s)})
                            }).collect();
                            json!({
                                "resource": r.plural,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular,
                                "verbs": r.verbs,
                                "shortNames": r.short_names,
                                "categories": r.categories,
                                "subresources": subs,
                            })
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(AGGREGATED),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_aggregated_forms() {
        let reg = Registry::default();
        let core = resource_list(&reg, "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/log")
                && names.contains(&"pods/exec")
                && names.contains(&"namespaces/status")
        );
        let apps = resource_list(&reg, "apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert!(
            group_list(&reg)["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "batch")
        );
        assert!(wants_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        )));
        assert!(!wants_aggregated(Some("application/json")));
    }
}
