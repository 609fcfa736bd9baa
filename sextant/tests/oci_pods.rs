//! OCI containers end to end: a real `sextant server` whose node agent hands OCI containers
//! to a real containerd over CRI (started by `scripts/containerd.sh`, which `scripts/test.sh`
//! runs and whose socket it exports as `SEXTANT_CRI_SOCKET`), with images built offline from
//! busybox-static, driven and checked with kubectl.

mod support;

use std::process::Command;

use serde_json::Value;
use support::pods::{pod, wait_status};
use support::wasm::manifest;
use support::{Server, eventually, kubectl_with};

const BUSYBOX: &str = "sextant.local/busybox:1";

fn cri_socket() -> String {
    std::env::var("SEXTANT_CRI_SOCKET").unwrap_or_else(|_| {
        panic!(
            "these tests need containerd: run `scripts/containerd.sh start` and export \
             SEXTANT_CRI_SOCKET=<the socket it prints> (scripts/test.sh does both)"
        )
    })
}

fn oci_server() -> Server {
    let socket = cri_socket();
    Server::start(&["--node-name", "node-a", "--cri-socket", &socket])
}

/// The containers containerd holds for a pod (by the kubelet's uid label).
fn runtime_containers(uid: &str) -> Vec<String> {
    let out = Command::new("ctr")
        .args(["--address", &cri_socket(), "--namespace", "k8s.io"])
        .args(["containers", "ls", "-q"])
        .arg(format!("labels.\"io.kubernetes.pod.uid\"=={uid}"))
        .output()
        .expect("ctr comes with containerd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn busybox_pod(name: &str, script: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 3
{extra_spec}
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", {script:?}]
"#
    )
}

#[test]
fn an_oci_pod_runs_logs_is_execed_into_and_is_deleted_cleanly() {
    let s = oci_server();
    eventually(30, "node-a to carry the OCI label", || {
        let labels = s.ok(&["get", "node", "node-a", "-o", "jsonpath={.metadata.labels}"]);
        labels.contains(r#""sextant.dev/oci":"true""#).then_some(())
    });
    s.ok_stdin(
        &["apply", "-f", "-"],
        &busybox_pod(
            "box",
            "trap 'exit 0' TERM; echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1 & wait; done",
            "",
        ),
    );
    wait_status(&s, "box", "Running", 60);
    let p = pod(&s, "box");
    let uid = p["metadata"]["uid"].as_str().unwrap().to_owned();
    let status = &p["status"]["containerStatuses"][0];
    assert!(
        status["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://"),
        "{status}"
    );
    assert_eq!(status["ready"], true);
    assert!(!status["imageID"].as_str().unwrap_or_default().is_empty());
    assert!(p["status"]["podIP"].as_str().unwrap().starts_with("127."));

    // Logs come from the runtime's CRI log file through the same path as wasm logs.
    eventually(20, "ticks in the logs", || {
        let out = s.kubectl(&["logs", "box"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains("started") && text.contains("tick 1")).then_some(())
    });

    // exec: a command, its exit code, and stdin.
    let out = s.ok(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "echo hello from inside; id -u",
    ]);
    assert_eq!(out, "hello from inside\n0\n");
    let failed = s.kubectl(&["exec", "box", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let echoed = kubectl_with(
        &s.kubeconfig(),
        &["exec", "-i", "box", "--", "sh", "-c", "tr a-z A-Z"],
        Some("shout\n"),
    );
    assert!(echoed.status.success(), "{echoed:?}");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "SHOUT\n");

    assert!(!runtime_containers(&uid).is_empty());
    s.ok(&["delete", "pod", "box", "--wait=true", "--timeout=60s"]);
    eventually(20, "the runtime to drop the pod's containers", || {
        runtime_containers(&uid).is_empty().then_some(())
    });
    s.stop();
}

#[test]
fn a_failing_oci_container_restarts_with_back_off_and_an_exec_probe_restarts_it() {
    let s = oci_server();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &busybox_pod("crash", "echo run; exit 3", "  restartPolicy: OnFailure"),
    );
    let p = eventually(60, "a restart after exit 3", || {
        let p = pod(&s, "crash");
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(p)
    });
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3, "{p}");
    assert_eq!(last["reason"], "Error", "{p}");
    wait_status(&s, "crash", "CrashLoopBackOff", 30);
    assert_eq!(s.ok(&["logs", "crash", "--previous"]), "run\n");

    // An exec liveness probe: healthy until the file goes, then the container is killed
    // and started again.
    let probed = r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: sextant.local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600 & wait"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 1
"#;
    s.ok_stdin(&["apply", "-f", "-"], probed);
    eventually(60, "the exec probe to restart the container", || {
        let p = pod(&s, "probed");
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(())
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    s.ok(&[
        "delete",
        "pod",
        "crash",
        "probed",
        "--wait=true",
        "--timeout=60s",
    ]);
    s.stop();
}

#[test]
fn a_deployment_of_oci_pods_rolls() {
    let s = oci_server();
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: boxes
spec:
  replicas: 2
  selector:
    matchLabels: {app: boxes}
  template:
    metadata:
      labels: {app: boxes}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: sextant.local/busybox:1
        command: ["sh", "-c", "trap 'exit 0' TERM; echo version $VERSION; sleep 600 & wait"]
        env:
        - {name: VERSION, value: "1"}
"#;
    s.ok_stdin(&["apply", "-f", "-"], deployment);
    s.ok(&["rollout", "status", "deployment/boxes", "--timeout=120s"]);
    s.ok(&["set", "env", "deployment/boxes", "VERSION=2"]);
    s.ok(&["rollout", "status", "deployment/boxes", "--timeout=120s"]);
    let pods: Value =
        serde_json::from_str(&s.ok(&["get", "pods", "-l", "app=boxes", "-o", "json"])).unwrap();
    let running: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    assert_eq!(running.len(), 2, "{pods}");
    for p in running {
        let name = p["metadata"]["name"].as_str().unwrap();
        let logs = eventually(20, "the new pod's log", || {
            let out = s.kubectl(&["logs", name]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (!text.is_empty()).then_some(text)
        });
        assert_eq!(logs, "version 2\n", "{name}");
    }
    s.ok(&["delete", "deployment", "boxes"]);
    s.stop();
}

#[test]
fn a_mixed_pod_shares_an_empty_dir_between_an_oci_writer_and_a_wasm_server() {
    let s = oci_server();
    s.ok_stdin(&["apply", "-f", "-"], &manifest("mixed", "pod.yaml"));
    eventually(90, "the mixed pod to be 2/2 ready", || {
        let out = s.ok(&["get", "pod", "mixed", "--no-headers"]);
        out.split_whitespace()
            .nth(1)
            .is_some_and(|r| r == "2/2")
            .then_some(())
    });
    let p = pod(&s, "mixed");
    let ip = p["status"]["podIP"].as_str().unwrap().to_owned();
    let statuses = p["status"]["containerStatuses"].as_array().unwrap();
    let ids: Vec<&str> = statuses
        .iter()
        .map(|c| c["containerID"].as_str().unwrap_or_default())
        .collect();
    assert!(
        ids.iter().any(|id| id.starts_with("containerd://")),
        "{ids:?}"
    );
    assert!(ids.iter().any(|id| id.starts_with("wasm://")), "{ids:?}");
    let url = format!("http://{ip}:8080/file?path=/shared/message");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let first = eventually(
        30,
        "the wasm server to serve the OCI container's file",
        || {
            let body = reqwest::blocking::get(&url).ok()?.text().ok()?;
            body.contains("from the OCI container").then_some(body)
        },
    );
    // The writer keeps writing; the server sees each new version.
    eventually(30, "a newer message", || {
        let body = reqwest::blocking::get(&url).ok()?.text().ok()?;
        (body.contains("from the OCI container") && body != first).then_some(())
    });
    // Exec reaches the OCI container; the wasm one says why it cannot.
    let out = s.ok(&[
        "exec",
        "mixed",
        "-c",
        "writer",
        "--",
        "cat",
        "/shared/message",
    ]);
    assert!(out.contains("from the OCI container"), "{out}");
    let wasm = s.kubectl(&["exec", "mixed", "-c", "server", "--", "sh"]);
    assert!(!wasm.status.success());
    let err = String::from_utf8_lossy(&wasm.stderr);
    assert!(err.contains("wasm"), "{err}");
    s.ok(&["delete", "pod", "mixed", "--wait=true", "--timeout=60s"]);
    s.stop();
}

#[test]
fn pull_failures_and_runtime_less_nodes_leave_wasm_pods_alone() {
    let s = oci_server();
    let bad = r#"
apiVersion: v1
kind: Pod
metadata:
  name: unpullable
spec:
  containers:
  - name: main
    image: 127.0.0.1:1/nothing/here:1
"#;
    s.ok_stdin(&["apply", "-f", "-"], bad);
    let p = eventually(60, "an image pull error", || {
        let p = pod(&s, "unpullable");
        let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()?
            .to_owned();
        (reason == "ErrImagePull" || reason == "ImagePullBackOff").then_some(p)
    });
    let message = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("127.0.0.1:1"),
        "the cause is shown: {message}"
    );
    // A wasm pod on the same node is unaffected.
    s.ok_stdin(&["apply", "-f", "-"], &manifest("hello", "pod.yaml"));
    wait_status(&s, "hello", "Completed", 60);
    s.stop();

    // A node with no container runtime: OCI pods are not scheduled there, and say why.
    let wasm_only = Server::start(&["--node-name", "edge-a", "--disable-cri"]);
    eventually(30, "edge-a to be Ready", || {
        let out = wasm_only.ok(&["get", "node", "edge-a", "--no-headers"]);
        out.contains(" Ready ").then_some(())
    });
    let labels = wasm_only.ok(&["get", "node", "edge-a", "-o", "jsonpath={.metadata.labels}"]);
    assert!(!labels.contains("sextant.dev/oci"), "{labels}");
    wasm_only.ok_stdin(
        &["apply", "-f", "-"],
        &busybox_pod("nowhere", "sleep 1", ""),
    );
    eventually(30, "the scheduler to say why", || {
        let p = pod(&wasm_only, "nowhere");
        let cond = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (cond["status"] == "False" && cond["message"].as_str()?.contains("OCI")).then_some(())
    });
    wasm_only.stop();
}
