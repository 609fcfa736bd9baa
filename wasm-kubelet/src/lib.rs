//! Sextant's node agent: runs a node's pods, wasm containers in wasmtime (and, with a CRI
//! runtime, OCI containers), and reports them to the API server.
//!
//! # Where to start
//! [`run`] is the whole agent: it registers the Node ([`node`]), serves the kubelet's HTTPS
//! endpoint ([`server`]), and hands every pod bound to this node to [`pods`], whose
//! per-pod state machine (`pods/lifecycle.rs`) fetches modules ([`modules`]), prepares
//! volumes, and runs containers in the wasm runtime ([`wasm`]).
//!
//! # Layout
//! - `agent.rs`: [`run`] and [`Config`]: the pieces, started and stopped together;
//! - `node/`: the Node object, its status and its Lease heartbeat;
//! - `credentials.rs`: a join token traded for this node's own credential;
//! - `server/`: the kubelet's HTTPS endpoint (logs, health), which the API server proxies to;
//! - `pods/`: pod watch, lifecycle state machine, status, env, volumes, probes, pod IPs,
//!   static pods from `DATA_DIR/manifests/`;
//! - `modules/`: fetching wasm modules (`file://`, `http(s)://`, `wasm://`) into a cache;
//! - `wasm/`: the wasmtime host: compiling, running commands, serving HTTP components, limits;
//! - `proxy/`: the Service proxy: ClusterIP and node-port listeners spliced to ready
//!   endpoints, and the Service table the wasm host resolves names with;
//! - `cri/`: the client of a CRI runtime (containerd): sandboxes, images, OCI container runs, exec;
//! - `logs.rs`: container log files in the CRI format;
//! - `tls.rs`: the one client TLS config that trusts any server (CA fetch, HTTPS probes);
//! - `config.rs`: what an operator may tune; `error.rs`: the crate's error type.

mod agent;
mod config;
pub mod credentials;
pub mod cri;
mod error;
pub mod logs;
pub mod modules;
pub mod node;
pub mod pods;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod wasm;

pub use agent::run;
pub use config::{Config, ServingCert};
pub use error::Error;
pub use pods::OUTBOUND_ANNOTATION;
