//! Which EndpointSlices to create, update and delete so that a Service's slices hold
//! exactly the endpoints of the pods it selects (Kubernetes' `reconciler.go`). Pure: the
//! controller feeds it the Service, the pods and the slices it read, and writes what comes
//! out.
//!
//! # The placement rules
//! 1. Endpoints are grouped by address type and by the exact set of ports they serve; each
//!    group lives in its own slices, of at most `max` endpoints.
//! 2. Existing slices are edited in place: endpoints no longer wanted are dropped, changed
//!    ones rewritten (a pod turning ready flips `ready` where it sits); a slice left empty
//!    is deleted.
//! 3. New endpoints go first into slices being rewritten anyway (fullest first), then into
//!    the unchanged slice they fill best, and only then into new slices — so a pod
//!    arriving costs one write, not a reshuffle.
//! 4. A Service with no endpoints keeps one empty "placeholder" slice, as Kubernetes does.
//! 5. A new slice that would appear while another of the same address type is deleted
//!    reuses the doomed one's name instead (an update rather than a delete and a create).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::endpoints::pod::{self, Family, HEADLESS_LABEL};
use crate::owners;

/// The controller's name, as written into [`MANAGED_BY`].
pub(crate) const CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// Marks the slices this controller owns; others' slices (mirrored, hand-written) are
/// never touched.
pub(crate) const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Names the Service a slice belongs to; readers (kube-proxy, DNS) select slices by it.
pub(crate) const SERVICE_NAME: &str = "kubernetes.io/service-name";

#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Slices without a name yet: created with `generateName`.
    pub create: Vec<EndpointSlice>,
    /// Existing slices, rewritten whole (their resourceVersion guards the write).
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

#[cfg(test)]
impl Plan {
    fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The plan for `svc`, given the pods it selects and the managed slices that carry its
/// name, at most `max` endpoints per slice.
pub(crate) fn plan(
    svc: &Service,
    selected: &[Arc<Pod>],
    existing: Vec<EndpointSlice>,
    max: usize,
) -> Plan {
    let families = pod::families(svc);
    let mut plan = Plan::default();
    let mut by_family: BTreeMap<Family, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        match families.iter().find(|f| f.name() == slice.address_type) {
            Some(f) if owned_by(&slice, svc) => by_family.entry(*f).or_default().push(slice),
            // Another address type, or left by an earlier Service of the same name.
            _ => plan.delete.push(slice),
        }
    }
    for family in families {
        let slices = by_family.remove(&family).unwrap_or_default();
        plan_family(svc, selected, slices, family, max, &mut plan);
    }
    reuse_doomed_names(svc, &mut plan);
    plan
}

/// The labels a slice of `svc` carries: the Service's own, except the reserved ones, plus
/// the reserved ones set as they should be.
pub(crate) fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| ![SERVICE_NAME, MANAGED_BY, HEADLESS_LABEL].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if pod::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME.into(), svc.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    labels
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.owner_references().iter().any(|r| {
        r.kind == "Service" && r.api_version == "v1" && Some(&r.uid) == svc.metadata.uid.as_ref()
    })
}

/// A port set, ordered so that the same ports in another order give the same key.
type PortsKey = Vec<(Option<String>, Option<i32>, Option<String>, Option<String>)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.port,
                p.protocol.clone(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// Who an endpoint is: its pod and addresses. Everything else about it (conditions,
/// node) may change in place.
type EndpointKey = (Option<String>, Option<String>, Vec<String>, Option<String>);

fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let target = ep.target_ref.as_ref();
    let mut addresses = ep.addresses.clone();
    addresses.sort();
    (
        target.and_then(|t| t.namespace.clone()),
        target.and_then(|t| t.name.clone()),
        addresses,
        ep.hostname.clone(),
    )
}

/// The endpoint `pod` is for `svc` in `family`: `serving` is the pod's readiness,
/// `terminating` its deletion, and `ready` is serving and not terminating (or always, with
/// `publishNotReadyAddresses`).
fn endpoint(pod: &Pod, svc: &Service, family: Family) -> Endpoint {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = pod::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: pod::addresses(pod, family),
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod::hostname(pod, svc).map(str::to_owned),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(pod::target_ref(pod)),
        ..Endpoint::default()
    }
}

/// The ports `pod` serves for `svc`, in the Service's order; a port whose `targetPort`
/// does not resolve on this pod is left out.
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(pod::find_port(pod, sp)?),
                protocol: Some(pod::protocol(sp).to_owned()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A slice not yet created, to be named `<service>-<random>` by the API server.
fn new_slice(svc: &Service, ports: Vec<EndpointPort>, family: Family) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(labels(svc)),
            owner_references: Some(vec![owners::controller_ref(svc)]),
            ..ObjectMeta::default()
        },
        address_type: family.name().into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

struct Group {
    ports: Vec<EndpointPort>,
    wanted: BTreeMap<EndpointKey, Endpoint>,
}

fn plan_family(
    svc: &Service,
    selected: &[Arc<Pod>],
    existing: Vec<EndpointSlice>,
    family: Family,
    max: usize,
    plan: &mut Plan,
) {
    let mut groups: BTreeMap<PortsKey, Group> = BTreeMap::new();
    for p in selected.iter().filter(|p| pod::is_publishable(p, true)) {
        let ep = endpoint(p, svc, family);
        if ep.addresses.is_empty() {
            continue;
        }
        let ports = endpoint_ports(svc, p);
        let group = groups.entry(ports_key(&ports)).or_insert_with(|| Group {
            ports,
            wanted: BTreeMap::new(),
        });
        group.wanted.insert(endpoint_key(&ep), ep);
    }

    let existing_count = existing.len();
    let mut by_ports: BTreeMap<PortsKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        by_ports
            .entry(ports_key(slice.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(slice);
    }
    let (created_before, deleted_before) = (plan.create.len(), plan.delete.len());
    for (key, group) in groups {
        let slices = by_ports.remove(&key).unwrap_or_default();
        plan_ports(svc, slices, group, family, max, plan);
    }
    // Port sets no pod serves any more.
    plan.delete.extend(by_ports.into_values().flatten());

    let deleted = plan.delete.len() - deleted_before;
    let created = plan.create.len() - created_before;
    if existing_count == deleted && created == 0 {
        let placeholder = new_slice(svc, Vec::new(), family);
        let doomed = &plan.delete[deleted_before..];
        if deleted == 1 && is_placeholder_of(&doomed[0], &placeholder) {
            plan.delete.pop();
        } else {
            plan.create.push(placeholder);
        }
    }
}

fn is_placeholder_of(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.endpoints.is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
        && slice.address_type == placeholder.address_type
        && slice.labels() == placeholder.labels()
}

/// Rules 2 and 3 for the slices of one port set.
fn plan_ports(
    svc: &Service,
    existing: Vec<EndpointSlice>,
    mut group: Group,
    family: Family,
    max: usize,
    plan: &mut Plan,
) {
    let want_labels = labels(svc);
    let mut updating: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<EndpointSlice> = Vec::new();
    for slice in existing {
        let before = slice.endpoints.len();
        let mut changed = false;
        let mut kept = Vec::with_capacity(before);
        for ep in &slice.endpoints {
            if let Some(want) = group.wanted.remove(&endpoint_key(ep)) {
                changed |= &want != ep;
                kept.push(want);
            }
        }
        let labels_changed = slice.labels() != &want_labels;
        if changed || kept.len() != before {
            if kept.is_empty() {
                plan.delete.push(slice);
            } else {
                let mut slice = slice;
                slice.endpoints = kept;
                slice.metadata.labels = Some(want_labels.clone());
                updating.push(slice);
            }
        } else if labels_changed {
            let mut slice = slice;
            slice.metadata.labels = Some(want_labels.clone());
            updating.push(slice);
        } else {
            unchanged.push(slice);
        }
    }

    let mut remaining = group.wanted.into_values();
    let mut left = remaining.len();
    updating.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
    for slice in &mut updating {
        while left > 0 && slice.endpoints.len() < max {
            slice.endpoints.extend(remaining.next());
            left -= 1;
        }
    }
    while left > 0 {
        let fill = (left < max)
            .then(|| best_fit(&unchanged, left, max))
            .flatten();
        let mut slice = match fill {
            Some(i) => unchanged.swap_remove(i),
            None => new_slice(svc, group.ports.clone(), family),
        };
        while left > 0 && slice.endpoints.len() < max {
            slice.endpoints.extend(remaining.next());
            left -= 1;
        }
        if slice.metadata.name.is_some() {
            updating.push(slice);
        } else {
            plan.create.push(slice);
        }
    }
    plan.update.extend(updating);
}

/// The unchanged slice that `n` more endpoints would fill closest to `max` without
/// overflowing it (Kubernetes' `getSliceToFill`).
fn best_fit(slices: &[EndpointSlice], n: usize, max: usize) -> Option<usize> {
    slices
        .iter()
        .enumerate()
        .filter(|(_, s)| s.endpoints.len() + n <= max)
        .min_by_key(|(_, s)| max - (s.endpoints.len() + n))
        .map(|(i, _)| i)
}

/// Rule 5: turns creates into updates of slices about to be deleted, when both are of the
/// same address type and the doomed slice is this Service's.
fn reuse_doomed_names(svc: &Service, plan: &mut Plan) {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let doomed = &plan.delete[i];
        let last = plan.create.len() - 1;
        if doomed.address_type == plan.create[last].address_type && owned_by(doomed, svc) {
            let doomed = plan.delete.remove(i);
            let mut slice = plan.create.remove(last);
            slice.metadata.generate_name = None;
            slice.metadata.name = doomed.metadata.name;
            slice.metadata.resource_version = doomed.metadata.resource_version;
            slice.metadata.uid = doomed.metadata.uid;
            slice.metadata.annotations = doomed.metadata.annotations;
            plan.update.push(slice);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::endpoints::pod::fixtures::{pod, service};

    fn web() -> Service {
        service(json!("http"))
    }

    fn pods(n: usize) -> Vec<Arc<Pod>> {
        (0..n)
            .map(|i| {
                Arc::new(
                    pod(
                        &format!("p{i:03}"),
                        &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                    )
                    .build(),
                )
            })
            .collect()
    }

    /// What the API server would hand back after the plan was applied.
    fn stored(plan: Plan) -> Vec<EndpointSlice> {
        let mut n = 0;
        plan.create
            .into_iter()
            .map(|mut s| {
                n += 1;
                s.metadata.name = Some(format!("web-{n}"));
                s.metadata.resource_version = Some("1".into());
                s
            })
            .chain(plan.update)
            .collect()
    }

    fn count(slices: &[EndpointSlice]) -> usize {
        slices.iter().map(|s| s.endpoints.len()).sum()
    }

    #[test]
    fn a_new_service_gets_slices_of_at_most_the_maximum() {
        let plan = plan(&web(), &pods(250), vec![], 100);
        assert_eq!(plan.create.len(), 3);
        assert_eq!(count(&plan.create), 250);
        let first = &plan.create[0];
        assert_eq!(first.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(first.address_type, "IPv4");
        assert_eq!(first.labels()[SERVICE_NAME], "web");
        assert_eq!(first.labels()[MANAGED_BY], CONTROLLER);
        assert_eq!(first.labels()["tier"], "front");
        assert_eq!(first.owner_references()[0].uid, "svc-uid");
        assert_eq!(first.owner_references()[0].controller, Some(true));
        let port = &first.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("http"), Some(8080))
        );
        let ep = &first.endpoints[0];
        let c = ep.conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn a_settled_service_needs_no_writes() {
        let existing = stored(plan(&web(), &pods(150), vec![], 100));
        let again = plan(&web(), &pods(150), existing, 100);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_pod_turning_unready_is_rewritten_in_place() {
        let mut all = pods(3);
        let existing = stored(plan(&web(), &all, vec![], 100));
        all[1] = Arc::new(pod("p001", "10.0.0.2").not_ready().build());
        let p = plan(&web(), &all, existing, 100);
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        let ep = p.update[0]
            .endpoints
            .iter()
            .find(|e| e.addresses == ["10.0.0.2"])
            .unwrap();
        let c = ep.conditions.as_ref().unwrap();
        assert_eq!((c.ready, c.serving), (Some(false), Some(false)));
    }

    #[test]
    fn terminating_pods_stay_listed_as_terminating() {
        let all = vec![Arc::new(pod("a", "10.0.0.1").terminating().build())];
        let p = plan(&web(), &all, vec![], 100);
        let c = p.create[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn new_pods_fill_existing_slices_before_new_ones_appear() {
        let existing = stored(plan(&web(), &pods(150), vec![], 100));
        let p = plan(&web(), &pods(170), existing, 100);
        assert!(p.create.is_empty(), "20 more fit in the slice holding 50");
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].endpoints.len(), 70);
    }

    #[test]
    fn a_service_without_pods_keeps_one_placeholder() {
        let p = plan(&web(), &[], vec![], 100);
        assert_eq!(p.create.len(), 1);
        assert!(p.create[0].endpoints.is_empty());
        let existing = stored(p);
        assert!(plan(&web(), &[], existing, 100).is_empty());

        let with_pods = stored(plan(&web(), &pods(2), vec![], 100));
        let emptied = plan(&web(), &[], with_pods, 100);
        assert!(emptied.create.is_empty() && emptied.delete.is_empty());
        assert_eq!(
            emptied.update.len(),
            1,
            "the emptied slice becomes the placeholder"
        );
        assert!(emptied.update[0].endpoints.is_empty());
    }

    #[test]
    fn slices_of_an_earlier_service_of_the_same_name_are_replaced() {
        let mut existing = stored(plan(&web(), &pods(2), vec![], 100));
        existing[0].metadata.owner_references.as_mut().unwrap()[0].uid = "old".into();
        let p = plan(&web(), &pods(2), existing, 100);
        assert_eq!((p.create.len(), p.delete.len()), (1, 1));
    }

    #[test]
    fn labels_follow_the_service() {
        let existing = stored(plan(&web(), &pods(2), vec![], 100));
        let mut relabelled = web();
        relabelled.metadata.labels = Some(BTreeMap::from([("tier".into(), "back".into())]));
        let p = plan(&relabelled, &pods(2), existing, 100);
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].labels()["tier"], "back");
    }
}
