//! Service cluster IPs and node ports, allocated as Kubernetes' API server allocates them:
//! every Service of type ClusterIP, NodePort or LoadBalancer gets a virtual IP from
//! `--service-cluster-ip-range` when it is created (unless it asks for one, or for none with
//! `clusterIP: None`), NodePort and LoadBalancer Services get node ports from
//! `--service-node-port-range`, and both are freed when the Service goes or no longer
//! needs them.
//!
//! # Design: one store record per allocated value, in the Service's own transaction
//! Each value held is a key of its own, `/registry/ranges/serviceips/<ip>` or
//! `/registry/ranges/servicenodeports/<port>`, whose value names the Service (namespace,
//! name, uid). A write of a Service goes to the store as one transaction: the Service, a put
//! with precondition *absent* for every value it newly holds, a delete conditioned on the
//! record's revision for every value it gives up. The store applies transactions one at a
//! time through raft, and a transaction applies whole or not at all, so:
//! - two Services can never get one value: of two concurrent writers taking the same value,
//!   the second transaction fails on that key's precondition, whichever API server either
//!   went through (all three servers of a cluster share the store);
//! - a value is never lost or leaked: it is recorded exactly when the Service that holds
//!   it is stored, and a failed allocation leaves both the Service and the records as they
//!   were (a Service is never lost because an allocation failed);
//! - restarts need nothing: the records are in the store, which survives them.
//!
//! Kubernetes keeps one bitmap per range instead, updated beside the Service, and runs
//! repair loops to undo what a crash between the two writes leaves behind; one transaction
//! makes that window disappear. A startup repair (`repair.rs`) remains, for Services stored
//! before records existed.
//!
//! A free value is picked at random from the values the records do not name (listed once
//! per write), preferring the upper part of the range as Kubernetes does, so that values
//! people choose by hand (at the start of the range) rarely collide with picked ones. Two
//! writers picking the same value at once is caught by the precondition, and the loser
//! plans again ([`Plan::explain`]). A dry run plans and writes nothing.
//!
//! # Layout
//! - `range.rs`: the two ranges (the flags' values) and how a free value is picked;
//! - `spec.rs`: Kubernetes' rules on the fields (what updates keep, what type changes drop,
//!   what is invalid), pure functions over the object;
//! - `alloc.rs`: a write's plan against the store: records to add and remove;
//! - `kubernetes.rs`: the `kubernetes` Service in `default` and its Endpoints;
//! - `repair.rs`: records made to agree with the stored Services at start-up.

mod alloc;
mod kubernetes;
mod range;
mod repair;
mod spec;

pub use range::{
    DEFAULT_SERVICE_CLUSTER_IP_RANGE, DEFAULT_SERVICE_NODE_PORT_RANGE, NodePortRange,
    ServiceIpRange, ServiceRanges,
};

pub(crate) use alloc::{Plan, plan, release};
pub(crate) use spec::prepare_update;

use sextant_api::resources::ResourceInfo;
use sextant_store::{Store, StoreError};

/// How many times a write plans again after losing a value picked at random to a
/// concurrent writer.
pub(crate) const ALLOCATION_RETRIES: usize = 8;

/// Whether writes of `r` allocate: core Services.
pub(crate) fn applies(r: &ResourceInfo) -> bool {
    r.group.is_empty() && r.kind == "Service"
}

/// What answers a write that lost its picked values to concurrent writers every time.
pub(crate) fn busy() -> crate::error::ApiError {
    crate::error::ApiError::Unavailable(
        "too many Services are being allocated addresses at once; retry".into(),
    )
}

/// Brings the allocation records in line with the stored Services (see `repair.rs`), then
/// creates the `kubernetes` Service in `default` if it is missing and brings its Endpoints
/// up to date. `url` is this server's advertised URL. Safe to run on every start and on
/// every control-plane server at once.
pub async fn ensure_services(
    store: &Store,
    ranges: &ServiceRanges,
    url: &str,
) -> Result<(), StoreError> {
    repair::run(store).await?;
    kubernetes::ensure(store, ranges, url).await
}
