//! The URL space, and the dispatch of each request to its verb.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{Method, StatusCode};

use crate::body::{self, BodyType};
use crate::error::{ApiError, ApiResult};
use crate::request::{self, Params, Target};
use crate::state::ApiState;
use crate::{auth, discovery, health, list, openapi, rest, watch};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::livez))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/version", get(health::version))
        .route("/api", get(core_versions))
        .route("/apis", get(groups))
        .route("/api/v1", get(core_resources))
        .route("/apis/{group}", get(one_group))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/api/v1/{*rest}", any(core_dispatch))
        .route("/apis/{group}/{version}/{*rest}", any(group_dispatch))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_index))
        .route("/openapi/v3/{*path}", get(openapi::v3_document))
        .fallback(|| async { ApiError::NoResource { hint: None } })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ))
        .with_state(state)
}

fn accept(req: &Request) -> Option<&str> {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

async fn core_versions(State(state): State<ApiState>, req: Request) -> Response {
    if discovery::wants_aggregated(accept(&req)) {
        return discovery::aggregated(&state.registry, true);
    }
    axum::Json(discovery::api_versions()).into_response()
}

async fn groups(State(state): State<ApiState>, req: Request) -> Response {
    if discovery::wants_aggregated(accept(&req)) {
        return discovery::aggregated(&state.registry, false);
    }
    axum::Json(discovery::group_list(&state.registry)).into_response()
}

async fn core_resources(State(state): State<ApiState>) -> Response {
    match discovery::resource_list(&state.registry, "", "v1") {
        Some(v) => axum::Json(v).into_response(),
        None => ApiError::NoResource { hint: None }.into_response(),
    }
}

async fn one_group(State(state): State<ApiState>, Path(group): Path<String>) -> Response {
    match discovery::group(&state.registry, &group) {
        Some(v) => axum::Json(v).into_response(),
        None => ApiError::NoResource {
            hint: Some(format!("no API group {group:?}")),
        }
        .into_response(),
    }
}

async fn group_resources(
    State(state): State<ApiState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    match discovery::resource_list(&state.registry, &group, &version) {
        Some(v) => axum::Json(v).into_response(),
        None => ApiError::NoResource {
            hint: Some(format!("no API group-version {group}/{version}")),
        }
        .into_response(),
    }
}

async fn core_dispatch(
    State(state): State<ApiState>,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    dispatch(state, String::new(), "v1".into(), rest, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn group_dispatch(
    State(state): State<ApiState>,
    Path((group, version, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    dispatch(state, group, version, rest, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn dispatch(
    state: ApiState,
    group: String,
    version: String,
    rest: String,
    req: Request,
) -> ApiResult<Response> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let t = request::resolve(&state.registry, &group, &version, &segs)?;
    let params = Params::parse(req.uri().query())?;
    let accept = body::negotiate(accept(&req))?;
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().clone();
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut params = params;
    if params.field_manager.as_deref().is_none_or(str::is_empty) {
        params.field_manager = Some(default_manager(user_agent.as_deref()));
    }
    let body_bytes = |body: Body| body::read(body);
    match method {
        Method::GET if t.subresource.as_deref() == Some("log") => {
            crate::nodeproxy::pod_log(&state, &t, req.uri().query()).await
        }
        // WebSocket clients upgrade with GET, SPDY clients with POST.
        Method::GET | Method::POST if t.subresource.as_deref() == Some("exec") => {
            crate::exec::pod_exec(&state, &t, req).await
        }
        _ if t.subresource.as_deref() == Some("exec") => Err(ApiError::MethodNotAllowed),
        Method::GET if params.is_watch() => watch::watch(&state, &t, &params, accept).await,
        Method::GET if t.name.is_none() => {
            Ok(axum::Json(list::list(&state, &t, &params, accept).await?).into_response())
        }
        Method::GET => {
            let obj = rest::get(&state, &t).await?;
            Ok(axum::Json(list::render_one(&state, &t, obj, accept, &params)?).into_response())
        }
        Method::POST => {
            let bt = BodyType::from_content_type(content_type.as_deref())?;
            let bytes = body_bytes(req.into_body()).await?;
            Ok(rest::create(&state, &t, &params, bt, &bytes)
                .await?
                .into_response())
        }
        Method::PUT => {
            need_name(&t)?;
            let bt = BodyType::from_content_type(content_type.as_deref())?;
            let bytes = body_bytes(req.into_body()).await?;
            Ok(rest::update(&state, &t, &params, bt, &bytes)
                .await?
                .into_response())
        }
        Method::PATCH => {
            need_name(&t)?;
            let bt = BodyType::from_content_type(content_type.as_deref())?;
            let bytes = body_bytes(req.into_body()).await?;
            Ok(rest::patch(&state, &t, &params, bt, &bytes)
                .await?
                .into_response())
        }
        Method::DELETE if t.name.is_some() => {
            let bytes = body_bytes(req.into_body()).await?;
            Ok(rest::delete(&state, &t, &params, &bytes)
                .await?
                .into_response())
        }
        Method::DELETE => {
            let bytes = body_bytes(req.into_body()).await?;
            delete_collection(&state, &t, &params, &bytes).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The field manager of a write that names none: the client's program name, as Kubernetes
/// takes it from the User-Agent (`kubectl/v1.33.1 (linux/amd64) …` → `kubectl`).
fn default_manager(user_agent: Option<&str>) -> String {
    user_agent
        .and_then(|ua| ua.split('/').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

fn need_name(t: &Target) -> ApiResult<()> {
    if t.name.is_none() {
        return Err(ApiError::MethodNotAllowed);
    }
    Ok(())
}

/// Deletes every selected object, each as a single delete would.
async fn delete_collection(
    state: &ApiState,
    t: &Target,
    params: &Params,
    opts: &[u8],
) -> ApiResult<Response> {
    let filter = list::Filter::new(t, params)?;
    let listed = list::collect(state, t, &params.selection_only(), &filter).await?;
    let mut deleted = Vec::new();
    for obj in listed.items {
        let name = crate::objects::name(&obj).unwrap_or_default().to_owned();
        let ns = crate::objects::meta_str(&obj, "namespace").map(str::to_owned);
        let one = Target {
            name: Some(name),
            namespace: ns.or(t.namespace.clone()),
            ..t.clone()
        };
        match rest::delete(state, &one, params, opts).await {
            Ok(r) => deleted.push(r.object),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let r = &t.resource;
    Ok((StatusCode::OK, axum::Json(serde_json::json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": {}, "items": deleted}))).into_response())
}
