//! The node's Service listeners, reconciled level-triggered: whenever the table changes
//! (and every few seconds, to retry addresses that could not be bound), the listeners
//! running are made to match [`ServiceTable::fronts`] — new ones bound, gone ones stopped.
//!
//! Each listener owns its connections (a `JoinSet`): stopping it, because its Service went
//! or the agent shuts down, closes them. A listener asks the table for its targets on every
//! accepted connection, so endpoint changes apply to the next connection without touching
//! the listener.
//!
//! Sockets are bound with `SO_REUSEADDR` and `SO_REUSEPORT`, so that several node agents on
//! one machine (tests, or a host running more than one node) each serve the same ClusterIP:
//! the kernel spreads connections between them, and any of them routes alike.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use super::ProxyConfig;
use super::splice::splice;
use super::table::{Front, ServiceTable};

/// How often addresses that could not be bound are tried again.
const RETRY: Duration = Duration::from_secs(5);
/// Connections a listener queues before accepting them.
const BACKLOG: u32 = 1024;

struct Running {
    stop: CancellationToken,
    task: Id,
}

/// Keeps the listeners in line with the table until `shutdown`.
pub(crate) async fn run(table: ServiceTable, config: ProxyConfig, shutdown: CancellationToken) {
    let mut changes = table.subscribe();
    let mut running: HashMap<Front, Running> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Fronts whose bind failure was reported, so that retries do not repeat the warning.
    let mut failing: HashSet<Front> = HashSet::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        reconcile(
            &table,
            &config,
            &mut running,
            &mut tasks,
            &mut failing,
            &shutdown,
        );
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = changes.changed() => {}
            _ = retry.tick() => {}
            Some(done) = tasks.join_next_with_id() => {
                // Listeners end only when stopped; one that panicked is started again.
                if let Err(e) = done {
                    tracing::error!(error = %e, "a Service listener panicked; restarting it");
                    running.retain(|_, r| r.task != e.id());
                }
            }
        }
    }
    for r in running.values() {
        r.stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
}

fn reconcile(
    table: &ServiceTable,
    config: &ProxyConfig,
    running: &mut HashMap<Front, Running>,
    tasks: &mut JoinSet<()>,
    failing: &mut HashSet<Front>,
    shutdown: &CancellationToken,
) {
    let wanted = table.fronts();
    running.retain(|front, r| {
        let keep = wanted.contains_key(front);
        if !keep {
            tracing::debug!(?front, "Service gone: listener stopped");
            r.stop.cancel();
        }
        keep
    });
    failing.retain(|f| wanted.contains_key(f));
    for (front, service) in wanted {
        if running.contains_key(&front) {
            continue;
        }
        let addr = address(front, config.node_ip);
        match bind(addr) {
            Ok(listener) => {
                failing.remove(&front);
                tracing::debug!(%addr, %service, "listening for a Service");
                let stop = shutdown.child_token();
                let task = tasks
                    .spawn(serve(
                        listener,
                        front,
                        table.clone(),
                        config.connect_timeout,
                        stop.clone(),
                    ))
                    .id();
                running.insert(front, Running { stop, task });
            }
            Err(e) if failing.insert(front) => {
                tracing::warn!(%addr, %service, error = %e, "{}", bind_advice(&e));
            }
            Err(e) => tracing::debug!(%addr, %service, error = %e, "still cannot listen"),
        }
    }
}

fn address(front: Front, node_ip: IpAddr) -> SocketAddr {
    match front {
        Front::Cluster(addr) => addr,
        Front::Node(port) => SocketAddr::new(node_ip, port),
    }
}

/// What an operator can do about a listener that cannot be bound (retried every few seconds).
fn bind_advice(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "cannot listen for this Service: ports below 1024 need the node agent to run as root \
             or with CAP_NET_BIND_SERVICE (or a lower net.ipv4.ip_unprivileged_port_start)"
        }
        io::ErrorKind::AddrNotAvailable => {
            "cannot listen for this Service: the address is not on this machine; ClusterIPs \
             must lie in 127.0.0.0/8 (--service-cluster-ip-range) and --node-ip must be local"
        }
        io::ErrorKind::AddrInUse => {
            "cannot listen for this Service: another program holds this address without \
             SO_REUSEPORT; stop it or choose another port"
        }
        _ => "cannot listen for this Service; retrying",
    }
}

/// A listening socket that other node agents on this machine may share.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections for `front` until `stop`; dropping `conns` on the way out closes
/// every connection still open.
async fn serve(
    listener: TcpListener,
    front: Front,
    table: ServiceTable,
    connect_timeout: Duration,
    stop: CancellationToken,
) {
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = conns.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let targets = table.targets(front);
                    if targets.is_empty() {
                        refuse(stream);
                        continue;
                    }
                    conns.spawn(splice(stream, targets, connect_timeout));
                }
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(?front, error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }
}

/// Closes a connection nothing can serve with a reset, so the client fails at once rather
/// than reading an empty answer.
fn refuse(stream: TcpStream) {
    let _ = stream.set_zero_linger();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend on `ip` (any port, or `port`) that answers every connection with `name`.
    async fn backend(ip: &str, port: u16, name: &'static str, tasks: &mut JoinSet<()>) -> u16 {
        let l = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
            .await
            .unwrap();
        let port = l.local_addr().unwrap().port();
        tasks.spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        port
    }

    async fn read_from(addr: SocketAddr) -> Option<String> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        (!out.is_empty()).then_some(out)
    }

    fn apply(table: &ServiceTable, svc: serde_json::Value, slice: serde_json::Value) {
        table.apply_service(&serde_json::from_value(svc).unwrap());
        table.apply_slice(&serde_json::from_value(slice).unwrap());
    }

    /// Real sockets, no API server: listeners follow the table, spread connections, skip a
    /// refusing endpoint, and close when the Service goes. Addresses lie outside the pod and
    /// Service ranges (127.94/127.95), which the tests of running servers use.
    #[tokio::test]
    async fn listeners_follow_the_table() {
        let mut backends = JoinSet::new();
        let port = backend("127.95.250.1", 0, "one", &mut backends).await;
        backend("127.95.250.2", port, "two", &mut backends).await;
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let node_port = free.local_addr().unwrap().port();
        drop(free);
        let table = ServiceTable::new();
        let shutdown = CancellationToken::new();
        let proxy = tokio::spawn(run(
            table.clone(),
            ProxyConfig::new("127.0.0.1".parse().unwrap()),
            shutdown.clone(),
        ));
        let svc = json!({
            "metadata": {"namespace": "t", "name": "s"},
            "spec": {"type": "NodePort", "clusterIP": "127.94.250.1",
                     "ports": [{"port": 8000, "nodePort": node_port}]},
        });
        apply(
            &table,
            svc.clone(),
            json!({
                "metadata": {"namespace": "t", "name": "s-1",
                             "labels": {"kubernetes.io/service-name": "s"}},
                "addressType": "IPv4",
                "ports": [{"port": port}],
                // The third endpoint refuses: connections go on to the others.
                "endpoints": [{"addresses": ["127.95.250.1"]}, {"addresses": ["127.95.250.2"]},
                              {"addresses": ["127.95.250.3"]}],
            }),
        );
        let vip: SocketAddr = "127.94.250.1:8000".parse().unwrap();
        let node: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), node_port);
        let mut seen = HashSet::new();
        for _ in 0..20 {
            if let Some(name) = read_from(vip).await {
                seen.insert(name);
            }
            if let Some(name) = read_from(node).await {
                seen.insert(name);
            }
            if seen.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, HashSet::from(["one".into(), "two".into()]));
        for _ in 0..6 {
            assert!(read_from(vip).await.is_some(), "a connection was lost");
        }

        table.delete_service(&serde_json::from_value(svc).unwrap());
        let mut closed = false;
        for _ in 0..50 {
            if TcpStream::connect(vip).await.is_err() && TcpStream::connect(node).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(closed, "the listeners outlived their Service");
        shutdown.cancel();
        proxy.await.unwrap();
    }
}
