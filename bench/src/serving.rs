//! The serving suite (issue #7): how fast a wasm HTTP service answers, against a native
//! Rust server measured in the same run by the same load generator.
//!
//! 1. The release `sextant server --node-name bench-node` with its node agent runs the
//!    `http-echo` example (`examples/http-echo/manifests/deployment.yaml`) as a Deployment
//!    of 1 replica, its Service made `type: NodePort`.
//! 2. The baseline: this bench binary re-run as `bench --native-echo ADDR POD` (a hidden
//!    mode, [`native_echo`]), a hyper server in its own process and runtime answering
//!    `GET /` with the same headers and body bytes as the wasm pod.
//! 3. Load: [`CONNECTIONS`] keep-alive HTTP/1.1 connections (hyper's client), each sending
//!    `GET /` one request at a time for a fixed time, against the native server, the wasm
//!    pod through `127.0.0.1:NODEPORT` (the agent's userspace proxy) and the wasm pod
//!    straight at `podIP:8080`, in turn, a few rounds; requests/s per round (median) and
//!    each request's latency (p50, p99 over all rounds).
//! 4. First request: pods made from the Deployment's template (without its readiness probe,
//!    whose `/healthz` requests would come first, and with labels the Service does not
//!    select), one at a time; once a pod is Ready, one request on a new connection to
//!    `podIP:8080` is timed, then a second one on another new connection (the baseline).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::pods::{Binaries, start_server};
use crate::report::{Baseline, Figure, Report, Target, latency_figure, median, ms};
use crate::server::{Process, Server, free_addr};

/// The hidden argument that turns the bench binary into the native echo server.
pub const NATIVE_ECHO_ARG: &str = "--native-echo";
/// Concurrent keep-alive connections of the load generator.
pub const CONNECTIONS: usize = 32;
/// issue #7: the wasm service should reach at least half the native server's throughput.
const THROUGHPUT_TARGET: f64 = 0.5;
const NAMESPACE: &str = "default";
/// The http-echo manifest of the checkout being measured.
fn manifest_path() -> std::path::PathBuf {
    crate::server::crate_dir().join("../examples/http-echo/manifests/deployment.yaml")
}
/// How long any one wait may take before the suite gives up.
const WAIT: Duration = Duration::from_secs(120);
/// Load before the measured rounds, so connections, pools and caches are warm.
const WARM_UP: Duration = Duration::from_secs(1);

struct Sizes {
    duration: Duration,
    rounds: usize,
    fresh_pods: usize,
}

pub async fn run(quick: bool) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    anyhow::ensure!(
        !cfg!(debug_assertions),
        "the serving suite measures release builds: run `cargo run --release -p bench -- serving`"
    );
    let sizes = if quick {
        Sizes {
            duration: Duration::from_secs(3),
            rounds: 1,
            fresh_pods: 3,
        }
    } else {
        Sizes {
            duration: Duration::from_secs(10),
            rounds: 3,
            fresh_pods: 5,
        }
    };
    let bins = Binaries::find()?;
    let server = start_server(&bins, true, &[]).await?;
    ensure_release(&server, &bins.sextant)?;
    let (node_port, pod_name, pod_ip) = deploy(&server, &bins.examples).await?;
    let node_addr: SocketAddr = format!("127.0.0.1:{node_port}").parse()?;
    let direct_addr: SocketAddr = format!("{pod_ip}:8080").parse()?;
    wait_answers(node_addr, "the http-echo NodePort").await?;

    let native_addr: SocketAddr = free_addr()?.parse()?;
    let log = server.dir.path().join("native-echo.log");
    // `/proc/self/exe`: this very binary even if cargo has since replaced the file.
    let child = Command::new("/proc/self/exe")
        .args([NATIVE_ECHO_ARG, &native_addr.to_string(), &pod_name])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("cannot re-run the bench binary as the native echo server")?;
    let mut native = Process::new(child, "native echo server");
    let answered = wait_answers(native_addr, "the native echo server").await;
    native.ensure_alive(&log)?;
    answered?;
    same_body(native_addr, node_addr).await?;

    let targets = [
        ("native", native_addr),
        ("nodeport", node_addr),
        ("direct", direct_addr),
    ];
    for (_, addr) in targets {
        load(addr, CONNECTIONS, WARM_UP).await?;
    }
    let mut results: [Load; 3] = Default::default();
    for _ in 0..sizes.rounds {
        for (i, (_, addr)) in targets.iter().enumerate() {
            let round = load(*addr, CONNECTIONS, sizes.duration).await?;
            results[i].add(round);
        }
    }
    native.stop(Duration::from_secs(5)).await;
    let [native_load, node_load, direct_load] = results;

    let (first, second) = first_requests(&server, sizes.fresh_pods).await?;
    server.stop().await;

    let mut report = Report::new("serving", quick);
    let secs = sizes.duration.as_secs();
    let native_rate = median(&mut native_load.rates.clone());
    let node_rate = median(&mut node_load.rates.clone());
    let native_latency = median(&mut native_load.latencies.clone());
    let rate_figure = |name: String, load: &Load| Figure {
        name,
        unit: "req/s".into(),
        median: median(&mut load.rates.clone()),
        p99: None,
        runs: load.rates.len(),
        baseline: Some(Baseline {
            name: "native hyper server, same load".into(),
            median: native_rate,
        }),
        target: None,
    };
    report.figures.push(Figure {
        baseline: None,
        ..rate_figure(
            format!("requests/s, native hyper echo ({CONNECTIONS} keep-alive connections, {secs} s a round)"),
            &native_load,
        )
    });
    report.figures.push(rate_figure(
        format!(
            "requests/s, http-echo wasm pod via 127.0.0.1:NodePort ({CONNECTIONS} connections)"
        ),
        &node_load,
    ));
    report.figures.push(rate_figure(
        format!(
            "requests/s, http-echo wasm pod straight at podIP:8080 ({CONNECTIONS} connections)"
        ),
        &direct_load,
    ));
    report.figures.push(Figure {
        name: "throughput of the wasm pod via NodePort / native".into(),
        unit: "× native".into(),
        median: node_rate / native_rate,
        p99: None,
        runs: node_load.rates.len(),
        baseline: None,
        target: Some(Target::at_least(THROUGHPUT_TARGET)),
    });
    let native_base = Some(("native hyper server", native_latency));
    report.figures.push(latency_figure(
        "request latency, native hyper echo".into(),
        native_load.latencies,
        None,
        None,
    ));
    report.figures.push(latency_figure(
        "request latency, http-echo wasm pod via NodePort".into(),
        node_load.latencies,
        native_base,
        None,
    ));
    report.figures.push(latency_figure(
        "request latency, http-echo wasm pod at podIP:8080".into(),
        direct_load.latencies,
        native_base,
        None,
    ));
    let second_median = median(&mut second.clone());
    report.figures.push(latency_figure(
        "first request to a fresh Ready pod (new connection to podIP:8080)".into(),
        first,
        Some(("its second request, new connection", second_median)),
        None,
    ));
    let errors = native_load.errors + node_load.errors + direct_load.errors;
    report.figures.push(Figure {
        name: "failed requests or connections (whole run)".into(),
        unit: "requests".into(),
        median: errors as f64,
        p99: None,
        runs: 1,
        baseline: None,
        target: Some(Target::at_most(0.0)),
    });
    Ok(report)
}

/// Fails unless the server process runs the release binary this suite meant to start.
fn ensure_release(server: &Server, sextant: &Path) -> anyhow::Result<()> {
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.process.pid()))
        .context("cannot read the server's /proc/PID/exe")?;
    let expected = sextant.canonicalize()?;
    anyhow::ensure!(
        exe == expected && expected.parent().is_some_and(|d| d.ends_with("release")),
        "the server runs {}, not the release build {}: build it with \
         `cargo build --release -p sextant`",
        exe.display(),
        expected.display()
    );
    Ok(())
}

/// Creates the http-echo Deployment (1 replica) and its Service as a NodePort; returns the
/// node port and the Ready pod's name and IP.
async fn deploy(server: &Server, examples: &Path) -> anyhow::Result<(u16, String, String)> {
    let manifest = manifest_path();
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?
        .replace("SEXTANT_EXAMPLES", &examples.display().to_string());
    let mut node_port = None;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut value = serde_json::Value::deserialize(doc)?;
        match value["kind"].as_str() {
            Some("Deployment") => {
                value["spec"]["replicas"] = json!(1);
                let d: Deployment = serde_json::from_value(value)?;
                Api::<Deployment>::namespaced(server.client.clone(), NAMESPACE)
                    .create(&PostParams::default(), &d)
                    .await?;
            }
            Some("Service") => {
                value["spec"]["type"] = json!("NodePort");
                let s: Service = serde_json::from_value(value)?;
                let s = Api::<Service>::namespaced(server.client.clone(), NAMESPACE)
                    .create(&PostParams::default(), &s)
                    .await?;
                node_port = s
                    .spec
                    .and_then(|s| s.ports)
                    .and_then(|p| p.first().and_then(|p| p.node_port));
            }
            other => anyhow::bail!("unexpected kind {other:?} in {}", manifest.display()),
        }
    }
    let node_port = node_port.context("the Service got no nodePort")?;
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), NAMESPACE);
    let params = ListParams::default().labels("app=http-echo");
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = pods.list(&params).await?.items.into_iter().find_map(|p| {
            let ip = ready_ip(&p)?;
            Some((p.metadata.name?, ip))
        });
        if let Some((name, ip)) = ready {
            return Ok((u16::try_from(node_port)?, name, ip));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no http-echo pod was Ready within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pod's IP once its Ready condition is True.
fn ready_ip(p: &Pod) -> Option<String> {
    let status = p.status.as_ref()?;
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| status.pod_ip.clone()).flatten()
}

/// Section 4: `n` fresh pods, each timed on its first and second request.
async fn first_requests(server: &Server, n: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), NAMESPACE);
    let template = deployments
        .get("http-echo")
        .await?
        .spec
        .context("the Deployment has no spec")?
        .template;
    let mut spec = template.spec.context("the template has no pod spec")?;
    for c in &mut spec.containers {
        c.readiness_probe = None;
    }
    let pods: Api<Pod> = Api::namespaced(server.client.clone(), NAMESPACE);
    let (mut first, mut second) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let name = format!("fresh-{i}");
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "bench-fresh"}},
        }))?;
        pod.spec = Some(spec.clone());
        pods.create(&PostParams::default(), &pod).await?;
        let deadline = Instant::now() + WAIT;
        let ip = loop {
            if let Some(ip) = ready_ip(&pods.get(&name).await?) {
                break ip;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "pod {name} was not Ready within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let addr: SocketAddr = format!("{ip}:8080").parse()?;
        first.push(
            one_request(addr)
                .await
                .with_context(|| format!("the first request to Ready pod {name} at {addr}"))?,
        );
        second.push(one_request(addr).await?);
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await?;
    }
    Ok((first, second))
}

/// Polls `GET /` on new connections until one answers 200.
async fn wait_answers(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match one_request(addr).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} at {addr} did not answer GET / within 60 s: {last:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails unless both servers answer `GET /` with the same body bytes.
async fn same_body(native: SocketAddr, wasm: SocketAddr) -> anyhow::Result<()> {
    let (a, b) = (fetch(native).await?, fetch(wasm).await?);
    anyhow::ensure!(
        a == b,
        "the native echo answers {:?} but the wasm pod {:?}",
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b)
    );
    Ok(())
}

/// A new connection to `addr`, with its hyper driver.
async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<(
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    hyper::client::conn::http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>,
)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?)
}

/// One `GET /` on `sender`; the body, if the status was 200.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
) -> anyhow::Result<Bytes> {
    sender.ready().await?;
    let request = http::Request::get("/")
        .header(http::header::HOST, addr.to_string())
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status == http::StatusCode::OK, "GET / answered {status}");
    Ok(body)
}

/// One `GET /` on a new connection: its body.
async fn fetch(addr: SocketAddr) -> anyhow::Result<Bytes> {
    let (mut sender, conn) = connect(addr).await?;
    tokio::select! {
        r = conn => {
            r?;
            anyhow::bail!("{addr} closed the connection before answering")
        }
        body = get(&mut sender, addr) => body,
    }
}

/// Milliseconds for one `GET /` on a new connection, connecting included.
async fn one_request(addr: SocketAddr) -> anyhow::Result<f64> {
    let start = Instant::now();
    fetch(addr).await?;
    Ok(ms(start.elapsed()))
}

/// What the load generator saw over one or more rounds.
#[derive(Default)]
struct Load {
    /// Requests/s of each round.
    rates: Vec<f64>,
    /// Each answered request's latency, ms.
    latencies: Vec<f64>,
    /// Failed requests and connections.
    errors: u64,
}

impl Load {
    fn add(&mut self, round: Load) {
        self.rates.extend(round.rates);
        self.latencies.extend(round.latencies);
        self.errors += round.errors;
    }
}

/// `connections` keep-alive connections sending `GET /` to `addr`, one request at a time
/// each, until `duration` is over; one round.
async fn load(addr: SocketAddr, connections: usize, duration: Duration) -> anyhow::Result<Load> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(connection(addr, deadline));
    }
    let mut round = Load::default();
    while let Some(done) = tasks.join_next().await {
        let (latencies, errors) = done?;
        round.latencies.extend(latencies);
        round.errors += errors;
    }
    let elapsed = start.elapsed().as_secs_f64();
    round.rates.push(round.latencies.len() as f64 / elapsed);
    Ok(round)
}

/// One client connection of [`load`]: requests until `deadline`, reconnecting after an
/// error; the latencies of the answered requests and the count of failures.
async fn connection(addr: SocketAddr, deadline: Instant) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    while Instant::now() < deadline {
        let (mut sender, conn) = match connect(addr).await {
            Ok(c) => c,
            Err(_) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let requests = async {
            while Instant::now() < deadline {
                let start = Instant::now();
                match get(&mut sender, addr).await {
                    Ok(_) => latencies.push(ms(start.elapsed())),
                    Err(_) => return true,
                }
            }
            false
        };
        let failed = tokio::select! {
            _ = conn => true,
            failed = requests => failed,
        };
        if failed {
            errors += 1;
        }
    }
    (latencies, errors)
}

/// `bench --native-echo ADDR POD`: a hyper HTTP/1.1 server on ADDR answering every request
/// as http-echo does for a pod named POD (same status, headers and body bytes), in this
/// process's own runtime, until killed.
pub fn native_echo(addr: &str, pod: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pod: &'static str = Box::leak(pod.to_owned().into_boxed_str());
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        let mut connections = JoinSet::new();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |r| echo(r, pod));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

/// The http-echo example's answer to anything but its special paths.
async fn echo(
    request: http::Request<hyper::body::Incoming>,
    pod: &'static str,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = format!(
        "method: {method}\npath: {path}\npod: {pod}\nbody: {}\n",
        String::from_utf8_lossy(&body)
    );
    let response = http::Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header("x-pod-name", pod)
        .header(http::header::CONTENT_LENGTH, text.len())
        .body(Full::new(Bytes::from(text)))
        .expect("static headers are valid");
    Ok(response)
}
