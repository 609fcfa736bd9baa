//! The garbage collector: objects whose owners are gone are deleted, and the API server's
//! `propagationPolicy` on a delete is carried out.
//!
//! # The protocol
//! A delete names a policy, and the API server records it on the object it deletes:
//! 1. `Background` (kubectl's default): the owner goes at once. Its dependents, seen
//!    through their `ownerReferences`, are found with no owner left and are deleted (with
//!    Background in turn, so the cascade continues level by level).
//! 2. `Foreground` (`kubectl delete --cascade=foreground`): the owner gets a
//!    `deletionTimestamp` and the `foregroundDeletion` finalizer and stays. Its dependents
//!    are deleted in the foreground too (when they have dependents of their own); once
//!    none with `blockOwnerDeletion: true` remains, the collector removes the finalizer
//!    and the API server deletes the owner.
//! 3. `Orphan` (`--cascade=orphan`): the owner gets the `orphan` finalizer; the collector
//!    removes the reference to it from every dependent, then the finalizer.
//!
//! # How
//! - `monitors.rs` discovers every resource that can be listed, watched and deleted
//!   (again every 30 s and whenever a CRD changes) and watches each into
//! - `graph.rs`, the ownership graph (uid → object, owner uid → dependents), which says
//!   which uids deserve a look when something changes;
//! - `queue.rs` holds those uids, one worker per uid at a time, failures backing off;
//! - `collect.rs` takes one look at one uid, against the API server's current state.
//!
//! Level-triggered: a periodic resync queues every object the graph cannot vouch for, so
//! a missed event delays a collection but never loses it.
//!
//! # Guarantees
//! Nothing is deleted on the graph's word alone: an owner is declared gone only after a
//! live GET by name finds nothing or a different uid, and the dependent is deleted with a
//! uid precondition. Reference and finalizer edits carry the `resourceVersion` they were
//! computed from, so a concurrent writer makes them fail (and retry) instead of being
//! overwritten.
//!
//! # Caveats
//! - Finalizers are removed only once every monitor has listed its resource; until then a
//!   dependent could be missing from the graph. A resource whose list keeps failing holds
//!   up foreground and orphan deletes (Kubernetes' collector waits for its caches alike).
//! - The monitors watch whole objects and keep only their metadata: Sextant's API server
//!   does not yet answer `as=PartialObjectMetadata` requests.

mod collect;
mod graph;
mod monitors;
mod queue;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::collect::{Collector, Next};
use self::graph::Graph;
use self::monitors::Monitors;
use self::queue::WorkQueue;
use crate::context::Context;

/// Looks taken at once (kube-controller-manager's `--concurrent-gc-syncs` is 20; each
/// look is a few requests, and ours go to an in-process API server).
const WORKERS: usize = 8;
/// How long the workers wait for the first full listing before starting anyway: starting
/// early is safe (everything is verified live), only wasteful.
const SYNC_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let graph = Arc::new(Mutex::new(Graph::default()));
    let queue = Arc::new(WorkQueue::default());
    let monitors = Arc::new(Monitors::new(
        ctx.client.clone(),
        graph.clone(),
        queue.clone(),
        shutdown.clone(),
    ));
    let collector = Arc::new(Collector {
        client: ctx.client.clone(),
        graph: graph.clone(),
        monitors: monitors.clone(),
        queue: queue.clone(),
        recorder: ctx.recorder("garbage-collector-controller"),
    });

    let mut tasks = JoinSet::new();
    tasks.spawn(monitors.clone().run());
    tasks.spawn({
        let (monitors, queue, shutdown) = (monitors.clone(), queue.clone(), shutdown.clone());
        async move {
            wait_for_sync(&monitors, &shutdown).await;
            let mut workers = JoinSet::new();
            for _ in 0..WORKERS {
                workers.spawn(work(collector.clone(), queue.clone()));
            }
            // Each finishes the look it is taking once the queue closes.
            while workers.join_next().await.is_some() {}
        }
    });
    tasks.spawn(resync(
        graph,
        queue.clone(),
        ctx.config.resync,
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    queue.close();
    while tasks.join_next().await.is_some() {}
}

async fn wait_for_sync(monitors: &Monitors, shutdown: &CancellationToken) {
    let deadline = tokio::time::Instant::now() + SYNC_WAIT;
    while !monitors.all_synced() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    if !monitors.all_synced() {
        tracing::warn!(
            "garbage collector: some resources are not listed yet after {SYNC_WAIT:?}; collecting anyway"
        );
    }
}

async fn work(collector: Arc<Collector>, queue: Arc<WorkQueue>) {
    while let Some(uid) = queue.next().await {
        match collector.sync(&uid).await {
            Ok(Next::Done) => queue.forget(&uid),
            Ok(Next::After(delay)) => {
                queue.forget(&uid);
                queue.add_after(uid.clone(), delay);
            }
            Err(e) => {
                match &e {
                    crate::Error::Api(kube::Error::Api(s)) if s.code == 409 => {
                        tracing::debug!(uid, error = %e, "garbage collector: conflict; retrying");
                    }
                    _ => tracing::warn!(uid, error = %e, "garbage collector: retrying"),
                }
                queue.retry(uid.clone());
            }
        }
        queue.done(&uid);
    }
}

/// Queues every object the graph cannot vouch for, every `period`: the safety net under
/// the event-driven path.
async fn resync(
    graph: Arc<Mutex<Graph>>,
    queue: Arc<WorkQueue>,
    period: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let suspects = graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .suspects();
        tracing::debug!(count = suspects.len(), "garbage collector: resync");
        queue.add_all(suspects);
    }
}
