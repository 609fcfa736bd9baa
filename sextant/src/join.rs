//! Joining a cluster: the join token, and what a joining control-plane node fetches.
//!
//! The token is `SXT1::<sha256 of the CA certificate>::<secret>` (the form k3s uses). A
//! joining node fetches the CA over TLS without trusting it yet, checks it against the hash
//! in the token (so a man in the middle cannot substitute his own), and from then on talks
//! only to servers that CA signed. With the secret it fetches the cluster's CA key and admin
//! credential, so that every control-plane node issues its own serving certificate and writes
//! the same kubeconfig.

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::pki::{self, client_trusting};

const PREFIX: &str = "SXT1";

pub struct JoinToken {
    pub ca_hash: String,
    pub secret: String,
}

impl JoinToken {
    pub fn format(ca_hash: &str, secret: &str) -> String {
        format!("{PREFIX}::{ca_hash}::{secret}")
    }

    pub fn parse(token: &str) -> anyhow::Result<JoinToken> {
        match token.trim().split("::").collect::<Vec<_>>().as_slice() {
            [PREFIX, hash, secret] if hash.len() == 64 && !secret.is_empty() => Ok(JoinToken {
                ca_hash: (*hash).to_owned(),
                secret: (*secret).to_owned(),
            }),
            _ => bail!(
                "the token is not a Sextant join token (SXT1::HASH::SECRET); copy it from the first server's DATA_DIR/node-token"
            ),
        }
    }
}

/// What a joining control-plane node receives.
#[derive(Serialize, Deserialize)]
pub struct Bootstrap {
    pub ca_cert: String,
    pub ca_key: String,
    pub admin_token: String,
}

/// Fetches and verifies the CA, then the bootstrap data, from `url`.
pub async fn fetch(url: &str, token: &JoinToken) -> anyhow::Result<Bootstrap> {
    let url = url.trim_end_matches('/');
    let insecure = insecure_client()?;
    let ca = insecure
        .get(format!("{url}/sextant.dev/v1/cacerts"))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .error_for_status()?
        .text()
        .await?;
    if pki::ca_hash(&ca) != token.ca_hash {
        bail!("the CA served by {url} does not match the join token: check the token and the URL");
    }
    let resp = client_trusting(&ca)?
        .get(format!("{url}/sextant.dev/v1/bootstrap"))
        .bearer_auth(&token.secret)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "{url} refused the join token; copy it again from the first server's DATA_DIR/node-token"
        );
    }
    let body = resp.error_for_status()?.bytes().await?;
    serde_json::from_slice(&body)
        .context("the bootstrap answer does not decode; are both servers the same version?")
}

#[derive(Clone)]
struct Shared {
    secret: Arc<str>,
    bootstrap: Arc<Bootstrap>,
    store: sextant_store::Store,
}

/// `/sextant.dev/v1/cacerts` (public, as the CA certificate is), and for holders of the
/// cluster secret: `/sextant.dev/v1/bootstrap` (joining control-plane nodes) and
/// `/sextant.dev/v1/node-credentials` (node agents trade the join token for a credential
/// of their own, so the secret need not stay on the node).
pub fn router(secret: &str, bootstrap: Bootstrap, store: sextant_store::Store) -> Router {
    let shared = Shared {
        secret: secret.into(),
        bootstrap: Arc::new(bootstrap),
        store,
    };
    Router::new()
        .route(
            "/sextant.dev/v1/cacerts",
            get(|State(s): State<Shared>| async move { s.bootstrap.ca_cert.clone() }),
        )
        .route("/sextant.dev/v1/bootstrap", get(serve_bootstrap))
        .route(
            "/sextant.dev/v1/node-credentials",
            axum::routing::post(node_credentials),
        )
        .with_state(shared)
}

fn holds_secret(s: &Shared, headers: &http::HeaderMap) -> bool {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    sextant_store::bearer_token(header).is_some_and(|p| sextant_store::secret_eq(p, &s.secret))
}

async fn serve_bootstrap(State(s): State<Shared>, headers: http::HeaderMap) -> Response {
    if !holds_secret(&s, &headers) {
        return (
            http::StatusCode::UNAUTHORIZED,
            "a valid join token is required",
        )
            .into_response();
    }
    axum::Json(&*s.bootstrap).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeCredentialsRequest {
    node_name: String,
    /// The addresses the node agent's HTTPS endpoint serves on; its serving certificate
    /// covers them (and the node name).
    #[serde(default)]
    addresses: Vec<std::net::IpAddr>,
}

async fn node_credentials(
    State(s): State<Shared>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !holds_secret(&s, &headers) {
        return (
            http::StatusCode::UNAUTHORIZED,
            "a valid join token is required",
        )
            .into_response();
    }
    let req: NodeCredentialsRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                http::StatusCode::BAD_REQUEST,
                format!("expected {{\"nodeName\": \"…\", \"addresses\": [\"IP\", …]}}: {e}"),
            )
                .into_response();
        }
    };
    if !sextant_api::validation::validate_dns1123_subdomain(&req.node_name).is_empty() {
        return (
            http::StatusCode::BAD_REQUEST,
            "nodeName must be a valid DNS subdomain (lowercase letters, digits, '-', '.')",
        )
            .into_response();
    }
    let (serving_cert, serving_key) =
        match pki::issue_kubelet_serving(&s.bootstrap.ca_key, &req.node_name, &req.addresses) {
            Ok(pair) => pair,
            Err(e) => {
                return (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot issue the node's serving certificate: {e:#}"),
                )
                    .into_response();
            }
        };
    let who = sextant_apiserver::tokens::node_identity(&req.node_name);
    match sextant_apiserver::tokens::issue(&s.store, &who, None).await {
        Ok((token, _)) => axum::Json(serde_json::json!({
            "token": token,
            "user": who.user,
            "caCert": s.bootstrap.ca_cert,
            "servingCert": serving_cert,
            "servingKey": serving_key,
        }))
        .into_response(),
        Err(e) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot issue the credential: {e}"),
        )
            .into_response(),
    }
}

/// A client that accepts any server certificate: used once, to fetch the CA that the join
/// token's hash then verifies.
fn insecure_client() -> anyhow::Result<reqwest::Client> {
    let tls = wasm_kubelet::tls::trust_any()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_or_say_where_to_find_one() {
        let hash = "a".repeat(64);
        let t = JoinToken::parse(&JoinToken::format(&hash, "s3cret")).unwrap();
        assert_eq!(
            (t.ca_hash.as_str(), t.secret.as_str()),
            (hash.as_str(), "s3cret")
        );
        let err = JoinToken::parse("wrong").err().unwrap().to_string();
        assert!(err.contains("node-token"), "{err}");
    }
}
