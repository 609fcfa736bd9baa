//! Running a command (a core module's `_start` or a component's `wasi:cli/run`) to its end,
//! and turning how it ended into an [`Exit`].

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use wasmtime::{InstancePre, Store, Trap};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::error::chain;
use super::limits::{self, MemoryLimiter};
use super::wasi::{self, Host, P1Host};
use super::{Exit, ExitReason, Launch, Runtime, TRAP_CODE};
use crate::logs::Stream;

pub async fn run_core(
    rt: &Runtime,
    pre: &InstancePre<P1Host>,
    launch: &Launch,
    stop: CancellationToken,
) -> Exit {
    let wasi = match wasi::builder(launch) {
        Ok(mut b) => b.build_p1(),
        Err(message) => return Exit::cannot_run(message),
    };
    let limiter = MemoryLimiter::new(launch.memory_limit);
    let refused = limiter.refused();
    let mut store = Store::new(rt.engine(), P1Host { wasi, limiter });
    limits::install(&mut store, launch.cpu_limit_millis);
    let run = async {
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(Failure::Start)?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(Failure::Start)?;
        start
            .call_async(&mut store, ())
            .await
            .map_err(Failure::Run)?;
        Ok(0)
    };
    tokio::select! {
        result = run => outcome(result, &refused, launch),
        _ = stop.cancelled() => Exit::killed(),
    }
}

pub async fn run_component(
    rt: &Runtime,
    pre: &CommandPre<Host>,
    launch: &Launch,
    stop: CancellationToken,
) -> Exit {
    let wasi = match wasi::builder(launch) {
        Ok(mut b) => b.build(),
        Err(message) => return Exit::cannot_run(message),
    };
    let limiter = MemoryLimiter::new(launch.memory_limit);
    let refused = limiter.refused();
    let mut store = Store::new(
        rt.engine(),
        Host::new(wasi, launch.outbound, launch.services.clone(), limiter),
    );
    limits::install(&mut store, launch.cpu_limit_millis);
    let run = async {
        let command = pre
            .instantiate_async(&mut store)
            .await
            .map_err(Failure::Start)?;
        match command.wasi_cli_run().call_run(&mut store).await {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(e) => Err(Failure::Run(e)),
        }
    };
    tokio::select! {
        result = run => outcome(result, &refused, launch),
        _ = stop.cancelled() => Exit::killed(),
    }
}

/// Why a guest did not return normally.
pub enum Failure {
    /// It could not be instantiated (out of instance slots or memory, a start function trap).
    Start(wasmtime::Error),
    /// It trapped or exited while running.
    Run(wasmtime::Error),
}

impl Failure {
    /// Whether the host, not the guest, failed to start it (e.g. no free instance slot).
    pub fn is_host_side(&self) -> bool {
        match self {
            Failure::Start(e) => {
                e.downcast_ref::<Trap>().is_none() && e.downcast_ref::<I32Exit>().is_none()
            }
            Failure::Run(_) => false,
        }
    }
}

/// How a run ended, as the container's exit. A guest whose memory growth was refused and
/// that then failed in any way ran out of memory.
pub fn outcome(result: Result<i32, Failure>, refused: &AtomicBool, launch: &Launch) -> Exit {
    let oom = refused.load(Ordering::Relaxed);
    let exit = match result {
        Ok(code) if code == 0 || !oom => return Exit::code(code),
        Ok(_) => Exit::oom_killed(memory_limit(launch)),
        Err(Failure::Run(e) | Failure::Start(e)) => {
            if let Some(I32Exit(code)) = e.downcast_ref::<I32Exit>() {
                if *code == 0 || !oom {
                    return Exit::code(*code);
                }
                Exit::oom_killed(memory_limit(launch))
            } else {
                // Traps and host failures: the whole story (wasm backtrace included) goes
                // to the container's log, a one-line summary to its status.
                launch
                    .stderr
                    .write(Stream::Stderr, format!("{e:?}\n").as_bytes());
                if oom {
                    Exit::oom_killed(memory_limit(launch))
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    Exit {
                        code: TRAP_CODE,
                        reason: ExitReason::Error,
                        message: Some(format!("wasm trap: {trap}")),
                    }
                } else {
                    Exit {
                        code: TRAP_CODE,
                        reason: ExitReason::Error,
                        message: Some(format!("the module failed: {}", chain(&e))),
                    }
                }
            }
        }
    };
    if let Some(message) = &exit.message {
        launch
            .stderr
            .write(Stream::Stderr, format!("{message}\n").as_bytes());
    }
    exit
}

fn memory_limit(launch: &Launch) -> u64 {
    launch.memory_limit.unwrap_or(limits::DEFAULT_MEMORY_CAP)
}
