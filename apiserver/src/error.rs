//! The one error type of the API server, and the Kubernetes `Status` each becomes.
//!
//! Handlers return `Result<_, ApiError>`; the conversion into a response happens here, in
//! one place: client errors get their 4xx and are not logged, server errors are logged once
//! and shown with a message that says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("{kind_plural}{} \"{name}\" not found", group_suffix(.group))]
    NotFound {
        group: String,
        kind_plural: String,
        name: String,
    },
    #[error("{kind_plural}{} \"{name}\" already exists", group_suffix(.group))]
    AlreadyExists {
        group: String,
        kind_plural: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {kind_plural}{} \"{name}\": {detail}",
        group_suffix(.group)
    )]
    Conflict {
        group: String,
        kind_plural: String,
        name: String,
        detail: String,
    },
    #[error("{0}")]
    Invalid(#[from] sextant_api::Error),
    /// Well-formed but not applicable (a JSON patch `test` that fails).
    #[error("{message}")]
    Unprocessable { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("Unauthorized: {message}")]
    Unauthorized { message: String },
    #[error("the server could not find the requested resource{}", .hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    NoResource { hint: Option<String> },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the request body is too large: the limit is {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("{message}")]
    NotAcceptable { message: String },
    #[error("{message}")]
    Gone { message: String },
    #[error("{message}")]
    Timeout { message: String },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn group_suffix(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } | ApiError::NoResource { .. } => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid(e) => {
                StatusCode::from_u16(e.code()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::NotFound { .. } | ApiError::NoResource { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid(e) if e.code() == 422 => "Invalid",
            ApiError::Invalid(_) => "BadRequest",
            ApiError::Unprocessable { .. } => "Invalid",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::Gone { .. } => "Expired",
            ApiError::Timeout { .. } => "Timeout",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object Kubernetes clients decode.
    pub fn status(&self) -> Value {
        if let ApiError::Invalid(e) = self {
            let mut v = serde_json::to_value(e.to_status()).unwrap_or_else(|_| json!({}));
            v["kind"] = json!("Status");
            v["apiVersion"] = json!("v1");
            v["metadata"] = json!({});
            return v;
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound {
                group,
                kind_plural,
                name,
            }
            | ApiError::AlreadyExists {
                group,
                kind_plural,
                name,
            }
            | ApiError::Conflict {
                group,
                kind_plural,
                name,
                ..
            } => Some(json!({"name": name, "group": group, "kind": kind_plural})),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }

    /// Maps a store error for the object `name` of resource `plural`.
    pub fn from_store(e: StoreError, group: &str, plural: &str, name: &str) -> Self {
        let ctx = || (group.to_owned(), plural.to_owned(), name.to_owned());
        match e {
            StoreError::AlreadyExists { .. } => {
                let (group, kind_plural, name) = ctx();
                ApiError::AlreadyExists {
                    group,
                    kind_plural,
                    name,
                }
            }
            StoreError::NotFound { .. } => {
                let (group, kind_plural, name) = ctx();
                ApiError::NotFound {
                    group,
                    kind_plural,
                    name,
                }
            }
            StoreError::Conflict { .. } => {
                let (group, kind_plural, name) = ctx();
                ApiError::Conflict {
                    group,
                    kind_plural,
                    name,
                    detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
                }
            }
            other => ApiError::from(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::Gone {
                message: format!(
                    "too old resource version: {requested} ({compacted}); list again to get a current resourceVersion"
                ),
            },
            StoreError::FutureRevision { requested, current } => ApiError::Timeout {
                message: format!(
                    "Too large resource version: {requested}, current: {current}; retry once the server has caught up"
                ),
            },
            e if e.is_retryable() => ApiError::Unavailable(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = (code, axum::Json(self.status())).into_response();
        if matches!(self, ApiError::Unavailable(_)) {
            resp.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
