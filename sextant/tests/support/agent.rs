//! A simulated node agent: Node objects with no kubelet behind them, plus a small loop that
//! plays kubelet for the pods bound to them, so that scheduler and controller tests see
//! pods start, become Ready, finish and go away — through the real API, as a kubelet would
//! drive them.
//!
//! Pod annotations choose what a simulated pod does:
//! - `sim.sextant.dev/exit-code: "N"`: it ends after `sim.sextant.dev/run-seconds` (default 0),
//!   Succeeded when N is 0, Failed otherwise;
//! - `sim.sextant.dev/ready-after-seconds: "S"`: it becomes Ready S seconds after starting;
//! - `sim.sextant.dev/never-ready: "true"`: it runs but never becomes Ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const EXIT_CODE: &str = "sim.sextant.dev/exit-code";
pub const RUN_SECONDS: &str = "sim.sextant.dev/run-seconds";
pub const READY_AFTER: &str = "sim.sextant.dev/ready-after-seconds";
pub const NEVER_READY: &str = "sim.sextant.dev/never-ready";

/// One simulated node; builder methods change its defaults (4 cpu, 8Gi, 110 pods, both
/// runtimes).
#[derive(Clone, Debug)]
pub struct SimNode {
    pub name: String,
    cpu: String,
    memory: String,
    pods: u32,
    labels: BTreeMap<String, String>,
    taints: Vec<Value>,
    unschedulable: bool,
}

impl SimNode {
    pub fn new(name: &str) -> Self {
        let labels = [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("sextant.dev/wasm", "true"),
            ("sextant.dev/oci", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        SimNode {
            name: name.to_owned(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels,
            taints: vec![],
            unschedulable: false,
        }
    }
    pub fn cpu(mut self, q: &str) -> Self {
        self.cpu = q.into();
        self
    }
    pub fn memory(mut self, q: &str) -> Self {
        self.memory = q.into();
        self
    }
    pub fn pods(mut self, n: u32) -> Self {
        self.pods = n;
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    pub fn without_label(mut self, k: &str) -> Self {
        self.labels.remove(k);
        self
    }
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.taints
            .push(json!({"key": key, "value": value, "effect": effect}));
        self
    }
    pub fn unschedulable(mut self) -> Self {
        self.unschedulable = true;
        self
    }

    fn object(&self) -> Node {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels},
            "spec": {"taints": self.taints, "unschedulable": self.unschedulable},
        }))
        .unwrap()
    }

    fn status(&self) -> Value {
        let resources =
            json!({"cpu": self.cpu, "memory": self.memory, "pods": self.pods.to_string()});
        json!({"status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [ready_condition()],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.33.0-sim",
                "containerRuntimeVersion": "sim://1", "kernelVersion": "", "osImage": "simulated",
                "bootID": "", "machineID": "", "systemUUID": "", "kubeProxyVersion": "",
            },
        }})
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn ready_condition() -> Value {
    json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
           "message": "simulated kubelet is posting ready status",
           "lastHeartbeatTime": now(), "lastTransitionTime": now()})
}

/// What the agent knows of one pod it runs.
struct Running {
    started: Instant,
    ready: bool,
}

struct Shared {
    silenced: HashSet<String>,
}

pub struct Agent {
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Registers `nodes` and starts heartbeating them and running their pods.
    pub async fn start(client: kube::Client, nodes: Vec<SimNode>) -> Agent {
        let node_api: Api<Node> = Api::all(client.clone());
        for n in &nodes {
            match node_api.create(&PostParams::default(), &n.object()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("cannot create node {}: {e}", n.name),
            }
            node_api
                .patch_status(&n.name, &PatchParams::default(), &Patch::Merge(n.status()))
                .await
                .unwrap();
        }
        let shared = Arc::new(Mutex::new(Shared {
            silenced: HashSet::new(),
        }));
        let stop = CancellationToken::new();
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let tasks = vec![
            tokio::spawn(heartbeat(
                client.clone(),
                names.clone(),
                shared.clone(),
                stop.clone(),
            )),
            tokio::spawn(run_pods(client, names, shared.clone(), stop.clone())),
        ];
        Agent {
            shared,
            stop,
            tasks,
        }
    }

    /// The node goes dark: no more heartbeats, no more work on its pods.
    pub fn silence(&self, node: &str) {
        self.shared.lock().unwrap().silenced.insert(node.to_owned());
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Renews each live node's Lease every second and keeps its Ready condition True (a real
/// kubelet posts status on change and every few minutes; the Lease is the heartbeat).
async fn heartbeat(
    client: kube::Client,
    nodes: Vec<String>,
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let node_api: Api<Node> = Api::all(client);
    let mut tick = 0u64;
    loop {
        for name in &nodes {
            if shared.lock().unwrap().silenced.contains(name) {
                continue;
            }
            let micro = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string();
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro},
            });
            let _ = leases
                .patch(
                    name,
                    &PatchParams::apply("sim-agent").force(),
                    &Patch::Apply(lease),
                )
                .await;
            if tick.is_multiple_of(5) {
                let _ = node_api
                    .patch_status(
                        name,
                        &PatchParams::default(),
                        &Patch::Strategic(json!({"status": {"conditions": [ready_condition()]}})),
                    )
                    .await;
            }
        }
        tick += 1;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn secs(pod: &Pod, key: &str) -> u64 {
    annotation(pod, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Watches all pods and drives those bound to live simulated nodes: level-triggered, from
/// the latest copy of each pod, on every change and every 200 ms.
async fn run_pods(
    client: kube::Client,
    nodes: Vec<String>,
    shared: Arc<Mutex<Shared>>,
    stop: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut latest: HashMap<(String, String), Pod> = HashMap::new();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut next_ip: u32 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                    if latest.get(&key(&p)).is_none_or(|old| rv(old) <= rv(&p)) {
                        latest.insert(key(&p), p);
                    }
                }
                Some(Ok(watcher::Event::Delete(p))) => {
                    latest.remove(&key(&p));
                    running.remove(p.metadata.uid.as_deref().unwrap_or_default());
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {}
        }
        let silenced = shared.lock().unwrap().silenced.clone();
        // What this pass wrote: the watch may deliver it later than the next tick, and acting
        // on the older copy would undo it (a finished pod set Running again).
        let mut written: Vec<Pod> = Vec::new();
        for pod in latest.values() {
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
                continue;
            };
            if !nodes.iter().any(|n| n == node) || silenced.contains(node) {
                continue;
            }
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let state = running.entry(uid.clone()).or_insert_with(|| Running {
                started: Instant::now(),
                ready: false,
            });
            let elapsed = state.started.elapsed().as_secs_f64();
            let started_status = phase != Some("Running");
            if let Some(code) = annotation(pod, EXIT_CODE).and_then(|c| c.parse::<i32>().ok())
                && elapsed >= secs(pod, RUN_SECONDS) as f64
            {
                let status = finished(pod, code);
                if let Ok(p) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await
                {
                    running.remove(&uid);
                    written.push(p);
                }
                continue;
            }
            let want_ready = annotation(pod, NEVER_READY) != Some("true")
                && elapsed >= secs(pod, READY_AFTER) as f64;
            if started_status || want_ready != state.ready {
                if started_status {
                    next_ip += 1;
                }
                let ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| {
                        format!("127.77.{}.{}", (next_ip >> 8) & 255, next_ip & 255)
                    });
                let status = running_status(pod, &ip, want_ready);
                if let Ok(p) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await
                {
                    state.ready = want_ready;
                    written.push(p);
                }
            }
        }
        for p in written {
            if latest.get(&key(&p)).is_none_or(|old| rv(old) <= rv(&p)) {
                latest.insert(key(&p), p);
            }
        }
    }
}

fn rv(p: &Pod) -> u64 {
    p.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn key(p: &Pod) -> (String, String) {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
    )
}

fn containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

fn condition(kind: &str, ok: bool) -> Value {
    json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now()})
}

fn running_status(pod: &Pod, ip: &str, ready: bool) -> Value {
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({
                "name": name, "image": image, "imageID": "", "ready": ready, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": now()}},
            })
        })
        .collect();
    json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
        "startTime": now(),
        "conditions": [condition("PodScheduled", true), condition("Initialized", true),
                       condition("ContainersReady", ready), condition("Ready", ready)],
        "containerStatuses": statuses,
    }})
}

fn finished(pod: &Pod, code: i32) -> Value {
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| json!({
            "name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0,
            "started": false,
            "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                                     "startedAt": now(), "finishedAt": now()}},
        }))
        .collect();
    json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "conditions": [condition("PodScheduled", true), condition("Initialized", true),
                       condition("ContainersReady", false), condition("Ready", false)],
        "containerStatuses": statuses,
    }})
}
