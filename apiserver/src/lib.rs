//! The Kubernetes REST API over Sextant's replicated store.
//!
//! # Where to start
//! [`router`] builds the whole API as an axum `Router`; `sextant server` serves it over
//! HTTPS (and tests call it in-process). A request goes:
//! `auth::middleware` (who?) → `routes::dispatch` (which resource, which verb?) →
//! `rest` (one object), `list` or `watch` (collections) → `sextant-store`.
//!
//! # Layout
//! - `routes.rs`: the URL space and the verb dispatch;
//! - `request.rs`: what a path and query address (Kubernetes' RequestInfo);
//! - `registry.rs`: which resources are served (built-in and custom);
//! - `rest.rs`: create, get, update, patch, delete of one object (and its status);
//! - `subresources.rs`: scale, binding, eviction, serviceaccount tokens;
//! - `nodeproxy.rs`, `exec.rs`: `pods/log` and `pods/exec`, proxied to the pod's node agent;
//! - `apply.rs`: server-side apply against the store;
//! - `list.rs`, `watch.rs`: collections, selectors, pagination, watch streams;
//! - `objects.rs`: server-owned metadata, type checks, unknown fields;
//! - `convert.rs`: resources served in two groups from one storage (Events);
//! - `admission.rs`: namespace lifecycle and defaults;
//! - `body.rs`: body limits, content types, Table negotiation;
//! - `discovery.rs`, `openapi.rs`, `health.rs`: what clients read to find their way;
//! - `auth.rs`, `tokens.rs`: bearer tokens and identities (admin, nodes, ServiceAccounts);
//! - `bootstrap.rs`: the namespaces every cluster starts with;
//! - `services/`: Service cluster IPs and node ports, allocated on the write path, and the
//!   `kubernetes` Service;
//! - `crd.rs`: the loop that serves the resources CustomResourceDefinitions define;
//! - `error.rs`: the one error type, rendered as a Kubernetes `Status`.

mod admission;
mod apply;
pub mod auth;
mod body;
mod bootstrap;
mod convert;
mod crd;
mod discovery;
pub mod error;
mod exec;
mod health;
mod list;
mod nodeproxy;
mod objects;
mod openapi;
mod registry;
mod request;
mod rest;
mod routes;
mod services;
mod state;
mod subresources;
pub mod tokens;
mod watch;

pub use auth::{Authenticator, Identity};
pub use bootstrap::ensure_defaults;
pub use error::ApiError;
pub use nodeproxy::{KubeletBody, KubeletClient, KubeletResponse, KubeletUpgrade, UpgradedIo};
pub use routes::router;
pub use services::{
    DEFAULT_SERVICE_CLUSTER_IP_RANGE, DEFAULT_SERVICE_NODE_PORT_RANGE, NodePortRange,
    ServiceIpRange, ServiceRanges, ensure_services,
};
pub use state::ApiState;

use sextant_store::Store;
use tokio_util::sync::CancellationToken;

/// Serves custom resources as CRDs come and go, until the state's shutdown token is cancelled.
/// `sextant server` runs one per control-plane node (each node's registry is its own).
pub async fn run_crd_loop(state: ApiState) {
    crd::run(state).await
}

/// Builds the shared state of an API server over `store`, allocating Service addresses from
/// the default ranges ([`ApiState::with_service_ranges`] changes them).
pub fn state(store: Store, auth: Authenticator, shutdown: CancellationToken) -> ApiState {
    ApiState {
        store,
        registry: registry::Registry::default(),
        auth,
        shutdown,
        openapi: openapi::Cache::default(),
        kubelet: nodeproxy::KubeletSlot::default(),
        services: ServiceRanges::default(),
    }
}

/// Gives the API server its client for node agents, through which `pods/log` and `pods/exec`
/// reach the pod's node (until then, they answer 503). Every clone of `state` sees it.
pub fn set_kubelet_client(state: &ApiState, client: std::sync::Arc<dyn KubeletClient>) {
    nodeproxy::set(&state.kubelet, client);
}
