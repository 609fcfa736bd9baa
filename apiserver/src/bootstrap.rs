//! The namespaces every cluster starts with, as Kubernetes creates them.

use serde_json::json;
use sextant_store::{Precondition, Store, StoreError};

use crate::objects::now_rfc3339;

pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates any of the system namespaces that is missing. Safe to run on every start and on
/// every control-plane node at once: a create that loses the race is fine.
pub async fn ensure_defaults(store: &Store) -> Result<(), StoreError> {
    for ns in SYSTEM_NAMESPACES {
        let key = format!("/registry/core/namespaces/{ns}");
        if store.get(&key).await?.is_some() {
            continue;
        }
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now_rfc3339(),
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        match store
            .put(
                key,
                serde_json::to_vec(&obj).expect("JSON encodes"),
                Precondition::Absent,
            )
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
