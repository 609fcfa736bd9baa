//! The raft log and vote, on redb, with group commit.
//!
//! openraft 0.9 hands the log store one `append` per client write. An fsync each would cap
//! the store at the disk's fsync rate (a few hundred per second here), so `append` only
//! queues the entries and returns; one writer thread drains everything queued, writes it in
//! one redb transaction, fsyncs once, and then reports every queued append as flushed.
//! Raft acknowledges a write only after that report, so "durable before acknowledged" holds.
//!
//! Entries that are queued but not yet written stay readable through `pending`, because
//! openraft may read what it just appended (to replicate it) before the flush lands.
//!
//! Every write (append, truncate, purge, vote, committed) goes through the same queue, so
//! they reach the disk in the order openraft issued them, as its contract requires.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use tokio::sync::oneshot;

use crate::command::codec;
use crate::error::{Result, StoreError};
use crate::raft::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote, io_err};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const PURGED_KEY: &str = "last_purged";
const NODE_ID_KEY: &str = "node_id";

/// A write for the writer thread, in the order openraft issued it.
enum Job {
    Append {
        entries: Vec<(LogId, Vec<u8>)>,
        done: LogFlushed<TypeConfig>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<()>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<()>>,
    },
    SaveVote {
        vote: Vote,
        done: oneshot::Sender<Result<()>>,
    },
    SaveCommitted {
        committed: Option<LogId>,
    },
}

struct Shared {
    db: Database,
    /// Appended entries not yet on disk, by index. The writer removes them after the fsync.
    pending: Mutex<BTreeMap<u64, Entry>>,
}

/// The raft log store. Cloning gives another handle to the same log (openraft's log reader).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    jobs: Arc<WriterHandle>,
}

/// Owns the writer thread: dropping the last handle closes the queue and joins the thread,
/// so no write is cut off halfway when the store shuts down.
struct WriterHandle {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl LogStore {
    /// Opens (or creates) the log at `path` and returns it with this node's id, which is
    /// chosen at random on first open and kept in the log file ever after.
    pub fn open(path: &Path) -> Result<(Self, NodeId)> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let node_id = {
            let txn = db.begin_write()?;
            let id = {
                txn.open_table(LOG)?;
                let mut meta = txn.open_table(META)?;
                let existing = meta
                    .get(NODE_ID_KEY)?
                    .map(|v| decode::<NodeId>(v.value(), "node id"));
                match existing {
                    Some(id) => id?,
                    None => {
                        let id = rand::random::<u64>().max(1);
                        meta.insert(NODE_ID_KEY, codec::encode(&id).as_slice())?;
                        id
                    }
                }
            };
            txn.commit()?;
            id
        };
        let shared = Arc::new(Shared {
            db,
            pending: Mutex::new(BTreeMap::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || writer_loop(&writer_shared, rx))
            .map_err(|source| StoreError::Io {
                path: path.to_owned(),
                source,
            })?;
        let jobs = Arc::new(WriterHandle {
            tx: Some(tx),
            thread: Some(thread),
        });
        Ok((LogStore { shared, jobs }, node_id))
    }

    #[expect(
        clippy::result_large_err,
        reason = "openraft's storage traits return its own error type"
    )]
    fn send(&self, job: Job) -> Result<(), StorageError> {
        let tx = self
            .jobs
            .tx
            .as_ref()
            .expect("queue is open while a handle exists");
        tx.send(job).map_err(|_| {
            io_err(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                std::io::Error::other("log writer stopped"),
            )
        })
    }

    async fn send_and_wait(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<()>>) -> Job,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let (done, rx) = oneshot::channel();
        self.send(make(done))?;
        let res = rx.await.map_err(|_| {
            io_err(
                subject.clone(),
                ErrorVerb::Write,
                std::io::Error::other("log writer stopped"),
            )
        })?;
        res.map_err(|e| io_err(subject, ErrorVerb::Write, e))
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let txn = self.shared.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(key)?;
        value
            .map(|v| decode(v.value(), "raft log metadata"))
            .transpose()
    }

    fn read_range(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<Entry>> {
        // Copy the pending entries before reading the disk: an entry the writer moves from
        // `pending` to disk in between is then seen at least once, never missed.
        let mut out: BTreeMap<u64, Entry> = {
            let pending = self.shared.pending.lock().expect("pending lock poisoned");
            pending.range(range).map(|(k, v)| (*k, v.clone())).collect()
        };
        let txn = self.shared.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        for item in log.range(range)? {
            let (k, v) = item?;
            out.entry(k.value())
                .or_insert(decode(v.value(), "raft log entry")?);
        }
        Ok(out.into_values().collect())
    }

    /// Number of entries on disk; for tests and status pages.
    pub fn disk_len(&self) -> Result<u64> {
        let txn = self.shared.db.begin_read()?;
        Ok(txn.open_table(LOG)?.len()?)
    }
}

use codec::decode_stored as decode;

/// Drains the queue in batches: one transaction and one fsync per batch.
fn writer_loop(shared: &Shared, rx: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let result = write_batch(shared, &batch);
        if result.is_ok() {
            // Drop from `pending` exactly what this batch wrote; an entry that a truncate
            // replaced meanwhile (same index, other log id) stays until its own batch lands.
            let mut pending = shared.pending.lock().expect("pending lock poisoned");
            for job in &batch {
                if let Job::Append { entries, .. } = job {
                    for (id, _) in entries {
                        if pending.get(&id.index).is_some_and(|e| e.get_log_id() == id) {
                            pending.remove(&id.index);
                        }
                    }
                }
            }
        }
        for job in batch {
            let res = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
            match job {
                Job::Append { done, .. } => {
                    done.log_io_completed(res.map_err(std::io::Error::other));
                }
                Job::Truncate { done, .. }
                | Job::Purge { done, .. }
                | Job::SaveVote { done, .. } => {
                    let _ = done.send(res.map_err(StoreError::Stopped));
                }
                Job::SaveCommitted { .. } => {}
            }
        }
    }
}

fn write_batch(shared: &Shared, batch: &[Job]) -> Result<()> {
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Stopped(format!("cannot make the raft log durable: {e}")))?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        for job in batch {
            match job {
                Job::Append { entries, .. } => {
                    for (id, bytes) in entries {
                        log.insert(id.index, bytes.as_slice())?;
                    }
                }
                Job::Truncate { from, .. } => {
                    log.retain_in(*from.., |_, _| false)?;
                }
                Job::Purge { upto, .. } => {
                    log.retain_in(..=upto.index, |_, _| false)?;
                    meta.insert(PURGED_KEY, codec::encode(upto).as_slice())?;
                }
                Job::SaveVote { vote, .. } => {
                    meta.insert(VOTE_KEY, codec::encode(vote).as_slice())?;
                }
                Job::SaveCommitted { committed } => {
                    meta.insert(COMMITTED_KEY, codec::encode(committed).as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn read_err(e: StoreError) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        self.read_range(range).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.read_meta(PURGED_KEY).map_err(read_err)?;
        let pending_last = {
            let pending = self.shared.pending.lock().expect("pending lock poisoned");
            pending.last_key_value().map(|(_, e)| *e.get_log_id())
        };
        let last = match pending_last {
            Some(id) => Some(id),
            None => {
                let txn = self
                    .shared
                    .db
                    .begin_read()
                    .map_err(|e| read_err(e.into()))?;
                let log = txn.open_table(LOG).map_err(|e| read_err(e.into()))?;
                match log.last().map_err(|e| read_err(e.into()))? {
                    Some((_, v)) => Some(
                        *decode::<Entry>(v.value(), "raft log entry")
                            .map_err(read_err)?
                            .get_log_id(),
                    ),
                    None => None,
                }
            }
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.send_and_wait(|done| Job::SaveVote { vote, done }, ErrorSubject::Vote)
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE_KEY)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not waited for: losing the latest committed id in a crash only delays re-applying
        // entries until the leader commits again.
        self.send(Job::SaveCommitted { committed })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(COMMITTED_KEY)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut encoded = Vec::new();
        {
            let mut pending = self.shared.pending.lock().expect("pending lock poisoned");
            for entry in entries {
                let id = *entry.get_log_id();
                encoded.push((id, codec::encode(&entry)));
                pending.insert(id.index, entry);
            }
        }
        if encoded.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.send(Job::Append {
            entries: encoded,
            done: callback,
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.shared
            .pending
            .lock()
            .expect("pending lock poisoned")
            .split_off(&log_id.index);
        let from = log_id.index;
        self.send_and_wait(|done| Job::Truncate { from, done }, ErrorSubject::Logs)
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut pending = self.shared.pending.lock().expect("pending lock poisoned");
            *pending = pending.split_off(&(log_id.index + 1));
        }
        self.send_and_wait(|done| Job::Purge { upto: log_id, done }, ErrorSubject::Logs)
            .await
    }
}
