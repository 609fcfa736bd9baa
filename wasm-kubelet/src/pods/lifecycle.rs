//! One pod's life on this node, as an explicit state machine:
//!
//! ```text
//!   Fetch ──► Prepare ──► Init(0) ──► … ──► Init(n) ──► Run ──► Finished
//!     │ modules,  │ IP, volumes,   one init container      app containers    Succeeded /
//!     │ images    │ env, sandbox   at a time, in order     side by side      Failed
//!     └───────────┴──── deleted, gone, or agent stopping (any step) ───► Ending
//! ```
//!
//! Wasm and OCI containers go through the same steps: Fetch compiles modules or has the CRI
//! runtime pull images, Prepare also starts the pod's CRI sandbox when the pod has an OCI
//! container (sharing the pod's volumes: an emptyDir is one host directory, preopened for
//! wasm and bind-mounted for OCI), and each run is an [`Exit`](crate::wasm::Exit) either way.
//!
//! Ending is decided outside the steps, by [`watch_ending`]: a deletion (graceful, within
//! the pod's grace period, then the API object is removed), the object gone from the API
//! (stop now), or the agent stopping (stop now, keep everything for the next start).
//! Failures inside a step (a module that cannot be fetched, a missing ConfigMap) are retried
//! with back-off and shown in the container's waiting reason, as kubelet does.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::PodSandboxConfig;
use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, ContainerStatus, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use sextant_api::runtime::{Runtime as Kind, WASM_RUNTIME_CLASS};
use sextant_events::warning;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::container::{Oci, Outcome, Program, Restart, Runner, Spec, Stop};
use super::status::{Board, BoardState, PodPhase, Slot, now, terminated, waiting};
use super::{Shared, env, service_env, static_pods, volumes};
use crate::cri;
use crate::modules::PullPolicy;
use crate::wasm::{Workload, WorkloadKind};

/// Pods with this annotation set to `allow` may open outbound connections; all others are
/// sealed off from the network (they still serve their HTTP ports).
pub const OUTBOUND_ANNOTATION: &str = "sextant.dev/outbound";
/// Where an HTTP component listens when its container names no port.
const DEFAULT_HTTP_PORT: u16 = 8080;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Fetch,
    Prepare,
    Init(usize),
    Run,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Deleted through the API: stop within the grace period, then remove the object.
    Delete(Duration),
    /// The object is gone from the API: stop now and clean up.
    Gone,
    /// The agent is stopping: stop now, keep the pod's directory for the next start.
    Shutdown,
}

/// A container's code, ready to run.
#[derive(Clone)]
enum Fetched {
    Wasm(Workload),
    /// An image the CRI runtime holds, by its id.
    Oci(String),
}

/// Runs one pod until it ends. `pod` carries the API's latest copy of the object.
pub(crate) async fn run(
    shared: Arc<Shared>,
    pod: watch::Receiver<Arc<Pod>>,
    gone: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut p = PodRun::new(shared, pod.borrow().clone());
    let first = p.adopt();
    let ending = watch_ending(pod, gone, shutdown);
    tokio::pin!(ending);
    let stop = p.stop.clone();
    let end = {
        let machine = p.machine(first);
        tokio::pin!(machine);
        let mut finished = false;
        let end = loop {
            tokio::select! {
                () = &mut machine, if !finished => finished = true,
                end = &mut ending => break end,
            }
        };
        let grace = match end {
            Ending::Delete(grace) => grace,
            Ending::Gone | Ending::Shutdown => Duration::ZERO,
        };
        stop.stop(grace);
        if !finished {
            // Containers end within the grace period (the runner enforces it); the margin
            // only covers the bookkeeping after.
            let _ = tokio::time::timeout(grace + Duration::from_secs(2), &mut machine).await;
        }
        end
    };
    match end {
        Ending::Delete(_) => {
            p.delete_object().await;
            p.clean_up().await;
        }
        Ending::Gone => p.clean_up().await,
        Ending::Shutdown => {}
    }
}

/// Resolves when the pod must end, and says how.
async fn watch_ending(
    mut pod: watch::Receiver<Arc<Pod>>,
    gone: CancellationToken,
    shutdown: CancellationToken,
) -> Ending {
    loop {
        if let Some(grace) = deletion_grace(&pod.borrow_and_update()) {
            return Ending::Delete(grace);
        }
        // `biased`, shutdown first: the agent's pod loop drops every pod's sender as it stops,
        // and a stopping agent must keep the pod's directory (its logs and emptyDirs) for
        // the next start, never mistake the stop for the pod being gone.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ending::Shutdown,
            () = gone.cancelled() => return Ending::Gone,
            // The sender goes only with the agent's pod loop, which ends at shutdown.
            changed = pod.changed() => if changed.is_err() {
                return Ending::Shutdown;
            },
        }
    }
}

fn deletion_grace(pod: &Pod) -> Option<Duration> {
    pod.metadata.deletion_timestamp.as_ref()?;
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Some(Duration::from_secs(secs.max(0) as u64))
}

struct PodRun {
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    dir: std::path::PathBuf,
    board: Arc<Board>,
    stop: Arc<Stop>,
    /// Compiled modules or pulled images of the init containers, then the app containers.
    fetched: Vec<Option<Fetched>>,
    /// The pod's CRI sandbox (id and config), once started, when it has OCI containers.
    sandbox: Option<(String, Arc<PodSandboxConfig>)>,
    specs: Vec<Spec>,
    pod_ip: Option<IpAddr>,
    /// Exit codes of containers that ended before the agent restarted and stay ended.
    done_before: Vec<Option<i32>>,
}

impl PodRun {
    fn new(shared: Arc<Shared>, pod: Arc<Pod>) -> PodRun {
        let dir = shared.pod_dir(&pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let status = |c: &Container, old: Option<&Vec<ContainerStatus>>, reason: &str| {
            let prev = old.and_then(|o| o.iter().find(|s| s.name == c.name));
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                restart_count: prev.map_or(0, |p| p.restart_count),
                state: Some(waiting(reason, None)),
                last_state: prev.and_then(|p| p.last_state.clone()),
                started: Some(false),
                ..ContainerStatus::default()
            }
        };
        let old = pod.status.as_ref();
        let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
        let app_reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let state = BoardState {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            phase: PodPhase::Pending,
            pod_ip: None,
            host_ip: shared.config.node_ip.to_string(),
            start_time: Some(old.and_then(|s| s.start_time.clone()).unwrap_or_else(now)),
            initialized: !has_init,
            reason: None,
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| {
                    status(
                        c,
                        old.and_then(|s| s.init_container_statuses.as_ref()),
                        "PodInitializing",
                    )
                })
                .collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| {
                    status(
                        c,
                        old.and_then(|s| s.container_statuses.as_ref()),
                        app_reason,
                    )
                })
                .collect(),
            conditions: old.and_then(|s| s.conditions.clone()).unwrap_or_default(),
            check_uid: !static_pods::is_static(&pod),
        };
        let n = state.init.len() + state.containers.len();
        PodRun {
            board: Board::new(shared.reporter.clone(), state),
            shared,
            pod,
            dir,
            stop: Arc::default(),
            fetched: vec![None; n],
            sandbox: None,
            specs: Vec::new(),
            pod_ip: None,
            done_before: Vec::new(),
        }
    }

    fn containers(&self) -> impl Iterator<Item = (Slot, &Container)> {
        let spec = self.pod.spec.as_ref();
        let init = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| (Slot::Init(i), c));
        let app = spec
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| (Slot::App(i), c));
        init.chain(app)
    }

    fn has_oci(&self) -> bool {
        let class = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref());
        self.containers()
            .any(|(_, c)| Kind::of_container(c, class) == Kind::Oci)
    }

    fn restart(&self) -> Restart {
        Restart::of_pod(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref()),
        )
    }

    /// Where a pod this agent (or its previous run) already ran picks up: a finished pod
    /// stays finished, initialised pods skip their init containers, containers that ended
    /// for good stay ended, and the rest run again as a restart.
    fn adopt(&mut self) -> Step {
        let Some(status) = self.pod.status.as_ref() else {
            return Step::Fetch;
        };
        let restart = self.restart();
        let finished = match status.phase.as_deref() {
            Some("Succeeded") => Some(PodPhase::Succeeded),
            Some("Failed") => Some(PodPhase::Failed),
            _ => None,
        };
        if let Some(phase) = finished {
            let old = status.container_statuses.clone().unwrap_or_default();
            self.board.update(|s| {
                s.phase = phase;
                s.pod_ip = status.pod_ip.clone();
                s.initialized = true;
                for c in &mut s.containers {
                    if let Some(o) = old.iter().find(|o| o.name == c.name) {
                        c.state = o.state.clone();
                        c.image_id = o.image_id.clone();
                    }
                }
            });
            return Step::Finished;
        }
        let initialized = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Initialized" && c.status == "True");
        let old = status.container_statuses.clone().unwrap_or_default();
        self.done_before = self
            .board
            .read(|s| {
                s.containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            })
            .iter()
            .map(|name| {
                let o = old.iter().find(|o| &o.name == name)?;
                let t = o.state.as_ref()?.terminated.as_ref()?;
                (!restart.again(t.exit_code)).then_some(t.exit_code)
            })
            .collect();
        let lost = ContainerStateTerminated {
            exit_code: 137,
            reason: Some("ContainerStatusUnknown".into()),
            message: Some("The node agent restarted while the container ran".into()),
            finished_at: Some(now()),
            ..ContainerStateTerminated::default()
        };
        let done = self.done_before.clone();
        self.board.update(|s| {
            s.initialized |= initialized;
            for (i, c) in s.containers.iter_mut().enumerate() {
                let Some(o) = old.iter().find(|o| o.name == c.name) else {
                    continue;
                };
                if done.get(i).copied().flatten().is_some() {
                    c.state = o.state.clone();
                } else if o.state.as_ref().is_some_and(|st| st.running.is_some()) {
                    c.last_state = Some(terminated(lost.clone()));
                    c.restart_count = o.restart_count + 1;
                }
            }
        });
        Step::Fetch
    }

    async fn machine(&mut self, first: Step) {
        let mut step = first;
        while step != Step::Finished && !self.stop.token.is_cancelled() {
            step = match step {
                Step::Fetch => self.fetch().await,
                Step::Prepare => self.prepare().await,
                Step::Init(i) => self.init(i).await,
                Step::Run => self.run_containers().await,
                Step::Finished => Step::Finished,
            };
        }
    }

    /// Fetches and compiles every container's module.
    async fn fetch(&mut self) -> Step {
        let class_wasm = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref())
            == Some(WASM_RUNTIME_CLASS);
        let containers: Vec<(usize, Slot, Container)> = self
            .containers()
            .enumerate()
            .map(|(i, (slot, c))| (i, slot, c.clone()))
            .collect();
        for (i, slot, c) in containers {
            if self.fetched[i].is_some() {
                continue;
            }
            let image = c.image.clone().unwrap_or_default();
            let oci = Kind::of_container(&c, class_wasm.then_some(WASM_RUNTIME_CLASS)) == Kind::Oci;
            if oci && self.shared.cri.is_none() {
                let message = format!(
                    "container {} needs an OCI runtime (image {image:?}), and this node runs wasm only \
                     (start its agent with --cri-socket, or let the scheduler pick a node labelled sextant.dev/oci)",
                    c.name
                );
                self.board.update(|s| {
                    s.container(slot).state =
                        Some(waiting("CreateContainerError", Some(message.clone())));
                });
                self.board
                    .event(warning("Failed", format!("Error: {message}")));
                return Step::Finished;
            }
            let mut backoff = Backoff::new(self.shared.config.pull_backoff);
            let fetched = loop {
                let attempt = if oci {
                    self.pull_one(&c).await
                } else {
                    self.fetch_one(&c, class_wasm).await
                };
                match attempt {
                    Ok((digest, f)) => {
                        let id = self.board.read(|s| format!("wasm://{}/{}", s.uid, c.name));
                        self.board.update(|s| {
                            let st = s.container(slot);
                            st.image_id = digest.clone();
                            // An OCI container's id comes from the runtime when it starts.
                            if !oci {
                                st.container_id = Some(id);
                            }
                        });
                        if oci {
                            self.board.event(sextant_events::normal(
                                "Pulled",
                                format!("Container image {image:?} is present on the node"),
                            ));
                        }
                        break f;
                    }
                    Err((reason, message)) => {
                        self.board.update(|s| {
                            s.container(slot).state = Some(waiting(reason, Some(message.clone())));
                        });
                        self.board.event(warning(
                            "Failed",
                            format!("Failed to pull image {image:?}: {message}"),
                        ));
                        let wait = backoff.failed();
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.stop.token.cancelled() => return Step::Finished,
                        }
                        self.board.update(|s| {
                            s.container(slot).state = Some(waiting(
                                "ImagePullBackOff",
                                Some(format!("Back-off pulling image {image:?}: {message}")),
                            ));
                        });
                    }
                }
            };
            self.fetched[i] = Some(fetched);
        }
        Step::Prepare
    }

    /// Has the CRI runtime pull an OCI container's image (as its pull policy says).
    async fn pull_one(&self, c: &Container) -> Result<(String, Fetched), (&'static str, String)> {
        let cri = self.shared.cri.as_ref().expect("checked by fetch");
        let image = c.image.as_deref().unwrap_or_default();
        let policy = PullPolicy::from_spec(c.image_pull_policy.as_deref(), image);
        let auth = self.shared.registry_auth(&self.pod).await;
        let sandbox = cri::sandbox_config(&self.pod, &self.dir);
        let id = cri
            .ensure_image(image, policy, &auth, &sandbox)
            .await
            .map_err(|e| (e.reason(), e.to_string()))?;
        Ok((id.clone(), Fetched::Oci(id)))
    }

    async fn fetch_one(
        &self,
        c: &Container,
        class_wasm: bool,
    ) -> Result<(String, Fetched), (&'static str, String)> {
        let image = c.image.as_deref().unwrap_or_default();
        let policy = PullPolicy::from_spec(c.image_pull_policy.as_deref(), image);
        let auth = self.shared.registry_auth(&self.pod).await;
        let fetched = self
            .shared
            .fetcher
            .fetch(image, class_wasm, policy, &auth)
            .await
            .map_err(|e| ("ErrImagePull", e.to_string()))?;
        let workload = self
            .shared
            .runtime
            .load(&fetched.digest, &fetched.path)
            .await
            .map_err(|e| ("CreateContainerError", e.to_string()))?;
        Ok((fetched.digest, Fetched::Wasm(workload)))
    }

    /// Gives the pod its address, volumes and each container's environment.
    async fn prepare(&mut self) -> Step {
        let ip = match self
            .pod_ip
            .or_else(|| self.shared.pod_ip(&self.pod, &self.dir))
        {
            Some(ip) => ip,
            None => {
                let message = format!(
                    "no free address left in this node's pod range {}",
                    self.shared.ipam.range()
                );
                self.board
                    .update(|s| s.reason = Some(("NoPodIP".into(), message.clone())));
                self.board.event(warning("FailedCreatePodSandBox", message));
                return self.retry_later(Step::Prepare).await;
            }
        };
        self.pod_ip = Some(ip);
        self.board.update(|s| {
            s.pod_ip = Some(ip.to_string());
            s.reason = None;
        });
        let volumes = match volumes::prepare(&self.shared.client, &self.pod, &self.dir).await {
            Ok(v) => v,
            Err(e) => {
                self.board
                    .event(warning("FailedMount", format!("MountVolume failed: {e}")));
                return self.retry_later(Step::Prepare).await;
            }
        };
        let has_oci = self
            .fetched
            .iter()
            .any(|f| matches!(f, Some(Fetched::Oci(_))));
        if has_oci && self.sandbox.is_none() {
            match self.start_sandbox().await {
                Ok(s) => self.sandbox = Some(s),
                Err(message) => {
                    self.board.update(|s| {
                        s.reason = Some(("FailedCreatePodSandBox".into(), message.clone()))
                    });
                    self.board.event(warning(
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {message}"),
                    ));
                    return self.retry_later(Step::Prepare).await;
                }
            }
            self.board.update(|s| s.reason = None);
        }
        let (namespace, pod_name) = self.board.read(|s| (s.namespace.clone(), s.name.clone()));
        for ((_, c), f) in self.containers().zip(&self.fetched) {
            let oci = matches!(f, Some(Fetched::Oci(_)));
            self.shared
                .containers
                .add(&namespace, &pod_name, &c.name, oci);
        }
        let kill_grace = Duration::from_secs(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64,
        );
        let runtime_name = self
            .shared
            .oci_ready
            .borrow()
            .clone()
            .unwrap_or_else(|| "cri".to_owned());
        let node = &self.shared.config.node_name;
        let outbound = self
            .pod
            .annotations()
            .get(OUTBOUND_ANNOTATION)
            .map(String::as_str)
            == Some("allow");
        let restart = self.restart();
        let mut specs = Vec::new();
        let containers: Vec<(Slot, Container)> =
            self.containers().map(|(s, c)| (s, c.clone())).collect();
        for (i, (slot, c)) in containers.into_iter().enumerate() {
            let built = async {
                let env = env::resolve(&self.shared.client, &self.pod, &c, &ip.to_string(), node)
                    .await
                    .map_err(|e| e.to_string())?;
                let env = service_env::merge(self.shared.service_env(&self.pod), env);
                let mounts = volumes
                    .mounts_for_env(&c, &env)
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((env, mounts))
            }
            .await;
            let (env, mounts) = match built {
                Ok(b) => b,
                Err(message) => {
                    self.board.update(|s| {
                        s.container(slot).state =
                            Some(waiting("CreateContainerConfigError", Some(message.clone())));
                    });
                    self.board
                        .event(warning("Failed", format!("Error: {message}")));
                    return self.retry_later(Step::Prepare).await;
                }
            };
            let fetched = self.fetched[i].clone().expect("fetched before prepare");
            let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
            let limit = |name: &str| {
                limits
                    .and_then(|l| l.get(name))
                    .and_then(|q| sextant_api::quantity::Milli::parse(&q.0).ok())
                    .map(|m| m.0.max(0) as u128)
            };
            let port = c
                .ports
                .iter()
                .flatten()
                .next()
                .map_or(DEFAULT_HTTP_PORT, |p| p.container_port as u16);
            let listen = matches!(&fetched, Fetched::Wasm(w) if matches!(w.kind(), WorkloadKind::HttpService))
                .then(|| SocketAddr::new(ip, port));
            let program = match fetched {
                Fetched::Wasm(w) => Program::Wasm(w),
                Fetched::Oci(image_ref) => {
                    let (sandbox_id, sandbox) = self.sandbox.clone().expect("started above");
                    let cri = self.shared.cri.clone().expect("checked by fetch");
                    Program::Oci(Box::new(Oci {
                        cri,
                        sandbox_id,
                        sandbox,
                        image_ref,
                        container: c.clone(),
                        runtime_name: runtime_name.clone(),
                        kill_grace,
                    }))
                }
            };
            specs.push(Spec {
                slot,
                name: c.name.clone(),
                args: env::argv(&c, &env),
                env,
                mounts,
                memory_limit: limit("memory").map(|m| (m / 1000) as u64),
                cpu_limit_millis: limit("cpu").map(|m| m as u64),
                listen,
                outbound,
                services: self.shared.service_resolver(&self.pod),
                pod_ip: ip,
                ports: c.ports.clone().unwrap_or_default(),
                liveness: c.liveness_probe.clone(),
                readiness: c.readiness_probe.clone(),
                startup: c.startup_probe.clone(),
                restart: match (slot, restart) {
                    (Slot::Init(_), Restart::Never) => Restart::Never,
                    (Slot::Init(_), _) => Restart::OnFailure,
                    (Slot::App(_), r) => r,
                },
                program,
            });
        }
        self.specs = specs;
        let initialized = self.board.read(|s| s.initialized);
        if initialized || !self.specs.iter().any(|s| matches!(s.slot, Slot::Init(_))) {
            Step::Run
        } else {
            Step::Init(0)
        }
    }

    async fn retry_later(&self, step: Step) -> Step {
        tokio::select! {
            () = tokio::time::sleep(self.shared.config.pull_backoff.0) => step,
            () = self.stop.token.cancelled() => Step::Finished,
        }
    }

    fn runner(&self) -> Runner<'_> {
        Runner {
            runtime: &self.shared.runtime,
            board: &self.board,
            pod_dir: self.dir.clone(),
            crash_backoff: self.shared.config.crash_backoff,
            containers: &self.shared.containers,
        }
    }

    /// The pod's CRI sandbox: the one a previous run of the agent left (still ready), or a
    /// new one.
    async fn start_sandbox(&self) -> Result<(String, Arc<PodSandboxConfig>), String> {
        let cri = self.shared.cri.as_ref().expect("checked by fetch");
        let config = Arc::new(cri::sandbox_config(&self.pod, &self.dir));
        let uid = self.pod.uid().unwrap_or_default();
        if let Ok(Some(id)) = cri.find_sandbox(&uid).await {
            return Ok((id, config));
        }
        let id = cri.run_sandbox(&config).await.map_err(|e| e.to_string())?;
        Ok((id, config))
    }

    async fn init(&mut self, i: usize) -> Step {
        let Some(spec) = self.specs.iter().find(|s| s.slot == Slot::Init(i)) else {
            self.board.update(|s| s.initialized = true);
            return Step::Run;
        };
        match self.runner().run(spec, &self.stop).await {
            Outcome::Exited(0) => Step::Init(i + 1),
            Outcome::Exited(_) => {
                self.board.update(|s| s.phase = PodPhase::Failed);
                Step::Finished
            }
            Outcome::Stopped => Step::Finished,
        }
    }

    async fn run_containers(&mut self) -> Step {
        self.board.update(|s| {
            s.initialized = true;
            s.phase = PodPhase::Running;
        });
        let runner = self.runner();
        let outcomes = futures::future::join_all(
            self.specs
                .iter()
                .filter(|s| matches!(s.slot, Slot::App(_)))
                .map(|spec| {
                    let before = match spec.slot {
                        Slot::App(i) => self.done_before.get(i).copied().flatten(),
                        Slot::Init(_) => None,
                    };
                    let runner = &runner;
                    let stop = &self.stop;
                    async move {
                        match before {
                            Some(code) => Outcome::Exited(code),
                            None => runner.run(spec, stop).await,
                        }
                    }
                }),
        )
        .await;
        if outcomes.contains(&Outcome::Stopped) {
            return Step::Finished;
        }
        let failed = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Exited(c) if *c != 0));
        self.board.update(|s| {
            s.phase = if failed {
                PodPhase::Failed
            } else {
                PodPhase::Succeeded
            };
        });
        Step::Finished
    }

    /// Removes the API object once the containers have stopped (the graceful deletion's
    /// last step), retrying while the API is unreachable.
    async fn delete_object(&self) {
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = self.pod.name_any();
        let mut backoff = Backoff::new((Duration::from_millis(200), Duration::from_secs(10)));
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(10), api.delete(&name, &params));
            match attempt.await {
                Ok(Ok(_)) => return,
                // Gone already, or the name now belongs to a newer pod. Any other conflict
                // (a status write racing the delete) is retried: returning would leave the
                // pod Terminating for ever.
                Ok(Err(kube::Error::Api(s)))
                    if s.code == 404
                        || (s.code == 409 && s.message.contains("Precondition failed")) =>
                {
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(pod = %self.pod.name_any(), error = %e, "cannot delete the pod yet");
                    tokio::time::sleep(backoff.failed()).await;
                }
                Err(_) => {
                    tracing::debug!(pod = %self.pod.name_any(), "deleting the pod timed out; retrying")
                }
            }
        }
    }

    async fn clean_up(&self) {
        let b = &self.board;
        let (ns, name, uid) = b.read(|s| (s.namespace.clone(), s.name.clone(), s.uid.clone()));
        self.shared.reporter.forget(&ns, &name, &uid);
        self.shared.containers.remove_pod(&ns, &name);
        // By the pod's uid, so that a sandbox left by an earlier run of the agent goes too.
        if let Some(cri) = &self.shared.cri
            && self.has_oci()
            && let Err(e) = cri.remove_pod(&uid).await
        {
            tracing::warn!(pod = %name, error = %e, "cannot remove the pod's sandbox; it is removed when the pod's containers are cleaned up next");
        }
        volumes::remove(&self.dir).await;
        if let Some(IpAddr::V4(ip)) = self.pod_ip {
            self.shared.ipam.release(ip);
        }
        if let Err(e) = tokio::fs::remove_dir_all(&self.dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the pod's directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stopping agent drops every pod's sender as well as cancelling `shutdown`: whichever
    /// the pod task sees first, the pod's directory must be kept (it was once removed,
    /// losing the logs an adopted pod's `--previous` needed).
    #[tokio::test]
    async fn an_agent_stop_is_never_taken_for_a_pod_gone() {
        for _ in 0..200 {
            let (tx, rx) = watch::channel(Arc::new(Pod::default()));
            let shutdown = CancellationToken::new();
            shutdown.cancel();
            drop(tx);
            let end = watch_ending(rx, CancellationToken::new(), shutdown).await;
            assert_eq!(end, Ending::Shutdown);
        }
        let (tx, rx) = watch::channel(Arc::new(Pod::default()));
        drop(tx);
        let end = watch_ending(rx, CancellationToken::new(), CancellationToken::new()).await;
        assert_eq!(
            end,
            Ending::Shutdown,
            "the sender goes only with the pod loop"
        );
        let (_tx, rx) = watch::channel(Arc::new(Pod::default()));
        let gone = CancellationToken::new();
        gone.cancel();
        let end = watch_ending(rx, gone, CancellationToken::new()).await;
        assert_eq!(end, Ending::Gone);
    }
}
