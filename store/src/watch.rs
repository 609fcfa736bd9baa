//! Watch: every change under a key prefix, from any revision still in history.
//!
//! # How a watcher stays gap-free
//! 1. It subscribes to the [`Hub`] first, then reads history from its start revision up to
//!    the current revision. A change that lands in between is seen twice (in history and
//!    on the channel); the watcher drops anything at or below the revision it has already
//!    covered, so nothing is missed and nothing is repeated.
//! 2. The state machine publishes a batch only after committing it, so whatever a watcher
//!    sees on the channel is already in history too.
//!
//! # Why writes never wait for watchers
//! The hub is a bounded broadcast: publishing never blocks. A watcher that falls more than
//! [`HUB_CAPACITY`] batches behind is cut off from the live channel, and re-reads what it
//! missed from history on disk, then rejoins. Only if history was compacted past it
//! meanwhile does it fail with [`StoreError::Compacted`], and its client relists.
//!
//! # Progress
//! When nothing was delivered for the configured interval, the watcher yields
//! [`WatchMessage::Progress`] with the revision it has covered; the API server turns it into
//! a Kubernetes bookmark.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::command::Event;
use crate::error::{Result, StoreError};
use crate::state_machine::StateDb;

/// Batches the live channel holds before a slow watcher is sent back to history.
pub const HUB_CAPACITY: usize = 4096;

/// Most events handed out in one [`WatchMessage::Events`].
const MAX_BATCH: usize = 1024;

/// What the state machine announces after each commit.
#[derive(Debug)]
pub(crate) enum Published {
    /// The events of one applied batch; `revision` is the store revision after it.
    Events { revision: u64, events: Vec<Event> },
    /// The state was replaced by a snapshot at `revision`: history before it is gone.
    Reset { revision: u64 },
}

/// Fan-out of applied changes to watchers.
pub(crate) struct Hub {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Hub {
    pub fn new() -> Self {
        Hub {
            tx: broadcast::channel(HUB_CAPACITY).0,
        }
    }

    pub fn publish(&self, revision: u64, events: Vec<Event>) {
        if !events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self
                .tx
                .send(Arc::new(Published::Events { revision, events }));
        }
    }

    pub fn reset(&self, revision: u64) {
        let _ = self.tx.send(Arc::new(Published::Reset { revision }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    pub fn watcher_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// What a watcher yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes in revision order, all newer than anything yielded before.
    Events(Vec<Event>),
    /// Nothing changed under the prefix up to and including this revision.
    Progress(u64),
}

/// A stream of changes under one key prefix. Dropping it ends the watch.
pub struct Watcher {
    prefix: String,
    state: StateDb,
    rx: broadcast::Receiver<Arc<Published>>,
    /// Every change under `prefix` up to this revision is delivered or in `backlog`.
    covered: u64,
    backlog: VecDeque<Event>,
    progress_every: Duration,
    last_yield: Instant,
}

impl Watcher {
    pub(crate) async fn start(
        prefix: String,
        after: u64,
        state: StateDb,
        rx: broadcast::Receiver<Arc<Published>>,
        progress_every: Duration,
    ) -> Result<Self> {
        let mut w = Watcher {
            prefix,
            state,
            rx,
            covered: after,
            backlog: VecDeque::new(),
            progress_every,
            last_yield: Instant::now(),
        };
        w.catch_up().await?;
        Ok(w)
    }

    /// The revision up to which this watcher has covered every change.
    pub fn revision(&self) -> u64 {
        self.covered
    }

    /// Reads history from `covered` to the current revision into the backlog.
    async fn catch_up(&mut self) -> Result<()> {
        let (state, prefix, after) = (self.state.clone(), self.prefix.clone(), self.covered);
        let (events, current) = tokio::task::spawn_blocking(move || -> Result<_> {
            let txn = state.read()?;
            let revs = StateDb::revisions(&txn)?;
            if after < revs.compacted {
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted: revs.compacted,
                });
            }
            let mut events = StateDb::history(&txn, after, revs.current)?;
            events.retain(|e| e.kv.key.starts_with(&prefix));
            Ok((events, revs.current))
        })
        .await
        .map_err(|e| StoreError::Stopped(format!("watch catch-up task failed: {e}")))??;
        self.backlog.extend(events);
        self.covered = self.covered.max(current);
        Ok(())
    }

    /// Waits for the next changes, or a progress notice when there are none for a while.
    pub async fn next(&mut self) -> Result<WatchMessage> {
        loop {
            if !self.backlog.is_empty() {
                let n = self.backlog.len().min(MAX_BATCH);
                self.last_yield = Instant::now();
                return Ok(WatchMessage::Events(self.backlog.drain(..n).collect()));
            }
            let deadline = self.last_yield + self.progress_every;
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Ok(published) => match &*published {
                        Published::Events { revision, events } => {
                            let fresh: Vec<Event> = events
                                .iter()
                                .filter(|e| e.revision() > self.covered && e.kv.key.starts_with(&self.prefix))
                                .cloned()
                                .collect();
                            self.covered = self.covered.max(*revision);
                            if !fresh.is_empty() {
                                self.last_yield = Instant::now();
                                return Ok(WatchMessage::Events(fresh));
                            }
                        }
                        Published::Reset { revision } => {
                            if self.covered < *revision {
                                return Err(StoreError::Compacted { requested: self.covered, compacted: *revision });
                            }
                        }
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Rejoin at the tail first, then read what was missed from disk.
                        self.rx = self.rx.resubscribe();
                        self.catch_up().await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(StoreError::Stopped("the store closed".into()));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    self.last_yield = Instant::now();
                    return Ok(WatchMessage::Progress(self.covered));
                }
            }
        }
    }
}
