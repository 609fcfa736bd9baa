use super::*;
use crate::resources::builtin;

const POD: &str = "io.k8s.api.core.v1.Pod";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const CONTAINER: &str = "io.k8s.api.core.v1.Container";

fn core_v1() -> Value {
    v3_group_version(&builtin(), "", "v1")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// Follows a `$ref` (bare, or wrapped in a one-element `allOf`) the way kubectl explain does.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    let r = s
        .get("$ref")
        .or_else(|| s.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str);
    match r {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}")),
        None => s,
    }
}

/// Every string `$ref` in a document, skipping `default` values (data, not schemas) unless
/// `default` is a property name (as in `JSONSchemaProps`).
fn all_refs(v: &Value, in_properties: bool, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) if !in_properties => out.push(r.clone()),
                    ("default" | "example", _) if !in_properties => {}
                    _ => all_refs(v, k == "properties" && !in_properties, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| all_refs(v, false, out)),
        _ => {}
    }
}

fn assert_refs_resolve(doc: &Value, prefix: &str) {
    let mut refs = Vec::new();
    all_refs(doc, false, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(r.starts_with(prefix), "{r} does not start with {prefix}");
        assert!(
            doc.pointer(r.trim_start_matches('#')).is_some(),
            "dangling {r}"
        );
    }
}

fn crontab() -> CustomResource {
    let info = ResourceInfo {
        group: "stable.example.com".into(),
        version: "v1".into(),
        kind: "CronTab".into(),
        plural: "crontabs".into(),
        singular: "crontab".into(),
        namespaced: true,
        short_names: vec!["ct".into()],
        categories: vec![],
        subresources: vec!["status".into()],
        verbs: [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
        .map(String::from)
        .to_vec(),
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "description": "What the cron tab runs.",
                "properties": {
                    "cronSpec": { "type": "string" },
                    "replicas": { "x-kubernetes-int-or-string": true, "anyOf": [{ "type": "integer" }, { "type": "string" }] },
                    "template": { "type": "object", "default": { "$ref": "not a reference" }, "x-kubernetes-preserve-unknown-fields": true },
                },
            },
        },
    });
    (info, schema)
}

#[test]
fn pod_schema_carries_its_group_version_kind() {
    let doc = core_v1();
    let gvks = schema(&doc, POD)["x-kubernetes-group-version-kind"]
        .as_array()
        .unwrap();
    assert_eq!(
        gvks,
        &vec![json!({ "group": "", "version": "v1", "kind": "Pod" })]
    );
    assert_eq!(
        schema(&doc, "io.k8s.api.core.v1.PodList")["x-kubernetes-group-version-kind"][0]["kind"],
        "PodList"
    );
    // Operations carry a single GVK object, schemas a list: kubectl explain relies on both.
    let read = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["get"];
    assert_eq!(read["operationId"], "readCoreV1NamespacedPod");
    assert_eq!(read["x-kubernetes-action"], "get");
    assert_eq!(
        read["x-kubernetes-group-version-kind"],
        json!({ "group": "", "version": "v1", "kind": "Pod" })
    );
}

#[test]
fn pod_spec_containers_resolve_to_container_with_name_required() {
    let doc = core_v1();
    let spec = resolve(&doc, &schema(&doc, POD)["properties"]["spec"]);
    assert_eq!(spec, schema(&doc, POD_SPEC));
    let containers = &spec["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert!(
        containers["description"]
            .as_str()
            .unwrap()
            .contains("List of containers")
    );
    assert_eq!(
        containers["items"]["$ref"],
        format!("#/components/schemas/{CONTAINER}")
    );
    let container = resolve(&doc, &containers["items"]);
    assert!(
        container["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );
    assert!(container["properties"]["image"]["description"].is_string());
}

#[test]
fn explain_finds_the_kind_through_its_operations_and_walks_fields() {
    // What kubectl explain's template does for `pods.spec.containers.ports`.
    let doc = core_v1();
    let gvk = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["x-kubernetes-group-version-kind"];
    let kinds: Vec<&Value> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|l| l.contains(gvk))
        })
        .collect();
    assert_eq!(kinds.len(), 1);
    let mut s = kinds[0];
    for field in ["spec", "containers", "ports"] {
        s = resolve(&doc, s);
        s = &s["properties"][field];
        assert!(s["description"].is_string(), "{field} has no description");
        if let Some(items) = s.get("items") {
            s = items;
        }
    }
    assert!(resolve(&doc, s)["properties"]["containerPort"].is_object());
}

#[test]
fn ref_siblings_become_all_of_in_v3_and_stay_in_v2() {
    let doc = core_v1();
    let meta = &schema(&doc, POD)["properties"]["metadata"];
    assert!(meta.get("$ref").is_none());
    assert_eq!(
        meta["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(
        meta["description"]
            .as_str()
            .unwrap()
            .starts_with("Standard object's metadata")
    );
    let v2 = v2(&builtin());
    let meta = &v2["definitions"][POD]["properties"]["metadata"];
    assert_eq!(
        meta["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(meta["description"].is_string());
}

#[test]
fn every_ref_resolves_inside_its_document() {
    let all = builtin();
    let gvs: BTreeSet<(String, String)> = all
        .iter()
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect();
    for (g, v) in &gvs {
        let doc = v3_group_version(&all, g, v);
        assert_refs_resolve(&doc, "#/components/schemas/");
        assert!(
            doc["paths"].as_object().unwrap().len() > 1,
            "{g}/{v} has no paths"
        );
    }
    let crds = [crontab()];
    assert_refs_resolve(
        &v3_group_version_with_crds(&all, &crds, "stable.example.com", "v1"),
        "#/components/schemas/",
    );
    assert_refs_resolve(&v2_with_crds(&all, &crds), "#/definitions/");
}

#[test]
fn documents_hold_only_schemas_their_kinds_reach() {
    let apps = v3_group_version(&builtin(), "apps", "v1");
    let names = apps["components"]["schemas"].as_object().unwrap();
    assert!(names.contains_key("io.k8s.api.apps.v1.Deployment"));
    assert!(
        names.contains_key(POD_SPEC),
        "a Deployment's template reaches PodSpec"
    );
    assert!(names.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    assert!(!names.contains_key(POD), "no apps/v1 kind refers to Pod");
    assert!(!names.contains_key("io.k8s.api.batch.v1.Job"));
    assert!(names.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Status"));
}

#[test]
fn deployment_patch_lists_field_validation_for_kubectl() {
    let doc = v3_group_version(&builtin(), "apps", "v1");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({ "group": "apps", "version": "v1", "kind": "Deployment" })
    );
    let params = patch["parameters"].as_array().unwrap();
    // Inline, with `in: query`: kubectl's QueryParamVerifierV3 reads nothing else.
    for name in ["fieldValidation", "fieldManager", "dryRun", "force"] {
        assert!(
            params
                .iter()
                .any(|p| p["name"] == name && p["in"] == "query"),
            "no {name}"
        );
    }
    let content = patch["requestBody"]["content"].as_object().unwrap();
    for t in paths::PATCH_TYPES {
        assert_eq!(
            content[*t]["schema"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
        );
    }
    // Every PATCH with the Deployment GVK must pass, since kubectl stops at the first it finds.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment" {
            assert!(
                item["patch"]["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "fieldValidation"),
                "{path}"
            );
        }
    }
}

#[test]
fn operations_are_named_and_parameterised_as_kubernetes_does() {
    let doc = core_v1();
    let paths = doc["paths"].as_object().unwrap();
    let op = |path: &str, method: &str| &paths[path][method];
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods", "get")["operationId"],
        "listCoreV1NamespacedPod"
    );
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods", "post")["operationId"],
        "createCoreV1NamespacedPod"
    );
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods", "delete")["x-kubernetes-action"],
        "deletecollection"
    );
    assert_eq!(
        op("/api/v1/pods", "get")["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods/{name}", "put")["operationId"],
        "replaceCoreV1NamespacedPod"
    );
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods/{name}", "delete")["operationId"],
        "deleteCoreV1NamespacedPod"
    );
    assert_eq!(
        op("/api/v1/namespaces/{namespace}/pods/{name}/status", "patch")["operationId"],
        "patchCoreV1NamespacedPodStatus"
    );
    assert_eq!(
        op("/api/v1/watch/namespaces/{namespace}/pods", "get")["operationId"],
        "watchCoreV1NamespacedPodList"
    );
    assert_eq!(
        op("/api/v1/watch/namespaces/{namespace}/pods/{name}", "get")["x-kubernetes-action"],
        "watch"
    );
    assert_eq!(
        op("/api/v1/nodes/{name}", "get")["operationId"],
        "readCoreV1Node"
    );
    assert_eq!(op("/api/v1/nodes", "get")["operationId"], "listCoreV1Node");
    assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/nodes"));
    assert_eq!(
        op("/api/v1/", "get")["operationId"],
        "getCoreV1APIResources"
    );

    let names = |o: &Value| -> Vec<String> {
        o["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = names(op("/api/v1/namespaces/{namespace}/pods", "get"));
    for p in [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "watch",
        "allowWatchBookmarks",
        "sendInitialEvents",
        "timeoutSeconds",
    ] {
        assert!(list.contains(&p.to_owned()), "list lacks {p}");
    }
    let delete = names(op("/api/v1/namespaces/{namespace}/pods/{name}", "delete"));
    for p in ["dryRun", "gracePeriodSeconds", "propagationPolicy"] {
        assert!(delete.contains(&p.to_owned()), "delete lacks {p}");
    }
    let item = names(&paths["/api/v1/namespaces/{namespace}/pods/{name}"]);
    assert_eq!(item, ["name", "namespace", "pretty"]);
    let limit = op("/api/v1/namespaces/{namespace}/pods", "get")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .cloned();
    assert_eq!(limit.unwrap()["schema"]["type"], "integer");
    let create = op("/api/v1/namespaces/{namespace}/pods", "post");
    assert_eq!(
        create["requestBody"]["content"]["*/*"]["schema"]["$ref"],
        format!("#/components/schemas/{POD}")
    );
    assert_eq!(
        create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        format!("#/components/schemas/{POD}")
    );
}

#[test]
fn scale_subresource_speaks_autoscaling_scale() {
    let doc = v3_group_version(&builtin(), "apps", "v1");
    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["get"]["operationId"],
        "readAppsV1NamespacedDeploymentScale"
    );
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" })
    );
    assert_eq!(
        scale["put"]["requestBody"]["content"]["*/*"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
    );
    assert!(
        doc["paths"]
            .get("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/log")
            .is_none()
    );
}

#[test]
fn special_types_look_as_upstream_publishes_them() {
    let doc = core_v1();
    let ios = schema(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["format"], "int-or-string");
    assert!(ios.get("type").is_none() && ios["oneOf"].is_array());
    let q = schema(&doc, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert!(q.get("type").is_none() && q.get("x-kubernetes-int-or-string").is_none());
    let t = schema(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.Time");
    assert_eq!(
        (t["type"].as_str(), t["format"].as_str()),
        (Some("string"), Some("date-time"))
    );
    let v2 = v2(&builtin());
    let ios = &v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(
        (ios["type"].as_str(), ios["format"].as_str()),
        (Some("string"), Some("int-or-string"))
    );
    assert!(ios.get("oneOf").is_none());
    assert_eq!(
        v2["definitions"]["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"],
        "string"
    );
    let crd = v3_group_version(&builtin(), "apiextensions.k8s.io", "v1");
    let json_any = schema(
        &crd,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    );
    assert!(
        json_any.get("type").is_none(),
        "a JSON value need not be an object"
    );
}

#[test]
fn schemas_carry_patch_strategies_for_kubectl_apply() {
    let doc = core_v1();
    let containers = &schema(&doc, POD_SPEC)["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(
        schema(&doc, POD_SPEC)["properties"]["volumes"]["x-kubernetes-patch-strategy"],
        "merge,retainKeys"
    );
    assert_eq!(
        schema(&doc, CONTAINER)["properties"]["env"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    let meta = schema(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert_eq!(
        meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
    let apps = v3_group_version(&builtin(), "apps", "v1");
    let strategy = &schema(&apps, "io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    assert!(
        strategy["allOf"][0]["$ref"].is_string(),
        "the strategy survives beside the ref"
    );
    // A row naming a property the schema lacks is a typo or a Kubernetes version skew.
    let defs = &schemas::catalogue().defs;
    let rows = list_types::fields().map(|(schema, f)| (schema, f.property));
    let tagged = crate::patch::meta::tagged_fields()
        .into_iter()
        .map(|(schema, f)| (schema, f.name));
    for (schema, property) in rows.chain(tagged) {
        if let Some(s) = defs.get(schema) {
            assert!(
                s["properties"].get(property).is_some(),
                "{schema}.{property} not found"
            );
        }
    }
}

#[test]
fn apps_v1_document_takes_its_patch_strategies_from_the_patch_engine() {
    let apps = v3_group_version(&builtin(), "apps", "v1");
    let containers = &schema(&apps, POD_SPEC)["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let env = &schema(&apps, CONTAINER)["properties"]["env"];
    assert_eq!(env["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(env["x-kubernetes-patch-merge-key"], "name");
    let finalizers = &schema(&apps, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"]
        ["finalizers"];
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    assert!(
        finalizers.get("x-kubernetes-patch-merge-key").is_none(),
        "a set of strings has no key"
    );
    // What the document says is what the patch engine does, field by field.
    let engine =
        crate::patch::meta::lookup("apps/v1", "Deployment", "spec.template.spec.containers.env")
            .unwrap();
    assert_eq!(
        env["x-kubernetes-patch-merge-key"],
        engine.patch_merge_key().unwrap()
    );
}

#[test]
fn ephemeral_containers_carry_the_tags_of_the_container_fields_they_inline() {
    let doc = core_v1();
    let ephemeral = &schema(&doc, "io.k8s.api.core.v1.EphemeralContainer")["properties"];
    for (property, key) in [
        ("env", "name"),
        ("ports", "containerPort"),
        ("volumeMounts", "mountPath"),
    ] {
        assert_eq!(
            ephemeral[property]["x-kubernetes-patch-merge-key"], key,
            "{property}"
        );
        assert_eq!(
            ephemeral[property]["x-kubernetes-list-type"], "map",
            "{property}"
        );
    }
}

/// Server-side apply's list map keys and strategic merge patch's merge key are separate
/// upstream markers, but a keyed list has both, and the merge key is one of the map keys.
#[test]
fn merge_keys_are_among_the_list_map_keys() {
    for (schema, field) in crate::patch::meta::tagged_fields() {
        let Some(key) = field.patch_merge_key() else {
            continue;
        };
        let Some((_, row)) =
            list_types::fields().find(|(s, f)| *s == schema && f.property == field.name)
        else {
            continue;
        };
        if row.list_type == "map" {
            assert!(
                row.list_map_keys.contains(&key),
                "{schema}.{}: {key} not in {:?}",
                field.name,
                row.list_map_keys
            );
        }
    }
}

#[test]
fn custom_resources_get_upstream_shaped_schemas_and_paths() {
    let all = builtin();
    let crds = [crontab()];
    let doc = v3_group_version_with_crds(&all, &crds, "stable.example.com", "v1");
    let s = schema(&doc, "com.example.stable.v1.CronTab");
    assert_eq!(
        s["x-kubernetes-group-version-kind"][0],
        json!({ "group": "stable.example.com", "version": "v1", "kind": "CronTab" })
    );
    assert_eq!(
        s["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["template"]["default"],
        json!({ "$ref": "not a reference" })
    );
    assert!(
        doc.pointer("/components/schemas/com.example.stable.v1.CronTabList")
            .is_some()
    );
    let patch = &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
        ["patch"];
    assert_eq!(
        patch["operationId"],
        "patchStableExampleComV1NamespacedCronTab"
    );
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    let content = patch["requestBody"]["content"].as_object().unwrap();
    assert!(content.contains_key("application/merge-patch+json"));
    assert!(
        !content.contains_key("application/strategic-merge-patch+json"),
        "kubectl must fall back to merge patch"
    );
    assert!(
        doc["paths"]
            .get("/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status")
            .is_some()
    );
    assert!(
        !doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .contains_key(POD)
    );

    let v2 = v2_with_crds(&all, &crds);
    let replicas = &v2["definitions"]["com.example.stable.v1.CronTab"]["properties"]["spec"]["properties"]
        ["replicas"];
    assert!(replicas.get("anyOf").is_none(), "Swagger 2.0 has no anyOf");
    assert_eq!(replicas["x-kubernetes-int-or-string"], true);
}

#[test]
fn unknown_kinds_are_left_out_not_dangling() {
    let mut all = builtin();
    let mut odd = all[0].clone();
    odd.kind = "Gadget".into();
    odd.plural = "gadgets".into();
    all.push(odd);
    let doc = v3_group_version(&all, "", "v1");
    assert!(
        doc["paths"]
            .get("/api/v1/namespaces/{namespace}/gadgets")
            .is_none()
    );
    assert_refs_resolve(&doc, "#/components/schemas/");
}

#[test]
fn v2_has_definitions_and_paths_of_every_group() {
    let doc = v2(&builtin());
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["definitions"][POD].is_object());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}"));
    assert!(paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"));
    assert!(paths.contains_key("/apis/apiextensions.k8s.io/v1/customresourcedefinitions"));
    let patch = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(
        patch["consumes"]
            .as_array()
            .unwrap()
            .contains(&json!("application/strategic-merge-patch+json"))
    );
    let params = patch["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "body" && p["in"] == "body")
    );
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
    );
    assert!(doc.pointer("/components").is_none());
}

#[test]
fn index_points_at_each_group_version_with_its_hash() {
    let crds = [crontab()];
    let docs = Documents::build(&builtin(), &crds);
    let index: Value = serde_json::from_slice(&docs.v3_index.bytes).unwrap();
    let entries = index["paths"].as_object().unwrap();
    assert_eq!(entries.len(), docs.v3.len());
    let core = &docs.v3["api/v1"];
    assert_eq!(
        entries["api/v1"]["serverRelativeURL"],
        format!("/openapi/v3/api/v1?hash={}", core.hash)
    );
    assert!(entries.contains_key("apis/apps/v1"));
    assert!(entries.contains_key("apis/stable.example.com/v1"));
    assert_eq!(
        docs.group_version("/apis/apps/v1").unwrap(),
        &docs.v3["apis/apps/v1"]
    );
    let doc: Value = serde_json::from_slice(&core.bytes).unwrap();
    assert_eq!(doc, v3_group_version(&builtin(), "", "v1"));
}

#[test]
fn rendering_is_stable_and_the_hash_follows_the_bytes() {
    let a = Documents::build(&builtin(), &[]);
    let mut shuffled = builtin();
    shuffled.reverse();
    let b = Documents::build(&shuffled, &[]);
    assert_eq!(a.v2, b.v2);
    assert_eq!(a.v3, b.v3);
    assert_eq!(a.v3_index, b.v3_index);
    assert_eq!(content_hash(b"abc"), content_hash(b"abc"));
    assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
    assert_eq!(content_hash(b"").len(), 32);
    assert_ne!(a.v3["api/v1"].hash, a.v3["apis/apps/v1"].hash);
}

/// Sizes and build time, for the figures the API server's caching is sized by:
/// `OPENAPI_DUMP=/tmp/dir cargo test -p sextant-api measure_documents -- --ignored --nocapture`
/// also writes the documents there, to serve to a real kubectl.
#[test]
#[ignore = "prints measurements; run by hand"]
fn measure_documents() {
    let started = std::time::Instant::now();
    schemas::catalogue();
    let catalogue = started.elapsed();
    let started = std::time::Instant::now();
    let docs = Documents::build(&builtin(), &[crontab()]);
    let build = started.elapsed();
    println!("catalogue {catalogue:?}, all documents {build:?}");
    println!(
        "v2 {} bytes, v3 index {} bytes",
        docs.v2.bytes.len(),
        docs.v3_index.bytes.len()
    );
    for (path, doc) in &docs.v3 {
        println!("v3 {path}: {} bytes", doc.bytes.len());
    }
    if let Some(dir) = std::env::var_os("OPENAPI_DUMP") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("v2.json"), &docs.v2.bytes).unwrap();
        std::fs::write(dir.join("v3.json"), &docs.v3_index.bytes).unwrap();
        for (path, doc) in &docs.v3 {
            std::fs::write(
                dir.join(format!("v3-{}.json", path.replace('/', "_"))),
                &doc.bytes,
            )
            .unwrap();
        }
    }
}
