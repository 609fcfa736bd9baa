//! The wasmtime host: compiles modules (once per digest, cached on disk), runs WASI commands
//! to their end, serves `wasi:http` components with one fresh instance per request, and
//! enforces each container's memory and CPU limits.
//!
//! # Layout
//! - `engine.rs`: [`Runtime`]: the engine (pooling allocator, epochs, on-disk code cache),
//!   the linkers, and the in-memory memo of compiled workloads;
//! - `load.rs`: what a module is: a core command, a component command, or an HTTP service;
//! - `wasi.rs`: the guest's view of the world: args, env, preopens, logs, network policy;
//! - `limits.rs`: the memory limiter and the epoch callback that yields and throttles;
//! - `command.rs`: running a command to its exit;
//! - `http.rs`: serving an HTTP component until stopped;
//! - `error.rs`: [`Error`].
//!
//! The engine's epoch must advance for busy guests to yield, be throttled and be stopped:
//! run [`Runtime::tick_epochs`] once per agent.

mod command;
mod engine;
mod error;
mod http;
mod limits;
mod load;
mod wasi;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::logs::LogWriter;

pub use engine::{Runtime, RuntimeConfig};
pub use error::Error;

/// Exit code of a container ended by a signal-like cause (stopped or out of memory), as a
/// Linux container killed by SIGKILL would report.
pub const KILLED_CODE: i32 = 137;
/// Exit code of a guest that trapped, as a process that aborted (128 + SIGABRT).
pub const TRAP_CODE: i32 = 134;
/// Exit code when the host could not start the workload at all (bad mount, no port...).
pub const CANNOT_RUN_CODE: i32 = 128;

/// A compiled module or component, ready to run any number of times. Cheap to clone.
#[derive(Clone)]
pub struct Workload {
    inner: Arc<load::Compiled>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Runs to its end (`_start` or `wasi:cli/run`).
    Command,
    /// Serves HTTP (`wasi:http/incoming-handler`), one instance per request.
    HttpService,
}

impl Workload {
    pub fn kind(&self) -> WorkloadKind {
        self.inner.kind()
    }

    /// Runs one container: a command to its end; an HTTP service until `stop`.
    pub async fn run(&self, rt: &Runtime, launch: Launch, stop: CancellationToken) -> Exit {
        let exit = match &*self.inner {
            load::Compiled::Core(pre) => command::run_core(rt, pre, &launch, stop).await,
            load::Compiled::Command(pre) => command::run_component(rt, pre, &launch, stop).await,
            load::Compiled::Http(pre) => http::serve(rt, pre, launch.clone(), stop).await,
        };
        if exit.code == CANNOT_RUN_CODE
            && let Some(message) = &exit.message
        {
            // Why it never ran belongs in `kubectl logs` too (traps are logged where caught).
            launch.stderr.write(
                crate::logs::Stream::Stderr,
                format!("{message}\n").as_bytes(),
            );
        }
        launch.stdout.flush();
        launch.stderr.flush();
        exit
    }
}

/// Everything one run of a container gets from its spec.
#[derive(Clone)]
pub struct Launch {
    /// argv; argv[0] is the container name.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub stdout: LogWriter,
    pub stderr: LogWriter,
    /// Bytes of linear memory the guest may hold (all its memories together).
    pub memory_limit: Option<u64>,
    /// CPU share in millicores; 1000 is one core.
    pub cpu_limit_millis: Option<u64>,
    /// HTTP services: podIP:containerPort.
    pub listen: Option<SocketAddr>,
    /// May the guest open outbound connections and send HTTP requests.
    pub outbound: bool,
    /// Where a request to a cluster Service goes (`http://name.ns.svc…/` or a ClusterIP):
    /// the node's service table, seen from the pod's namespace. Such requests are always
    /// allowed, as pod-to-Service traffic is in Kubernetes; `outbound` governs the rest.
    pub services: Option<ServiceResolver>,
}

/// Picks a Ready endpoint for a Service host (a cluster name or ClusterIP) and port; `None`
/// when the host is not a Service (or has no ready endpoint).
pub type ServiceResolver = std::sync::Arc<dyn Fn(&str, u16) -> Option<ServiceRoute> + Send + Sync>;

/// How a request to a cluster host is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRoute {
    /// Send it to this endpoint.
    Endpoint(SocketAddr),
    /// The host is a Service that has no ready endpoint.
    NoEndpoint,
}

/// A host directory the guest sees as a preopened directory at `guest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
    pub reason: ExitReason,
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Nonzero exit code, a trap, or a failure to start.
    Error,
    /// The guest reached its memory limit and failed (code 137).
    OOMKilled,
    /// Stopped through the `stop` token (code 137).
    Killed,
}

impl Exit {
    pub(crate) fn code(code: i32) -> Exit {
        if code == 0 {
            Exit {
                code,
                reason: ExitReason::Completed,
                message: None,
            }
        } else {
            Exit {
                code,
                reason: ExitReason::Error,
                message: Some(format!("exited with code {code}")),
            }
        }
    }

    pub(crate) fn cannot_run(message: String) -> Exit {
        Exit {
            code: CANNOT_RUN_CODE,
            reason: ExitReason::Error,
            message: Some(message),
        }
    }

    pub(crate) fn killed() -> Exit {
        Exit {
            code: KILLED_CODE,
            reason: ExitReason::Killed,
            message: Some("stopped".to_owned()),
        }
    }

    pub(crate) fn oom_killed(limit: u64) -> Exit {
        Exit {
            code: KILLED_CODE,
            reason: ExitReason::OOMKilled,
            message: Some(format!(
                "the module reached its memory limit of {limit} bytes; \
                 raise resources.limits.memory"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
