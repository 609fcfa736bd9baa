//! Cases taken from what kubectl sends: `apply` and `edit` (strategic merge patches with
//! `$setElementOrder`, `$retainKeys`, `$patch: delete`), `label`/`annotate`/`scale` (merge
//! patches), `rollout restart`, and `patch --type json`.

use serde_json::{Value, json};

use super::*;

const DEPLOYMENT: TypeRef<'static> = TypeRef::new("apps/v1", "Deployment");
const POD: TypeRef<'static> = TypeRef::new("v1", "Pod");
const CRD: TypeRef<'static> = TypeRef::new("example.com/v1", "Widget");

/// A Deployment with two containers, as stored.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "envoy:1.30"}
                    ],
                    "tolerations": [{"key": "k1", "operator": "Exists"}]
                }
            }
        }
    })
}

/// `deployment()` with `f` applied to its pod spec.
fn deployment_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut d = deployment();
    f(&mut d["spec"]["template"]["spec"]);
    d
}

struct Case {
    name: &'static str,
    kind: TypeRef<'static>,
    doc: Value,
    patch: Value,
    want: Value,
}

#[test]
fn strategic_merge_patch_cases() {
    let cases = vec![
        Case {
            name: "kubectl apply of an edited image changes that container and keeps the others",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({
                "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.26", "name": "web"}]
                }}}
            }),
            want: {
                let mut d =
                    deployment_with(|spec| spec["containers"][0]["image"] = json!("nginx:1.26"));
                d["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
                d
            },
        },
        Case {
            name: "changing an env var by name keeps the others in place",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "env": [{"name": "B", "value": "two"}]}
            ]}}}}),
            want: deployment_with(|spec| spec["containers"][0]["env"][1]["value"] = json!("two")),
        },
        Case {
            // Kubernetes puts items the stored list lacks first (mergeSortedSlice);
            // kubectl apply sends $setElementOrder when it cares.
            name: "adding an env var by name, without an order, puts it first as Kubernetes does",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "env": [{"name": "C", "value": "3"}]}
            ]}}}}),
            want: deployment_with(|spec| {
                spec["containers"][0]["env"] = json!([{"name": "C", "value": "3"}, {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
            }),
        },
        Case {
            name: "kubectl apply adding an env var with $setElementOrder appends it",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "web",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                    "env": [{"name": "C", "value": "3"}]}]
            }}}}),
            want: deployment_with(|spec| {
                spec["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]);
            }),
        },
        Case {
            name: "kubectl apply adding a container appends it",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "log"}],
                "containers": [{"name": "log", "image": "fluent-bit:3"}]
            }}}}),
            want: deployment_with(|spec| {
                spec["containers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "log", "image": "fluent-bit:3"}));
            }),
        },
        Case {
            name: "$patch: delete removes a container by name",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}]
            }}}}),
            want: deployment_with(|spec| {
                spec["containers"].as_array_mut().unwrap().pop();
            }),
        },
        Case {
            name: "$setElementOrder alone reorders a list",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
            }}}}),
            want: deployment_with(|spec| spec["containers"].as_array_mut().unwrap().reverse()),
        },
        Case {
            name: "$patch: replace in a list replaces the whole list",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "only", "image": "busybox:1.36"}, {"$patch": "replace"}
            ]}}}}),
            want: deployment_with(|spec| {
                spec["containers"] = json!([{"name": "only", "image": "busybox:1.36"}])
            }),
        },
        Case {
            name: "$patch: replace in an object replaces it",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "front"}}}}}),
            want: {
                let mut d = deployment();
                d["spec"]["template"]["metadata"]["labels"] = json!({"tier": "front"});
                d
            },
        },
        Case {
            name: "$retainKeys clears rollingUpdate when kubectl apply switches to Recreate",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
            want: {
                let mut d = deployment();
                d["spec"]["strategy"] = json!({"type": "Recreate"});
                d
            },
        },
        Case {
            name: "finalizers merge as a set",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
            want: {
                let mut d = deployment();
                d["metadata"]["finalizers"] = json!(["a", "b", "c"]);
                d
            },
        },
        Case {
            name: "$deleteFromPrimitiveList removes a finalizer",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            want: {
                let mut d = deployment();
                d["metadata"]["finalizers"] = json!(["b"]);
                d
            },
        },
        Case {
            name: "kubectl apply removing a finalizer sends the deletion list and the order",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"metadata": {
                "$setElementOrder/finalizers": ["b", "c"],
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "finalizers": ["c"]
            }}),
            want: {
                let mut d = deployment();
                d["metadata"]["finalizers"] = json!(["b", "c"]);
                d
            },
        },
        Case {
            name: "kubectl rollout restart adds a template annotation",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"
            }}}}}),
            want: {
                let mut d = deployment();
                d["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"});
                d
            },
        },
        Case {
            name: "a list without merge metadata is replaced (tolerations)",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}}}}),
            want: deployment_with(|spec| {
                spec["tolerations"] = json!([{"key": "k2", "operator": "Exists"}])
            }),
        },
        Case {
            name: "null deletes a field",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"metadata": {"labels": {"app": null}}, "spec": {"strategy": null}}),
            want: {
                let mut d = deployment();
                d["metadata"]["labels"] = json!({});
                d["spec"].as_object_mut().unwrap().remove("strategy");
                d
            },
        },
        Case {
            name: "container ports merge by containerPort",
            kind: DEPLOYMENT,
            doc: deployment(),
            patch: json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}
            ]}}}}),
            want: deployment_with(|spec| {
                spec["containers"][0]["ports"] = json!([{"containerPort": 80, "name": "http"}])
            }),
        },
        Case {
            name: "the kubelet's status patch merges pod conditions by type and keeps their order",
            kind: POD,
            doc: json!({"status": {"conditions": [
                {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}
            ]}}),
            patch: json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            want: json!({"status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}
            ]}}),
        },
        Case {
            name: "service ports merge by port",
            kind: TypeRef::new("v1", "Service"),
            doc: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            want: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        },
        Case {
            name: "a merged list the object lacks is created, its directives resolved",
            kind: POD,
            doc: json!({"spec": {"containers": [{"name": "app"}]}}),
            patch: json!({"spec": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}]}}),
        },
        Case {
            name: "cron job templates are walked into (jobTemplate.spec.template.spec)",
            kind: TypeRef::new("batch/v1", "CronJob"),
            doc: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}
            ]}}}}}}),
            patch: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "b", "image": "b:2"}
            ]}}}}}}),
            want: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}
            ]}}}}}}),
        },
        Case {
            name: "kubectl apply switching a volume from emptyDir to configMap clears emptyDir ($retainKeys in an item)",
            kind: POD,
            doc: json!({"spec": {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}}),
            patch: json!({"spec": {
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "tmp"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "emptyDir": null, "name": "data"}]
            }}),
            want: json!({"spec": {"volumes": [{"name": "data", "configMap": {"name": "cfg"}}, {"name": "tmp", "emptyDir": {}}]}}),
        },
        Case {
            name: "the garbage collector's patch merges ownerReferences by uid",
            kind: TypeRef::new("apps/v1", "ReplicaSet"),
            doc: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "web", "blockOwnerDeletion": true}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "u1", "blockOwnerDeletion": false}]}}),
            want: json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "web", "blockOwnerDeletion": false}]}}),
        },
        Case {
            name: "$patch: delete in an object empties it, as Kubernetes does",
            kind: DEPLOYMENT,
            doc: json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 1}}),
            patch: json!({"spec": {"strategy": {"$patch": "delete"}}}),
            want: json!({"spec": {"strategy": {}, "replicas": 1}}),
        },
        Case {
            name: "a custom resource's lists are replaced, as merge patch would",
            kind: CRD,
            doc: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "b", "image": "x"}]}}),
            want: json!({"spec": {"containers": [{"name": "b", "image": "x"}]}}),
        },
    ];
    for case in cases {
        let got = strategic_merge_patch(&case.kind, &case.doc, &case.patch)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got, case.want, "{}", case.name);
        // The same through `apply`, from bytes, for every kind that accepts it.
        if case.kind.supports_strategic() {
            let body = serde_json::to_vec(&case.patch).unwrap();
            assert_eq!(
                apply(&case.kind, &case.doc, PatchType::Strategic, &body).unwrap(),
                case.want,
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn strategic_merge_patch_errors() {
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a list item without its merge key",
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            400,
            "has no \"name\", the key this list is merged by",
        ),
        (
            "$retainKeys not listing a field the patch sets",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {}}}}),
            400,
            "the patch sets \"rollingUpdate\" but $retainKeys",
        ),
        (
            "$setElementOrder contradicting the patch list",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}],
                "containers": [{"name": "web", "image": "x"}]
            }}}}),
            400,
            "does not match $setElementOrder/containers",
        ),
        (
            "an unknown $patch value",
            json!({"metadata": {"labels": {"$patch": "squash"}}}),
            400,
            "unknown $patch directive \"squash\"",
        ),
        (
            "an unknown directive",
            json!({"metadata": {"$frobnicate": true}}),
            400,
            "unknown directive \"$frobnicate\"",
        ),
        (
            "primitives into a list of objects",
            json!({"spec": {"template": {"spec": {"containers": ["web"]}}}}),
            422,
            "not all of one kind",
        ),
    ];
    for (name, patch, code, message) in cases {
        let err = strategic_merge_patch(&DEPLOYMENT, &deployment(), &patch).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(err.to_string().contains(message), "{name}: {err}");
    }
    let err = strategic_merge_patch(
        &DEPLOYMENT,
        &deployment(),
        &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid strategic merge patch at spec.template.spec.containers: the item {\"image\":\"x\"} has no \"name\", the key this list is merged by"
    );
}

#[test]
fn strategic_merge_patch_of_a_custom_resource_is_refused_with_415() {
    let err = apply(&CRD, &json!({}), PatchType::Strategic, b"{}").unwrap_err();
    assert_eq!(err.code(), 415);
    assert_eq!(
        err.to_string(),
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"
    );
    assert!(apply(&CRD, &json!({}), PatchType::Merge, b"{}").is_ok());
}

#[test]
fn merge_patch_cases() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "kubectl label key- sends null, which deletes the label",
            json!({"metadata": {"labels": {"app": "web", "tier": "front"}}}),
            json!({"metadata": {"labels": {"tier": null}}}),
            json!({"metadata": {"labels": {"app": "web"}}}),
        ),
        (
            "kubectl scale sets replicas and leaves the rest",
            json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}}),
            json!({"spec": {"replicas": 3}}),
            json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "lists are replaced whole, even a pod's containers",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "x"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "x"}]}}),
        ),
        (
            "an object replacing a scalar has its nulls dropped (RFC 7386)",
            json!({"spec": {"x": 1}}),
            json!({"spec": {"x": {"a": 1, "b": null}}}),
            json!({"spec": {"x": {"a": 1}}}),
        ),
    ];
    for (name, doc, patch, want) in cases {
        assert_eq!(merge_patch(&doc, &patch), want, "{name}");
        let body = serde_json::to_vec(&patch).unwrap();
        assert_eq!(
            apply(&POD, &doc, PatchType::Merge, &body).unwrap(),
            want,
            "{name}"
        );
    }
}

#[test]
fn merge_patch_bodies_must_be_objects() {
    let err = apply(&POD, &json!({}), PatchType::Merge, b"[1]").unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
    let err = apply(&POD, &json!({}), PatchType::Strategic, b"{not json").unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(
        err.to_string()
            .starts_with("invalid strategic merge patch: the body is not JSON"),
        "{err}"
    );
}

#[test]
fn json_patch_cases() {
    let doc = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1, "args": ["a", "b"]}});
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "kubectl patch --type json replace with a passing test",
            json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "replace", "path": "/spec/replicas", "value": 3}]),
            json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 3, "args": ["a", "b"]}}),
        ),
        (
            "add to the end of a list, and a label with an escaped slash",
            json!([{"op": "add", "path": "/spec/args/-", "value": "c"},
                   {"op": "add", "path": "/metadata/labels/sextant.dev~1wasm", "value": "true"}]),
            json!({"metadata": {"name": "web", "labels": {"app": "web", "sextant.dev/wasm": "true"}}, "spec": {"replicas": 1, "args": ["a", "b", "c"]}}),
        ),
        (
            "remove, move and copy",
            json!([{"op": "remove", "path": "/spec/args/0"},
                   {"op": "copy", "from": "/metadata/name", "path": "/spec/name"},
                   {"op": "move", "from": "/spec/replicas", "path": "/spec/count"}]),
            json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"args": ["b"], "name": "web", "count": 1}}),
        ),
    ];
    for (name, patch, want) in cases {
        assert_eq!(
            json_patch(&doc, &patch).unwrap_or_else(|e| panic!("{name}: {e}")),
            want,
            "{name}"
        );
        let body = serde_json::to_vec(&patch).unwrap();
        assert_eq!(
            apply(&POD, &doc, PatchType::Json, &body).unwrap(),
            want,
            "{name}"
        );
    }
}

#[test]
fn json_patch_errors_name_the_operation_and_why() {
    let doc = json!({"spec": {"replicas": 2}});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a failing test, after an operation that applied",
            json!([{"op": "replace", "path": "/spec/replicas", "value": 5}, {"op": "test", "path": "/spec/replicas", "value": 1}]),
            422,
            "JSON patch operation [1] (test /spec/replicas) failed: the value at /spec/replicas is 5, not 1",
        ),
        (
            "removing what is not there",
            json!([{"op": "remove", "path": "/spec/paused"}]),
            422,
            "JSON patch operation [0] (remove /spec/paused) failed: there is no value at /spec/paused",
        ),
        (
            "adding under a missing parent",
            json!([{"op": "add", "path": "/status/phase", "value": "Running"}]),
            422,
            "JSON patch operation [0] (add /status/phase) failed: cannot add at /status/phase",
        ),
        (
            "an unknown op",
            json!([{"op": "frobnicate", "path": "/spec"}]),
            400,
            "invalid JSON patch: operation [0]: unknown variant `frobnicate`",
        ),
        (
            "an object instead of a list",
            json!({"op": "add"}),
            400,
            "must be a JSON array of operations",
        ),
    ];
    for (name, patch, code, message) in cases {
        let err = json_patch(&doc, &patch).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        assert!(err.to_string().contains(message), "{name}: {err}");
    }
}

#[test]
fn json_patch_operation_count_is_bounded() {
    let op = json!({"op": "test", "path": "", "value": {}});
    let patch = Value::Array(vec![op; MAX_JSON_PATCH_OPERATIONS + 1]);
    let err = json_patch(&json!({}), &patch).unwrap_err();
    assert_eq!(err.code(), 413);
    assert_eq!(err.reason(), "RequestEntityTooLarge");
}

#[test]
fn json_patch_that_replaces_the_object_with_a_non_object_is_refused() {
    let err = apply(
        &POD,
        &json!({}),
        PatchType::Json,
        br#"[{"op": "replace", "path": "", "value": 3}]"#,
    )
    .unwrap_err();
    assert_eq!(err.code(), 422);
    assert_eq!(
        err.to_string(),
        "the patched object must be a JSON object, but the JSON patch made it a number"
    );
}

#[test]
fn content_types() {
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json"),
        Ok(PatchType::Strategic)
    );
    assert_eq!(
        PatchType::from_content_type("Application/Merge-Patch+JSON; charset=utf-8"),
        Ok(PatchType::Merge)
    );
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Ok(PatchType::Json)
    );

    let err = PatchType::from_content_type("application/json").unwrap_err();
    assert_eq!(err.code(), 415);
    assert_eq!(
        err.to_string(),
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
    );
    let err = PatchType::from_content_type("application/apply-patch+yaml").unwrap_err();
    assert_eq!(err, PatchError::ServerSideApply);
    assert_eq!(err.code(), 415);

    assert_eq!(PatchType::accepted_for(&DEPLOYMENT).len(), 3);
    assert_eq!(
        PatchType::accepted_for(&CRD),
        [
            "application/json-patch+json",
            "application/merge-patch+json"
        ]
    );
}

#[test]
fn type_ref_reads_the_object() {
    let d = deployment();
    assert_eq!(TypeRef::of(&d), Some(DEPLOYMENT));
    assert_eq!(TypeRef::of(&json!({"kind": "Pod"})), None);
}
