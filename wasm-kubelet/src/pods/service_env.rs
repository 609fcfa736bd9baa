//! The environment variables Kubernetes gives every container for the Services of its
//! namespace (docker-links style), so that workloads written for Kubernetes find their
//! Services the same way here:
//!
//! ```text
//! BACKEND_SERVICE_HOST=127.96.0.12        BACKEND_PORT=tcp://127.96.0.12:80
//! BACKEND_SERVICE_PORT=80                 BACKEND_PORT_80_TCP=tcp://127.96.0.12:80
//! BACKEND_SERVICE_PORT_HTTP=80            BACKEND_PORT_80_TCP_PROTO=tcp
//!                                         BACKEND_PORT_80_TCP_PORT=80
//!                                         BACKEND_PORT_80_TCP_ADDR=127.96.0.12
//! ```
//!
//! Only Services with a ClusterIP get them (not headless or ExternalName ones); the
//! `kubernetes` Service of `default` is added to every namespace's pods. A pod with
//! `enableServiceLinks: false` gets only the `kubernetes` ones, as in Kubernetes. The
//! container's own env wins over these.

use k8s_openapi::api::core::v1::Pod;

use crate::proxy::ServiceInfo;

/// The variables for `services` (the pod's namespace's, plus `kubernetes` from `default`).
pub fn vars(pod: &Pod, services: &[ServiceInfo]) -> Vec<(String, String)> {
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut out = Vec::new();
    for svc in services {
        let is_master = svc.namespace == "default" && svc.name == "kubernetes";
        if !links && !is_master {
            continue;
        }
        let Some(ip) = svc.cluster_ip else { continue };
        let prefix = svc.name.to_uppercase().replace('-', "_");
        let Some(first) = svc.ports.first() else {
            continue;
        };
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in &svc.ports {
            if !p.name.is_empty() {
                let name = p.name.to_uppercase().replace('-', "_");
                out.push((format!("{prefix}_SERVICE_PORT_{name}"), p.port.to_string()));
            }
        }
        let proto = |p: &str| p.to_lowercase();
        out.push((
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto(&first.protocol), first.port),
        ));
        for p in &svc.ports {
            let base = format!("{prefix}_PORT_{}_{}", p.port, p.protocol.to_uppercase());
            out.push((
                base.clone(),
                format!("{}://{ip}:{}", proto(&p.protocol), p.port),
            ));
            out.push((format!("{base}_PROTO"), proto(&p.protocol)));
            out.push((format!("{base}_PORT"), p.port.to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// `service` vars laid under the container's own `env`: a name the container sets keeps
/// its value.
pub fn merge(service: Vec<(String, String)>, env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = service
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .collect();
    out.extend(env);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ServicePortInfo;

    fn svc(ns: &str, name: &str, ip: Option<&str>, ports: &[(&str, u16)]) -> ServiceInfo {
        ServiceInfo {
            namespace: ns.into(),
            name: name.into(),
            type_: "ClusterIP".into(),
            cluster_ip: ip.map(|i| i.parse().unwrap()),
            ports: ports
                .iter()
                .map(|(n, p)| ServicePortInfo {
                    name: (*n).into(),
                    port: *p,
                    protocol: "TCP".into(),
                    node_port: None,
                    target_port: None,
                })
                .collect(),
        }
    }

    #[test]
    fn links_like_kubernetes() {
        let pod = Pod::default();
        let vars = vars(
            &pod,
            &[svc(
                "ns",
                "my-backend",
                Some("127.96.0.9"),
                &[("http", 80), ("", 9090)],
            )],
        );
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MY_BACKEND_SERVICE_HOST"), Some("127.96.0.9"));
        assert_eq!(get("MY_BACKEND_SERVICE_PORT"), Some("80"));
        assert_eq!(get("MY_BACKEND_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(get("MY_BACKEND_PORT"), Some("tcp://127.96.0.9:80"));
        assert_eq!(
            get("MY_BACKEND_PORT_9090_TCP"),
            Some("tcp://127.96.0.9:9090")
        );
        assert_eq!(get("MY_BACKEND_PORT_9090_TCP_ADDR"), Some("127.96.0.9"));
        assert_eq!(get("MY_BACKEND_PORT_80_TCP_PROTO"), Some("tcp"));
    }

    #[test]
    fn headless_and_disabled_links_get_nothing_but_the_master() {
        let pod = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                enable_service_links: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let vars = vars(
            &pod,
            &[
                svc("ns", "headless", None, &[("", 80)]),
                svc("ns", "web", Some("127.96.0.3"), &[("", 80)]),
                svc(
                    "default",
                    "kubernetes",
                    Some("127.96.0.1"),
                    &[("https", 443)],
                ),
            ],
        );
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"KUBERNETES_SERVICE_HOST"));
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("WEB_") || n.starts_with("HEADLESS_"))
        );
    }

    #[test]
    fn the_container_env_wins() {
        let merged = merge(
            vec![("A".into(), "svc".into()), ("B".into(), "svc".into())],
            vec![("A".into(), "mine".into())],
        );
        assert_eq!(
            merged,
            vec![("B".into(), "svc".into()), ("A".into(), "mine".into())]
        );
    }
}
