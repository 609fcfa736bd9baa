//! Packs concurrent writes into raft entries, and finds the leader for them.
//!
//! One task owns the queue. It takes whatever has queued up while the previous entries were
//! in flight (up to [`MAX_BATCH`]) and proposes it as one raft entry, so under load one log
//! append, one replication round and one fsync serve hundreds of writes. Several entries may
//! be in flight at once; their answers come back in any order and go to their callers.
//!
//! On a follower the batch is forwarded to the leader's `/propose` endpoint, once: a node
//! that receives a forwarded batch and is no longer leader answers `NotLeader`, and the
//! origin retries against whoever is leader by then.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::command::{Command, Outcome};
use crate::error::{Result, StoreError};
use crate::peer_client::{PeerError, Peers};
use crate::raft::Raft;

/// Most commands in one raft entry.
pub const MAX_BATCH: usize = 1024;

/// Most entries in flight at once. While they are, new writes queue up and go out together
/// as the next entry: a small bound is what makes batches big under load, and two keep the
/// log's fsync and the state machine's apply overlapping.
const MAX_INFLIGHT: usize = 2;

/// How long a write or read waits for a leader before it gives up with `NoLeader`.
const LEADER_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Proposal {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Outcome>>,
}

/// A peer's answer to a forwarded request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ForwardError {
    /// The receiver is not the leader (any more): try again.
    NotLeader,
    /// The receiver's raft has stopped (it is shutting down or failed): try again, a new
    /// leader takes over. A write it proposed just before stopping may have applied.
    Stopped,
    Failed(String),
}

pub(crate) async fn run(
    raft: Raft,
    peers: Peers,
    mut rx: mpsc::Receiver<Proposal>,
    cancel: CancellationToken,
) {
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(()) = inflight.next(), if !inflight.is_empty() => {}
            next = rx.recv(), if inflight.len() < MAX_INFLIGHT => match next {
                Some(first) => {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    inflight.push(propose_batch(raft.clone(), peers.clone(), batch));
                }
                None => break,
            },
            () = cancel.cancelled() => break,
        }
    }
    // Dropping what is still in flight drops the callers' reply senders: they see the
    // store stopping. Raft itself finishes or discards those entries on shutdown.
}

async fn propose_batch(raft: Raft, peers: Peers, batch: Vec<Proposal>) {
    let (commands, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    match write(&raft, &peers, commands).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
    }
}

/// Proposes `commands` as one entry through the leader, wherever it is.
pub(crate) async fn write(
    raft: &Raft,
    peers: &Peers,
    commands: Vec<Command>,
) -> Result<Vec<Outcome>> {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        match raft.client_write(commands.clone()).await {
            Ok(resp) => return Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                if let Some(node) = f.leader_node {
                    let answer: Result<Result<Vec<Outcome>, ForwardError>, PeerError> =
                        peers.call(&node.addr, "/propose", &commands, None).await;
                    match answer {
                        Ok(Ok(outcomes)) => return Ok(outcomes),
                        Ok(Err(ForwardError::Failed(m))) => return Err(StoreError::Stopped(m)),
                        // The leader moved, or is gone before it saw the request: retry.
                        Ok(Err(ForwardError::NotLeader | ForwardError::Stopped))
                        | Err(PeerError::Connect(_)) => {}
                        Err(e) => return Err(e.into_store_error(&node.addr)),
                    }
                }
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                return Err(StoreError::Membership(e.to_string()));
            }
            Err(RaftError::Fatal(f)) => return Err(StoreError::Stopped(f.to_string())),
        }
        wait_or_give_up(deadline).await?;
    }
}

/// The log index a linearizable read must wait for, confirmed by a quorum through the leader.
pub(crate) async fn read_index(raft: &Raft, peers: &Peers) -> Result<u64> {
    let deadline = Instant::now() + LEADER_WAIT;
    loop {
        match raft.get_read_log_id().await {
            Ok((read, _)) => return Ok(read.map_or(0, |id| id.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                if let Some(node) = f.leader_node {
                    let answer: Result<Result<u64, ForwardError>, PeerError> =
                        peers.call(&node.addr, "/read-index", &(), None).await;
                    match answer {
                        Ok(Ok(index)) => return Ok(index),
                        Ok(Err(ForwardError::Failed(m))) => return Err(StoreError::Stopped(m)),
                        Ok(Err(ForwardError::NotLeader | ForwardError::Stopped))
                        | Err(PeerError::Connect(_)) => {}
                        Err(e) => return Err(e.into_store_error(&node.addr)),
                    }
                }
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {}
            Err(RaftError::Fatal(f)) => return Err(StoreError::Stopped(f.to_string())),
        }
        wait_or_give_up(deadline).await?;
    }
}

async fn wait_or_give_up(deadline: Instant) -> Result<()> {
    if Instant::now() >= deadline {
        return Err(StoreError::NoLeader);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
