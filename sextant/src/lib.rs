//! The `sextant` binary's library: each subcommand is a module with a `run` function that
//! takes its arguments and a shutdown future, so tests can drive it without signals.
//!
//! - [`server`]: `sextant server`, a control-plane node (today: the replicated store; the
//!   API server, scheduler, controllers and node agent join it as their issues land).
//! - [`signals`]: SIGINT/SIGTERM as one future.
//! - [`logging`]: `tracing` output filtered by `RUST_LOG`.

pub mod logging;
pub mod server;
pub mod signals;
