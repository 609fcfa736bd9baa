//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log as `kubectl logs`
//! shows it, read from the CRI-format files in the pod's directory
//! (`DATA_DIR/pods/<ns>_<pod>_<uid>/<container>/<run>.log`).
//!
//! The current run is the highest-numbered file, `previous=true` reads the one before.
//! Partial entries are joined into their line; `follow=true` polls the file for appended
//! lines and ends when the run is over (a newer run's file appears or the file goes away),
//! when the client leaves (the body is dropped), or when the agent shuts down.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

use super::State as Shared;
use crate::logs::Entry;

/// How often a followed log file is checked for new lines.
const POLL: Duration = Duration::from_millis(100);

/// The query `kubectl logs` sends (through the API server), as strings: Kubernetes accepts
/// `true`/`1` for booleans, and a bad number is a 400 that names the parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
    limit_bytes: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Options {
    follow: bool,
    tail: Option<usize>,
    timestamps: bool,
    previous: bool,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | "True" | "TRUE"))
}

fn number(name: &str, v: &Option<String>) -> Result<Option<i64>, String> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{name} must be an integer, not {s:?}")),
    }
}

impl LogQuery {
    fn options(&self, now: DateTime<Utc>) -> Result<Options, String> {
        let since_seconds = number("sinceSeconds", &self.since_seconds)?;
        let since_time = match self.since_time.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("sinceTime must be an RFC 3339 time: {e}"))?
                    .with_timezone(&Utc),
            ),
        };
        if since_seconds.is_some() && since_time.is_some() {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into());
        }
        let since = match since_seconds {
            Some(s) if s < 1 => return Err("sinceSeconds must be greater than 0".into()),
            Some(s) => Some(now - chrono::Duration::seconds(s)),
            None => since_time,
        };
        let limit = match number("limitBytes", &self.limit_bytes)? {
            Some(n) if n < 1 => return Err("limitBytes must be greater than 0".into()),
            n => n.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        Ok(Options {
            follow: truthy(&self.follow),
            // A negative tail is kubectl's "all lines".
            tail: number("tailLines", &self.tail_lines)?.and_then(|n| usize::try_from(n).ok()),
            timestamps: truthy(&self.timestamps),
            previous: truthy(&self.previous),
            since,
            limit,
        })
    }
}

pub(super) async fn container_logs(
    State(s): State<Shared>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    let opts = match query.options(Utc::now()) {
        Ok(o) => o,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let data_dir = s.data_dir.clone();
    let located = {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || {
            let run = locate(&data_dir, &namespace, &pod, &container, opts.previous)?;
            let initial = initial(&run.path, &opts)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")))?;
            Ok::<_, (StatusCode, String)>((run, initial))
        })
        .await
    };
    let (run, (chunk, renderer, offset)) = match located {
        Ok(Ok(found)) => found,
        Ok(Err((code, message))) => return (code, message).into_response(),
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the log failed: {e}"),
            )
                .into_response();
        }
    };
    let headers = [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !opts.follow || renderer.done() {
        return (headers, chunk).into_response();
    }
    let follow = Follow {
        run,
        offset,
        renderer,
        shutdown: s.shutdown.clone(),
    };
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(chunk)) });
    let rest = futures::stream::unfold(follow, |mut f| async move {
        f.next_chunk().await.map(|c| (Ok(c), f))
    });
    (headers, Body::from_stream(first.chain(rest))).into_response()
}

/// One run of a container: its log file, and where newer runs would appear.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    container_dir: PathBuf,
    number: i64,
}

/// Finds the log file to read: the newest pod directory of `namespace`/`pod` (a pod
/// re-created under the same name gets a new uid), the container's highest-numbered run, or
/// the run before it for `previous`.
fn locate(
    data_dir: &Path,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<Run, (StatusCode, String)> {
    let waiting = || {
        (
            StatusCode::NOT_FOUND,
            format!("container {container:?} in pod {pod:?} is waiting to start"),
        )
    };
    if [namespace, pod, container]
        .iter()
        .any(|s| s.is_empty() || s.contains(['/', '\\', '_']) || s.starts_with('.'))
    {
        return Err((
            StatusCode::BAD_REQUEST,
            "namespace, pod and container must be Kubernetes names".into(),
        ));
    }
    let prefix = format!("{namespace}_{pod}_");
    let pod_dir = std::fs::read_dir(data_dir.join("pods"))
        .map_err(|_| waiting())?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|uid| !uid.is_empty() && !uid.contains('_'))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .ok_or_else(waiting)?;
    let container_dir = pod_dir.join(container);
    let runs = runs(&container_dir);
    let number = if previous {
        match runs.as_slice() {
            [.., before, _] => *before,
            _ => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                ));
            }
        }
    } else {
        *runs.last().ok_or_else(waiting)?
    };
    Ok(Run {
        path: container_dir.join(format!("{number}.log")),
        container_dir,
        number,
    })
}

/// The run numbers that have a log file in `container_dir`, in ascending order.
fn runs(container_dir: &Path) -> Vec<i64> {
    let mut runs: Vec<i64> = std::fs::read_dir(container_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<i64>()
                .ok()
        })
        .collect();
    runs.sort_unstable();
    runs
}

/// The response's first chunk: the file's complete lines after `tail` and `since`, the
/// renderer to go on with, and the offset after the last complete line.
fn initial(path: &Path, opts: &Options) -> std::io::Result<(Vec<u8>, Renderer, u64)> {
    let bytes = std::fs::read(path)?;
    // A line still being written (no newline yet) is left for the follow loop.
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let entries = parse(&bytes[..complete]);
    let start = match opts.tail {
        Some(n) => tail_start(&entries, n),
        None => 0,
    };
    let mut renderer = Renderer::new(opts);
    let mut out = Vec::new();
    for e in &entries[start..] {
        if !renderer.push(e, &mut out) {
            break;
        }
    }
    Ok((out, renderer, complete as u64))
}

fn parse(bytes: &[u8]) -> Vec<Entry> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(Entry::parse)
        .collect()
}

/// The index of the first entry of the last `n` lines (a line is partial entries and the full
/// one that ends them; a trailing partial counts as a line).
fn tail_start(entries: &[Entry], n: usize) -> usize {
    if n == 0 {
        return entries.len();
    }
    let mut lines = 0;
    for i in (0..entries.len()).rev() {
        // Entry i begins a line if the one before it ended one.
        if i == 0 || !entries[i - 1].partial {
            lines += 1;
            if lines == n {
                return i;
            }
        }
    }
    0
}

/// Turns entries into `kubectl logs` output: partials joined, an optional RFC3339Nano
/// timestamp at the start of each line, lines before `since` dropped, `limitBytes` honoured.
#[derive(Debug)]
struct Renderer {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    left: Option<usize>,
    at_line_start: bool,
    skipping: bool,
}

impl Renderer {
    fn new(opts: &Options) -> Renderer {
        Renderer {
            timestamps: opts.timestamps,
            since: opts.since,
            left: opts.limit,
            at_line_start: true,
            skipping: false,
        }
    }

    fn done(&self) -> bool {
        self.left == Some(0)
    }

    /// Appends `e` to `out`; false once the byte limit is reached.
    fn push(&mut self, e: &Entry, out: &mut Vec<u8>) -> bool {
        if self.done() {
            return false;
        }
        if self.at_line_start {
            self.skipping = self.since.is_some_and(|since| e.time < since);
        }
        if !self.skipping {
            let mut piece = Vec::with_capacity(e.content.len() + 40);
            if self.at_line_start && self.timestamps {
                piece.extend_from_slice(
                    e.time
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                        .as_bytes(),
                );
                piece.push(b' ');
            }
            piece.extend_from_slice(e.content.as_bytes());
            if !e.partial {
                piece.push(b'\n');
            }
            if let Some(left) = &mut self.left {
                piece.truncate(*left);
                *left -= piece.len();
            }
            out.extend_from_slice(&piece);
        }
        self.at_line_start = !e.partial;
        !self.done()
    }
}

/// The state of a follow stream after its first chunk.
struct Follow {
    run: Run,
    offset: u64,
    renderer: Renderer,
    shutdown: CancellationToken,
}

impl Follow {
    /// Waits for the next lines appended to the run's file; `None` when the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.renderer.done() {
                return None;
            }
            let fresh = match self.read_new().await {
                Ok(b) => b,
                // The pod's directory was removed: the pod is gone, and so is its log.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => {
                    tracing::warn!(path = %self.run.path.display(), error = %e, "cannot follow a container log");
                    return None;
                }
            };
            if !fresh.is_empty() {
                let mut out = Vec::new();
                for e in parse(&fresh) {
                    if !self.renderer.push(&e, &mut out) {
                        break;
                    }
                }
                if !out.is_empty() {
                    return Some(Bytes::from(out));
                }
                continue;
            }
            // Nothing new: a newer run means this one has ended and its file is complete.
            let dir = self.run.container_dir.clone();
            let current = self.run.number;
            let newer = tokio::task::spawn_blocking(move || {
                runs(&dir).last().is_some_and(|&n| n > current)
            })
            .await
            .unwrap_or(true);
            if newer {
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.shutdown.cancelled() => return None,
            }
        }
    }

    /// The complete lines appended since the last read (a torn last line waits).
    async fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut file = tokio::fs::File::open(&self.run.path).await?;
        let len = file.metadata().await?.len();
        if len <= self.offset {
            return Ok(Vec::new());
        }
        file.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut buf = Vec::with_capacity((len - self.offset) as usize);
        file.read_to_end(&mut buf).await?;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(complete);
        self.offset += complete as u64;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Stream;

    fn entry(secs: i64, partial: bool, content: &str) -> Entry {
        Entry {
            time: DateTime::from_timestamp(secs, 5).unwrap(),
            stream: Stream::Stdout,
            partial,
            content: content.into(),
        }
    }

    fn render(entries: &[Entry], opts: &Options) -> String {
        let start = opts.tail.map_or(0, |n| tail_start(entries, n));
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        for e in &entries[start..] {
            if !r.push(e, &mut out) {
                break;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn partials_join_and_tail_counts_whole_lines() {
        let es = [
            entry(1, false, "one"),
            entry(2, true, "tw"),
            entry(3, false, "o"),
            entry(4, true, "thr"),
        ];
        assert_eq!(render(&es, &Options::default()), "one\ntwo\nthr");
        let tail2 = Options {
            tail: Some(2),
            ..Options::default()
        };
        assert_eq!(render(&es, &tail2), "two\nthr");
        let tail0 = Options {
            tail: Some(0),
            ..Options::default()
        };
        assert_eq!(render(&es, &tail0), "");
        let ts = Options {
            timestamps: true,
            tail: Some(2),
            ..Options::default()
        };
        assert_eq!(
            render(&es, &ts),
            "1970-01-01T00:00:02.000000005Z two\n1970-01-01T00:00:04.000000005Z thr"
        );
    }

    #[test]
    fn since_and_limit_bytes() {
        let es = [entry(1, false, "old"), entry(10, false, "new")];
        let since = Options {
            since: DateTime::from_timestamp(5, 0),
            ..Options::default()
        };
        assert_eq!(render(&es, &since), "new\n");
        let limit = Options {
            limit: Some(5),
            ..Options::default()
        };
        assert_eq!(render(&es, &limit), "old\nn");
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        let q = LogQuery {
            tail_lines: Some("x".into()),
            ..LogQuery::default()
        };
        assert!(q.options(Utc::now()).unwrap_err().contains("tailLines"));
        let q = LogQuery {
            tail_lines: Some("-1".into()),
            follow: Some("true".into()),
            ..LogQuery::default()
        };
        let o = q.options(Utc::now()).unwrap();
        assert!(o.follow && o.tail.is_none());
    }
}
