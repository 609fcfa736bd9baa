//! Static pods: Pod manifests in `DATA_DIR/manifests/` that the node runs on its own, with
//! or without the control plane (how kubelet runs an edge node's essentials).
//!
//! Each manifest's pods run under the name `<name>-<node>` with a uid derived from their
//! content, so an edit is a new pod (the old one stops) and an untouched file keeps its pod
//! running across agent restarts. When the API is reachable, each gets a *mirror pod*: a
//! read-only copy (annotation `kubernetes.io/config.mirror`) through which `kubectl get`
//! shows it and its status; deleting the mirror only makes the agent create it again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Marks a pod that came from a file (kubelet's annotation).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The hash of a static pod's manifest (kubelet's annotation).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// Marks the API's copy of a static pod (kubelet's annotation).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// How often the manifests folder is read again (kubelet: 20 s).
pub const RESCAN: Duration = Duration::from_secs(5);
/// How long a mirror pod's API calls may take before the node moves on.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

pub fn is_static(pod: &Pod) -> bool {
    pod.annotations().get(SOURCE_ANNOTATION).map(String::as_str) == Some("file")
}

pub fn is_mirror(pod: &Pod) -> bool {
    pod.annotations().contains_key(MIRROR_ANNOTATION)
}

/// The static pods of `dir`'s manifests (`*.yaml`, `*.yml`, `*.json`; several documents per
/// file allowed). A file that does not parse is skipped with a warning: one bad manifest
/// must not stop the others.
pub fn load(dir: &Path, node: &str) -> Vec<Arc<Pod>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    let mut pods = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read a static pod manifest");
                continue;
            }
        };
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = match serde_yaml::Value::deserialize(doc) {
                Ok(serde_yaml::Value::Null) => continue,
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "skipping a static pod manifest that does not parse");
                    break;
                }
            };
            match serde_yaml::from_value::<Pod>(value) {
                Ok(pod) if pod.spec.is_some() => pods.push(Arc::new(localise(pod, node))),
                Ok(_) => {
                    tracing::warn!(file = %file.display(), "skipping a static pod manifest with no spec")
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "skipping a document that is not a Pod")
                }
            }
        }
    }
    pods
}

/// The pod as this node runs it: named for the node, bound to it, with a content uid.
fn localise(mut pod: Pod, node: &str) -> Pod {
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(&pod).unwrap_or_default()));
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{}-{node}", meta.name.clone().unwrap_or_default()));
    meta.namespace.get_or_insert_with(|| "default".into());
    // A uid of the manifest's content and the node: stable across restarts, new on edits.
    meta.uid = Some(format!(
        "{}-{}-{}-{}-{}",
        &hash[0..8],
        &hash[8..12],
        &hash[12..16],
        &hash[16..20],
        &hash[20..32]
    ));
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(HASH_ANNOTATION.into(), hash);
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.into());
    }
    pod
}

/// Makes sure every static pod has its mirror in the API, and that mirrors of pods no
/// longer in the folder (or of an older version) are gone. Failures are left for the next
/// round: the pods run regardless.
pub async fn mirror(client: &kube::Client, node: &str, pods: &[Arc<Pod>]) {
    let Ok(Ok(node_obj)) =
        tokio::time::timeout(CALL_TIMEOUT, Api::<Node>::all(client.clone()).get(node)).await
    else {
        return;
    };
    let all: Api<Pod> = Api::all(client.clone());
    let params = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
    let Ok(Ok(existing)) = tokio::time::timeout(CALL_TIMEOUT, all.list(&params)).await else {
        return;
    };
    let mirrors: Vec<Pod> = existing.items.into_iter().filter(is_mirror).collect();
    for pod in pods {
        let hash = pod
            .annotations()
            .get(HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let current = mirrors
            .iter()
            .find(|m| m.name_any() == pod.name_any() && m.namespace() == pod.namespace());
        if current.is_some_and(|m| m.annotations().get(MIRROR_ANNOTATION) == Some(&hash)) {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        if current.is_some() {
            let _ = tokio::time::timeout(CALL_TIMEOUT, api.delete(&pod.name_any(), &force())).await;
        }
        let mut copy = (**pod).clone();
        copy.metadata.uid = None;
        copy.metadata.resource_version = None;
        copy.status = None;
        copy.annotations_mut()
            .insert(MIRROR_ANNOTATION.into(), hash);
        copy.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.into(),
            uid: node_obj.uid().unwrap_or_default(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        match tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &copy)).await {
            Ok(Ok(_)) => tracing::info!(pod = %pod.name_any(), "created the static pod's mirror"),
            Ok(Err(e)) => {
                tracing::warn!(pod = %pod.name_any(), error = %e, "cannot create the static pod's mirror")
            }
            Err(_) => {}
        }
    }
    for m in &mirrors {
        let wanted = pods
            .iter()
            .any(|p| p.name_any() == m.name_any() && p.namespace() == m.namespace());
        if !wanted {
            let api: Api<Pod> = Api::namespaced(client.clone(), &m.namespace().unwrap_or_default());
            let _ = tokio::time::timeout(CALL_TIMEOUT, api.delete(&m.name_any(), &force())).await;
        }
    }
}

/// Deletes a mirror pod at once: the node is the one that would otherwise finish the
/// graceful deletion, and a mirror has nothing to stop.
pub async fn delete_mirror(client: &kube::Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let _ = tokio::time::timeout(CALL_TIMEOUT, api.delete(&pod.name_any(), &force())).await;
}

fn force() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_bound_pods_with_content_uids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: file:///x.wasm}\n---\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.yaml"), "kind: Pod\nmetadata: [").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let pods = load(dir.path(), "edge-1");
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(p.name_any(), "web-edge-1");
        assert_eq!(p.namespace().as_deref(), Some("default"));
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some("edge-1")
        );
        assert!(is_static(p) && !is_mirror(p));
        // Same content, same uid; an edit gives a new one.
        assert_eq!(load(dir.path(), "edge-1")[0].uid(), p.uid());
        std::fs::write(
            dir.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: file:///y.wasm}\n",
        )
        .unwrap();
        assert_ne!(load(dir.path(), "edge-1")[0].uid(), p.uid());
    }
}
