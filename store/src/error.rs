//! The store's one error type.
//!
//! Like openraft's `APIError` / `Fatal` split, the variants fall in three groups, and each
//! says in its doc whether a retry helps:
//! - answers about the data (`AlreadyExists`, `NotFound`, `Conflict`, `Compacted`): the
//!   request was understood and refused; retrying the same request gives the same answer;
//! - the cluster is not able to answer right now (`NoLeader`, `Unavailable`): retry later;
//! - this node cannot go on (`Open`, `Storage`, `Corrupt`, `ShuttingDown`): a person must act.

use std::path::PathBuf;

use crate::command::Precondition;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found the key present. Not retryable.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// The key does not exist. Not retryable.
    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// A compare-and-swap found another revision. Read the key again and retry with its
    /// current revision.
    #[error(
        "conflict on key {key:?}: the write expected {wanted:?} but the key is at {}; \
         read it again and retry against the current revision",
        found.map_or("no revision (absent)".to_owned(), |r| format!("revision {r}"))
    )]
    Conflict {
        key: String,
        wanted: Precondition,
        found: Option<u64>,
    },

    /// The requested revision is older than the retained history. List again and watch
    /// from the list's revision.
    #[error(
        "revision {requested} has been compacted (oldest available: {compacted}); \
         list again and continue from the list's revision"
    )]
    Compacted { requested: u64, compacted: u64 },

    /// A read asked for a revision the store has not reached. Retry later.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision { requested: u64, current: u64 },

    /// No leader is known (an election is under way, or quorum is lost). Retry shortly; if it
    /// persists, check that a majority of the cluster's nodes are up and reachable.
    #[error(
        "the store has no leader right now (an election is under way, or a majority of nodes is \
         down); retry shortly, and check that a majority of the cluster's nodes are running"
    )]
    NoLeader,

    /// A peer could not be reached or answered with an error. The outcome of a forwarded
    /// write is unknown: read before retrying it.
    #[error("cannot reach store peer {url}: {message}")]
    Unavailable { url: String, message: String },

    /// A peer refused our credentials.
    #[error(
        "store peer {url} refused the cluster token; start this node with the token from the \
         first server's data dir (node-token)"
    )]
    Unauthorized { url: String },

    /// Membership could not be changed (for example removing the last voter).
    #[error("cannot change cluster membership: {0}")]
    Membership(String),

    /// A database file could not be opened. A person must act.
    #[error(
        "cannot open the store file {path}: {source}. If it is damaged, restore the data dir from \
         a backup, or (in a cluster) remove this node's data dir and join it again"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },

    /// The disk failed under a running store. A person must act.
    #[error("store disk error: {0}; check the disk and free space, then restart")]
    Storage(#[from] redb::Error),

    /// A record on disk or from a peer did not decode: the file is damaged or the peer runs an
    /// incompatible version.
    #[error("damaged record in {what}: {source}; restore from a backup or re-join this node")]
    Corrupt {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },

    #[error("store io error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Raft stopped on this node (a fatal storage error, or shutdown).
    #[error("the store is shutting down or its raft node stopped: {0}")]
    Stopped(String),
}

impl StoreError {
    /// True when the same request may succeed later without change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::NoLeader | StoreError::Unavailable { .. })
    }

    /// A copy for each caller of a failed batch. Errors that carry a non-cloneable cause
    /// (disk, decoding) keep their message.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::AlreadyExists { key } => StoreError::AlreadyExists { key: key.clone() },
            StoreError::NotFound { key } => StoreError::NotFound { key: key.clone() },
            StoreError::Conflict { key, wanted, found } => StoreError::Conflict {
                key: key.clone(),
                wanted: *wanted,
                found: *found,
            },
            StoreError::Compacted {
                requested,
                compacted,
            } => StoreError::Compacted {
                requested: *requested,
                compacted: *compacted,
            },
            StoreError::FutureRevision { requested, current } => StoreError::FutureRevision {
                requested: *requested,
                current: *current,
            },
            StoreError::NoLeader => StoreError::NoLeader,
            StoreError::Unavailable { url, message } => StoreError::Unavailable {
                url: url.clone(),
                message: message.clone(),
            },
            StoreError::Unauthorized { url } => StoreError::Unauthorized { url: url.clone() },
            StoreError::Membership(m) => StoreError::Membership(m.clone()),
            other => StoreError::Stopped(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
