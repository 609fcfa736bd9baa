//! `/healthz`, `/livez`, `/readyz` and `/version`, readable without credentials.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use crate::state::ApiState;

/// The Kubernetes version whose API Sextant serves (k8s-openapi's feature `v1_33`).
pub const KUBE_MINOR: &str = "33";

pub async fn livez() -> &'static str {
    "ok"
}

/// Ready when the store has a leader: without one, no write could succeed.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    match state.store.status() {
        Ok(s) if s.leader.is_some() => "ok".into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]store: no leader\nreadyz check failed",
        )
            .into_response(),
    }
}

pub async fn version() -> Response {
    axum::Json(json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-sextant.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    }))
    .into_response()
}
