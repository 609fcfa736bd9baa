//! Wasm pods end to end: a real `sextant server` with its node agent, real modules built from
//! `examples/`, driven and checked with kubectl.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::pods::{pod, status_column, wait_status};
use support::wasm::manifest;
use support::{Server, eventually};

fn agent_server() -> Server {
    Server::start(&["--node-name", "node-a"])
}

fn container_status(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn http_get(url: &str) -> Option<(u16, String)> {
    support::pods::http_get(url).map(|(code, _, body)| (code, body))
}

#[test]
fn a_node_agent_registers_its_node_ready_with_the_wasm_label_and_a_pod_range() {
    let s = agent_server();
    let node: Value = eventually(30, "node-a to be Ready", || {
        let out = s.kubectl(&["get", "node", "node-a", "-o", "json"]);
        let node: Value = serde_json::from_slice(&out.stdout).ok()?;
        let ready = node["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && node["spec"]["podCIDR"].is_string()).then_some(node)
    });
    assert_eq!(node["metadata"]["labels"]["sextant.dev/wasm"], "true");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-a"
    );
    assert!(node["status"]["capacity"]["cpu"].is_string());
    assert!(node["status"]["capacity"]["memory"].is_string());
    let lease = s.ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        "node-a",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, "node-a");
    s.stop();
}

#[test]
fn a_command_job_runs_to_completion_and_its_log_reads_through_kubectl() {
    let s = agent_server();
    s.ok_stdin(&["apply", "-f", "-"], &manifest("hello", "job.yaml"));
    eventually(60, "the hello Job to succeed", || {
        (s.ok(&["get", "job", "hello", "-o", "jsonpath={.status.succeeded}"]) == "1").then_some(())
    });
    let logs = s.ok(&["logs", "job/hello"]);
    assert_eq!(logs.trim(), "hello, Sextant!");
    let pods = s.ok(&["get", "pods", "-l", "job-name=hello", "--no-headers"]);
    assert!(pods.contains("Completed"), "{pods}");
    s.stop();
}

#[test]
fn a_long_running_pod_streams_its_log_with_follow() {
    let s = agent_server();
    s.ok_stdin(&["apply", "-f", "-"], &manifest("ticker", "pod.yaml"));
    wait_status(&s, "ticker", "Running", 60);
    let p = pod(&s, "ticker");
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert!(
        ip.starts_with("127."),
        "pod IPs come from the loopback range: {ip}"
    );
    assert!(
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );

    let mut follow = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(["logs", "-f", "ticker", "--timestamps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut ticks = Vec::new();
    let started = Instant::now();
    while ticks.len() < 4 {
        let line = lines
            .next()
            .expect("the follow stream ended early")
            .unwrap();
        ticks.push(line);
    }
    // The last lines arrived while following: they were printed after the stream began.
    assert!(started.elapsed() >= Duration::from_millis(500), "{ticks:?}");
    for t in &ticks {
        let (time, text) = t.split_once(' ').unwrap();
        assert!(time.contains('T') && time.ends_with('Z'), "{t}");
        assert!(text.starts_with("tick "), "{t}");
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let tail = s.ok(&["logs", "ticker", "--tail", "1"]);
    assert_eq!(tail.lines().count(), 1);
    s.stop();
}

#[test]
fn an_http_component_serves_on_its_pod_ip_and_readiness_gates_ready() {
    let s = agent_server();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("http-echo", "deployment.yaml"),
    );
    let ready = eventually(60, "both http-echo replicas Ready", || {
        let out = s.ok(&["get", "pods", "-l", "app=http-echo", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).ok()?;
        let items = list["items"].as_array()?.clone();
        let all = items.len() == 2
            && items.iter().all(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            });
        all.then_some(items)
    });
    let ips: Vec<&str> = ready
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    assert_ne!(ips[0], ips[1], "each pod has its own address on one port");
    for p in &ready {
        let ip = p["status"]["podIP"].as_str().unwrap();
        let (code, body) = http_get(&format!("http://{ip}:8080/env/POD_NAME")).unwrap();
        assert_eq!(code, 200);
        assert_eq!(body.trim(), p["metadata"]["name"].as_str().unwrap());
    }

    // A pod whose readiness probe fails stays Running but never Ready.
    let unready = manifest("http-echo", "deployment.yaml")
        .split("---")
        .next()
        .unwrap()
        .replace("name: http-echo\n  namespace", "name: unready\n  namespace")
        .replace("app: http-echo", "app: unready")
        .replace("path: /healthz", "path: /env/NOT_SET")
        .replace("replicas: 2", "replicas: 1");
    s.ok_stdin(&["apply", "-f", "-"], &unready);
    let name = eventually(60, "the unready pod to run", || {
        let out = s.ok(&[
            "get",
            "pods",
            "-l",
            "app=unready",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ]);
        let name = out.trim().to_owned();
        (!name.is_empty() && status_column(&s, &name) == "Running").then_some(name)
    });
    std::thread::sleep(Duration::from_secs(4));
    let p = pod(&s, &name);
    assert_eq!(container_status(&p)["ready"], false);
    let ready_row = s.ok(&["get", "pod", &name, "--no-headers"]);
    assert!(ready_row.contains("0/1"), "{ready_row}");
    s.stop();
}

#[test]
fn a_liveness_failure_restarts_the_container() {
    let s = agent_server();
    let pod_yaml = manifest("ticker", "pod.yaml").replace(
        "    image: file://",
        "    livenessProbe:\n      tcpSocket: {port: 9999}\n      periodSeconds: 1\n      failureThreshold: 2\n    image: file://",
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod_yaml);
    let p = eventually(90, "a liveness restart", || {
        let p = pod(&s, "ticker");
        (container_status(&p)["restartCount"].as_i64()? >= 1).then_some(p)
    });
    let last = &container_status(&p)["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{p}");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=ticker",
    ]);
    assert!(events.contains("failed liveness probe"), "{events}");
    // The previous run's log is still there.
    let previous = s.ok(&["logs", "ticker", "--previous"]);
    assert!(previous.contains("tick"), "{previous}");
    s.stop();
}

#[test]
fn a_failing_command_goes_into_crash_loop_back_off() {
    let s = agent_server();
    // config-reader exits 1 without its ConfigMap volume and env.
    let pod_yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: crasher}}\nspec:\n  containers:\n  - name: c\n    image: file://{}\n",
        support::wasm::module("config-reader").display()
    );
    s.ok_stdin(&["apply", "-f", "-"], &pod_yaml);
    wait_status(&s, "crasher", "CrashLoopBackOff", 60);
    let p = pod(&s, "crasher");
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(
        container_status(&p)["lastState"]["terminated"]["reason"],
        "Error"
    );
    s.stop();
}

#[test]
fn hostile_modules_are_contained() {
    let s = agent_server();
    for ex in ["membomb", "spin", "escape"] {
        s.ok_stdin(&["apply", "-f", "-"], &manifest(ex, "pod.yaml"));
    }
    // A memory bomb under a 32Mi limit is OOMKilled.
    wait_status(&s, "membomb", "OOMKilled", 90);
    let p = pod(&s, "membomb");
    assert_eq!(container_status(&p)["state"]["terminated"]["exitCode"], 137);
    assert_eq!(p["status"]["phase"], "Failed");

    // The sandbox has no host filesystem.
    wait_status(&s, "escape", "Completed", 60);
    let logs = s.ok(&["logs", "escape"]);
    assert!(logs.contains("escape: isolated"), "{logs}");
    assert!(logs.contains("/etc/passwd: denied"), "{logs}");

    // An endless loop under a CPU limit runs, and the node stays responsive: a new pod starts
    // and completes beside it.
    wait_status(&s, "spin", "Running", 60);
    s.ok_stdin(&["apply", "-f", "-"], &manifest("hello", "pod.yaml"));
    wait_status(&s, "hello", "Completed", 30);
    assert_eq!(status_column(&s, "spin"), "Running");
    s.stop();
}

#[test]
fn config_maps_secrets_and_field_refs_reach_the_module() {
    let s = agent_server();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("config-reader", "pod.yaml"),
    );
    wait_status(&s, "config-reader", "Completed", 60);
    let logs = s.ok(&["logs", "config-reader"]);
    assert!(logs.contains("GREETING=hello from a Secret"), "{logs}");
    assert!(logs.contains("message=hello from a ConfigMap"), "{logs}");
    s.stop();
}

#[test]
fn deleting_a_pod_stops_it_and_removes_the_object() {
    let s = agent_server();
    s.ok_stdin(&["apply", "-f", "-"], &manifest("ticker", "pod.yaml"));
    wait_status(&s, "ticker", "Running", 60);
    let started = Instant::now();
    s.ok(&["delete", "pod", "ticker", "--wait=true", "--timeout=30s"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = s.kubectl(&["get", "pod", "ticker"]);
    assert!(!out.status.success());
    s.stop();
}
