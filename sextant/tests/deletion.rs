//! Deleting things, end to end with kubectl: the garbage collector carries out each
//! `--cascade` (background, foreground, orphan) through ownerReferences, across kinds and
//! custom resources; deleting a namespace empties it, then removes it.
//!
//! The objects are plain ConfigMaps (and a custom resource) with hand-written
//! ownerReferences, so what is tested is the collector alone, not the workload controllers.

mod support;

use support::agent::{Agent, SimNode};
use support::{Server, eventually};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
"#;

/// A finalizer nobody removes but the test: it holds an object in place.
const HOLD: &str = "example.com/hold";

/// An owner reference: (apiVersion, kind, name, uid, blockOwnerDeletion).
type Owner<'a> = (&'a str, &'a str, &'a str, &'a str, bool);

fn configmap(ns: &str, name: &str, owners: &[Owner], finalizers: &[&str]) -> String {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .map(|(api_version, kind, owner, uid, block)| {
            serde_json::json!({"apiVersion": api_version, "kind": kind, "name": owner,
                "uid": uid, "blockOwnerDeletion": block})
        })
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": refs, "finalizers": finalizers},
        "data": {"k": "v"}})
    .to_string()
}

fn create(s: &Server, manifest: &str) {
    s.ok_stdin(&["create", "-f", "-"], manifest);
}

/// `kubectl get -o jsonpath=...` of one object (`ns` empty for a cluster-scoped one);
/// `None` when it does not exist.
fn field(s: &Server, ns: &str, what: &str, path: &str) -> Option<String> {
    let jsonpath = format!("jsonpath={path}");
    let mut args = vec!["get", what, "-o", &jsonpath];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let out = s.kubectl(&args);
    if out.status.success() {
        return Some(String::from_utf8(out.stdout).unwrap());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NotFound"), "kubectl get {what} failed: {err}");
    None
}

fn uid(s: &Server, ns: &str, what: &str) -> String {
    field(s, ns, what, "{.metadata.uid}").unwrap_or_else(|| panic!("{what} exists"))
}

fn gone(s: &Server, ns: &str, what: &str) {
    eventually(20, &format!("{what} to be deleted"), || {
        field(s, ns, what, "{.metadata.name}")
            .is_none()
            .then_some(())
    });
}

/// The uids an object's ownerReferences name, space separated.
fn owner_uids(s: &Server, ns: &str, what: &str) -> Option<String> {
    field(s, ns, what, "{.metadata.ownerReferences[*].uid}")
}

fn event_reasons(s: &Server, ns: &str, name: &str) -> String {
    s.ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={.items[*].reason}",
    ])
}

#[test]
fn background_delete_collects_dependents_level_by_level_and_across_kinds() {
    let s = Server::start(&[]);
    create(&s, &configmap("default", "owner", &[], &[]));
    create(&s, &configmap("default", "keeper", &[], &[]));
    let owner = uid(&s, "default", "cm/owner");
    let keeper = uid(&s, "default", "cm/keeper");
    create(
        &s,
        &configmap(
            "default",
            "child",
            &[("v1", "ConfigMap", "owner", &owner, true)],
            &[],
        ),
    );
    let child = uid(&s, "default", "cm/child");
    create(
        &s,
        &configmap(
            "default",
            "grandchild",
            &[("v1", "ConfigMap", "child", &child, false)],
            &[],
        ),
    );
    create(
        &s,
        &configmap(
            "default",
            "shared",
            &[
                ("v1", "ConfigMap", "owner", &owner, false),
                ("v1", "ConfigMap", "keeper", &keeper, false),
            ],
            &[],
        ),
    );
    // An owner that never existed: the dependent is garbage from the start.
    create(
        &s,
        &configmap(
            "default",
            "stray",
            &[(
                "v1",
                "ConfigMap",
                "ghost",
                "00000000-0000-0000-0000-00000000dead",
                false,
            )],
            &[],
        ),
    );

    s.ok(&["delete", "configmap", "owner"]);
    gone(&s, "default", "cm/child");
    gone(&s, "default", "cm/grandchild");
    gone(&s, "default", "cm/stray");
    // An object with another owner still alive stays, minus the reference to the dead one.
    eventually(20, "shared to lose its reference to owner", || {
        (owner_uids(&s, "default", "cm/shared")? == keeper).then_some(())
    });
    assert!(event_reasons(&s, "default", "child").contains("SuccessfulDelete"));

    // A custom resource owns a ConfigMap: the collector watches custom resources too,
    // including those defined after it started.
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    create(
        &s,
        "{\"apiVersion\": \"stable.example.com/v1\", \"kind\": \"CronTab\", \
         \"metadata\": {\"name\": \"nightly\", \"namespace\": \"default\"}, \
         \"spec\": {\"cronSpec\": \"0 3 * * *\"}}",
    );
    let cron = uid(&s, "default", "crontab/nightly");
    create(
        &s,
        &configmap(
            "default",
            "nightly-config",
            &[("stable.example.com/v1", "CronTab", "nightly", &cron, true)],
            &[],
        ),
    );
    s.ok(&["delete", "crontab", "nightly"]);
    gone(&s, "default", "cm/nightly-config");

    // A cluster-scoped owner (a Namespace) of a namespaced dependent.
    s.ok(&["create", "namespace", "scratch"]);
    let scratch = uid(&s, "", "namespace/scratch");
    create(
        &s,
        &configmap(
            "default",
            "scratch-notes",
            &[("v1", "Namespace", "scratch", &scratch, false)],
            &[],
        ),
    );
    s.ok(&["delete", "namespace", "scratch", "--timeout=30s"]);
    gone(&s, "default", "cm/scratch-notes");

    // A cluster-scoped object cannot be owned by a namespaced one: such a reference is
    // left alone, with a warning.
    create(&s, &configmap("default", "ns-owner", &[], &[]));
    let ns_owner = uid(&s, "default", "cm/ns-owner");
    create(
        &s,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "odd", "ownerReferences": [{"apiVersion": "v1",
                "kind": "ConfigMap", "name": "ns-owner", "uid": ns_owner}]}})
        .to_string(),
    );
    s.ok(&["delete", "configmap", "ns-owner"]);
    eventually(
        10,
        "an OwnerRefInvalidNamespace warning about namespace odd",
        || {
            event_reasons(&s, "default", "odd")
                .contains("OwnerRefInvalidNamespace")
                .then_some(())
        },
    );
    assert_eq!(
        field(&s, "", "namespace/odd", "{.status.phase}").as_deref(),
        Some("Active")
    );

    // Owners live in their dependents' namespace: a reference across namespaces names
    // nothing, and the collector says so.
    s.ok(&["create", "namespace", "elsewhere"]);
    create(&s, &configmap("elsewhere", "far-owner", &[], &[]));
    let far = uid(&s, "elsewhere", "cm/far-owner");
    create(
        &s,
        &configmap(
            "default",
            "cross",
            &[("v1", "ConfigMap", "far-owner", &far, false)],
            &[],
        ),
    );
    gone(&s, "default", "cm/cross");
    assert!(field(&s, "elsewhere", "cm/far-owner", "{.metadata.name}").is_some());
    eventually(10, "an OwnerRefInvalidNamespace warning", || {
        event_reasons(&s, "default", "cross")
            .contains("OwnerRefInvalidNamespace")
            .then_some(())
    });
}

#[test]
fn foreground_delete_keeps_the_owner_until_its_blocking_dependents_are_gone() {
    let s = Server::start(&[]);
    create(&s, &configmap("default", "owner", &[], &[]));
    let owner = uid(&s, "default", "cm/owner");
    // child blocks its owner and is held by a finalizer; it has a dependent of its own.
    create(
        &s,
        &configmap(
            "default",
            "child",
            &[("v1", "ConfigMap", "owner", &owner, true)],
            &[HOLD],
        ),
    );
    let child = uid(&s, "default", "cm/child");
    create(
        &s,
        &configmap(
            "default",
            "grandchild",
            &[("v1", "ConfigMap", "child", &child, true)],
            &[],
        ),
    );
    create(
        &s,
        &configmap(
            "default",
            "loose",
            &[("v1", "ConfigMap", "owner", &owner, false)],
            &[],
        ),
    );

    s.ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let finalizers = field(&s, "default", "cm/owner", "{.metadata.finalizers}").unwrap();
    assert!(finalizers.contains("foregroundDeletion"), "{finalizers}");

    // Every dependent is deleted; child, which has a dependent, in the foreground as well,
    // so grandchild goes first; then child keeps only the finalizer nobody removes.
    gone(&s, "default", "cm/loose");
    gone(&s, "default", "cm/grandchild");
    eventually(20, "child to finish its own foreground deletion", || {
        let f = field(&s, "default", "cm/child", "{.metadata.finalizers}")?;
        (f == format!("[\"{HOLD}\"]")).then_some(())
    });
    assert!(
        field(&s, "default", "cm/child", "{.metadata.deletionTimestamp}")
            .is_some_and(|t| !t.is_empty())
    );
    // The owner waits for child, which blocks it.
    let still = field(&s, "default", "cm/owner", "{.metadata.finalizers}");
    assert!(
        still
            .as_deref()
            .is_some_and(|f| f.contains("foregroundDeletion")),
        "the owner went before its blocking dependent: {still:?}"
    );

    s.ok(&[
        "patch",
        "configmap",
        "child",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
    ]);
    gone(&s, "default", "cm/child");
    gone(&s, "default", "cm/owner");
}

#[test]
fn orphan_delete_keeps_dependents_and_removes_their_references() {
    let s = Server::start(&[]);
    create(&s, &configmap("default", "owner", &[], &[]));
    create(&s, &configmap("default", "keeper", &[], &[]));
    let owner = uid(&s, "default", "cm/owner");
    let keeper = uid(&s, "default", "cm/keeper");
    create(
        &s,
        &configmap(
            "default",
            "only",
            &[("v1", "ConfigMap", "owner", &owner, true)],
            &[],
        ),
    );
    create(
        &s,
        &configmap(
            "default",
            "both",
            &[
                ("v1", "ConfigMap", "owner", &owner, true),
                ("v1", "ConfigMap", "keeper", &keeper, true),
            ],
            &[],
        ),
    );

    // kubectl waits until the owner is gone, which is after the references are removed.
    s.ok(&[
        "delete",
        "configmap",
        "owner",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    assert_eq!(field(&s, "default", "cm/owner", "{.metadata.name}"), None);
    assert_eq!(owner_uids(&s, "default", "cm/only").as_deref(), Some(""));
    assert_eq!(
        owner_uids(&s, "default", "cm/both").as_deref(),
        Some(keeper.as_str())
    );
    // And they stay: nothing collects an orphan.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(field(&s, "default", "cm/only", "{.metadata.name}").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let s = Server::start(&[]);
    let agent = Agent::start(support::client(&s).await, vec![SimNode::new("n1")]).await;
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    s.ok(&["create", "namespace", "doomed"]);
    s.ok(&[
        "create",
        "-n",
        "doomed",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ]);
    s.ok(&[
        "create",
        "-n",
        "doomed",
        "secret",
        "generic",
        "token",
        "--from-literal=t=x",
    ]);
    create(&s, &configmap("doomed", "held", &[], &[HOLD]));
    create(
        &s,
        "{\"apiVersion\": \"stable.example.com/v1\", \"kind\": \"CronTab\", \
         \"metadata\": {\"name\": \"nightly\", \"namespace\": \"doomed\"}, \
         \"spec\": {\"cronSpec\": \"0 3 * * *\"}}",
    );
    // A pod bound to a node: deleted gracefully, it goes when its node agent stops it.
    create(
        &s,
        "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \
         \"metadata\": {\"name\": \"worker\", \"namespace\": \"doomed\"}, \
         \"spec\": {\"nodeName\": \"n1\", \"containers\": [{\"name\": \"main\", \"image\": \"busybox:1.36\"}]}}",
    );
    eventually(20, "the pod to run", || {
        (field(&s, "doomed", "pod/worker", "{.status.phase}")? == "Running").then_some(())
    });

    s.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    // Everything goes but the object held by a finalizer, and the conditions say so.
    eventually(
        20,
        "the namespace to be emptied but for the held object",
        || {
            let left = s.ok(&[
                "get",
                "-n",
                "doomed",
                "configmaps,secrets,pods,crontabs",
                "-o",
                "name",
            ]);
            (left.trim() == "configmap/held").then_some(())
        },
    );
    let conditions = eventually(
        20,
        "the namespace's conditions to name what remains",
        || {
            let c = field(
                &s,
                "",
                "namespace/doomed",
                "{range .status.conditions[?(@.status==\"True\")]}{.type}: {.message}{\"\\n\"}{end}",
            )?;
            c.contains(HOLD).then_some(c)
        },
    );
    assert!(
        conditions.contains(
            "NamespaceContentRemaining: Some resources are remaining: configmaps. has 1 resource instances"
        ),
        "{conditions}"
    );
    assert!(
        conditions.contains(&format!(
            "NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances"
        )),
        "{conditions}"
    );
    assert_eq!(
        field(&s, "", "namespace/doomed", "{.status.phase}").as_deref(),
        Some("Terminating")
    );

    s.ok(&[
        "patch",
        "-n",
        "doomed",
        "configmap",
        "held",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/metadata/finalizers"}]"#,
    ]);
    gone(&s, "", "namespace/doomed");

    // Without --wait=false kubectl waits for the namespace to go, and returns.
    s.ok(&["create", "namespace", "brief"]);
    s.ok(&[
        "create",
        "-n",
        "brief",
        "configmap",
        "c",
        "--from-literal=a=b",
    ]);
    s.ok(&["delete", "namespace", "brief", "--timeout=30s"]);
    assert_eq!(field(&s, "", "namespace/brief", "{.metadata.name}"), None);
    agent.stop().await;
}

/// The ReplicaSets and pods of Deployment `name`, as `kind/name` lines.
fn workload(s: &Server, name: &str) -> String {
    s.ok(&["get", "rs,pods", "-l", &format!("app={name}"), "-o", "name"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_deployment_cascades_to_its_replicasets_and_pods() {
    let s = Server::start(&[]);
    let agent = Agent::start(support::client(&s).await, vec![SimNode::new("n1")]).await;
    for name in ["bg", "fg", "keep"] {
        s.ok(&[
            "create",
            "deployment",
            name,
            "--image=busybox:1.36",
            "--replicas=2",
        ]);
    }
    for name in ["bg", "fg", "keep"] {
        eventually(
            30,
            &format!("deployment {name} to have two running pods"),
            || {
                let phases = s.ok(&[
                    "get",
                    "pods",
                    "-l",
                    &format!("app={name}"),
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ]);
                (phases == "Running Running").then_some(())
            },
        );
    }

    s.ok(&["delete", "deployment", "bg"]);
    eventually(30, "deployment bg's ReplicaSet and pods to go", || {
        workload(&s, "bg").trim().is_empty().then_some(())
    });

    // Foreground: kubectl returns once the Deployment is gone, which is only after
    // everything it owned.
    s.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=45s",
    ]);
    assert_eq!(workload(&s, "fg").trim(), "");

    // Orphan: the ReplicaSet and its pods stay, the ReplicaSet no longer owned.
    s.ok(&[
        "delete",
        "deployment",
        "keep",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    let left = workload(&s, "keep");
    assert_eq!(left.lines().count(), 3, "{left}");
    let rs = left.lines().find(|l| l.starts_with("replicaset")).unwrap();
    assert_eq!(
        field(&s, "default", rs, "{.metadata.ownerReferences}").as_deref(),
        Some("")
    );
    agent.stop().await;
}
