//! Who is asking: bearer tokens mapped to identities. The admin's token is held in memory;
//! node and ServiceAccount tokens are in the store (`tokens.rs`). Anonymous requests reach
//! only the health and version endpoints, as with Kubernetes' `system:public-info-viewer`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// A user as the API sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn admin() -> Self {
        Identity {
            user: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }
}

/// Token → identity. Cheap to clone; tokens can be added at run time (node credentials).
#[derive(Clone, Default)]
pub struct Authenticator {
    tokens: Arc<RwLock<HashMap<String, Identity>>>,
}

impl Authenticator {
    pub fn add_token(&self, token: impl Into<String>, who: Identity) {
        self.tokens
            .write()
            .expect("token table poisoned")
            .insert(token.into(), who);
    }

    pub fn authenticate(&self, header: Option<&str>) -> Option<Identity> {
        let token = sextant_store::bearer_token(header)?.trim();
        let tokens = self.tokens.read().expect("token table poisoned");
        // Compare against every token without an early exit, so timing does not reveal one.
        let mut found = None;
        for (t, who) in tokens.iter() {
            if sextant_store::secret_eq(t, token) {
                found = Some(who.clone());
            }
        }
        found
    }
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

pub async fn middleware(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut who = state.auth.authenticate(header);
    if who.is_none()
        && let Some(token) = sextant_store::bearer_token(header)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    {
        who = crate::tokens::lookup(&state.store, token).await;
    }
    match who {
        Some(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        None => ApiError::Unauthorized {
            message: "a valid bearer token is required; use the kubeconfig written to the server's data dir".into(),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let a = Authenticator::default();
        a.add_token("s3cret", Identity::admin());
        assert_eq!(
            a.authenticate(Some("Bearer s3cret")),
            Some(Identity::admin())
        );
        assert_eq!(a.authenticate(Some("Bearer s3cre")), None);
        assert_eq!(a.authenticate(Some("Basic s3cret")), None);
        assert_eq!(a.authenticate(None), None);
    }
}
