//! The `sextant` binary's library: each subcommand is a module with a `run` function that
//! takes its arguments and a shutdown future, so tests can drive it without signals.
//!
//! - [`server`]: `sextant server`, a control-plane node: store and API server over HTTPS,
//!   with the scheduler and the controller manager in-process (each leader-elected);
//! - [`standalone`]: `sextant scheduler` and `sextant controller-manager`, the same loops
//!   run alone against any cluster;
//! - [`inprocess`]: the `kube::Client` through which in-process loops reach the API;
//! - `pki.rs`, `join.rs`, `kubeconfig.rs`, `files.rs`: the cluster's certificates, join
//!   tokens, the admin kubeconfig, and how secrets are written;
//! - `https.rs`: serving the API over TLS with graceful shutdown.
//! - [`signals`]: SIGINT/SIGTERM as one future.
//! - [`logging`]: `tracing` output filtered by `RUST_LOG`.

mod files;
mod https;
pub mod inprocess;
mod join;
mod kubeconfig;
pub mod logging;
mod pki;
pub mod server;
pub mod signals;
pub mod standalone;
