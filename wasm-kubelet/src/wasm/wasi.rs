//! The guest's view of the world, built from a [`Launch`]: its args and env, its volumes as
//! preopened directories, stdout/stderr into the container's log, no stdin, nothing inherited
//! from the agent, and network (sockets, name lookup, outgoing `wasi:http`) only when the pod
//! allows outbound traffic.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use std::net::SocketAddr;

use super::limits::{Limited, MemoryLimiter};
use super::{Launch, ServiceResolver, ServiceRoute};
use crate::logs::{LogWriter, Stream};

/// Most bytes a guest may hand over in one write: matches what wasmtime-wasi's own stdio
/// streams accept.
const MAX_WRITE: usize = 64 * 1024;

/// A guest's stdout or stderr: every write goes straight into the container's log.
#[derive(Clone)]
pub struct LogSink {
    writer: LogWriter,
    stream: Stream,
}

impl LogSink {
    pub fn new(writer: LogWriter, stream: Stream) -> LogSink {
        LogSink { writer, stream }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.writer.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_WRITE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A WASI context builder for one instance of the container described by `launch`.
/// Fails when a volume directory cannot be opened.
pub fn builder(launch: &Launch) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&launch.args)
        .envs(&launch.env)
        .stdout(LogSink::new(launch.stdout.clone(), Stream::Stdout))
        .stderr(LogSink::new(launch.stderr.clone(), Stream::Stderr))
        .allow_tcp(launch.outbound)
        .allow_udp(launch.outbound)
        .allow_ip_name_lookup(launch.outbound);
    if launch.outbound {
        b.inherit_network();
    }
    for m in &launch.mounts {
        let perms = if m.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&m.host, &m.guest, perms).map_err(|e| {
            format!(
                "cannot open the volume directory {} for {}: {e:#}",
                m.host.display(),
                m.guest
            )
        })?;
    }
    Ok(b)
}

/// Store data of a core module (WASI preview 1).
pub struct P1Host {
    pub wasi: WasiP1Ctx,
    pub limiter: MemoryLimiter,
}

impl Limited for P1Host {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

/// Store data of a component (WASI preview 2 and `wasi:http`).
pub struct Host {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub hooks: Box<dyn WasiHttpHooks>,
    pub limiter: MemoryLimiter,
}

impl Host {
    pub fn new(
        wasi: WasiCtx,
        outbound: bool,
        services: Option<ServiceResolver>,
        limiter: MemoryLimiter,
    ) -> Host {
        let hooks: Box<dyn WasiHttpHooks> = Box::new(Outbound { outbound, services });
        Host {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks,
            limiter,
        }
    }
}

impl Limited for Host {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut *self.hooks,
        }
    }
}

/// Where outgoing `wasi:http` requests go: requests to a cluster Service (its name or
/// ClusterIP) are sent straight to one of its ready endpoints, chosen by the node's service
/// table, so no DNS or iptables is needed; anything else leaves the node only when the pod
/// allows outbound traffic, and is otherwise answered with `HTTP-request-denied`.
struct Outbound {
    outbound: bool,
    services: Option<ServiceResolver>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl Outbound {
    /// The endpoint a request to a Service goes to, `Err` if the host is a Service with no
    /// ready endpoint, `Ok(None)` if the host is not a Service.
    fn route(&self, uri: &http::Uri) -> Result<Option<SocketAddr>, ()> {
        let (Some(services), Some(host)) = (&self.services, uri.host()) else {
            return Ok(None);
        };
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        match services(host, port) {
            Some(ServiceRoute::Endpoint(addr)) => Ok(Some(addr)),
            Some(ServiceRoute::NoEndpoint) => Err(()),
            None => Ok(None),
        }
    }
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let route = self.route(request.uri());
        match route {
            Ok(Some(endpoint)) => {
                // The Host header keeps the name the guest asked for.
                if let Some(authority) = request.uri().authority().cloned()
                    && !request.headers().contains_key(http::header::HOST)
                    && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
                {
                    request.headers_mut().insert(http::header::HOST, value);
                }
                let mut parts = request.uri().clone().into_parts();
                parts.authority = endpoint.to_string().parse().ok();
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
            Ok(None) if self.outbound => {}
            Ok(None) => {
                tracing::debug!(uri = %request.uri(), "outbound HTTP denied for this pod");
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            }
            Err(()) => {
                tracing::debug!(uri = %request.uri(), "the Service has no ready endpoint");
                return Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionRefused) });
            }
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn denied_outbound_http_never_leaves_the_node() {
        let mut hooks = Outbound {
            outbound: false,
            services: None,
        };
        let request = http::Request::builder()
            .uri("http://127.0.0.1:9/")
            .body(wasmtime_wasi_http::WasiBody::default())
            .unwrap();
        let sent = Pin::from(hooks.send_request(request, None, Box::new(async { Ok(()) }))).await;
        assert!(matches!(
            sent,
            Err(wasmtime_wasi_http::Error::HttpRequestDenied)
        ));
    }

    #[test]
    fn log_sink_writes_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut sink = LogSink::new(LogWriter::create(&path).unwrap(), Stream::Stderr);
        OutputStream::write(&mut sink, Bytes::from_static(b"oops\n")).unwrap();
        let entries = crate::logs::read(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].stream, Stream::Stderr);
        assert_eq!(entries[0].content, "oops");
    }
}
