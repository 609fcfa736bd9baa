//! The SDK with which workload authors build Sextant wasm workloads (`wasm32-wasip2`).
//!
//! Filled in by issue #7: HTTP handlers, typed config, logging, outbound HTTP.
