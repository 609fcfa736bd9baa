//! The node agent: runs wasm containers in wasmtime and OCI containers through CRI.
//!
//! Filled in by issues #5 and #6.
