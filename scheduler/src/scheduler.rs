//! The scheduling loop, run while this process leads: one task owns the cache and the
//! queue (so neither needs a lock), takes in watch changes, places pods one at a time
//! from the cache, and hands each binding to a task of its own.
//!
//! Bindings run concurrently, up to [`MAX_IN_FLIGHT`]: throughput is not one API round
//! trip per pod. A pod is assumed on its node the moment it is placed, so the next pod
//! already sees the node as fuller. A failed binding gives the node back and sends the
//! pod round again after a backoff.
//!
//! Nothing is placed until the first lists of pods, nodes and namespaces are in: placing
//! from a partial picture would overcommit nodes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::bind;
use crate::cache::Cache;
use crate::error::Error;
use crate::events::Events;
use crate::node::NodeFacts;
use crate::placement::Placer;
use crate::pod::PodInfo;
use crate::queue::Queue;
use crate::watch::{self, Change, Feeds, NamespaceLabels};

/// Bindings and status writes in flight at once: enough to keep the API server's store
/// batching writes while the loop is busy placing, few enough that a slow API server is
/// not buried. (On the 2-core benchmark, 256 bound a third more pods/s than 128.)
pub const MAX_IN_FLIGHT: usize = 256;
/// How many queued watch changes are taken in before the loop places pods again.
const CHANGES_PER_TURN: usize = 1024;
/// How often backoffs and the unschedulable retry are checked (kube-scheduler: 1 s).
const SWEEP: Duration = Duration::from_secs(1);
/// How long in-flight writes may finish after leadership ends.
const DRAIN: Duration = Duration::from_secs(5);

/// What a finished write reports back to the loop.
enum Written {
    Bound {
        pod: Arc<PodInfo>,
        node: String,
        result: Result<(), Error>,
    },
    Reported(Result<(), Error>),
}

/// Which first lists are in, and since when the scheduler has been waiting for them.
struct Synced {
    pods: bool,
    nodes: bool,
    namespaces: bool,
    since: Option<Instant>,
}

impl Synced {
    fn new() -> Synced {
        Synced {
            pods: false,
            nodes: false,
            namespaces: false,
            since: Some(Instant::now()),
        }
    }

    /// Whether every first list is in; says so in the log the first time.
    fn all(&mut self, cache: &Cache) -> bool {
        let all = self.pods && self.nodes && self.namespaces;
        if all && let Some(since) = self.since.take() {
            tracing::info!(
                nodes = cache.node_count(),
                elapsed_ms = since.elapsed().as_millis() as u64,
                "scheduler has listed nodes and pods; placing pods"
            );
        }
        all
    }
}

struct Scheduler {
    client: kube::Client,
    retry: Duration,
    cache: Cache,
    queue: Queue,
    placer: Placer,
    writes: JoinSet<Written>,
    events: Events,
    synced: Synced,
}

/// Schedules until `term` is cancelled (shutdown, or leadership lost).
pub async fn run(client: kube::Client, config: Config, term: CancellationToken) {
    let stop = term.child_token();
    let mut background = JoinSet::new();
    let feeds = watch::start(&client, &mut background, &stop);
    let events = Events::start(client.clone(), &config.identity, &mut background, &stop);
    let mut scheduler = Scheduler {
        client,
        retry: config.unschedulable_retry,
        cache: Cache::default(),
        queue: Queue::default(),
        placer: Placer::default(),
        writes: JoinSet::new(),
        events,
        synced: Synced::new(),
    };
    tracing::info!(identity = %config.identity, "scheduler started");
    scheduler.run(feeds, &term).await;
    // Bindings in flight are let finish (briefly): cutting them off would only leave the
    // successor to find out by a 409 which of them landed.
    let writes = std::mem::take(&mut scheduler.writes);
    let _ = tokio::time::timeout(DRAIN, writes.join_all()).await;
    stop.cancel();
    background.join_all().await;
    tracing::info!("scheduler stopped");
}

impl Scheduler {
    async fn run(&mut self, mut feeds: Feeds, term: &CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.place_ready_pods();
            tokio::select! {
                biased;
                () = term.cancelled() => return,
                Some(change) = feeds.nodes.recv() => {
                    self.on_node(change);
                    drain(&mut feeds.nodes, |c| self.on_node(c));
                }
                Some(change) = feeds.namespaces.recv() => self.on_namespace(change),
                Some(change) = feeds.pods.recv() => {
                    self.on_pod(change);
                    drain(&mut feeds.pods, |c| self.on_pod(c));
                }
                Some(done) = self.writes.join_next(), if !self.writes.is_empty() => {
                    match done {
                        Ok(written) => self.on_written(written),
                        Err(e) => tracing::error!(error = %e, "a scheduler write task failed"),
                    }
                }
                _ = sweep.tick() => self.queue.flush(Instant::now(), self.retry),
            }
        }
    }

    /// Places queued pods while there is room for more writes.
    fn place_ready_pods(&mut self) {
        if !self.synced.all(&self.cache) {
            return;
        }
        let now = Instant::now();
        while self.writes.len() < MAX_IN_FLIGHT {
            let Some(pod) = self.queue.pop(now) else {
                return;
            };
            self.place(pod, now);
        }
    }

    fn place(&mut self, pod: Arc<PodInfo>, now: Instant) {
        match self.placer.place(&self.cache, &pod) {
            Ok(node) => {
                self.cache.assume(pod.clone(), &node);
                let client = self.client.clone();
                self.writes.spawn(async move {
                    let result = bind::bind(client, &pod, &node).await;
                    Written::Bound { pod, node, result }
                });
            }
            Err(diagnosis) => {
                let message = diagnosis.to_string();
                tracing::debug!(pod = %pod.key(), %message, "unschedulable");
                self.queue.unschedulable(&pod.uid, now);
                self.events.failed_scheduling(&pod, &message);
                if !pod.reports_unschedulable(&message) {
                    let client = self.client.clone();
                    self.writes.spawn(async move {
                        Written::Reported(bind::report_unschedulable(client, &pod, &message).await)
                    });
                }
            }
        }
    }

    fn on_written(&mut self, written: Written) {
        let now = Instant::now();
        match written {
            Written::Bound {
                pod,
                node,
                result: Ok(()),
            } => {
                tracing::debug!(pod = %pod.key(), %node, "bound");
                self.cache.finish_binding(&pod.uid);
                self.queue.remove(&pod.uid);
                self.events.scheduled(&pod, &node);
            }
            Written::Bound {
                pod,
                result: Err(e),
                ..
            } => {
                if self.cache.forget(&pod.uid) {
                    self.queue.move_all(now);
                }
                if e.pod_is_gone() {
                    self.queue.remove(&pod.uid);
                    return;
                }
                tracing::warn!(error = %e, "binding failed");
                self.events
                    .failed_scheduling(&pod, &format!("Binding rejected: {e}"));
                self.queue.retry_later(&pod.uid, now);
            }
            Written::Reported(Err(e)) if !e.pod_is_gone() => {
                tracing::warn!(error = %e, "cannot report an unschedulable pod");
            }
            Written::Reported(_) => {}
        }
    }

    fn on_pod(&mut self, change: Change<Arc<PodInfo>>) {
        let now = Instant::now();
        match change {
            Change::Apply(pod) => self.apply_pod(pod, now),
            Change::Delete(pod) => {
                self.queue.remove(&pod.uid);
                if self.cache.remove_pod(&pod.uid) {
                    self.queue.move_all(now);
                }
            }
            Change::Relisted(pods) => {
                let uids: HashSet<String> = pods.iter().map(|p| p.uid.clone()).collect();
                for pod in pods {
                    self.apply_pod(pod, now);
                }
                self.cache.retain_pods(&uids);
                self.queue.retain(&uids);
                self.queue.move_all(now);
                self.synced.pods = true;
            }
        }
    }

    fn apply_pod(&mut self, pod: Arc<PodInfo>, now: Instant) {
        if pod.node_name.is_some() {
            self.queue.remove(&pod.uid);
            if self.cache.add_pod(pod) {
                self.queue.move_all(now);
            }
        } else if !pod.wants_scheduling() {
            self.queue.remove(&pod.uid);
        } else if !self.cache.is_placed(&pod.uid) {
            // (A pod placed but seen still unbound is an update from before its binding.)
            self.queue.upsert(pod, now);
        }
    }

    fn on_node(&mut self, change: Change<NodeFacts>) {
        let now = Instant::now();
        match change {
            Change::Apply(facts) => {
                if self.cache.set_node(facts) {
                    self.queue.move_all(now);
                }
            }
            Change::Delete(facts) => self.cache.remove_node(&facts.name),
            Change::Relisted(nodes) => {
                let names: HashSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
                for facts in nodes {
                    self.cache.set_node(facts);
                }
                self.cache.retain_nodes(&names);
                self.queue.move_all(now);
                self.synced.nodes = true;
            }
        }
    }

    fn on_namespace(&mut self, change: Change<NamespaceLabels>) {
        let labels = &mut self.cache.namespace_labels;
        match change {
            Change::Apply((name, l)) => {
                labels.insert(name, l);
            }
            Change::Delete((name, _)) => {
                labels.remove(&name);
            }
            Change::Relisted(all) => {
                *labels = all.into_iter().collect();
                self.synced.namespaces = true;
            }
        }
    }
}

/// Takes in what else is already queued on `rx` (up to a turn's worth), so that a burst
/// of changes is absorbed before pods are placed on the strength of it.
fn drain<T>(rx: &mut mpsc::Receiver<T>, mut apply: impl FnMut(T)) {
    for _ in 0..CHANGES_PER_TURN {
        match rx.try_recv() {
            Ok(change) => apply(change),
            Err(_) => return,
        }
    }
}
