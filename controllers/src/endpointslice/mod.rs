//! The EndpointSlice controller: the endpoints of each Service with a selector, as
//! `discovery.k8s.io/v1` EndpointSlices of at most 100 endpoints, named `<service>-<random>`,
//! owned by the Service (so the garbage collector removes them with it) and labelled
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
//! endpointslice-controller.k8s.io` (Kubernetes' `endpointslice-controller`).
//!
//! Unlike Endpoints, a slice keeps terminating pods, marked `terminating: true` and
//! `ready: false`, so that readers can drain connections. Which slices change is decided by
//! `plan.rs`; this file reads and writes.
//!
//! # Caveats
//! - Endpoints carry no `zone`: Sextant's nodes have no topology labels to read it from.
//! - The slices are listed from the API on each reconcile rather than from a cache, so a
//!   slice this controller has just created is never missed and created twice.

mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use self::plan::{CONTROLLER, MANAGED_BY, Plan, SERVICE_NAME};
use crate::context::Context;
use crate::endpoints::{self, pod::selects, triggers};
use crate::error::{Error, retry_soon};

/// Kubernetes' default `--max-endpoints-per-slice`.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

struct State {
    client: kube::Client,
    pods: Store<Pod>,
    recorder: Recorder,
    resync: Duration,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (pods, pod_writer) = reflector::store();
    let state = Arc::new(State {
        client: client.clone(),
        pods,
        recorder: ctx.recorder("endpointslice-controller"),
        resync: ctx.config.resync,
    });
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    controller
        .reconcile_on(triggers::service_triggers(
            Api::all(client.clone()),
            pod_writer,
            services,
        ))
        .watches(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default().labels(&format!("{MANAGED_BY}={CONTROLLER}")),
            |slice| {
                let service = slice.labels().get(SERVICE_NAME)?;
                Some(ObjectRef::new(service).within(&slice.namespace()?))
            },
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, state)
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action, Error> {
    if !endpoints::filled(&state.pods) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let Some(ns) = svc.namespace() else {
        return Ok(Action::await_change());
    };
    if endpoints::pod::selector(&svc).is_none() {
        return Ok(Action::await_change());
    }
    let api: Api<EndpointSlice> = Api::namespaced(state.client.clone(), &ns);
    let mine = ListParams::default().labels(&format!(
        "{SERVICE_NAME}={},{MANAGED_BY}={CONTROLLER}",
        svc.name_any()
    ));
    let existing = api.list(&mine).await?.items;
    let selected: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| selects(&svc, p))
        .collect();
    let plan = plan::plan(&svc, &selected, existing, MAX_ENDPOINTS_PER_SLICE);
    if let Err(e) = write(&api, &svc, plan).await {
        report_failure(&state.recorder, &svc, &e).await;
        return Err(e.into());
    }
    Ok(Action::requeue(state.resync))
}

/// Applies `plan`: creates, then updates, then deletes, so a Service never shows fewer
/// endpoints mid-way than before or after. No slice is created for a Service being deleted,
/// which the garbage collector would only have to chase.
async fn write(api: &Api<EndpointSlice>, svc: &Service, plan: Plan) -> Result<(), kube::Error> {
    if svc.meta().deletion_timestamp.is_none() {
        for slice in &plan.create {
            api.create(&PostParams::default(), slice).await?;
        }
    }
    for slice in &plan.update {
        api.replace(&slice.name_any(), &PostParams::default(), slice)
            .await?;
    }
    for slice in &plan.delete {
        match api
            .delete(&slice.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A Warning on the Service, worded as Kubernetes words it. Conflicts are routine (another
/// writer got there first; the retry reads afresh) and are not reported.
async fn report_failure(recorder: &Recorder, svc: &Service, e: &kube::Error) {
    if matches!(e, kube::Error::Api(s) if s.code == 409) {
        return;
    }
    let event = Event {
        type_: EventType::Warning,
        reason: "FailedToUpdateEndpointSlices".into(),
        note: Some(format!(
            "Error updating Endpoint Slices for Service {}/{}: {e}",
            svc.namespace().unwrap_or_default(),
            svc.name_any()
        )),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &svc.object_ref(&())).await {
        tracing::debug!(%error, "could not record an Event");
    }
}
