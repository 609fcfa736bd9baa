//! The scheduler: binds pending pods to nodes through the `pods/binding` subresource. It
//! talks to the control plane only through the Kubernetes API, and acts only while it
//! holds the `kube-system/kube-scheduler` Lease.
//!
//! # Layout
//! Where to start: [`run`] campaigns for leadership and, while leader, runs the loop in
//! `scheduler.rs`. The rest, in the order a pod meets it:
//! - `watch.rs`: watches on pods, nodes and namespaces, read into what scheduling needs;
//! - `pod.rs`, `node.rs`, `resources.rs`: those readings (a pod's demands, a node's facts,
//!   amounts of CPU and memory);
//! - `queue.rs`: the pods waiting for a node, with priorities and backoff;
//! - `cache.rs`: every node with the pods bound or assumed on it;
//! - `placement.rs`: choosing one pod's node, with `filters/` (can this node take it, and
//!   if not, why) and `score.rs` (which of those that can is best);
//! - `diagnosis.rs`: "0/3 nodes are available: …", when none can;
//! - `bind.rs`: the binding and the `PodScheduled` condition; `events.rs`: the Events;
//! - `error.rs`: what can go wrong (all of it retried).

mod bind;
mod cache;
mod diagnosis;
mod error;
mod events;
mod filters;
mod node;
mod placement;
mod pod;
mod queue;
mod resources;
mod scheduler;
mod score;
mod watch;

use std::time::Duration;

use sextant_leader::{Elector, Timing};
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use scheduler::MAX_IN_FLIGHT;

/// The Lease the schedulers of one cluster compete for.
pub const LEADER_LEASE: &str = "kube-scheduler";
/// Where the Lease lives.
const LEADER_NAMESPACE: &str = "kube-system";

#[derive(Debug, Clone)]
pub struct Config {
    /// This process's name in the leader Lease and in the Events it records.
    pub identity: String,
    pub leader: Timing,
    /// How often pods that fit nowhere are tried again even when nothing changed.
    pub unschedulable_retry: Duration,
}

impl Config {
    pub fn new(identity: impl Into<String>) -> Self {
        Config {
            identity: identity.into(),
            leader: Timing::default(),
            unschedulable_retry: Duration::from_secs(60),
        }
    }
}

/// Runs the scheduler until `shutdown`: campaigns for leadership, and schedules while leader.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    let elector = Elector::new(
        client.clone(),
        LEADER_NAMESPACE,
        LEADER_LEASE,
        config.identity.clone(),
        config.leader.clone(),
    );
    elector
        .run(shutdown, |term| {
            scheduler::run(client.clone(), config.clone(), term)
        })
        .await;
}
