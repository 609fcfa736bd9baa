//! Named cases built from objects as a cluster stores them, each checked against what
//! Kubernetes 1.33 prints for the same object.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;

const NOW: &str = "2025-03-10T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// `now` minus `seconds`, as an RFC 3339 timestamp.
fn ago(seconds: i64) -> String {
    now()
        .checked_sub(SignedDuration::from_secs(seconds))
        .unwrap()
        .to_string()
}

fn cells(api_version: &str, kind: &str, obj: &Value) -> Vec<Value> {
    row(api_version, kind, obj, now())
}

fn names(columns: &[ColumnDefinition]) -> Vec<(String, i32)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.priority))
        .collect()
}

fn pod(containers: &[&str], status: Value) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|n| json!({"name": n, "image": "busybox:1.36"}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-7d4b9", "namespace": "default", "creationTimestamp": ago(3600 * 5 + 60 * 3),
                     "labels": {"app": "web"}},
        "spec": {"containers": containers, "nodeName": "node-1"},
        "status": status,
    })
}

/// NAME READY STATUS RESTARTS AGE.
fn short(cells: &[Value]) -> Vec<Value> {
    cells[..5].to_vec()
}

#[test]
fn pod_status_cases() {
    struct Case {
        name: &'static str,
        pod: Value,
        want: [&'static str; 4],
    }
    let cases = vec![
        Case {
            name: "running and ready",
            pod: pod(
                &["app"],
                json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}}]}),
            ),
            want: ["1/1", "Running", "0", "5h3m"],
        },
        Case {
            name: "crash loop with 5 restarts, the last 5 minutes ago",
            pod: pod(
                &["app"],
                json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}}]}),
            ),
            want: ["0/1", "CrashLoopBackOff", "5 (5m ago)", "5h3m"],
        },
        Case {
            name: "second of two init containers running",
            pod: {
                let mut p = pod(
                    &["app"],
                    json!({"phase": "Pending",
                    "conditions": [{"type": "Initialized", "status": "False"}],
                    "initContainerStatuses": [
                        {"name": "migrate", "ready": true, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "warm-cache", "ready": false, "restartCount": 0, "state": {"running": {}}}],
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                );
                p["spec"]["initContainers"] = json!([{"name": "migrate"}, {"name": "warm-cache"}]);
                p
            },
            want: ["0/1", "Init:1/2", "0", "5h3m"],
        },
        Case {
            name: "init container in crash loop counts its restarts",
            pod: {
                let mut p = pod(
                    &["app"],
                    json!({"phase": "Pending", "initContainerStatuses": [{
                    "name": "migrate", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 2, "finishedAt": ago(42)}}}],
                    "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                );
                p["spec"]["initContainers"] = json!([{"name": "migrate"}]);
                p
            },
            want: ["0/1", "Init:CrashLoopBackOff", "3 (42s ago)", "5h3m"],
        },
        Case {
            name: "init container failed without a reason",
            pod: {
                let mut p = pod(
                    &["app"],
                    json!({"phase": "Pending", "initContainerStatuses": [{
                    "name": "migrate", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]}),
                );
                p["spec"]["initContainers"] = json!([{"name": "migrate"}]);
                p
            },
            want: ["0/1", "Init:ExitCode:3", "0", "5h3m"],
        },
        Case {
            name: "completed job pod",
            pod: pod(
                &["job"],
                json!({"phase": "Succeeded", "containerStatuses": [{
                "name": "job", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(1000)}}}]}),
            ),
            want: ["0/1", "Completed", "0", "5h3m"],
        },
        Case {
            name: "one container completed, the other still serving",
            pod: pod(
                &["sidecar", "app"],
                json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "sidecar", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            want: ["1/2", "Running", "0", "5h3m"],
        },
        Case {
            name: "terminating pod",
            pod: {
                let mut p = pod(
                    &["app"],
                    json!({"phase": "Running", "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
                );
                p["metadata"]["deletionTimestamp"] = json!(ago(-30));
                p
            },
            want: ["1/1", "Terminating", "0", "5h3m"],
        },
        Case {
            name: "a finished pod being deleted keeps its phase",
            pod: {
                let mut p = pod(
                    &["job"],
                    json!({"phase": "Failed", "containerStatuses": [
                    {"name": "job", "restartCount": 0, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
                );
                p["metadata"]["deletionTimestamp"] = json!(ago(-30));
                p
            },
            want: ["0/1", "Error", "0", "5h3m"],
        },
        Case {
            name: "pod on a lost node being deleted",
            pod: {
                let mut p = pod(&["app"], json!({"phase": "Running", "reason": "NodeLost"}));
                p["metadata"]["deletionTimestamp"] = json!(ago(10));
                p
            },
            want: ["0/1", "Unknown", "0", "5h3m"],
        },
        Case {
            name: "OOMKilled",
            pod: pod(
                &["app"],
                json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "restartCount": 1, "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": ago(7)}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": ago(90)}}}]}),
            ),
            want: ["0/1", "OOMKilled", "1 (90s ago)", "5h3m"],
        },
        Case {
            name: "image cannot be pulled",
            pod: pod(
                &["app"],
                json!({"phase": "Pending", "containerStatuses": [{
                "name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
            ),
            want: ["0/1", "ErrImagePull", "0", "5h3m"],
        },
        Case {
            name: "killed by a signal, no reason given",
            pod: pod(
                &["app"],
                json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}),
            ),
            want: ["0/1", "Signal:9", "0", "5h3m"],
        },
        Case {
            name: "restartable init container (sidecar) counts as a container",
            pod: {
                let mut p = pod(
                    &["app"],
                    json!({"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                        "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}],
                    "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
                );
                p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
                p
            },
            want: ["2/2", "Running", "2 (10m ago)", "5h3m"],
        },
        Case {
            name: "scheduling gated",
            pod: pod(
                &["app"],
                json!({"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            want: ["0/1", "SchedulingGated", "0", "5h3m"],
        },
        Case {
            name: "evicted: the pod's own reason",
            pod: pod(
                &["app"],
                json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
            ),
            want: ["0/1", "Evicted", "0", "5h3m"],
        },
    ];
    for case in cases {
        let got = short(&cells("v1", "Pod", &case.pod));
        let want: Vec<Value> = std::iter::once(json!("web-7d4b9"))
            .chain(case.want.iter().map(|s| json!(s)))
            .collect();
        assert_eq!(got, want, "case {:?}", case.name);
    }
}

#[test]
fn pod_wide_columns() {
    let mut p = pod(
        &["app"],
        json!({"phase": "Running", "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}],
        "nominatedNodeName": "node-2",
        "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}),
    );
    p["spec"]["readinessGates"] =
        json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]);
    assert_eq!(
        cells("v1", "Pod", &p)[5..],
        [
            json!("10.244.1.7"),
            json!("node-1"),
            json!("node-2"),
            json!("1/2")
        ]
    );

    let unscheduled = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
    assert_eq!(
        cells("v1", "Pod", &unscheduled)[5..],
        [
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    let cols = names(&columns("v1", "Pod"));
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
}

#[test]
fn finished_pods_carry_a_completed_row_condition() {
    let done = pod(&["job"], json!({"phase": "Succeeded"}));
    let t = to_table(
        "v1",
        "Pod",
        &[done],
        IncludeObject::None,
        now(),
        &ListMeta::default(),
    );
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
    let running = pod(&["app"], json!({"phase": "Running"}));
    let t = to_table(
        "v1",
        "Pod",
        &[running],
        IncludeObject::None,
        now(),
        &ListMeta::default(),
    );
    assert!(t["rows"][0].get("conditions").is_none());
}

fn deployment(replicas: Option<i64>, status: Value) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(86400 * 3 + 3600 * 4)},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "edge"]}]},
            "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27"}, {"name": "exporter", "image": "nginx/exporter:1.1"}]}},
        },
        "status": status,
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

#[test]
fn deployment_cases() {
    let mid_rollout = deployment(
        Some(3),
        json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 2}),
    );
    assert_eq!(
        cells("apps/v1", "Deployment", &mid_rollout),
        [
            json!("web"),
            json!("2/3"),
            json!(1),
            json!(2),
            json!("3d4h"),
            json!("nginx,exporter"),
            json!("nginx:1.27,nginx/exporter:1.1"),
            json!("app=web,tier in (edge,fe)"),
        ]
    );
    // An undefaulted deployment wants one replica; a new one has no status yet.
    assert_eq!(
        cells("apps/v1", "Deployment", &deployment(None, json!({})))[1..4],
        [json!("0/1"), json!(0), json!(0)]
    );
    assert_eq!(
        names(&columns("apps/v1", "Deployment")),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
}

#[test]
fn replica_set_and_friends() {
    let rs = json!({
        "metadata": {"name": "web-6b7f", "creationTimestamp": ago(600)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "6b7f"}},
                 "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 3, "readyReplicas": 2},
    });
    assert_eq!(
        cells("apps/v1", "ReplicaSet", &rs),
        [
            json!("web-6b7f"),
            json!(3),
            json!(3),
            json!(2),
            json!("10m"),
            json!("nginx"),
            json!("nginx:1.27"),
            json!("app=web,pod-template-hash=6b7f")
        ]
    );
    let mut no_selector = rs.clone();
    no_selector["spec"]["selector"] = json!({});
    assert_eq!(
        cells("apps/v1", "ReplicaSet", &no_selector)[7],
        json!("<none>")
    );

    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:17"}]}}},
                     "status": {"readyReplicas": 1}});
    assert_eq!(
        cells("apps/v1", "StatefulSet", &sts),
        [
            json!("db"),
            json!("1/3"),
            json!("<unknown>"),
            json!("pg"),
            json!("postgres:17")
        ]
    );

    let ds = json!({"metadata": {"name": "agent", "creationTimestamp": ago(59)},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"nodeSelector": {"sextant.dev/wasm": "true", "kubernetes.io/os": "linux"},
                 "containers": [{"name": "agent", "image": "agent:2"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
    assert_eq!(
        cells("apps/v1", "DaemonSet", &ds),
        [
            json!("agent"),
            json!(3),
            json!(3),
            json!(2),
            json!(3),
            json!(2),
            json!("kubernetes.io/os=linux,sextant.dev/wasm=true"),
            json!("59s"),
            json!("agent"),
            json!("agent:2"),
            json!("app=agent")
        ]
    );
}

#[test]
fn service_cases() {
    struct Case {
        name: &'static str,
        spec: Value,
        status: Value,
        want: [&'static str; 4],
    }
    let cases = [
        Case {
            name: "NodePort with two ports",
            spec: json!({"type": "NodePort", "clusterIP": "10.96.14.2", "clusterIPs": ["10.96.14.2"], "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                          {"name": "https", "port": 443, "targetPort": 8443, "nodePort": 30443, "protocol": "TCP"}]}),
            status: json!({}),
            want: [
                "NodePort",
                "10.96.14.2",
                "<none>",
                "80:30080/TCP,443:30443/TCP",
            ],
        },
        Case {
            name: "headless, UDP",
            spec: json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 53, "protocol": "UDP"}]}),
            status: json!({}),
            want: ["ClusterIP", "None", "<none>", "53/UDP"],
        },
        Case {
            name: "load balancer still pending",
            spec: json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"], "ports": [{"port": 443, "nodePort": 31443}]}),
            status: json!({"loadBalancer": {}}),
            want: ["LoadBalancer", "10.96.0.9", "<pending>", "443:31443/TCP"],
        },
        Case {
            name: "load balancer with addresses and external IPs, never cut short",
            spec: json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"], "externalIPs": ["192.0.2.10"], "ports": [{"port": 80}]}),
            status: json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}]}}),
            want: [
                "LoadBalancer",
                "10.96.0.9",
                "203.0.113.7,lb.example.com,192.0.2.10",
                "80/TCP",
            ],
        },
        Case {
            name: "external name without ports",
            spec: json!({"type": "ExternalName", "externalName": "db.example.com"}),
            status: json!({}),
            want: ["ExternalName", "<none>", "db.example.com", "<none>"],
        },
    ];
    for case in cases {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": ago(7200)}, "spec": case.spec, "status": case.status});
        let got = cells("v1", "Service", &svc);
        let want: Vec<Value> = case.want.iter().map(|s| json!(s)).collect();
        assert_eq!(got[1..5], want[..], "case {:?}", case.name);
        assert_eq!(got[5], json!("120m"), "case {:?}", case.name);
    }
    let svc =
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"tier": "fe", "app": "web"}}});
    assert_eq!(cells("v1", "Service", &svc)[6], json!("app=web,tier=fe"));
    let svc = json!({"metadata": {"name": "web"}, "spec": {}});
    assert_eq!(cells("v1", "Service", &svc)[6], json!("<none>"));
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]},
        {"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 8080}]}]});
    assert_eq!(
        cells("v1", "Endpoints", &ep)[1],
        json!("10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 2 more...")
    );
    let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("v1", "Endpoints", &ep)[1], json!("[fd00::3]:80"));
    let ep =
        json!({"metadata": {"name": "headless"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    assert_eq!(cells("v1", "Endpoints", &ep)[1], json!("10.0.0.1"));
    let ep = json!({"metadata": {"name": "none"}});
    assert_eq!(cells("v1", "Endpoints", &ep)[1], json!("<none>"));

    let slice = json!({"metadata": {"name": "web-abcde", "creationTimestamp": ago(30)}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "grpc"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    assert_eq!(
        cells("discovery.k8s.io/v1", "EndpointSlice", &slice),
        [
            json!("web-abcde"),
            json!("IPv4"),
            json!("8080,grpc,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
            json!("30s")
        ]
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
    assert_eq!(
        cells("discovery.k8s.io/v1", "EndpointSlice", &empty)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
}

#[test]
fn node_cases() {
    let cordoned_not_ready = json!({
        "metadata": {"name": "edge-1", "creationTimestamp": ago(86400 * 45 + 3600),
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "", "kubernetes.io/role": "edge",
                                "sextant.dev/wasm": "true"}},
        "spec": {"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}],
            "addresses": [{"type": "Hostname", "address": "edge-1"}, {"type": "InternalIP", "address": "192.168.1.20"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-sextant", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-18-amd64"},
        },
    });
    assert_eq!(
        cells("v1", "Node", &cordoned_not_ready),
        [
            json!("edge-1"),
            json!("NotReady,SchedulingDisabled"),
            json!("control-plane,edge"),
            json!("45d"),
            json!("v1.33.0-sextant"),
            json!("192.168.1.20"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("6.1.0-18-amd64"),
            json!("<unknown>"),
        ]
    );
    let new_node = json!({"metadata": {"name": "n"}, "status": {}});
    assert_eq!(
        cells("v1", "Node", &new_node)[1..3],
        [json!("Unknown"), json!("<none>")]
    );
    let ready = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(cells("v1", "Node", &ready)[1], json!("Ready"));
}

#[test]
fn small_core_kinds() {
    let ns = json!({"metadata": {"name": "team-a", "creationTimestamp": ago(86400 * 400)}, "status": {"phase": "Terminating"}});
    assert_eq!(
        cells("v1", "Namespace", &ns),
        [json!("team-a"), json!("Terminating"), json!("400d")]
    );

    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(5)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells("v1", "ConfigMap", &cm),
        [json!("cfg"), json!(3), json!("5s")]
    );

    let secret = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("v1", "Secret", &secret),
        [
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("<unknown>")
        ]
    );

    let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(3 * 365 * 86400 + 86400 * 3)}});
    assert_eq!(
        cells("v1", "ServiceAccount", &sa),
        [json!("default"), json!(0), json!("3y3d")]
    );

    let lease = json!({"metadata": {"name": "sextant-scheduler"}, "spec": {"holderIdentity": "node-1_4f2a"}});
    assert_eq!(
        cells("coordination.k8s.io/v1", "Lease", &lease)[1],
        json!("node-1_4f2a")
    );
    let free = json!({"metadata": {"name": "x"}, "spec": {}});
    assert_eq!(
        cells("coordination.k8s.io/v1", "Lease", &free)[1],
        json!("")
    );

    let rc =
        json!({"metadata": {"name": "wasm", "creationTimestamp": ago(61)}, "handler": "wasmtime"});
    assert_eq!(
        cells("node.k8s.io/v1", "RuntimeClass", &rc),
        [json!("wasm"), json!("wasmtime"), json!("61s")]
    );
    assert_eq!(columns("node.k8s.io/v1", "RuntimeClass")[1].name, "Handler");
}

#[test]
fn resource_quota_splits_requests_and_limits() {
    let quota = json!({"metadata": {"name": "compute", "creationTimestamp": ago(120)},
        "status": {"hard": {"requests.cpu": "2", "pods": "10", "limits.memory": "4Gi", "limits.cpu": "4"},
                   "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}}});
    assert_eq!(
        cells("v1", "ResourceQuota", &quota),
        [
            json!("compute"),
            json!("pods: 3/10, requests.cpu: 500m/2"),
            json!("limits.cpu: 1/4, limits.memory: 0/4Gi"),
            json!("2m")
        ]
    );
}

#[test]
fn default_convertor_kinds_show_created_at() {
    let lr = json!({"metadata": {"name": "limits", "creationTimestamp": "2024-11-02T08:09:10Z"}});
    assert_eq!(
        cells("v1", "LimitRange", &lr),
        [json!("limits"), json!("2024-11-02T08:09:10Z")]
    );
    let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2025-01-01T00:00:00+02:00"}});
    assert_eq!(
        cells("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd)[1],
        json!("2024-12-31T22:00:00Z")
    );
    let cols = columns("apiextensions.k8s.io/v1", "CustomResourceDefinition");
    assert_eq!(
        (cols[1].name.as_str(), cols[1].type_.as_str()),
        ("Created At", "date")
    );
    // Anything unknown is a custom resource without printer columns.
    let cols = columns("example.com/v1", "Widget");
    assert_eq!(
        names(&cols),
        [("Name".to_string(), 0), ("Age".to_string(), 0)]
    );
    let widget = json!({"metadata": {"name": "w", "creationTimestamp": ago(3600 * 30)}});
    assert_eq!(
        cells("example.com/v1", "Widget", &widget),
        [json!("w"), json!("30h")]
    );
}

#[test]
fn event_cases() {
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web-7d4b9.17c2a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-7d4b9", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container app\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(3600), "lastTimestamp": ago(95), "count": 14,
    });
    assert_eq!(
        cells("v1", "Event", &core),
        [
            json!("95s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-7d4b9"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Back-off restarting failed container app"),
            json!("60m"),
            json!(14),
            json!("web-7d4b9.17c2a")
        ]
    );
    // The new API: eventTime instead of timestamps, a series instead of a count. The first
    // sighting is 59m59.9s ago, which truncates to 59m.
    let new_api = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "node-1.abc"},
        "regarding": {"kind": "Node", "name": "node-1"},
        "reason": "Starting", "type": "Normal", "note": "Starting kubelet.",
        "reportingController": "sextant.dev/wasm-kubelet", "reportingInstance": "node-1",
        "eventTime": "2025-03-10T11:00:00.123456Z",
        "series": {"count": 3, "lastObservedTime": "2025-03-10T11:59:00.000000Z"},
    });
    assert_eq!(
        cells("events.k8s.io/v1", "Event", &new_api),
        [
            json!("60s"),
            json!("Normal"),
            json!("Starting"),
            json!("node/node-1"),
            json!(""),
            json!("sextant.dev/wasm-kubelet, node-1"),
            json!("Starting kubelet."),
            json!("59m"),
            json!(3),
            json!("node-1.abc")
        ]
    );
    let once = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Namespace"}, "eventTime": ago(4)});
    let got = cells("v1", "Event", &once);
    assert_eq!(
        (got[0].clone(), got[3].clone(), got[8].clone()),
        (json!("4s"), json!("namespace"), json!(1))
    );
    assert_eq!(
        names(&columns("v1", "Event"))
            .iter()
            .filter(|(_, p)| *p == 0)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
}

#[test]
fn job_cases() {
    struct Case {
        name: &'static str,
        spec: Value,
        status: Value,
        deleting: bool,
        want: [&'static str; 3],
    }
    let cases = [
        Case {
            name: "completed in 45s",
            spec: json!({"completions": 1, "parallelism": 1}),
            status: json!({"succeeded": 1, "startTime": ago(600), "completionTime": ago(555),
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
            deleting: false,
            want: ["Complete", "1/1", "45s"],
        },
        Case {
            name: "running, work queue with parallelism",
            spec: json!({"parallelism": 4}),
            status: json!({"succeeded": 2, "active": 2, "startTime": ago(185)}),
            deleting: false,
            want: ["Running", "2/1 of 4", "3m5s"],
        },
        Case {
            name: "failed",
            spec: json!({"completions": 5}),
            status: json!({"failed": 7, "startTime": ago(4000), "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
            deleting: false,
            want: ["Failed", "0/5", "66m"],
        },
        Case {
            name: "suspended before starting",
            spec: json!({"completions": 2, "suspend": true}),
            status: json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
            deleting: false,
            want: ["Suspended", "0/2", ""],
        },
        Case {
            name: "being deleted",
            spec: json!({}),
            status: json!({"startTime": ago(10)}),
            deleting: true,
            want: ["Terminating", "0/1", "10s"],
        },
    ];
    for case in cases {
        let mut job = json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)}, "spec": case.spec, "status": case.status});
        job["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}});
        job["spec"]["template"] =
            json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}});
        if case.deleting {
            job["metadata"]["deletionTimestamp"] = json!(ago(1));
        }
        let got = cells("batch/v1", "Job", &job);
        let want: Vec<Value> = case.want.iter().map(|s| json!(s)).collect();
        assert_eq!(got[1..4], want[..], "case {:?}", case.name);
        assert_eq!(
            got[4..],
            [
                json!("10m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=1234")
            ]
        );
    }
}

#[test]
fn cron_job() {
    let cj = json!({"metadata": {"name": "backup", "creationTimestamp": ago(86400 * 10)},
        "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "backup:1"}]}}}}},
        "status": {"active": [{"name": "backup-29012345"}], "lastScheduleTime": ago(120)}});
    assert_eq!(
        cells("batch/v1", "CronJob", &cj),
        [
            json!("backup"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("2m"),
            json!("10d"),
            json!("b"),
            json!("backup:1"),
            json!("<none>")
        ]
    );
    let never = json!({"metadata": {"name": "n"}, "spec": {"schedule": "@daily", "timeZone": "Europe/Paris"}});
    let got = cells("batch/v1", "CronJob", &never);
    assert_eq!(
        got[2..6],
        [
            json!("Europe/Paris"),
            json!("<unset>"),
            json!(0),
            json!("<none>")
        ]
    );
}

#[test]
fn age_formatting_boundaries() {
    let cases: [(i64, &str); 28] = [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (3600 * 3 - 1, "179m"),
        (3600 * 3, "3h"),
        (3600 * 5 + 60 * 30 + 59, "5h30m"),
        (3600 * 8 - 1, "7h59m"),
        (3600 * 8, "8h"),
        (3600 * 48 - 1, "47h"),
        (3600 * 48, "2d"),
        (3600 * 51, "2d3h"),
        (86400 * 8 - 1, "7d23h"),
        (86400 * 8, "8d"),
        (86400 * 45, "45d"),
        (86400 * 730 - 1, "729d"),
        (86400 * 730, "2y"),
        (86400 * 733, "2y3d"),
        (86400 * 365 * 8 - 1, "7y364d"),
        (86400 * 365 * 8, "8y"),
        (86400 * 365 * 20, "20y"),
        (86400 * 365 * 2 + 86400 * 364, "2y364d"),
    ];
    for (seconds, want) in cases {
        assert_eq!(
            human_duration(SignedDuration::from_secs(seconds)),
            want,
            "{seconds}s"
        );
    }
    // Go truncates fractions towards zero: 1.9s below zero still counts as now.
    assert_eq!(human_duration(SignedDuration::from_millis(-1900)), "0s");
    assert_eq!(human_duration(SignedDuration::from_millis(119_999)), "119s");
}

#[test]
fn table_json_shape_matches_meta_v1() {
    let p = pod(&["app"], json!({"phase": "Running"}));
    let list_meta = ListMeta {
        resource_version: Some("1234".into()),
        continue_: Some("eyJ2IjoxfQ".into()),
        ..Default::default()
    };
    let t = to_table(
        "v1",
        "Pod",
        std::slice::from_ref(&p),
        IncludeObject::Metadata,
        now(),
        &list_meta,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "1234", "continue": "eyJ2IjoxfQ"})
    );
    // TableColumnDefinition: all five fields, always present.
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": descriptions::NAME, "priority": 0})
    );
    assert_eq!(
        t["columnDefinitions"][5]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["description", "format", "name", "priority", "type"]
    );
    let row = &t["rows"][0];
    assert_eq!(
        row["cells"].as_array().unwrap().len(),
        t["columnDefinitions"].as_array().unwrap().len()
    );
    assert_eq!(
        row["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
    );

    let t = to_table(
        "v1",
        "Pod",
        std::slice::from_ref(&p),
        IncludeObject::None,
        now(),
        &ListMeta::default(),
    );
    assert_eq!(t["metadata"], json!({}));
    assert_eq!(t["rows"][0]["object"], Value::Null);

    let bare = json!({"metadata": {"name": "x"}, "spec": {"containers": []}});
    let t = to_table(
        "v1",
        "Pod",
        &[bare],
        IncludeObject::Object,
        now(),
        &ListMeta::default(),
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "Pod");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "v1");
    assert_eq!(t["rows"][0]["object"]["spec"], json!({"containers": []}));

    let t = to_table(
        "v1",
        "Pod",
        &[],
        IncludeObject::Metadata,
        now(),
        &ListMeta::default(),
    );
    assert_eq!(t["rows"], json!([]));

    // What kubectl decodes: the types deserialize back.
    let defs: Vec<ColumnDefinition> =
        serde_json::from_value(columns_json("apps/v1", "Deployment")).unwrap();
    assert_eq!(defs, columns("apps/v1", "Deployment"));
}

fn columns_json(api_version: &str, kind: &str) -> Value {
    to_table(
        api_version,
        kind,
        &[],
        IncludeObject::None,
        now(),
        &ListMeta::default(),
    )["columnDefinitions"]
        .clone()
}

#[test]
fn include_object_query_values() {
    assert_eq!(
        IncludeObject::from_query(None),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(
        IncludeObject::from_query(Some("")),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(
        IncludeObject::from_query(Some("Metadata")),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(
        IncludeObject::from_query(Some("None")),
        Some(IncludeObject::None)
    );
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        Some(IncludeObject::Object)
    );
    assert_eq!(IncludeObject::from_query(Some("object")), None);
}

#[test]
fn every_printer_fills_every_column_even_for_an_empty_object() {
    let kinds = [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("v1", "ReplicationController"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("v1", "Service"),
        ("v1", "Endpoints"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("v1", "Node"),
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("v1", "Event"),
        ("events.k8s.io/v1", "Event"),
        ("coordination.k8s.io/v1", "Lease"),
        ("node.k8s.io/v1", "RuntimeClass"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("example.com/v1alpha1", "Widget"),
    ];
    for (api_version, kind) in kinds {
        for obj in [
            json!({}),
            json!({"metadata": {"name": "x", "creationTimestamp": NOW}}),
        ] {
            let cols = columns(api_version, kind);
            let got = row(api_version, kind, &obj, now());
            assert_eq!(got.len(), cols.len(), "{api_version} {kind}");
            assert_eq!(
                cols.iter().filter(|c| c.format == "name").count(),
                1,
                "{api_version} {kind}"
            );
        }
    }
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_string(),
        type_: type_.to_string(),
        json_path: json_path.to_string(),
        ..Default::default()
    }
}

#[test]
fn custom_resource_columns() {
    let mut wide = column("Image", "string", ".spec.template.image");
    wide.priority = Some(1);
    wide.description = Some("The image each replica runs.".into());
    let columns = [
        column("Replicas", "integer", ".spec.replicas"),
        column(
            "Ready",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].status",
        ),
        column(
            "Reason",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].reason",
        ),
        column("Score", "number", ".status.score"),
        column("Paused", "boolean", ".spec.paused"),
        column("Ports", "string", ".spec.ports[*].port"),
        column("Labels", "string", ".metadata.labels"),
        column(
            "App",
            "string",
            ".metadata.labels['app.kubernetes.io/name']",
        ),
        column("Last Sync", "date", ".status.lastSyncTime"),
        column("Age", "date", ".metadata.creationTimestamp"),
        wide,
    ];
    let widget = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": ago(182),
                     "labels": {"app.kubernetes.io/name": "widget", "tier": "fe"}},
        "spec": {"replicas": 3, "paused": false, "ports": [{"port": 80}, {"port": 443}], "template": {"image": "wasm://reg/w:1"}},
        "status": {"score": 0.75, "lastSyncTime": "not a time",
                   "conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False", "reason": "Degraded"}]},
    });
    let t = to_table_with_columns(
        &columns,
        "example.com/v1",
        "Widget",
        std::slice::from_ref(&widget),
        IncludeObject::Metadata,
        now(),
        &ListMeta::default(),
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "w1",
            3,
            "False",
            "Degraded",
            0.75,
            false,
            "80",
            "{\"app.kubernetes.io/name\":\"widget\",\"tier\":\"fe\"}",
            "widget",
            "<invalid>",
            "3m2s",
            "wasm://reg/w:1"
        ])
    );
    let defs = &t["columnDefinitions"];
    assert_eq!(defs.as_array().unwrap().len(), 12);
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(
        defs[1],
        json!({"name": "Replicas", "type": "integer", "format": "", "priority": 0,
        "description": "Custom resource definition column (in JSONPath format): .spec.replicas"})
    );
    assert_eq!(
        (
            defs[11]["priority"].clone(),
            defs[11]["description"].clone()
        ),
        (json!(1), json!("The image each replica runs."))
    );

    // Missing fields and values of the wrong type print as empty cells.
    let sparse = json!({"metadata": {"name": "w2"}, "spec": {"replicas": "three", "paused": "no"}, "status": {"score": "high"}});
    let got = custom_row(&columns, &sparse, now());
    assert_eq!(
        got,
        [
            json!("w2"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );

    // A string column renders numbers and booleans as text; integers truncate floats.
    let typed = [
        column("N", "string", ".a"),
        column("B", "string", ".b"),
        column("I", "integer", ".c"),
        column("F", "string", ".d"),
    ];
    let obj = json!({"metadata": {"name": "t"}, "a": 2, "b": true, "c": 2.9, "d": 0.00001});
    assert_eq!(
        custom_row(&typed, &obj, now()),
        [
            json!("t"),
            json!("2"),
            json!("true"),
            json!(2),
            json!("1e-05")
        ]
    );

    // A CRD without printer columns shows AGE.
    assert_eq!(
        custom_columns(&[])
            .iter()
            .map(|c| (c.name.as_str(), c.type_.as_str()))
            .collect::<Vec<_>>(),
        [("Name", "string"), ("Age", "date")]
    );
    assert_eq!(
        custom_row(&[], &widget, now()),
        [json!("w1"), json!("3m2s")]
    );
}

#[test]
fn json_path_subset() {
    let obj = json!({
        "spec": {"a.b": {"c": 1}, "list": [{"n": 1, "k": "x"}, {"n": 2, "k": "y"}, {"n": 3}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    let find = |path: &str| -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(&obj)
            .into_iter()
            .cloned()
            .collect()
    };
    assert_eq!(find(".spec.list[1].n"), [json!(2)]);
    assert_eq!(find("{.spec.list[-1].n}"), [json!(3)]);
    assert_eq!(find("$.spec.list[*].k"), [json!("x"), json!("y")]);
    assert_eq!(find(".spec.list[?(@.n > 1)].n"), [json!(2), json!(3)]);
    // An element without the field never matches, `!=` included (as in Kubernetes).
    assert_eq!(find(".spec.list[?(@.k != 'x')].n"), [json!(2)]);
    assert_eq!(find(".spec.list[?(@.k)].n"), [json!(1), json!(2)]);
    assert_eq!(find(".spec['a.b'].c"), [json!(1)]);
    assert_eq!(find(".spec.a\\.b.c"), [json!(1)]);
    assert_eq!(
        find(".status.conditions[?(@.type == \"Ready\")].status"),
        [json!("True")]
    );
    assert_eq!(find(".spec.missing.deeper"), Vec::<Value>::new());
    assert_eq!(find(".spec.list[7]"), Vec::<Value>::new());
    for bad in [
        "..spec",
        ".spec[",
        ".spec[?(@.a==)]",
        "spec",
        ".spec['open]",
        ".a[1:2]",
    ] {
        assert!(JsonPath::parse(bad).is_err(), "{bad:?} should not parse");
    }
}
