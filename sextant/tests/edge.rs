//! `wasm-kubelet` on its own: a second node joining with the join token, and an edge node
//! that keeps its pods running while the control plane is down, and after its own restart.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::kubelet::Kubelet;
use support::wasm::manifest;
use support::{eventually, free_addr, kubectl_with, spawn_server, wait_until_ready};

/// A server process that is killed if the test fails before stopping it.
struct ServerProc(Child);

impl std::ops::Deref for ServerProc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ServerProc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path, addr: &str) -> ServerProc {
    ServerProc(spawn_server(dir, addr, &[], Stdio::inherit(), "warn"))
}

fn stop_server(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_with(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pod_json(kubeconfig: &Path, name: &str) -> Option<Value> {
    let out = kubectl_with(kubeconfig, &["get", "pod", name, "-o", "json"], None);
    serde_json::from_slice(&out.stdout).ok()
}

fn running_on(kubeconfig: &Path, name: &str, node: &str) -> Value {
    eventually(60, &format!("{name} Running on {node}"), || {
        let p = pod_json(kubeconfig, name)?;
        (p["spec"]["nodeName"] == node
            && p["status"]["phase"] == "Running"
            && p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        .then_some(p)
    })
}

/// The ticker pod pinned to `node`.
fn ticker_on(node: &str) -> String {
    manifest("ticker", "pod.yaml").replace(
        "spec:\n",
        &format!("spec:\n  nodeSelector:\n    kubernetes.io/hostname: {node}\n"),
    )
}

/// How many lines the container's current log file holds on the node's disk.
fn log_lines(data_dir: &Path, pod: &str, container: &str) -> usize {
    let Ok(pods) = std::fs::read_dir(data_dir.join("pods")) else {
        return 0;
    };
    let Some(dir) = pods.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("default_{pod}_"))
    }) else {
        return 0;
    };
    let Ok(runs) = std::fs::read_dir(dir.path().join(container)) else {
        return 0;
    };
    runs.flatten()
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn a_second_wasm_kubelet_joins_as_another_node_and_serves_logs() {
    let server_dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = ServerProc(spawn_server(
        server_dir.path(),
        &addr,
        &["--node-name", "node-a"],
        Stdio::inherit(),
        "warn",
    ));
    wait_until_ready(server_dir.path());
    let kc = server_dir.path().join("kubeconfig.yaml");
    let node_dir = tempfile::tempdir().unwrap();
    let kubelet = Kubelet::start(server_dir.path(), &addr, "node-b", node_dir.path());
    eventually(60, "two Ready nodes", || {
        let out = kubectl_ok(&kc, &["get", "nodes", "--no-headers"], None);
        (out.lines().filter(|l| l.contains(" Ready")).count() == 2).then_some(())
    });
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&ticker_on("node-b")));
    running_on(&kc, "ticker", "node-b");
    let logs = eventually(30, "logs from node-b", || {
        let out = kubectl_with(&kc, &["logs", "ticker"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("tick").then_some(text)
    });
    assert!(logs.starts_with("tick"), "{logs}");
    kubelet.stop();
    stop_server(&mut server);
}

#[test]
fn an_edge_node_keeps_running_without_the_control_plane_and_reconciles_on_return() {
    let server_dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = start_server(server_dir.path(), &addr);
    wait_until_ready(server_dir.path());
    let kc = server_dir.path().join("kubeconfig.yaml");
    let node_dir = tempfile::tempdir().unwrap();
    let kubelet = Kubelet::start(server_dir.path(), &addr, "edge-1", node_dir.path());
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&ticker_on("edge-1")));
    let before = running_on(&kc, "ticker", "edge-1");
    let started_at =
        before["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].clone();

    // The control plane goes away; the pod goes on printing.
    stop_server(&mut server);
    let lines = log_lines(node_dir.path(), "ticker", "ticker");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        log_lines(node_dir.path(), "ticker", "ticker") > lines,
        "the pod kept running"
    );

    // The control plane returns: the node reconciles without restarting the pod.
    let mut server = start_server(server_dir.path(), &addr);
    eventually(60, "the API back", || {
        kubectl_with(&kc, &["get", "--raw", "/readyz"], None)
            .status
            .success()
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let after = running_on(&kc, "ticker", "edge-1");
    let status = &after["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 0, "{after}");
    assert_eq!(status["state"]["running"]["startedAt"], started_at);

    // A pod deleted on the control plane is stopped on the node.
    kubectl_ok(&kc, &["delete", "pod", "ticker", "--timeout=30s"], None);
    eventually(30, "the pod's directory removed", || {
        let left = std::fs::read_dir(node_dir.path().join("pods"))
            .ok()?
            .count();
        (left == 0).then_some(())
    });
    kubelet.stop();
    stop_server(&mut server);
}

#[test]
fn a_restarted_agent_adopts_its_pods_and_keeps_their_logs() {
    let server_dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = start_server(server_dir.path(), &addr);
    wait_until_ready(server_dir.path());
    let kc = server_dir.path().join("kubeconfig.yaml");
    let node_dir = tempfile::tempdir().unwrap();
    let kubelet = Kubelet::start(server_dir.path(), &addr, "edge-2", node_dir.path());
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&ticker_on("edge-2")));
    let hello = manifest("hello", "pod.yaml").replace(
        "spec:\n",
        "spec:\n  nodeSelector:\n    kubernetes.io/hostname: edge-2\n",
    );
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&hello));
    let first = running_on(&kc, "ticker", "edge-2");
    eventually(60, "hello Completed", || {
        (pod_json(&kc, "hello")?["status"]["phase"] == "Succeeded").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    kubelet.stop();

    let kubelet = Kubelet::start(server_dir.path(), &addr, "edge-2", node_dir.path());
    let again = eventually(60, "ticker adopted and running again", || {
        let p = pod_json(&kc, "ticker")?;
        (p["status"]["containerStatuses"][0]["restartCount"] == 1
            && p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        .then_some(p)
    });
    assert_eq!(
        again["status"]["podIP"], first["status"]["podIP"],
        "the pod keeps its address"
    );
    // The restarted agent listens on a new port, which reaches the API with its next Node
    // status: until then the API server may still dial the old one.
    let previous = eventually(20, "the previous run's logs", || {
        let out = kubectl_with(&kc, &["logs", "ticker", "--previous"], None);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(previous.contains("tick 1"), "{previous}");
    // A finished pod is not run again.
    let hello = pod_json(&kc, "hello").unwrap();
    assert_eq!(hello["status"]["phase"], "Succeeded");
    assert_eq!(hello["status"]["containerStatuses"][0]["restartCount"], 0);
    kubelet.stop();
    stop_server(&mut server);
}

#[test]
fn static_pods_run_without_the_api_and_are_mirrored_when_it_returns() {
    let server_dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = start_server(server_dir.path(), &addr);
    wait_until_ready(server_dir.path());
    let kc = server_dir.path().join("kubeconfig.yaml");
    let node_dir = tempfile::tempdir().unwrap();
    // Join once (the credential is kept), then lose the control plane.
    let kubelet = Kubelet::start(server_dir.path(), &addr, "edge-3", node_dir.path());
    // Registered, with the pod range the agent keeps for offline starts.
    eventually(60, "edge-3 registered with its pod range", || {
        node_dir.path().join("pod-cidr").exists().then_some(())
    });
    kubelet.stop();
    stop_server(&mut server);

    let manifests = node_dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("ticker.yaml"),
        manifest("edge", "ticker.yaml"),
    )
    .unwrap();
    let kubelet = Kubelet::start(server_dir.path(), &addr, "edge-3", node_dir.path());
    eventually(30, "the static pod printing with no API", || {
        let pods = std::fs::read_dir(node_dir.path().join("pods")).ok()?;
        pods.flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("default_ticker-edge-3_")
            })
            .then_some(())?;
        (log_lines(node_dir.path(), "ticker-edge-3", "ticker") >= 2).then_some(())
    });

    let mut server = start_server(server_dir.path(), &addr);
    let mirror = eventually(60, "the mirror pod Running", || {
        let p = pod_json(&kc, "ticker-edge-3")?;
        (p["status"]["phase"] == "Running").then_some(p)
    });
    assert!(mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string());
    let logs = kubectl_ok(&kc, &["logs", "ticker-edge-3"], None);
    assert!(logs.contains("tick 1"), "{logs}");
    // Deleting the mirror does not stop the pod; the mirror comes back.
    kubectl_ok(
        &kc,
        &["delete", "pod", "ticker-edge-3", "--timeout=30s"],
        None,
    );
    eventually(30, "the mirror recreated", || {
        pod_json(&kc, "ticker-edge-3")
    });
    // Removing the manifest stops the pod and removes the mirror.
    std::fs::remove_file(manifests.join("ticker.yaml")).unwrap();
    eventually(30, "the mirror removed", || {
        (!kubectl_with(&kc, &["get", "pod", "ticker-edge-3"], None)
            .status
            .success())
        .then_some(())
    });
    kubelet.stop();
    stop_server(&mut server);
}
