//! The SDK with which workload authors build Sextant wasm workloads for `wasm32-wasip2`, with
//! nothing but cargo (`cargo build --target wasm32-wasip2`; no cargo-component, no
//! wit-bindgen CLI: the bindings come from the `wasip2` crate).
//!
//! | module | for |
//! |---|---|
//! | [`http`] | HTTP services: [`Router`](http::Router) with path params, [`Request`](http::Request)/[`Response`](http::Response) with JSON, streaming bodies, and the [`http_service!`] export |
//! | [`config`] | typed env vars and mounted ConfigMap/Secret files |
//! | [`log`] | JSON-lines logging to stdout/stderr: [`info!`], [`warn!`], [`error!`], [`debug!`] |
//! | [`client`] | outbound HTTP to other Services by cluster name, with timeouts |
//! | [`exit`] | [`run`]: the exit-code convention of commands and jobs |
//!
//! # Two kinds of workload
//!
//! **HTTP services** export `wasi:http/incoming-handler`; the node agent serves them on the
//! container's first `containerPort`, one fresh instance per request. Build them as a
//! `cdylib` (`[lib] crate-type = ["cdylib"]`) and export a service:
//!
//! ```
//! use sextant_sdk::http::{Request, Router};
//!
//! fn routes() -> Router {
//!     Router::new()
//!         .get("/healthz", |_| "ok")
//!         .get("/hello/:name", |req: Request| format!("hello, {}!\n", req.param("name").unwrap_or("?")))
//! }
//!
//! sextant_sdk::http_service!(routes());
//! ```
//!
//! **Commands and jobs** are a plain `fn main()` (a `[[bin]]`, exporting `wasi:cli/run`);
//! the SDK adds config, logs and the exit code:
//!
//! ```
//! use std::process::ExitCode;
//! use sextant_sdk::config;
//!
//! fn main() -> ExitCode {
//!     sextant_sdk::run(|| -> Result<(), sextant_sdk::Error> {
//!         let name: String = config::env_or("NAME", "world".to_owned())?;
//!         sextant_sdk::info!("greeting", name = name);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! # Host builds
//!
//! Everything that touches WASI is compiled only for `wasm32`; the rest (routing, requests and
//! responses, config parsing, log lines, cluster names) builds and is unit-tested on the host,
//! so a workload's own logic can be tested with `cargo test` as well. In host builds
//! [`http_service!`] exports nothing and [`client`] requests fail with [`Error::NotWasm`].

mod error;
mod percent;

pub mod client;
pub mod config;
pub mod exit;
pub mod http;
pub mod log;

pub use error::Error;
pub use exit::run;
