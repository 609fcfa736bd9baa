//! `kubectl` against a real `sextant server`: the everyday commands, end to end.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, eventually};

const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
  labels: {tier: config}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: file:///srv/web.wasm
        ports: [{containerPort: 8080}]
      - name: sidecar
        image: busybox:1.36
"#;

#[test]
fn everyday_kubectl_commands_work() {
    let s = Server::start(&[]);

    let out = s.ok_stdin(&["apply", "-f", "-"], APP);
    assert!(
        out.contains("namespace/demo created") && out.contains("deployment.apps/web created"),
        "{out}"
    );

    // Apply an edit: kubectl sends a strategic merge patch; the untouched container stays.
    let edited = APP
        .replace("greeting: hello", "greeting: bonjour")
        .replace("replicas: 2", "replicas: 3")
        .replace("busybox:1.36", "busybox:1.37");
    let out = s.ok_stdin(&["apply", "-f", "-"], &edited);
    assert!(
        out.contains("configmap/settings configured")
            && out.contains("deployment.apps/web configured"),
        "{out}"
    );
    let images = s.ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "file:///srv/web.wasm busybox:1.37");
    let yaml = s.ok(&["-n", "demo", "get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("replicas: 3") && yaml.contains("generation: 2") && yaml.contains("uid:"),
        "{yaml}"
    );

    // The familiar columns, wide columns, selectors, all namespaces, labels.
    let wide = s.ok(&["-n", "demo", "get", "deploy", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.contains("web,sidecar") && wide.contains("app=web"),
        "{wide}"
    );
    let by_label = s.ok(&["get", "cm", "-A", "-l", "tier=config", "--show-labels"]);
    assert!(
        by_label.starts_with("NAMESPACE")
            && by_label.contains("settings")
            && by_label.contains("tier=config"),
        "{by_label}"
    );
    assert!(
        !s.ok(&["get", "cm", "-A", "-l", "tier=other"])
            .contains("settings")
    );
    let by_field = s.ok(&[
        "get",
        "ns",
        "--field-selector",
        "metadata.name=demo",
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), "namespace/demo");

    // get -w sees a change.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(["-n", "demo", "get", "cm", "settings", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the watch prints the current state");
    assert!(first.starts_with("settings"), "{first}");
    s.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    let change = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the watch prints the change");
    assert!(
        change.starts_with("settings") && change.split_whitespace().nth(1) == Some("2"),
        "DATA is now 2: {change}"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // Typed commands send protobuf bodies.
    s.ok(&[
        "-n",
        "demo",
        "create",
        "configmap",
        "typed",
        "--from-literal=k=v",
    ]);
    assert_eq!(
        s.ok(&[
            "-n",
            "demo",
            "get",
            "cm",
            "typed",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );
    s.ok(&[
        "-n",
        "demo",
        "create",
        "deployment",
        "api",
        "--image=file:///srv/api.wasm",
        "--replicas=2",
    ]);
    s.ok(&[
        "-n",
        "demo",
        "expose",
        "deployment",
        "api",
        "--port=80",
        "--target-port=8080",
    ]);
    assert_eq!(
        s.ok(&[
            "-n",
            "demo",
            "get",
            "svc",
            "api",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    s.ok(&[
        "-n",
        "demo",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ]);
    assert_eq!(
        s.ok(&[
            "-n",
            "demo",
            "get",
            "secret",
            "creds",
            "-o",
            "jsonpath={.data.user}"
        ]),
        "YWRtaW4="
    );

    // describe, label, annotate, scale.
    let described = s.ok(&["-n", "demo", "describe", "deploy", "web"]);
    assert!(
        described.contains("Replicas:") && described.contains("RollingUpdate"),
        "{described}"
    );
    s.ok(&["-n", "demo", "label", "deploy", "web", "tier=frontend"]);
    s.ok(&["-n", "demo", "annotate", "deploy", "web", "note=hi"]);
    s.ok(&["-n", "demo", "scale", "deploy", "web", "--replicas=5"]);
    let after = s.ok(&[
        "-n",
        "demo",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.note}",
    ]);
    assert_eq!(after, "5 frontend hi");

    // explain reads the OpenAPI documents.
    let explained = s.ok(&["explain", "pods.spec.containers"]);
    assert!(
        explained.contains("List of containers") && explained.contains("image"),
        "{explained}"
    );

    // --dry-run=server validates and answers without storing.
    let dry = APP.replace("name: settings", "name: dry-settings");
    s.ok_stdin(&["apply", "--dry-run=server", "-f", "-"], &dry);
    let missing = s.kubectl(&["-n", "demo", "get", "cm", "dry-settings"]);
    assert!(
        !missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("NotFound")
    );

    // Strict field validation refuses a misspelt field, with its name.
    let typo = APP.replace("replicas: 2", "replicaz: 2");
    let out = support::kubectl_with(&s.kubeconfig(), &["apply", "-f", "-"], Some(&typo));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.replicaz\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // delete --wait returns once the object is gone.
    s.ok(&["-n", "demo", "delete", "cm", "settings", "--wait"]);
    eventually(10, "configmap gone", || {
        (!s.kubectl(&["-n", "demo", "get", "cm", "settings"])
            .status
            .success())
        .then_some(())
    });
    s.ok(&["-n", "demo", "delete", "deploy", "web", "--wait"]);
    assert_eq!(
        s.ok(&["-n", "demo", "get", "deploy", "-o", "name"]).trim(),
        "deployment.apps/api"
    );
    s.stop();
}

#[test]
fn requests_without_valid_credentials_are_refused() {
    let s = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = s.http();
        let anon = http
            .get(format!("{}/api/v1/namespaces", s.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 401);
        let body: serde_json::Value = serde_json::from_slice(&anon.bytes().await.unwrap()).unwrap();
        assert_eq!(
            (body["kind"].as_str(), body["reason"].as_str()),
            (Some("Status"), Some("Unauthorized"))
        );
        let forged = http
            .post(format!("{}/api/v1/namespaces", s.url()))
            .bearer_auth("not-the-token")
            .body(r#"{"metadata": {"name": "intruder"}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401);
        // Health and version are public, as in Kubernetes.
        assert_eq!(
            http.get(format!("{}/readyz", s.url()))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            http.get(format!("{}/version", s.url()))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    });
    // kubectl with a wrong token says Unauthorized, and nothing was created.
    let kc = std::fs::read_to_string(s.kubeconfig())
        .unwrap()
        .replace(&s.admin_token(), "wrong-token");
    let bad = s.dir.path().join("bad-kubeconfig.yaml");
    std::fs::write(&bad, kc).unwrap();
    let out = support::kubectl_with(&bad, &["get", "ns"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("You must be logged in to the server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!s.ok(&["get", "ns", "-o", "name"]).contains("intruder"));
    s.stop();
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
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
            description: What the crontab runs, and when.
            properties:
              cronSpec: {type: string, description: The schedule in cron format.}
              image: {type: string}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

#[test]
fn custom_resources_come_and_go_with_their_definitions() {
    let s = Server::start(&[]);
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    // Re-applying an edited definition is a strategic merge patch of a built-in kind.
    let out = s.ok_stdin(
        &["apply", "-f", "-"],
        &CRD.replace("shortNames: [ct]", "shortNames: [ct, cts]"),
    );
    assert!(out.contains("configured"), "{out}");
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=30s",
    ]);
    // Discovery, routing and storage follow the CRD.
    let created = eventually(30, "the CronTab kind to be served", || {
        let out = support::kubectl_with(
            &s.kubeconfig(),
            &["apply", "-f", "-"],
            Some(
                "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: nightly, namespace: default}\nspec: {cronSpec: '0 3 * * *', image: backup}\n",
            ),
        );
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    });
    assert!(
        created.contains("crontab.stable.example.com/nightly created"),
        "{created}"
    );
    // The CRD's printer columns, the short name, and explain from its schema.
    let table = s.ok(&["get", "ct"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "AGE"], "{table}");
    assert!(
        table.contains("nightly") && table.contains("0 3 * * *"),
        "{table}"
    );
    let explained = s.ok(&["explain", "crontabs.spec.cronSpec"]);
    assert!(
        explained.contains("The schedule in cron format"),
        "{explained}"
    );
    // The CRD's schema checks new objects: a wrong type is a 422 naming the field, and an
    // undeclared field is refused under kubectl's default strict validation.
    let wrong = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad, namespace: default}\nspec: {cronSpec: 5}\n";
    let out = support::kubectl_with(&s.kubeconfig(), &["apply", "-f", "-"], Some(wrong));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("spec.cronSpec in body must be of type string"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let typo = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: typo, namespace: default}\nspec: {cronSpek: x}\n";
    let out = support::kubectl_with(&s.kubeconfig(), &["apply", "-f", "-"], Some(typo));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field \"spec.cronSpek\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Deleting the definition deletes its objects and stops serving the kind.
    s.ok(&["delete", "crd", "crontabs.stable.example.com", "--wait"]);
    eventually(30, "the kind to be gone", || {
        let out = s.kubectl(&["get", "crontabs.stable.example.com"]);
        (!out.status.success()).then_some(())
    });
    s.stop();
}

#[test]
fn server_side_apply_owns_fields_and_reports_conflicts() {
    let s = Server::start(&[]);
    let deploy = |replicas: u32| {
        APP.split("---")
            .nth(2)
            .unwrap()
            .replace("replicas: 2", &format!("replicas: {replicas}"))
            .replace("namespace: demo", "namespace: default")
    };
    let out = s.ok_stdin(&["apply", "--server-side", "-f", "-"], &deploy(2));
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let managers = s.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[?(@.operation==\"Apply\")].manager}",
    ]);
    // (The deployment controller's status and revision writes add its own Update entries.)
    assert_eq!(managers, "kubectl");
    // Another manager changing a field kubectl owns is a conflict that names both.
    let out = support::kubectl_with(
        &s.kubeconfig(),
        &[
            "apply",
            "--server-side",
            "--field-manager=ci-bot",
            "-f",
            "-",
        ],
        Some(&deploy(4)),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict") && err.contains("kubectl") && err.contains(".spec.replicas"),
        "{err}"
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    // Forced, the new manager takes the field.
    s.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=ci-bot",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &deploy(4),
    );
    assert_eq!(
        s.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    // A field dropped from the applied configuration is removed.
    let without_sidecar =
        deploy(4).replace("      - name: sidecar\n        image: busybox:1.36\n", "");
    s.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=ci-bot",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &without_sidecar,
    );
    s.ok_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &without_sidecar,
    );
    let names = s.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(names, "web");
    s.stop();
}

#[test]
fn limit_ranges_and_quotas_admit_pods() {
    let s = Server::start(&[]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 64Mi}
    defaultRequest: {cpu: 250m, memory: 32Mi}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: small, namespace: team}
spec:
  hard: {pods: "3", requests.cpu: 600m}
"#,
    );
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  containers:\n  - {{name: app, image: file:///srv/app.wasm}}\n"
        )
    };
    s.ok_stdin(&["apply", "-f", "-"], &pod("one"));
    let resources = s.ok(&[
        "-n",
        "team",
        "get",
        "pod",
        "one",
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ]);
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    assert_eq!(
        resources["requests"]["cpu"], "250m",
        "the LimitRange default request"
    );
    assert_eq!(
        resources["limits"]["memory"], "64Mi",
        "the LimitRange default limit"
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod("two"));
    let out = support::kubectl_with(&s.kubeconfig(), &["apply", "-f", "-"], Some(&pod("three")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pods \"three\" is forbidden: exceeded quota: small, requested: requests.cpu=250m, used: requests.cpu=500m, limited: requests.cpu=600m"), "{err}");

    // The quota controller reports usage, as `kubectl describe quota` shows it; a quota on
    // object counts is counted too.
    let used = |q: &str| {
        s.ok(&[
            "-n",
            "team",
            "get",
            "quota",
            q,
            "-o",
            "jsonpath={.status.used}",
        ])
    };
    support::eventually(30, "the quota's status.used", || {
        let u: serde_json::Value = serde_json::from_str(&used("small")).ok()?;
        (u == serde_json::json!({"pods": "2", "requests.cpu": "500m"})).then_some(())
    });
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: counts, namespace: team}\nspec:\n  hard: {count/configmaps: \"10\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: team}\n",
    );
    support::eventually(30, "the count quota's status.used", || {
        let u: serde_json::Value = serde_json::from_str(&used("counts")).ok()?;
        (u["count/configmaps"] == "1").then_some(())
    });
    s.ok(&[
        "-n",
        "team",
        "delete",
        "pod",
        "one",
        "--grace-period=0",
        "--force",
    ]);
    support::eventually(30, "usage to drop when a pod goes", || {
        let u: serde_json::Value = serde_json::from_str(&used("small")).ok()?;
        (u["pods"] == "1").then_some(())
    });
    s.stop();
}
