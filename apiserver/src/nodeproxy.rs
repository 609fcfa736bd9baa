//! `pods/log`: the API server finds the pod's node and proxies the request to that node
//! agent's HTTPS endpoint (`/containerLogs/NS/POD/CONTAINER`), streaming the answer back, as
//! Kubernetes' API server does with kubelets. `pods/exec` (in `exec.rs`) reaches the node
//! the same way.
//!
//! The API server has no TLS client of its own: the binary hands it a [`KubeletClient`]
//! (an HTTPS client that trusts the cluster CA and presents the API server's kubelet-client
//! certificate) with [`set_kubelet_client`](crate::set_kubelet_client). Until then, logs and
//! exec answer 503.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http::StatusCode;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::request::{self, Target};
use crate::state::ApiState;

/// The query parameters of `pods/log` that the node agent acts on.
const FORWARDED: &[&str] = &[
    "follow",
    "tailLines",
    "timestamps",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// How much of a node agent's error answer is shown to the user.
const MAX_ERROR_BODY: usize = 4096;

/// A way to reach node agents over HTTPS, supplied by the binary.
pub trait KubeletClient: Send + Sync + 'static {
    /// GETs `url` (`https://IP:PORT/…`); `Err` says why the node agent could not be reached.
    fn get(&self, url: String) -> BoxFuture<'static, Result<KubeletResponse, String>>;

    /// Sends `method url` with `headers`, an HTTP/1.1 upgrade request (WebSocket or SPDY, for
    /// `pods/exec`), and hands over the connection if the node agent switches protocols.
    /// `Err` says why the node agent could not be reached.
    fn upgrade(
        &self,
        url: String,
        method: http::Method,
        headers: http::HeaderMap,
    ) -> BoxFuture<'static, Result<KubeletUpgrade, String>>;
}

/// A node agent's answer to an upgrade request.
pub struct KubeletUpgrade {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The connection, now speaking the protocol the node agent switched to, when `status`
    /// is 101.
    pub io: Option<Box<dyn UpgradedIo>>,
    /// The start of the body of any other answer (a few KiB are enough for a message).
    pub body: Bytes,
}

/// A connection after `101 Switching Protocols`.
pub trait UpgradedIo:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> UpgradedIo for T {}

/// A node agent's answer: its status and its body, as it arrives.
pub struct KubeletResponse {
    pub status: u16,
    pub body: Box<dyn KubeletBody>,
}

/// The body of a node agent's answer, chunk by chunk (a follow stream may never end on its
/// own; dropping the body closes the request).
pub trait KubeletBody: Send + 'static {
    /// The next chunk; `None` at the end, `Err` if the connection broke.
    fn next_chunk(&mut self) -> BoxFuture<'_, Option<Result<Bytes, String>>>;
}

fn into_stream(body: Box<dyn KubeletBody>) -> BoxStream<'static, Result<Bytes, String>> {
    futures::stream::unfold(body, |mut body| async move {
        let chunk = body.next_chunk().await?;
        Some((chunk, body))
    })
    .boxed()
}

/// Where the state keeps the client; shared by every clone of the state, so the binary may set
/// it after the routers are built.
pub type KubeletSlot = Arc<RwLock<Option<Arc<dyn KubeletClient>>>>;

pub fn set(slot: &KubeletSlot, client: Arc<dyn KubeletClient>) {
    *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(client);
}

/// A Kubernetes `Status` for failures that have no [`ApiError`] of their own.
pub(crate) fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(json!({
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

pub(crate) fn unavailable(message: String) -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    )
}

/// Serves `GET …/pods/NAME/log?container=…&follow=…`.
pub async fn pod_log(state: &ApiState, t: &Target, query: Option<&str>) -> ApiResult<Response> {
    let pod_name = t.name.clone().unwrap_or_default();
    let namespace = t.namespace.clone().unwrap_or_else(|| "default".into());
    let (pod, _) = crate::rest::current(state, t).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let container = choose_container(&pod, &pod_name, asked)?;
    let (node_name, endpoint, client) = match route(state, &pod, &pod_name, "pod logs").await? {
        Ok(r) => r,
        Err(response) => return Ok(response),
    };
    let forwarded: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| FORWARDED.contains(&k.as_str()))
        .collect();
    let mut url = format!("https://{endpoint}/containerLogs/{namespace}/{pod_name}/{container}",);
    if !forwarded.is_empty() {
        url.push('?');
        url.push_str(
            &serde_urlencoded::to_string(&forwarded)
                .map_err(|e| ApiError::Internal(format!("cannot encode the log query: {e}")))?,
        );
    }

    let reply = match client.get(url).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(unavailable(format!(
                "cannot reach the node agent of node {node_name} at {endpoint}: {e}"
            )));
        }
    };
    if (200..300).contains(&reply.status) {
        // Ends when the node agent ends it, when the client leaves (the body is dropped, and
        // the request to the node with it), or when this server stops.
        let body = into_stream(reply.body)
            .take_until(state.shutdown.clone().cancelled_owned())
            .map(|chunk| chunk.map_err(std::io::Error::other));
        return Ok((
            [(http::header::CONTENT_TYPE, "text/plain")],
            Body::from_stream(body),
        )
            .into_response());
    }
    let message = read_message(into_stream(reply.body)).await;
    let message = if message.is_empty() {
        format!(
            "the node agent of node {node_name} answered {}",
            reply.status
        )
    } else {
        message
    };
    // The node's 4xx are the user's to fix (a container that has not started, no previous
    // run); Kubernetes shows them as BadRequest.
    Ok(if (400..500).contains(&reply.status) {
        status(StatusCode::BAD_REQUEST, "BadRequest", message)
    } else {
        status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    })
}

/// The pod's node, its node agent's `IP:PORT`, and the client to reach it; or the answer
/// that says why it cannot be reached (`what` names what the user asked for).
pub(crate) async fn route(
    state: &ApiState,
    pod: &Value,
    pod_name: &str,
    what: &str,
) -> ApiResult<Result<(String, String, Arc<dyn KubeletClient>), Response>> {
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {pod_name} is not scheduled to a node yet"))
        })?
        .to_owned();

    let nodes = state
        .registry
        .lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::Internal("the nodes resource is not registered".into()))?;
    let Some(kv) = state
        .store
        .get(&request::object_key(&nodes, None, &node_name))
        .await?
    else {
        return Ok(Err(unavailable(format!(
            "node {node_name} of pod {pod_name} is not registered; is its node agent running?"
        ))));
    };
    let node = crate::objects::from_store(&kv)?;
    let Some(endpoint) = kubelet_endpoint(&node) else {
        return Ok(Err(unavailable(format!(
            "node {node_name} reports no address and kubelet port, so its node agent cannot be reached"
        ))));
    };

    let client = state
        .kubelet
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(client) = client else {
        return Ok(Err(unavailable(format!(
            "{what} are served by the pod's node agent, and this API server has no client for node agents"
        ))));
    };
    Ok(Ok((node_name, endpoint, client)))
}

/// The container asked for: the one named, or the pod's only container.
pub(crate) fn choose_container(
    pod: &Value,
    pod_name: &str,
    asked: Option<&str>,
) -> ApiResult<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    match asked {
        Some(name) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|c| c == name)
            {
                Ok(name.to_owned())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {name} is not valid for pod {pod_name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// `IP:PORT` of a Node's kubelet endpoint: its InternalIP (else ExternalIP, else Hostname)
/// and `status.daemonEndpoints.kubeletEndpoint.Port`.
fn kubelet_endpoint(node: &Value) -> Option<String> {
    let endpoint = &node["status"]["daemonEndpoints"]["kubeletEndpoint"];
    let port = endpoint["Port"]
        .as_u64()
        .or_else(|| endpoint["port"].as_u64())
        .filter(|p| (1..=65535).contains(p))?;
    let addresses = node["status"]["addresses"].as_array()?;
    let address = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .find(|a| a["type"].as_str() == Some(kind))
                .and_then(|a| a["address"].as_str())
                .filter(|a| !a.is_empty())
        })?;
    Some(match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{address}:{port}"),
    })
}

/// The start of a node agent's error answer, as text.
async fn read_message(mut body: BoxStream<'static, Result<Bytes, String>>) -> String {
    let mut buf = Vec::new();
    while buf.len() < MAX_ERROR_BODY {
        match body.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    buf.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&buf).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_defaults_to_the_only_one_and_names_the_choices() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "app");
        let two = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "setup"}],
        }});
        assert_eq!(
            choose_container(&two, "p", None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [setup]"
        );
        assert_eq!(choose_container(&two, "p", Some("setup")).unwrap(), "setup");
        assert_eq!(
            choose_container(&two, "p", Some("c"))
                .unwrap_err()
                .to_string(),
            "container c is not valid for pod p"
        );
    }

    #[test]
    fn endpoint_prefers_the_internal_ip() {
        let node = json!({"status": {
            "addresses": [
                {"type": "Hostname", "address": "edge-1"},
                {"type": "InternalIP", "address": "10.0.0.7"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        }});
        assert_eq!(kubelet_endpoint(&node).unwrap(), "10.0.0.7:10250");
        let v6 = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "::1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}},
        }});
        assert_eq!(kubelet_endpoint(&v6).unwrap(), "[::1]:1");
        assert!(kubelet_endpoint(&json!({"status": {}})).is_none());
    }
}
