//! How one pod becomes an endpoint of one Service: the rules the Endpoints and the
//! EndpointSlice controllers share (Kubernetes' `endpointslice/util` and `FindPort`), so the
//! two views of a Service never disagree about which pods back it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pods;

/// The label `kube-proxy` and DNS read to tell a Service without a virtual IP.
pub(crate) const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The selector of a Service whose endpoints the controllers maintain. `None` means hands
/// off: a Service without a selector gets the Endpoints its owner writes by hand, and an
/// `ExternalName` Service is a DNS alias with no endpoints at all. An empty selector counts
/// as none, as it does in Kubernetes once stored.
pub(crate) fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `service` selects `pod`: same namespace, and every selector label present.
pub(crate) fn selects(service: &Service, pod: &Pod) -> bool {
    service.metadata.namespace == pod.metadata.namespace
        && selector(service).is_some_and(|wanted| {
            let labels = pod.metadata.labels.as_ref();
            wanted
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
}

/// Whether the pod has an address worth publishing (`ShouldPodBeInEndpoints`): it has not
/// finished, it has an IP, and — unless the caller keeps terminating pods — it is not
/// being deleted.
pub(crate) fn is_publishable(pod: &Pod, include_terminating: bool) -> bool {
    !pods::is_terminal(pod)
        && pod_ips(pod).next().is_some()
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IPs: `status.podIPs`, or the older single `status.podIP`.
fn pod_ips(pod: &Pod) -> impl Iterator<Item = &str> {
    let status = pod.status.as_ref();
    let many: Vec<&str> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    let single = status
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty() && many.is_empty());
    many.into_iter().chain(single)
}

/// An IP family, as Services name them (`spec.ipFamilies`) and EndpointSlices
/// (`addressType`) spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Family {
    IPv4,
    IPv6,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::IPv4 => "IPv4",
            Family::IPv6 => "IPv6",
        }
    }

    fn of(ip: &str) -> Option<Family> {
        match ip.parse::<IpAddr>().ok()? {
            IpAddr::V4(_) => Some(Family::IPv4),
            IpAddr::V6(_) => Some(Family::IPv6),
        }
    }
}

/// The families a Service serves: its `spec.ipFamilies`, else the family of its cluster IP,
/// else IPv4. Kubernetes guesses both families for a headless Service with no
/// `ipFamilies`; Sextant's pod network is IPv4 only, so that guess would only add an empty
/// IPv6 slice.
pub(crate) fn families(service: &Service) -> Vec<Family> {
    let spec = service.spec.as_ref();
    let mut families: Vec<Family> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::IPv4),
            "IPv6" => Some(Family::IPv6),
            _ => None,
        })
        .collect();
    families.dedup();
    if families.is_empty() {
        let from_cluster_ip = spec
            .and_then(|s| s.cluster_ip.as_deref())
            .and_then(Family::of);
        families.push(from_cluster_ip.unwrap_or(Family::IPv4));
    }
    families
}

/// The pod's addresses in `family`.
pub(crate) fn addresses(pod: &Pod, family: Family) -> Vec<String> {
    pod_ips(pod)
        .filter(|ip| Family::of(ip) == Some(family))
        .map(str::to_owned)
        .collect()
}

/// Whether the Service has no virtual IP (`clusterIP: None`, or none allocated).
pub(crate) fn is_headless(service: &Service) -> bool {
    let ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    matches!(ip, None | Some("" | "None"))
}

/// Whether the pod's DNS hostname is published under this Service: the pod asked for it
/// with `hostname` and a `subdomain` naming the Service.
pub(crate) fn hostname<'a>(pod: &'a Pod, service: &Service) -> Option<&'a str> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = pod.metadata.namespace == service.metadata.namespace;
    (same_namespace && spec.subdomain.as_deref() == service.metadata.name.as_deref())
        .then_some(hostname)
}

pub(crate) fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    pods::is_ready(pod)
}

/// The protocol of a Service port, `TCP` when unset (the API default).
pub(crate) fn protocol(port: &ServicePort) -> &str {
    port.protocol.as_deref().unwrap_or("TCP")
}

/// The pod's port behind a Service port (Kubernetes' `FindPort`): a numeric `targetPort` as
/// it is; a named one looked up among the pod's container ports of the same protocol
/// (sidecars included); an unset one defaults to the Service port. `None` when the pod
/// has no port of that name, in which case the pod is left out of that port's endpoints.
///
/// `targetPort: "http"` with a container port `{name: http, containerPort: 8080}` → 8080;
/// `targetPort: 9090` → 9090 whatever the pod declares.
pub(crate) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None | Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::String(name)) if name.is_empty() => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol(port)
                })
                .map(|p| p.container_port)
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Pods and Services that read as prose, for the controllers' unit tests.

    use k8s_openapi::api::core::v1::{Pod, Service};
    use serde_json::{Value, json};

    /// A running, ready pod `name` in `default` labelled `app=web`, with IP `ip` on node
    /// `n1` and a container port `http: 8080`.
    pub(crate) fn pod(name: &str, ip: &str) -> PodBuilder {
        PodBuilder(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                     "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }))
    }

    pub(crate) struct PodBuilder(Value);

    impl PodBuilder {
        pub(crate) fn not_ready(mut self) -> Self {
            self.0["status"]["conditions"][0]["status"] = json!("False");
            self
        }
        pub(crate) fn terminating(mut self) -> Self {
            self.0["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            self
        }
        pub(crate) fn phase(mut self, phase: &str) -> Self {
            self.0["status"]["phase"] = json!(phase);
            self
        }
        pub(crate) fn without_ip(mut self) -> Self {
            self.0["status"]["podIP"] = Value::Null;
            self.0["status"]["podIPs"] = Value::Null;
            self
        }
        pub(crate) fn port(mut self, name: &str, port: i32) -> Self {
            self.0["spec"]["containers"][0]["ports"] =
                json!([{"name": name, "containerPort": port, "protocol": "TCP"}]);
            self
        }
        pub(crate) fn label(mut self, k: &str, v: &str) -> Self {
            self.0["metadata"]["labels"][k] = json!(v);
            self
        }
        pub(crate) fn build(self) -> Pod {
            serde_json::from_value(self.0).unwrap()
        }
    }

    /// Service `web` in `default` selecting `app=web`, port 80 → `targetPort`.
    pub(crate) fn service(target_port: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": target_port}]},
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixtures::{pod, service};
    use super::*;

    #[test]
    fn target_ports_resolve_by_number_name_or_default() {
        let p = pod("a", "10.0.0.1").build();
        let port = |target| service(target).spec.unwrap().ports.unwrap().remove(0);
        assert_eq!(find_port(&p, &port(json!(9090))), Some(9090));
        assert_eq!(find_port(&p, &port(json!("http"))), Some(8080));
        assert_eq!(find_port(&p, &port(json!("grpc"))), None);
        assert_eq!(find_port(&p, &port(json!(null))), Some(80));
        let mut udp = port(json!("http"));
        udp.protocol = Some("UDP".into());
        assert_eq!(
            find_port(&p, &udp),
            None,
            "a named port must match the protocol too"
        );
    }

    #[test]
    fn only_live_pods_with_an_ip_are_published() {
        assert!(is_publishable(&pod("a", "10.0.0.1").build(), false));
        assert!(is_publishable(
            &pod("a", "10.0.0.1").not_ready().build(),
            false
        ));
        assert!(!is_publishable(
            &pod("a", "10.0.0.1").without_ip().build(),
            false
        ));
        assert!(!is_publishable(
            &pod("a", "10.0.0.1").phase("Succeeded").build(),
            true
        ));
        assert!(!is_publishable(
            &pod("a", "10.0.0.1").terminating().build(),
            false
        ));
        assert!(is_publishable(
            &pod("a", "10.0.0.1").terminating().build(),
            true
        ));
    }

    #[test]
    fn selection_needs_a_selector_and_the_same_namespace() {
        let svc = service(json!(8080));
        assert!(selects(&svc, &pod("a", "10.0.0.1").build()));
        assert!(!selects(
            &svc,
            &pod("a", "10.0.0.1").label("app", "db").build()
        ));
        let mut elsewhere = pod("a", "10.0.0.1").build();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!selects(&svc, &elsewhere));
        let mut no_selector = svc.clone();
        no_selector.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(!selects(&no_selector, &pod("a", "10.0.0.1").build()));
        let mut alias = svc;
        alias.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(selector(&alias).is_none());
    }

    #[test]
    fn families_come_from_the_service_else_ipv4() {
        let mut svc = service(json!(8080));
        assert_eq!(families(&svc), vec![Family::IPv4]);
        svc.spec.as_mut().unwrap().cluster_ip = Some("fd00::1".into());
        assert_eq!(families(&svc), vec![Family::IPv6]);
        svc.spec.as_mut().unwrap().ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
        assert_eq!(families(&svc), vec![Family::IPv4, Family::IPv6]);
        let p = pod("a", "10.0.0.1").build();
        assert_eq!(addresses(&p, Family::IPv4), vec!["10.0.0.1"]);
        assert!(addresses(&p, Family::IPv6).is_empty());
    }
}
