//! The node agent's client of a CRI runtime (containerd's CRI plugin, CRI-O): how the OCI
//! containers of a pod run, beside its wasm containers.
//!
//! A pod with OCI containers gets one sandbox ([`sandbox_config`], [`Cri::run_sandbox`]),
//! each container's image is made present as `imagePullPolicy` says ([`Cri::ensure_image`]),
//! and each run of a container is created, started, waited for and removed by [`Cri::run`],
//! which reports the end as the wasm runtime does ([`crate::wasm::Exit`]), so the pod's state
//! machine treats both kinds alike. The runtime writes container logs in the CRI format to
//! the files the agent already reads (`POD_DIR/NAME/N.log`, see [`crate::logs`]).
//!
//! # Layout
//! - `mod.rs`: [`Cri`], the connection, and [`Cri::status`];
//! - `error.rs`: [`CriError`] and the Kubernetes waiting reason of each failure;
//! - `sandbox.rs`: the pod sandbox: its config, running, finding and removing it;
//! - `image.rs`: image presence, pull policy and registry credentials;
//! - `container.rs`: a container's config from its spec (command, env, mounts, resources,
//!   security context);
//! - `run.rs`: one run of a container to its exit, and exec.

mod container;
mod error;
mod image;
mod run;
mod sandbox;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{StatusRequest, VersionRequest};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use container::container_config;
pub use error::CriError;
pub use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
pub use run::ExecOutput;
pub use sandbox::sandbox_config;

/// Longest wait for an ordinary call: the runtime answers these in milliseconds when healthy.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a call that changes the node (sandbox and container creation, start,
/// stop, removal): these mount snapshots and start processes, which a loaded node makes
/// slow; the kubelet allows two minutes.
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a pull: images can be large and registries slow.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest message accepted from the runtime. ExecSync output is capped at 16 MiB by the CRI
/// spec, and a node's container list can be long; the kubelet allows 16 MiB.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;
/// Unix socket paths are limited by `sockaddr_un` (108 bytes with the final NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A connection to a CRI runtime. Cheap to clone; clones share the connection, which is
/// made on first use and remade after the runtime restarts.
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: Arc<Path>,
}

/// What the runtime says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// E.g. `containerd`.
    pub name: String,
    /// The runtime's own version.
    pub version: String,
    /// The CRI version it speaks, e.g. `v1`.
    pub api_version: String,
    /// The runtime can run containers (its `RuntimeReady` condition is true).
    pub ready: bool,
    /// Why it is not ready, when it is not.
    pub message: Option<String>,
}

impl Cri {
    /// A client of the runtime on the unix socket `socket`. Nothing is dialled here: a dead
    /// runtime never blocks the agent's start-up, and every call says it is unreachable
    /// until it answers. Must be called inside a tokio runtime (the channel's worker is
    /// spawned on it).
    pub fn connect(socket: &Path) -> Result<Cri, CriError> {
        let unusable = |cause: &str| CriError::Unreachable {
            rpc: "Connect",
            socket: socket.to_path_buf(),
            cause: cause.to_owned(),
        };
        if socket.as_os_str().is_empty() {
            return Err(unusable("no socket path given"));
        }
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(unusable(
                "unix socket paths are limited to 107 bytes; use a shorter path",
            ));
        }
        let socket: Arc<Path> = Arc::from(socket);
        let path = socket.clone();
        // The URI only fills the requests' :authority; every connection goes to the socket.
        let channel =
            Endpoint::from_static("http://cri.sock")
                .connect_timeout(CALL_TIMEOUT)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(&*path).await?))
                    }
                }));
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            socket,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The runtime's name and versions, and whether it can run containers.
    pub async fn status(&self) -> Result<RuntimeInfo, CriError> {
        let version = self
            .call(
                "Version",
                CALL_TIMEOUT,
                self.rt().version(request(
                    VersionRequest {
                        version: "v1".into(),
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        let status = self
            .call(
                "Status",
                CALL_TIMEOUT,
                self.rt()
                    .status(request(StatusRequest { verbose: false }, CALL_TIMEOUT)),
            )
            .await?;
        // Only RuntimeReady counts. NetworkReady says the runtime's CNI network is set up,
        // which pods here never use: every sandbox shares the node's network namespace
        // (see sandbox.rs), so a runtime without any CNI configuration runs them fine.
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        let runtime_ready = conditions.iter().find(|c| c.r#type == "RuntimeReady");
        let ready = runtime_ready.is_some_and(|c| c.status);
        let message = match runtime_ready {
            _ if ready => None,
            None => Some("the runtime reports no RuntimeReady condition".to_owned()),
            Some(c) => Some(
                [c.reason.as_str(), c.message.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(": "),
            )
            .filter(|m| !m.is_empty())
            .or_else(|| Some("RuntimeReady is false".to_owned())),
        };
        Ok(RuntimeInfo {
            name: version.runtime_name,
            version: version.runtime_version,
            api_version: version.runtime_api_version,
            ready,
            message,
        })
    }

    fn rt(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    fn img(&self) -> ImageServiceClient<Channel> {
        self.images.clone()
    }

    /// Awaits one RPC for at most `timeout`, and turns its failure into a [`CriError`].
    async fn call<T>(
        &self,
        rpc: &'static str,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CriError> {
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(CriError::from_status(rpc, &self.socket, status)),
            Err(_) => Err(CriError::Timeout {
                rpc,
                after: timeout,
            }),
        }
    }
}

/// A request that also tells the runtime how long the caller will wait (`grpc-timeout`), so
/// that it can give up on work nobody waits for.
fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[cfg(test)]
mod tests;
