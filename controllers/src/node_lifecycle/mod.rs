//! The node lifecycle controller: notices nodes that stop heartbeating, marks them and
//! their pods, and moves the work off them (Kubernetes' `node-lifecycle-controller`, its
//! taint-eviction controller and `PodGC`).
//!
//! # Protocol, per node (`reconcile`)
//! 1. The node's probe time is the last local moment its Lease's `renewTime` or its Ready
//!    `lastHeartbeatTime` was seen to move (`health.rs`). Past probe + grace period
//!    (`--node-monitor-grace-period`), its Ready and pressure conditions become `Unknown`
//!    ("Kubelet stopped posting node status.") and an Event `NodeNotReady` is recorded.
//!    Before that, the node is requeued for the exact moment the grace period ends.
//! 2. Its taints follow its conditions (`taints.rs`): `unreachable` or `not-ready`, each
//!    `NoSchedule` (the scheduler looks elsewhere) and `NoExecute` (pods must leave).
//!    They go once the kubelet reports Ready again.
//! 3. While the node is not Ready, its pods' Ready condition is set `False` (Event
//!    `NodeNotReady` on each), so that Services stop sending them traffic.
//! 4. A pod that does not tolerate a `NoExecute` taint — for `not-ready` and `unreachable`,
//!    that tolerates it for less than `--pod-eviction-timeout` when it says nothing — is
//!    deleted once its toleration runs out (condition `DisruptionTarget`, Event
//!    `TaintManagerEviction`): its ReplicaSet then replaces it on another node.
//! 5. An evicted pod stays Terminating while no kubelet confirms its end. On an unreachable
//!    node, it is force-deleted once its grace period is over.
//!
//! `podgc.rs` force-deletes pods bound to nodes that no longer exist.
//!
//! # Caveats
//! - Step 5 goes further than Kubernetes, which force-deletes such pods only once an
//!   operator taints the node `node.kubernetes.io/out-of-service` (honoured here too):
//!   Sextant has no operator on call, and a pod stuck Terminating holds its name (a
//!   StatefulSet-like owner could not replace it). The price: if the node was only cut off,
//!   not dead, its containers may still run until its kubelet returns and stops them.
//! - Heartbeats are judged by when they are *seen* to change, so a controller that has just
//!   become leader gives every node a full grace period before judging it.

mod health;
mod podgc;
mod taints;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use self::health::{Heartbeats, ready_status};
use self::taints::NO_EXECUTE;
use crate::context::Context;
use crate::endpoints::filled;
use crate::error::{Error, retry_soon};
use crate::pods;

/// Where kubelets keep their heartbeat Leases, one per node, named after it.
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The taint an operator sets to say a node is down for good (Kubernetes' non-graceful
/// node shutdown): its terminating pods may be force-deleted.
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
/// Wake-ups are scheduled this much after a deadline, so that the deadline has surely
/// passed when the reconcile runs.
const SLACK: Duration = Duration::from_millis(20);

pub(crate) struct State {
    client: kube::Client,
    nodes: Store<Node>,
    pods: Store<Pod>,
    heartbeats: Heartbeats,
    /// When each `NoExecute` taint without a `timeAdded` (set by hand) was first seen, by
    /// node and key: tolerations count from then.
    taint_seen: Mutex<HashMap<(String, String), Timestamp>>,
    /// Reports as `node-controller`, as Kubernetes' node lifecycle controller does.
    recorder: Recorder,
    /// Reports evictions as `taint-eviction-controller`, Kubernetes' name for that part.
    eviction_recorder: Recorder,
    grace: Duration,
    eviction_timeout: Duration,
    resync: Duration,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (pods, pod_writer) = reflector::store();
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let state = Arc::new(State {
        client: client.clone(),
        nodes: controller.store(),
        pods,
        heartbeats: Heartbeats::default(),
        taint_seen: Mutex::new(HashMap::new()),
        recorder: ctx.recorder("node-controller"),
        eviction_recorder: ctx.recorder("taint-eviction-controller"),
        grace: ctx.config.node_grace_period,
        eviction_timeout: ctx.config.pod_eviction_timeout,
        resync: ctx.config.resync,
    });
    let nodes = controller
        .reconcile_on(pod_triggers(
            Api::all(client.clone()),
            pod_writer,
            state.nodes.clone(),
        ))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, retry_soon, state.clone())
        .for_each(|_| future::ready(()));
    let leases = observe_leases(Api::namespaced(client, LEASE_NAMESPACE), state.clone())
        .take_until(shutdown.clone().cancelled_owned())
        .for_each(|()| future::ready(()));
    tokio::join!(nodes, leases, podgc::run(state, shutdown));
}

/// Fills the pod cache, and asks for the node of each changed pod — only when that node is
/// in trouble (not Ready, or under a `NoExecute` taint): on a healthy node there is nothing
/// to do for a pod, and thousands of pod updates must not each wake a node.
fn pod_triggers(
    pods: Api<Pod>,
    writer: Writer<Pod>,
    nodes: Store<Node>,
) -> impl Stream<Item = ObjectRef<Node>> + Send + 'static {
    watcher(pods, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .filter_map(move |pod| {
            let node = match pod {
                Ok(pod) => pod
                    .spec
                    .and_then(|s| s.node_name)
                    .map(|n| ObjectRef::<Node>::new(&n)),
                Err(error) => {
                    tracing::warn!(%error, "pod watch failed; it restarts after a backoff");
                    None
                }
            };
            future::ready(node.filter(|n| nodes.get(n).is_some_and(|n| in_trouble(&n))))
        })
}

/// Records each Lease renewal as a heartbeat. It wakes no reconcile: a healthy node is
/// already due for a check when its grace period ends, and finds the renewal then.
fn observe_leases(
    leases: Api<Lease>,
    state: Arc<State>,
) -> impl Stream<Item = ()> + Send + 'static {
    watcher(leases, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .map(move |lease| match lease {
            Ok(lease) => {
                let renewed = lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
                let node = lease.metadata.name.unwrap_or_default();
                state.heartbeats.lease(&node, renewed, Timestamp::now());
            }
            Err(error) => tracing::warn!(%error, "lease watch failed; it restarts after a backoff"),
        })
}

/// Not Ready, or carrying a `NoExecute` taint: its pods may need marking or evicting.
fn in_trouble(node: &Node) -> bool {
    ready_status(node) != "True" || no_execute(node).next().is_some()
}

fn no_execute(node: &Node) -> impl Iterator<Item = &Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == NO_EXECUTE)
}

/// Kubelet silent (Ready Unknown), or declared out of service by an operator: nobody will
/// confirm its pods' end.
fn is_lost(node: &Node) -> bool {
    ready_status(node) == "Unknown"
        || (ready_status(node) != "True" && no_execute(node).any(|t| t.key == OUT_OF_SERVICE))
}

async fn reconcile(node: Arc<Node>, state: Arc<State>) -> Result<Action, Error> {
    let now = Timestamp::now();
    let name = node.name_any();
    let api: Api<Node> = Api::all(state.client.clone());
    let deadline = state.heartbeats.probe(&node, now) + state.grace;
    let mut node = (*node).clone();

    if now >= deadline
        && let Some(conditions) = health::silenced(&node, now)
    {
        let was_ready = ready_status(&node) == "True";
        node.status.get_or_insert_default().conditions = Some(conditions);
        node = api
            .replace_status(&name, &PostParams::default(), &node)
            .await?;
        tracing::info!(node = %name, "node stopped posting status; its conditions are now Unknown");
        if was_ready {
            let note = format!("Node {name} status is now: NodeNotReady");
            publish(
                &state.recorder,
                &node,
                EventType::Normal,
                "NodeNotReady",
                note,
            )
            .await;
        }
    }
    if let Some(taints) = taints::reconciled(&node, now) {
        node.spec.get_or_insert_default().taints = Some(taints);
        node = api.replace(&name, &PostParams::default(), &node).await?;
    }

    let mut next = (now < deadline).then_some(deadline);
    if in_trouble(&node) {
        if !filled(&state.pods) {
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
        let due = handle_pods(&state, &node, now).await?;
        next = [next, due].into_iter().flatten().min();
    }
    forget_taints_gone(&state, &node);
    Ok(match next {
        Some(at) => Action::requeue(until(at, now) + SLACK),
        None => Action::requeue(state.resync),
    })
}

fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Steps 3 to 5 for every pod on `node`; returns when the next of them falls due. Every pod
/// is tried even when one fails (the first error is returned, for a retry).
async fn handle_pods(
    state: &State,
    node: &Node,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let name = node.name_any();
    let here: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
        .collect();
    let taints: Vec<Taint> = no_execute(node).cloned().collect();
    let mut next: Option<Timestamp> = None;
    let mut first_error = None;
    for pod in here {
        match handle_pod(state, node, &taints, &pod, now).await {
            Ok(due) => next = [next, due].into_iter().flatten().min(),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(next),
    }
}

async fn handle_pod(
    state: &State,
    node: &Node,
    taints: &[Taint],
    pod: &Pod,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    if let Some(deleting) = &pod.metadata.deletion_timestamp {
        if !is_lost(node) {
            return Ok(None);
        }
        if deleting.0 > now {
            return Ok(Some(deleting.0));
        }
        tracing::info!(pod = %pod.name_any(), node = %node.name_any(), "force-deleting a pod its lost node cannot finish");
        force_delete(state, pod).await?;
        return Ok(None);
    }
    let mut pod = pod.clone();
    if ready_status(node) != "True" && pods::is_ready(&pod) {
        pod = set_condition(state, &pod, not_ready(now)).await?;
        publish(
            &state.recorder,
            &pod,
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready".into(),
        )
        .await;
    }
    let first_seen = |t: &Taint| {
        let key = (node.name_any(), t.key.clone());
        *state
            .taint_seen
            .lock()
            .expect("taint lock")
            .entry(key)
            .or_insert(now)
    };
    match taints::eviction_time(&pod, taints, state.eviction_timeout, first_seen) {
        Some(at) if at <= now => {
            evict(state, &pod, now).await?;
            Ok(None)
        }
        due => Ok(due),
    }
}

/// Drops the first-seen times of taints the node no longer has.
fn forget_taints_gone(state: &State, node: &Node) {
    let name = node.name_any();
    state
        .taint_seen
        .lock()
        .expect("taint lock")
        .retain(|(n, key), _| *n != name || no_execute(node).any(|t| t.key == *key));
}

fn not_ready(now: Timestamp) -> PodCondition {
    PodCondition {
        type_: "Ready".into(),
        status: "False".into(),
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    }
}

/// Writes `condition` into the pod's status, replacing the one of the same type. The
/// pod's resourceVersion guards the write: a kubelet that just wrote wins, and we retry.
async fn set_condition(state: &State, pod: &Pod, condition: PodCondition) -> Result<Pod, Error> {
    let mut pod = pod.clone();
    let conditions = pod
        .status
        .get_or_insert_default()
        .conditions
        .get_or_insert_default();
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &pod.namespace().unwrap_or_default());
    Ok(api
        .replace_status(&pod.name_any(), &PostParams::default(), &pod)
        .await?)
}

/// Deletes the pod gracefully, as `kubectl delete` would, saying why in its status first.
async fn evict(state: &State, pod: &Pod, now: Timestamp) -> Result<(), Error> {
    let disruption = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("DeletionByTaintManager".into()),
        message: Some("Taint manager: deleting due to NoExecute taint".into()),
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    };
    let pod = set_condition(state, pod, disruption).await?;
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    match api.delete(&pod.name_any(), &same_pod(&pod)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let note = format!("Marking for deletion Pod {ns}/{}", pod.name_any());
    publish(
        &state.eviction_recorder,
        &pod,
        EventType::Normal,
        "TaintManagerEviction",
        note,
    )
    .await;
    Ok(())
}

/// Deletes the pod at once (grace period 0): for pods no kubelet will finish.
pub(crate) async fn force_delete(state: &State, pod: &Pod) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..same_pod(pod)
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => Ok(()),
        // Gone already, or replaced by a new pod of the same name: not ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete options that only ever delete this very pod, not a newer one of the same name.
fn same_pod(pod: &Pod) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::debug!(%error, "could not record an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::health::tests::{at, node};
    use super::*;

    #[test]
    fn only_troubled_nodes_need_their_pods_looked_at() {
        assert!(!in_trouble(&node("True", 0)));
        assert!(in_trouble(&node("False", 0)));
        assert!(in_trouble(&node("Unknown", 0)));
        let mut tainted = node("True", 0);
        tainted.spec = Some(
            serde_json::from_value(serde_json::json!(
                {"taints": [{"key": "maintenance", "effect": "NoExecute"}]}
            ))
            .unwrap(),
        );
        assert!(in_trouble(&tainted));
    }

    #[test]
    fn lost_means_silent_or_declared_out_of_service() {
        assert!(is_lost(&node("Unknown", 0)));
        assert!(!is_lost(&node("False", 0)));
        let mut out = node("False", 0);
        out.spec = Some(
            serde_json::from_value(serde_json::json!(
                {"taints": [{"key": OUT_OF_SERVICE, "effect": "NoExecute"}]}
            ))
            .unwrap(),
        );
        assert!(is_lost(&out));
    }

    #[test]
    fn wake_ups_never_go_negative() {
        assert_eq!(until(at(5), at(10)), Duration::ZERO);
        assert_eq!(until(at(10), at(5)), Duration::from_secs(5));
    }
}
