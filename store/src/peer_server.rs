//! Inbound peer endpoints: raft RPCs, forwarded writes and reads, membership changes.
//!
//! [`router`] returns an axum `Router` with every path under
//! [`PATH_PREFIX`](crate::PATH_PREFIX); the caller serves it, on its own listener or merged
//! into the API server's, so a node needs one port. Every request must carry the cluster
//! token; anything else is refused with 401 before its body is read.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openraft::error::{ClientWriteError, RaftError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bearer::{bearer_token, secret_eq};
use crate::command::{Command, codec};
use crate::node::Store;
use crate::peer_client::PATH_PREFIX;
use crate::proposer::ForwardError;
use crate::raft::NodeId;

/// Raft messages carry batches of entries and snapshot chunks; well above both.
const MAX_PEER_BODY: usize = 64 * 1024 * 1024;

pub fn router(store: Store) -> Router {
    let routes = Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/propose", post(propose))
        .route("/read-index", post(read_index))
        .route("/members/add", post(add_member))
        .route("/members/remove", post(remove_member))
        .route("/status", axum::routing::get(status))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
        .route_layer(middleware::from_fn_with_state(store.clone(), authenticate))
        .with_state(store);
    Router::new().nest(PATH_PREFIX, routes)
}

async fn authenticate(
    State(store): State<Store>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match bearer_token(header) {
        Some(token) if secret_eq(token, &store.config().cluster_token) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            "a valid cluster token is required for store peer endpoints",
        )
            .into_response(),
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the response itself, built once per bad request"
)]
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    codec::decode(body).map_err(|e| {
        (StatusCode::BAD_REQUEST, format!("the request body did not decode ({e}); is the peer running the same Sextant version?"))
            .into_response()
    })
}

fn reply<T: Serialize>(value: &T) -> Response {
    (StatusCode::OK, codec::encode(value)).into_response()
}

async fn append(State(store): State<Store>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => reply(&store.raft().append_entries(req).await),
        Err(r) => r,
    }
}

async fn vote(State(store): State<Store>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => reply(&store.raft().vote(req).await),
        Err(r) => r,
    }
}

async fn snapshot(State(store): State<Store>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(req) => reply(&store.raft().install_snapshot(req).await),
        Err(r) => r,
    }
}

/// A batch forwarded by another node. It is never forwarded again: if this node is no longer
/// the leader it says so, and the origin retries against the new one.
async fn propose(State(store): State<Store>, body: Bytes) -> Response {
    let commands: Vec<Command> = match decode(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let answer = match store.raft().client_write(commands).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ForwardError::NotLeader)
        }
        Err(RaftError::Fatal(_)) => Err(ForwardError::Stopped),
        Err(e) => Err(ForwardError::Failed(e.to_string())),
    };
    reply(&answer)
}

async fn read_index(State(store): State<Store>) -> Response {
    let answer = match store.raft().get_read_log_id().await {
        Ok((read, _)) => Ok(read.map_or(0, |id| id.index)),
        Err(RaftError::APIError(_)) => Err(ForwardError::NotLeader),
        Err(RaftError::Fatal(_)) => Err(ForwardError::Stopped),
    };
    reply(&answer)
}

async fn add_member(State(store): State<Store>, body: Bytes) -> Response {
    let (id, url): (NodeId, String) = match decode(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    tracing::info!(node = id, %url, "adding store node");
    reply(
        &store
            .add_voter(id, url)
            .await
            .map_err(|e| ForwardError::Failed(e.to_string())),
    )
}

async fn remove_member(State(store): State<Store>, body: Bytes) -> Response {
    let id: NodeId = match decode(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    tracing::info!(node = id, "removing store node");
    reply(
        &store
            .remove_node(id)
            .await
            .map_err(|e| ForwardError::Failed(e.to_string())),
    )
}

/// The node's view of the cluster, as JSON, for operators (`curl -H "Authorization: Bearer …"`).
async fn status(State(store): State<Store>) -> Response {
    match store.status() {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
