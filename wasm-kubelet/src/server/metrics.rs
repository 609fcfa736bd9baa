//! `GET /metrics`: a few gauges in the Prometheus text format, enough to watch an agent's
//! footprint (the density benchmark reads the RSS from here) without a metrics library.

use std::fmt::Write;

use axum::extract::State;
use axum::response::IntoResponse;

use super::State as Shared;

pub(super) async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    let pods_dir = s.data_dir.join("pods");
    let (pod_dirs, rss) = tokio::task::spawn_blocking(move || (count_dirs(&pods_dir), rss_bytes()))
        .await
        .unwrap_or((0, None));
    let mut out = String::new();
    gauge(
        &mut out,
        "wasm_kubelet_pod_directories",
        "Pod directories (pods with logs or volumes) on this node's disk.",
        pod_dirs as u64,
    );
    if let Some(rss) = rss {
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        );
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
    );
}

fn count_dirs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .count()
        })
        .unwrap_or(0)
}

/// The process's resident set, from `VmRSS` in /proc/self/status (in kB there, so no page
/// size is needed). `None` off Linux.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
