//! [`Runtime`]: one wasmtime engine per agent, configured for many small, untrusted,
//! concurrently running guests.
//!
//! - Async: guests run as futures on tokio, so a sleeping or looping guest holds no thread.
//! - Epoch interruption: the epoch advances every [`TICK`](super::limits::TICK) (see
//!   [`Runtime::tick_epochs`]), which is how busy guests yield, are throttled and stopped.
//! - Pooling allocator: instance slots, memories and fiber stacks are reserved up front for
//!   `max_instances` guests *running at once* (commands, plus in-flight HTTP requests: an
//!   idle HTTP service holds no instance). Each memory slot reserves 4 GiB of address space
//!   (not memory) so bounds checks are elided; memory is committed only as guests grow.
//!   A freed slot keeps the start of its memory resident ([`KEEP_RESIDENT`]), so that the
//!   next request's instance does not fault its pages in again.
//! - Compiled code is cached on disk by wasmtime (`cache_dir`), and in memory by digest, so
//!   a second pod running the same module neither compiles nor deserialises it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::Workload;
use super::error::{Error, chain};
use super::limits::{DEFAULT_MEMORY_CAP, TICK};
use super::load::{self, Linkers};

/// How much of each linear memory a freed pool slot keeps resident, reset with `memset`
/// rather than handed back with `madvise`. An HTTP service makes one instance per request,
/// so without it every request pays page faults (and TLB-shootdown IPIs) to touch its
/// memory again. 1.5 MiB covers what a Rust guest touches first: its 1 MiB shadow stack,
/// its data and the start of its heap. Measured with http-echo at 32 concurrent requests
/// (`ab -k -c 32`, 2 cores): 7,100 req/s without, 9,500 with 1 MiB, 11,500–12,300 with
/// 1.25–1.5 MiB, 9,500–11,000 with 2–3 MiB (the memset then costs more than the faults it
/// saves). Resident cost: at most this much per warm slot (`max_unused_warm_slots`).
const KEEP_RESIDENT: usize = 1536 << 10;

/// Compiled workloads kept in memory beyond the ones pods still hold.
const MEMO_SPARE: usize = 32;

pub struct RuntimeConfig {
    /// Where wasmtime keeps compiled code (DATA_DIR/wasmtime-cache).
    pub cache_dir: PathBuf,
    /// How many guest instances may run at once (commands plus in-flight HTTP requests).
    pub max_instances: u32,
}

/// The wasm runtime of one agent. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linkers: Linkers,
    memo: Mutex<HashMap<String, Arc<OnceCell<Workload>>>>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, Error> {
        let cache_dir = absolute_dir(&config.cache_dir)?;
        let mut cache = CacheConfig::new();
        cache.with_directory(cache_dir);
        let cache = Cache::new(cache).map_err(|e| Error::Engine(chain(&e)))?;

        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            // A wasip2 component holds a handful of core instances (its code, adapters,
            // shims); a core module holds one.
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(DEFAULT_MEMORY_CAP as usize)
            // A slot once used by a module keeps its pages; cap what idle slots keep.
            .max_unused_warm_slots(n.min(100));
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT / 8);

        let mut cfg = Config::new();
        cfg.epoch_interruption(true)
            .wasm_component_model(true)
            .cache(Some(cache))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| Error::Engine(chain(&e)))?;
        let linkers = Linkers::new(&engine).map_err(|e| Error::Engine(chain(&e)))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linkers,
                memo: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The one task that advances the engine's epoch (every 10 ms) until `shutdown`.
    /// Without it, busy guests are neither throttled nor stopped.
    ///
    /// The ticking itself runs on a thread of its own: were it a tokio task, guests busy on
    /// every worker thread would keep it from running, and so never be told to yield.
    pub async fn tick_epochs(&self, shutdown: CancellationToken) {
        /// Ends the thread when this future ends, cancelled or dropped.
        struct Done(Arc<AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let done = Done(Arc::new(AtomicBool::new(false)));
        let engine = self.inner.engine.clone();
        let flag = done.0.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the wasm epoch thread; busy guests will not yield");
                return;
            }
        };
        shutdown.cancelled().await;
        drop(done);
        // The thread sees the flag within one tick.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }

    /// Compiles (or loads from cache) the module/component whose content has `digest`.
    /// Compilation runs off the async threads; result memoised by digest.
    pub async fn load(&self, digest: &str, path: &Path) -> Result<Workload, Error> {
        let cell = {
            let mut memo = self.inner.memo.lock().unwrap_or_else(|e| e.into_inner());
            if memo.len() >= MEMO_SPARE {
                // Forget what no pod holds any more (the memo's own reference is the last).
                memo.retain(|_, cell| cell.get().is_none_or(|w| Arc::strong_count(&w.inner) > 1));
            }
            memo.entry(digest.to_owned()).or_default().clone()
        };
        // Concurrent loads of one digest wait for a single compilation.
        let workload = cell
            .get_or_try_init(|| async {
                let rt = self.clone();
                let digest = digest.to_owned();
                let path = path.to_owned();
                tokio::task::spawn_blocking(move || rt.compile(&digest, &path))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))?
            })
            .await?;
        Ok(workload.clone())
    }

    fn compile(&self, digest: &str, path: &Path) -> Result<Workload, Error> {
        let wasm = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let started = std::time::Instant::now();
        let compiled = load::compile(&self.inner.engine, &self.inner.linkers, digest, &wasm)?;
        tracing::debug!(digest, elapsed = ?started.elapsed(), kind = ?compiled.kind(), "module loaded");
        Ok(Workload {
            inner: Arc::new(compiled),
        })
    }
}

fn absolute_dir(dir: &Path) -> Result<PathBuf, Error> {
    let io = |source| Error::CacheDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::path::absolute(dir).map_err(io)
}
