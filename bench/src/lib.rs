//! Sextant's benchmarks. Each suite measures its figures a few times on fresh data dirs and
//! reports medians and p99s beside a baseline measured in the same run, so that a figure
//! means something on whatever machine it ran on. Figures are never asserted: this is a
//! measuring tool, and BENCHMARKS.md is where they are kept.
//!
//! - [`report`]: figures, medians and percentiles, printing and JSON;
//! - [`store`]: the replicated store (write throughput on 1 and 3 nodes, watch fan-out);
//! - [`scheduler`]: pods bound per second on 1,000 simulated nodes;
//! - [`pods`]: wasm pods' create→Running, density and the agent's footprint;
//! - [`pods`] also measures OCI pods through containerd beside wasm ones when
//!   `SEXTANT_CRI_SOCKET` is set;
//! - [`api`]: the API server over HTTPS as kube-rs sees it: latency, throughput, watch
//!   delivery and lists of many pods;
//! - [`serving`]: a wasm HTTP service's requests/s and latency under load, against a native
//!   hyper server, and a fresh pod's first request;
//! - [`server`]: the release `sextant server` as a child process, shared by the last three.

pub mod api;
pub mod pods;
pub mod report;
pub mod scheduler;
pub mod server;
pub mod serving;
pub mod store;

/// Every suite, in the order a full run takes them.
pub const SUITES: &[&str] = &["store", "scheduler", "pods", "api", "serving"];
/// The suites that run the release binaries and example modules, which the bench command
/// builds first ([`server::ensure_built`]); the others measure libraries in process.
pub const BUILT_SUITES: &[&str] = &["pods", "api", "serving"];

pub async fn run_suite(name: &str, quick: bool) -> anyhow::Result<report::Report> {
    match name {
        "store" => store::run(quick).await,
        "scheduler" => scheduler::run(quick).await,
        "pods" => pods::run(quick).await,
        "api" => api::run(quick).await,
        "serving" => serving::run(quick).await,
        other => anyhow::bail!("unknown suite {other:?}; suites are: {}", SUITES.join(", ")),
    }
}
