//! Liveness, readiness and startup probes of one container, with the kubelet's timing rules.
//!
//! A [`Prober`] waits `initialDelaySeconds`, then probes every `periodSeconds` (default 10),
//! each attempt bounded by `timeoutSeconds` (default 1). It publishes a verdict only once a
//! threshold is met: success after `successThreshold` consecutive successes (default 1),
//! failure after `failureThreshold` consecutive failures (default 3). While a threshold holds,
//! the verdict is published again after every probe, so a consumer that ignored a verdict
//! (a liveness failure before the startup probe passed) sees it again later.
//!
//! Handlers: `httpGet` (2xx/3xx is success; HTTPS without certificate verification, as the
//! kubelet does; redirects followed only to the same host) and `tcpSocket` (a connection
//! within the timeout). `exec` probes run in OCI containers through the CRI runtime's
//! ExecSync (exit code 0 is success); a wasm module has no processes to exec, and `grpc`
//! probes are not supported: those fail with a message that says so (logged once per
//! prober), so the container's events tell why.
//!
//! A startup probe stops once it has succeeded: Kubernetes runs it only until the container
//! has started. Every prober also ends when `stop` fires or its verdict receiver is dropped.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which probe of a container this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// The name Kubernetes uses in events ("Liveness probe failed: …").
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// Runs a command in the container within a timeout: its exit code and output, or why it
/// could not run. Given to OCI containers' probers.
pub type ExecProbe = Arc<
    dyn Fn(Vec<String>, Duration) -> BoxFuture<'static, Result<(i32, String), String>>
        + Send
        + Sync,
>;

/// A threshold-confirmed result with the message of the last probe (empty on success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub message: String,
}

/// One probe of one container.
pub struct Prober {
    exec: Option<ExecProbe>,
    kind: ProbeKind,
    probe: Probe,
    pod_ip: IpAddr,
    ports: Vec<ContainerPort>,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

/// How one probe attempt ended.
type Outcome = Result<(), String>;

impl Prober {
    /// `ports` are the container's ports, against which a named probe port is resolved.
    pub fn new(kind: ProbeKind, probe: Probe, pod_ip: IpAddr, ports: Vec<ContainerPort>) -> Prober {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.filter(|v| *v > 0).map_or(default, |v| v as u64))
        };
        let count =
            |v: Option<i32>, default: u32| v.filter(|v| *v > 0).map_or(default, |v| v as u32);
        Prober {
            exec: None,
            kind,
            initial_delay: Duration::from_secs(
                probe.initial_delay_seconds.unwrap_or(0).max(0) as u64
            ),
            period: secs(probe.period_seconds, 10),
            timeout: secs(probe.timeout_seconds, 1),
            // Kubernetes requires 1 for liveness and startup probes.
            success_threshold: match kind {
                ProbeKind::Readiness => count(probe.success_threshold, 1),
                _ => 1,
            },
            failure_threshold: count(probe.failure_threshold, 3),
            probe,
            pod_ip,
            ports,
        }
    }

    /// Lets `exec` probes run, through `exec` (an OCI container's runtime).
    pub fn with_exec(mut self, exec: ExecProbe) -> Prober {
        self.exec = Some(exec);
        self
    }

    /// Probes until `stop`, publishing `Some(true)`/`Some(false)` as thresholds are met
    /// (`None` until the first verdict). See [`Prober::run_verdicts`] for the messages.
    pub async fn run(self, verdict: watch::Sender<Option<bool>>, stop: CancellationToken) {
        let publish = |v: Verdict| {
            verdict.send_replace(Some(v.ok));
        };
        tokio::select! {
            () = self.run_with(publish, stop) => {}
            () = verdict.closed() => {}
        }
    }

    /// As [`Prober::run`], with the message of the probe that decided each verdict (for the
    /// `Unhealthy` event: "Liveness probe failed: HTTP probe failed with statuscode: 500").
    pub async fn run_verdicts(
        self,
        verdict: watch::Sender<Option<Verdict>>,
        stop: CancellationToken,
    ) {
        let publish = |v: Verdict| {
            verdict.send_replace(Some(v));
        };
        tokio::select! {
            () = self.run_with(publish, stop) => {}
            () = verdict.closed() => {}
        }
    }

    async fn run_with(self, mut publish: impl FnMut(Verdict), stop: CancellationToken) {
        let sleep = |d: Duration| {
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = tokio::time::sleep(d) => true,
                    () = stop.cancelled() => false,
                }
            }
        };
        if !sleep(self.initial_delay).await {
            return;
        }
        let mut successes = 0u32;
        let mut failures = 0u32;
        let mut warned = false;
        loop {
            let started = tokio::time::Instant::now();
            let outcome = tokio::select! {
                outcome = self.probe_once(&mut warned) => outcome,
                () = stop.cancelled() => return,
            };
            match outcome {
                Ok(()) => {
                    failures = 0;
                    successes = successes.saturating_add(1);
                    if successes >= self.success_threshold {
                        publish(Verdict {
                            ok: true,
                            message: String::new(),
                        });
                        if self.kind == ProbeKind::Startup {
                            return;
                        }
                    }
                }
                Err(message) => {
                    successes = 0;
                    failures = failures.saturating_add(1);
                    tracing::debug!(kind = self.kind.name(), "probe failed: {message}");
                    if failures >= self.failure_threshold {
                        publish(Verdict { ok: false, message });
                    }
                }
            }
            if !sleep(self.period.saturating_sub(started.elapsed())).await {
                return;
            }
        }
    }

    /// One attempt of the probe's handler, bounded by the timeout.
    async fn probe_once(&self, warned: &mut bool) -> Outcome {
        let unsupported = |what: &str| {
            format!("{what} probes are not supported for wasm containers; use httpGet or tcpSocket")
        };
        if let Some(http) = &self.probe.http_get {
            self.http(http).await
        } else if let Some(tcp) = &self.probe.tcp_socket {
            self.tcp(tcp).await
        } else if let (Some(action), Some(exec)) = (&self.probe.exec, &self.exec) {
            let command = action.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err("the exec probe has no command".to_owned());
            }
            // The runtime bounds the command by the timeout; this bounds the call itself.
            let call = exec(command.clone(), self.timeout);
            match tokio::time::timeout(self.timeout + Duration::from_secs(5), call).await {
                Ok(Ok((0, _))) => Ok(()),
                Ok(Ok((code, output))) => Err(format!(
                    "command {command:?} exited with {code}: {}",
                    output.trim()
                )),
                Ok(Err(e)) => Err(format!("command {command:?} could not run: {e}")),
                Err(_) => Err(format!(
                    "command {command:?} timed out after {:?}",
                    self.timeout
                )),
            }
        } else {
            let message = if self.probe.exec.is_some() {
                unsupported("exec")
            } else if self.probe.grpc.is_some() {
                unsupported("grpc")
            } else {
                "the probe has no handler; set httpGet or tcpSocket".to_owned()
            };
            if !*warned {
                tracing::warn!(kind = self.kind.name(), "{message}");
                *warned = true;
            }
            Err(message)
        }
    }

    async fn tcp(&self, tcp: &TCPSocketAction) -> Outcome {
        let ip = self.host(tcp.host.as_deref()).await?;
        let addr = SocketAddr::new(ip, self.port(&tcp.port)?);
        match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        }
    }

    async fn http(&self, http: &HTTPGetAction) -> Outcome {
        let ip = self.host(http.host.as_deref()).await?;
        let port = self.port(&http.port)?;
        let scheme = match http.scheme.as_deref().unwrap_or("HTTP") {
            s if s.eq_ignore_ascii_case("HTTP") => "http",
            s if s.eq_ignore_ascii_case("HTTPS") => "https",
            other => {
                return Err(format!(
                    "unsupported probe scheme {other:?}; use HTTP or HTTPS"
                ));
            }
        };
        let mut path = http.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let url = format!("{scheme}://{}{path}", SocketAddr::new(ip, port));
        let client =
            client().map_err(|e| format!("couldn't build the probe's HTTP client: {e}"))?;
        let mut request = client.get(&url).timeout(self.timeout);
        let headers = http.http_headers.as_deref().unwrap_or_default();
        let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
        if !has("user-agent") {
            request = request.header("User-Agent", "kube-probe/1.33");
        }
        if !has("accept") {
            request = request.header("Accept", "*/*");
        }
        for h in headers {
            request = request.header(h.name.as_str(), h.value.as_str());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
            } else {
                format!("Get \"{url}\": {}", error_chain(&e))
            }
        })?;
        let status = response.status().as_u16();
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {status}"))
        }
    }

    /// The probe's target host: `host` if given (an IP or a name), else the pod's IP.
    async fn host(&self, host: Option<&str>) -> Result<IpAddr, String> {
        match host.filter(|h| !h.is_empty()) {
            None => Ok(self.pod_ip),
            Some(h) => {
                if let Ok(ip) = h.parse() {
                    return Ok(ip);
                }
                let mut addrs = tokio::net::lookup_host((h, 0))
                    .await
                    .map_err(|e| format!("lookup {h}: {e}"))?;
                addrs
                    .next()
                    .map(|a| a.ip())
                    .ok_or_else(|| format!("lookup {h}: no addresses"))
            }
        }
    }

    /// A port number, or a port name resolved against the container's ports.
    fn port(&self, port: &IntOrString) -> Result<u16, String> {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => match name.parse::<i32>() {
                Ok(n) => n,
                Err(_) => self
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .map(|p| p.container_port)
                    .ok_or_else(|| format!("couldn't find a container port named {name:?}"))?,
            },
        };
        u16::try_from(number)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port number: {number}"))
    }
}

/// "outer: inner: innermost", as Go prints wrapped errors.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// One HTTP client for all probes of the agent: no connection reuse (each probe dials, as
/// the kubelet's probes do), no proxies, no certificate checks.
fn client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let tls = crate::tls::trust_any().map_err(|e| e.to_string())?;
            let redirects = reqwest::redirect::Policy::custom(|attempt| {
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                if attempt.previous().len() >= 10 || !same_host {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            });
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .no_proxy()
                .pool_max_idle_per_host(0)
                .redirect(redirects)
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, HTTPHeader};
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// A prober with test-sized timing.
    fn fast(kind: ProbeKind, probe: Probe, ports: Vec<ContainerPort>) -> Prober {
        let mut p = Prober::new(kind, probe, LOCAL, ports);
        p.period = Duration::from_millis(30);
        p.timeout = Duration::from_millis(300);
        p
    }

    fn tcp_probe(port: u16) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::Int(port.into()),
            }),
            ..Default::default()
        }
    }

    /// Waits (bounded) for the first verdict matching `want`.
    async fn until(
        rx: &mut watch::Receiver<Option<Verdict>>,
        want: impl Fn(&Verdict) -> bool,
    ) -> Verdict {
        let wait = rx.wait_for(|v| v.as_ref().is_some_and(&want));
        let got = tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("verdict in time")
            .expect("prober alive");
        got.clone().unwrap()
    }

    /// An HTTP/1.1 responder answering every request with `status`, counting requests and
    /// keeping the last request's head.
    struct Responder {
        port: u16,
        status: Arc<AtomicU16>,
        hits: Arc<AtomicUsize>,
        last: Arc<Mutex<String>>,
    }

    async fn responder(stop: CancellationToken) -> Responder {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(Mutex::new(String::new()));
        let (s, h, l) = (status.clone(), hits.clone(), last.clone());
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = tokio::select! {
                    c = listener.accept() => c.unwrap(),
                    () = stop.cancelled() => return,
                };
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(m) => n += m,
                    }
                }
                *l.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
                h.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                let extra = if code == 302 {
                    "Location: http://elsewhere.invalid/\r\n"
                } else {
                    ""
                };
                let reply = format!(
                    "HTTP/1.1 {code} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        Responder {
            port,
            status,
            hits,
            last,
        }
    }

    #[tokio::test]
    async fn tcp_probe_succeeds_then_fails_after_threshold() {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        let (tx, mut rx) = watch::channel(None);
        let task = tokio::spawn(
            fast(ProbeKind::Liveness, tcp_probe(port), vec![]).run_verdicts(tx, stop.clone()),
        );
        until(&mut rx, |v| v.ok).await;
        drop(listener);
        let v = until(&mut rx, |v| !v.ok).await;
        assert!(
            v.message.starts_with(&format!("dial tcp 127.0.0.1:{port}")),
            "{}",
            v.message
        );
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn http_probe_status_headers_and_named_port() {
        let stop = CancellationToken::new();
        let server = responder(stop.clone()).await;
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("web".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "X-Probe".into(),
                    value: "yes".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ports = vec![ContainerPort {
            name: Some("web".into()),
            container_port: server.port.into(),
            ..Default::default()
        }];
        let (tx, mut rx) = watch::channel(None);
        let task =
            tokio::spawn(fast(ProbeKind::Readiness, probe, ports).run_verdicts(tx, stop.clone()));
        until(&mut rx, |v| v.ok).await;
        {
            let head = server.last.lock().unwrap().to_lowercase();
            assert!(head.starts_with("get /healthz http/1.1"), "{head}");
            assert!(head.contains("x-probe: yes"), "{head}");
            assert!(head.contains("user-agent: kube-probe/"), "{head}");
        }
        server.status.store(500, Ordering::SeqCst);
        let v = until(&mut rx, |v| !v.ok).await;
        assert_eq!(v.message, "HTTP probe failed with statuscode: 500");
        // A redirect to another host is not followed and counts as success.
        server.status.store(302, Ordering::SeqCst);
        until(&mut rx, |v| v.ok).await;
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn thresholds_gate_the_verdict() {
        let stop = CancellationToken::new();
        let server = responder(stop.clone()).await;
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(server.port.into()),
                ..Default::default()
            }),
            success_threshold: Some(3),
            ..Default::default()
        };
        let (tx, mut rx) = watch::channel(None);
        let task =
            tokio::spawn(fast(ProbeKind::Readiness, probe, vec![]).run_verdicts(tx, stop.clone()));
        until(&mut rx, |v| v.ok).await;
        assert!(
            server.hits.load(Ordering::SeqCst) >= 3,
            "three successes before Ready"
        );
        stop.cancel();
        task.await.unwrap();

        // The plain interface: None until failureThreshold failures, then Some(false).
        let (tx, mut rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let mut p = fast(ProbeKind::Liveness, tcp_probe(1), vec![]);
        p.failure_threshold = 2;
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(p.run(tx, stop.clone()));
        rx.wait_for(|v| v.is_some()).await.unwrap();
        assert_eq!(*rx.borrow(), Some(false));
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "needs two failures"
        );
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn timeouts_and_initial_delay() {
        // Accepts but never answers: the probe times out.
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(port.into()),
                ..Default::default()
            }),
            failure_threshold: Some(1),
            initial_delay_seconds: Some(1),
            ..Default::default()
        };
        let (tx, mut rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let mut p = fast(ProbeKind::Liveness, probe, vec![]);
        p.timeout = Duration::from_millis(100);
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(p.run_verdicts(tx, stop.clone()));
        let v = until(&mut rx, |v| !v.ok).await;
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "initial delay honoured"
        );
        assert!(v.message.contains("deadline exceeded"), "{}", v.message);
        stop.cancel();
        task.await.unwrap();
        drop(listener);
    }

    #[tokio::test]
    async fn exec_probes_fail_with_a_reason_and_startup_stops_after_success() {
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            failure_threshold: Some(1),
            ..Default::default()
        };
        let (tx, mut rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let task =
            tokio::spawn(fast(ProbeKind::Readiness, probe, vec![]).run_verdicts(tx, stop.clone()));
        let v = until(&mut rx, |v| !v.ok).await;
        assert_eq!(
            v.message,
            "exec probes are not supported for wasm containers; use httpGet or tcpSocket"
        );
        stop.cancel();
        task.await.unwrap();

        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, _rx) = watch::channel(None);
        let startup = fast(ProbeKind::Startup, tcp_probe(port), vec![]);
        tokio::time::timeout(
            Duration::from_secs(5),
            startup.run(tx, CancellationToken::new()),
        )
        .await
        .expect("a startup probe ends once it succeeded");
    }

    #[tokio::test]
    async fn https_probe_skips_certificate_checks() {
        let ck = rcgen::generate_simple_self_signed(vec!["nobody.invalid".to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(conn).await.unwrap();
            let mut buf = [0u8; 2048];
            let _ = tls.read(&mut buf).await;
            let reply = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
            tls.write_all(reply).await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(port.into()),
                scheme: Some("HTTPS".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (tx, mut rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let task =
            tokio::spawn(fast(ProbeKind::Readiness, probe, vec![]).run_verdicts(tx, stop.clone()));
        until(&mut rx, |v| v.ok).await;
        stop.cancel();
        task.await.unwrap();
        server.await.unwrap();
    }
}
