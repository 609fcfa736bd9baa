//! The state machine on redb: keys, watch history, and snapshots.
//!
//! Three tables live in `state.redb`:
//! - `kv`: key → value with its create and modification revisions;
//! - `history`: revision → the events of the transaction that made it, kept until
//!   compaction, for watches that start in the past and lists at an older revision;
//! - `meta`: the store revision, the compacted revision, raft's last applied log id and
//!   membership.
//!
//! Applying is not fsynced on every batch: the raft log is the durable record, and a crash
//! rolls redb back to its last durable commit together with `last_applied`, from where
//! openraft applies the log again. A durable commit happens at least every
//! [`DURABLE_EVERY`] and before every snapshot, so the log is never purged past what the
//! state machine holds on disk.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::command::{
    Command, Event, EventKind, KeyValue, Op, Outcome, Precondition, Rejection, codec,
};
use crate::error::{Result, StoreError};
use crate::raft::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_err};
use crate::watch::Hub;

pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
pub(crate) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const REVISION_KEY: &str = "revision";
const COMPACTED_KEY: &str = "compacted";
const APPLIED_KEY: &str = "last_applied";
const MEMBERSHIP_KEY: &str = "membership";

/// Longest time an applied write may live only in memory (it is in the raft log meanwhile).
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// A key's value as stored in `kv` (the key is the table key).
#[derive(Serialize, Deserialize)]
struct StoredValue {
    value: Vec<u8>,
    create_revision: u64,
    mod_revision: u64,
}

impl StoredValue {
    fn into_kv(self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

use codec::decode_stored as decode;

fn set_durability(txn: &mut WriteTransaction, durability: Durability) -> Result<()> {
    txn.set_durability(durability)
        .map_err(|e| StoreError::Stopped(format!("cannot set durability: {e}")))
}

/// Decodes a `kv` table row.
pub(crate) fn decode_value(key: &str, bytes: &[u8]) -> Result<KeyValue> {
    Ok(decode::<StoredValue>(bytes, "stored value")?.into_kv(key))
}

/// What a snapshot holds: every key, and the revisions needed to go on from it.
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    revision: u64,
    kvs: Vec<(String, Vec<u8>)>,
}

/// The read side of the state machine, shared by the store's readers and watchers.
#[derive(Clone)]
pub(crate) struct StateDb {
    db: Arc<Database>,
}

/// The revisions a reader needs, read in the same transaction as the data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Revisions {
    pub current: u64,
    pub compacted: u64,
}

impl StateDb {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let txn = db.begin_write()?;
        txn.open_table(KV)?;
        txn.open_table(HISTORY)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(StateDb { db: Arc::new(db) })
    }

    pub fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    pub fn revisions(txn: &ReadTransaction) -> Result<Revisions> {
        let meta = txn.open_table(META)?;
        let get = |key| -> Result<u64> {
            Ok(meta
                .get(key)?
                .map(|v| decode(v.value(), "store metadata"))
                .transpose()?
                .unwrap_or(0))
        };
        Ok(Revisions {
            current: get(REVISION_KEY)?,
            compacted: get(COMPACTED_KEY)?,
        })
    }

    pub fn get(txn: &ReadTransaction, key: &str) -> Result<Option<KeyValue>> {
        let kv = txn.open_table(KV)?;
        let value = kv.get(key)?;
        value.map(|v| decode_value(key, v.value())).transpose()
    }

    /// Every event with a revision in `(after, upto]`, in revision order.
    pub fn history(txn: &ReadTransaction, after: u64, upto: u64) -> Result<Vec<Event>> {
        let history = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        if after >= upto {
            return Ok(out);
        }
        for item in history.range(after + 1..=upto)? {
            let (_, v) = item?;
            out.extend(decode::<Vec<Event>>(v.value(), "watch history")?);
        }
        Ok(out)
    }

    /// Number of revisions held in history; for tests and status.
    pub fn history_len(&self) -> Result<u64> {
        let txn = self.read()?;
        Ok(txn.open_table(HISTORY)?.len()?)
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    state: StateDb,
    hub: Arc<Hub>,
    snapshot_path: PathBuf,
    last_durable: Instant,
}

impl StateMachine {
    pub(crate) fn new(state: StateDb, hub: Arc<Hub>, snapshot_path: PathBuf) -> Self {
        StateMachine {
            state,
            hub,
            snapshot_path,
            last_durable: Instant::now(),
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<Vec<Outcome>>> {
        let mut txn = self.state.db.begin_write()?;
        let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
        set_durability(
            &mut txn,
            if durable {
                Durability::Immediate
            } else {
                Durability::None
            },
        )?;
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(entries.len());
        let revision;
        {
            let mut applier = Applier::new(&txn)?;
            let mut last_applied = None;
            for entry in entries {
                last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => responses.push(Vec::new()),
                    EntryPayload::Normal(commands) => {
                        let outcomes = commands
                            .into_iter()
                            .map(|c| applier.apply(c, &mut events))
                            .collect::<Result<Vec<_>>>()?;
                        responses.push(outcomes);
                    }
                    EntryPayload::Membership(m) => {
                        let stored = StoredMembership::new(Some(entry.log_id), m);
                        applier
                            .meta
                            .insert(MEMBERSHIP_KEY, codec::encode(&stored).as_slice())?;
                        responses.push(Vec::new());
                    }
                }
            }
            applier
                .meta
                .insert(APPLIED_KEY, codec::encode(&last_applied).as_slice())?;
            applier.finish()?;
            revision = applier.revision;
        }
        txn.commit()?;
        if durable {
            self.last_durable = Instant::now();
        }
        // Published only after the commit, so a watcher that reads history after seeing this
        // batch finds it there.
        self.hub.publish(revision, events);
        Ok(responses)
    }

    fn read_applied(&self) -> Result<(Option<LogId>, StoredMembership)> {
        let txn = self.state.read()?;
        let meta = txn.open_table(META)?;
        let applied = match meta.get(APPLIED_KEY)? {
            Some(v) => decode::<Option<LogId>>(v.value(), "last applied log id")?,
            None => None,
        };
        let membership = match meta.get(MEMBERSHIP_KEY)? {
            Some(v) => decode(v.value(), "membership")?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    fn load_snapshot_file(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let bytes = match std::fs::read(&self.snapshot_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.snapshot_path.clone(),
                    source,
                });
            }
        };
        let (meta, data): (SnapshotMeta, Vec<u8>) = decode(&bytes, "snapshot file")?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }

    fn install(&mut self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<()> {
        let payload: SnapshotPayload = decode(&data, "snapshot")?;
        let mut txn = self.state.db.begin_write()?;
        set_durability(&mut txn, Durability::Immediate)?;
        {
            txn.delete_table(KV)?;
            txn.delete_table(HISTORY)?;
            txn.open_table(HISTORY)?;
            let mut kv = txn.open_table(KV)?;
            for (k, v) in &payload.kvs {
                kv.insert(k.as_str(), v.as_slice())?;
            }
            let mut m = txn.open_table(META)?;
            m.insert(REVISION_KEY, codec::encode(&payload.revision).as_slice())?;
            // History before the snapshot is unknown here: watches from older revisions must
            // relist, exactly as after a compaction.
            m.insert(COMPACTED_KEY, codec::encode(&payload.revision).as_slice())?;
            m.insert(APPLIED_KEY, codec::encode(&meta.last_log_id).as_slice())?;
            m.insert(
                MEMBERSHIP_KEY,
                codec::encode(&meta.last_membership).as_slice(),
            )?;
        }
        txn.commit()?;
        self.last_durable = Instant::now();
        save_snapshot_file(&self.snapshot_path, meta, &data)?;
        self.hub.reset(payload.revision);
        Ok(())
    }
}

/// Makes every applied write durable, then writes a snapshot of the whole key space.
fn build_snapshot(state: &StateDb, path: &Path) -> Result<Snapshot<TypeConfig>> {
    {
        let mut txn = state.db.begin_write()?;
        set_durability(&mut txn, Durability::Immediate)?;
        txn.commit()?;
    }
    let txn = state.read()?;
    let meta = txn.open_table(META)?;
    let last_log_id = match meta.get(APPLIED_KEY)? {
        Some(v) => decode::<Option<LogId>>(v.value(), "last applied log id")?,
        None => None,
    };
    let last_membership = match meta.get(MEMBERSHIP_KEY)? {
        Some(v) => decode(v.value(), "membership")?,
        None => StoredMembership::default(),
    };
    let revision = StateDb::revisions(&txn)?.current;
    let kv = txn.open_table(KV)?;
    let mut kvs = Vec::with_capacity(kv.len()? as usize);
    for item in kv.iter()? {
        let (k, v) = item?;
        kvs.push((k.value().to_owned(), v.value().to_vec()));
    }
    let data = codec::encode(&SnapshotPayload { revision, kvs });
    let snapshot_id = match last_log_id {
        Some(id) => format!("{}-{}-{}", id.leader_id, id.index, revision),
        None => format!("empty-{revision}"),
    };
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id,
    };
    save_snapshot_file(path, &meta, &data)?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    })
}

/// Writes the snapshot next to the database, atomically (temp file, fsync, rename), so a
/// crash leaves either the old snapshot or the new one.
fn save_snapshot_file(path: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |source| StoreError::Io {
        path: tmp.clone(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&codec::encode(&(meta, data))).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Applies commands inside one write transaction.
struct Applier<'t> {
    kv: redb::Table<'t, &'static str, &'static [u8]>,
    history: redb::Table<'t, u64, &'static [u8]>,
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    revision: u64,
    compacted: u64,
}

impl<'t> Applier<'t> {
    fn new(txn: &'t WriteTransaction) -> Result<Self> {
        let meta = txn.open_table(META)?;
        let read = |key| -> Result<u64> {
            Ok(meta
                .get(key)?
                .map(|v| decode(v.value(), "store metadata"))
                .transpose()?
                .unwrap_or(0))
        };
        let revision = read(REVISION_KEY)?;
        let compacted = read(COMPACTED_KEY)?;
        Ok(Applier {
            kv: txn.open_table(KV)?,
            history: txn.open_table(HISTORY)?,
            meta,
            revision,
            compacted,
        })
    }

    fn current(&self, key: &str) -> Result<Option<KeyValue>> {
        let value = self.kv.get(key)?;
        value
            .map(|v| Ok(decode::<StoredValue>(v.value(), "stored value")?.into_kv(key)))
            .transpose()
    }

    fn apply(&mut self, command: Command, events: &mut Vec<Event>) -> Result<Outcome> {
        match command {
            Command::Txn(ops) => self.apply_txn(ops, events),
            Command::Compact { revision } => {
                let target = revision.min(self.revision);
                if target > self.compacted {
                    self.history.retain_in(..=target, |_, _| false)?;
                    self.compacted = target;
                }
                Ok(Outcome::Compacted {
                    revision: self.compacted,
                })
            }
        }
    }

    fn apply_txn(&mut self, ops: Vec<Op>, events: &mut Vec<Event>) -> Result<Outcome> {
        // Check every precondition first, against the state as earlier ops of this same
        // transaction leave it, so a failure changes nothing.
        let mut view: Vec<(String, Option<KeyValue>)> = Vec::new();
        let mut prevs = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let before = match view.iter().rev().find(|(k, _)| k == op.key()) {
                Some((_, v)) => v.clone(),
                None => self.current(op.key())?,
            };
            let found = before.as_ref().map(|kv| kv.mod_revision);
            let ok = match (op.precondition(), found) {
                (Precondition::None, _) => !matches!(op, Op::Delete { .. }) || found.is_some(),
                (Precondition::Absent, f) => f.is_none(),
                (Precondition::Exists, f) => f.is_some(),
                (Precondition::Revision(r), f) => f == Some(r),
            };
            if !ok {
                return Ok(Outcome::Rejected(Rejection {
                    op: i,
                    key: op.key().to_owned(),
                    wanted: op.precondition(),
                    found,
                }));
            }
            let after = match op {
                Op::Put { key, value, .. } => Some(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: 0,
                    mod_revision: 0,
                }),
                Op::Delete { .. } => None,
            };
            prevs.push(before);
            view.push((op.key().to_owned(), after));
        }

        self.revision += 1;
        let revision = self.revision;
        let mut txn_events = Vec::with_capacity(ops.len());
        for (op, prev) in ops.into_iter().zip(prevs.iter()) {
            match op {
                Op::Put { key, value, .. } => {
                    let create_revision = prev.as_ref().map_or(revision, |p| p.create_revision);
                    let stored = StoredValue {
                        value,
                        create_revision,
                        mod_revision: revision,
                    };
                    self.kv
                        .insert(key.as_str(), codec::encode(&stored).as_slice())?;
                    txn_events.push(Event {
                        kind: if prev.is_some() {
                            EventKind::Updated
                        } else {
                            EventKind::Created
                        },
                        kv: stored.into_kv(&key),
                        prev: prev.clone(),
                    });
                }
                Op::Delete { key, .. } => {
                    self.kv.remove(key.as_str())?;
                    let prev = prev
                        .clone()
                        .expect("precondition checked that the key exists");
                    let kv = KeyValue {
                        mod_revision: revision,
                        ..prev.clone()
                    };
                    txn_events.push(Event {
                        kind: EventKind::Deleted,
                        kv,
                        prev: Some(prev),
                    });
                }
            }
        }
        self.history
            .insert(revision, codec::encode(&txn_events).as_slice())?;
        events.extend(txn_events);
        Ok(Outcome::Applied {
            revision,
            prev: prevs,
        })
    }

    fn finish(&mut self) -> Result<()> {
        self.meta
            .insert(REVISION_KEY, codec::encode(&self.revision).as_slice())?;
        self.meta
            .insert(COMPACTED_KEY, codec::encode(&self.compacted).as_slice())?;
        Ok(())
    }
}

fn sm_err(verb: ErrorVerb) -> impl FnOnce(StoreError) -> StorageError {
    move |e| io_err(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(verb: ErrorVerb) -> impl FnOnce(StoreError) -> StorageError {
    move |e| io_err(ErrorSubject::Snapshot(None), verb, e)
}

/// Snapshots are built on the state machine's own task: building is a consistent redb read
/// that takes well under a second for the sizes a control plane holds.
pub struct SnapshotBuilder {
    state: StateDb,
    snapshot_path: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        build_snapshot(&self.state, &self.snapshot_path).map_err(snap_err(ErrorVerb::Write))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_applied().map_err(sm_err(ErrorVerb::Read))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.apply_entries(entries.into_iter().collect())
            .map_err(sm_err(ErrorVerb::Write))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            state: self.state.clone(),
            snapshot_path: self.snapshot_path.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.install(meta, snapshot.into_inner())
            .map_err(snap_err(ErrorVerb::Write))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.load_snapshot_file().map_err(snap_err(ErrorVerb::Read))
    }
}
