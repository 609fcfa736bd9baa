//! The raft types, declared once for the whole store (as openraft's examples do).

use std::io::Cursor;

use crate::command::{Command, Outcome};

openraft::declare_raft_types!(
    /// Sextant's raft: entries carry a batch of commands, node addresses are base URLs.
    pub TypeConfig:
        D = Vec<Command>,
        R = Vec<Outcome>,
);

pub type NodeId = u64;
pub type Node = openraft::BasicNode;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type StorageError = openraft::StorageError<NodeId>;

/// Turns any error into openraft's storage error for the given subject.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}
