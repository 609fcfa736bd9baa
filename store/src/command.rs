//! What travels through the raft log, and what applying it answers.
//!
//! A [`Command`] is the only thing the state machine ever applies. Clients submit many at
//! once (the proposer packs concurrent writes into one raft entry), so an entry's payload
//! is a `Vec<Command>` and its response a `Vec<Outcome>`, one per command, in order.
//!
//! Revisions are the store's own counter, not raft log indexes: every successful
//! transaction takes the next revision, so two writes packed into one raft entry still get
//! distinct, gap-free revisions, the same on every node because apply is deterministic.

use serde::{Deserialize, Serialize};

/// A key with its value and the revisions that created and last modified it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key (since it last did not exist).
    pub create_revision: u64,
    /// Revision of the transaction that last wrote the key. The API hands it out as
    /// `resourceVersion`, and preconditions compare against it.
    pub mod_revision: u64,
}

/// What must hold of a key for a write to it to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precondition {
    /// Nothing: a put creates or overwrites, a delete of a missing key fails as not found.
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist, at any revision.
    Exists,
    /// The key must exist and have been last written at exactly this revision (compare-and-swap).
    Revision(u64),
}

/// One write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    pub fn precondition(&self) -> Precondition {
        match self {
            Op::Put { precondition, .. } | Op::Delete { precondition, .. } => *precondition,
        }
    }
}

/// The replicated command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// All ops apply, under one new revision, if every precondition holds; otherwise
    /// nothing changes and the first failing op is reported.
    Txn(Vec<Op>),
    /// Forget watch history up to and including this revision.
    Compact { revision: u64 },
}

/// Why a transaction did not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Index of the failing op in the transaction.
    pub op: usize,
    pub key: String,
    pub wanted: Precondition,
    /// The key's modification revision as found, `None` if it did not exist.
    pub found: Option<u64>,
}

/// The answer to one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The transaction applied at `revision`. `prev` holds, per op, the key as it was before.
    Applied {
        revision: u64,
        prev: Vec<Option<KeyValue>>,
    },
    Rejected(Rejection),
    /// A compaction was applied, or was a no-op because history was already compacted further.
    Compacted {
        revision: u64,
    },
}

/// Whether a watch event made, changed or removed its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// One change to one key, as watchers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change; for a deletion, its last value with `mod_revision` set to
    /// the revision of the deletion (what Kubernetes shows in a DELETED watch event).
    pub kv: KeyValue,
    /// The key before the change, `None` for a creation. Lists at an older revision use it
    /// to undo later changes.
    pub prev: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}

/// Serialization for everything the store writes to disk or sends to peers.
///
/// postcard is compact and fast, and serde keeps the types the single source of truth.
pub(crate) mod codec {
    use serde::{Serialize, de::DeserializeOwned};

    use crate::error::StoreError;

    pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Serializing our own plain data types into a Vec cannot fail.
        postcard::to_stdvec(value).expect("postcard encoding into a Vec is infallible")
    }

    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// Decodes a record read from disk; one that does not decode is damaged (`what` says
    /// which kind of record, for the error a person reads).
    pub fn decode_stored<T: DeserializeOwned>(
        bytes: &[u8],
        what: &'static str,
    ) -> Result<T, StoreError> {
        decode(bytes).map_err(|source| StoreError::Corrupt { what, source })
    }
}
