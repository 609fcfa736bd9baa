//! `/exec/{namespace}/{pod}/{container}`: `kubectl exec`, which the API server proxies here
//! as Kubernetes' does to kubelets. The node asks its [`ExecBackend`] for the container's
//! streaming URL (the CRI runtime's `Exec`) and carries the session there.
//!
//! Two client protocols:
//! - WebSocket, subprotocol `v5.channel.k8s.io` (kubectl since 1.30) or `v4.channel.k8s.io`:
//!   each message starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the final Status
//!   as JSON, 4 terminal resizes; v5 adds `255, N`: the client closes its channel N). The
//!   node talks SPDY to the runtime and translates (see [`super::spdy`] for why: containerd
//!   1.6 has no WebSocket protocol that can end stdin alone);
//! - SPDY/3.1 (kubectl's fallback, and older clients): the upgrade is forwarded to the
//!   runtime as it is and the two connections are spliced, as Kubernetes' kubelet does.
//!
//! Everything that can fail before the session (a bad query, a wasm container, a container
//! that is not running, an unreachable runtime) is answered as a plain HTTP error with a
//! Kubernetes `Status` body, before any upgrade, so kubectl shows the message.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use super::State as Shared;
use super::spdy::{self, Frame};

/// One exec session as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Why a container cannot be exec'd into; each is a plain HTTP answer with a `Status`.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    NotFound(String),
    #[error("{}", wasm_message("POD", container))]
    Wasm { container: String },
    #[error("{0}")]
    NotRunning(String),
    #[error("the container runtime cannot start the exec session: {0}")]
    Runtime(String),
}

/// Why a wasm container cannot be exec'd into, and what to do instead.
fn wasm_message(pod: &str, container: &str) -> String {
    format!(
        "container {container:?} is a WebAssembly module: wasm containers have no shell and no \
         processes to exec into (WASI has no process model). Read what it prints with \
         `kubectl logs {pod} -c {container}`, or put an OCI container (busybox, for one) in \
         the pod beside it and exec into that one"
    )
}

impl ExecError {
    /// The answer to the client, which names the pod where the error could not.
    fn response(&self, pod: &str) -> Response {
        let message = match self {
            ExecError::Wasm { container } => wasm_message(pod, container),
            other => other.to_string(),
        };
        status(self.status(), message)
    }

    fn status(&self) -> StatusCode {
        match self {
            ExecError::NotFound(_) => StatusCode::NOT_FOUND,
            ExecError::Wasm { .. } | ExecError::NotRunning(_) => StatusCode::BAD_REQUEST,
            ExecError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Where exec sessions go: the agent's table of containers and its CRI client, or a test's.
pub trait ExecBackend: Send + Sync + 'static {
    /// The runtime's streaming URL for `req` (CRI `Exec`): single-use, it starts the command
    /// once a client connects to it.
    fn exec(&self, req: ExecRequest) -> BoxFuture<'_, Result<String, ExecError>>;
}

pub(crate) const V5: &str = "v5.channel.k8s.io";
pub(crate) const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `255, N` closes the client's channel N.
const CLOSE: u8 = 255;

/// How long the runtime may take to answer the upgrade and to accept the streams.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the runtime's error answer is shown.
const MAX_ERROR_BODY: usize = 4096;
const X_STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// A Kubernetes `Status` answer.
pub(crate) fn status(code: StatusCode, message: String) -> Response {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        _ => "InternalError",
    };
    (
        code,
        axum::Json(serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}

/// Reads the query: `command` repeats; the streams are named as kubelets name them
/// (`input`, `output`, `error`, `tty`, with `1`) or as the API server's exec names them
/// (`stdin`, `stdout`, `stderr`, with `true`). A terminal has no separate stderr, so `tty`
/// drops it, as Kubernetes does.
pub(crate) fn parse_request(
    namespace: String,
    pod: String,
    container: String,
    query: &[(String, String)],
) -> Result<ExecRequest, String> {
    let flag = |names: &[&str]| {
        query.iter().any(|(k, v)| {
            names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "true" | "True" | "TRUE")
        })
    };
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    let tty = flag(&["tty"]);
    let req = ExecRequest {
        namespace,
        pod,
        container,
        command,
        stdin: flag(&["input", "stdin"]),
        stdout: flag(&["output", "stdout"]),
        stderr: flag(&["error", "stderr"]) && !tty,
        tty,
    };
    if !req.stdin && !req.stdout && !req.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(req)
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Serves `GET|POST /exec/{namespace}/{pod}/{container}?command=…`.
pub(super) async fn exec(
    State(state): State<Shared>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    req: Request,
) -> Response {
    let Some(backend) = state.exec.clone() else {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node agent serves no exec sessions".into(),
        );
    };
    let exec = match parse_request(namespace, pod, container, &query) {
        Ok(r) => r,
        Err(e) => return status(StatusCode::BAD_REQUEST, e),
    };
    let headers = req.headers();
    if header_has(headers, header::UPGRADE, "websocket") {
        websocket(state, backend, exec, req).await
    } else if header_has(headers, header::UPGRADE, "SPDY/3.1") {
        spdy_tunnel(state, backend, exec, req).await
    } else {
        status(
            StatusCode::BAD_REQUEST,
            format!(
                "exec needs a connection upgrade: WebSocket (subprotocol {V5} or {V4}) or SPDY/3.1"
            ),
        )
    }
}

/// A WebSocket client: the runtime is reached (SPDY) before the client's upgrade is
/// accepted, so that every failure up to there is an HTTP answer.
async fn websocket(
    state: Shared,
    backend: Arc<dyn ExecBackend>,
    exec: ExecRequest,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let ws = ws.protocols([V5, V4]);
    let v5 = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(V5) => true,
        Some(_) => false,
        None => {
            let offered: Vec<&str> = ws
                .requested_protocols()
                .filter_map(|p| p.to_str().ok())
                .collect();
            return status(
                StatusCode::BAD_REQUEST,
                format!(
                    "exec over WebSocket speaks the subprotocols {V5} and {V4}; the client offered [{}]",
                    offered.join(", ")
                ),
            );
        }
    };
    let url = match backend.exec(exec.clone()).await {
        Ok(url) => url,
        Err(e) => return e.response(&exec.pod),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(X_STREAM_PROTOCOL, HeaderValue::from_static(V4));
    let runtime = match upstream(&url, Method::POST, headers).await {
        Ok(Upstream { io: Some(io), .. }) => io,
        Ok(answer) => return runtime_refused(answer),
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let sessions = state.sessions.clone();
    let shutdown = state.shutdown.clone();
    ws.on_upgrade(move |socket| {
        sessions.track_future(bridge(socket, runtime, Streams::of(&exec), v5, shutdown))
    })
}

/// A SPDY client: the upgrade goes to the runtime as it came, and once both sides have
/// switched protocols the two connections are spliced.
async fn spdy_tunnel(
    state: Shared,
    backend: Arc<dyn ExecBackend>,
    exec: ExecRequest,
    mut req: Request,
) -> Response {
    let pod = exec.pod.clone();
    let url = match backend.exec(exec).await {
        Ok(url) => url,
        Err(e) => return e.response(&pod),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    for v in req.headers().get_all(X_STREAM_PROTOCOL) {
        headers.append(X_STREAM_PROTOCOL, v.clone());
    }
    let method = req.method().clone();
    let client = hyper::upgrade::on(&mut req);
    let answer = match upstream(&url, method, headers).await {
        Ok(a) => a,
        Err(e) => return status(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let Some(mut runtime) = answer.io else {
        return runtime_refused(answer);
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in [header::CONNECTION, header::UPGRADE] {
        if let Some(v) = answer.headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(v) = answer.headers.get(X_STREAM_PROTOCOL) {
        response.headers_mut().insert(X_STREAM_PROTOCOL, v.clone());
    }
    let shutdown = state.shutdown.clone();
    state.sessions.spawn(async move {
        let splice = async {
            match client.await {
                Ok(client) => {
                    let mut client = TokioIo::new(client);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut runtime).await {
                        tracing::debug!(error = %e, "exec: SPDY session ended with an error");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "exec: the client's upgrade failed"),
            }
        };
        tokio::select! {
            () = splice => {}
            () = shutdown.cancelled() => {}
        }
    });
    response
}

/// The runtime answered without switching protocols: its message, as a Status.
fn runtime_refused(answer: Upstream) -> Response {
    let text = String::from_utf8_lossy(&answer.body).trim().to_owned();
    let code = if answer.status.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    status(
        code,
        format!(
            "the container runtime refused the exec session ({}){}",
            answer.status,
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        ),
    )
}

/// A connection to the runtime's streaming server, plain or TLS.
type Conn = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// The runtime's answer to an upgrade request.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    /// The connection, switched to the upgraded protocol, when the runtime answered 101.
    io: Option<TokioIo<hyper::upgrade::Upgraded>>,
    /// The start of the body of any other answer.
    body: Bytes,
}

/// Sends an upgrade request to the runtime's streaming URL (`http://` as containerd serves
/// it by default, or `https://` with its self-signed certificate: the URL came from the
/// runtime itself over its private socket).
async fn upstream(url: &str, method: Method, headers: HeaderMap) -> Result<Upstream, String> {
    let failed = |e: &dyn std::fmt::Display| {
        format!("cannot reach the runtime's streaming server at {url}: {e}")
    };
    tokio::time::timeout(RUNTIME_TIMEOUT, upstream_inner(url, method, headers))
        .await
        .map_err(|_| failed(&"it did not answer in time"))?
        .map_err(|e| failed(&e))
}

async fn upstream_inner(url: &str, method: Method, headers: HeaderMap) -> Result<Upstream, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let io = connect(&uri).await?;
    request(io, &uri, method, headers).await
}

/// A connection to the host of `uri`, with TLS for `https`.
async fn connect(uri: &http::Uri) -> Result<Conn, String> {
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("the URL is neither http nor https".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tcp = TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    Ok(if tls {
        let mut config = crate::tls::trust_any().map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Either::Right(stream)
    } else {
        Either::Left(tcp)
    })
}

/// Sends the upgrade request on `io` and reads the answer.
async fn request(
    io: Conn,
    uri: &http::Uri,
    method: Method,
    headers: HeaderMap,
) -> Result<Upstream, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = Box::pin(conn.with_upgrades());
    let mut request = http::Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    *request.headers_mut() = headers;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    request.headers_mut().insert(
        header::HOST,
        HeaderValue::from_str(authority).map_err(|e| e.to_string())?,
    );
    // With a 101 the connection future ends as soon as it hands the connection over, which
    // may be before the answer is read from `send`; it is not polled after it ended.
    let mut send = Box::pin(sender.send_request(request));
    let mut conn_done = false;
    let response = loop {
        tokio::select! {
            r = send.as_mut() => break r.map_err(|e| e.to_string())?,
            r = conn.as_mut(), if !conn_done => match r {
                Ok(()) => conn_done = true,
                Err(e) => return Err(e.to_string()),
            },
        }
    };
    drop(sender);
    let status = response.status();
    let headers = response.headers().clone();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let upgraded = if conn_done {
            hyper::upgrade::on(response).await
        } else {
            tokio::join!(conn, hyper::upgrade::on(response)).1
        };
        let io = upgraded.map_err(|e| e.to_string())?;
        return Ok(Upstream {
            status,
            headers,
            io: Some(TokioIo::new(io)),
            body: Bytes::new(),
        });
    }
    let read = async {
        let mut body = Body::new(response.into_body()).into_data_stream();
        let mut buf = Vec::new();
        while buf.len() < MAX_ERROR_BODY {
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
        buf.truncate(MAX_ERROR_BODY);
        Bytes::from(buf)
    };
    let body = if conn_done {
        read.await
    } else {
        tokio::join!(read, conn).0
    };
    Ok(Upstream {
        status,
        headers,
        io: None,
        body,
    })
}

/// Which streams a session has, as the runtime expects them from the exec request.
#[derive(Debug, Clone, Copy)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Streams {
    fn of(r: &ExecRequest) -> Streams {
        Streams {
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
            tty: r.tty,
        }
    }
}

/// The SPDY stream ids of a session, by channel.
#[derive(Debug, Default)]
struct Ids {
    error: u32,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl Ids {
    fn channel_of(&self, stream: u32) -> Option<u8> {
        if stream == self.error {
            Some(ERROR)
        } else if Some(stream) == self.stdout {
            Some(STDOUT)
        } else if Some(stream) == self.stderr {
            Some(STDERR)
        } else {
            None
        }
    }
}

/// Carries one session between the client's WebSocket and the runtime's SPDY connection
/// until the runtime ends it (after the exit Status), the client leaves, or the node stops.
async fn bridge(
    socket: WebSocket,
    runtime: TokioIo<hyper::upgrade::Upgraded>,
    streams: Streams,
    v5: bool,
    shutdown: CancellationToken,
) {
    let (mut tx, mut rx) = socket.split();
    let (rd, wr) = tokio::io::split(runtime);
    let mut rd = BufReader::new(rd);
    let mut writer = spdy::Writer::new(wr);

    let opened = tokio::select! {
        r = tokio::time::timeout(RUNTIME_TIMEOUT, open(&mut rd, &mut writer, streams)) => {
            r.unwrap_or_else(|_| Err("the runtime did not accept the session's streams in time".into()))
        }
        () = shutdown.cancelled() => return,
    };
    let (ids, early) = match opened {
        Ok(o) => o,
        Err(e) => {
            let failure = serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "InternalError",
                "message": format!("the container runtime broke off the exec session: {e}"),
            });
            let mut msg = vec![ERROR];
            msg.extend_from_slice(failure.to_string().as_bytes());
            let _ = tx.send(Message::Binary(msg.into())).await;
            let _ = tx.send(close_normal()).await;
            return;
        }
    };
    // Tells the client the session is up, on its lowest output channel (as Kubernetes'
    // servers do).
    let first = if streams.stdout {
        STDOUT
    } else if streams.stderr {
        STDERR
    } else {
        ERROR
    };
    if tx.send(Message::Binary(vec![first].into())).await.is_err() {
        return;
    }
    let writer = Mutex::new(writer);

    let from_runtime = async {
        for frame in early {
            if !forward(&ids, frame, &mut tx, &writer).await {
                return;
            }
        }
        loop {
            let frame = match spdy::read_frame(&mut rd).await {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "exec: the runtime's connection broke");
                    return;
                }
            };
            if !forward(&ids, frame, &mut tx, &writer).await {
                return;
            }
        }
    };
    let from_client = async {
        let mut stdin_open = ids.stdin.is_some();
        while let Some(Ok(msg)) = rx.next().await {
            let data = match msg {
                Message::Binary(d) => d,
                Message::Close(_) => return,
                // Text frames belong to the base64 protocols, which are not offered.
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let sent = match (channel, ids.stdin, ids.resize) {
                (STDIN, Some(id), _) if stdin_open && !payload.is_empty() => {
                    writer.lock().await.data(id, payload, false).await
                }
                (RESIZE, _, Some(id)) => writer.lock().await.data(id, payload, false).await,
                (CLOSE, Some(id), _) if v5 && payload == [STDIN] && stdin_open => {
                    stdin_open = false;
                    writer.lock().await.data(id, &[], true).await
                }
                _ => Ok(()),
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "exec: cannot write to the runtime");
                return;
            }
        }
    };
    tokio::select! {
        () = from_runtime => {}
        () = from_client => {}
        () = shutdown.cancelled() => {}
    }
    let _ = tx.send(close_normal()).await;
    let _ = writer.lock().await.shutdown().await;
}

fn close_normal() -> Message {
    Message::Close(Some(CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

/// Opens the session's streams in the order Kubernetes' clients do (error, stdin, stdout,
/// stderr, resize) and waits until the runtime accepted every one. Frames that come before
/// the last acceptance are handed back to be forwarded.
async fn open<R, W>(
    rd: &mut R,
    writer: &mut spdy::Writer<W>,
    streams: Streams,
) -> Result<(Ids, Vec<Frame>), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| e.to_string();
    let mut ids = Ids {
        error: writer
            .open_stream(&[("streamtype", "error")])
            .await
            .map_err(io)?,
        ..Ids::default()
    };
    for (wanted, kind, slot) in [
        (streams.stdin, "stdin", &mut ids.stdin),
        (streams.stdout, "stdout", &mut ids.stdout),
        (streams.stderr, "stderr", &mut ids.stderr),
        (streams.tty, "resize", &mut ids.resize),
    ] {
        if wanted {
            *slot = Some(
                writer
                    .open_stream(&[("streamtype", kind)])
                    .await
                    .map_err(io)?,
            );
        }
    }
    let mut waiting: Vec<u32> = [
        Some(ids.error),
        ids.stdin,
        ids.stdout,
        ids.stderr,
        ids.resize,
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut early = Vec::new();
    while !waiting.is_empty() {
        match spdy::read_frame(rd).await.map_err(io)? {
            None => return Err("it closed the connection".into()),
            Some(Frame::Reply { stream, .. }) => waiting.retain(|s| *s != stream),
            Some(Frame::Reset { stream, status }) if waiting.contains(&stream) => {
                return Err(format!("it refused stream {stream} (SPDY status {status})"));
            }
            Some(Frame::Ping(id)) => writer.pong(id).await.map_err(io)?,
            Some(Frame::GoAway) => return Err("it ended the connection (GOAWAY)".into()),
            Some(other) => early.push(other),
        }
    }
    Ok((ids, early))
}

/// Passes one runtime frame on to the client; `false` when the session is over.
async fn forward<S, W>(ids: &Ids, frame: Frame, tx: &mut S, writer: &Mutex<spdy::Writer<W>>) -> bool
where
    S: futures::Sink<Message> + Unpin,
    W: AsyncWrite + Unpin,
{
    match frame {
        Frame::Data { stream, data, .. } => {
            let Some(channel) = ids.channel_of(stream) else {
                return true;
            };
            if data.is_empty() {
                return true;
            }
            let mut msg = Vec::with_capacity(1 + data.len());
            msg.push(channel);
            msg.extend_from_slice(&data);
            tx.send(Message::Binary(msg.into())).await.is_ok()
        }
        Frame::Ping(id) => writer.lock().await.pong(id).await.is_ok(),
        // The runtime resets the streams and goes away once it wrote the exit Status; the
        // end of the connection, right after, ends the session.
        Frame::Reply { .. } | Frame::Reset { .. } | Frame::GoAway | Frame::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ExecRequest, String> {
        parse_request("ns".into(), "p".into(), "c".into(), &q(pairs))
    }

    #[test]
    fn query_in_either_naming_and_tty_drops_stderr() {
        let kubelet = parse(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi"),
            ("input", "1"),
            ("output", "1"),
            ("error", "1"),
        ])
        .unwrap();
        assert_eq!(kubelet.command, ["sh", "-c", "echo hi"]);
        assert!(kubelet.stdin && kubelet.stdout && kubelet.stderr && !kubelet.tty);
        let api = parse(&[
            ("command", "sh"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ])
        .unwrap();
        assert!(api.stdin && api.stdout && !api.stderr && api.tty);
        assert_eq!(
            parse(&[("output", "1")]).unwrap_err(),
            "you must specify at least one command for the container"
        );
        assert_eq!(
            parse(&[("command", "ls"), ("stdout", "false")]).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn errors_map_to_kubernetes_codes() {
        let wasm = ExecError::Wasm {
            container: "app".into(),
        };
        assert_eq!(wasm.status(), StatusCode::BAD_REQUEST);
        assert!(
            wasm.to_string().contains("no shell and no processes"),
            "{wasm}"
        );
        assert!(
            wasm.to_string().contains("kubectl logs POD -c app"),
            "{wasm}"
        );
        assert_eq!(
            ExecError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ExecError::NotRunning("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ExecError::Runtime("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
