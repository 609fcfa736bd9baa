//! Sextant's replicated store, in place of etcd: openraft over redb.
//!
//! # Where to start
//! - [`Store`] (in `node.rs`) is the handle everything above uses: `create`, `put` with a
//!   [`Precondition`], `delete`, `txn`, linearizable `get` and `list`, `watch`, and cluster
//!   membership. [`Store::open`] shows how the pieces are wired.
//! - [`command`] is what goes through raft: a small serde enum, applied in one `match` in
//!   `state_machine.rs`. Revisions (Kubernetes' `resourceVersion`) are the store's own
//!   gap-free counter, one per transaction.
//!
//! # Layout
//! - `command.rs`: the replicated command, outcomes, keys and events;
//! - `raft.rs`: the raft type declarations;
//! - `log_store.rs`: the raft log and vote on redb, with group commit (one fsync per batch);
//! - `state_machine.rs`: keys, watch history and snapshots on redb;
//! - `list.rs`: range lists, including lists as of an older revision (pagination);
//! - `watch.rs`: the fan-out hub and gap-free watchers;
//! - `proposer.rs`: batching writes into raft entries, forwarding to the leader;
//! - `peer_client.rs` / `peer_server.rs`: the authenticated HTTP transport between nodes;
//! - `bearer.rs`: bearer-token parsing and constant-time comparison, for every endpoint of a node;
//! - `node.rs`: one node's wiring and client API;
//! - `error.rs`: the one error type, and which errors a retry helps.

mod bearer;
pub mod command;
#[cfg(test)]
mod conformance;
mod error;
mod list;
mod log_store;
mod node;
mod peer_client;
mod peer_server;
mod proposer;
pub mod raft;
mod state_machine;
mod watch;

pub use bearer::{bearer_token, secret_eq};
pub use command::{Command, Event, EventKind, KeyValue, Op, Outcome, Precondition};
pub use error::{Result, StoreError};
pub use list::{ListRequest, ListResponse};
pub use node::{Status, Store, StoreConfig};
pub use peer_client::PATH_PREFIX;
pub use peer_server::router;
pub use watch::{WatchMessage, Watcher};
