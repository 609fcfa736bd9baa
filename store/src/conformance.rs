//! openraft's storage conformance suite, run on our redb log store and state machine: the
//! contract openraft relies on (log states, truncation, purging, membership, snapshots),
//! checked the way openraft itself checks storage implementations.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use crate::log_store::LogStore;
use crate::raft::{StorageError, TypeConfig};
use crate::state_machine::{StateDb, StateMachine};
use crate::watch::Hub;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log, _) = LogStore::open(&dir.path().join("raft-log.redb")).expect("open log");
        let state = StateDb::open(&dir.path().join("state.redb")).expect("open state");
        let sm = StateMachine::new(state, Arc::new(Hub::new()), dir.path().join("snapshot.bin"));
        Ok((dir, log, sm))
    }
}

#[test]
fn redb_storage_passes_openraft_conformance_suite() {
    if let Err(e) = Suite::test_all(RedbBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
