//! The resources Sextant serves: names, scope and subresources of each, as discovery and
//! kubectl see them. One table, so that the API server, OpenAPI, discovery and `kubectl get`
//! columns agree about every kind; CustomResourceDefinitions add entries at run time.

use serde::{Deserialize, Serialize};

/// One resource of one group-version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The URL segment: `pods`.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// `all` puts a kind under `kubectl get all`.
    pub categories: Vec<String>,
    /// Subresources served under `/{plural}/{name}/{sub}`: `status`, `scale`, `log`, …
    pub subresources: Vec<String>,
    /// The verbs discovery advertises.
    pub verbs: Vec<String>,
}

impl ResourceInfo {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList` for `Pod`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// The store key prefix under which objects of this resource live (with a trailing '/').
    /// Namespaced objects add `{namespace}/`, then every object adds its name.
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row of the table below, read positionally like the table itself"
)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        categories,
        subresources,
    }
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Every built-in resource, grouped as Kubernetes groups them.
const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Pod",
        "pods",
        NS,
        &["po"],
        &["all"],
        &["status", "log", "exec", "binding", "eviction"],
    ),
    b(
        "",
        "v1",
        "Service",
        "services",
        NS,
        &["svc"],
        &["all"],
        &["status"],
    ),
    b("", "v1", "Endpoints", "endpoints", NS, &["ep"], &[], &[]),
    b("", "v1", "ConfigMap", "configmaps", NS, &["cm"], &[], &[]),
    b("", "v1", "Secret", "secrets", NS, &[], &[], &[]),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        NS,
        &["sa"],
        &[],
        &["token"],
    ),
    b("", "v1", "Event", "events", NS, &["ev"], &[], &[]),
    b(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        NS,
        &["limits"],
        &[],
        &[],
    ),
    b(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        NS,
        &["quota"],
        &[],
        &["status"],
    ),
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        CLUSTER,
        &["ns"],
        &[],
        &["status", "finalize"],
    ),
    b(
        "",
        "v1",
        "Node",
        "nodes",
        CLUSTER,
        &["no"],
        &[],
        &["status"],
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        NS,
        &["deploy"],
        &["all"],
        &["status", "scale"],
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        NS,
        &["rs"],
        &["all"],
        &["status", "scale"],
    ),
    b("batch", "v1", "Job", "jobs", NS, &[], &["all"], &["status"]),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        NS,
        &["cj"],
        &["all"],
        &["status"],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        NS,
        &[],
        &[],
        &[],
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        NS,
        &["ev"],
        &[],
        &[],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        NS,
        &[],
        &[],
        &[],
    ),
    b(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        CLUSTER,
        &[],
        &[],
        &[],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        CLUSTER,
        &["crd", "crds"],
        &["api-extensions"],
        &["status"],
    ),
];

/// The built-in resources, in discovery order.
pub fn builtin() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|r| ResourceInfo {
            group: r.group.into(),
            version: r.version.into(),
            kind: r.kind.into(),
            plural: r.plural.into(),
            singular: r.kind.to_ascii_lowercase(),
            namespaced: r.namespaced,
            short_names: r.short_names.iter().map(|s| s.to_string()).collect(),
            categories: r.categories.iter().map(|s| s.to_string()).collect(),
            subresources: r.subresources.iter().map(|s| s.to_string()).collect(),
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_grouped_resources_have_kubernetes_names() {
        let all = builtin();
        let pods = all.iter().find(|r| r.plural == "pods").unwrap();
        assert_eq!(pods.api_version(), "v1");
        assert_eq!(pods.key_prefix(), "/registry/core/pods/");
        assert!(pods.has_subresource("log"));
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.list_kind(), "DeploymentList");
        assert_eq!(deploy.singular, "deployment");
        // Event is served in two groups: core (kubectl get events) and events.k8s.io.
        assert_eq!(all.iter().filter(|r| r.kind == "Event").count(), 2);
        assert!(!all.iter().find(|r| r.plural == "nodes").unwrap().namespaced);
    }
}
