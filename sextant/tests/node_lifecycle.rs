//! The node lifecycle controller against a real server with simulated nodes: a node that
//! stops heartbeating becomes Ready=Unknown and is tainted `unreachable`; its pods are
//! marked not ready and, once their toleration runs out, evicted — unless they tolerate
//! the taint for good; evicted pods the dead node cannot finish are force-deleted, a
//! ReplicaSet's pod comes back on a live node, and pods bound to a node that no longer
//! exists are removed.
//!
//! The server runs with `--node-monitor-grace-period 3 --pod-eviction-timeout 2`.

mod support;

use serde_json::{Value, json};
use support::agent::{Agent, SimNode};
use support::{Server, eventually};

const FLAGS: [&str; 4] = [
    "--node-monitor-grace-period",
    "3",
    "--pod-eviction-timeout",
    "2",
];

fn create_pod(s: &Server, name: &str, node: &str, extra: Value) {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox:1.36"}]},
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            pod["spec"][k] = v.clone();
        }
    }
    s.ok_stdin(&["apply", "-f", "-"], &pod.to_string());
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> String {
    let mut all = args.to_vec();
    let query = format!("jsonpath={path}");
    all.extend(["-o", &query]);
    s.ok(&all)
}

fn ready(s: &Server, pod: &str) -> String {
    jsonpath(
        s,
        &["get", "pod", pod],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    )
}

/// A node's Ready status and its taints, as `status|key:effect,…`.
fn health(s: &Server, node: &str) -> String {
    jsonpath(
        s,
        &["get", "node", node],
        "{.status.conditions[?(@.type==\"Ready\")].status}|{range .spec.taints[*]}{.key}:{.effect},{end}",
    )
}

fn gone(s: &Server, kind: &str, name: &str) -> bool {
    let out = s.kubectl(&["get", kind, name]);
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")
}

/// The `involvedObject.name`s of Events with `reason`.
fn events(s: &Server, reason: &str) -> Vec<String> {
    let selector = format!("reason={reason}");
    let out = jsonpath(
        s,
        &["get", "events", "-A", "--field-selector", &selector],
        "{range .items[*]}{.involvedObject.name}{\"\\n\"}{end}",
    );
    out.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_tainted_and_its_pods_evicted() {
    let s = Server::start(&FLAGS);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;

    create_pod(&s, "lonely", "n1", json!({}));
    create_pod(
        &s,
        "patient",
        "n1",
        json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}),
    );
    create_pod(&s, "elsewhere", "n2", json!({}));
    for pod in ["lonely", "patient", "elsewhere"] {
        eventually(30, &format!("pod {pod} to be Ready"), || {
            (ready(&s, pod) == "True").then_some(())
        });
    }
    // Heartbeats keep a live node untouched well past the grace period.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(
        health(&s, "n1"),
        "True|",
        "a heartbeating node stays Ready and untainted"
    );

    agent.silence("n1");
    let condition = "{.status.conditions[?(@.type==\"Ready\")].status}|{.status.conditions[?(@.type==\"Ready\")].reason}|{.status.conditions[?(@.type==\"Ready\")].message}";
    eventually(30, "n1 to become Ready=Unknown", || {
        let got = jsonpath(&s, &["get", "node", "n1"], condition);
        (got == "Unknown|NodeStatusUnknown|Kubelet stopped posting node status.").then_some(())
    });
    let taints = eventually(30, "n1 to be tainted unreachable", || {
        let got = jsonpath(
            &s,
            &["get", "node", "n1"],
            "{range .spec.taints[*]}{.key}:{.effect}{\"\\n\"}{end}",
        );
        got.contains("node.kubernetes.io/unreachable:NoExecute")
            .then_some(got)
    });
    assert!(
        taints.contains("node.kubernetes.io/unreachable:NoSchedule"),
        "{taints}"
    );
    let added = jsonpath(
        &s,
        &["get", "node", "n1"],
        "{.spec.taints[?(@.effect==\"NoExecute\")].timeAdded}",
    );
    assert!(
        !added.is_empty(),
        "a NoExecute taint says when it was added"
    );
    eventually(30, "a NodeNotReady event on n1", || {
        events(&s, "NodeNotReady")
            .contains(&"n1".to_owned())
            .then_some(())
    });

    eventually(30, "the tolerating pod to be marked not ready", || {
        (ready(&s, "patient") == "False").then_some(())
    });
    eventually(
        30,
        "the pod without toleration to be evicted and removed",
        || gone(&s, "pod", "lonely").then_some(()),
    );
    assert!(events(&s, "TaintManagerEviction").contains(&"lonely".to_owned()));

    // The pod that tolerates the taint for good stays; the other node is untouched.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let patient = jsonpath(
        &s,
        &["get", "pod", "patient"],
        "{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(patient, "|False");
    assert_eq!(ready(&s, "elsewhere"), "True");
    assert_eq!(health(&s, "n2"), "True|");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_node_that_no_longer_exists_are_removed() {
    let s = Server::start(&FLAGS);
    create_pod(&s, "stray", "ghost", json!({}));
    eventually(
        30,
        "a pod bound to a node that does not exist to be removed",
        || gone(&s, "pod", "stray").then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_pod_moves_off_a_dead_node() {
    let s = Server::start(&FLAGS);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;
    // Start the pod on n1 for sure: n2 is cordoned until it is placed.
    s.ok(&["cordon", "n2"]);
    s.ok_stdin(
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "c", "image": "busybox:1.36"}]}}},
        })
        .to_string(),
    );
    let on = |node: &str| {
        let got = jsonpath(
            &s,
            &["get", "pods", "-l", "app=web"],
            "{range .items[*]}{.spec.nodeName}|{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        );
        got.lines()
            .any(|l| l == format!("{node}||True"))
            .then_some(())
    };
    eventually(60, "the ReplicaSet's pod to run on n1", || on("n1"));
    s.ok(&["uncordon", "n2"]);

    agent.silence("n1");
    eventually(60, "a replacement pod to run on n2", || on("n2"));
    agent.stop().await;
}
