//! The node agent's Service proxy against a real server: a Service's ClusterIP and node
//! port reach its ready endpoints round-robin, an endpoint turned not ready gets no more
//! traffic, one that refuses is skipped, and deleting the Service closes its listeners and
//! their connections.
//!
//! The proxy runs in the test process (`wasm_kubelet::proxy::run`) against `sextant server
//! --disable-agent`; the endpoints are plain TCP servers on pod-range addresses, listed in
//! an EndpointSlice written by hand for a Service without a selector.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::{Server, client, cluster_cidr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wasm_kubelet::proxy::{self, ProxyConfig, ServiceTable};

const WAIT: Duration = Duration::from_secs(30);

/// A backend on `ip:port` answering every HTTP request with `name`.
async fn backend(ip: Ipv4Addr, port: u16, name: &'static str, tasks: &mut JoinSet<()>) -> u16 {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((mut s, _)) = listener.accept().await {
            conns.spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// A GET through `addr`: the body, or `None` when the connection fails or closes unanswered.
async fn get(addr: SocketAddr) -> Option<String> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

async fn gets(addr: SocketAddr, n: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(addr).await);
    }
    out
}

/// Polls `f` until it returns true, for up to [`WAIT`].
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn slice(port: u16, endpoints: &[(Ipv4Addr, bool)]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| json!({"addresses": [ip.to_string()], "conditions": {"ready": ready}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "web-manual", "labels": {
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "test.sextant.dev"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn alternates(replies: &[Option<String>], a: &str, b: &str) -> bool {
    let got: Vec<&str> = replies.iter().map(|r| r.as_deref().unwrap_or("")).collect();
    got == [a, b, a, b] || got == [b, a, b, a]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_traffic_reaches_ready_endpoints_round_robin() {
    let s = Server::start(&[]);
    let client = client(&s).await;
    // Addresses of this server's own: its pod range (no agent runs here, so no pod holds
    // them), a ClusterIP and a node port from its API port, so that tests running side by
    // side never share a listener.
    let api_port: u16 = s.addr.rsplit(':').next().unwrap().parse().unwrap();
    let range: ipnet::Ipv4Net = cluster_cidr(&s.addr).parse().unwrap();
    let pod = |n: u32| Ipv4Addr::from(u32::from(range.network()) + 15 * 256 + n);
    let (ip_a, ip_b, ip_gone) = (pod(250), pod(251), pod(252));
    let cluster_ip = Ipv4Addr::new(127, 96, (api_port >> 8) as u8, api_port as u8);
    let node_port = 30000 + api_port % 2768;

    let mut backends = JoinSet::new();
    let port = backend(ip_a, 0, "a", &mut backends).await;
    backend(ip_b, port, "b", &mut backends).await;

    let table = ServiceTable::new();
    let shutdown = CancellationToken::new();
    let node_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut proxy_task = JoinSet::new();
    proxy_task.spawn(proxy::run(
        client.clone(),
        ProxyConfig::new(node_ip),
        table.clone(),
        shutdown.clone(),
    ));

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "clusterIP": cluster_ip.to_string(), "ports": [
            {"name": "http", "port": 8080, "targetPort": port, "nodePort": node_port}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let created = slices
        .create(
            &PostParams::default(),
            &slice(port, &[(ip_a, true), (ip_b, true)]),
        )
        .await
        .unwrap();

    let vip = SocketAddr::new(cluster_ip.into(), 8080);
    let node = SocketAddr::new(node_ip, node_port);
    until("the ClusterIP to answer", async || get(vip).await.is_some()).await;
    until("the node port to answer", async || {
        get(node).await.is_some()
    })
    .await;
    // Both ways in reach both endpoints, in turn.
    let replies = gets(vip, 4).await;
    assert!(alternates(&replies, "a", "b"), "{replies:?}");
    let replies = gets(node, 4).await;
    assert!(alternates(&replies, "a", "b"), "{replies:?}");
    // The table answers the names a pod may use.
    for host in [
        "web",
        "web.default.svc.cluster.local.",
        &cluster_ip.to_string(),
    ] {
        let to = table.resolve(host, 8080, "default");
        assert!(
            to == Some(SocketAddr::new(ip_a.into(), port))
                || to == Some(SocketAddr::new(ip_b.into(), port)),
            "{host}: {to:?}"
        );
    }
    let listed = table.services_in("default");
    assert!(listed.iter().any(|s| s.name == "web"), "{listed:?}");

    // b turns not ready, and an endpoint that refuses joins: everything goes to a.
    let mut changed = slice(port, &[(ip_a, true), (ip_b, false), (ip_gone, true)]);
    changed.metadata.resource_version = created.metadata.resource_version.clone();
    slices
        .replace("web-manual", &PostParams::default(), &changed)
        .await
        .unwrap();
    let expected = BTreeSet::from([
        SocketAddr::new(ip_a.into(), port),
        SocketAddr::new(ip_gone.into(), port),
    ]);
    until("the slice change to reach the table", async || {
        BTreeSet::from_iter(table.resolve_all("web", 8080, "default")) == expected
    })
    .await;
    for way in [vip, node] {
        let replies = gets(way, 6).await;
        assert!(
            replies.iter().all(|r| r.as_deref() == Some("a")),
            "{way}: {replies:?}"
        );
    }

    // A connection left open when the Service goes is closed with its listener.
    let mut held = TcpStream::connect(vip).await.unwrap();
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    until("the listeners to close", async || {
        TcpStream::connect(vip).await.is_err() && TcpStream::connect(node).await.is_err()
    })
    .await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), held.read(&mut buf))
        .await
        .expect("the held connection stayed open after its Service went");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(table.resolve("web", 8080, "default"), None);

    shutdown.cancel();
    while let Some(done) = proxy_task.join_next().await {
        done.unwrap();
    }
    s.stop();
}
