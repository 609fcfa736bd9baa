//! One store node: raft over the redb log and state machine, the proposer, the compactor,
//! and the client API everything above the store uses.
//!
//! Wiring, in [`Store::open`]: open the two redb files → build raft on them → start the
//! proposer and compactor tasks under one cancellation token. The node is then either
//! [`bootstrap`](Store::bootstrap)ped as a one-node cluster or [`join`](Store::join)s one;
//! after a restart it is neither, raft finds its membership in its own log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Config, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::command::{Command, KeyValue, Op, Outcome, Precondition, Rejection};
use crate::error::{Result, StoreError};
use crate::list::{self, ListRequest, ListResponse};
use crate::log_store::LogStore;
use crate::peer_client::{PeerError, Peers};
use crate::proposer::{self, ForwardError, Proposal};
use crate::raft::{Node, NodeId, Raft};
use crate::state_machine::{StateDb, StateMachine};
use crate::watch::{Hub, Watcher};

/// How a store node is set up. [`StoreConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Holds `raft-log.redb`, `state.redb` and `snapshot.bin`.
    pub data_dir: PathBuf,
    /// The base URL at which other nodes reach this node's peer endpoints.
    pub advertise_url: String,
    /// Shared secret every node presents to its peers.
    pub cluster_token: String,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept after a snapshot, so a briefly lagging follower catches up from the
    /// log instead of needing the whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Watch history is compacted to the revision seen one interval earlier (as Kubernetes
    /// compacts etcd every 5 minutes), so a watch can resume from anything up to an interval
    /// old.
    pub compaction_interval: Duration,
    /// A watcher that has delivered nothing for this long yields a progress notice.
    pub progress_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
}

impl StoreConfig {
    pub fn new(
        data_dir: impl Into<PathBuf>,
        advertise_url: impl Into<String>,
        cluster_token: impl Into<String>,
    ) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            advertise_url: advertise_url.into(),
            cluster_token: cluster_token.into(),
            snapshot_every: 20_000,
            logs_kept_after_snapshot: 2_000,
            compaction_interval: Duration::from_secs(300),
            progress_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(600), Duration::from_millis(1200)),
        }
    }

    fn raft_config(&self) -> Result<Config> {
        let config = Config {
            cluster_name: "sextant".into(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            election_timeout_min: self.election_timeout.0.as_millis() as u64,
            election_timeout_max: self.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            max_payload_entries: 256,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| StoreError::Membership(format!("invalid raft settings: {e}")))
    }
}

/// What a node knows about itself and the cluster.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Status {
    pub id: NodeId,
    pub leader: Option<NodeId>,
    /// Voting members and their URLs.
    pub voters: BTreeMap<NodeId, String>,
    pub term: u64,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub revision: u64,
    pub compacted: u64,
}

/// A handle on the local store node. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    config: StoreConfig,
    raft: Raft,
    state: StateDb,
    log: LogStore,
    hub: Arc<Hub>,
    peers: Peers,
    proposals: mpsc::Sender<Proposal>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Store {
    /// Opens the node's files and starts raft. `http` is the client used to reach peers.
    pub async fn open(config: StoreConfig, http: reqwest::Client) -> Result<Store> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        let (log, id) = LogStore::open(&dir.join("raft-log.redb"))?;
        let state = StateDb::open(&dir.join("state.redb"))?;
        let hub = Arc::new(Hub::new());
        let sm = StateMachine::new(state.clone(), hub.clone(), dir.join("snapshot.bin"));
        let peers = Peers::new(http, &config.cluster_token);
        let raft = Raft::new(
            id,
            Arc::new(config.raft_config()?),
            peers.clone(),
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| StoreError::Stopped(format!("raft did not start: {e}")))?;

        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (tx, rx) = mpsc::channel(proposer::MAX_BATCH * 4);
        tasks.spawn(proposer::run(
            raft.clone(),
            peers.clone(),
            rx,
            cancel.clone(),
        ));
        tasks.spawn(compactor(
            raft.clone(),
            state.clone(),
            tx.clone(),
            config.compaction_interval,
            cancel.clone(),
        ));
        tracing::info!(node = id, dir = %dir.display(), "store node open");
        Ok(Store {
            inner: Arc::new(Inner {
                id,
                config,
                raft,
                state,
                log,
                hub,
                peers,
                proposals: tx,
                cancel,
                tasks,
            }),
        })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Whether this node has ever been part of a cluster (bootstrapped, joined, or restarted).
    pub async fn is_initialized(&self) -> Result<bool> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Stopped(e.to_string()))
    }

    /// Makes this node a one-node cluster, unless it already belongs to one.
    pub async fn bootstrap(&self) -> Result<()> {
        if self.is_initialized().await? {
            return Ok(());
        }
        let members = BTreeMap::from([(
            self.id(),
            Node::new(self.inner.config.advertise_url.clone()),
        )]);
        self.inner
            .raft
            .initialize(members)
            .await
            .map_err(|e| StoreError::Membership(format!("cannot bootstrap: {e}")))?;
        self.inner
            .raft
            .wait(Some(Duration::from_secs(30)))
            .current_leader(self.id(), "bootstrap")
            .await
            .map_err(|e| StoreError::Membership(format!("no leader after bootstrap: {e}")))?;
        Ok(())
    }

    /// Asks the cluster that `seed_url` belongs to to add this node as a voter. Returns once
    /// this node has caught up and votes. Does nothing if the node is already a member.
    pub async fn join(&self, seed_url: &str) -> Result<()> {
        if self.is_initialized().await? {
            return Ok(());
        }
        let req = (self.id(), self.inner.config.advertise_url.clone());
        let answer: Result<Result<(), ForwardError>, PeerError> = self
            .inner
            .peers
            .call(seed_url, "/members/add", &req, None)
            .await;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Membership(format!(
                "{seed_url} refused to add this node: {e:?}"
            ))),
            Err(e) => Err(e.into_store_error(seed_url)),
        }
    }

    /// Adds a node as a voter: first as a learner that catches up, then as a voter.
    pub async fn add_voter(&self, id: NodeId, url: String) -> Result<()> {
        self.change_members(Some((id, url)), None).await
    }

    /// Removes a node from the cluster.
    pub async fn remove_node(&self, id: NodeId) -> Result<()> {
        self.change_members(None, Some(id)).await
    }

    pub(crate) async fn change_members(
        &self,
        add: Option<(NodeId, String)>,
        remove: Option<NodeId>,
    ) -> Result<()> {
        let raft = &self.inner.raft;
        let result = async {
            if let Some((id, url)) = &add {
                raft.add_learner(*id, Node::new(url.clone()), true).await?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                    .await?;
            }
            if let Some(id) = remove {
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await?;
            }
            Ok::<_, RaftError<NodeId, ClientWriteError<NodeId, Node>>>(())
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let Some(leader) = f.leader_node else {
                    return Err(StoreError::NoLeader);
                };
                let answer: Result<Result<(), ForwardError>, PeerError> = match (add, remove) {
                    (Some(req), _) => {
                        self.inner
                            .peers
                            .call(&leader.addr, "/members/add", &req, None)
                            .await
                    }
                    (None, Some(id)) => {
                        self.inner
                            .peers
                            .call(&leader.addr, "/members/remove", &id, None)
                            .await
                    }
                    (None, None) => return Ok(()),
                };
                match answer {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(StoreError::Membership(format!("the leader refused: {e:?}"))),
                    Err(e) => Err(e.into_store_error(&leader.addr)),
                }
            }
            Err(RaftError::APIError(e)) => Err(StoreError::Membership(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(StoreError::Stopped(f.to_string())),
        }
    }

    // ----- writes -----

    /// Submits one command through the proposer and waits for its outcome.
    pub async fn submit(&self, command: Command) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .proposals
            .send(Proposal { command, reply })
            .await
            .map_err(|_| StoreError::Stopped("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| StoreError::Stopped("the store is shutting down".into()))?
    }

    /// Applies `ops` atomically under one new revision; the answer per op is the key as it
    /// was before.
    pub async fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Option<KeyValue>>)> {
        match self.submit(Command::Txn(ops)).await? {
            Outcome::Applied { revision, prev } => Ok((revision, prev)),
            Outcome::Rejected(r) => Err(rejection_error(r)),
            Outcome::Compacted { .. } => {
                unreachable!("a transaction never answers as a compaction")
            }
        }
    }

    /// Creates `key`; fails with `AlreadyExists` if it is present. Returns the new revision.
    pub async fn create(&self, key: impl Into<String>, value: Vec<u8>) -> Result<u64> {
        self.put(key, value, Precondition::Absent).await
    }

    /// Writes `key` if `precondition` holds. Returns the new revision.
    pub async fn put(
        &self,
        key: impl Into<String>,
        value: Vec<u8>,
        precondition: Precondition,
    ) -> Result<u64> {
        let (revision, _) = self
            .txn(vec![Op::Put {
                key: key.into(),
                value,
                precondition,
            }])
            .await?;
        Ok(revision)
    }

    /// Deletes `key` if `precondition` holds. Returns the deleted key, its `mod_revision` set to
    /// the revision of the deletion.
    pub async fn delete(
        &self,
        key: impl Into<String>,
        precondition: Precondition,
    ) -> Result<KeyValue> {
        let (revision, mut prev) = self
            .txn(vec![Op::Delete {
                key: key.into(),
                precondition,
            }])
            .await?;
        let prev = prev
            .pop()
            .flatten()
            .expect("a delete that applied had a previous value");
        Ok(KeyValue {
            mod_revision: revision,
            ..prev
        })
    }

    /// Forgets watch history up to `revision`. Returns the compacted revision.
    pub async fn compact(&self, revision: u64) -> Result<u64> {
        match self.submit(Command::Compact { revision }).await? {
            Outcome::Compacted { revision } => Ok(revision),
            other => unreachable!("a compaction answered {other:?}"),
        }
    }

    // ----- reads -----

    /// Waits until this node has applied everything committed before the call: reads that
    /// follow see every write acknowledged before it, on any node.
    pub async fn linearize(&self) -> Result<()> {
        let index = proposer::read_index(&self.inner.raft, &self.inner.peers).await?;
        self.inner
            .raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| {
                StoreError::Stopped(format!("this node did not catch up for a read: {e}"))
            })?;
        Ok(())
    }

    /// Linearizable get.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.linearize().await?;
        self.get_local(key)
    }

    /// This node's current value, without asking the leader: may be stale on a follower.
    pub fn get_local(&self, key: &str) -> Result<Option<KeyValue>> {
        StateDb::get(&self.inner.state.read()?, key)
    }

    /// A list, linearizable unless it asks for a revision this node already has (later pages
    /// of a paginated list are then consistent without a round to the leader).
    pub async fn list(&self, req: ListRequest) -> Result<ListResponse> {
        let local = self.revision()?;
        if req.revision.is_none_or(|r| r > local) {
            self.linearize().await?;
        }
        let state = self.inner.state.clone();
        tokio::task::spawn_blocking(move || list::list(&state.read()?, &req))
            .await
            .map_err(|e| StoreError::Stopped(format!("list task failed: {e}")))?
    }

    /// Watches every change under `prefix` with a revision greater than `after`.
    pub async fn watch(&self, prefix: impl Into<String>, after: u64) -> Result<Watcher> {
        let rx = self.inner.hub.subscribe();
        Watcher::start(
            prefix.into(),
            after,
            self.inner.state.clone(),
            rx,
            self.inner.config.progress_interval,
        )
        .await
    }

    /// This node's current revision.
    pub fn revision(&self) -> Result<u64> {
        Ok(StateDb::revisions(&self.inner.state.read()?)?.current)
    }

    pub fn watcher_count(&self) -> usize {
        self.inner.hub.watcher_count()
    }

    /// Revisions held in watch history; for tests and status pages.
    pub fn history_len(&self) -> Result<u64> {
        self.inner.state.history_len()
    }

    /// Raft log entries on disk; for tests and status pages.
    pub fn log_len(&self) -> Result<u64> {
        self.inner.log.disk_len()
    }

    pub fn status(&self) -> Result<Status> {
        let m = self.inner.raft.metrics().borrow().clone();
        let revs = StateDb::revisions(&self.inner.state.read()?)?;
        let membership = m.membership_config.membership();
        let voters = membership
            .nodes()
            .filter(|(id, _)| membership.voter_ids().any(|v| v == **id))
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        Ok(Status {
            id: self.id(),
            leader: m.current_leader,
            voters,
            term: m.current_term,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            revision: revs.current,
            compacted: revs.compacted,
        })
    }

    /// Stops the node's tasks and raft. Writes already acknowledged are on disk; writes in
    /// flight fail with `Stopped`.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| StoreError::Stopped(format!("raft shutdown: {e}")))?;
        tracing::info!(node = self.id(), "store node stopped");
        Ok(())
    }
}

fn rejection_error(r: Rejection) -> StoreError {
    match (r.wanted, r.found) {
        (Precondition::Absent, Some(_)) => StoreError::AlreadyExists { key: r.key },
        (_, None) => StoreError::NotFound { key: r.key },
        (wanted, found) => StoreError::Conflict {
            key: r.key,
            wanted,
            found,
        },
    }
}

/// Compacts watch history on the leader, to the revision seen one interval earlier.
async fn compactor(
    raft: Raft,
    state: StateDb,
    proposals: mpsc::Sender<Proposal>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut seen_last_tick: Option<u64> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let is_leader = raft.metrics().borrow().current_leader == Some(raft.metrics().borrow().id);
        let Ok(current) = state.read().and_then(|t| StateDb::revisions(&t)) else {
            continue;
        };
        if is_leader && let Some(target) = seen_last_tick.filter(|t| *t > current.compacted) {
            let (reply, rx) = oneshot::channel();
            if proposals
                .send(Proposal {
                    command: Command::Compact { revision: target },
                    reply,
                })
                .await
                .is_err()
            {
                return;
            }
            match rx.await {
                Ok(Ok(_)) => tracing::debug!(revision = target, "compacted watch history"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "compaction failed; will retry next interval")
                }
                Err(_) => return,
            }
        }
        seen_last_tick = Some(current.current);
    }
}
