use serde_json::{Value, json};

use super::*;

const DEPLOYMENT: TypeRef<'static> = TypeRef::new("apps/v1", "Deployment");

/// The manifest of `kubectl create deployment web --image nginx:1.25 --replicas 3`.
fn config(image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        }
    })
}

fn with(mut value: Value, f: impl FnOnce(&mut Value)) -> Value {
    f(&mut value);
    value
}

fn containers(object: &Value) -> &Vec<Value> {
    object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .expect("containers")
}

/// Each entry of `managedFields` as (manager, operation, fieldsV1 as Kubernetes writes it).
fn managers(object: &Value) -> Vec<(String, String, String)> {
    let Some(entries) = object.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    entries
        .as_array()
        .expect("managedFields is a list")
        .iter()
        .map(|e| {
            let set = FieldSet::from_fields_v1(&e["fieldsV1"]).expect("fieldsV1 reads back");
            (
                e["manager"].as_str().unwrap().to_string(),
                e["operation"].as_str().unwrap().to_string(),
                set.to_fields_v1_string(),
            )
        })
        .collect()
}

fn owners_of(object: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in object["metadata"]["managedFields"].as_array().unwrap() {
        let set = FieldSet::from_fields_v1(&e["fieldsV1"]).unwrap();
        if set.paths().iter().any(|p| p.to_string() == path) {
            out.push(e["manager"].as_str().unwrap().to_string());
        }
    }
    out
}

/// The fields `kubectl apply --server-side` of [`config`] owns, as Kubernetes 1.33 stores them.
const APPLIED_FIELDS: &str = r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#;

enum Step {
    Apply {
        manager: &'static str,
        config: Value,
        force: bool,
    },
    /// An ordinary update by `manager` that changes the stored object with `edit`.
    Update {
        manager: &'static str,
        edit: fn(&mut Value),
    },
}

fn apply_step(manager: &'static str, config: Value) -> Step {
    Step::Apply {
        manager,
        config,
        force: false,
    }
}

fn force_step(manager: &'static str, config: Value) -> Step {
    Step::Apply {
        manager,
        config,
        force: true,
    }
}

/// Runs the steps on a fresh object, each at its own second; every step but the last
/// must succeed, and the last one's outcome is returned with the object before it.
fn run(steps: Vec<Step>) -> (Option<Value>, Result<Value, ApplyError>) {
    let mut live: Option<Value> = None;
    let count = steps.len();
    for (i, step) in steps.into_iter().enumerate() {
        let now = format!("2026-11-23T10:00:{i:02}Z");
        let outcome = match step {
            Step::Apply {
                manager,
                config,
                force,
            } => apply(live.as_ref(), &config, manager, force, &DEPLOYMENT, &now),
            Step::Update { manager, edit } => {
                let old = live.clone().expect("an update needs an object");
                let new = with(old.clone(), edit);
                Ok(record_update(Some(&old), &new, manager, &DEPLOYMENT, &now))
            }
        };
        if i + 1 == count {
            return (live, outcome);
        }
        live = Some(outcome.unwrap_or_else(|e| panic!("step {i} failed: {e}")));
    }
    unreachable!("no steps")
}

fn scale_to(n: i64) -> fn(&mut Value) {
    match n {
        5 => |o| o["spec"]["replicas"] = json!(5),
        _ => |o| o["spec"]["replicas"] = json!(1),
    }
}

#[test]
fn server_side_apply_cases() {
    type Check = fn(&Option<Value>, Result<Value, ApplyError>);
    let cases: Vec<(&str, Vec<Step>, Check)> = vec![
        (
            "first kubectl apply --server-side creates the object and owns what it set",
            vec![apply_step("kubectl", config("nginx:1.25", 3))],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(out["spec"]["replicas"], 3);
                assert_eq!(
                    out["metadata"]["managedFields"],
                    json!([{
                        "manager": "kubectl",
                        "operation": "Apply",
                        "apiVersion": "apps/v1",
                        "time": "2026-11-23T10:00:00Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": serde_json::from_str::<Value>(APPLIED_FIELDS).unwrap(),
                    }])
                );
            },
        ),
        (
            "re-apply with a changed image updates it and keeps ownership",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                apply_step("kubectl", config("nginx:1.26", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(containers(&out)[0]["image"], "nginx:1.26");
                assert_eq!(
                    managers(&out),
                    [("kubectl".into(), "Apply".into(), APPLIED_FIELDS.into())]
                );
                assert_eq!(
                    out["metadata"]["managedFields"][0]["time"],
                    "2026-11-23T10:00:01Z"
                );
            },
        ),
        (
            "re-apply of the same configuration changes nothing, time included",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |live, out| assert_eq!(live.as_ref().unwrap(), &out.unwrap()),
        ),
        (
            "a label removed from the applied configuration is deleted",
            vec![
                apply_step(
                    "kubectl",
                    with(config("nginx:1.25", 3), |c| {
                        c["metadata"]["labels"]["tier"] = json!("frontend")
                    }),
                ),
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
                assert_eq!(managers(&out)[0].2, APPLIED_FIELDS);
            },
        ),
        (
            "a removed field that another applier also sets stays",
            vec![
                apply_step(
                    "helm",
                    with(config("nginx:1.25", 3), |c| {
                        c["metadata"]["labels"]["tier"] = json!("frontend")
                    }),
                ),
                apply_step(
                    "kubectl",
                    with(config("nginx:1.25", 3), |c| {
                        c["metadata"]["labels"]["tier"] = json!("frontend")
                    }),
                ),
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(out["metadata"]["labels"]["tier"], "frontend");
                assert_eq!(owners_of(&out, ".metadata.labels.tier"), ["helm"]);
            },
        ),
        (
            "kubectl scale then an apply with other replicas is a conflict naming both",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-scale",
                    edit: scale_to(5),
                },
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let err = out.unwrap_err();
                assert_eq!(
                    err,
                    ApplyError::Conflict {
                        conflicts: vec![(
                            r#""kubectl-scale" using apps/v1"#.into(),
                            ".spec.replicas".into()
                        )]
                    }
                );
                assert_eq!(
                    err.to_string(),
                    "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas\n\
                     use --force-conflicts to take these fields, or remove them from your configuration"
                );
                assert_eq!(err.code(), 409);
                assert_eq!(
                    err.causes(),
                    [(
                        "FieldManagerConflict",
                        r#"conflict with "kubectl-scale" using apps/v1"#.to_string(),
                        ".spec.replicas".to_string()
                    )]
                );
            },
        ),
        (
            "the same apply with --force-conflicts takes replicas from kubectl-scale",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-scale",
                    edit: scale_to(5),
                },
                force_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(out["spec"]["replicas"], 3);
                // kubectl-scale owned nothing else, so its entry is gone.
                assert_eq!(
                    managers(&out),
                    [("kubectl".into(), "Apply".into(), APPLIED_FIELDS.into())]
                );
            },
        ),
        (
            "applying the value another manager set is no conflict: both own it",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-scale",
                    edit: scale_to(5),
                },
                apply_step("kubectl", config("nginx:1.25", 5)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(out["spec"]["replicas"], 5);
                assert_eq!(
                    owners_of(&out, ".spec.replicas"),
                    ["kubectl", "kubectl-scale"]
                );
            },
        ),
        (
            "containers merge by name: a sidecar someone else added stays",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "sidecar-injector",
                    edit: |o| {
                        o["spec"]["template"]["spec"]["containers"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"name": "sidecar", "image": "envoy:1.30"}))
                    },
                },
                apply_step("kubectl", config("nginx:1.26", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(
                    *containers(&out),
                    [
                        json!({"name": "web", "image": "nginx:1.26"}),
                        json!({"name": "sidecar", "image": "envoy:1.30"})
                    ]
                );
                assert_eq!(
                    managers(&out),
                    [
                        ("kubectl".into(), "Apply".into(), APPLIED_FIELDS.into()),
                        (
                            "sidecar-injector".into(),
                            "Update".into(),
                            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#.into()
                        )
                    ]
                );
            },
        ),
        (
            "a container dropped from the configuration is deleted",
            vec![
                apply_step(
                    "kubectl",
                    with(config("nginx:1.25", 3), |c| {
                        c["spec"]["template"]["spec"]["containers"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"name": "worker", "image": "worker:1"}))
                    }),
                ),
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(
                    *containers(&out),
                    [json!({"name": "web", "image": "nginx:1.25"})]
                );
                assert_eq!(managers(&out)[0].2, APPLIED_FIELDS);
            },
        ),
        (
            "a dropped container stays while another manager owns a field of it",
            vec![
                apply_step(
                    "kubectl",
                    with(config("nginx:1.25", 3), |c| {
                        c["spec"]["template"]["spec"]["containers"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!({"name": "worker", "image": "worker:1", "args": ["-v"]}))
                    }),
                ),
                Step::Update {
                    manager: "kubectl-set",
                    edit: |o| {
                        o["spec"]["template"]["spec"]["containers"][1]["image"] = json!("worker:2")
                    },
                },
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(
                    *containers(&out),
                    [
                        json!({"name": "web", "image": "nginx:1.25"}),
                        json!({"name": "worker", "image": "worker:2"})
                    ]
                );
            },
        ),
        (
            "null in the configuration removes a value, a change its owner is asked about",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-scale",
                    edit: scale_to(5),
                },
                force_step(
                    "kubectl",
                    with(config("nginx:1.25", 3), |c| {
                        c["spec"]["replicas"] = Value::Null
                    }),
                ),
            ],
            |live, out| {
                let err = apply(
                    live.as_ref(),
                    &with(config("nginx:1.25", 3), |c| {
                        c["spec"]["replicas"] = Value::Null
                    }),
                    "kubectl",
                    false,
                    &DEPLOYMENT,
                    "t",
                )
                .unwrap_err();
                assert!(err.to_string().contains(".spec.replicas"), "{err}");
                let out = out.unwrap();
                assert_eq!(out["spec"].get("replicas"), None);
                assert_eq!(owners_of(&out, ".spec.replicas"), ["kubectl"]);
            },
        ),
        (
            "kubectl set image then an apply with another image conflicts on that container",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-set",
                    edit: |o| {
                        o["spec"]["template"]["spec"]["containers"][0]["image"] =
                            json!("nginx:1.27")
                    },
                },
                apply_step("kubectl", config("nginx:1.26", 3)),
            ],
            |_, out| match out.unwrap_err() {
                ApplyError::Conflict { conflicts } => assert_eq!(
                    conflicts,
                    [(
                        r#""kubectl-set" using apps/v1"#.to_string(),
                        r#".spec.template.spec.containers[name="web"].image"#.to_string()
                    )]
                ),
                other => panic!("expected a conflict, got {other}"),
            },
        ),
        (
            "conflicts with several managers are listed by manager",
            vec![
                apply_step("kubectl", config("nginx:1.25", 3)),
                Step::Update {
                    manager: "kubectl-scale",
                    edit: scale_to(5),
                },
                Step::Update {
                    manager: "kubectl-set",
                    edit: |o| {
                        o["spec"]["template"]["spec"]["containers"][0]["image"] =
                            json!("nginx:1.27")
                    },
                },
                apply_step("argocd", config("nginx:1.26", 2)),
            ],
            |_, out| {
                assert_eq!(
                    out.unwrap_err().to_string(),
                    "Apply failed with 2 conflicts: conflicts with \"kubectl-scale\" using apps/v1:\n\
                     - .spec.replicas\n\
                     conflicts with \"kubectl-set\" using apps/v1:\n\
                     - .spec.template.spec.containers[name=\"web\"].image\n\
                     use --force-conflicts to take these fields, or remove them from your configuration"
                );
            },
        ),
        (
            "an object never tracked belongs to before-first-apply",
            vec![Step::Apply {
                manager: "kubectl",
                config: config("nginx:1.25", 1),
                force: false,
            }],
            |_, _| {
                let untracked = with(config("nginx:1.25", 1), |o| {
                    o["metadata"]["uid"] = json!("1234")
                });
                let err = apply(
                    Some(&untracked),
                    &config("nginx:1.25", 3),
                    "kubectl",
                    false,
                    &DEPLOYMENT,
                    "2026-11-23T10:00:00Z",
                )
                .unwrap_err();
                assert!(
                    err.to_string().starts_with(
                        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
                    ),
                    "{err}"
                );
            },
        ),
        (
            "finalizers are a set: each manager owns its own",
            vec![
                Step::Apply {
                    manager: "kubectl",
                    config: with(config("nginx:1.25", 3), |c| {
                        c["metadata"]["finalizers"] = json!(["example.com/mine"])
                    }),
                    force: false,
                },
                Step::Update {
                    manager: "backup-operator",
                    edit: |o| {
                        o["metadata"]["finalizers"]
                            .as_array_mut()
                            .unwrap()
                            .push(json!("backup.example.com/protect"))
                    },
                },
                apply_step("kubectl", config("nginx:1.25", 3)),
            ],
            |_, out| {
                let out = out.unwrap();
                assert_eq!(
                    out["metadata"]["finalizers"],
                    json!(["backup.example.com/protect"])
                );
                assert_eq!(
                    managers(&out)[1],
                    (
                        "backup-operator".into(),
                        "Update".into(),
                        r#"{"f:metadata":{"f:finalizers":{"v:\"backup.example.com/protect\"":{}}}}"#.into()
                    )
                );
            },
        ),
    ];
    for (name, steps, check) in cases {
        let (live, out) = run(steps);
        eprintln!("case: {name}");
        check(&live, out);
    }
}

#[test]
fn invalid_apply_configurations_say_what_to_fix() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("not an object", json!(["a"]), "not an array"),
        (
            "no apiVersion",
            with(config("nginx", 1), |c| {
                c.as_object_mut().unwrap().remove("apiVersion");
            }),
            "add `apiVersion: apps/v1`",
        ),
        (
            "another version",
            with(config("nginx", 1), |c| {
                c["apiVersion"] = json!("apps/v1beta2")
            }),
            "Specified patch version: apps/v1beta2, expected: apps/v1",
        ),
        (
            "no kind",
            with(config("nginx", 1), |c| {
                c.as_object_mut().unwrap().remove("kind");
            }),
            "add `kind: Deployment`",
        ),
        (
            "no name",
            with(config("nginx", 1), |c| {
                c["metadata"].as_object_mut().unwrap().remove("name");
            }),
            "metadata.name must be set",
        ),
        (
            "a container without a name",
            with(config("nginx", 1), |c| {
                c["spec"]["template"]["spec"]["containers"] = json!([{"image": "nginx"}])
            }),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\"",
        ),
        (
            "two containers with one name",
            with(config("nginx", 1), |c| {
                c["spec"]["template"]["spec"]["containers"] =
                    json!([{"name": "web"}, {"name": "web"}])
            }),
            ".spec.template.spec.containers: duplicate entries for [name=\"web\"]",
        ),
    ];
    for (name, applied, want) in cases {
        let err = apply(None, &applied, "kubectl", false, &DEPLOYMENT, "t").unwrap_err();
        assert!(
            matches!(err, ApplyError::InvalidApply { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(err.code(), 400, "{name}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
}

#[test]
fn fields_v1_round_trips_the_strings_kubernetes_stores() {
    let cases = [
        // kubectl apply --server-side of a Deployment with a port.
        r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#,
        // kubectl create deployment (operation Update).
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#,
        // kube-controller-manager on the status subresource.
        r#"{"f:metadata":{"f:annotations":{".":{},"f:deployment.kubernetes.io/revision":{}}},"f:status":{"f:availableReplicas":{},"f:conditions":{".":{},"k:{\"type\":\"Available\"}":{".":{},"f:lastTransitionTime":{},"f:lastUpdateTime":{},"f:message":{},"f:reason":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Progressing\"}":{".":{},"f:lastTransitionTime":{},"f:lastUpdateTime":{},"f:message":{},"f:reason":{},"f:status":{},"f:type":{}}},"f:observedGeneration":{},"f:readyReplicas":{},"f:replicas":{},"f:updatedReplicas":{}}}"#,
        // A finalizer, and ports in numeric order.
        r#"{"f:metadata":{"f:finalizers":{".":{},"v:\"example.com/protect\"":{}}},"f:spec":{"f:ports":{"k:{\"port\":80}":{},"k:{\"port\":8080}":{}}}}"#,
    ];
    for text in cases {
        let value: Value = serde_json::from_str(text).unwrap();
        let set = FieldSet::from_fields_v1(&value).unwrap();
        assert_eq!(set.to_fields_v1_string(), text);
        assert_eq!(set.to_fields_v1(), value);
    }
}

#[test]
fn fields_of_an_applied_deployment_match_kubernetes() {
    let set = fields_of(&config("nginx:1.25", 3), &DEPLOYMENT).unwrap();
    assert_eq!(set.to_fields_v1_string(), APPLIED_FIELDS);
    let paths: Vec<String> = set.leaves().paths().iter().map(Path::to_string).collect();
    assert_eq!(
        paths,
        [
            ".metadata.labels.app",
            ".spec.replicas",
            ".spec.selector",
            ".spec.template.metadata.labels.app",
            r#".spec.template.spec.containers[name="web"].image"#,
            r#".spec.template.spec.containers[name="web"].name"#,
        ]
    );
    // status and server metadata are never owned through apply.
    let noisy = with(config("nginx:1.25", 3), |c| {
        c["status"] = json!({"replicas": 3});
        c["metadata"]["resourceVersion"] = json!("12");
        c["metadata"]["managedFields"] = json!([]);
    });
    assert_eq!(fields_of(&noisy, &DEPLOYMENT).unwrap(), set);
}

#[test]
fn set_algebra() {
    let read = |text: &str| FieldSet::from_fields_v1(&serde_json::from_str(text).unwrap()).unwrap();
    let a = read(r#"{"f:spec":{"f:replicas":{},"f:paused":{}}}"#);
    let b = read(r#"{"f:spec":{"f:replicas":{},"f:minReadySeconds":{}}}"#);
    let cases = [
        (
            a.union(&b),
            r#"{"f:spec":{"f:minReadySeconds":{},"f:paused":{},"f:replicas":{}}}"#,
        ),
        (a.intersection(&b), r#"{"f:spec":{"f:replicas":{}}}"#),
        (a.difference(&b), r#"{"f:spec":{"f:paused":{}}}"#),
        (a.difference(&a), "{}"),
        (
            read(r#"{"f:c":{"k:{\"name\":\"a\"}":{".":{},"f:image":{}}}}"#).leaves(),
            r#"{"f:c":{"k:{\"name\":\"a\"}":{"f:image":{}}}}"#,
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got.to_fields_v1_string(), want);
    }
    assert!(a.difference(&a).is_empty());
    assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
    assert!(FieldSet::from_fields_v1(&json!({"f:y": 1})).is_err());
}

#[test]
fn record_update_cases() {
    let created = record_update(
        None,
        &config("nginx:1.25", 3),
        "kubectl-create",
        &DEPLOYMENT,
        "t0",
    );
    let unchanged = record_update(Some(&created), &created, "kubectl-edit", &DEPLOYMENT, "t1");
    let scaled = record_update(
        Some(&created),
        &with(created.clone(), |o| o["spec"]["replicas"] = json!(5)),
        "kubectl-scale",
        &DEPLOYMENT,
        "t2",
    );
    let reset = record_update(
        Some(&created),
        &with(created.clone(), |o| {
            o["metadata"]["managedFields"] = json!([])
        }),
        "kubectl-replace",
        &DEPLOYMENT,
        "t3",
    );
    let untracked = record_update(
        Some(&config("nginx:1.25", 3)),
        &config("nginx:1.26", 3),
        "kubectl-edit",
        &DEPLOYMENT,
        "t4",
    );
    let crd = TypeRef::new("example.com/v1", "Widget");
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w"}, "spec": {"items": [{"a": 1}]}});
    let custom = record_update(None, &widget, "kubectl-create", &crd, "t5");

    type Want<'a> = Vec<(&'a str, &'a str, &'a str)>;
    let cases: Vec<(&str, &Value, Want)> = vec![
        (
            "create: the creator owns every value",
            &created,
            vec![("kubectl-create", "Update", APPLIED_FIELDS)],
        ),
        (
            "an update that changes nothing gives nothing",
            &unchanged,
            vec![("kubectl-create", "Update", APPLIED_FIELDS)],
        ),
        (
            "kubectl scale takes replicas",
            &scaled,
            vec![
                (
                    "kubectl-create",
                    "Update",
                    r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#,
                ),
                ("kubectl-scale", "Update", r#"{"f:spec":{"f:replicas":{}}}"#),
            ],
        ),
        ("managedFields: [] clears them", &reset, vec![]),
        ("an untracked object stays untracked", &untracked, vec![]),
        (
            "lists of a custom resource are atomic",
            &custom,
            vec![("kubectl-create", "Update", r#"{"f:spec":{"f:items":{}}}"#)],
        ),
    ];
    for (name, object, want) in cases {
        let got = managers(object);
        let got: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|(m, o, f)| (m.as_str(), o.as_str(), f.as_str()))
            .collect();
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(unchanged["metadata"]["managedFields"][0]["time"], "t0");
    assert_eq!(
        untracked["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
}
