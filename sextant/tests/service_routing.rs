//! Services end to end with real node agents: the example manifests deployed with kubectl,
//! traffic through a NodePort and a ClusterIP spread over the Ready replicas and following
//! scaling and readiness, Service environment variables, and the frontend example calling
//! the backend example by its Service name from another node.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::kubelet::Kubelet;
use support::pods::http_get;
use support::wasm::manifest;
use support::{Server, eventually};

/// The pods that answered `n` requests to `url`.
fn answering(url: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| http_get(url).and_then(|(_, pod, _)| pod))
        .collect()
}

fn ready_pods(s: &Server, label: &str) -> BTreeSet<String> {
    let pods: Value =
        serde_json::from_str(&s.ok(&["get", "pods", "-l", label, "-o", "json"])).unwrap();
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_node_port_reaches_every_ready_replica_and_follows_scaling_and_readiness() {
    let s = Server::start(&["--node-name", "node-a"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &manifest("http-echo", "deployment.yaml"),
    );
    s.ok(&[
        "patch",
        "service",
        "http-echo",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let svc: Value =
        serde_json::from_str(&s.ok(&["get", "service", "http-echo", "-o", "json"])).unwrap();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    let cluster_ip = svc["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let node_url = format!("http://127.0.0.1:{node_port}/");
    let cluster_url = format!("http://{cluster_ip}/");

    // Two replicas: both answer through the NodePort and through the ClusterIP.
    s.ok(&["rollout", "status", "deployment/http-echo", "--timeout=90s"]);
    let two = eventually(60, "both replicas to answer through the NodePort", || {
        let ready = ready_pods(&s, "app=http-echo");
        (ready.len() == 2 && answering(&node_url, 12) == ready).then_some(ready)
    });
    eventually(30, "both replicas through the ClusterIP", || {
        (answering(&cluster_url, 12) == two).then_some(())
    });

    // Scaling changes who answers.
    s.ok(&["scale", "deployment/http-echo", "--replicas=3"]);
    eventually(90, "three replicas to answer", || {
        let ready = ready_pods(&s, "app=http-echo");
        (ready.len() == 3 && answering(&node_url, 18) == ready).then_some(())
    });
    s.ok(&["scale", "deployment/http-echo", "--replicas=1"]);
    eventually(90, "one replica left answering", || {
        let ready = ready_pods(&s, "app=http-echo");
        (ready.len() == 1 && answering(&node_url, 10) == ready).then_some(())
    });

    // A pod that matches the selector but fails its readiness probe gets no traffic.
    let unready = manifest("http-echo", "deployment.yaml")
        .split("---")
        .next()
        .unwrap()
        .replace("name: http-echo\n  namespace", "name: unready\n  namespace")
        .replace("replicas: 2", "replicas: 1")
        .replace("path: /healthz", "path: /status/500");
    s.ok_stdin(&["apply", "-f", "-"], &unready);
    let stray = eventually(60, "the unready pod to run", || {
        let out = s.ok(&["get", "pods", "--no-headers"]);
        out.lines()
            .find(|l| l.starts_with("unready-") && l.contains("Running"))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
    });
    let answered = answering(&node_url, 20);
    assert!(!answered.contains(&stray), "{answered:?}");
    assert_eq!(answered, ready_pods(&s, "app=http-echo"));

    // Pods started after the Service see its environment variables.
    let pod = ready_pods(&s, "app=http-echo").into_iter().next().unwrap();
    s.ok(&["delete", "pod", &pod, "--wait=true"]);
    let fresh = eventually(60, "a replacement replica", || {
        ready_pods(&s, "app=http-echo")
            .into_iter()
            .find(|p| *p != pod && !p.starts_with("unready"))
    });
    let ip = s.ok(&["get", "pod", &fresh, "-o", "jsonpath={.status.podIP}"]);
    let (code, _, host) =
        http_get(&format!("http://{ip}:8080/env/HTTP_ECHO_SERVICE_HOST")).unwrap();
    assert_eq!((code, host.as_str()), (200, cluster_ip.as_str()));
    let (_, _, port) = http_get(&format!("http://{ip}:8080/env/HTTP_ECHO_SERVICE_PORT")).unwrap();
    assert_eq!(port, "80");
    s.stop();
}

#[test]
fn the_frontend_calls_the_backend_by_service_name_across_two_nodes() {
    let s = Server::start(&["--node-name", "node-a"]);
    let node_dir = tempfile::tempdir().unwrap();
    let kubelet = Kubelet::start(s.dir.path(), &s.addr, "node-b", node_dir.path());
    eventually(60, "node-b Ready", || {
        let out = s.ok(&["get", "node", "node-b", "--no-headers"]);
        out.contains(" Ready ").then_some(())
    });
    let pin = |yaml: String, node: &str| {
        yaml.replace(
            "    spec:\n      runtimeClassName: wasm\n",
            &format!(
                "    spec:\n      nodeSelector:\n        kubernetes.io/hostname: {node}\n      runtimeClassName: wasm\n"
            ),
        )
    };
    let backend = pin(manifest("backend", "deployment.yaml"), "node-b");
    let frontend = pin(manifest("frontend", "deployment.yaml"), "node-a");
    assert!(backend.contains("node-b") && frontend.contains("node-a"));
    s.ok_stdin(&["apply", "-f", "-"], &backend);
    s.ok_stdin(&["apply", "-f", "-"], &frontend);
    s.ok(&["rollout", "status", "deployment/backend", "--timeout=90s"]);
    s.ok(&["rollout", "status", "deployment/frontend", "--timeout=90s"]);
    let frontend_ip = eventually(30, "the frontend's address", || {
        let ip = s.ok(&[
            "get",
            "pods",
            "-l",
            "app=frontend",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ]);
        (!ip.is_empty()).then_some(ip)
    });
    let backends = ready_pods(&s, "app=backend");
    let seen: BTreeSet<String> = eventually(60, "answers from both backends", || {
        let mut seen = BTreeSet::new();
        for _ in 0..12 {
            let (code, _, body) = http_get(&format!("http://{frontend_ip}:8080/items/1"))?;
            if code != 200 {
                return None;
            }
            let json: Value = serde_json::from_str(&body).ok()?;
            seen.insert(json["backend"]["pod"].as_str()?.to_owned());
        }
        (seen == backends).then_some(seen)
    });
    assert_eq!(seen.len(), 2);
    // The backend pods run on the other node.
    let nodes = s.ok(&[
        "get",
        "pods",
        "-l",
        "app=backend",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert!(nodes.split_whitespace().all(|n| n == "node-b"), "{nodes}");
    kubelet.stop();
    s.stop();
}
