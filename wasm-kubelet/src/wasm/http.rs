//! Serving a `wasi:http/incoming-handler` component: HTTP/1.1 on the container's address,
//! one fresh instance per request (with the container's env, volumes, logs and limits), so
//! an idle service costs a socket and nothing else.
//!
//! On `stop` the listener closes, open connections finish their current request (up to
//! [`GRACE`]), then whatever still runs is cancelled. Every connection and guest task is
//! owned here and has ended when [`serve`] returns.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::command::{Failure, outcome};
use super::limits::{self, MemoryLimiter};
use super::wasi::{self, Host};
use super::{Exit, ExitReason, Launch, Runtime};
use crate::logs::Stream;

/// How long in-flight requests may take to finish once the service is stopped.
pub const GRACE: Duration = Duration::from_secs(5);

pub async fn serve(
    rt: &Runtime,
    pre: &ProxyPre<Host>,
    launch: Launch,
    stop: CancellationToken,
) -> Exit {
    let Some(addr) = launch.listen else {
        return Exit::cannot_run(
            "an HTTP component needs an address to listen on; give the container a containerPort"
                .to_owned(),
        );
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return Exit::cannot_run(format!("cannot listen on {addr}: {e}")),
    };
    tracing::debug!(%addr, "HTTP component listening");
    let service = Arc::new(Service {
        rt: rt.clone(),
        pre: pre.clone(),
        launch,
        hard_stop: CancellationToken::new(),
        guests: TaskTracker::new(),
    });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(service.clone(), stream, stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%addr, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACE, drained).await.is_err() {
        tracing::debug!(%addr, "in-flight requests outlived the grace period; cancelling");
    }
    service.hard_stop.cancel();
    while connections.join_next().await.is_some() {}
    service.guests.close();
    service.guests.wait().await;
    Exit::killed()
}

struct Service {
    rt: Runtime,
    pre: ProxyPre<Host>,
    launch: Launch,
    /// Cancelled when the grace period is over: connections and guests end at once.
    hard_stop: CancellationToken,
    /// Guest instances, which may outlive their request's response (streamed bodies).
    guests: TaskTracker,
}

async fn connection(service: Arc<Service>, stream: TcpStream, stop: CancellationToken) {
    let svc = service.clone();
    let handler = hyper::service::service_fn(move |req| {
        let svc = svc.clone();
        async move { Ok::<_, Infallible>(svc.handle(req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), handler);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = service.hard_stop.cancelled() => {}
            }
        }
    }
}

impl Service {
    async fn handle(&self, req: hyper::Request<Incoming>) -> hyper::Response<Reply> {
        let wasi = match wasi::builder(&self.launch) {
            Ok(mut b) => b.build(),
            Err(message) => {
                self.log(&message);
                return Reply::error(500, "the service cannot start: a volume is missing");
            }
        };
        let limiter = MemoryLimiter::new(self.launch.memory_limit);
        let refused = limiter.refused();
        let mut store = Store::new(
            self.rt.engine(),
            Host::new(
                wasi,
                self.launch.outbound,
                self.launch.services.clone(),
                limiter,
            ),
        );
        limits::install(&mut store, self.launch.cpu_limit_millis);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let resources = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|req| Ok((req, store.data_mut().http().new_response_outparam(tx)?)));
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => return Reply::error(400, &format!("bad request: {e}")),
        };
        let pre = self.pre.clone();
        let hard_stop = self.hard_stop.clone();
        let guest = self.guests.spawn(async move {
            let run = async {
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(Failure::Start)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .map_err(Failure::Run)?;
                Ok::<i32, Failure>(0)
            };
            tokio::select! {
                result = run => Some(result),
                _ = hard_stop.cancelled() => None,
            }
        });
        match rx.await {
            Ok(Ok(response)) => response.map(Reply::Guest),
            Ok(Err(code)) => Reply::error(500, &format!("the service failed: {code:?}")),
            // The guest ended without a response: say why.
            Err(_) => {
                let ended = guest.await.ok().flatten();
                let Some(result) = ended else {
                    return Reply::error(503, "the service is stopping");
                };
                let busy = matches!(&result, Err(f) if f.is_host_side());
                let exit = outcome(result, &refused, &self.launch);
                match exit.reason {
                    ExitReason::Completed => {
                        self.log("the service returned without sending a response");
                        Reply::error(500, "the service sent no response")
                    }
                    ExitReason::OOMKilled => Reply::error(500, "the service ran out of memory"),
                    _ if busy => Reply::error(503, "the service cannot take more requests now"),
                    _ => Reply::error(500, "the service failed"),
                }
            }
        }
    }

    fn log(&self, message: &str) {
        self.launch
            .stderr
            .write(Stream::Stderr, format!("{message}\n").as_bytes());
    }
}

/// A response body: the guest's, or a short text from the host when the guest gave none.
pub enum Reply {
    Guest(HyperOutgoingBody),
    Text(Option<Bytes>),
}

impl Reply {
    fn error(status: u16, text: &str) -> hyper::Response<Reply> {
        let mut resp = hyper::Response::new(Reply::Text(Some(Bytes::from(format!("{text}\n")))));
        *resp.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

impl Body for Reply {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Reply::Guest(body) => Pin::new(body).poll_frame(cx),
            Reply::Text(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Reply::Guest(body) => body.is_end_stream(),
            Reply::Text(text) => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Reply::Guest(body) => body.size_hint(),
            Reply::Text(text) => SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64)),
        }
    }
}
