//! The `kubernetes` Service in `default`, through which pods reach the API server, as every
//! Kubernetes cluster has it: the first address of the Service range, port 443 to the API
//! server's port, and Endpoints that list every control-plane server (the store's voters).
//!
//! Each server ensures it at start-up. The Service is created once and then left alone (a
//! user may change it, as in Kubernetes); the Endpoints are rewritten when the servers'
//! addresses differ from them, so a server that joins adds itself. A server removed from
//! the cluster stays listed until another one starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{Value, json};
use sextant_store::{Op, Precondition, Store, StoreError};

use super::alloc::{ip_key, record};
use super::range::ServiceRanges;
use crate::objects::now_rfc3339;

const SERVICE_KEY: &str = "/registry/core/services/default/kubernetes";
const ENDPOINTS_KEY: &str = "/registry/core/endpoints/default/kubernetes";
/// Rewrites of the Endpoints lost to another server's before giving up (it wrote a newer
/// view of the cluster).
const ENDPOINTS_RETRIES: usize = 5;

/// Creates the Service if it is missing, and brings its Endpoints up to date. `url` is this
/// server's advertised URL (`https://HOST:PORT`).
pub(crate) async fn ensure(
    store: &Store,
    ranges: &ServiceRanges,
    url: &str,
) -> Result<(), StoreError> {
    let port = host_port(url).map_or(443, |(_, port)| port);
    create_service(store, ranges, port).await?;
    write_endpoints(store, url).await
}

async fn create_service(
    store: &Store,
    ranges: &ServiceRanges,
    target_port: u16,
) -> Result<(), StoreError> {
    if store.get(SERVICE_KEY).await?.is_some() {
        return Ok(());
    }
    let ip = ranges.cluster_ip.first().to_string();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "kubernetes", "namespace": "default",
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now_rfc3339(), "generation": 1,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}],
        },
        "status": {"loadBalancer": {}},
    });
    let record_key = ip_key(ranges.cluster_ip.first());
    let ops = vec![
        Op::Put {
            key: SERVICE_KEY.into(),
            value: serde_json::to_vec(&svc).expect("JSON encodes"),
            precondition: Precondition::Absent,
        },
        Op::Put {
            key: record_key.clone(),
            value: record(&svc),
            precondition: Precondition::Absent,
        },
    ];
    match store.txn(ops).await {
        Ok(_) => Ok(()),
        // Another server made it first.
        Err(StoreError::AlreadyExists { key }) if key == SERVICE_KEY => Ok(()),
        Err(StoreError::AlreadyExists { key }) if key == record_key => {
            tracing::warn!(
                address = %ranges.cluster_ip.first(),
                "the first address of --service-cluster-ip-range belongs to another Service, so \
                 the `kubernetes` Service was not created; delete that Service and restart"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn write_endpoints(store: &Store, url: &str) -> Result<(), StoreError> {
    for _ in 0..ENDPOINTS_RETRIES {
        let mut urls: BTreeSet<String> = store.status()?.voters.into_values().collect();
        urls.insert(url.to_owned());
        let subsets = subsets(&urls).await;
        let current = store.get(ENDPOINTS_KEY).await?;
        let (precondition, mut obj) = match &current {
            Some(kv) => {
                let obj: Value = serde_json::from_slice(&kv.value).unwrap_or(json!({}));
                if obj["subsets"] == subsets {
                    return Ok(());
                }
                (Precondition::Revision(kv.mod_revision), obj)
            }
            None => (
                Precondition::Absent,
                json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {
                        "name": "kubernetes", "namespace": "default",
                        "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": now_rfc3339(),
                        // As in Kubernetes: the API server writes these, not a controller.
                        "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                    },
                }),
            ),
        };
        obj["subsets"] = subsets;
        let value = serde_json::to_vec(&obj).expect("JSON encodes");
        match store.put(ENDPOINTS_KEY, value, precondition).await {
            Ok(_) => return Ok(()),
            Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One subset per API port, its servers' addresses sorted: the same servers always give
/// the same Endpoints, so servers starting together agree.
async fn subsets(urls: &BTreeSet<String>) -> Value {
    let mut by_port: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
    for url in urls {
        let Some((host, port)) = host_port(url) else {
            continue;
        };
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(error) => {
                    tracing::warn!(%url, %error, "cannot resolve a control-plane server for the `kubernetes` Endpoints");
                    Vec::new()
                }
            },
        };
        by_port.entry(port).or_default().extend(ips);
    }
    by_port
        .into_iter()
        .filter(|(_, ips)| !ips.is_empty())
        .map(|(port, ips)| {
            let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
            json!({"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        })
        .collect()
}

/// The host and port of `https://HOST[:PORT][/…]` (`[v6]` hosts unbracketed).
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 443,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("https://127.0.0.1:6443"),
            Some(("127.0.0.1".into(), 6443))
        );
        assert_eq!(
            host_port("https://[::1]:7443/x"),
            Some(("::1".into(), 7443))
        );
        assert_eq!(
            host_port("https://api.example"),
            Some(("api.example".into(), 443))
        );
        assert_eq!(host_port("https://:6443"), None);
    }

    #[tokio::test]
    async fn endpoints_group_servers_by_port() {
        let urls = BTreeSet::from([
            "https://127.0.0.2:6443".to_owned(),
            "https://127.0.0.1:6443".to_owned(),
            "https://127.0.0.1:7443".to_owned(),
        ]);
        assert_eq!(
            subsets(&urls).await,
            json!([
                {"addresses": [{"ip": "127.0.0.1"}, {"ip": "127.0.0.2"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 7443, "protocol": "TCP"}]},
            ])
        );
    }
}
