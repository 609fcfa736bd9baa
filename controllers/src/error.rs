//! The controller manager's one error type. Reconcile errors are logged and retried with
//! backoff; none of them stops a controller.

use std::time::Duration;

use kube::runtime::controller::Action;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the API server refused a request: {0}; the controller retries")]
    Api(#[from] kube::Error),
    #[error("{kind} {name} is invalid: {reason}; fix the object and the controller retries")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

impl Error {
    pub fn invalid(kind: &'static str, name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// The error policy every controller shares: log, and try again shortly. A conflict (409)
/// means the object moved under us; the watch brings the new version soon anyway.
pub(crate) fn retry_soon<K>(
    _obj: std::sync::Arc<K>,
    err: &Error,
    _ctx: std::sync::Arc<impl Sized>,
) -> Action {
    match err {
        Error::Api(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(error = %err, "conflict; retrying");
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            tracing::warn!(error = %err, "reconcile failed; retrying");
            Action::requeue(Duration::from_secs(5))
        }
    }
}
