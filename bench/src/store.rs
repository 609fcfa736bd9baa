//! The store suite: acknowledged writes per second with many concurrent writers, on one
//! node and on three, and watch delivery latency to 1,000 watchers.
//!
//! Baselines, measured in the same run:
//! - writes: redb alone, one fsynced transaction per write, which is what a store without
//!   group commit gets at best from the same disk;
//! - watch: none is meaningful on one machine, so the target (p99 under 10 ms) stands alone.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_store::{Precondition, Store, StoreConfig, WatchMessage};
use tokio_util::sync::CancellationToken;

use crate::report::{Baseline, Figure, Report, Target, median, percentile};

const TOKEN: &str = "bench-token";
const VALUE_SIZE: usize = 256;

struct Node {
    store: Store,
    url: String,
    stop: CancellationToken,
}

async fn start_node(dir: &Path) -> anyhow::Result<Node> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let store = Store::open(
        StoreConfig::new(dir, url.clone(), TOKEN),
        reqwest::Client::new(),
    )
    .await?;
    let stop = CancellationToken::new();
    let app = sextant_store::router(store.clone());
    tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });
    Ok(Node { store, url, stop })
}

async fn stop_all(nodes: Vec<Node>) -> anyhow::Result<()> {
    for n in nodes {
        n.stop.cancel();
        n.store.shutdown().await?;
    }
    Ok(())
}

async fn cluster(size: usize, dir: &Path) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for i in 0..size {
        let node = start_node(&dir.join(format!("n{i}"))).await?;
        if i == 0 {
            node.store.bootstrap().await?;
        } else {
            node.store
                .join(
                    &nodes
                        .first()
                        .map(|n: &Node| n.url.clone())
                        .unwrap_or_default(),
                )
                .await?;
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Acknowledged writes per second: `writers` tasks share `total` puts of distinct keys.
async fn write_rate(store: &Store, writers: usize, total: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let n = total / writers;
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                store
                    .put(
                        format!("/bench/{w:04}/{i:06}"),
                        vec![b'x'; VALUE_SIZE],
                        Precondition::None,
                    )
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((total / writers * writers) as f64 / started.elapsed().as_secs_f64())
}

/// redb with one durable transaction per write, one writer.
fn naive_redb_rate(dir: &Path, total: usize) -> anyhow::Result<f64> {
    const T: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kv");
    let db = redb::Database::create(dir.join("naive.redb"))?;
    let started = Instant::now();
    for i in 0..total {
        let txn = db.begin_write()?;
        txn.open_table(T)?.insert(
            format!("/bench/{i:08}").as_str(),
            vec![b'x'; VALUE_SIZE].as_slice(),
        )?;
        txn.commit()?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Milliseconds from the start of a put to its delivery, over every watcher and write.
async fn watch_latencies(
    store: &Store,
    watchers: usize,
    writes: usize,
) -> anyhow::Result<Vec<f64>> {
    let epoch = Instant::now();
    let from = store.revision()?;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut w = store.watch("/watched/", from).await?;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(writes);
            while samples.len() < writes {
                if let WatchMessage::Events(events) = w.next().await? {
                    let now = epoch.elapsed().as_nanos() as u64;
                    for e in events {
                        let sent = u64::from_le_bytes(e.kv.value[..8].try_into()?);
                        samples.push((now - sent) as f64 / 1e6);
                    }
                }
            }
            anyhow::Ok(samples)
        }));
    }
    for i in 0..writes {
        let sent = epoch.elapsed().as_nanos() as u64;
        store
            .put(
                format!("/watched/{i:06}"),
                sent.to_le_bytes().to_vec(),
                Precondition::None,
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

pub async fn run(quick: bool) -> anyhow::Result<Report> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut report = Report::new("store", quick);
    let runs = if quick { 1 } else { 3 };
    let writers = 512;
    let total = if quick { 20_000 } else { 100_000 };

    let mut naive = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        naive.push(naive_redb_rate(
            dir.path(),
            if quick { 300 } else { 1_000 },
        )?);
    }
    let naive = Arc::new(median(&mut naive));

    for (size, target) in [(1usize, 20_000.0), (3, 10_000.0)] {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir()?;
            let nodes = cluster(size, dir.path()).await?;
            rates.push(write_rate(&nodes[0].store, writers, total).await?);
            stop_all(nodes).await?;
        }
        report.figures.push(Figure {
            name: format!(
                "writes/s, {size} node{}, {writers} writers",
                if size == 1 { "" } else { "s" }
            ),
            unit: "writes/s".into(),
            median: median(&mut rates),
            p99: None,
            runs,
            baseline: Some(Baseline {
                name: "redb, fsync per write".into(),
                median: *naive,
            }),
            target: Some(Target::at_least(target)),
        });
    }

    let dir = tempfile::tempdir()?;
    let nodes = cluster(1, dir.path()).await?;
    let watchers = 1000;
    let mut lat = watch_latencies(&nodes[0].store, watchers, if quick { 100 } else { 500 }).await?;
    stop_all(nodes).await?;
    let samples = lat.len();
    report.figures.push(Figure {
        name: format!("watch delivery, {watchers} watchers ({samples} deliveries)"),
        unit: "ms".into(),
        p99: Some(percentile(&mut lat, 99.0)),
        median: median(&mut lat),
        runs: 1,
        baseline: None,
        target: Some(Target::at_most(10.0)),
    });
    Ok(report)
}
