//! The Events the scheduler records on pods — `Scheduled` when bound, `FailedScheduling`
//! with the reasons when not — reporting as `default-scheduler`, as kube-scheduler does.
//!
//! Events are best effort, as in client-go's broadcaster: they go through a bounded queue
//! to a few publishers, and when the queue is full an Event is dropped rather than slowing
//! the scheduling loop. The pod's `PodScheduled` condition, written apart, is the record
//! that matters; the Events are for `kubectl describe`. Repeats of one Event (the same
//! pod, reason and message) become one Event with a count (`sextant_events::Recorder`).

use k8s_openapi::api::core::v1::ObjectReference;
use sextant_events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pod::{DEFAULT_SCHEDULER, PodInfo};

/// client-go's `maxQueuedEvents`.
const QUEUE: usize = 1000;
/// Events being written at once: a quarter as many as bindings in flight, so that in a
/// burst Events take a share of the API server without holding back the bindings.
const PUBLISHERS: usize = 64;

#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<(Event, ObjectReference)>,
}

const SCHEDULED: &str = "Scheduled";

impl Events {
    /// Starts the publishers in `tasks`; they stop at `stop`, dropping what is queued.
    pub fn start(
        client: kube::Client,
        identity: &str,
        tasks: &mut JoinSet<()>,
        stop: &CancellationToken,
    ) -> Events {
        let reporter = Reporter {
            controller: DEFAULT_SCHEDULER.to_owned(),
            instance: Some(identity.to_owned()),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tasks.spawn(publish(client, reporter, rx, stop.clone()));
        Events { tx }
    }

    pub fn scheduled(&self, pod: &PodInfo, node: &str) {
        self.send(
            pod,
            Event {
                type_: EventType::Normal,
                reason: SCHEDULED.into(),
                note: Some(format!("Successfully assigned {} to {node}", pod.key())),
                action: "Binding".into(),
                secondary: None,
            },
        );
    }

    pub fn failed_scheduling(&self, pod: &PodInfo, message: &str) {
        self.send(
            pod,
            Event {
                type_: EventType::Warning,
                reason: "FailedScheduling".into(),
                note: Some(message.to_owned()),
                action: "Scheduling".into(),
                secondary: None,
            },
        );
    }

    fn send(&self, pod: &PodInfo, event: Event) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..ObjectReference::default()
        };
        if self.tx.try_send((event, reference)).is_err() {
            tracing::debug!(pod = %pod.key(), "event queue full; dropping an Event");
        }
    }
}

async fn publish(
    client: kube::Client,
    reporter: Reporter,
    mut rx: mpsc::Receiver<(Event, ObjectReference)>,
    stop: CancellationToken,
) {
    let recorder = Recorder::new(client, reporter);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            next = rx.recv(), if running.len() < PUBLISHERS => {
                let Some((event, reference)) = next else { break };
                let recorder = recorder.clone();
                running.spawn(async move {
                    if let Err(e) = recorder.publish(&event, &reference).await {
                        tracing::debug!(error = %e, reason = %event.reason, "cannot record an Event");
                    }
                });
            }
        }
    }
    while running.join_next().await.is_some() {}
}
