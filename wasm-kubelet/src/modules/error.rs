//! Why a module could not be had. The Display of each variant is what a user reads in the
//! pod's `ErrImagePull` message, so each one names the reference and the cause.

use std::path::PathBuf;
use std::sync::Arc;

/// A failed fetch. `Clone` because concurrent fetches of one reference share one download and
/// therefore one outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The `image` string is not a module reference we can use.
    #[error("invalid module reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// A `file://` module that is not on this node.
    #[error("module file {} not found on this node: copy it there or fix the path", path.display())]
    FileMissing { path: PathBuf },

    /// A `file://` module that exists but cannot be read.
    #[error("cannot read module file {}: {cause}", path.display())]
    FileRead {
        path: PathBuf,
        cause: Arc<std::io::Error>,
    },

    /// The network fetch failed (connection, TLS, HTTP status, timeout).
    #[error("cannot fetch {url}: {cause}")]
    Fetch { url: String, cause: String },

    /// The registry refused or could not serve the artifact.
    #[error("cannot pull {reference}: {cause}")]
    Registry { reference: String, cause: String },

    /// The artifact exists but holds no (or more than one) wasm layer.
    #[error("{reference} is not a wasm artifact: {reason}")]
    NotWasm { reference: String, reason: String },

    /// The content is not what the reference pinned.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },

    /// The module is over the node's size limit.
    #[error("module {source_ref} is larger than the node's limit of {limit} bytes")]
    TooLarge { source_ref: String, limit: u64 },

    /// `imagePullPolicy: Never` and nothing cached for the reference.
    #[error("image not present and imagePullPolicy is Never: {reference}")]
    NeverPull { reference: String },

    /// The node's module cache itself failed (disk full, permissions).
    #[error("module cache {}: {cause}", path.display())]
    Cache {
        path: PathBuf,
        cause: Arc<std::io::Error>,
    },
}

impl Error {
    pub(crate) fn cache(path: impl Into<PathBuf>, cause: std::io::Error) -> Error {
        Error::Cache {
            path: path.into(),
            cause: Arc::new(cause),
        }
    }

    /// True when the failure is `imagePullPolicy: Never` with nothing cached, which
    /// Kubernetes reports with the reason `ErrImageNeverPull` rather than `ErrImagePull`.
    pub fn is_never_pull(&self) -> bool {
        matches!(self, Error::NeverPull { .. })
    }
}

/// The most useful words of an error chain: the innermost cause (e.g. "connection refused"
/// rather than reqwest's "error sending request for url"), without the OS error number.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}
