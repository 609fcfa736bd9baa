//! The scheduler suite: pods bound per second on 1,000 simulated nodes (Node objects with
//! no agent behind them: Ready, 32 CPU, 64Gi, 110 pods) with 10,000 pending pods, the
//! issue's workload. `--quick`: 100 nodes and 1,000 pods.
//!
//! Everything runs in this process, as in the all-in-one `sextant server`: a one-node store,
//! the API router over it, and the scheduler and the bench talking to that router through
//! a `kube::Client` on a tower service (the real routes, auth and admission, no TLS or TCP).
//! The clock starts when the scheduler starts, so its leader election, its initial lists
//! of nodes and pods, and its watches are all counted; it stops when the store holds every
//! pod bound.
//!
//! A third figure says how many pods got their `Scheduled` Event written by the time the
//! last pod was bound: Events are best effort and part of them is dropped in a burst.
//!
//! Baseline, measured in the same run: the same pods bound straight through the API
//! (round-robin over the nodes, as many bindings in flight as the scheduler allows): the
//! most the API server and store let any scheduler reach on this machine.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use http::HeaderValue;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use sextant_apiserver::{Authenticator, Identity};
use sextant_store::{EventKind, Store, StoreConfig, WatchMessage};
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::report::{Baseline, Figure, Report, Target, median};

const TOKEN: &str = "bench-token";
const NAMESPACE: &str = "default";
/// How a stored pod reads once it is bound.
const NODE_NAME: &[u8] = b"\"nodeName\":";
/// How a stored `Scheduled` Event reads.
const SCHEDULED: &[u8] = b"\"reason\":\"Scheduled\"";
/// Writes the bench keeps in flight while it fills the store.
const FILL_CONCURRENCY: usize = 256;

struct Workload {
    nodes: usize,
    pods: usize,
}

/// A store and an API server in this process, and a client that reaches it.
struct ControlPlane {
    store: Store,
    client: kube::Client,
    stop: CancellationToken,
}

impl ControlPlane {
    async fn start(dir: &Path) -> anyhow::Result<ControlPlane> {
        let store = Store::open(
            StoreConfig::new(dir, "http://127.0.0.1:1", TOKEN),
            reqwest::Client::new(),
        )
        .await?;
        store.bootstrap().await?;
        sextant_apiserver::ensure_defaults(&store).await?;
        let auth = Authenticator::default();
        auth.add_token(TOKEN.to_owned(), Identity::admin());
        let stop = CancellationToken::new();
        let router =
            sextant_apiserver::router(sextant_apiserver::state(store.clone(), auth, stop.clone()));
        let bearer = HeaderValue::from_str(&format!("Bearer {TOKEN}"))?;
        let service = ServiceBuilder::new()
            .map_request(move |mut req: http::Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, bearer.clone());
                req
            })
            .service(router);
        Ok(ControlPlane {
            store,
            client: kube::Client::new(service, NAMESPACE),
            stop,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.store.shutdown().await?;
        Ok(())
    }

    /// `n` Ready nodes with both runtimes.
    async fn add_nodes(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let names: Vec<String> = (0..n).map(|i| format!("node-{i:05}")).collect();
        futures::stream::iter(names.clone())
            .map(|name| {
                let api = api.clone();
                async move {
                    let node: Node = serde_json::from_value(json!({
                        "metadata": {"name": name, "labels": {
                            "kubernetes.io/hostname": name,
                            "sextant.dev/oci": "true",
                            "sextant.dev/wasm": "true",
                        }},
                    }))?;
                    api.create(&PostParams::default(), &node).await?;
                    let resources = json!({"cpu": "32", "memory": "64Gi", "pods": "110"});
                    let status = json!({"status": {
                        "capacity": resources,
                        "allocatable": resources,
                        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                    }});
                    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(FILL_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(names)
    }

    /// `n` pending pods, each asking for a little CPU and memory.
    async fn add_pods(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let names: Vec<String> = (0..n).map(|i| format!("pod-{i:06}")).collect();
        futures::stream::iter(names.clone())
            .map(|name| {
                let api = api.clone();
                async move {
                    let pod: Pod = serde_json::from_value(json!({
                        "metadata": {"name": name, "labels": {"app": "bench"}},
                        "spec": {"containers": [{
                            "name": "c", "image": "busybox:1.36",
                            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}},
                        }]},
                    }))?;
                    api.create(&PostParams::default(), &pod).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(FILL_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(names)
    }

    /// Resolves when `total` pods are bound. It watches the store itself, not the API: a
    /// second API watch would take as much CPU as the scheduler's own and slow what it
    /// measures.
    async fn observe(
        &self,
        total: usize,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Observed>>> {
        let pods = format!("/registry/core/pods/{NAMESPACE}/");
        let events = format!("/registry/core/events/{NAMESPACE}/");
        let mut watch = self
            .store
            .watch("/registry/core/", self.store.revision()?)
            .await?;
        Ok(tokio::spawn(async move {
            let mut bound = HashSet::new();
            let mut first = None;
            let mut scheduled_events = 0;
            loop {
                let WatchMessage::Events(changes) = watch.next().await? else {
                    continue;
                };
                for e in changes {
                    let value = &e.kv.value;
                    if e.kv.key.starts_with(&pods) && contains(value, NODE_NAME) {
                        bound.insert(e.kv.key);
                        first.get_or_insert_with(Instant::now);
                    } else if e.kind == EventKind::Created
                        && e.kv.key.starts_with(&events)
                        && contains(value, SCHEDULED)
                    {
                        scheduled_events += 1;
                    }
                }
                if bound.len() >= total {
                    let last = Instant::now();
                    return Ok(Observed {
                        first: first.unwrap_or(last),
                        last,
                        scheduled_events,
                    });
                }
            }
        }))
    }
}

/// What the store saw of one scheduler run.
struct Observed {
    first: Instant,
    last: Instant,
    /// `Scheduled` Events written by the time the last pod was bound.
    scheduled_events: usize,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One run of the scheduler: pods/s from its start, pods/s from its first binding, and the
/// share of pods whose `Scheduled` Event was written by the end (in percent).
async fn scheduler_rate(w: &Workload) -> anyhow::Result<(f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    cp.add_nodes(w.nodes).await?;
    cp.add_pods(w.pods).await?;
    let observed = cp.observe(w.pods).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let scheduler = tokio::spawn(sextant_scheduler::run(
        cp.client.clone(),
        sextant_scheduler::Config::new("bench-scheduler"),
        shutdown.clone(),
    ));
    let seen = observed.await??;
    shutdown.cancel();
    scheduler.await?;
    cp.stop().await?;
    let pods = w.pods as f64;
    Ok((
        pods / (seen.last - started).as_secs_f64(),
        pods / (seen.last - seen.first).as_secs_f64().max(1e-3),
        100.0 * seen.scheduled_events as f64 / pods,
    ))
}

/// The baseline: bindings sent straight to the API, round-robin over the nodes.
async fn direct_bind_rate(w: &Workload) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let cp = ControlPlane::start(dir.path()).await?;
    let nodes = cp.add_nodes(w.nodes).await?;
    let pods = cp.add_pods(w.pods).await?;
    let api: Api<Pod> = Api::namespaced(cp.client.clone(), NAMESPACE);
    let started = Instant::now();
    futures::stream::iter(pods.into_iter().enumerate())
        .map(|(i, pod)| {
            let api = api.clone();
            let node = nodes[i % nodes.len()].clone();
            async move {
                let binding = json!({
                    "apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": pod},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                });
                api.create_subresource::<_, serde_json::Value>(
                    "binding",
                    &pod,
                    &PostParams::default(),
                    &binding,
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(sextant_scheduler::MAX_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    let rate = w.pods as f64 / started.elapsed().as_secs_f64();
    cp.stop().await?;
    Ok(rate)
}

pub async fn run(quick: bool) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut report = Report::new("scheduler", quick);
    let w = if quick {
        Workload {
            nodes: 100,
            pods: 1_000,
        }
    } else {
        Workload {
            nodes: 1_000,
            pods: 10_000,
        }
    };
    let runs = if quick { 1 } else { 3 };

    let mut direct = Vec::new();
    for _ in 0..runs {
        direct.push(direct_bind_rate(&w).await?);
    }
    let direct = median(&mut direct);

    let (mut total, mut steady, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, s, e) = scheduler_rate(&w).await?;
        total.push(t);
        steady.push(s);
        events.push(e);
    }
    let baseline = || {
        Some(Baseline {
            name: format!(
                "bindings alone, {} in flight",
                sextant_scheduler::MAX_IN_FLIGHT
            ),
            median: direct,
        })
    };
    report.figures.push(Figure {
        name: format!(
            "pods bound/s, {} nodes, {} pods, from scheduler start",
            w.nodes, w.pods
        ),
        unit: "pods/s".into(),
        median: median(&mut total),
        p99: None,
        runs,
        baseline: baseline(),
        target: Some(Target::at_least(2_000.0)),
    });
    report.figures.push(Figure {
        name: format!(
            "pods bound/s, {} nodes, {} pods, first to last binding",
            w.nodes, w.pods
        ),
        unit: "pods/s".into(),
        median: median(&mut steady),
        p99: None,
        runs,
        baseline: baseline(),
        target: None,
    });
    // Scheduled Events are best effort (see scheduler/src/events.rs): in a burst like this one
    // part of them is dropped, as client-go drops them. Reported so the figures above are
    // read knowing what the scheduler did not write.
    report.figures.push(Figure {
        name: "pods with a Scheduled Event written by the last binding".into(),
        unit: "%".into(),
        median: median(&mut events),
        p99: None,
        runs,
        baseline: None,
        target: None,
    });
    Ok(report)
}
