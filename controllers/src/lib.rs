//! The controller manager: one level-triggered reconciler per kind of object, all clients
//! of the Kubernetes API (kube-rs `runtime::Controller`), run together under one leader
//! election so that exactly one controller manager acts in a cluster.
//!
//! # Where to start
//! [`run`] campaigns for the `kube-system/kube-controller-manager` Lease and, while it leads,
//! runs every controller below as its own task. Each controller module has one `run(ctx,
//! shutdown)` and one `reconcile` that reads desired and actual state, converges one step
//! and requeues.
//!
//! # Layout
//! - `replicaset.rs` (+ `replicaset/`): keeps `replicas` pods per ReplicaSet, adopts
//!   orphans, deletes extras least-ready first;
//! - `deployment/`: rollouts (RollingUpdate, Recreate), revisions, rollback, status;
//! - `endpoints/`, `endpointslice/`: the ready addresses of each Service's pods;
//! - `node_lifecycle/`: node heartbeats (Leases), NotReady/unreachable taints, evicting pods
//!   of dead nodes, collecting pods of deleted nodes;
//! - `gc/`: the garbage collector (ownerReferences; Background, Foreground, Orphan);
//! - `namespace.rs`: deleting a namespace's contents, then the namespace;
//! - `job/`, `cronjob/`: batch work;
//! - `node_ipam.rs`: a pod address range (`spec.podCIDR`) for every Node;
//! - `serviceaccount.rs`: a `default` ServiceAccount in every namespace;
//! - `resourcequota.rs`: what each namespace uses against its quotas (`status.used`);
//! - `owners.rs`, `pods.rs`: ownerReferences (claiming, adopting) and pod state, as the
//!   workload controllers share them;
//! - `context.rs`: what every reconciler gets (client, config, an Event recorder);
//! - `config.rs`, `error.rs`.

mod config;
mod context;
mod cronjob;
mod deployment;
mod endpoints;
mod endpointslice;
mod error;
mod gc;
mod job;
mod namespace;
mod node_ipam;
mod node_lifecycle;
mod owners;
mod pods;
mod replicaset;
mod resourcequota;
mod serviceaccount;

pub use config::{Config, DEFAULT_CLUSTER_CIDR, Ipam};
pub use error::Error;

use sextant_leader::Elector;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// The Lease the controller managers of one cluster compete for.
pub const LEADER_LEASE: &str = "kube-controller-manager";

/// Runs the controller manager until `shutdown`: campaigns for leadership, and runs every
/// controller while leader.
pub async fn run(client: kube::Client, config: Config, shutdown: CancellationToken) {
    let elector = Elector::new(
        client.clone(),
        "kube-system",
        LEADER_LEASE,
        config.identity.clone(),
        config.leader.clone(),
    );
    elector
        .run(shutdown, |term| {
            run_controllers(Context::new(client.clone(), config.clone()), term)
        })
        .await;
}

/// Every controller as its own task, all stopped by `term` (lost leadership or shutdown).
async fn run_controllers(ctx: Context, term: CancellationToken) {
    let mut tasks = JoinSet::new();
    tasks.spawn(replicaset::run(ctx.clone(), term.clone()));
    tasks.spawn(deployment::run(ctx.clone(), term.clone()));
    tasks.spawn(endpoints::run(ctx.clone(), term.clone()));
    tasks.spawn(endpointslice::run(ctx.clone(), term.clone()));
    tasks.spawn(node_lifecycle::run(ctx.clone(), term.clone()));
    tasks.spawn(node_ipam::run(ctx.clone(), term.clone()));
    tasks.spawn(gc::run(ctx.clone(), term.clone()));
    tasks.spawn(namespace::run(ctx.clone(), term.clone()));
    tasks.spawn(job::run(ctx.clone(), term.clone()));
    tasks.spawn(cronjob::run(ctx.clone(), term.clone()));
    tasks.spawn(serviceaccount::run(ctx.clone(), term.clone()));
    tasks.spawn(resourcequota::run(ctx.clone(), term.clone()));
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a controller task panicked; the others go on");
        }
    }
}
