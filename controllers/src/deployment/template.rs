//! A Deployment's pod template and the ReplicaSet that carries it.
//!
//! Each version of the template gets its own ReplicaSet, named `<deployment>-<hash>`, whose
//! selector, labels and template carry `pod-template-hash: <hash>` so that the pods of two
//! versions never match each other's ReplicaSet. Which ReplicaSet is "new" is decided by
//! comparing templates with that label left out, never by the hash: a rollback makes an
//! old ReplicaSet new again whatever its name.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use serde_json::Value;

use crate::owners;

/// The label that tells the pods of one template version from another's.
pub(crate) const HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' hash of a pod template: FNV-1a (32 bits) over the template, then over
/// `collision_count` when set (so that a collision is escaped by counting up), printed in
/// decimal and each digit mapped to a consonant or digit that cannot spell words.
///
/// Kubernetes hashes Go's printed form of the struct; this hashes its JSON (empty members
/// left out), so names differ from a Kubernetes cluster's but are as stable: the same
/// template always gives the same name. Worked example: a sum of 1234 prints as `"1234"` and encodes as `"5678"`.
pub(crate) fn hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h = Fnv1a32::default();
    h.write(&serde_json::to_vec(&canonical(template)).unwrap_or_default());
    if let Some(count) = collision_count {
        h.write(&count.to_le_bytes());
    }
    safe_encode(&h.0.to_string())
}

/// Whether two templates are the same version, ignoring `pod-template-hash`. An empty list
/// or map equals an absent one, as in Kubernetes' semantic equality: `kubectl rollout undo`
/// sends back a template whose empty `annotations: {}` its Go client dropped.
pub(crate) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(&without_hash(a)) == canonical(&without_hash(b))
}

/// The template as JSON with every null, empty list and empty map left out.
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or_default();
    prune(&mut v);
    v
}

/// Removes null and empty members of objects, innermost first. Array elements stay, so
/// that positions keep their meaning.
fn prune(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for member in map.values_mut() {
                prune(member);
            }
            map.retain(|_, m| !is_empty(m));
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `template` without the hash label: what `kubectl rollout undo` copies back into the
/// Deployment, and what two versions are compared by.
pub(crate) fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(HASH_LABEL);
        }
        if meta.labels.as_ref().is_some_and(|l| l.is_empty()) {
            meta.labels = None;
        }
    }
    t
}

/// The ReplicaSet for the Deployment's current template, with `replicas` pods; its
/// annotations are set by the caller (they depend on the other ReplicaSets).
pub(crate) fn new_replicaset(d: &Deployment, hash: &str, replicas: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels = Some(labels.clone());
    let mut selector = spec.selector;
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owners::controller_ref(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// The FNV-1a hash Go's `hash/fnv.New32a` computes.
struct Fnv1a32(u32);

impl Default for Fnv1a32 {
    fn default() -> Self {
        Fnv1a32(0x811c_9dc5)
    }
}

impl Fnv1a32 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// Kubernetes' `rand.SafeEncodeString`: no vowels, and no 0, 1, 3 that read as letters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn fnv_matches_go() {
        // Go: fnv.New32a() over "a" sums to 0xe40c292c.
        let mut h = Fnv1a32::default();
        h.write(b"a");
        assert_eq!(h.0, 0xe40c_292c);
        // '0' is byte 48, and 48 % 27 = 21 picks '4'.
        assert_eq!(safe_encode("0123"), "4567");
        assert_eq!(safe_encode("1234"), "5678");
    }

    #[test]
    fn hash_is_stable_and_escapes_collisions() {
        let t = template("nginx:1");
        assert_eq!(hash(&t, None), hash(&t.clone(), None));
        assert_ne!(hash(&t, None), hash(&template("nginx:2"), None));
        assert_ne!(hash(&t, None), hash(&t, Some(1)));
        assert!(
            hash(&t, None)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    #[test]
    fn the_new_replicaset_carries_the_hash_everywhere() {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.namespace = Some("ns".into());
        d.metadata.uid = Some("d-uid".into());
        d.spec = Some(DeploymentSpec {
            selector: LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..LabelSelector::default()
            },
            template: template("nginx:1"),
            min_ready_seconds: Some(3),
            ..DeploymentSpec::default()
        });
        let rs = new_replicaset(&d, "abc", 2);
        assert_eq!(rs.metadata.name.as_deref(), Some("web-abc"));
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.min_ready_seconds, Some(3));
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap()[HASH_LABEL],
            "abc"
        );
        let t = spec.template.as_ref().unwrap();
        assert_eq!(
            t.metadata.as_ref().unwrap().labels.as_ref().unwrap()[HASH_LABEL],
            "abc"
        );
        assert_eq!(rs.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(
            rs.metadata.owner_references.as_ref().unwrap()[0].uid,
            "d-uid"
        );
        assert!(equal_ignore_hash(t, &d.spec.as_ref().unwrap().template));
        assert!(!equal_ignore_hash(t, &template("nginx:2")));
    }

    #[test]
    fn empty_and_absent_are_the_same_template() {
        let mut a = template("nginx:1");
        let b = a.clone();
        a.metadata.as_mut().unwrap().annotations = Some(Default::default());
        a.spec.as_mut().unwrap().containers[0].args = Some(Vec::new());
        assert!(equal_ignore_hash(&a, &b));
        assert_eq!(hash(&a, None), hash(&b, None));
        a.metadata.as_mut().unwrap().annotations = Some([("k".to_owned(), String::new())].into());
        assert!(!equal_ignore_hash(&a, &b), "an empty string is a value");
    }
}
