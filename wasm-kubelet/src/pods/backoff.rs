//! Kubernetes' restart back-off: the wait before a container's next start doubles with each
//! failure up to a cap, and is forgotten once the container has run well for a while.

use std::time::{Duration, Instant};

/// A run this long counts as healthy: the next failure starts the back-off over
/// (kubelet: twice the cap, 10 min).
const HEALTHY_RUN_FACTOR: u32 = 2;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new((initial, max): (Duration, Duration)) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The wait before the next start, given when the run that just ended started.
    pub fn after_run(&mut self, started: Instant) -> Duration {
        if started.elapsed() >= self.max * HEALTHY_RUN_FACTOR {
            self.next = self.initial;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The wait before retrying something that failed without running (a module fetch).
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let s = Duration::from_secs;
        let mut b = Backoff::new((s(10), s(300)));
        let now = Instant::now();
        let waits: Vec<_> = (0..7).map(|_| b.after_run(now).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        let long_ago = now.checked_sub(s(601)).unwrap_or(now);
        if long_ago != now {
            assert_eq!(b.after_run(long_ago), s(10));
        }
    }
}
