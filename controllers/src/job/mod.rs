//! The Job controller: runs a Job's pods until enough succeed (`completions`), never more
//! at once than `parallelism`, replacing failed ones after an exponential backoff until
//! `backoffLimit` failures; honours `activeDeadlineSeconds`, `suspend` and
//! `ttlSecondsAfterFinished`, and reports it all in the Job's status and Events.
//!
//! # Layout
//! - `plan.rs`: the decision, without IO: counting, conditions, what to create and delete;
//! - this file: reading the Job and its pods, and carrying the plan out;
//! - `indexed.rs`: `completionMode: Indexed`, one pod per completion index;
//! - `orphans.rs`: removing the tracking finalizer from pods whose Job is gone.
//!
//! # Why every reconcile reads the Job and its pods from the API server
//! The watch caches can lag behind the controller's own last writes. Kubernetes covers
//! that with "expectations" bookkeeping; reading the Job (then its pods) afresh is simpler
//! and just as safe: a stale view can neither create a pod twice nor count one twice,
//! and the status is written with the Job's `resourceVersion`, so a concurrent change
//! is a conflict and a retry, never a lost update.
//!
//! # What is not supported
//! `podFailurePolicy`, `successPolicy` and `backoffLimitPerIndex` are refused with a `FailedCreate` Event and an error saying so,
//! rather than silently run as something else. `podReplacementPolicy: Failed` delays
//! replacements until deleted pods are gone, but a deleted pod still counts as failed, as
//! under the default policy. A Job whose `managedBy` names another controller is left to
//! it, as in Kubernetes.

mod indexed;
mod orphans;
mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sextant_api::labels::Selector;
use sextant_events::{Event, Recorder, normal, warning};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::{Error, retry_soon};
use crate::owners::{self, Claim};
use plan::{Backoff, Plan, TRACKING_FINALIZER};

/// The labels Kubernetes puts on a Job's pods (and in its generated selector), with their
/// pre-1.27 spellings, which older tooling still selects on.
const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// `spec.managedBy` of Jobs this controller runs (absent means the same).
const MANAGED_BY: &str = "kubernetes.io/job-controller";

struct State {
    ctx: Context,
    recorder: Recorder,
    backoff: Backoff,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let jobs = Api::<Job>::all(ctx.client.clone());
    let pods = Api::<Pod>::all(ctx.client.clone());
    let controller = Controller::new(jobs, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone().cancelled_owned());
    let sweeper = orphans::run(ctx.client.clone(), controller.store(), shutdown);
    let state = Arc::new(State {
        recorder: ctx.recorder("job-controller"),
        ctx,
        backoff: Backoff::default(),
    });
    let reconciling = controller
        .run(reconcile, retry_soon, state)
        .for_each(|_| async {});
    tokio::join!(reconciling, sweeper);
}

async fn reconcile(cached: Arc<Job>, state: Arc<State>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let jobs = Api::<Job>::namespaced(state.ctx.client.clone(), &ns);
    let Some(job) = jobs.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let spec = job.spec.as_ref();
    if spec
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != MANAGED_BY)
    {
        return Ok(Action::await_change());
    }
    if let Err(reason) = unsupported(&job) {
        state
            .publish(&job, warning("FailedCreate", reason.clone()), None)
            .await;
        return Err(Error::invalid("Job", job.name_any(), reason));
    }
    let Some(selector) = spec.and_then(|s| s.selector.clone()) else {
        default_selector(&jobs, &job).await?;
        // The watch brings the Job back with its selector.
        return Ok(Action::await_change());
    };
    let pods_api = Api::<Pod>::namespaced(state.ctx.client.clone(), &ns);
    let pods = owned_pods(&pods_api, &job, &selector).await?;
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let plan = plan::plan(&job, &pod_refs, jiff::Timestamp::now(), state.backoff);
    tracing::debug!(
        job = %job.name_any(),
        pods = pods.len(),
        create = ?plan.create,
        delete = ?plan.delete,
        unfinalize = ?plan.unfinalize,
        status = ?plan.status,
        "job step"
    );
    carry_out(&state, &jobs, &pods_api, job, plan).await
}

/// Does `plan`, in the order that keeps counting exact.
async fn carry_out(
    state: &State,
    jobs: &Api<Job>,
    pods_api: &Api<Pod>,
    job: Job,
    plan: Plan,
) -> Result<Action, Error> {
    if plan.expired {
        // As Kubernetes' TTL controller: foreground, so the Job goes after its pods.
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..DeleteParams::default()
        };
        ignore_not_found(jobs.delete(&job.name_any(), &dp).await.map(|_| ()))?;
        return Ok(Action::await_change());
    }
    for name in &plan.delete {
        ignore_not_found(
            pods_api
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
        state
            .publish(
                &job,
                normal("SuccessfulDelete", format!("Deleted pod: {name}")),
                Some(pod_ref(&job, name)),
            )
            .await;
    }
    create_pods(state, pods_api, &job, &plan.create).await?;

    let mut updated = job.clone();
    updated.status = Some(plan.status);
    let changed =
        serde_json::to_value(&job.status).ok() != serde_json::to_value(&updated.status).ok();
    if changed {
        jobs.replace_status(&job.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    for name in &plan.unfinalize {
        orphans::remove_finalizer(pods_api, name).await?;
    }
    for n in plan.notes {
        let ev = if n.warning {
            warning(n.reason, n.message)
        } else {
            normal(n.reason, n.message)
        };
        state.publish(&job, ev, None).await;
    }
    Ok(Action::requeue(
        plan.requeue.unwrap_or(state.ctx.config.resync),
    ))
}

/// The Job's pods: those whose controller reference names it, plus orphans that match its
/// selector (adopted, as Kubernetes does).
async fn owned_pods(
    api: &Api<Pod>,
    job: &Job,
    selector: &LabelSelector,
) -> Result<Vec<Pod>, Error> {
    let parsed = Selector::from_label_selector(selector).map_err(|e| {
        Error::invalid(
            "Job",
            job.name_any(),
            format!("spec.selector: {e}; fix the selector"),
        )
    })?;
    if parsed.is_everything() {
        return Err(Error::invalid(
            "Job",
            job.name_any(),
            "spec.selector selects every pod; give it matchLabels that only this Job's template has",
        ));
    }
    let uid = job.uid().unwrap_or_default();
    let listed = api
        .list(&ListParams::default().labels(&parsed.to_string()))
        .await?;
    let mut owned = Vec::new();
    for pod in listed.items {
        match owners::claim(&pod.metadata, &uid, true) {
            Claim::Owned => owned.push(pod),
            Claim::Adopt if job.metadata.deletion_timestamp.is_none() => {
                owned.push(adopt(api, &pod, job).await?);
            }
            _ => {}
        }
    }
    Ok(owned)
}

/// Makes `job` the controller of an orphan pod, and tracks it like the pods it creates.
async fn adopt(api: &Api<Pod>, pod: &Pod, job: &Job) -> Result<Pod, Error> {
    let patch = json!({"metadata": {
        "uid": pod.metadata.uid,
        "ownerReferences": [owners::controller_ref(job)],
        "finalizers": [TRACKING_FINALIZER],
    }});
    Ok(api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?)
}

/// Creates the pods (one per entry of `indexes`) in doubling batches (1, 2, 4, …), as
/// Kubernetes' slow start does, so that a Job the API server refuses fails after one
/// request, not all of them.
async fn create_pods(
    state: &State,
    api: &Api<Pod>,
    job: &Job,
    indexes: &[Option<i32>],
) -> Result<(), Error> {
    let pp = PostParams::default();
    let mut left = indexes;
    let mut batch = 1;
    while !left.is_empty() {
        let (now, later) = left.split_at(batch.min(left.len()));
        let pods: Vec<Pod> = now.iter().map(|i| new_pod(job, *i)).collect();
        let results = join_all(pods.iter().map(|p| api.create(&pp, p))).await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(created) => {
                    let msg = format!("Created pod: {}", created.name_any());
                    state
                        .publish(
                            job,
                            normal("SuccessfulCreate", msg),
                            Some(created.object_ref(&())),
                        )
                        .await;
                }
                Err(e) => {
                    state
                        .publish(
                            job,
                            warning("FailedCreate", format!("Error creating: {e}")),
                            None,
                        )
                        .await;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        left = later;
        batch *= 2;
    }
    Ok(())
}

/// A pod from the Job's template: named after the Job, controlled by it, and tracked; in
/// an Indexed Job, the pod of completion index `index`.
fn new_pod(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = None;
    metadata.namespace = None;
    metadata.generate_name = Some(format!("{}-", job.name_any()));
    metadata.owner_references = Some(vec![owners::controller_ref(job)]);
    let mut finalizers = metadata.finalizers.take().unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.to_owned());
    metadata.finalizers = Some(finalizers);
    let mut pod = Pod {
        metadata,
        spec: template.spec,
        status: None,
    };
    if let Some(i) = index {
        indexed::assign(&mut pod, &job.name_any(), i);
    }
    pod
}

/// Kubernetes' API server gives a Job without `manualSelector` a selector on its own uid
/// and puts the matching labels in the template; Sextant's does not (yet), so the
/// controller does it once, before the first pod.
async fn default_selector(api: &Api<Job>, job: &Job) -> Result<(), Error> {
    if job.spec.as_ref().and_then(|s| s.manual_selector) == Some(true) {
        return Err(Error::invalid(
            "Job",
            job.name_any(),
            "spec.manualSelector is true but spec.selector is empty; set a selector or drop manualSelector",
        ));
    }
    let uid = job.uid().unwrap_or_default();
    let labels = generated_labels(&job.name_any(), &uid);
    let patch = json!({
        "metadata": {"resourceVersion": job.resource_version()},
        "spec": {
            "selector": {"matchLabels": {CONTROLLER_UID: uid}},
            "template": {"metadata": {"labels": labels}},
        },
    });
    api.patch(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// The labels a Job's pods carry. `job-name` is left out when the name is too long to be
/// a label value (over 63 characters), as Kubernetes does.
fn generated_labels(name: &str, uid: &str) -> BTreeMap<&'static str, String> {
    let mut labels = BTreeMap::from([
        (CONTROLLER_UID, uid.to_owned()),
        (LEGACY_CONTROLLER_UID, uid.to_owned()),
    ]);
    if name.len() <= 63 {
        labels.insert(JOB_NAME, name.to_owned());
        labels.insert(LEGACY_JOB_NAME, name.to_owned());
    }
    labels
}

/// What this controller would run wrongly, said so that the user can change it.
fn unsupported(job: &Job) -> Result<(), String> {
    let Some(spec) = job.spec.as_ref() else {
        return Err("the Job has no spec; give it spec.template".into());
    };
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if !matches!(policy, Some("Never" | "OnFailure")) {
        return Err(format!(
            "spec.template.spec.restartPolicy is {}; a Job's pods need Never or OnFailure",
            policy.unwrap_or("unset")
        ));
    }
    if spec.completion_mode.as_deref() == Some("Indexed") && spec.completions.is_none() {
        return Err("an Indexed Job needs spec.completions (the number of indexes)".into());
    }
    for (set, field) in [
        (spec.pod_failure_policy.is_some(), "podFailurePolicy"),
        (spec.success_policy.is_some(), "successPolicy"),
        (
            spec.backoff_limit_per_index.is_some(),
            "backoffLimitPerIndex",
        ),
    ] {
        if set {
            return Err(format!(
                "spec.{field} is not supported by Sextant yet; remove it"
            ));
        }
    }
    Ok(())
}

impl State {
    /// Records an Event on `job`; `related` names the pod it concerns, which also keeps
    /// Events about different pods from being merged into one series.
    async fn publish(&self, job: &Job, ev: Event, related: Option<ObjectReference>) {
        let ev = Event {
            secondary: related,
            ..ev
        };
        if let Err(e) = self.recorder.publish(&ev, &job.object_ref(&())).await {
            tracing::warn!(job = %job.name_any(), error = %e, "could not record an Event");
        }
    }
}

/// A reference to the pod `name` of `job`, for an Event's `related`.
fn pod_ref(job: &Job, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: job.namespace(),
        name: Some(name.to_owned()),
        ..ObjectReference::default()
    }
}

fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), Error> {
    match r {
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_labels_follow_kubernetes() {
        let l = generated_labels("pi", "u-1");
        assert_eq!(l[CONTROLLER_UID], "u-1");
        assert_eq!(l[LEGACY_JOB_NAME], "pi");
        let long = "x".repeat(64);
        assert!(!generated_labels(&long, "u").contains_key(JOB_NAME));
    }

    #[test]
    fn pods_carry_the_template_the_owner_and_the_finalizer() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "d", "uid": "u-1"},
            "spec": {"template": {
                "metadata": {"labels": {"app": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap();
        let pod = new_pod(&job, None);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(pod.labels()["app"], "pi");
        assert_eq!(pod.finalizers(), [TRACKING_FINALIZER]);
        let owner = &pod.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Job", "u-1"));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(unsupported(&job), Ok(()));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let mut job: Job = serde_json::from_value(json!({
            "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": []}}}
        }))
        .unwrap();
        assert!(
            unsupported(&job)
                .unwrap_err()
                .contains("Never or OnFailure")
        );
        let spec = job.spec.as_mut().unwrap();
        spec.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        spec.completion_mode = Some("Indexed".into());
        assert!(unsupported(&job).unwrap_err().contains("spec.completions"));
        let spec = job.spec.as_mut().unwrap();
        spec.pod_failure_policy = Some(Default::default());
        spec.completions = Some(2);
        assert!(unsupported(&job).unwrap_err().contains("podFailurePolicy"));
    }
}
