//! The garbage collector's work queue: uids to look at, each at most once at a time.
//!
//! The shape of client-go's workqueue, which Kubernetes' garbage collector uses: adding a uid
//! already waiting does nothing; adding one that a worker is processing marks it to be
//! processed again afterwards (so a change seen mid-sync is never lost, and two workers
//! never act on one object at once); failures back off exponentially per uid.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::graph::Uid;

/// The first retry of a failed uid comes after this long, doubling to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// A uid failing for good (say, an owner kind no server serves) is retried this often.
const MAX_BACKOFF: Duration = Duration::from_secs(120);

#[derive(Default)]
pub(crate) struct WorkQueue {
    inner: Mutex<Inner>,
    wake: Notify,
}

#[derive(Default)]
struct Inner {
    ready: VecDeque<Uid>,
    /// In `ready`: adding again is a no-op.
    queued: HashSet<Uid>,
    /// Waiting for their time, soonest first; `due` says when each is.
    delayed: BTreeSet<(Instant, Uid)>,
    due: HashMap<Uid, Instant>,
    processing: HashSet<Uid>,
    /// Added while processing: back into `ready` when done.
    dirty: HashSet<Uid>,
    failures: HashMap<Uid, u32>,
    closed: bool,
}

impl WorkQueue {
    pub fn add_all(&self, uids: impl IntoIterator<Item = Uid>) {
        let mut inner = self.lock();
        for uid in uids {
            inner.add(uid);
        }
        drop(inner);
        self.wake.notify_waiters();
    }

    /// Adds `uid` once `delay` has passed (sooner if it is added again meanwhile).
    pub fn add_after(&self, uid: Uid, delay: Duration) {
        let at = Instant::now() + delay;
        let mut inner = self.lock();
        match inner.due.get(&uid) {
            Some(existing) if *existing <= at => {}
            Some(existing) => {
                let existing = *existing;
                inner.delayed.remove(&(existing, uid.clone()));
                inner.delayed.insert((at, uid.clone()));
                inner.due.insert(uid, at);
            }
            None => {
                inner.delayed.insert((at, uid.clone()));
                inner.due.insert(uid, at);
            }
        }
        drop(inner);
        self.wake.notify_waiters();
    }

    /// Adds `uid` after its next backoff step.
    pub fn retry(&self, uid: Uid) {
        let delay = {
            let mut inner = self.lock();
            let n = inner.failures.entry(uid.clone()).or_default();
            *n = n.saturating_add(1);
            backoff(*n)
        };
        self.add_after(uid, delay);
    }

    /// `uid` succeeded: its next failure starts the backoff afresh.
    pub fn forget(&self, uid: &str) {
        self.lock().failures.remove(uid);
    }

    /// Waits for the next uid to process; `None` once closed. Call [`WorkQueue::done`] after.
    pub async fn next(&self) -> Option<Uid> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                inner.promote_due(Instant::now());
                if let Some(uid) = inner.ready.pop_front() {
                    inner.queued.remove(&uid);
                    inner.processing.insert(uid.clone());
                    return Some(uid);
                }
                inner.delayed.first().map(|(at, _)| *at)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    pub fn done(&self, uid: &str) {
        let mut inner = self.lock();
        inner.processing.remove(uid);
        if inner.dirty.remove(uid) {
            inner.add(uid.to_owned());
            drop(inner);
            self.wake.notify_waiters();
        }
    }

    /// Wakes every waiting worker with `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A worker that panicked mid-update leaves sets that are still each consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn add(&mut self, uid: Uid) {
        if let Some(at) = self.due.remove(&uid) {
            self.delayed.remove(&(at, uid.clone()));
        }
        if self.processing.contains(&uid) {
            self.dirty.insert(uid);
        } else if self.queued.insert(uid.clone()) {
            self.ready.push_back(uid);
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.delayed.first()
            && *at <= now
        {
            let Some((_, uid)) = self.delayed.pop_first() else {
                break;
            };
            self.due.remove(&uid);
            self.add(uid);
        }
    }
}

/// 200 ms, 400 ms, 800 ms, … up to two minutes.
fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl WorkQueue {
        fn add(&self, uid: &str) {
            self.add_all([uid.to_owned()]);
        }
    }

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(4), Duration::from_millis(1600));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_uid_is_queued_once_and_never_processed_twice_at_once() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        // Added while processing: comes back only after done.
        q.add("a");
        assert_eq!(q.next().await.as_deref(), Some("b"));
        q.done("b");
        q.done("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.done("a");
        q.close();
        assert_eq!(q.next().await, None);
    }

    #[tokio::test]
    async fn delayed_and_retried_uids_come_back_when_due() {
        let ms = Duration::from_millis;
        let q = WorkQueue::default();
        q.add_after("late".into(), ms(5000));
        q.add_after("soon".into(), ms(20));
        // Asking for it sooner moves it up; asking later does not postpone it.
        q.add_after("late".into(), ms(40));
        q.add_after("soon".into(), ms(60_000));
        assert_eq!(q.next().await.as_deref(), Some("soon"));
        q.done("soon");
        assert_eq!(q.next().await.as_deref(), Some("late"));
        // A failure comes back after its backoff, and only once it is done.
        q.retry("late".into());
        q.done("late");
        assert_eq!(q.next().await.as_deref(), Some("late"));
        q.done("late");
        q.close();
        assert_eq!(q.next().await, None);
    }

    #[tokio::test]
    async fn an_add_wakes_a_waiting_worker() {
        let q = std::sync::Arc::new(WorkQueue::default());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.add("x");
        assert_eq!(waiter.await.unwrap().as_deref(), Some("x"));
    }
}
