//! `pods/exec`: the API server checks the pod and container, finds the pod's node as
//! `pods/log` does, and carries the client's connection upgrade (WebSocket `v5.channel.k8s.io`
//! from kubectl, or SPDY/3.1, its fallback) to that node agent's `/exec/NS/POD/CONTAINER`.
//! When the node agent switches protocols, so does this server, and from then on it only
//! copies bytes both ways; anything else the node agent answers (the container is a wasm
//! module, it is not running, …) goes back to the client as a `Status`.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::nodeproxy;
use crate::request::Target;
use crate::state::ApiState;

/// Where kubectl records which container `exec` and `logs` pick when none is named.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The headers of an upgrade that the node agent must see, in both directions.
fn is_upgrade_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == header::CONNECTION
        || name == header::UPGRADE
        || name.starts_with("sec-websocket-")
        || name == "x-stream-protocol-version"
}

/// Serves `GET|POST …/pods/NAME/exec?command=…&container=…&stdin=…&stdout=…&stderr=…&tty=…`.
pub async fn pod_exec(state: &ApiState, t: &Target, mut req: Request) -> ApiResult<Response> {
    let pod_name = t.name.clone().unwrap_or_default();
    let namespace = t.namespace.clone().unwrap_or_else(|| "default".into());
    let (pod, _) = crate::rest::current(state, t).await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let asked = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty());
    let container = exec_container(&pod, &pod_name, asked)?;
    if !req.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request(
            "Upgrade request required: exec streams over WebSocket (v5.channel.k8s.io) or SPDY/3.1",
        ));
    }
    let (node_name, endpoint, client) =
        match nodeproxy::route(state, &pod, &pod_name, "exec sessions").await? {
            Ok(r) => r,
            Err(response) => return Ok(response),
        };
    let url = format!(
        "https://{endpoint}/exec/{namespace}/{pod_name}/{container}?{}",
        kubelet_query(&pairs)?
    );
    let headers: HeaderMap = req
        .headers()
        .iter()
        .filter(|(name, _)| is_upgrade_header(name))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let method = req.method().clone();
    let from_client = hyper::upgrade::on(&mut req);
    let reply = match client.upgrade(url, method, headers).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(nodeproxy::unavailable(format!(
                "cannot reach the node agent of node {node_name} at {endpoint}: {e}"
            )));
        }
    };
    let (101, Some(mut node)) = (reply.status, reply.io) else {
        return Ok(refusal(&node_name, reply.status, &reply.body));
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in reply.headers.iter().filter(|(n, _)| is_upgrade_header(n)) {
        response.headers_mut().append(name.clone(), value.clone());
    }
    // The upgraded connections outlive this request: the splice ends when either side
    // closes, or when this server stops.
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let splice = async {
            match from_client.await {
                Ok(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut node).await {
                        tracing::debug!(error = %e, "exec: session ended with an error");
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
    Ok(response)
}

/// The container to exec into: the one named; else the one kubectl's default-container
/// annotation names, if the pod has it; else the pod's only container.
fn exec_container(pod: &Value, pod_name: &str, asked: Option<&str>) -> ApiResult<String> {
    if asked.is_none() {
        let annotated = pod["metadata"]["annotations"][DEFAULT_CONTAINER].as_str();
        let exists = |name: &str| {
            pod["spec"]["containers"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == name))
        };
        if let Some(name) = annotated.filter(|n| exists(n)) {
            return Ok(name.to_owned());
        }
    }
    nodeproxy::choose_container(pod, pod_name, asked)
}

/// The node agent's query, named as kubelets name it: `command` (repeated), and
/// `input`/`output`/`error`/`tty` set to `1` for the streams asked for.
fn kubelet_query(pairs: &[(String, String)]) -> ApiResult<String> {
    let on = |name: &str| {
        pairs
            .iter()
            .any(|(k, v)| k == name && matches!(v.as_str(), "true" | "1" | "True" | "TRUE"))
    };
    let mut out: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| ("command", v.as_str()))
        .collect();
    for (api, kubelet) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if on(api) {
            out.push((kubelet, "1"));
        }
    }
    serde_urlencoded::to_string(&out)
        .map_err(|e| ApiError::Internal(format!("cannot encode the exec query: {e}")))
}

/// The node agent did not switch protocols: its Status as it sent it (so kubectl shows the
/// node's own message, such as why a wasm container has no shell), or its text in one.
fn refusal(node_name: &str, code: u16, body: &[u8]) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Ok(status) = serde_json::from_slice::<Value>(body)
        && status["kind"] == "Status"
    {
        return (code, axum::Json(status)).into_response();
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let message = if text.is_empty() {
        format!("the node agent of node {node_name} answered {code} to the exec request")
    } else {
        text
    };
    if code.is_client_error() {
        nodeproxy::status(code, "BadRequest", message)
    } else {
        nodeproxy::status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn the_query_is_renamed_as_kubelets_take_it() {
        let q = pairs(
            "command=sh&command=-c&command=echo+a%26b&container=app&stdin=true&stdout=true&stderr=false&tty=1",
        );
        assert_eq!(
            kubelet_query(&q).unwrap(),
            "command=sh&command=-c&command=echo+a%26b&input=1&output=1&tty=1"
        );
    }

    #[test]
    fn the_default_container_annotation_picks_among_several() {
        let pod = json!({
            "metadata": {"annotations": {DEFAULT_CONTAINER: "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        });
        assert_eq!(exec_container(&pod, "p", None).unwrap(), "b");
        assert_eq!(exec_container(&pod, "p", Some("a")).unwrap(), "a");
        // An annotation that names no container is ignored: the choices are listed.
        let stale = json!({
            "metadata": {"annotations": {DEFAULT_CONTAINER: "gone"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        });
        assert_eq!(
            exec_container(&stale, "p", None).unwrap_err().to_string(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }

    #[test]
    fn upgrade_headers_are_the_ones_forwarded() {
        for name in [
            "connection",
            "upgrade",
            "sec-websocket-key",
            "sec-websocket-protocol",
            "sec-websocket-version",
            "sec-websocket-accept",
            "x-stream-protocol-version",
        ] {
            assert!(is_upgrade_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["authorization", "cookie", "host", "content-length"] {
            assert!(!is_upgrade_header(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn a_node_status_is_relayed_as_it_is() {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "container \"app\" is a WebAssembly module", "code": 400});
        let r = refusal("n", 400, status.to_string().as_bytes());
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = refusal("n", 502, b"");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
