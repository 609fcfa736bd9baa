//! Bearer tokens beyond the admin's: node credentials and ServiceAccount tokens.
//!
//! They live in the store (under `/registry/sextant.dev/tokens/`, keyed by the token's
//! SHA-256, never the token itself), so every control-plane node accepts a token any of
//! them issued, and a copy of the data dir leaks no usable credential.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sextant_store::{Precondition, Store, StoreError};

use crate::auth::Identity;

const PREFIX: &str = "/registry/sextant.dev/tokens/";

#[derive(Serialize, Deserialize)]
struct StoredToken {
    user: String,
    groups: Vec<String>,
    /// Unix seconds after which the token is refused; `None` never expires.
    expires: Option<i64>,
}

fn key(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

/// Issues a new random token for `who`, valid for `ttl` (or until revoked). Returns the
/// token and its expiry (unix seconds).
pub async fn issue(
    store: &Store,
    who: &Identity,
    ttl: Option<Duration>,
) -> Result<(String, Option<i64>), StoreError> {
    let token = random_hex(32);
    let expires = ttl.map(|t| jiff::Timestamp::now().as_second() + t.as_secs() as i64);
    let stored = StoredToken {
        user: who.user.clone(),
        groups: who.groups.clone(),
        expires,
    };
    store
        .put(
            key(&token),
            serde_json::to_vec(&stored).expect("JSON encodes"),
            Precondition::Absent,
        )
        .await?;
    Ok((token, expires))
}

/// `bytes` random bytes as hex: every secret a node hands out (tokens, the admin
/// credential, the cluster secret) is made here.
pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The identity a stored token stands for, if it exists and has not expired.
pub async fn lookup(store: &Store, token: &str) -> Option<Identity> {
    let key = key(token);
    // This node's copy first; a token issued a moment ago through another node may not have
    // reached it yet, so a miss asks the leader.
    let kv = match store.get_local(&key).ok().flatten() {
        Some(kv) => kv,
        None => store.get(&key).await.ok().flatten()?,
    };
    let stored: StoredToken = serde_json::from_slice(&kv.value).ok()?;
    if stored
        .expires
        .is_some_and(|e| e < jiff::Timestamp::now().as_second())
    {
        return None;
    }
    Some(Identity {
        user: stored.user,
        groups: stored.groups,
    })
}

/// The identity of a node agent.
pub fn node_identity(node: &str) -> Identity {
    Identity {
        user: format!("system:node:{node}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    }
}

/// The identity of a ServiceAccount.
pub fn service_account_identity(namespace: &str, name: &str) -> Identity {
    Identity {
        user: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    }
}
