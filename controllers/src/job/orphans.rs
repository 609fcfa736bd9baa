//! Pods that keep the tracking finalizer after their Job stopped caring: the Job was
//! deleted (a background delete removes it before its pods), orphaned them, or finished,
//! or the pod no longer matches its selector. Nobody will count them any more, so the
//! finalizer goes, or they would never be deleted (Kubernetes' `syncOrphanPod`).
//!
//! The reconciler cannot do this: kube-rs only reconciles Jobs that still exist. So this
//! task watches pods itself and asks the Job cache first, the API server only when the
//! cache says the Job is missing (the cache may not have seen a new Job yet).

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use sextant_api::labels::Selector;
use tokio_util::sync::CancellationToken;

use super::plan::TRACKING_FINALIZER;
use crate::error::Error;
use crate::owners;

pub(super) async fn run(client: Client, jobs: Store<Job>, shutdown: CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => return,
        ready = jobs.wait_until_ready() => if ready.is_err() { return },
    }
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut pods = std::pin::pin!(pods);
    loop {
        let pod = tokio::select! {
            () = shutdown.cancelled() => return,
            next = pods.next() => match next {
                Some(Ok(pod)) => pod,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "pod watch interrupted; it resumes");
                    continue;
                }
                None => return,
            },
        };
        if !pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER) {
            continue;
        }
        if let Err(e) = sweep(&client, &jobs, &pod).await {
            tracing::warn!(pod = %pod.name_any(), error = %e, "could not release an orphan Job pod; the next change to it retries");
        }
    }
}

async fn sweep(client: &Client, cache: &Store<Job>, pod: &Pod) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let owner = owners::controller_of(&pod.metadata)
        .filter(|r| r.kind == "Job" && r.api_version.starts_with("batch/"));
    if let Some(r) = owner {
        let cached = cache.get(&ObjectRef::new(&r.name).within(&ns));
        if cached.is_some_and(|job| counts(&job, pod, &r.uid)) {
            return Ok(());
        }
        let jobs = Api::<Job>::namespaced(client.clone(), &ns);
        if jobs
            .get_opt(&r.name)
            .await?
            .is_some_and(|job| counts(&job, pod, &r.uid))
        {
            return Ok(());
        }
    }
    remove_finalizer(&Api::namespaced(client.clone(), &ns), &pod.name_any()).await
}

/// Whether `job` (the pod's controller, `uid`) will still count `pod`: it is that very Job,
/// still running, and selects the pod.
fn counts(job: &Job, pod: &Pod, uid: &str) -> bool {
    let selected = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| Selector::from_label_selector(s).ok())
        .is_some_and(|s| s.matches(pod.labels()));
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True");
    job.uid().as_deref() == Some(uid)
        && selected
        && !finished
        && job.metadata.deletion_timestamp.is_none()
}

/// Drops the tracking finalizer (a pod already gone needs nothing).
pub(super) async fn remove_finalizer(api: &Api<Pod>, name: &str) -> Result<(), Error> {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}
