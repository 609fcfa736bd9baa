//! The crate's error type: what can stop the node agent from starting. Once it runs, failures
//! belong to single pods and show in their status and Events, never here.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use the data dir {path}: {source}; check that it is writable (--data-dir)")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr} for the kubelet endpoint: {source}; choose another --kubelet-listen"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(#[from] crate::wasm::Error),
    #[error("cannot set up the module cache: {0}")]
    Modules(#[from] crate::modules::Error),
    #[error("cannot set up the kubelet endpoint's TLS: {0}")]
    Tls(String),
    #[error("cannot use the CRI runtime: {0}")]
    Cri(#[from] crate::cri::CriError),
}
