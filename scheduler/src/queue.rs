//! The pods waiting for a node, as kube-scheduler's scheduling queue keeps them:
//!
//! - **active**: ready to be tried, highest `priority` first, then first come first served;
//! - **backing off**: failed recently; they become active when their backoff ends (1 s,
//!   doubling per failed attempt, at most 10 s), so a pod that keeps failing cannot hog
//!   the scheduler;
//! - **unschedulable**: fit nowhere last time. Trying again is pointless until the cluster
//!   changes, so they wait for [`Queue::move_all`] (a node came or changed, a pod left) or,
//!   as a safety net, until they have waited `retry` ([`Queue::flush`]);
//! - **in flight**: being bound; the watch or the binding's result says what comes next.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::pod::PodInfo;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long a pod that failed `attempts` times waits before it is tried again.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    BackingOff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    attempts: u32,
    state: State,
    /// When it last failed.
    failed_at: Option<Instant>,
    /// Matches the one heap entry that is current; older ones are skipped when popped.
    ticket: u64,
}

/// An active pod's place in line.
#[derive(Debug, PartialEq, Eq)]
struct Ticket {
    priority: i32,
    seq: u64,
    uid: String,
}

impl Ord for Ticket {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Ticket {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<Ticket>,
    backing_off: BinaryHeap<Reverse<(Instant, u64, String)>>,
    unschedulable: HashSet<String>,
    seq: u64,
}

impl Queue {
    #[cfg(test)]
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// A pending pod, new or changed. A change to what it demands sends an unschedulable
    /// pod round again (say, a toleration was added); a status change does not.
    pub fn upsert(&mut self, pod: Arc<PodInfo>, now: Instant) {
        let uid = pod.uid.clone();
        match self.entries.get_mut(&uid) {
            None => {
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        attempts: 0,
                        state: State::Active,
                        failed_at: None,
                        ticket: 0,
                    },
                );
                self.activate(&uid);
            }
            Some(entry) => {
                let changed = entry.pod.demands != pod.demands;
                entry.pod = pod;
                if changed && entry.state == State::Unschedulable {
                    self.wake(&uid, now);
                }
            }
        }
    }

    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
        self.unschedulable.remove(uid);
    }

    /// After a relist: forgets the pods not in `uids`, except those in flight.
    pub fn retain(&mut self, uids: &HashSet<String>) {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(uid, e)| e.state != State::InFlight && !uids.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in gone {
            self.remove(&uid);
        }
    }

    /// The next pod to try, now in flight.
    pub fn pop(&mut self, now: Instant) -> Option<Arc<PodInfo>> {
        self.flush_backoff(now);
        while let Some(ticket) = self.active.pop() {
            let Some(entry) = self.entries.get_mut(&ticket.uid) else {
                continue;
            };
            if entry.state != State::Active || entry.ticket != ticket.seq {
                continue;
            }
            entry.state = State::InFlight;
            return Some(entry.pod.clone());
        }
        None
    }

    /// It fit nowhere: it waits for the cluster to change.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.attempts += 1;
            entry.failed_at = Some(now);
            entry.state = State::Unschedulable;
            self.unschedulable.insert(uid.to_owned());
        }
    }

    /// Something went wrong (its binding failed): it is tried again after its backoff.
    pub fn retry_later(&mut self, uid: &str, now: Instant) {
        if let Some(entry) = self.entries.get_mut(uid) {
            entry.attempts += 1;
            entry.failed_at = Some(now);
        }
        self.wake(uid, now);
    }

    /// The cluster changed in a way that may let unschedulable pods fit: each is tried
    /// again once its backoff has passed.
    pub fn move_all(&mut self, now: Instant) {
        for uid in std::mem::take(&mut self.unschedulable) {
            self.wake(&uid, now);
        }
    }

    /// The periodic sweep: backoffs that ended, and unschedulable pods that have waited
    /// `retry` without any change that would wake them.
    pub fn flush(&mut self, now: Instant, retry: Duration) {
        self.flush_backoff(now);
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|uid| {
                self.entries
                    .get(*uid)
                    .and_then(|e| e.failed_at)
                    .is_none_or(|t| t + retry <= now)
            })
            .cloned()
            .collect();
        for uid in stale {
            self.wake(&uid, now);
        }
    }

    /// Sends a pod to the active queue, or to back off first if it failed recently.
    fn wake(&mut self, uid: &str, now: Instant) {
        self.unschedulable.remove(uid);
        let Some(entry) = self.entries.get(uid) else {
            return;
        };
        let until = entry.failed_at.map(|t| t + backoff(entry.attempts));
        match until {
            Some(until) if until > now => {
                self.seq += 1;
                let entry = self.entries.get_mut(uid).expect("present above");
                entry.state = State::BackingOff;
                entry.ticket = self.seq;
                self.backing_off
                    .push(Reverse((until, self.seq, uid.to_owned())));
            }
            _ => self.activate(uid),
        }
    }

    fn activate(&mut self, uid: &str) {
        let Some(entry) = self.entries.get_mut(uid) else {
            return;
        };
        self.seq += 1;
        entry.state = State::Active;
        entry.ticket = self.seq;
        self.active.push(Ticket {
            priority: entry.pod.priority,
            seq: self.seq,
            uid: uid.to_owned(),
        });
    }

    fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, seq, _))) = self.backing_off.peek()
            && *until <= now
        {
            let seq = *seq;
            let Some(Reverse((_, _, uid))) = self.backing_off.pop() else {
                break;
            };
            let current = self
                .entries
                .get(&uid)
                .is_some_and(|e| e.state == State::BackingOff && e.ticket == seq);
            if current {
                self.activate(&uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::tests::pod;

    fn pending(name: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"priority": priority, "containers": [{"name": "c", "image": "busybox"}]},
        })))
    }

    fn names(q: &mut Queue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop(now))
            .map(|p| p.name.clone())
            .collect()
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn higher_priority_first_then_arrival_order() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("a", 0), now);
        q.upsert(pending("b", 10), now);
        q.upsert(pending("c", 0), now);
        assert_eq!(names(&mut q, now), ["b", "a", "c"]);
    }

    #[test]
    fn an_unschedulable_pod_waits_for_a_change_then_its_backoff() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("p", 0), now);
        q.pop(now).unwrap();
        q.unschedulable("uid-p", now);
        // A later status update of the pod is no reason to try again.
        q.upsert(pending("p", 0), now);
        assert!(q.pop(now + Duration::from_secs(5)).is_none());
        // A node appears: the pod backs off its one second, then goes.
        q.move_all(now);
        assert!(q.pop(now).is_none());
        assert_eq!(q.pop(now + Duration::from_secs(1)).unwrap().name, "p");
    }

    #[test]
    fn unschedulable_pods_are_retried_after_the_retry_period_anyway() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("p", 0), now);
        q.pop(now).unwrap();
        q.unschedulable("uid-p", now);
        let retry = Duration::from_secs(30);
        q.flush(now + Duration::from_secs(29), retry);
        assert!(q.pop(now + Duration::from_secs(29)).is_none());
        q.flush(now + retry, retry);
        assert_eq!(q.pop(now + retry).unwrap().name, "p");
    }

    #[test]
    fn a_changed_demand_wakes_an_unschedulable_pod() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("p", 0), now);
        q.pop(now).unwrap();
        q.unschedulable("uid-p", now);
        let mut tolerant = (*pending("p", 0)).clone();
        tolerant.demands.tolerations =
            serde_json::from_value(serde_json::json!([{"operator": "Exists"}])).unwrap();
        q.upsert(Arc::new(tolerant), now);
        assert_eq!(q.pop(now + Duration::from_secs(1)).unwrap().name, "p");
    }

    #[test]
    fn a_failed_binding_backs_off_longer_each_time() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("p", 0), now);
        q.pop(now).unwrap();
        q.retry_later("uid-p", now);
        assert!(q.pop(now).is_none());
        let later = now + Duration::from_secs(1);
        q.pop(later).unwrap();
        q.retry_later("uid-p", later);
        assert!(q.pop(later + Duration::from_secs(1)).is_none());
        assert!(q.pop(later + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn a_relist_keeps_pods_in_flight() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.upsert(pending("flying", 0), now);
        q.upsert(pending("gone", 0), now);
        q.pop(now).unwrap();
        q.retain(&HashSet::new());
        assert!(q.contains("uid-flying"));
        assert!(!q.contains("uid-gone"));
        assert!(q.pop(now).is_none());
    }
}
