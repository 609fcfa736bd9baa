//! The ReplicaSet controller: exactly `replicas` active pods per ReplicaSet.
//!
//! # One reconcile
//! 1. Claim pods from the cache: the ReplicaSet's own (controller reference), orphans that
//!    match its selector (adopted), and its own that stopped matching (released).
//! 2. Unless an earlier create or delete is still unseen (see [`expectations`]), create the
//!    missing pods from the template or delete the extras, least ready first
//!    ([`ranking`]); at most [`BURST`] per reconcile, creations in doubling batches.
//! 3. Write the status computed from the claimed pods ([`status`]).
//!
//! # Why a shared pod watch
//! The pod cache and the reconcile triggers come from one watch stream: an event reaches
//! the cache, then the expectations, then the queue. A reconcile triggered by a pod event
//! therefore always sees that event in its cache, and no trigger is lost between the two.

mod expectations;
mod ranking;
mod status;

pub(crate) use self::status::nonzero;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use sextant_api::Selector;
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use self::expectations::Expectations;
use self::status::Failure;
use crate::context::Context;
use crate::error::retry_soon;
use crate::owners::{self, Claim, ignore_not_found};
use crate::{Error, pods};

/// Most pods one reconcile creates or deletes (Kubernetes' `burstReplicas`): a ReplicaSet
/// scaled to 10,000 converges in steps, and one broken template cannot flood the API.
const BURST: usize = 500;

/// The name `kubectl describe` shows as the source of this controller's Events.
const CONTROLLER: &str = "replicaset-controller";

struct Ctx {
    client: kube::Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    expectations: Expectations,
    recorder: Recorder,
    resync: Duration,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (pods, writer) = reflector::store();
    let expectations = Expectations::default();
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let replicasets = controller.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pods.clone(),
        replicasets: replicasets.clone(),
        expectations,
        recorder: ctx.recorder(CONTROLLER),
        resync: ctx.config.resync,
    });
    let hook = ctx.clone();
    let pod_events = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        .map(move |event| {
            if let Ok(event) = &event {
                hook.expectations.observe(event, &hook.pods);
            }
            event
        })
        .reflect(writer)
        .touched_objects();
    controller
        .watches_stream(pod_events, move |pod| {
            replicasets_for_pod(&pod, &replicasets)
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "replicaset controller");
            }
            future::ready(())
        })
        .await;
}

/// The ReplicaSets a pod event concerns: its controller, or, for an orphan, every
/// ReplicaSet that could adopt it.
fn replicasets_for_pod(pod: &Pod, replicasets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = owners::controller_of(&pod.metadata) {
        return if owner.kind == "ReplicaSet" {
            vec![ObjectRef::new(&owner.name).within(&namespace)]
        } else {
            Vec::new()
        };
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let labels = pod.labels();
    replicasets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|rs| selector_of(rs).is_ok_and(|s| s.matches(labels)))
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ctx.pods.wait_until_ready().await.is_err() {
        // The pod watch is gone: the controller is shutting down.
        return Ok(Action::await_change());
    }
    let selector = selector_of(&rs)?;
    let owned = claim_pods(&rs, &selector, &ctx).await?;
    let pods: Vec<&Pod> = owned.iter().map(AsRef::as_ref).collect();
    let uid = rs.uid().unwrap_or_default();
    let outcome = if ctx.expectations.satisfied(&uid) && rs.meta().deletion_timestamp.is_none() {
        manage_replicas(&rs, &pods, &ctx).await
    } else {
        Ok(())
    };
    let now = jiff::Timestamp::now();
    let failure = outcome.as_ref().err().map(|(f, _)| f);
    let status = status::compute(&rs, &pods, failure, now);
    if rs.status.as_ref() != Some(&status) {
        write_status(&rs, status, &ctx).await?;
    }
    if let Err((_, e)) = outcome {
        return Err(e);
    }
    let next = status::next_availability(&rs, &pods, now).map_or(ctx.resync, |d| d.min(ctx.resync));
    Ok(Action::requeue(next))
}

fn selector_of(rs: &ReplicaSet) -> Result<Selector, Error> {
    let invalid = |reason: String| Error::invalid("ReplicaSet", rs.name_any(), reason);
    let spec = rs
        .spec
        .as_ref()
        .ok_or_else(|| invalid("it has no spec".into()))?;
    let selector = Selector::from_label_selector(&spec.selector)
        .map_err(|e| invalid(format!("spec.selector: {e}")))?;
    if selector.is_everything() {
        // Kubernetes' rule: an empty selector would adopt every pod of the namespace.
        return Err(invalid(
            "spec.selector is empty; it must select the template's labels".into(),
        ));
    }
    Ok(selector)
}

/// The active pods `rs` owns after adopting matching orphans and releasing its pods that no
/// longer match (Kubernetes' `ClaimPods`).
async fn claim_pods(
    rs: &ReplicaSet,
    selector: &Selector,
    ctx: &Ctx,
) -> Result<Vec<Arc<Pod>>, Error> {
    let namespace = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let (mut owned, mut orphans, mut strays) = (Vec::new(), Vec::new(), Vec::new());
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(namespace.as_str()) || !pods::is_active(&pod) {
            continue;
        }
        match owners::claim(&pod.metadata, &uid, selector.matches(pod.labels())) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt => orphans.push(pod),
            Claim::Release => strays.push(pod),
            Claim::Ignore => {}
        }
    }
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &namespace);
    for pod in strays {
        ignore_not_found(owners::release(&api, pod.as_ref(), &uid).await)?;
    }
    if !orphans.is_empty() && can_adopt(rs, ctx).await? {
        for pod in orphans {
            let adopted = owners::adopt(&api, pod.as_ref(), owners::controller_ref(rs)).await;
            if ignore_not_found(adopted)?.is_some() {
                owned.push(pod);
            }
        }
    }
    Ok(owned)
}

/// Adopting needs a fresh look at the owner: one deleted (or replaced under the same name)
/// since the cache saw it must not take pods its successor or the garbage collector expects.
async fn can_adopt(rs: &ReplicaSet, ctx: &Ctx) -> Result<bool, Error> {
    let api =
        Api::<ReplicaSet>::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let fresh = api.get_opt(&rs.name_any()).await?;
    Ok(fresh.is_some_and(|f| {
        f.metadata.uid == rs.metadata.uid && f.metadata.deletion_timestamp.is_none()
    }))
}

/// Creates or deletes pods towards `replicas`. A failure carries what the status should say.
async fn manage_replicas(
    rs: &ReplicaSet,
    pods: &[&Pod],
    ctx: &Ctx,
) -> Result<(), (Failure, Error)> {
    let want = usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
    let have = pods.len();
    if have < want {
        create_pods(rs, (want - have).min(BURST), ctx).await
    } else if have > want {
        delete_pods(rs, pods, (have - want).min(BURST), ctx).await
    } else {
        Ok(())
    }
}

/// Creates `count` pods in batches of 1, 2, 4, … (Kubernetes' slow start): a template the
/// API refuses fails once, not `count` times.
async fn create_pods(rs: &ReplicaSet, count: usize, ctx: &Ctx) -> Result<(), (Failure, Error)> {
    let failed = |e: Error| {
        let message = e.to_string();
        (
            Failure {
                reason: "FailedCreate",
                message,
            },
            e,
        )
    };
    let pod = pod_from_template(rs).map_err(failed)?;
    let uid = rs.uid().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    ctx.expectations.expect_creations(&uid, count);
    let params = PostParams::default();
    let mut attempted = 0;
    let mut batch = count.min(1);
    while batch > 0 {
        let results = future::join_all((0..batch).map(|_| api.create(&params, &pod))).await;
        attempted += batch;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(created) => {
                    let note = format!("Created pod: {}", created.name_any());
                    publish(
                        ctx,
                        rs,
                        EventType::Normal,
                        "SuccessfulCreate",
                        note,
                        Some(&created),
                    )
                    .await;
                }
                Err(e) => {
                    ctx.expectations.creation_observed(&uid);
                    let note = format!("Error creating: {e}");
                    publish(ctx, rs, EventType::Warning, "FailedCreate", note, None).await;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            for _ in attempted..count {
                ctx.expectations.creation_observed(&uid);
            }
            return Err(failed(e.into()));
        }
        batch = (batch * 2).min(count - attempted);
    }
    Ok(())
}

/// Deletes the `count` pods whose loss costs least, all at once.
async fn delete_pods(
    rs: &ReplicaSet,
    pods: &[&Pod],
    count: usize,
    ctx: &Ctx,
) -> Result<(), (Failure, Error)> {
    let related = related_pods(rs, ctx);
    let related: Vec<&Pod> = related.iter().map(AsRef::as_ref).collect();
    let victims = ranking::pods_to_delete(pods, &related, count);
    let uid = rs.uid().unwrap_or_default();
    let pod_uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    ctx.expectations
        .expect_deletions(&uid, victims.iter().map(|p| pod_uid(p)).collect());
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let params = DeleteParams::default();
    let results = future::join_all(
        victims
            .iter()
            .map(|p| api.delete(p.metadata.name.as_deref().unwrap_or_default(), &params)),
    )
    .await;
    let mut first_error = None;
    for (victim, result) in victims.iter().zip(results) {
        let name = victim.name_any();
        match result {
            Ok(_) => {
                let note = format!("Deleted pod: {name}");
                publish(
                    ctx,
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    note,
                    Some(victim),
                )
                .await;
            }
            Err(e) => {
                ctx.expectations.deletion_observed(&uid, &pod_uid(victim));
                if !is_not_found(&e) {
                    let note = format!("Error deleting: {e}");
                    publish(
                        ctx,
                        rs,
                        EventType::Warning,
                        "FailedDelete",
                        note,
                        Some(victim),
                    )
                    .await;
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    match first_error {
        Some(e) => {
            let message = e.to_string();
            Err((
                Failure {
                    reason: "FailedDelete",
                    message,
                },
                e.into(),
            ))
        }
        None => Ok(()),
    }
}

/// The active pods of `rs` and of its siblings (the ReplicaSets with the same controller,
/// as a Deployment's old and new ones): deleting where they crowd spreads the survivors.
fn related_pods(rs: &ReplicaSet, ctx: &Ctx) -> Vec<Arc<Pod>> {
    let namespace = rs.namespace().unwrap_or_default();
    let mut family = vec![rs.uid().unwrap_or_default()];
    if let Some(parent) = owners::controller_of(&rs.metadata) {
        family.extend(
            ctx.replicasets
                .state()
                .iter()
                .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
                .filter(|s| owners::controller_of(&s.metadata).is_some_and(|r| r.uid == parent.uid))
                .filter_map(|s| s.uid()),
        );
    }
    ctx.pods.state_filter(|p| {
        p.namespace().as_deref() == Some(namespace.as_str())
            && pods::is_active(p)
            && owners::controller_of(&p.metadata).is_some_and(|r| family.contains(&r.uid))
    })
}

/// A pod as the template says, named `<replicaset>-<random>` and controlled by `rs`.
fn pod_from_template(rs: &ReplicaSet) -> Result<Pod, Error> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .ok_or_else(|| {
            Error::invalid(
                "ReplicaSet",
                rs.name_any(),
                "spec.template is missing; add a pod template",
            )
        })?;
    let meta = template.metadata.clone().unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owners::controller_ref(rs)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}

/// Writes the status with the ReplicaSet's resourceVersion: a status computed from an old
/// version of the spec is refused (409) and recomputed.
async fn write_status(
    rs: &ReplicaSet,
    status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
    ctx: &Ctx,
) -> Result<(), Error> {
    let api =
        Api::<ReplicaSet>::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let mut updated = rs.clone();
    updated.status = Some(status);
    api.replace_status(&rs.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(())
}

/// Records an Event on `rs` about `pod`. The pod goes in the Event's `related` field, which
/// also keeps kube's Recorder from folding the Events of different pods into one series
/// (it tells Events apart by reason and objects, not by message).
async fn publish(
    ctx: &Ctx,
    rs: &ReplicaSet,
    type_: EventType,
    reason: &str,
    note: String,
    pod: Option<&Pod>,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: pod.map(|p| p.object_ref(&())),
    };
    if let Err(e) = ctx.recorder.publish(&event, &rs.object_ref(&())).await {
        tracing::debug!(error = %e, "could not record an Event");
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
