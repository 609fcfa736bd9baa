//! Serving the OpenAPI documents (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/api/v1`, …).
//!
//! Generating them from the types takes a moment and they change only when the set of
//! resources does (a CRD is added), so each is built once per resource set, kept as bytes,
//! and served with a content hash that clients cache by (`?hash=` and `ETag`).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use sextant_api::openapi::{Documents, Rendered};
use sextant_api::resources::ResourceInfo;

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

#[derive(Clone, Default)]
pub struct Cache {
    built: Arc<Mutex<Option<Arc<Built>>>>,
}

struct Built {
    resources: Vec<ResourceInfo>,
    custom: Vec<crate::registry::CustomKind>,
    docs: Documents,
}

impl Cache {
    async fn get(&self, state: &ApiState) -> ApiResult<Arc<Built>> {
        let resources = state.registry.all();
        let custom = state.registry.custom();
        if let Some(b) = self.built.lock().expect("openapi cache poisoned").as_ref()
            && b.resources == resources
            && b.custom == custom
        {
            return Ok(b.clone());
        }
        let built = tokio::task::spawn_blocking(move || {
            let crds: Vec<(ResourceInfo, serde_json::Value)> = custom
                .iter()
                .map(|c| (c.info.clone(), c.schema.clone()))
                .collect();
            let docs = Documents::build(&resources, &crds);
            Built {
                resources,
                custom,
                docs,
            }
        })
        .await
        .map_err(|e| ApiError::Internal(format!("building the OpenAPI documents failed: {e}")))?;
        let built = Arc::new(built);
        *self.built.lock().expect("openapi cache poisoned") = Some(built.clone());
        Ok(built)
    }
}

fn json_bytes(r: &Rendered) -> Response {
    let mut resp = Bytes::from(r.bytes.clone()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(e) = HeaderValue::from_str(&format!("\"{}\"", r.hash)) {
        resp.headers_mut().insert(http::header::ETAG, e);
    }
    resp
}

/// Only JSON is served; a client asking for the protobuf form alone is told so, and
/// kubectl then falls back to OpenAPI v3.
fn accepts_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("json") || a.contains("*/*"))
}

pub async fn v2(State(state): State<ApiState>, headers: http::HeaderMap) -> Response {
    if !accepts_json(&headers) {
        return ApiError::NotAcceptable {
            message: "the OpenAPI v2 document is served as application/json only".into(),
        }
        .into_response();
    }
    match state.openapi.get(&state).await {
        Ok(b) => json_bytes(&b.docs.v2),
        Err(e) => e.into_response(),
    }
}

pub async fn v3_index(State(state): State<ApiState>) -> Response {
    match state.openapi.get(&state).await {
        Ok(b) => json_bytes(&b.docs.v3_index),
        Err(e) => e.into_response(),
    }
}

pub async fn v3_document(State(state): State<ApiState>, Path(path): Path<String>) -> Response {
    match state.openapi.get(&state).await {
        Ok(b) => match b.docs.group_version(path.trim_end_matches('/')) {
            Some(r) => json_bytes(r),
            None => ApiError::NoResource {
                hint: Some(format!("no OpenAPI document for {path}")),
            }
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}
