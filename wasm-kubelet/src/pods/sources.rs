//! Fetching the ConfigMaps and Secrets a pod names (for its env and its volumes), once per
//! name, from the pod's namespace. A name that does not exist is simply absent: whether
//! that is an error depends on `optional`, which the caller judges.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

/// Why a ConfigMap or Secret could not be read (the API failed; absence is not an error).
/// Env and volume errors carry it as it is.
#[derive(Debug, thiserror::Error)]
#[error("couldn't get {kind} {namespace}/{name} from the API server: {source}")]
pub struct FetchError {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    #[source]
    pub source: Box<kube::Error>,
}

pub async fn fetch(
    client: &kube::Client,
    namespace: &str,
    config_maps: BTreeSet<String>,
    secrets: BTreeSet<String>,
) -> Result<(Vec<ConfigMap>, Vec<Secret>), FetchError> {
    Ok((
        fetch_all(client, namespace, "configmap", config_maps).await?,
        fetch_all(client, namespace, "secret", secrets).await?,
    ))
}

async fn fetch_all<K>(
    client: &kube::Client,
    namespace: &str,
    kind: &'static str,
    names: BTreeSet<String>,
) -> Result<Vec<K>, FetchError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut found = Vec::new();
    for name in names {
        match api.get_opt(&name).await {
            Ok(Some(obj)) => found.push(obj),
            Ok(None) => {}
            Err(source) => {
                return Err(FetchError {
                    kind,
                    namespace: namespace.to_owned(),
                    name,
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(found)
}
