//! The Endpoints controller: for each Service with a selector, an Endpoints object of the
//! same name listing the addresses of the pods the Service selects — ready ones under
//! `addresses`, the others under `notReadyAddresses` — with the ports each Service port
//! resolves to on those pods (Kubernetes' `endpoint-controller`).
//!
//! # Protocol
//! 1. A Service, a pod it selects (before or after a change, see `triggers.rs`), or one of
//!    the Endpoints this controller manages changes: the Service is reconciled.
//! 2. The desired subsets are computed from the pod cache alone (`subsets`), the current
//!    Endpoints is read from the API (never from a cache that may lag our own last write),
//!    and it is created or replaced only when it differs.
//! 3. A second, smaller reconciler deletes the managed Endpoints whose Service is gone;
//!    Kubernetes does the same, as Endpoints carry no ownerReference for the garbage
//!    collector to follow.
//!
//! # Caveats
//! - Services without a selector are left alone: their owner writes their Endpoints.
//! - As in Kubernetes, at most 1,000 addresses are kept; the rest are dropped and the
//!   Endpoints is annotated `endpoints.kubernetes.io/over-capacity: truncated`. The
//!   EndpointSlices (`endpointslice.rs`) have no such limit.

pub(crate) mod pod;
pub(crate) mod triggers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, future};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use self::pod::{Family, HEADLESS_LABEL, families, find_port, is_headless, protocol, selects};
use crate::context::Context;
use crate::error::{Error, retry_soon};

/// The name Kubernetes' controller reports as, and writes into [`MANAGED_BY`].
const CONTROLLER: &str = "endpoint-controller";
/// Marks the Endpoints this controller owns, so that it never deletes hand-written ones.
pub(crate) const MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// How many addresses one Endpoints object holds at most; beyond, readers are expected to
/// use EndpointSlices.
const MAX_CAPACITY: usize = 1000;

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
        recorder: ctx.recorder(CONTROLLER),
        resync: ctx.config.resync,
    });
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY}={CONTROLLER}"));

    let sync = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = sync.store();
    let sync = sync
        .reconcile_on(triggers::service_triggers(
            Api::all(client.clone()),
            pod_writer,
            services,
        ))
        .watches(
            Api::<Endpoints>::all(client.clone()),
            managed.clone(),
            |ep| Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace()?)),
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, retry_soon, state.clone())
        .for_each(|_| future::ready(()));

    let cleanup = Controller::new(Api::<Endpoints>::all(client.clone()), managed)
        .watches(
            Api::<Service>::all(client),
            watcher::Config::default(),
            |svc| Some(ObjectRef::new(&svc.name_any()).within(&svc.namespace()?)),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(delete_if_orphaned, retry_soon, state)
        .for_each(|_| future::ready(()));

    tokio::join!(sync, cleanup);
}

/// Whether the pod cache has been filled once; before that, every Service would look
/// empty and lose its endpoints for a moment after a restart or a change of leader.
pub(crate) fn filled(pods: &Store<Pod>) -> bool {
    pods.wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

async fn reconcile(svc: Arc<Service>, state: Arc<State>) -> Result<Action, Error> {
    if !filled(&state.pods) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let Some(ns) = svc.namespace() else {
        return Ok(Action::await_change());
    };
    if pod::selector(&svc).is_none() {
        return Ok(Action::await_change());
    }
    let selected: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| selects(&svc, p))
        .collect();
    let desired = desired(&svc, &selected);
    let api: Api<Endpoints> = Api::namespaced(state.client.clone(), &ns);
    let current = api.get_opt(&svc.name_any()).await?;
    let Some(write) = converge(current.as_ref(), desired) else {
        return Ok(Action::requeue(state.resync));
    };
    let result = match current {
        None => api.create(&PostParams::default(), &write).await,
        Some(_) => {
            api.replace(&svc.name_any(), &PostParams::default(), &write)
                .await
        }
    };
    if let Err(e) = result {
        report_failure(&state.recorder, &write, &e).await;
        return Err(e.into());
    }
    Ok(Action::requeue(state.resync))
}

/// A Warning on the Endpoints, worded as Kubernetes words it; conflicts are routine and
/// retried at once, so they are not reported.
async fn report_failure(recorder: &Recorder, ep: &Endpoints, e: &kube::Error) {
    if matches!(e, kube::Error::Api(s) if s.code == 409) {
        return;
    }
    let name = ep.name_any();
    let ns = ep.namespace().unwrap_or_default();
    let (reason, note) = if ep.metadata.resource_version.is_none() {
        (
            "FailedToCreateEndpoint",
            format!("Failed to create endpoint for service {ns}/{name}: {e}"),
        )
    } else {
        (
            "FailedToUpdateEndpoint",
            format!("Failed to update endpoint {ns}/{name}: {e}"),
        )
    };
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Endpoints".into()),
        name: Some(name),
        namespace: Some(ns),
        uid: ep.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &reference).await {
        tracing::debug!(%error, "could not record an Event");
    }
}

/// Deletes a managed Endpoints whose Service no longer exists. The Service is read from the
/// API, not a cache, so that one deleted and recreated under the same name is never
/// mistaken for gone.
async fn delete_if_orphaned(ep: Arc<Endpoints>, state: Arc<State>) -> Result<Action, Error> {
    let Some(ns) = ep.namespace() else {
        return Ok(Action::await_change());
    };
    let services: Api<Service> = Api::namespaced(state.client.clone(), &ns);
    if services.get_opt(&ep.name_any()).await?.is_some() {
        return Ok(Action::await_change());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: ep.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<Endpoints>::namespaced(state.client.clone(), &ns)
        .delete(&ep.name_any(), &params)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// The Endpoints `svc` should have, given the pods it selects.
fn desired(svc: &Service, selected: &[Arc<Pod>]) -> Endpoints {
    let mut labels = svc.labels().clone();
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    let mut subsets = subsets(svc, selected);
    let truncated = truncate(&mut subsets, MAX_CAPACITY);
    let annotations =
        truncated.then(|| BTreeMap::from([(OVER_CAPACITY.into(), "truncated".into())]));
    Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            annotations,
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// What to write so that `current` becomes `desired`, or `None` when it already is. An
/// existing object keeps its metadata (resourceVersion included, so a concurrent change
/// makes the write fail and retry) and its annotations other than the capacity mark.
fn converge(current: Option<&Endpoints>, desired: Endpoints) -> Option<Endpoints> {
    let Some(current) = current else {
        return Some(desired);
    };
    let over = |ep: &Endpoints| ep.annotations().get(OVER_CAPACITY).cloned();
    let same = current.subsets.as_deref().unwrap_or_default()
        == desired.subsets.as_deref().unwrap_or_default()
        && current.labels() == desired.labels()
        && over(current) == over(&desired);
    if same {
        return None;
    }
    let mut write = current.clone();
    write.subsets = desired.subsets.clone();
    write.metadata.labels = desired.metadata.labels.clone();
    let mut annotations = current.annotations().clone();
    annotations.remove(OVER_CAPACITY);
    annotations.extend(desired.annotations().clone());
    write.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(write)
}

/// One port of an address, ordered so that equal port sets compare equal.
type PortKey = (Option<String>, i32, String, Option<String>);

/// One pod's address for a Service, with what decides its subset.
struct Served {
    address: EndpointAddress,
    ready: bool,
    ports: BTreeSet<PortKey>,
}

/// The subsets for `svc` (Kubernetes' `syncService` then `RepackSubsets`): one address per
/// publishable pod, ready or not, grouped by the exact set of ports it serves — a pod on
/// which a named `targetPort` does not resolve lands in a subset without that port. A
/// headless Service (`clusterIP: None`) with no ports lists its addresses with no ports.
fn subsets(svc: &Service, selected: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let mut served: Vec<Served> = selected.iter().filter_map(|p| serve(svc, p)).collect();
    served.sort_by(|a, b| {
        let key = |s: &Served| {
            (
                s.address.ip.clone(),
                s.address.target_ref.as_ref().and_then(|t| t.name.clone()),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut by_ports: BTreeMap<BTreeSet<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for s in served {
        let group = by_ports.entry(s.ports).or_default();
        if s.ready { &mut group.0 } else { &mut group.1 }.push(s.address);
    }
    by_ports
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol, app_protocol)| EndpointPort {
                        name,
                        port,
                        protocol: Some(protocol),
                        app_protocol,
                    })
                    .collect()
            }),
        })
        .collect()
}

/// What pod `p` contributes to `svc`'s Endpoints, if anything: nothing when it is not
/// publishable, has no IP of the Service's family, or serves none of its ports.
fn serve(svc: &Service, p: &Pod) -> Option<Served> {
    let spec = svc.spec.as_ref()?;
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    if !pod::is_publishable(p, publish_not_ready) {
        return None;
    }
    let family = families(svc).first().copied().unwrap_or(Family::IPv4);
    let ip = pod::addresses(p, family).into_iter().next()?;
    let ports = spec.ports.as_deref().unwrap_or_default();
    let served: BTreeSet<PortKey> = ports
        .iter()
        .filter_map(|sp| {
            let n = find_port(p, sp)?;
            Some((
                sp.name.clone(),
                n,
                protocol(sp).to_owned(),
                sp.app_protocol.clone(),
            ))
        })
        .collect();
    let portless = ports.is_empty() && spec.cluster_ip.as_deref() == Some("None");
    if served.is_empty() && !portless {
        return None;
    }
    Some(Served {
        address: EndpointAddress {
            ip,
            hostname: pod::hostname(p, svc).map(str::to_owned),
            node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod::target_ref(p)),
        },
        ready: publish_not_ready || pod::is_ready(p),
        ports: served,
    })
}

/// Keeps at most `max` addresses over all subsets (Kubernetes' `truncateEndpoints`): ready
/// addresses first, each subset keeping its share (rounded up) of what is kept. Returns
/// whether anything was dropped.
///
/// 1,200 ready and 300 not ready, `max` 1,000 → the 1,000 kept are all ready ones.
fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= max {
        return false;
    }
    let truncate_ready = ready > max;
    let (budget, total) = if truncate_ready {
        (max, ready)
    } else {
        (max - ready, not_ready)
    };
    let mut left = budget;
    for subset in subsets.iter_mut() {
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let here = count(list);
        let share = (here * budget).div_ceil(total).min(left);
        if let Some(addresses) = list {
            addresses.truncate(share);
            left -= addresses.len();
            if addresses.is_empty() {
                *list = None;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pod::fixtures::{pod, service};
    use super::*;

    fn arcs(pods: Vec<Pod>) -> Vec<Arc<Pod>> {
        pods.into_iter().map(Arc::new).collect()
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_share_a_subset_by_port() {
        let pods = arcs(vec![
            pod("b", "10.0.0.2").build(),
            pod("a", "10.0.0.1").build(),
            pod("c", "10.0.0.3").not_ready().build(),
            pod("d", "10.0.0.4").terminating().build(),
            pod("e", "10.0.0.5").phase("Failed").build(),
            pod("f", "10.0.0.6").without_ip().build(),
        ]);
        let got = subsets(&service(json!("http")), &pods);
        assert_eq!(got.len(), 1);
        assert_eq!(ips(&got[0].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&got[0].not_ready_addresses), ["10.0.0.3"]);
        let port = &got[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
        let a = &got[0].addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert_eq!(a.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
    }

    #[test]
    fn pods_are_grouped_by_the_ports_they_resolve() {
        let pods = arcs(vec![
            pod("a", "10.0.0.1").build(),
            pod("b", "10.0.0.2").port("http", 9000).build(),
            pod("c", "10.0.0.3").port("metrics", 9100).build(),
        ]);
        let got = subsets(&service(json!("http")), &pods);
        let summary: Vec<(i32, Vec<&str>)> = got
            .iter()
            .map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses)))
            .collect();
        assert_eq!(
            summary,
            [(8080, vec!["10.0.0.1"]), (9000, vec!["10.0.0.2"])]
        );
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready() {
        let mut svc = service(json!(8080));
        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let pods = arcs(vec![
            pod("a", "10.0.0.1").not_ready().build(),
            pod("b", "10.0.0.2").terminating().build(),
        ]);
        let got = subsets(&svc, &pods);
        assert_eq!(ips(&got[0].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert!(got[0].not_ready_addresses.is_none());
    }

    #[test]
    fn a_headless_service_without_ports_lists_bare_addresses() {
        let mut svc = service(json!(8080));
        let spec = svc.spec.as_mut().unwrap();
        spec.ports = None;
        spec.cluster_ip = Some("None".into());
        let got = subsets(&svc, &arcs(vec![pod("a", "10.0.0.1").build()]));
        assert_eq!(ips(&got[0].addresses), ["10.0.0.1"]);
        assert!(got[0].ports.is_none());
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        let svc = service(json!("http"));
        let pods = arcs(vec![pod("a", "10.0.0.1").build()]);
        let first = converge(None, desired(&svc, &pods)).expect("created");
        assert_eq!(first.labels()[MANAGED_BY], CONTROLLER);
        assert_eq!(first.labels()["tier"], "front");
        assert!(
            first.labels().contains_key(HEADLESS_LABEL),
            "no cluster IP was allocated"
        );
        let mut stored = first.clone();
        stored.metadata.resource_version = Some("7".into());
        assert!(converge(Some(&stored), desired(&svc, &pods)).is_none());

        let fewer = converge(Some(&stored), desired(&svc, &[])).expect("updated");
        assert_eq!(fewer.metadata.resource_version.as_deref(), Some("7"));
        assert!(fewer.subsets.is_none());
    }

    #[test]
    fn truncation_keeps_ready_addresses_first() {
        let address = |i: usize| EndpointAddress {
            ip: format!("10.0.{}.{}", i / 256, i % 256),
            ..EndpointAddress::default()
        };
        let mut subsets = vec![EndpointSubset {
            addresses: Some((0..8).map(address).collect()),
            not_ready_addresses: Some((8..12).map(address).collect()),
            ports: None,
        }];
        assert!(!truncate(&mut subsets.clone(), 12));
        assert!(truncate(&mut subsets, 10));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 8);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 2);
        assert!(truncate(&mut subsets, 5));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 5);
        assert!(subsets[0].not_ready_addresses.is_none());
    }
}
