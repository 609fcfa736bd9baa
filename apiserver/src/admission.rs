//! Admission: what the server adds to, or refuses about, an object before it is stored.
//!
//! - NamespaceLifecycle: nothing is created in a namespace that does not exist or is
//!   being deleted;
//! - defaults per kind (`sextant_api::defaults`), including the `default` ServiceAccount
//!   for pods.

use serde_json::Value;
use sextant_api::resources::ResourceInfo;

use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::state::ApiState;

pub async fn namespace_accepts_content(state: &ApiState, ns: &str) -> ApiResult<()> {
    let key = format!("/registry/core/namespaces/{ns}");
    match state.store.get(&key).await? {
        None => Err(ApiError::NotFound { group: String::new(), kind_plural: "namespaces".into(), name: ns.into() }),
        Some(kv) => {
            let obj = objects::from_store(&kv)?;
            if objects::meta(&obj).contains_key("deletionTimestamp") {
                return Err(ApiError::Forbidden {
                    message: format!("unable to create new content in namespace {ns} because it is being terminated"),
                });
            }
            Ok(())
        }
    }
}

pub fn default_on_create(r: &ResourceInfo, obj: &mut Value) {
    sextant_api::defaults::apply(&r.group, &r.kind, obj);
}
