//! Watch: a stream of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events, one JSON object per line.
//!
//! # resourceVersion rules (as Kubernetes defines them)
//! - unset or `"0"`: first the current state as synthetic ADDED events, then changes;
//! - `N`: every change after revision N; if N is compacted, one ERROR event with a 410
//!   `Status` ("too old resource version") and the stream ends, and the client relists;
//! - `sendInitialEvents=true`: the current state first, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end`, then changes (the streaming-list protocol).
//!
//! A label or field selector turns a change that moves an object into the selection into
//! ADDED and out of it into DELETED, so a client's view of the selection stays exact.
//!
//! The stream ends at `timeoutSeconds` (default 30 minutes), when the client goes away, or
//! when the server shuts down.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;

use sextant_api::table::IncludeObject;
use sextant_store::{EventKind, StoreError, WatchMessage, Watcher};

use crate::body::Accept;
use crate::error::{ApiError, ApiResult};
use crate::list::{Filter, collect};
use crate::objects;
use crate::request::{Params, Target};
use crate::state::ApiState;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct Stream {
    state: ApiState,
    t: Target,
    filter: Filter,
    watcher: Option<Watcher>,
    /// Events to send before reading the watcher (the initial state, or an error).
    queued: std::collections::VecDeque<Value>,
    bookmarks: bool,
    accept: Accept,
    include: IncludeObject,
    sent_columns: bool,
    deadline: tokio::time::Instant,
    cancel: tokio_util::sync::CancellationToken,
    done: bool,
}

pub async fn watch(
    state: &ApiState,
    t: &Target,
    params: &Params,
    accept: Accept,
) -> ApiResult<Response> {
    let filter = Filter::new(t, params)?;
    let include = IncludeObject::from_query(params.include_object.as_deref())
        .ok_or_else(|| ApiError::bad_request("includeObject must be None, Metadata or Object"))?;
    let timeout = params
        .timeout_seconds()?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(DEFAULT_TIMEOUT);
    let rv = params.resource_version.as_deref().filter(|v| !v.is_empty());
    let initial = params
        .send_initial_events()
        .unwrap_or(matches!(rv, None | Some("0")));
    let bookmarks = params.bookmarks();
    let mut queued = std::collections::VecDeque::new();

    let from = if initial {
        let listed = collect(state, t, &params.selection_only(), &filter).await?;
        for obj in listed.items {
            queued.push_back(json!({"type": "ADDED", "object": obj}));
        }
        if params.send_initial_events() == Some(true) && bookmarks {
            queued.push_back(bookmark(t, listed.revision, true));
        }
        listed.revision
    } else {
        let rv = rv.unwrap_or("0");
        rv.parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?
    };

    let watcher = match state.store.watch(t.collection_prefix(), from).await {
        Ok(w) => Some(w),
        Err(StoreError::Compacted {
            requested,
            compacted,
        }) => {
            let status = ApiError::Gone {
                message: format!("too old resource version: {requested} ({compacted})"),
            }
            .status();
            queued.push_back(json!({"type": "ERROR", "object": status}));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let stream = Stream {
        state: state.clone(),
        t: t.clone(),
        filter,
        watcher,
        queued,
        bookmarks,
        accept,
        include,
        sent_columns: false,
        deadline: tokio::time::Instant::now() + timeout,
        cancel: state.shutdown.clone(),
        done: false,
    };
    let body = futures::stream::unfold(stream, |mut s| async move {
        let line = s.next_line().await?;
        Some((Ok::<_, std::convert::Infallible>(line), s))
    });
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    Ok(resp)
}

fn bookmark(t: &Target, revision: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": t.resource.kind, "apiVersion": t.resource.api_version(), "metadata": metadata}})
}

impl Stream {
    /// The next line of the response, or `None` when the stream is over.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                let event = self.render(event);
                let mut line = serde_json::to_vec(&event).expect("JSON encodes");
                line.push(b'\n');
                return Some(Bytes::from(line));
            }
            if self.done {
                return None;
            }
            let Some(watcher) = self.watcher.as_mut() else {
                self.done = true;
                continue;
            };
            let msg = tokio::select! {
                m = watcher.next() => m,
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = self.cancel.cancelled() => return None,
            };
            match msg {
                Ok(WatchMessage::Events(events)) => {
                    for e in events {
                        if let Some(ev) = self.translate(&e) {
                            self.queued.push_back(ev);
                        }
                    }
                }
                Ok(WatchMessage::Progress(rev)) => {
                    if self.bookmarks {
                        self.queued.push_back(bookmark(&self.t, rev, false));
                    }
                }
                Err(StoreError::Compacted {
                    requested,
                    compacted,
                }) => {
                    let status = ApiError::Gone {
                        message: format!("too old resource version: {requested} ({compacted})"),
                    }
                    .status();
                    self.queued
                        .push_back(json!({"type": "ERROR", "object": status}));
                    self.done = true;
                }
                Err(e) => {
                    let status = ApiError::from(e).status();
                    self.queued
                        .push_back(json!({"type": "ERROR", "object": status}));
                    self.done = true;
                }
            }
        }
    }

    /// A store event as the watch event this client should see, if any.
    fn translate(&self, e: &sextant_store::Event) -> Option<Value> {
        let decode =
            |kv: &sextant_store::KeyValue| objects::from_store_as(&self.t.resource, kv).ok();
        let new = decode(&e.kv)?;
        let old_matches = e
            .prev
            .as_ref()
            .and_then(decode)
            .is_some_and(|o| self.filter.matches(&o));
        let (kind, obj) = match e.kind {
            EventKind::Deleted => (old_matches.then_some("DELETED")?, new),
            EventKind::Created => (self.filter.matches(&new).then_some("ADDED")?, new),
            EventKind::Updated => match (old_matches, self.filter.matches(&new)) {
                (true, true) => ("MODIFIED", new),
                (false, true) => ("ADDED", new),
                (true, false) => ("DELETED", new),
                (false, false) => return None,
            },
        };
        Some(json!({"type": kind, "object": obj}))
    }

    /// Tables for kubectl: each object becomes a one-row table; the column definitions
    /// go with the first one only. Metadata informers get `PartialObjectMetadata`.
    fn render(&mut self, mut event: Value) -> Value {
        if self.accept == Accept::Metadata
            && matches!(
                event["type"].as_str(),
                Some("ADDED" | "MODIFIED" | "DELETED")
            )
        {
            event["object"] = crate::body::partial_metadata(&event["object"]);
            return event;
        }
        if self.accept != Accept::Table
            || !matches!(
                event["type"].as_str(),
                Some("ADDED" | "MODIFIED" | "DELETED")
            )
        {
            return event;
        }
        let r = &self.t.resource;
        let obj = event["object"].take();
        let meta = ListMeta {
            resource_version: objects::meta_str(&obj, "resourceVersion").map(str::to_owned),
            ..Default::default()
        };
        let mut table = crate::list::table(&self.state, r, &[obj], self.include, &meta);
        if self.sent_columns {
            table["columnDefinitions"] = Value::Null;
        }
        self.sent_columns = true;
        event["object"] = table;
        event
    }
}
