//! Endpoints, EndpointSlices and ServiceAccounts against a real server: a Service's
//! Endpoints and slices hold exactly its pods' addresses with the ports its `targetPort`s
//! resolve to, ready or not, and follow the pods as they go away, stop matching or turn
//! ready; Services without a selector keep the Endpoints their owner writes; every
//! namespace has a `default` ServiceAccount, back at once when deleted.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::{Agent, NEVER_READY, SimNode};
use support::{Server, eventually};

/// One address as a reader sees it: IP, ready or not, and its ports as `name:port`.
type Address = (String, bool, Vec<String>);

/// Creates pod `name` on `node`, labelled `app`, serving `http` on `http_port`.
fn create_pod(s: &Server, name: &str, node: &str, app: &str, http_port: i32, annotations: Value) {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1.36",
                 "ports": [{"name": "http", "containerPort": http_port}]}]},
    });
    s.ok_stdin(&["apply", "-f", "-"], &pod.to_string());
}

fn pod_ip(s: &Server, pod: &str) -> String {
    eventually(30, &format!("pod {pod} to get an IP"), || {
        let ip = s.ok(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"]);
        (!ip.is_empty()).then_some(ip)
    })
}

fn get_json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).unwrap()
}

fn ports(list: &Value) -> Vec<String> {
    let mut ports: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}:{}", p["name"].as_str().unwrap_or(""), p["port"]))
        .collect();
    ports.sort();
    ports
}

/// The addresses of Endpoints `name`, as a set (empty while there is no such Endpoints).
fn endpoints(s: &Server, name: &str) -> BTreeSet<Address> {
    let out = s.kubectl(&["get", "endpoints", name, "-o", "json"]);
    if !out.status.success() {
        return BTreeSet::new();
    }
    let ep: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = BTreeSet::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
            for a in subset[field].as_array().into_iter().flatten() {
                seen.insert((
                    a["ip"].as_str().unwrap().to_owned(),
                    ready,
                    ports(&subset["ports"]),
                ));
            }
        }
    }
    seen
}

/// The endpoints of Service `service`'s EndpointSlices, after checking each slice is the
/// controller's and belongs to the Service.
fn slices(s: &Server, service: &str) -> BTreeSet<Address> {
    let list = get_json(
        s,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={service}"),
        ],
    );
    let mut seen = BTreeSet::new();
    for slice in list["items"].as_array().unwrap() {
        let meta = &slice["metadata"];
        assert_eq!(
            meta["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert!(
            meta["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{service}-")),
            "{meta}"
        );
        assert_eq!(meta["ownerReferences"][0]["kind"], "Service");
        assert_eq!(meta["ownerReferences"][0]["name"], service);
        assert_eq!(slice["addressType"], "IPv4");
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            let ready = ep["conditions"]["ready"] == json!(true);
            for ip in ep["addresses"].as_array().unwrap() {
                seen.insert((
                    ip.as_str().unwrap().to_owned(),
                    ready,
                    ports(&slice["ports"]),
                ));
            }
        }
    }
    seen
}

/// Waits until both the Endpoints and the slices of `service` hold exactly `want`.
fn both_become(s: &Server, service: &str, want: &BTreeSet<Address>, what: &str) {
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let done = poll(30, || {
        last = (endpoints(s, service), slices(s, service));
        (last.0 == *want && last.1 == *want).then_some(())
    });
    assert!(
        done.is_some(),
        "{what}: wanted {want:?}\n  endpoints: {:?}\n  slices:    {:?}",
        last.0,
        last.1
    );
}

/// Like `eventually`, but hands back `None` on timeout so the caller can say what it saw.
fn poll<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn address(ip: &str, ready: bool, ports: &[&str]) -> Address {
    (
        ip.to_owned(),
        ready,
        ports.iter().map(|p| (*p).to_owned()).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_the_selected_pods() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;

    s.ok_stdin(
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9100, "targetPort": 9100}]},
        })
        .to_string(),
    );
    create_pod(&s, "web-a", "n1", "web", 8080, json!({}));
    create_pod(&s, "web-b", "n2", "web", 8081, json!({}));
    create_pod(
        &s,
        "web-slow",
        "n1",
        "web",
        8080,
        json!({ NEVER_READY: "true" }),
    );
    create_pod(&s, "db", "n2", "db", 5432, json!({}));
    let (a, b, slow) = (
        pod_ip(&s, "web-a"),
        pod_ip(&s, "web-b"),
        pod_ip(&s, "web-slow"),
    );
    pod_ip(&s, "db");

    let mut want = BTreeSet::from([
        address(&a, true, &["http:8080", "metrics:9100"]),
        address(&b, true, &["http:8081", "metrics:9100"]),
        address(&slow, false, &["http:8080", "metrics:9100"]),
    ]);
    both_become(
        &s,
        "web",
        &want,
        "the three web pods, by the port each names http",
    );

    let ep = get_json(&s, &["get", "endpoints", "web"]);
    assert_eq!(
        ep["metadata"]["labels"]["tier"], "front",
        "the Service's labels are copied"
    );
    let target = &ep["subsets"][0]["addresses"][0];
    assert_eq!(target["targetRef"]["kind"], "Pod");
    assert!(
        target["nodeName"]
            .as_str()
            .is_some_and(|n| n == "n1" || n == "n2")
    );
    let table = s.ok(&["get", "endpoints", "web"]);
    assert!(
        table.contains("web") && table.contains(&format!("{a}:")),
        "{table}"
    );

    s.ok(&["delete", "pod", "web-a", "--wait=false"]);
    want.remove(&address(&a, true, &["http:8080", "metrics:9100"]));
    both_become(&s, "web", &want, "a deleted pod leaves");

    s.ok(&["label", "pod", "web-b", "app=other", "--overwrite"]);
    want.remove(&address(&b, true, &["http:8081", "metrics:9100"]));
    both_become(
        &s,
        "web",
        &want,
        "a relabelled pod leaves the Service it no longer matches",
    );

    create_pod(&s, "web-c", "n2", "web", 8080, json!({}));
    let c = pod_ip(&s, "web-c");
    want.insert(address(&c, true, &["http:8080", "metrics:9100"]));
    both_become(&s, "web", &want, "a new pod joins");

    s.ok(&["delete", "service", "web"]);
    eventually(30, "the Endpoints of a deleted Service to go", || {
        let out = s.kubectl(&["get", "endpoints", "web"]);
        (!out.status.success()).then_some(())
    });
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_endpoints_and_default_service_accounts() {
    let s = Server::start(&[]);

    // A Service without a selector: its owner writes the Endpoints, and they stay as written.
    for object in [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
               "spec": {"ports": [{"port": 5432}]}}),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external"},
               "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"port": 5432}]}]}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
               "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]}}),
    ] {
        s.ok_stdin(&["apply", "-f", "-"], &object.to_string());
    }
    // Once the controllers have written the selector Service's (empty) Endpoints, they
    // have surely seen the other Service too.
    eventually(30, "Endpoints for the Service with a selector", || {
        s.kubectl(&["get", "endpoints", "empty"])
            .status
            .success()
            .then_some(())
    });
    eventually(30, "a placeholder EndpointSlice for it", || {
        let list = get_json(
            &s,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=empty",
            ],
        );
        (list["items"].as_array().unwrap().len() == 1).then_some(())
    });
    assert_eq!(
        endpoints(&s, "external"),
        BTreeSet::from([address("192.0.2.7", true, &[":5432"])]),
        "hand-written Endpoints are left alone"
    );
    let managed = get_json(
        &s,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=external",
        ],
    );
    assert_eq!(
        managed["items"],
        json!([]),
        "no slices for a Service without a selector"
    );

    // Every namespace gets a default ServiceAccount, and keeps it.
    s.ok(&["create", "namespace", "team-a"]);
    let first = eventually(30, "the default ServiceAccount of a new namespace", || {
        let out = s.kubectl(&[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    });
    s.ok(&["delete", "serviceaccount", "default", "-n", "team-a"]);
    eventually(30, "the default ServiceAccount to come back", || {
        let out = s.kubectl(&[
            "get",
            "serviceaccount",
            "default",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.metadata.uid}",
        ]);
        let uid = String::from_utf8(out.stdout).unwrap();
        (out.status.success() && uid != first).then_some(())
    });
    eventually(30, "the default namespace's account too", || {
        s.kubectl(&["get", "serviceaccount", "default"])
            .status
            .success()
            .then_some(())
    });
}
