//! Pod status: each pod's [`Board`] holds what its containers are doing; every change turns
//! into a `PodStatus` that the node's one [`Reporter`] writes to the API.
//!
//! Writing is decoupled from running on purpose: with the control plane unreachable (an
//! edge node cut off), containers go on starting, exiting and restarting, and only the
//! latest status of each pod waits to be written. The reporter keeps one pending status per
//! pod (newer replaces older), writes them concurrently, and retries failures, so a flood of
//! changes costs one write per pod per round and nothing blocks a pod's state machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, ObjectReference, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use sextant_events::{Event, Recorder};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How many status writes run at once.
const CONCURRENT_WRITES: usize = 32;
/// Events waiting to be recorded; beyond this they are dropped (as client-go's recorder
/// drops them): an Event must never hold up a pod.
const EVENT_QUEUE: usize = 1024;
/// How long a status write may take before it counts as failed and is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a pod is in its life, as its `phase` and conditions show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
        }
    }
}

/// One pod's live status, shared by its state machine and its container runners.
pub struct Board {
    reporter: Arc<Reporter>,
    inner: Mutex<BoardState>,
}

#[derive(Clone)]
pub struct BoardState {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: PodPhase,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<Time>,
    pub initialized: bool,
    /// A reason and message for the whole pod (e.g. why it cannot start).
    pub reason: Option<(String, String)>,
    pub init: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// The conditions last reported, so that a condition's `lastTransitionTime` moves only
    /// when its status does.
    pub conditions: Vec<PodCondition>,
    /// Whether status writes carry the uid as a precondition: not for static pods, whose
    /// API copy (the mirror) has a uid of its own.
    pub check_uid: bool,
}

impl Board {
    pub fn new(reporter: Arc<Reporter>, state: BoardState) -> Arc<Board> {
        Arc::new(Board {
            reporter,
            inner: Mutex::new(state),
        })
    }

    /// Changes the status and hands the result to the reporter.
    pub fn update(&self, f: impl FnOnce(&mut BoardState)) {
        let (key, pending) = {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
            s.update_conditions();
            (
                (s.namespace.clone(), s.name.clone(), s.uid.clone()),
                (s.to_status(), s.check_uid),
            )
        };
        self.reporter.submit(key, pending);
    }

    pub fn read<T>(&self, f: impl FnOnce(&BoardState) -> T) -> T {
        f(&self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records an Event about this pod.
    pub fn event(&self, ev: Event) {
        let reference = self.read(|s| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(s.namespace.clone()),
            name: Some(s.name.clone()),
            uid: Some(s.uid.clone()),
            ..ObjectReference::default()
        });
        self.reporter.event(reference, ev);
    }
}

/// Which list of container statuses a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Init(usize),
    App(usize),
}

impl BoardState {
    pub fn container(&mut self, slot: Slot) -> &mut ContainerStatus {
        match slot {
            Slot::Init(i) => &mut self.init[i],
            Slot::App(i) => &mut self.containers[i],
        }
    }

    pub fn container_ref(&self, slot: Slot) -> &ContainerStatus {
        match slot {
            Slot::Init(i) => &self.init[i],
            Slot::App(i) => &self.containers[i],
        }
    }

    fn update_conditions(&mut self) {
        let finished = matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed);
        let containers_ready = !finished && self.containers.iter().all(|c| c.ready);
        let not_ready = (!containers_ready).then_some(if finished {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        });
        let init_reason = (!self.initialized).then_some("ContainersNotInitialized");
        let wanted = [
            ("PodReadyToStartContainers", self.pod_ip.is_some(), None),
            ("Initialized", self.initialized, init_reason),
            ("Ready", containers_ready, not_ready),
            ("ContainersReady", containers_ready, not_ready),
            ("PodScheduled", true, None),
        ];
        let old = std::mem::take(&mut self.conditions);
        self.conditions = wanted
            .into_iter()
            .map(|(type_, ok, reason)| {
                let status = if ok { "True" } else { "False" };
                let since = old
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == status)
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(now);
                PodCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: reason.map(Into::into),
                    last_transition_time: Some(since),
                    ..PodCondition::default()
                }
            })
            .collect();
    }

    fn to_status(&self) -> PodStatus {
        PodStatus {
            phase: Some(self.phase.as_str().into()),
            conditions: Some(self.conditions.clone()),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: self.pod_ip.clone(),
            pod_ips: self
                .pod_ip
                .as_ref()
                .map(|ip| vec![PodIP { ip: ip.clone() }]),
            start_time: self.start_time.clone(),
            reason: self.reason.as_ref().map(|r| r.0.clone()),
            message: self.reason.as_ref().map(|r| r.1.clone()),
            init_container_statuses: (!self.init.is_empty()).then(|| self.init.clone()),
            container_statuses: Some(self.containers.clone()),
            qos_class: Some("BestEffort".into()),
            ..PodStatus::default()
        }
    }
}

pub fn now() -> Time {
    Time(jiff_now())
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..ContainerState::default()
    }
}

pub fn running(started_at: Time) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(started_at),
        }),
        ..ContainerState::default()
    }
}

pub fn terminated(t: ContainerStateTerminated) -> ContainerState {
    ContainerState {
        terminated: Some(t),
        ..ContainerState::default()
    }
}

type Key = (String, String, String);

/// Writes pods' statuses and Events to the API, one pending status per pod.
pub struct Reporter {
    pending: Mutex<HashMap<Key, (PodStatus, bool)>>,
    wake: Notify,
    events: mpsc::Sender<(ObjectReference, Event)>,
    events_rx: Mutex<Option<mpsc::Receiver<(ObjectReference, Event)>>>,
}

impl Reporter {
    pub fn new() -> Arc<Reporter> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        Arc::new(Reporter {
            pending: Mutex::default(),
            wake: Notify::new(),
            events: tx,
            events_rx: Mutex::new(Some(rx)),
        })
    }

    fn submit(&self, key: Key, status: (PodStatus, bool)) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, status);
        self.wake.notify_one();
    }

    fn event(&self, reference: ObjectReference, ev: Event) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send((reference, ev)) {
            tracing::debug!("the Event queue is full; dropping an Event");
        }
    }

    /// Drops a pod's pending status (the pod is gone from the API).
    pub fn forget(&self, namespace: &str, name: &str, uid: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned(), uid.to_owned()));
    }

    /// The one task that writes statuses and Events, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        client: kube::Client,
        recorder: Recorder,
        shutdown: CancellationToken,
    ) {
        let Some(mut events) = self
            .events_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => self.write_pending(&client).await,
                _ = retry.tick() => self.write_pending(&client).await,
                Some((reference, ev)) = events.recv() => {
                    if let Err(e) = tokio::time::timeout(WRITE_TIMEOUT, recorder.publish(&ev, &reference)).await.unwrap_or(Ok(())) {
                        tracing::debug!(error = %e, "cannot record an Event");
                    }
                }
            }
        }
        // Last statuses (e.g. of pods stopped on shutdown) get one more chance.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.write_pending(&client)).await;
    }

    async fn write_pending(&self, client: &kube::Client) {
        let batch: Vec<(Key, (PodStatus, bool))> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if batch.is_empty() {
            return;
        }
        let failed: Vec<(Key, (PodStatus, bool))> = futures::stream::iter(batch)
            .map(|(key, status)| async move {
                match write(client, &key, &status.0, status.1).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::debug!(pod = %format!("{}/{}", key.0, key.1), error = %e, "cannot write the pod's status; will retry");
                        Some((key, status))
                    }
                }
            })
            .buffer_unordered(CONCURRENT_WRITES)
            .filter_map(futures::future::ready)
            .collect()
            .await;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (key, status) in failed {
            // A newer status submitted meanwhile wins.
            pending.entry(key).or_insert(status);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("timed out")]
    Timeout,
}

async fn write(
    client: &kube::Client,
    (ns, name, uid): &Key,
    status: &PodStatus,
    check_uid: bool,
) -> Result<(), WriteError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // The uid makes the write a precondition: a pod deleted and created again under the
    // same name must not receive its predecessor's status.
    let patch = if check_uid {
        serde_json::json!({"metadata": {"uid": uid}, "status": status})
    } else {
        serde_json::json!({ "status": status })
    };
    match tokio::time::timeout(
        WRITE_TIMEOUT,
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    {
        Err(_) => Err(WriteError::Timeout),
        Ok(Ok(_)) => Ok(()),
        // Gone, or replaced by a pod with another uid: nothing to report any more. A static
        // pod's mirror may simply not exist yet (the API was away): keep it for the retry.
        Ok(Err(kube::Error::Api(s))) if (s.code == 404 && check_uid) || s.code == 409 => Ok(()),
        Ok(Err(e)) => Err(e.into()),
    }
}
