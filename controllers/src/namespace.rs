//! The namespace controller: a namespace being deleted is emptied, then let go.
//!
//! # The protocol
//! 1. `DELETE /api/v1/namespaces/x` gives the namespace a `deletionTimestamp` and phase
//!    `Terminating`; its `spec.finalizers` still holds `kubernetes`, so it stays, and the
//!    API server refuses new content in it.
//! 2. This controller deletes everything namespaced in it, every resource discovery lists
//!    (custom resources included), each in the background so that the garbage collector
//!    takes care of what they own.
//! 3. It waits until nothing is left: pods bound to a node go when their node agent has
//!    stopped them; objects with finalizers go when their finalizers' owners are done.
//!    Meanwhile the namespace's conditions say what remains, as Kubernetes words them
//!    (`NamespaceContentRemaining`, `NamespaceFinalizersRemaining`, ...).
//! 4. It removes `kubernetes` through the `finalize` subresource; with no finalizer left,
//!    the API server deletes the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::discovery::{ApiCapabilities, Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::context::Context;
use crate::error::retry_soon;

/// The `spec.finalizers` entry this controller owns.
const FINALIZER: &str = "kubernetes";
/// The longest wait between two looks at a namespace whose content is still going.
/// Kubernetes waits half the longest pod grace period (15 s by default); pods usually go
/// much sooner (their node agent stops them as soon as it sees the delete), and a list per
/// resource every couple of seconds, only while a namespace terminates, is cheap.
const MAX_WAIT: Duration = Duration::from_secs(2);

struct State {
    client: kube::Client,
    recorder: Recorder,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let state = Arc::new(State {
        client: ctx.client.clone(),
        recorder: ctx.recorder("namespace-controller"),
    });
    Controller::new(
        Api::<Namespace>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, retry_soon, state)
    .for_each(|_| async {})
    .await;
}

async fn reconcile(ns: Arc<Namespace>, st: Arc<State>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let api = Api::<Namespace>::all(st.client.clone());
    // The watch may lag behind another writer: act on the namespace as it is now.
    let Some(ns) = api.get_opt(&ns.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    if phase(&ns) != Some("Terminating") {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Terminating"}})),
        )
        .await?;
    }

    let report = delete_content(&st.client, &name).await;
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(conditions) = conditions(&old, &report, jiff::Timestamp::now()) {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    }
    if let Some(e) = report.discovery {
        st.warn(
            &ns,
            "DiscoveryFailed",
            format!("Discovery failed; content deletion waits for it: {e}"),
        )
        .await;
        return Err(e.into());
    }
    if let Some((resource, e)) = report.failures.into_iter().next() {
        st.warn(
            &ns,
            "ContentDeletionFailed",
            format!("Failed to delete {resource}: {e}"),
        )
        .await;
        return Err(e.into());
    }
    if !report.remaining.is_empty() {
        return Ok(Action::requeue(wait_for(report.estimate)));
    }
    finalize(&api, ns).await?;
    Ok(Action::await_change())
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

fn phase(ns: &Namespace) -> Option<&str> {
    ns.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// `PUT namespaces/x/finalize` with the namespace minus our finalizer: the only way to
/// change `spec.finalizers`, and the last step before the API server deletes it.
async fn finalize(api: &Api<Namespace>, mut ns: Namespace) -> Result<(), Error> {
    let name = ns.name_any();
    if let Some(f) = ns.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &ns)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// How long to wait before looking again, from the longest remaining pod grace period.
fn wait_for(estimate: Duration) -> Duration {
    (estimate / 2 + Duration::from_secs(1)).min(MAX_WAIT)
}

/// What one pass over a namespace's content found.
#[derive(Debug, Default)]
struct Report {
    discovery: Option<kube::Error>,
    /// Resources whose deletion failed, with why.
    failures: Vec<(String, kube::Error)>,
    /// `resource.group` → objects left.
    remaining: BTreeMap<String, usize>,
    /// Finalizer → objects left holding it.
    finalizers: BTreeMap<String, usize>,
    /// The longest time a remaining pod may still take to stop.
    estimate: Duration,
}

/// Deletes every namespaced object in `ns`, then lists what is left.
async fn delete_content(client: &kube::Client, ns: &str) -> Report {
    let mut report = Report::default();
    let resources = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => deletable(&d),
        Err(e) => {
            report.discovery = Some(e);
            return report;
        }
    };
    let now = jiff::Timestamp::now();
    for (ar, caps) in resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        let label = format!("{}.{}", ar.plural, ar.group);
        let left = match delete_all(&api, &caps).await {
            Ok(left) => left,
            Err(e) => {
                report.failures.push((label, e));
                continue;
            }
        };
        if left.is_empty() {
            continue;
        }
        report.remaining.insert(label, left.len());
        for obj in &left {
            for f in obj.metadata.finalizers.iter().flatten() {
                *report.finalizers.entry(f.clone()).or_default() += 1;
            }
            if ar.group.is_empty() && ar.plural == "pods" {
                report.estimate = report.estimate.max(grace_left(obj, now));
            }
        }
    }
    report
}

/// Every namespaced resource that can be listed and deleted, at its preferred version.
fn deletable(discovery: &Discovery) -> Vec<(ApiResource, ApiCapabilities)> {
    discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::DELETE)
                && caps.supports_operation(verbs::LIST)
        })
        .collect()
}

/// Deletes every object of one resource (in the background: the garbage collector deletes
/// what they own), and returns those still there.
async fn delete_all(
    api: &Api<DynamicObject>,
    caps: &ApiCapabilities,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let background = DeleteParams::background();
    let listed = api.list(&ListParams::default()).await?.items;
    // Asking again to delete what is already being deleted changes nothing.
    if listed
        .iter()
        .all(|o| o.metadata.deletion_timestamp.is_some())
    {
        return Ok(listed);
    }
    if caps.supports_operation(verbs::DELETE_COLLECTION) {
        api.delete_collection(&background, &ListParams::default())
            .await?;
    } else {
        for obj in listed
            .iter()
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        {
            match api.delete(&obj.name_any(), &background).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(api.list(&ListParams::default()).await?.items)
}

/// How long a pod being deleted may still take: until its deletionTimestamp, which the API
/// server sets to the moment its grace period ends.
fn grace_left(pod: &DynamicObject, now: jiff::Timestamp) -> Duration {
    match &pod.metadata.deletion_timestamp {
        Some(Time(at)) => Duration::try_from(*at - now).unwrap_or_default(),
        None => Duration::from_secs(
            pod.data
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(30),
        ),
    }
}

/// One condition type: its reason and message when something is wrong, and when not.
struct Wanted {
    type_: &'static str,
    failing: Option<(&'static str, String)>,
    ok: (&'static str, &'static str),
}

/// The namespace's deletion conditions after `report`, as Kubernetes' namespace controller
/// sets them (each type always present, `False` with an "all is well" reason when nothing
/// is wrong); `None` when nothing changed.
fn conditions(
    old: &[NamespaceCondition],
    report: &Report,
    now: jiff::Timestamp,
) -> Option<Vec<NamespaceCondition>> {
    let listed = |m: &BTreeMap<String, usize>, each: &dyn Fn(&String, usize) -> String| {
        m.iter()
            .map(|(k, n)| each(k, *n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failures = {
        let mut msgs: Vec<String> = report
            .failures
            .iter()
            .map(|(r, e)| format!("{r}: {e}"))
            .collect();
        msgs.sort();
        msgs
    };
    let wanted = [
        Wanted {
            type_: "NamespaceDeletionDiscoveryFailure",
            failing: report
                .discovery
                .as_ref()
                .map(|e| ("DiscoveryFailed", e.to_string())),
            ok: (
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
        },
        Wanted {
            type_: "NamespaceDeletionGroupVersionParsingFailure",
            failing: None,
            ok: (
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
        },
        Wanted {
            type_: "NamespaceDeletionContentFailure",
            failing: (!failures.is_empty()).then(|| {
                (
                    "ContentDeletionFailed",
                    format!(
                        "Failed to delete all resource types, {} remaining: {}",
                        failures.len(),
                        failures.join(", ")
                    ),
                )
            }),
            ok: (
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
        },
        Wanted {
            type_: "NamespaceContentRemaining",
            failing: (!report.remaining.is_empty()).then(|| {
                (
                    "SomeResourcesRemain",
                    format!(
                        "Some resources are remaining: {}",
                        listed(&report.remaining, &|r, n| format!(
                            "{r} has {n} resource instances"
                        ))
                    ),
                )
            }),
            ok: ("ContentRemoved", "All content successfully removed"),
        },
        Wanted {
            type_: "NamespaceFinalizersRemaining",
            failing: (!report.finalizers.is_empty()).then(|| {
                (
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        listed(&report.finalizers, &|f, n| format!(
                            "{f} in {n} resource instances"
                        ))
                    ),
                )
            }),
            ok: (
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            ),
        },
    ];
    let mut out: Vec<NamespaceCondition> = old.to_vec();
    let mut changed = false;
    for Wanted { type_, failing, ok } in wanted {
        let (status, reason, message) = match failing {
            Some((reason, message)) => ("True", reason, message),
            None => ("False", ok.0, ok.1.to_owned()),
        };
        match out.iter_mut().find(|c| c.type_ == type_) {
            None => {
                out.push(NamespaceCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
            Some(c) => {
                let same = c.status == status
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message.as_str());
                if !same {
                    if c.status != status {
                        c.last_transition_time = Some(Time(now));
                    }
                    c.status = status.into();
                    c.reason = Some(reason.into());
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed.then_some(out)
}

impl State {
    /// A Warning on the namespace: its conditions say the same, but `kubectl get events`
    /// is where people look when a delete hangs.
    async fn warn(&self, ns: &Namespace, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "DeleteContent".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &ns.object_ref(&())).await {
            tracing::debug!(error = %e, "namespace controller: could not record an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a NamespaceCondition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn remaining_content_is_named_as_kubernetes_names_it() {
        let report = Report {
            remaining: [
                ("pods.".to_owned(), 2),
                ("crontabs.stable.example.com".to_owned(), 1),
            ]
            .into(),
            finalizers: [("example.com/keep".to_owned(), 1)].into(),
            ..Report::default()
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        let c = conditions(&[], &report, now).unwrap();
        assert_eq!(c.len(), 5);
        let remaining = find(&c, "NamespaceContentRemaining");
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: crontabs.stable.example.com has 1 resource instances, pods. has 2 resource instances"
            )
        );
        let fin = find(&c, "NamespaceFinalizersRemaining");
        assert_eq!(
            fin.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
            )
        );
        assert_eq!(
            find(&c, "NamespaceDeletionDiscoveryFailure").status,
            "False"
        );

        // The same report again changes nothing; an empty one flips the two to False.
        assert!(conditions(&c, &report, now).is_none());
        let later = jiff::Timestamp::from_second(60).unwrap();
        let done = conditions(&c, &Report::default(), later).unwrap();
        let remaining = find(&done, "NamespaceContentRemaining");
        assert_eq!(
            (remaining.status.as_str(), remaining.reason.as_deref()),
            ("False", Some("ContentRemoved"))
        );
        assert_eq!(remaining.last_transition_time, Some(Time(later)));
        // Conditions that did not change keep their transition time.
        assert_eq!(
            find(&done, "NamespaceDeletionDiscoveryFailure").last_transition_time,
            Some(Time(now))
        );
    }

    #[test]
    fn the_wait_follows_pod_grace_but_stays_short() {
        assert_eq!(wait_for(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(wait_for(Duration::from_secs(30)), MAX_WAIT);
    }

    #[test]
    fn a_pods_remaining_grace_runs_to_its_deletion_timestamp() {
        let now = jiff::Timestamp::from_second(100).unwrap();
        let mut pod = DynamicObject {
            types: None,
            metadata: Default::default(),
            data: json!({"spec": {"terminationGracePeriodSeconds": 7}}),
        };
        assert_eq!(grace_left(&pod, now), Duration::from_secs(7));
        pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(130).unwrap()));
        assert_eq!(grace_left(&pod, now), Duration::from_secs(30));
        pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(90).unwrap()));
        assert_eq!(grace_left(&pod, now), Duration::ZERO);
    }
}
