//! The SDK's one error type: every fallible call returns [`Error`], whose message says what to
//! change (a manifest entry, a request body, a pod annotation), so that a workload can hand it
//! on unchanged to its log, its HTTP client or its exit code.

use std::time::Duration;

use crate::exit::{EXIT_CONFIG, EXIT_ERROR};

/// What went wrong, in words a workload author or operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required environment variable is unset (or empty).
    #[error(
        "env {name} is not set: give the container an env entry {name} (a value, or valueFrom a ConfigMap/Secret key or fieldRef)"
    )]
    MissingEnv { name: String },

    /// An environment variable does not parse as the type asked for.
    #[error("env {name}={value:?} is not valid: {reason}")]
    InvalidEnv {
        name: String,
        value: String,
        reason: String,
    },

    /// A configuration file (usually a mounted ConfigMap or Secret key) cannot be read.
    #[error(
        "cannot read {path}: {source}: mount the ConfigMap or Secret volume that holds it (volumeMounts.mountPath)"
    )]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A configuration file was read but its contents do not parse.
    #[error("{path} is not valid: {reason}")]
    InvalidFile { path: String, reason: String },

    /// An incoming request's body is not the JSON the handler expects.
    #[error("request body is not valid JSON for this endpoint: {reason}")]
    BadJson { reason: String },

    /// An incoming request's body is not UTF-8 text.
    #[error("request body is not UTF-8 text")]
    BadText,

    /// A path parameter does not parse as the type the handler expects.
    #[error("path parameter {name}={value:?} is not valid: {reason}")]
    BadParam {
        name: String,
        value: String,
        reason: String,
    },

    /// A handler's own error, answered with `status` and `message`.
    #[error("{message}")]
    Http { status: u16, message: String },

    /// An outbound URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The node agent refused an outbound request because the pod may not make any.
    #[error(
        "outbound HTTP to {url} is denied: annotate the pod with sextant.dev/outbound: \"allow\""
    )]
    OutboundDenied { url: String },

    /// An outbound request did not complete within its timeout.
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },

    /// An outbound request failed before a complete response arrived.
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },

    /// An outbound response's body is larger than the client accepts.
    #[error("the response from {url} is over {limit} bytes: raise the client's max_response_body")]
    ResponseTooLarge { url: String, limit: usize },

    /// An outbound response is not what the caller expected (a status, a JSON shape).
    #[error("unexpected response from {url}: {reason}")]
    BadResponse { url: String, reason: String },

    /// A value cannot be serialized as JSON (e.g. a map with non-string keys).
    #[error("cannot serialize the value as JSON: {reason}")]
    Encode { reason: String },

    /// Outbound HTTP was called in a host build, where there is no `wasi:http`.
    #[error("outbound HTTP needs the wasm32-wasip2 target; this build is for the host")]
    NotWasm,
}

impl Error {
    /// A handler error answered with `status` and a JSON body `{"error": message}`.
    pub fn http(status: u16, message: impl Into<String>) -> Error {
        Error::Http {
            status,
            message: message.into(),
        }
    }

    /// Whether this is a configuration problem (env or mounted files): commands exit with
    /// [`EXIT_CONFIG`] for these, so that a bad manifest is told apart from a failed run.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::MissingEnv { .. }
                | Error::InvalidEnv { .. }
                | Error::ReadFile { .. }
                | Error::InvalidFile { .. }
        )
    }

    /// The exit code a command that failed with this error ends with (see [`crate::run`]).
    pub fn exit_code(&self) -> u8 {
        if self.is_config() {
            EXIT_CONFIG
        } else {
            EXIT_ERROR
        }
    }

    /// The HTTP status an HTTP service answers with when a handler returns this error:
    /// 400 for bad requests, 500 for the service's own configuration, 502/504 for a
    /// backend that failed or timed out.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::BadJson { .. } | Error::BadText | Error::BadParam { .. } => 400,
            Error::Http { status, .. } => *status,
            Error::Timeout { .. } => 504,
            Error::OutboundDenied { .. }
            | Error::Unreachable { .. }
            | Error::ResponseTooLarge { .. }
            | Error::BadResponse { .. } => 502,
            Error::MissingEnv { .. }
            | Error::InvalidEnv { .. }
            | Error::ReadFile { .. }
            | Error::InvalidFile { .. }
            | Error::InvalidUrl { .. }
            | Error::Encode { .. }
            | Error::NotWasm => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_exit_2_and_others_1() {
        let missing = Error::MissingEnv {
            name: "PORT".into(),
        };
        assert!(missing.is_config());
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("env PORT is not set"));
        assert_eq!(Error::NotWasm.exit_code(), 1);
    }

    #[test]
    fn statuses_follow_the_cause() {
        assert_eq!(Error::BadText.status_code(), 400);
        assert_eq!(Error::http(409, "taken").status_code(), 409);
        let timeout = Error::Timeout {
            url: "http://backend.default.svc.cluster.local/".into(),
            after: Duration::from_secs(2),
        };
        assert_eq!(timeout.status_code(), 504);
        assert_eq!(
            timeout.to_string(),
            "http://backend.default.svc.cluster.local/ did not answer within 2s"
        );
        let denied = Error::OutboundDenied {
            url: "http://x/".into(),
        };
        assert_eq!(denied.status_code(), 502);
        assert!(denied.to_string().contains("sextant.dev/outbound"));
    }
}
