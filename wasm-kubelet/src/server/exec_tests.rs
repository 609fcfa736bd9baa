//! Exec through the endpoint for real: a busybox container in the containerd that
//! `scripts/containerd.sh start` runs, reached with raw CRI calls; the endpoint served over
//! mTLS as in production; WebSocket (v5 and v4) and SPDY clients as kubectl speaks them.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest,
};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};

use super::exec::{ExecBackend, ExecError, ExecRequest};
use super::spdy::{self, Frame};
use super::tests::TestPki;

const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

fn socket() -> String {
    std::env::var("SEXTANT_CRI_SOCKET").unwrap_or_else(|_| {
        panic!(
            "SEXTANT_CRI_SOCKET is not set: start the test containerd with \
             `export SEXTANT_CRI_SOCKET=$(scripts/containerd.sh start)` and run the tests again"
        )
    })
}

fn runtime_client(socket: String) -> RuntimeServiceClient<Channel> {
    let channel = Endpoint::from_static("http://cri.sock").connect_with_connector_lazy(
        tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }),
    );
    RuntimeServiceClient::new(channel)
}

/// A sandbox with one busybox container that sleeps; removed (with its container) on drop,
/// even when an assertion failed.
struct Sandbox {
    socket: String,
    id: String,
    container: String,
    _logs: tempfile::TempDir,
}

impl Sandbox {
    async fn start(rt: &mut RuntimeServiceClient<Channel>, socket: &str) -> Sandbox {
        let logs = tempfile::tempdir().unwrap();
        let name = format!("exec-test-{}", std::process::id());
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: name.clone(),
                namespace: "sextant-tests".into(),
                attempt: 0,
            }),
            log_directory: logs.path().to_string_lossy().into_owned(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let mut sandbox = Sandbox {
            socket: socket.to_owned(),
            id: id.clone(),
            container: String::new(),
            _logs: logs,
        };
        sandbox.container = rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: id,
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "shell".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: "sextant.local/busybox:1".into(),
                        ..Default::default()
                    }),
                    command: vec!["sh".into(), "-c".into(), "sleep 300".into()],
                    log_path: "shell.log".into(),
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        rt.start_container(StartContainerRequest {
            container_id: sandbox.container.clone(),
        })
        .await
        .expect("StartContainer");
        sandbox
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The test's runtime may be gone or blocked in this drop: clean up from a thread of
        // our own, with a runtime and connection of its own.
        let (socket, id) = (self.socket.clone(), self.id.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut client = runtime_client(socket);
                let _ = client
                    .stop_pod_sandbox(StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await;
                let removed = client
                    .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await;
                if let Err(e) = removed {
                    eprintln!("could not remove the test sandbox: {e}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The backend under test: CRI `Exec` for the one container; `wasm` and `gone` stand for a
/// wasm container and one that is not on the node.
struct CriBackend {
    rt: RuntimeServiceClient<Channel>,
    container: String,
}

impl ExecBackend for CriBackend {
    fn exec(&self, req: ExecRequest) -> BoxFuture<'_, Result<String, ExecError>> {
        Box::pin(async move {
            match req.container.as_str() {
                "wasm" => {
                    return Err(ExecError::Wasm {
                        container: req.container,
                    });
                }
                "gone" => {
                    return Err(ExecError::NotFound(
                        "pod p does not run on this node".into(),
                    ));
                }
                _ => {}
            }
            let response = self
                .rt
                .clone()
                .exec(k8s_cri::v1::ExecRequest {
                    container_id: self.container.clone(),
                    cmd: req.command,
                    tty: req.tty,
                    stdin: req.stdin,
                    stdout: req.stdout,
                    stderr: req.stderr,
                })
                .await
                .map_err(|e| ExecError::Runtime(e.message().to_owned()))?;
            Ok(response.into_inner().url)
        })
    }
}

struct Endpoint2 {
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(backend: CriBackend) -> Endpoint2 {
    let pki = TestPki::new();
    let (cert, key) = pki.issue("node-a", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = super::tls_config(&pki.ca_pem, &cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap().keep();
    let task = tokio::spawn(super::serve_with(
        listener,
        tls,
        dir,
        Some(Arc::new(backend)),
        stop.clone(),
    ));

    let (cert, key) = pki.issue(
        "system:sextant:apiserver-kubelet-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    Endpoint2 {
        port,
        tls: Arc::new(client),
        stop,
        task,
    }
}

impl Endpoint2 {
    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// A WebSocket handshake on `/exec/ns/p/{path}` offering `protocols`.
    async fn websocket(
        &self,
        path: &str,
        protocols: &str,
    ) -> Result<WebSocketStream<TlsStream<TcpStream>>, tungstenite::Error> {
        let mut request = format!("wss://127.0.0.1:{}/exec/ns/p/{path}", self.port)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        let (ws, response) = tokio_tungstenite::client_async(request, self.tls().await).await?;
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            protocols.split(',').next().unwrap().trim()
        );
        Ok(ws)
    }
}

/// What a session printed, by channel, and its final Status.
#[derive(Debug, Default)]
struct Outcome {
    stdout: String,
    stderr: String,
    status: Option<serde_json::Value>,
}

/// Reads the session to its end (the server closes it after the Status).
async fn finish(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Outcome {
    let mut out = Outcome::default();
    let mut error = Vec::new();
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Binary(data) => {
                    let Some((&channel, payload)) = data.split_first() else {
                        panic!("an empty message")
                    };
                    let text = String::from_utf8_lossy(payload);
                    match channel {
                        1 => out.stdout.push_str(&text),
                        2 => out.stderr.push_str(&text),
                        3 => error.extend_from_slice(payload),
                        other => panic!("a message on channel {other}"),
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(SESSION_TIMEOUT, read)
        .await
        .expect("the session did not end");
    if !error.is_empty() {
        out.status = Some(serde_json::from_slice(&error).expect("channel 3 holds a Status"));
    }
    out
}

fn query(command: &[&str], flags: &str) -> String {
    let mut q: Vec<String> = command
        .iter()
        .map(|c| format!("command={}", urlencode(c)))
        .collect();
    q.push(flags.to_owned());
    q.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn binary(channel: u8, data: &[u8]) -> Message {
    let mut msg = vec![channel];
    msg.extend_from_slice(data);
    Message::binary(msg)
}

#[tokio::test]
async fn exec_into_a_containerd_container() {
    let socket = socket();
    let mut rt = runtime_client(socket.clone());
    let sandbox = Sandbox::start(&mut rt, &socket).await;
    let endpoint = serve(CriBackend {
        rt: rt.clone(),
        container: sandbox.container.clone(),
    })
    .await;
    let v5 = "v5.channel.k8s.io, v4.channel.k8s.io";

    // Output and the Success status (the flags as the API server's exec names them).
    let mut ws = endpoint
        .websocket(
            &format!(
                "shell?{}",
                query(&["echo", "hello"], "stdout=true&stderr=true")
            ),
            v5,
        )
        .await
        .unwrap();
    let out = finish(&mut ws).await;
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.stderr, "");
    assert_eq!(out.status.unwrap()["status"], "Success");

    // stderr, and a non-zero exit: its code in the Status, as kubectl reads it.
    let mut ws = endpoint
        .websocket(
            &format!(
                "shell?{}",
                query(&["sh", "-c", "echo oops >&2; exit 3"], "output=1&error=1")
            ),
            v5,
        )
        .await
        .unwrap();
    let out = finish(&mut ws).await;
    assert_eq!(out.stderr, "oops\n");
    let status = out.status.unwrap();
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(
        status["details"]["causes"][0]["reason"], "ExitCode",
        "{status}"
    );
    assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");

    // stdin, closed on its own (v5): cat sees the end of its input and exits.
    let mut ws = endpoint
        .websocket(
            &format!("shell?{}", query(&["cat"], "input=1&output=1")),
            v5,
        )
        .await
        .unwrap();
    ws.send(binary(0, b"hi\n")).await.unwrap();
    ws.send(binary(255, &[0])).await.unwrap();
    let out = finish(&mut ws).await;
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.status.unwrap()["status"], "Success");

    // A terminal: resizes reach it, input is echoed, stderr is folded into it.
    let mut ws = endpoint
        .websocket(
            &format!("shell?{}", query(&["sh"], "input=1&output=1&tty=1")),
            v5,
        )
        .await
        .unwrap();
    ws.send(binary(4, br#"{"Width":100,"Height":40}"#))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(binary(
        0,
        b"stty size; test -t 0 && echo is-a-tty; exit 0\n",
    ))
    .await
    .unwrap();
    let out = finish(&mut ws).await;
    assert!(out.stdout.contains("40 100"), "{:?}", out.stdout);
    assert!(out.stdout.contains("is-a-tty"), "{:?}", out.stdout);
    assert_eq!(out.status.unwrap()["status"], "Success");

    // A v4 client: the same channels, stdin ends with the connection.
    let mut ws = endpoint
        .websocket(
            &format!("shell?{}", query(&["echo", "four"], "output=1")),
            "v4.channel.k8s.io",
        )
        .await
        .unwrap();
    let out = finish(&mut ws).await;
    assert_eq!(out.stdout, "four\n");
    assert_eq!(out.status.unwrap()["status"], "Success");

    // Errors come before any upgrade, as plain HTTP with a Status.
    let refused = |e: tungstenite::Error| match e {
        tungstenite::Error::Http(r) => {
            let body: serde_json::Value =
                serde_json::from_slice(r.body().as_deref().unwrap_or_default()).unwrap();
            (r.status().as_u16(), body)
        }
        other => panic!("not an HTTP refusal: {other}"),
    };
    let (code, body) = refused(
        endpoint
            .websocket(&format!("wasm?{}", query(&["sh"], "output=1")), v5)
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(code, 400);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "BadRequest");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("no shell and no processes"), "{message}");
    assert!(message.contains("kubectl logs p -c wasm"), "{message}");
    let (code, _) = refused(
        endpoint
            .websocket(&format!("gone?{}", query(&["sh"], "output=1")), v5)
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(code, 404);
    let (code, body) = refused(
        endpoint
            .websocket("shell?output=1", v5)
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "you must specify at least one command for the container"
    );

    // kubectl's SPDY fallback: the upgrade is carried to the runtime as it is.
    let out = spdy_session(
        &endpoint,
        &query(&["sh", "-c", "echo spdy; echo err >&2"], "output=1&error=1"),
    )
    .await;
    assert_eq!(out.stdout, "spdy\n");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.status.unwrap()["status"], "Success");

    // Stopping the endpoint ends sessions under way.
    let mut ws = endpoint
        .websocket(
            &format!("shell?{}", query(&["cat"], "input=1&output=1")),
            v5,
        )
        .await
        .unwrap();
    ws.send(binary(0, b"still here\n")).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("still here") {
        let msg = tokio::time::timeout(SESSION_TIMEOUT, ws.next())
            .await
            .unwrap();
        if let Some(Ok(Message::Binary(d))) = msg {
            seen.push_str(&String::from_utf8_lossy(&d[1..]));
        }
    }
    endpoint.stop.cancel();
    let _ = finish(&mut ws).await;
    tokio::time::timeout(Duration::from_secs(15), endpoint.task)
        .await
        .expect("the endpoint did not stop")
        .unwrap();
    drop(sandbox);
}

/// A SPDY/3.1 remote-command session as kubectl's fallback opens it: the HTTP upgrade, then
/// the error and output streams.
async fn spdy_session(endpoint: &Endpoint2, query: &str) -> Outcome {
    let mut tls = endpoint.tls().await;
    tls.write_all(
        format!(
            "POST /exec/ns/p/shell?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
             Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
             X-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            tls.read(&mut b).await.unwrap(),
            1,
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );

    let (rd, wr) = tokio::io::split(tls);
    let mut rd = tokio::io::BufReader::new(rd);
    let mut writer = spdy::Writer::new(wr);
    let error = writer
        .open_stream(&[("streamtype", "error")])
        .await
        .unwrap();
    let stdout = writer
        .open_stream(&[("streamtype", "stdout")])
        .await
        .unwrap();
    let stderr = writer
        .open_stream(&[("streamtype", "stderr")])
        .await
        .unwrap();
    let mut out = Outcome::default();
    let mut status = Vec::new();
    let read = async {
        while let Some(frame) = spdy::read_frame(&mut rd).await.unwrap() {
            match frame {
                Frame::Data { stream, data, .. } if stream == stdout => {
                    out.stdout.push_str(&String::from_utf8_lossy(&data))
                }
                Frame::Data { stream, data, .. } if stream == stderr => {
                    out.stderr.push_str(&String::from_utf8_lossy(&data))
                }
                Frame::Data { stream, data, .. } if stream == error => {
                    status.extend_from_slice(&data)
                }
                Frame::GoAway => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(SESSION_TIMEOUT, read)
        .await
        .expect("the SPDY session did not end");
    out.status = Some(serde_json::from_slice(&status).unwrap());
    out
}
