//! The scheduler against a real server and simulated nodes: each filter keeps pods off the
//! nodes it should and says so in kube-scheduler's words, in the pod's `PodScheduled`
//! condition and in a `FailedScheduling` Event; a pending pod is placed once a node that
//! fits it appears or changes.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::{Agent, SimNode};
use support::{Server, eventually};

/// Creates a pod from `spec` (one busybox container unless `spec` names containers).
fn create_pod(s: &Server, name: &str, labels: Value, spec: Value) {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox:1.36"}]);
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    });
    s.ok_stdin(&["apply", "-f", "-"], &pod.to_string());
}

fn requesting(cpu: &str, memory: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "busybox:1.36",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
}

/// The node `pod` gets bound to.
fn bound_node(s: &Server, pod: &str) -> String {
    eventually(30, &format!("pod {pod} to be bound"), || {
        let node = s.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]);
        (!node.is_empty()).then_some(node)
    })
}

/// The message of `pod`'s `PodScheduled=False` (reason `Unschedulable`) condition, once
/// it is `want`; panics with the last one seen otherwise.
fn unschedulable(s: &Server, pod: &str, want: &str) {
    let query = "jsonpath={.spec.nodeName}|{.status.conditions[?(@.type==\"PodScheduled\")].status}|{.status.conditions[?(@.type==\"PodScheduled\")].reason}|{.status.conditions[?(@.type==\"PodScheduled\")].message}";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = s.ok(&["get", "pod", pod, "-o", query]);
        if seen == format!("|False|Unschedulable|{want}") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pod {pod} should be unschedulable with {want:?}; last seen (node|status|reason|message): {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a `FailedScheduling` Event on `pod` reading `line` (type|reporter|message).
fn failed_scheduling_event(s: &Server, pod: &str, line: &str) {
    let selector = format!("involvedObject.name={pod},reason=FailedScheduling");
    eventually(
        30,
        &format!("a FailedScheduling event {line:?} on {pod}"),
        || {
            let got = s.ok(&[
                "get",
                "events",
                "--field-selector",
                &selector,
                "-o",
                "jsonpath={range .items[*]}{.type}|{.reportingComponent}|{.message}{\"\\n\"}{end}",
            ]);
            got.lines().any(|l| l == line).then_some(())
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_and_runtimes_decide_and_the_reasons_are_counted() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(
        client.clone(),
        vec![
            SimNode::new("a").memory("1Gi"),
            SimNode::new("b").memory("1Gi"),
            SimNode::new("edge").without_label("sextant.dev/oci"),
        ],
    )
    .await;

    // An OCI pod needing 2Gi fits nowhere: two nodes are too small, one runs only wasm.
    create_pod(&s, "fat", json!({}), requesting("100m", "2Gi"));
    let why = "0/3 nodes are available: 1 node(s) lack the OCI runtime, 2 Insufficient memory.";
    unschedulable(&s, "fat", why);
    failed_scheduling_event(&s, "fat", &format!("Warning|default-scheduler|{why}"));

    // A wasm pod of the same size goes to the wasm node; a small OCI pod to an OCI node.
    create_pod(
        &s,
        "wasm-app",
        json!({}),
        json!({"containers": [{"name": "w", "image": "file:///opt/app.wasm",
            "resources": {"requests": {"memory": "2Gi"}}}]}),
    );
    assert_eq!(bound_node(&s, "wasm-app"), "edge");
    create_pod(&s, "slim", json!({}), requesting("100m", "512Mi"));
    let slim_node = bound_node(&s, "slim");
    assert!(
        ["a", "b"].contains(&slim_node.as_str()),
        "slim went to {slim_node}"
    );
    let scheduled = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=slim,reason=Scheduled",
        "-o",
        "jsonpath={.items[0].message}",
    ]);
    assert_eq!(
        scheduled,
        format!("Successfully assigned default/slim to {slim_node}")
    );

    // What is bound counts: the node holding `slim` has 512Mi left, the other 1Gi.
    create_pod(&s, "three-quarters", json!({}), requesting("100m", "768Mi"));
    let other = if slim_node == "a" { "b" } else { "a" };
    assert_eq!(bound_node(&s, "three-quarters"), other);

    // CPU too: 4 cores on every node.
    create_pod(&s, "cpu-hog", json!({}), requesting("5", "1Mi"));
    unschedulable(
        &s,
        "cpu-hog",
        "0/3 nodes are available: 1 node(s) lack the OCI runtime, 2 Insufficient cpu.",
    );

    // A node that fits appears: the pending pod is placed on it without being touched.
    let roomy = Agent::start(client.clone(), vec![SimNode::new("roomy")]).await;
    assert_eq!(bound_node(&s, "fat"), "roomy");
    roomy.stop().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_affinity_taints_cordon_and_host_ports() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(
        client.clone(),
        vec![
            SimNode::new("ssd").label("disk", "ssd"),
            SimNode::new("gpu")
                .label("accelerator", "gpu")
                .taint("dedicated", "gpu", "NoSchedule"),
            SimNode::new("plain"),
        ],
    )
    .await;
    let gpu_toleration =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);

    // nodeSelector.
    create_pod(
        &s,
        "on-ssd",
        json!({}),
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    assert_eq!(bound_node(&s, "on-ssd"), "ssd");

    // Required node affinity: nothing is labelled nvme.
    create_pod(
        &s,
        "wants-nvme",
        json!({}),
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]}]
        }}}}),
    );
    unschedulable(
        &s,
        "wants-nvme",
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.",
    );

    // Taints: the gpu node takes only pods that tolerate its taint.
    create_pod(
        &s,
        "gpu-no-toleration",
        json!({}),
        json!({"nodeSelector": {"accelerator": "gpu"}}),
    );
    unschedulable(
        &s,
        "gpu-no-toleration",
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.",
    );
    create_pod(
        &s,
        "gpu-job",
        json!({}),
        json!({"nodeSelector": {"accelerator": "gpu"}, "tolerations": gpu_toleration}),
    );
    assert_eq!(bound_node(&s, "gpu-job"), "gpu");

    // Cordon: the ssd node takes nothing new until it is uncordoned.
    s.ok(&["cordon", "ssd"]);
    create_pod(
        &s,
        "after-cordon",
        json!({}),
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    unschedulable(
        &s,
        "after-cordon",
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable.",
    );
    s.ok(&["uncordon", "ssd"]);
    assert_eq!(bound_node(&s, "after-cordon"), "ssd");

    // Required pod anti-affinity by hostname: one `web` pod per node, the fourth waits.
    let web = |name: &str| {
        create_pod(
            &s,
            name,
            json!({"app": "web"}),
            json!({"tolerations": gpu_toleration, "affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname"
                }]
            }}}),
        );
    };
    let mut web_nodes = Vec::new();
    for name in ["web-1", "web-2", "web-3"] {
        web(name);
        web_nodes.push(bound_node(&s, name));
    }
    web_nodes.sort();
    assert_eq!(web_nodes, ["gpu", "plain", "ssd"]);
    web("web-4");
    unschedulable(
        &s,
        "web-4",
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
    );
    // Deleting one frees its node for the one waiting.
    let freed = s.ok(&["get", "pod", "web-2", "-o", "jsonpath={.spec.nodeName}"]);
    s.ok(&["delete", "pod", "web-2", "--wait=false"]);
    assert_eq!(bound_node(&s, "web-4"), freed);

    // Host ports: one claimant of 8080 per node.
    let port = |name: &str| {
        create_pod(
            &s,
            name,
            json!({}),
            json!({"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "busybox:1.36",
                "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
    };
    port("port-1");
    assert_eq!(bound_node(&s, "port-1"), "ssd");
    port("port-2");
    unschedulable(
        &s,
        "port-2",
        "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}.",
    );
    agent.stop().await;
}
