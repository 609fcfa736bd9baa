//! Outbound calls to other store nodes: raft RPCs, and forwarding to the leader.
//!
//! Every call is an HTTP POST of a postcard body to a path under [`PATH_PREFIX`] on the
//! peer's base URL, carrying the cluster token as a bearer credential. The HTTP client comes
//! from the caller, so that `sextant server` can give it the cluster CA for HTTPS; tests use
//! plain HTTP on loopback.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::command::codec;
use crate::error::StoreError;
use crate::raft::{Node, NodeId, TypeConfig};

/// Where the store's peer endpoints live on a node's HTTP server.
pub const PATH_PREFIX: &str = "/sextant.dev/store/v1";

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// No connection was made, so the peer never saw the request: safe to retry.
    #[error("{0}")]
    Connect(String),
    /// The request may or may not have reached the peer.
    #[error("{0}")]
    Unreachable(String),
    #[error("the peer refused the cluster token")]
    Unauthorized,
    #[error("the peer answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the peer's answer did not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl PeerError {
    pub fn into_store_error(self, url: &str) -> StoreError {
        match self {
            PeerError::Unauthorized => StoreError::Unauthorized {
                url: url.to_owned(),
            },
            other => StoreError::Unavailable {
                url: url.to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// A connection pool and credentials for talking to peers.
#[derive(Clone)]
pub(crate) struct Peers {
    http: reqwest::Client,
    token: Arc<str>,
}

impl Peers {
    pub fn new(http: reqwest::Client, token: &str) -> Self {
        Peers {
            http,
            token: token.into(),
        }
    }

    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        base_url: &str,
        path: &str,
        req: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, PeerError> {
        let url = format!("{}{PATH_PREFIX}{path}", base_url.trim_end_matches('/'));
        let mut builder = self
            .http
            .post(&url)
            .bearer_auth(&*self.token)
            .header("content-type", "application/octet-stream")
            .body(codec::encode(req));
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let resp = builder.send().await.map_err(|e| {
            if e.is_connect() {
                PeerError::Connect(error_chain(&e))
            } else {
                PeerError::Unreachable(error_chain(&e))
            }
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| PeerError::Unreachable(error_chain(&e)))?;
        match status.as_u16() {
            200 => Ok(codec::decode(&body)?),
            401 | 403 => Err(PeerError::Unauthorized),
            code => Err(PeerError::Refused {
                status: code,
                message: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}

/// reqwest's `Display` hides the cause ("error sending request"); the chain says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            peers: self.clone(),
            target,
            url: node.addr.clone(),
        }
    }
}

/// Raft's view of one peer.
pub struct PeerConnection {
    peers: Peers,
    target: NodeId,
    url: String,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .peers
            .call(&self.url, path, req, Some(option.hard_ttl()))
            .await
            .map_err(|e| match e {
                // Unreachable makes openraft back off before trying this peer again.
                PeerError::Connect(_) | PeerError::Unreachable(_) => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                other => RPCError::Network(NetworkError::new(&other)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }
}
