//! One container of a pod, from start to its last exit: each run writes its own log file,
//! probes watch it, and the restart policy with Kubernetes' back-off decides what follows an
//! exit.
//!
//! A run is one future that ends in an [`Exit`], whichever runtime runs it: wasmtime in this
//! process ([`Program::Wasm`]), or the CRI runtime ([`Program::Oci`]: create, start, wait,
//! stop), so restarts, back-off, probes and status are the same code for both.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_cri::v1::PodSandboxConfig;
use k8s_openapi::api::core::v1::{Container, ContainerPort, ContainerStateTerminated, Probe};
use sextant_events::{normal, warning};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Containers;
use super::backoff::Backoff;
use super::probes::{ExecProbe, ProbeKind, Prober};
use super::status::{Board, Slot, now, running, terminated, waiting};
use crate::cri::{self, Cri};
use crate::logs::{self, LogWriter, Stream};
use crate::wasm::{Exit, ExitReason, Launch, Mount, Runtime, ServiceResolver, Workload};

/// How long past the grace period an OCI container's stop may take: the runtime kills it
/// when the grace period ends, and answers shortly after.
const OCI_STOP_MARGIN: Duration = Duration::from_secs(10);

/// When a container restarts after it exits (the pod's `restartPolicy`; init containers
/// restart on failure unless the pod says Never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    pub fn of_pod(policy: Option<&str>) -> Restart {
        match policy {
            Some("Never") => Restart::Never,
            Some("OnFailure") => Restart::OnFailure,
            _ => Restart::Always,
        }
    }

    pub fn again(self, code: i32) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => code != 0,
            Restart::Never => false,
        }
    }
}

/// What runs a container.
pub enum Program {
    /// A module compiled for this process's wasmtime.
    Wasm(Workload),
    /// An image run by the CRI runtime in the pod's sandbox (boxed: it carries the
    /// container's spec).
    Oci(Box<Oci>),
}

pub struct Oci {
    pub cri: Cri,
    pub sandbox_id: String,
    pub sandbox: Arc<PodSandboxConfig>,
    /// The image as the runtime knows it (its id), pulled before the pod starts.
    pub image_ref: String,
    pub container: Container,
    /// The runtime's name, the scheme of container ids (`containerd://…`).
    pub runtime_name: String,
    /// How long a container killed by its liveness probe may take to stop (the pod's
    /// `terminationGracePeriodSeconds`, as kubelet uses).
    pub kill_grace: Duration,
}

/// Everything needed to start one container, resolved once per pod start.
pub struct Spec {
    pub slot: Slot,
    pub name: String,
    pub program: Program,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    pub memory_limit: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub listen: Option<SocketAddr>,
    pub outbound: bool,
    /// Routes the guest's requests to cluster Services.
    pub services: Option<ServiceResolver>,
    pub pod_ip: IpAddr,
    pub ports: Vec<ContainerPort>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
    pub restart: Restart,
}

/// How a pod tells its containers to stop, and how long they may take.
#[derive(Default)]
pub struct Stop {
    pub token: CancellationToken,
    grace_ms: AtomicU64,
}

impl Stop {
    /// Stops the containers, giving each `grace` to end on its own.
    pub fn stop(&self, grace: Duration) {
        self.grace_ms
            .store(grace.as_millis() as u64, Ordering::SeqCst);
        self.token.cancel();
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::SeqCst))
    }
}

/// How a container's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited and its restart policy keeps it down.
    Exited(i32),
    /// The pod stopped it.
    Stopped,
}

pub struct Runner<'a> {
    pub runtime: &'a Runtime,
    pub board: &'a Arc<Board>,
    pub pod_dir: PathBuf,
    pub crash_backoff: (Duration, Duration),
    pub containers: &'a Containers,
}

impl Runner<'_> {
    pub async fn run(&self, spec: &Spec, stop: &Stop) -> Outcome {
        let mut backoff = Backoff::new(self.crash_backoff);
        let pod_label = self
            .board
            .read(|s| format!("{}_{}({})", s.name, s.namespace, s.uid));
        loop {
            let restart_count = self
                .board
                .read(|s| s.container_ref(spec.slot).restart_count);
            let (code, started) = match self.run_once(spec, stop, restart_count).await {
                Some(done) => done,
                None => return Outcome::Stopped,
            };
            if stop.token.is_cancelled() {
                return Outcome::Stopped;
            }
            if !spec.restart.again(code) {
                return Outcome::Exited(code);
            }
            let wait = backoff.after_run(started);
            let message = format!(
                "back-off {}s restarting failed container={} pod={pod_label}",
                wait.as_secs(),
                spec.name
            );
            self.board.update(|s| {
                let c = s.container(spec.slot);
                c.last_state = c.state.take();
                c.state = Some(waiting("CrashLoopBackOff", Some(message)));
            });
            self.board.event(warning(
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_label}",
                    spec.name
                ),
            ));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.token.cancelled() => return Outcome::Stopped,
            }
            self.board
                .update(|s| s.container(spec.slot).restart_count += 1);
        }
    }

    /// One run of the container; its exit code and start, or None when it could not start
    /// because the pod is stopping.
    async fn run_once(
        &self,
        spec: &Spec,
        stop: &Stop,
        restart_count: i32,
    ) -> Option<(i32, Instant)> {
        let path = logs::path(&self.pod_dir, &spec.name, restart_count);
        // An OCI container's runtime writes its log file itself, in the same format.
        let log = match &spec.program {
            Program::Oci(_) => None,
            Program::Wasm(_) => Some(match LogWriter::create(&path) {
                Ok(l) => l,
                Err(e) => {
                    // Without a log the container still runs: its output is lost, not the pod.
                    tracing::warn!(path = %path.display(), error = %e, "cannot create the container log");
                    LogWriter::create(std::path::Path::new("/dev/null")).ok()?
                }
            }),
        };
        let started = Instant::now();
        let started_at = now();
        let gated = spec.startup.is_some();
        // An OCI container is running once the runtime has started it (see `run_oci`).
        if let Program::Wasm(_) = spec.program {
            self.mark_running(spec, None);
        }

        let run_token = stop.token.child_token();
        // The OCI container's id once it runs, for exec probes.
        let oci_id: Arc<OnceLock<String>> = Arc::default();
        let mut probes = JoinSet::new();
        let probe_stop = CancellationToken::new();
        // Senders of the probes this container lacks, held for the run so that their
        // receivers pend instead of erroring in the select below.
        let mut absent = Vec::new();
        let mut startup = self.probe(
            &mut probes,
            &mut absent,
            &probe_stop,
            spec,
            &oci_id,
            ProbeKind::Startup,
            &spec.startup,
        );
        let mut liveness = self.probe(
            &mut probes,
            &mut absent,
            &probe_stop,
            spec,
            &oci_id,
            ProbeKind::Liveness,
            &spec.liveness,
        );
        let mut readiness = self.probe(
            &mut probes,
            &mut absent,
            &probe_stop,
            spec,
            &oci_id,
            ProbeKind::Readiness,
            &spec.readiness,
        );
        let run: Pin<Box<dyn Future<Output = Exit> + Send + '_>> = match (&spec.program, &log) {
            (Program::Wasm(workload), Some(log)) => {
                let launch = Launch {
                    args: spec.args.clone(),
                    env: spec.env.clone(),
                    mounts: spec.mounts.clone(),
                    stdout: log.clone(),
                    stderr: log.clone(),
                    memory_limit: spec.memory_limit,
                    cpu_limit_millis: spec.cpu_limit_millis,
                    listen: spec.listen,
                    outbound: spec.outbound,
                    services: spec.services.clone(),
                };
                Box::pin(workload.run(self.runtime, launch, run_token.clone()))
            }
            (Program::Oci(oci), _) => {
                Box::pin(self.run_oci(spec, oci, &path, restart_count, &oci_id, stop, &run_token))
            }
            (Program::Wasm(_), None) => unreachable!("wasm containers always get a log writer"),
        };
        let margin = match spec.program {
            Program::Oci(_) => OCI_STOP_MARGIN,
            Program::Wasm(_) => Duration::ZERO,
        };
        let mut run = run;
        let mut is_started = !gated;
        let mut killed: Option<String> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let exit = loop {
            tokio::select! {
                exit = &mut run => break Some(exit),
                () = sleep_until(deadline), if deadline.is_some() => break None,
                () = stop.token.cancelled(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + stop.grace() + margin);
                    self.board.event(normal("Killing", format!("Stopping container {}", spec.name)));
                }
                Ok(()) = startup.changed() => match *startup.borrow_and_update() {
                    Some(true) if !is_started => {
                        is_started = true;
                        let ready = spec.readiness.is_none();
                        self.board.update(|s| {
                            let c = s.container(spec.slot);
                            c.started = Some(true);
                            c.ready = ready;
                        });
                    }
                    Some(false) if killed.is_none() => {
                        killed = Some(self.unhealthy(spec, "Startup", &run_token));
                    }
                    _ => {}
                },
                Ok(()) = liveness.changed() => {
                    if *liveness.borrow_and_update() == Some(false) && is_started && killed.is_none() {
                        killed = Some(self.unhealthy(spec, "Liveness", &run_token));
                    }
                }
                Ok(()) = readiness.changed() => {
                    let ready = *readiness.borrow_and_update() == Some(true) && is_started;
                    self.board.update(|s| s.container(spec.slot).ready = ready);
                }
            }
        };
        drop(run);
        probe_stop.cancel();
        while probes.join_next().await.is_some() {}
        if let Some(log) = &log {
            log.flush();
        }
        let (code, reason, message) = match exit {
            None => {
                if let Some(log) = &log {
                    log.write(Stream::Stderr, b"killed: the grace period ran out\n");
                }
                (137, "Error".to_owned(), None)
            }
            Some(exit) => match exit.reason {
                ExitReason::Completed => (exit.code, "Completed".to_owned(), exit.message),
                ExitReason::Error => (exit.code, "Error".to_owned(), exit.message),
                ExitReason::OOMKilled => (137, "OOMKilled".to_owned(), exit.message),
                ExitReason::Killed => (exit.code, "Error".to_owned(), killed.or(exit.message)),
            },
        };
        if let Some(log) = &log {
            log.flush();
        }
        self.board.update(|s| {
            let c = s.container(spec.slot);
            c.ready = false;
            c.started = Some(false);
            c.state = Some(terminated(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason),
                message,
                started_at: Some(started_at),
                finished_at: Some(now()),
                container_id: c.container_id.clone(),
                ..ContainerStateTerminated::default()
            }));
        });
        Some((code, started))
    }

    /// Shows the container running (with its runtime id, for OCI) since now.
    fn mark_running(&self, spec: &Spec, container_id: Option<String>) {
        let gated = spec.startup.is_some();
        self.board.update(|s| {
            let c = s.container(spec.slot);
            c.state = Some(running(now()));
            c.started = Some(!gated);
            c.ready = !gated && spec.readiness.is_none() && matches!(spec.slot, Slot::App(_));
            if container_id.is_some() {
                c.container_id = container_id;
            }
        });
        self.board.event(normal(
            "Started",
            format!("Started container {}", spec.name),
        ));
    }

    /// One run of an OCI container through the CRI runtime. Its id goes into the status
    /// (`containerd://…`), the exec table and `oci_id` while it runs.
    #[expect(
        clippy::too_many_arguments,
        reason = "one run's pieces, all borrowed from run_once"
    )]
    async fn run_oci(
        &self,
        spec: &Spec,
        oci: &Oci,
        log: &std::path::Path,
        restart_count: i32,
        oci_id: &Arc<OnceLock<String>>,
        stop: &Stop,
        run_token: &CancellationToken,
    ) -> Exit {
        let log_path = log
            .strip_prefix(&self.pod_dir)
            .unwrap_or(log)
            .to_string_lossy()
            .into_owned();
        let config = cri::container_config(
            &oci.container,
            &spec.env,
            &spec.mounts,
            &oci.image_ref,
            restart_count.max(0) as u32,
            &log_path,
        );
        let (namespace, pod) = self.board.read(|s| (s.namespace.clone(), s.name.clone()));
        let started = |id: &str| {
            let _ = oci_id.set(id.to_owned());
            self.containers
                .set_running(&namespace, &pod, &spec.name, Some(id));
            self.mark_running(spec, Some(format!("{}://{id}", oci.runtime_name)));
        };
        // Deleting the pod stops it within the deletion's grace period; a liveness failure
        // within the pod's own.
        let grace = || {
            if stop.token.is_cancelled() {
                stop.grace()
            } else {
                oci.kill_grace
            }
        };
        let exit = oci
            .cri
            .run(
                &oci.sandbox_id,
                &oci.sandbox,
                config,
                started,
                run_token.clone(),
                grace,
            )
            .await;
        self.containers
            .set_running(&namespace, &pod, &spec.name, None);
        exit
    }

    /// A probe's task, or a channel that never gives a verdict when the container has none.
    #[expect(
        clippy::too_many_arguments,
        reason = "one probe's pieces, all borrowed from run_once"
    )]
    fn probe(
        &self,
        probes: &mut JoinSet<()>,
        absent: &mut Vec<watch::Sender<Option<bool>>>,
        stop: &CancellationToken,
        spec: &Spec,
        oci_id: &Arc<OnceLock<String>>,
        kind: ProbeKind,
        probe: &Option<Probe>,
    ) -> watch::Receiver<Option<bool>> {
        let (tx, rx) = watch::channel(None);
        if let Some(p) = probe {
            let mut prober = Prober::new(kind, p.clone(), spec.pod_ip, spec.ports.clone());
            if let Program::Oci(oci) = &spec.program {
                let cri = oci.cri.clone();
                let id = oci_id.clone();
                let exec: ExecProbe = Arc::new(move |command, timeout| {
                    let cri = cri.clone();
                    let id = id.get().cloned();
                    Box::pin(async move {
                        let Some(id) = id else {
                            return Err("the container has not started yet".to_owned());
                        };
                        let out = cri
                            .exec_sync(&id, command, timeout)
                            .await
                            .map_err(|e| e.to_string())?;
                        let mut output = out.stdout;
                        output.extend_from_slice(&out.stderr);
                        Ok((out.exit_code, String::from_utf8_lossy(&output).into_owned()))
                    })
                });
                prober = prober.with_exec(exec);
            }
            probes.spawn(prober.run(tx, stop.clone()));
        } else {
            absent.push(tx);
        }
        rx
    }

    fn unhealthy(&self, spec: &Spec, probe: &str, run: &CancellationToken) -> String {
        let message = format!(
            "Container {} failed {} probe, will be restarted",
            spec.name,
            probe.to_lowercase()
        );
        self.board
            .event(warning("Unhealthy", format!("{probe} probe failed")));
        self.board.event(normal("Killing", message.clone()));
        run.cancel();
        message
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
