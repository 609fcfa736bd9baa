//! What can go wrong before a workload runs: setting up the engine, reading and compiling
//! a module, or finding out what kind of workload it is. Failures of a run itself are not
//! errors but an [`Exit`](super::Exit), since they belong in the container's status.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error("cannot use {path} as the compiled-code cache directory: {source}")]
    CacheDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot compile the module {digest}: {message} (is it a valid wasm module or component?)"
    )]
    Compile { digest: String, message: String },
    #[error(
        "the module exports neither _start, wasi:cli/run nor wasi:http/incoming-handler; \
         build it as a WASI command or a wasi:http component"
    )]
    NoEntryPoint,
    #[error(
        "the module needs imports this node does not provide: {0}; \
         build it for wasm32-wasip1 or wasm32-wasip2 without other host imports"
    )]
    Link(String),
    #[error("the compile task ended unexpectedly: {0}")]
    Task(String),
}

/// The whole chain of a wasmtime error on one line.
pub(crate) fn chain(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}
