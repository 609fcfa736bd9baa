//! The api suite: what a client sees of the API server, measured against the release
//! `sextant server --disable-agent` run as a child process on a fresh data dir, through
//! kube-rs over HTTPS with the admin kubeconfig (the client users' tools are built on).
//!
//! 1. The floor, in the same run: a `GET /healthz` round trip with the same client, the
//!    cost of HTTPS, routing and authentication with no store behind it. Every latency
//!    below is given as a ratio to it, every rate to `/healthz` requests per second.
//! 2. Latency, one call at a time: create, get, update (PUT) and delete of one ConfigMap
//!    (256 B of data), and a list of a namespace of 100 ConfigMaps, each cycle
//!    interleaved with a floor request so both see the same machine.
//! 3. Throughput: ConfigMap creates per second from 64 clients (each its own kube client
//!    and connection, one request at a time), against `/healthz` requests per second
//!    from the same clients.
//! 4. Watch: from the start of a create call to each of 100 watchers on the namespace
//!    receiving its ADDED event, one create at a time.
//! 5. Big lists, on a second fresh server: N pods created by 64 clients (they name a
//!    scheduler that does not exist, so the in-process scheduler leaves them alone and they
//!    stay Pending), then, once the server is idle again, a full LIST of all pods in one
//!    request (decoded by kube-rs, and as raw bytes) and a paginated one (limit=500).
//!
//! Targets are Kubernetes' API call latency SLOs (sig-scalability, api_call_latency.md):
//! p99 ≤ 1 s for calls on a single object, ≤ 30 s for lists. Kubernetes states no SLO for
//! watch latency or throughput.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::report::{Baseline, Figure, Report, latency_figure, median, ms};
use crate::server::{Server, sextant_binary};

/// Kubernetes' SLO for single-object calls (p99).
const SINGLE_SLO_MS: f64 = 1_000.0;
/// Kubernetes' SLO for lists, namespace- or cluster-scoped (p99).
const LIST_SLO_MS: f64 = 30_000.0;
const FLOOR: &str = "GET /healthz";
const FLOOR_RATE: &str = "GET /healthz/s, same clients";
/// Cycles run before measuring, so connections, caches and allocators are warm.
const WARM_UP: usize = 10;
/// ConfigMaps that stay in the latency namespace; with the one being measured, a list
/// returns 100.
const FILLERS: usize = 99;
const CLIENTS: usize = 64;
const THROUGHPUT_RUNS: usize = 3;
const WATCHERS: usize = 100;
const LIST_RUNS: usize = 3;
const PAGE: u32 = 500;
/// A scheduler no one runs: pods naming it are never bound, and cost the in-process
/// scheduler nothing.
const NO_SCHEDULER: &str = "bench-unscheduled";
/// How long any one wait may take before the suite gives up.
const WAIT: Duration = Duration::from_secs(60);

struct Sizes {
    /// Calls per operation in the latency section, creates in the watch section.
    calls: usize,
    /// ConfigMaps per throughput run.
    creates: usize,
    /// Pods in the big-list section.
    pods: usize,
}

pub async fn run(quick: bool) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sextant = sextant_binary()?;
    let sizes = if quick {
        Sizes {
            calls: 100,
            creates: 2_000,
            pods: 10_000,
        }
    } else {
        Sizes {
            calls: 500,
            creates: 10_000,
            pods: 100_000,
        }
    };
    let mut report = Report::new("api", quick);

    let server = Server::start(&sextant, &["--disable-agent"]).await?;
    let floor = latency(&server, sizes.calls, &mut report).await?;
    let floor_rate = throughput(&server, sizes.creates, &mut report).await?;
    watch(&server, sizes.calls, floor, &mut report).await?;
    server.stop().await;

    let server = Server::start(&sextant, &["--disable-agent"]).await?;
    big_lists(&server, sizes.pods, floor, floor_rate, &mut report).await?;
    server.stop().await;
    Ok(report)
}

/// One `GET /healthz` through `client`: the floor every figure is measured against.
async fn healthz(client: &kube::Client) -> anyhow::Result<()> {
    let request = http::Request::get("/healthz").body(Vec::new())?;
    client.request_text(request).await?;
    Ok(())
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn config_map(name: &str, version: usize) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"value": format!("{version:0256}")},
    }))?)
}

/// A pod that stays Pending: it names a scheduler no one runs.
fn pending_pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "schedulerName": NO_SCHEDULER,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "file:///bench/none.wasm"}],
        },
    }))?)
}

/// Milliseconds `f` took.
async fn timed<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<(T, f64)> {
    let start = Instant::now();
    let value = f.await?;
    Ok((value, ms(start.elapsed())))
}

/// Section 2 (and the floor): one call at a time; returns the floor's median in ms.
async fn latency(server: &Server, n: usize, report: &mut Report) -> anyhow::Result<f64> {
    const NS: &str = "bench-latency";
    let client = &server.client;
    create_namespace(client, NS).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    for i in 0..FILLERS {
        cms.create(&pp, &config_map(&format!("filler-{i:03}"), 0)?)
            .await?;
    }

    let [
        mut floor,
        mut create,
        mut get,
        mut list,
        mut update,
        mut delete,
    ]: [Vec<f64>; 6] = Default::default();
    for i in 0..WARM_UP + n {
        let name = format!("one-{i:05}");
        let new = config_map(&name, 0)?;
        let (_, t_floor) = timed(healthz(client)).await?;
        let (created, t_create) = timed(async { Ok(cms.create(&pp, &new).await?) }).await?;
        let (_, t_get) = timed(async { Ok(cms.get(&name).await?) }).await?;
        let (listed, t_list) = timed(async { Ok(cms.list(&ListParams::default()).await?) }).await?;
        anyhow::ensure!(
            listed.items.len() == FILLERS + 1,
            "the list returned {} ConfigMaps, not {}",
            listed.items.len(),
            FILLERS + 1
        );
        let mut changed = created;
        changed.data = config_map(&name, 1)?.data;
        let (_, t_update) = timed(async { Ok(cms.replace(&name, &pp, &changed).await?) }).await?;
        let (_, t_delete) =
            timed(async { Ok(cms.delete(&name, &DeleteParams::default()).await?) }).await?;
        if i >= WARM_UP {
            floor.push(t_floor);
            create.push(t_create);
            get.push(t_get);
            list.push(t_list);
            update.push(t_update);
            delete.push(t_delete);
        }
    }

    let floor_median = median(&mut floor.clone());
    let base = Some((FLOOR, floor_median));
    report.figures.push(latency_figure(
        "GET /healthz round trip (the floor)".into(),
        floor,
        None,
        None,
    ));
    for (what, samples, target) in [
        ("create one ConfigMap", create, SINGLE_SLO_MS),
        ("get one ConfigMap", get, SINGLE_SLO_MS),
        ("list a namespace of 100 ConfigMaps", list, LIST_SLO_MS),
        ("update (PUT) one ConfigMap", update, SINGLE_SLO_MS),
        ("delete one ConfigMap", delete, SINGLE_SLO_MS),
    ] {
        report
            .figures
            .push(latency_figure(what.into(), samples, base, Some(target)));
    }
    Ok(floor_median)
}

/// `CLIENTS` kube clients for the server, each with its own connection, already connected.
async fn clients(server: &Server) -> anyhow::Result<Vec<kube::Client>> {
    let clients = (0..CLIENTS)
        .map(|_| kube::Client::try_from(server.config.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    futures::future::try_join_all(clients.iter().map(healthz)).await?;
    Ok(clients)
}

/// Runs `op(client, i)` for every `i < total`, client `k` taking `k`, `k + CLIENTS`, …
/// one after the other, all clients at once; returns calls per second.
async fn rate<F, Fut>(clients: &[kube::Client], total: usize, op: F) -> anyhow::Result<f64>
where
    F: Fn(kube::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let stride = clients.len();
    let mut tasks = JoinSet::new();
    for (k, client) in clients.iter().enumerate() {
        let (client, op) = (client.clone(), op.clone());
        tasks.spawn(async move {
            for i in (k..total).step_by(stride) {
                op(client.clone(), i).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn rate_figure(name: String, mut runs: Vec<f64>, floor: f64) -> Figure {
    Figure {
        name,
        unit: "/s".into(),
        median: median(&mut runs),
        p99: None,
        runs: runs.len(),
        baseline: Some(Baseline {
            name: FLOOR_RATE.into(),
            median: floor,
        }),
        target: None,
    }
}

/// Section 3: creates/s from `CLIENTS` clients; returns the floor's median rate.
async fn throughput(server: &Server, total: usize, report: &mut Report) -> anyhow::Result<f64> {
    let clients = clients(server).await?;
    let (mut floors, mut creates) = (Vec::new(), Vec::new());
    for run in 0..THROUGHPUT_RUNS {
        floors.push(
            rate(&clients, total, |client, _| async move {
                healthz(&client).await
            })
            .await?,
        );
        let ns = format!("bench-throughput-{run}");
        create_namespace(&server.client, &ns).await?;
        creates.push(
            rate(&clients, total, move |client, i| {
                let ns = ns.clone();
                async move {
                    Api::<ConfigMap>::namespaced(client, &ns)
                        .create(
                            &PostParams::default(),
                            &config_map(&format!("cm-{i:06}"), 0)?,
                        )
                        .await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    let floor = median(&mut floors.clone());
    report.figures.push(Figure {
        baseline: None,
        ..rate_figure(
            format!("GET /healthz/s, {CLIENTS} clients, {total} requests (the floor)"),
            floors,
            floor,
        )
    });
    report.figures.push(rate_figure(
        format!("ConfigMap creates/s, {CLIENTS} clients, {total} creates"),
        creates,
        floor,
    ));
    Ok(floor)
}

/// One watcher: opens its watch from `rv`, says so on `ready`, then reports every ADDED
/// event's name and arrival time on `seen` until `stop`.
async fn watcher(
    api: Api<ConfigMap>,
    rv: String,
    ready: oneshot::Sender<()>,
    seen: mpsc::Sender<(String, Instant)>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
    let _ = ready.send(());
    futures::pin_mut!(stream);
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            event = stream.try_next() => event?,
        };
        match event {
            Some(WatchEvent::Added(cm)) => {
                let at = Instant::now();
                let name = cm.metadata.name.unwrap_or_default();
                if seen.send((name, at)).await.is_err() {
                    return Ok(());
                }
            }
            Some(WatchEvent::Error(e)) => anyhow::bail!("a watch failed: {e:?}"),
            Some(_) => {}
            None => anyhow::bail!("a watch ended before the run did"),
        }
    }
}

/// Section 4: create→ADDED at each of `WATCHERS` watchers, `n` creates one at a time.
async fn watch(server: &Server, n: usize, floor: f64, report: &mut Report) -> anyhow::Result<()> {
    const NS: &str = "bench-watch";
    create_namespace(&server.client, NS).await?;
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), NS);
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (tx, mut rx) = mpsc::channel(WATCHERS * 2);
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut ready = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        let (ready_tx, ready_rx) = oneshot::channel();
        ready.push(ready_rx);
        tasks.spawn(watcher(
            cms.clone(),
            rv.clone(),
            ready_tx,
            tx.clone(),
            stop.clone(),
        ));
    }
    drop(tx);
    for r in ready {
        if r.await.is_err() {
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            anyhow::bail!("a watcher ended before its watch started");
        }
    }

    let mut samples = Vec::with_capacity(n * WATCHERS);
    let pp = PostParams::default();
    for i in 0..WARM_UP + n {
        let name = format!("w-{i:05}");
        let new = config_map(&name, 0)?;
        let start = Instant::now();
        cms.create(&pp, &new).await?;
        for _ in 0..WATCHERS {
            let (seen, at) = tokio::select! {
                m = rx.recv() => m.context("every watcher ended")?,
                Some(done) = tasks.join_next() => {
                    done??;
                    anyhow::bail!("a watcher ended before the run did");
                }
                () = tokio::time::sleep(WAIT) => {
                    anyhow::bail!("not every watcher saw {name} within {WAIT:?}");
                }
            };
            anyhow::ensure!(
                seen == name,
                "a watcher saw {seen} while {name} was awaited"
            );
            if i >= WARM_UP {
                samples.push(ms(at - start));
            }
        }
    }
    stop.cancel();
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    report.figures.push(latency_figure(
        format!(
            "create→ADDED at each of {WATCHERS} watchers, {n} creates one at a time \
             ({} deliveries)",
            n * WATCHERS
        ),
        samples,
        Some((FLOOR, floor)),
        None,
    ));
    Ok(())
}

/// Waits until the process used under 10% of a core for a second (or `WAIT` passed):
/// the server has digested a burst (its controllers' watch events) before a list is timed.
async fn wait_idle(server: &Server) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    let mut last = cpu_seconds(server.process.pid())?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds(server.process.pid())?;
        if now - last < 0.1 {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

/// User plus system CPU time of `pid`, in seconds (Linux clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .context("unexpected /proc/PID/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}

/// Section 5: `total` pending pods, then full and paginated lists of them.
async fn big_lists(
    server: &Server,
    total: usize,
    floor: f64,
    floor_rate: f64,
    report: &mut Report,
) -> anyhow::Result<()> {
    const NS: &str = "bench-list";
    create_namespace(&server.client, NS).await?;
    let clients = clients(server).await?;
    let created = rate(&clients, total, |client, i| async move {
        Api::<Pod>::namespaced(client, NS)
            .create(&PostParams::default(), &pending_pod(&format!("p-{i:06}"))?)
            .await?;
        Ok(())
    })
    .await?;
    drop(clients);
    report.figures.push(rate_figure(
        format!("pod creates/s, {CLIENTS} clients, {total} pods (filling the lists below)"),
        vec![created],
        floor_rate,
    ));
    wait_idle(server).await?;
    let rss_stored = server.process.rss_kib()?;

    let client = &server.client;
    let pods: Api<Pod> = Api::all(client.clone());
    let (mut full, mut raw, mut paged) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    let mut pages = 0;
    for _ in 0..LIST_RUNS {
        let (listed, t) = timed(async { Ok(pods.list(&ListParams::default()).await?) }).await?;
        anyhow::ensure!(
            listed.items.len() == total,
            "the list returned {} pods, not {total}",
            listed.items.len()
        );
        drop(listed);
        full.push(t);

        let (body, t) = timed(async {
            let request = http::Request::get("/api/v1/pods").body(Vec::new())?;
            Ok(client.request_text(request).await?)
        })
        .await?;
        bytes = body.len();
        drop(body);
        raw.push(t);

        let (count, t) = timed(async {
            let (mut count, mut token) = (0, None::<String>);
            pages = 0;
            loop {
                let mut lp = ListParams::default().limit(PAGE);
                if let Some(t) = token.take() {
                    lp = lp.continue_token(&t);
                }
                let page = pods.list(&lp).await?;
                pages += 1;
                count += page.items.len();
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(c) => token = Some(c),
                    None => return Ok(count),
                }
            }
        })
        .await?;
        anyhow::ensure!(count == total, "the pages held {count} pods, not {total}");
        paged.push(t);
    }
    let rss = server.process.rss_kib()?;

    let base = Some((FLOOR, floor));
    let target = Some(LIST_SLO_MS);
    report.figures.push(latency_figure(
        format!("LIST all {total} pods, one request, decoded by kube-rs"),
        full,
        base,
        target,
    ));
    report.figures.push(latency_figure(
        format!(
            "LIST all {total} pods, one request, raw body ({:.0} MB of JSON)",
            bytes as f64 / 1e6
        ),
        raw,
        base,
        target,
    ));
    report.figures.push(latency_figure(
        format!("LIST all {total} pods in pages of {PAGE} ({pages} requests), decoded"),
        paged,
        base,
        target,
    ));
    for (when, kib) in [("once created", rss_stored), ("after the lists", rss)] {
        report.figures.push(Figure {
            name: format!("server RSS with {total} pods, {when}"),
            unit: "MB".into(),
            median: kib as f64 * 1024.0 / 1e6,
            p99: None,
            runs: 1,
            baseline: None,
            target: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_grows_with_work() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).unwrap();
        // Spin until our CPU time moves: wall time alone says little on a shared machine.
        let start = Instant::now();
        let mut x = 0u64;
        while cpu_seconds(pid).unwrap() < before + 0.05 && start.elapsed() < WAIT {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(cpu_seconds(pid).unwrap() >= before + 0.05);
    }

    #[test]
    fn bench_pods_name_a_scheduler_no_one_runs() {
        let pod = pending_pod("p").unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some(NO_SCHEDULER));
        assert!(spec.node_name.is_none());
    }
}
