//! A container's limits inside its store: linear memory through a [`ResourceLimiter`], CPU
//! through the epoch deadline callback.
//!
//! CPU: the engine's epoch advances every [`TICK`]. Each store's deadline is one tick ahead,
//! so a guest that never calls the host still comes back to the callback every tick. There it
//! yields to tokio (so a busy loop never holds a worker thread), and, when the container has
//! a CPU limit, sleeps long enough that its running time stays within its share of a core.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

/// How often the engine's epoch advances: the longest a guest runs without yielding.
pub const TICK: Duration = Duration::from_millis(10);

/// Linear memory a guest may hold when its container sets no limit (the pool's slot size).
pub const DEFAULT_MEMORY_CAP: u64 = 4 << 30;

/// Refuses memory growth beyond the container's limit, and remembers that it did, so that the
/// failure that follows (a trap, an abort, an exit code) is reported as `OOMKilled`.
pub struct MemoryLimiter {
    limit: u64,
    used: u64,
    refused: Arc<AtomicBool>,
}

impl MemoryLimiter {
    pub fn new(limit: Option<u64>) -> MemoryLimiter {
        MemoryLimiter {
            limit: limit.unwrap_or(DEFAULT_MEMORY_CAP),
            used: 0,
            refused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shared flag: set once growth was refused; readable after the store is gone.
    pub fn refused(&self) -> Arc<AtomicBool> {
        self.refused.clone()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The limit is for all the store's memories together (a component has several).
        let grow = (desired as u64).saturating_sub(current as u64);
        let after = self.used.saturating_add(grow);
        if after > self.limit {
            self.refused.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.used = after;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool's own cap refused it: the guest is out of memory all the same.
        self.refused.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pool's `table_elements`.
        Ok(true)
    }
}

/// Store data that holds a [`MemoryLimiter`].
pub trait Limited: Send + 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
}

/// Installs the memory limiter and the epoch callback on a fresh store.
pub fn install<T: Limited>(store: &mut Store<T>, cpu_limit_millis: Option<u64>) {
    store.limiter(|data| data.limiter() as &mut dyn ResourceLimiter);
    store.set_epoch_deadline(1);
    let mut throttle = Throttle::new(cpu_limit_millis);
    store.epoch_deadline_callback(move |_| Ok(throttle.on_deadline(Instant::now())));
}

/// The CPU share of one container run.
pub struct Throttle {
    /// Fraction of a core; `None` is unlimited.
    share: Option<f64>,
    /// When the guest last came back from a yield (or started).
    resumed: Instant,
}

impl Throttle {
    pub fn new(cpu_limit_millis: Option<u64>) -> Throttle {
        Throttle {
            share: cpu_limit_millis
                .map(|m| (m.max(1) as f64) / 1000.0)
                .filter(|s| *s < 1.0),
            resumed: Instant::now(),
        }
    }

    /// How long to sleep after running `ran` to stay within the share.
    pub fn pause_for(&self, ran: Duration) -> Duration {
        match self.share {
            None => Duration::ZERO,
            Some(share) => {
                // Wall time since the last yield also counts time the guest spent waiting in
                // host calls; bound it so a guest that slept does not pay for the sleep.
                let ran = ran.min(TICK * 2);
                ran.mul_f64((1.0 - share) / share)
            }
        }
    }

    fn on_deadline(&mut self, now: Instant) -> UpdateDeadline {
        let pause = self.pause_for(now.saturating_duration_since(self.resumed));
        // The sleep happens after this returns; count from its end.
        self.resumed = now + pause;
        if pause.is_zero() {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories_and_remembers_refusals() {
        let mut l = MemoryLimiter::new(Some(3 << 16));
        let refused = l.refused();
        assert!(l.memory_growing(0, 2 << 16, None).unwrap());
        assert!(l.memory_growing(0, 1 << 16, None).unwrap());
        assert!(!refused.load(Ordering::Relaxed));
        assert!(!l.memory_growing(1 << 16, 2 << 16, None).unwrap());
        assert!(refused.load(Ordering::Relaxed));
    }

    #[test]
    fn throttle_pauses_in_proportion_to_the_share() {
        let t = Throttle::new(Some(100));
        let p = t.pause_for(Duration::from_millis(10));
        assert!((p.as_secs_f64() - 0.090).abs() < 0.001, "{p:?}");
        assert_eq!(Throttle::new(None).pause_for(TICK), Duration::ZERO);
        assert_eq!(Throttle::new(Some(2000)).pause_for(TICK), Duration::ZERO);
    }
}
