//! Which fields of which Kubernetes types strategic merge patch treats specially.
//!
//! Kubernetes reads this from Go struct tags (`patchStrategy:"merge" patchMergeKey:"name"`)
//! by reflection. We have no reflection over `k8s-openapi` types, so the tags are copied
//! here by hand from `k8s.io/api` (`core/v1`, `apps/v1`, `batch/v1`, `policy/v1`,
//! `autoscaling/v2`) and `k8s.io/apimachinery` (`meta/v1`, `ObjectMeta`), at 1.33.
//!
//! Only the paths that lead to a tagged field are written down. Every other field is
//! [`Strategy::Default`]: objects merge key by key and lists are replaced whole, which is
//! exactly what JSON merge patch does, so a field missing from this table costs nothing
//! unless it is a list that Kubernetes would merge.
//!
//! # Worked lookups
//! - `apps/v1 Deployment`, `spec.template.spec.containers` → merged by `name`;
//! - `... containers[].env` → merged by `name`; `... containers[].ports` → by `containerPort`;
//! - `v1 Pod`, `metadata.finalizers` → a set of strings;
//! - `v1 Pod`, `spec.tolerations` → replaced (no tag upstream, unlike what one might guess);
//! - `v1 Pod`, `status.containerStatuses` → replaced (the kubelet always sends them all);
//! - `v1 Service`, `spec.ports` → merged by `port` alone: the SMP key is one field, even
//!   though server-side apply keys the list by `port` and `protocol`.

/// How a patch's value for one field combines with the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Objects merge key by key; lists are replaced whole. Used for every untagged field.
    Default,
    /// The patch's value replaces the stored one, objects included (`patchStrategy:"replace"`).
    Replace,
    /// A list of objects, each matched to a stored one by the value of this key, and merged
    /// with it; unmatched ones are added.
    MergeByKey(&'static str),
    /// A list of primitives kept as a set: the patch's items are added, and
    /// `$deleteFromPrimitiveList/<field>` removes items.
    MergeSet,
}

/// One tagged field, or a field on the way to one.
#[derive(Debug)]
pub struct Field {
    /// The JSON name.
    pub name: &'static str,
    /// How its values combine.
    pub strategy: Strategy,
    /// `patchStrategy:"...,retainKeys"`: clients may send `$retainKeys` to clear the
    /// members they leave out (used for one-of unions such as a volume's source). The
    /// directive is honoured wherever it appears; this flag records where kubectl sends it.
    pub retain_keys: bool,
    /// The type of the value, or of each item for a list; `None` when nothing below it is
    /// tagged.
    pub schema: Option<&'static Schema>,
}

/// The tagged fields of one Go struct, and the fields leading to other tagged structs.
#[derive(Debug)]
pub struct Schema {
    /// The Go type's name, for messages and tests.
    pub name: &'static str,
    /// Every upstream type this schema stands for, by its OpenAPI definition name
    /// (`io.k8s.api.core.v1.PodSpec`): one schema may serve several Go types whose tagged
    /// fields are the same. The OpenAPI documents publish [`tagged_fields`] under these names.
    pub types: &'static [&'static str],
    /// The fields that matter to patching; any other field is [`Strategy::Default`].
    pub fields: &'static [Field],
}

impl Schema {
    /// The metadata of one field, or `None` for an untagged field.
    pub fn field(&'static self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Field {
    /// The `patchStrategy` struct tag as upstream writes it, which the OpenAPI documents
    /// publish as `x-kubernetes-patch-strategy`; `None` for an untagged field.
    pub fn patch_strategy(&self) -> Option<&'static str> {
        match (self.strategy, self.retain_keys) {
            (Strategy::Default, false) => None,
            (Strategy::Default, true) => Some("retainKeys"),
            (Strategy::Replace, false) => Some("replace"),
            (Strategy::Replace, true) => Some("replace,retainKeys"),
            (Strategy::MergeByKey(_) | Strategy::MergeSet, false) => Some("merge"),
            (Strategy::MergeByKey(_) | Strategy::MergeSet, true) => Some("merge,retainKeys"),
        }
    }

    /// The `patchMergeKey` struct tag (`x-kubernetes-patch-merge-key`).
    pub fn patch_merge_key(&self) -> Option<&'static str> {
        match self.strategy {
            Strategy::MergeByKey(key) => Some(key),
            _ => None,
        }
    }
}

/// Every tagged field of every schema here, under each upstream type the schema stands for
/// (`("io.k8s.api.core.v1.PodSpec", containers)`), sorted by type and field: the index the
/// OpenAPI documents take their `x-kubernetes-patch-*` extensions from. It covers the kinds
/// of [`schema_for`] and the types that no patch reaches (`UNREACHED`).
pub fn tagged_fields() -> Vec<(&'static str, &'static Field)> {
    fn walk(
        schema: &'static Schema,
        seen: &mut Vec<&'static Schema>,
        out: &mut Vec<(&'static str, &'static Field)>,
    ) {
        if seen.iter().any(|s| std::ptr::eq(*s, schema)) {
            return;
        }
        seen.push(schema);
        for field in schema.fields {
            if field.patch_strategy().is_some() {
                out.extend(schema.types.iter().map(|t| (*t, field)));
            }
            if let Some(next) = field.schema {
                walk(next, seen, out);
            }
        }
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let roots = KINDS
        .iter()
        .map(|(_, _, s)| *s)
        .chain(UNREACHED.iter().copied());
    for schema in roots {
        walk(schema, &mut seen, &mut out);
    }
    out.sort_by_key(|(t, f)| (*t, f.name));
    out
}

/// The schema for the objects of one kind, or `None` for a kind Kubernetes does not build
/// in (a custom resource), for which strategic merge patch is refused.
pub fn schema_for(api_version: &str, kind: &str) -> Option<&'static Schema> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, s)| *s)
}

/// Whether Kubernetes accepts `application/strategic-merge-patch+json` for this kind: it
/// does for every built-in kind, tagged lists or not, and refuses it with 415 for custom
/// resources, whose schemas carry no merge keys.
pub fn supports_strategic(api_version: &str, kind: &str) -> bool {
    schema_for(api_version, kind).is_some()
}

/// The metadata at a dotted path from the top of an object (`spec.template.spec.containers`),
/// walking into list items where a list is in the path. `None` when the kind is unknown or
/// the field untagged.
pub fn lookup(api_version: &str, kind: &str, path: &str) -> Option<&'static Field> {
    let mut schema = schema_for(api_version, kind)?;
    let mut found = None;
    for name in path.split('.') {
        let field = schema.field(name)?;
        found = Some(field);
        match field.schema {
            Some(next) => schema = next,
            None => schema = &UNTAGGED,
        }
    }
    found
}

const fn object(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        retain_keys: false,
        schema: Some(schema),
    }
}

const fn merge_by(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::MergeByKey(key),
        retain_keys: false,
        schema: None,
    }
}

const fn merge_items_by(name: &'static str, key: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: Strategy::MergeByKey(key),
        retain_keys: false,
        schema: Some(schema),
    }
}

const fn set(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::MergeSet,
        retain_keys: false,
        schema: None,
    }
}

const fn replace(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Replace,
        retain_keys: false,
        schema: None,
    }
}

const fn retaining_keys(field: Field) -> Field {
    Field {
        retain_keys: true,
        ..field
    }
}

static UNTAGGED: Schema = Schema {
    name: "untagged",
    types: &[],
    fields: &[],
};

/// `metav1.ObjectMeta`.
static OBJECT_META: Schema = Schema {
    name: "ObjectMeta",
    types: &["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"],
    fields: &[set("finalizers"), merge_by("ownerReferences", "uid")],
};

const METADATA: Field = object("metadata", &OBJECT_META);

/// `core/v1.Container`; `EphemeralContainer` inlines the same tagged fields.
static CONTAINER: Schema = Schema {
    name: "Container",
    types: &[
        "io.k8s.api.core.v1.Container",
        "io.k8s.api.core.v1.EphemeralContainer",
    ],
    fields: &[
        merge_by("ports", "containerPort"),
        merge_by("env", "name"),
        merge_by("volumeMounts", "mountPath"),
        merge_by("volumeDevices", "devicePath"),
    ],
};

/// `core/v1.PodSpec`. `tolerations` and `readinessGates` carry no tag: they are replaced.
static POD_SPEC: Schema = Schema {
    name: "PodSpec",
    types: &["io.k8s.api.core.v1.PodSpec"],
    fields: &[
        retaining_keys(merge_by("volumes", "name")),
        merge_items_by("initContainers", "name", &CONTAINER),
        merge_items_by("containers", "name", &CONTAINER),
        merge_items_by("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name"),
        merge_by("hostAliases", "ip"),
        merge_by("topologySpreadConstraints", "topologyKey"),
        merge_by("schedulingGates", "name"),
        retaining_keys(merge_by("resourceClaims", "name")),
    ],
};

/// `core/v1.PodStatus`. The container status lists carry no tag: they are replaced, so
/// the tags inside `ContainerStatus` (`volumeMounts`, `allocatedResourcesStatus`) never
/// come into play and are left out.
static POD_STATUS: Schema = Schema {
    name: "PodStatus",
    types: &["io.k8s.api.core.v1.PodStatus"],
    fields: &[
        merge_by("conditions", "type"),
        merge_by("hostIPs", "ip"),
        merge_by("podIPs", "ip"),
        retaining_keys(merge_by("resourceClaimStatuses", "name")),
    ],
};

static POD: Schema = Schema {
    name: "Pod",
    types: &["io.k8s.api.core.v1.Pod"],
    fields: &[
        METADATA,
        object("spec", &POD_SPEC),
        object("status", &POD_STATUS),
    ],
};

static POD_TEMPLATE_SPEC: Schema = Schema {
    name: "PodTemplateSpec",
    types: &["io.k8s.api.core.v1.PodTemplateSpec"],
    fields: &[METADATA, object("spec", &POD_SPEC)],
};

static POD_TEMPLATE: Schema = Schema {
    name: "PodTemplate",
    types: &["io.k8s.api.core.v1.PodTemplate"],
    fields: &[METADATA, object("template", &POD_TEMPLATE_SPEC)],
};

/// Every status whose only tagged field is `conditions` keyed by `type`: the workloads'
/// (`DeploymentStatus`, `ReplicaSetStatus`, `StatefulSetStatus`, `DaemonSetStatus`,
/// `JobStatus`, `ReplicationControllerStatus`), and `NamespaceStatus`,
/// `PersistentVolumeClaimStatus`, `ServiceStatus`, `PodDisruptionBudgetStatus`,
/// `HorizontalPodAutoscalerStatus`.
static CONDITIONS_STATUS: Schema = Schema {
    name: "Status",
    types: &[
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "io.k8s.api.apps.v1.DeploymentStatus",
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "io.k8s.api.batch.v1.JobStatus",
        "io.k8s.api.core.v1.NamespaceStatus",
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "io.k8s.api.core.v1.ServiceStatus",
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
    ],
    fields: &[merge_by("conditions", "type")],
};

const STATUS: Field = object("status", &CONDITIONS_STATUS);

/// The specs whose only way to a tagged field is their pod template: `ReplicaSetSpec`,
/// `StatefulSetSpec`, `DaemonSetSpec`, `JobSpec`, `ReplicationControllerSpec`.
static TEMPLATED_SPEC: Schema = Schema {
    name: "TemplatedSpec",
    types: &[
        "io.k8s.api.apps.v1.DaemonSetSpec",
        "io.k8s.api.apps.v1.ReplicaSetSpec",
        "io.k8s.api.apps.v1.StatefulSetSpec",
        "io.k8s.api.batch.v1.JobSpec",
        "io.k8s.api.core.v1.ReplicationControllerSpec",
    ],
    fields: &[object("template", &POD_TEMPLATE_SPEC)],
};

static TEMPLATED: Schema = Schema {
    name: "Templated",
    types: &[
        "io.k8s.api.apps.v1.DaemonSet",
        "io.k8s.api.apps.v1.ReplicaSet",
        "io.k8s.api.apps.v1.StatefulSet",
        "io.k8s.api.batch.v1.Job",
        "io.k8s.api.core.v1.ReplicationController",
    ],
    fields: &[METADATA, object("spec", &TEMPLATED_SPEC), STATUS],
};

/// `apps/v1.DeploymentSpec`: `strategy` is `retainKeys`, so that switching from
/// `RollingUpdate` to `Recreate` can clear `rollingUpdate`.
static DEPLOYMENT_SPEC: Schema = Schema {
    name: "DeploymentSpec",
    types: &["io.k8s.api.apps.v1.DeploymentSpec"],
    fields: &[
        object("template", &POD_TEMPLATE_SPEC),
        retaining_keys(Field {
            name: "strategy",
            strategy: Strategy::Default,
            retain_keys: false,
            schema: None,
        }),
    ],
};

static DEPLOYMENT: Schema = Schema {
    name: "Deployment",
    types: &["io.k8s.api.apps.v1.Deployment"],
    fields: &[METADATA, object("spec", &DEPLOYMENT_SPEC), STATUS],
};

static JOB_TEMPLATE_SPEC: Schema = Schema {
    name: "JobTemplateSpec",
    types: &["io.k8s.api.batch.v1.JobTemplateSpec"],
    fields: &[METADATA, object("spec", &TEMPLATED_SPEC)],
};

static CRON_JOB_SPEC: Schema = Schema {
    name: "CronJobSpec",
    types: &["io.k8s.api.batch.v1.CronJobSpec"],
    fields: &[object("jobTemplate", &JOB_TEMPLATE_SPEC)],
};

static CRON_JOB: Schema = Schema {
    name: "CronJob",
    types: &["io.k8s.api.batch.v1.CronJob"],
    fields: &[METADATA, object("spec", &CRON_JOB_SPEC)],
};

static SERVICE_SPEC: Schema = Schema {
    name: "ServiceSpec",
    types: &["io.k8s.api.core.v1.ServiceSpec"],
    fields: &[merge_by("ports", "port")],
};

static SERVICE: Schema = Schema {
    name: "Service",
    types: &["io.k8s.api.core.v1.Service"],
    fields: &[METADATA, object("spec", &SERVICE_SPEC), STATUS],
};

static NODE_SPEC: Schema = Schema {
    name: "NodeSpec",
    types: &["io.k8s.api.core.v1.NodeSpec"],
    fields: &[set("podCIDRs")],
};

static NODE_STATUS: Schema = Schema {
    name: "NodeStatus",
    types: &["io.k8s.api.core.v1.NodeStatus"],
    fields: &[
        merge_by("conditions", "type"),
        merge_by("addresses", "type"),
    ],
};

static NODE: Schema = Schema {
    name: "Node",
    types: &["io.k8s.api.core.v1.Node"],
    fields: &[
        METADATA,
        object("spec", &NODE_SPEC),
        object("status", &NODE_STATUS),
    ],
};

static WITH_STATUS: Schema = Schema {
    name: "WithConditions",
    types: &[
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
        "io.k8s.api.core.v1.Namespace",
        "io.k8s.api.core.v1.PersistentVolumeClaim",
    ],
    fields: &[METADATA, STATUS],
};

static SERVICE_ACCOUNT: Schema = Schema {
    name: "ServiceAccount",
    types: &["io.k8s.api.core.v1.ServiceAccount"],
    fields: &[METADATA, merge_by("secrets", "name")],
};

/// `policy/v1.PodDisruptionBudgetSpec`: its selector is replaced whole, so that removing a
/// `matchLabels` entry is not undone by merging with the stored selector.
static PDB_SPEC: Schema = Schema {
    name: "PodDisruptionBudgetSpec",
    types: &["io.k8s.api.policy.v1.PodDisruptionBudgetSpec"],
    fields: &[replace("selector")],
};

static PDB: Schema = Schema {
    name: "PodDisruptionBudget",
    types: &["io.k8s.api.policy.v1.PodDisruptionBudget"],
    fields: &[METADATA, object("spec", &PDB_SPEC), STATUS],
};

/// Kinds with no tagged field but `metadata`'s.
static METADATA_ONLY: Schema = Schema {
    name: "Object",
    types: &[
        "io.k8s.api.apps.v1.ControllerRevision",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.api.coordination.v1.Lease",
        "io.k8s.api.core.v1.ConfigMap",
        "io.k8s.api.core.v1.Endpoints",
        "io.k8s.api.core.v1.Event",
        "io.k8s.api.core.v1.LimitRange",
        "io.k8s.api.core.v1.PersistentVolume",
        "io.k8s.api.core.v1.ResourceQuota",
        "io.k8s.api.core.v1.Secret",
        "io.k8s.api.discovery.v1.EndpointSlice",
        "io.k8s.api.events.v1.Event",
        "io.k8s.api.node.v1.RuntimeClass",
    ],
    fields: &[METADATA],
};

/// `core/v1.ContainerStatus`. Its tagged lists are never reached by a patch, because
/// `PodStatus` replaces its container status lists whole; kept for [`tagged_fields`].
static CONTAINER_STATUS: Schema = Schema {
    name: "ContainerStatus",
    types: &["io.k8s.api.core.v1.ContainerStatus"],
    fields: &[
        merge_by("volumeMounts", "mountPath"),
        merge_by("allocatedResourcesStatus", "name"),
    ],
};

/// `core/v1.ComponentStatus`, a read-only kind that is not served, so never patched.
static COMPONENT_STATUS: Schema = Schema {
    name: "ComponentStatus",
    types: &["io.k8s.api.core.v1.ComponentStatus"],
    fields: &[METADATA, merge_by("conditions", "type")],
};

/// Tagged upstream types that no patch of a kind in [`KINDS`] reaches: they matter only to
/// the OpenAPI documents, which publish every type's tags.
static UNREACHED: &[&Schema] = &[&CONTAINER_STATUS, &COMPONENT_STATUS];

/// Every built-in kind, by `apiVersion` and `kind`. A kind listed here accepts strategic
/// merge patch; the rest are custom resources.
static KINDS: &[(&str, &str, &Schema)] = &[
    ("v1", "Pod", &POD),
    ("v1", "PodTemplate", &POD_TEMPLATE),
    ("v1", "ReplicationController", &TEMPLATED),
    ("v1", "Service", &SERVICE),
    ("v1", "Node", &NODE),
    ("v1", "Namespace", &WITH_STATUS),
    ("v1", "PersistentVolumeClaim", &WITH_STATUS),
    ("v1", "ServiceAccount", &SERVICE_ACCOUNT),
    ("v1", "ConfigMap", &METADATA_ONLY),
    ("v1", "Secret", &METADATA_ONLY),
    ("v1", "Endpoints", &METADATA_ONLY),
    ("v1", "Event", &METADATA_ONLY),
    ("v1", "LimitRange", &METADATA_ONLY),
    ("v1", "ResourceQuota", &METADATA_ONLY),
    ("v1", "PersistentVolume", &METADATA_ONLY),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &TEMPLATED),
    ("apps/v1", "StatefulSet", &TEMPLATED),
    ("apps/v1", "DaemonSet", &TEMPLATED),
    ("apps/v1", "ControllerRevision", &METADATA_ONLY),
    ("batch/v1", "Job", &TEMPLATED),
    ("batch/v1", "CronJob", &CRON_JOB),
    ("autoscaling/v1", "Scale", &METADATA_ONLY),
    ("autoscaling/v2", "HorizontalPodAutoscaler", &WITH_STATUS),
    ("policy/v1", "PodDisruptionBudget", &PDB),
    ("discovery.k8s.io/v1", "EndpointSlice", &METADATA_ONLY),
    ("events.k8s.io/v1", "Event", &METADATA_ONLY),
    ("coordination.k8s.io/v1", "Lease", &METADATA_ONLY),
    ("node.k8s.io/v1", "RuntimeClass", &METADATA_ONLY),
    // Built in, so kubectl re-applies CRDs with strategic merge patches; CRD versions carry no
    // patch tags upstream, so they are replaced like any untagged list.
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &WITH_STATUS,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(api_version: &str, kind: &str, path: &str) -> Option<Strategy> {
        lookup(api_version, kind, path).map(|f| f.strategy)
    }

    #[test]
    fn merge_keys_match_the_upstream_struct_tags() {
        use Strategy::*;
        let cases: &[(&str, &str, &str, Option<Strategy>)] = &[
            ("v1", "Pod", "spec.containers", Some(MergeByKey("name"))),
            ("v1", "Pod", "spec.initContainers", Some(MergeByKey("name"))),
            (
                "v1",
                "Pod",
                "spec.ephemeralContainers",
                Some(MergeByKey("name")),
            ),
            (
                "v1",
                "Pod",
                "spec.containers.ports",
                Some(MergeByKey("containerPort")),
            ),
            ("v1", "Pod", "spec.containers.env", Some(MergeByKey("name"))),
            (
                "v1",
                "Pod",
                "spec.containers.volumeMounts",
                Some(MergeByKey("mountPath")),
            ),
            (
                "v1",
                "Pod",
                "spec.containers.volumeDevices",
                Some(MergeByKey("devicePath")),
            ),
            ("v1", "Pod", "spec.volumes", Some(MergeByKey("name"))),
            (
                "v1",
                "Pod",
                "spec.imagePullSecrets",
                Some(MergeByKey("name")),
            ),
            ("v1", "Pod", "spec.hostAliases", Some(MergeByKey("ip"))),
            (
                "v1",
                "Pod",
                "spec.topologySpreadConstraints",
                Some(MergeByKey("topologyKey")),
            ),
            ("v1", "Pod", "spec.tolerations", None),
            ("v1", "Pod", "spec.readinessGates", None),
            ("v1", "Pod", "status.conditions", Some(MergeByKey("type"))),
            ("v1", "Pod", "status.podIPs", Some(MergeByKey("ip"))),
            ("v1", "Pod", "status.containerStatuses", None),
            ("v1", "Pod", "metadata.finalizers", Some(MergeSet)),
            (
                "v1",
                "Pod",
                "metadata.ownerReferences",
                Some(MergeByKey("uid")),
            ),
            ("v1", "Service", "spec.ports", Some(MergeByKey("port"))),
            ("v1", "Node", "status.conditions", Some(MergeByKey("type"))),
            ("v1", "Node", "status.addresses", Some(MergeByKey("type"))),
            ("v1", "Node", "spec.podCIDRs", Some(MergeSet)),
            (
                "apps/v1",
                "Deployment",
                "spec.template.spec.containers.env",
                Some(MergeByKey("name")),
            ),
            (
                "apps/v1",
                "Deployment",
                "spec.template.metadata.finalizers",
                Some(MergeSet),
            ),
            (
                "apps/v1",
                "Deployment",
                "status.conditions",
                Some(MergeByKey("type")),
            ),
            (
                "apps/v1",
                "ReplicaSet",
                "spec.template.spec.volumes",
                Some(MergeByKey("name")),
            ),
            (
                "batch/v1",
                "Job",
                "spec.template.spec.containers",
                Some(MergeByKey("name")),
            ),
            (
                "batch/v1",
                "Job",
                "status.conditions",
                Some(MergeByKey("type")),
            ),
            (
                "batch/v1",
                "CronJob",
                "spec.jobTemplate.spec.template.spec.containers.ports",
                Some(MergeByKey("containerPort")),
            ),
            (
                "policy/v1",
                "PodDisruptionBudget",
                "spec.selector",
                Some(Replace),
            ),
            (
                "v1",
                "ConfigMap",
                "metadata.ownerReferences",
                Some(MergeByKey("uid")),
            ),
            ("v1", "ConfigMap", "data", None),
        ];
        for (api_version, kind, path, want) in cases {
            assert_eq!(
                strategy(api_version, kind, path),
                *want,
                "{api_version} {kind} {path}"
            );
        }
    }

    #[test]
    fn retain_keys_where_kubectl_sends_it() {
        assert!(lookup("v1", "Pod", "spec.volumes").unwrap().retain_keys);
        assert!(
            lookup("apps/v1", "Deployment", "spec.strategy")
                .unwrap()
                .retain_keys
        );
        assert!(!lookup("v1", "Pod", "spec.containers").unwrap().retain_keys);
    }

    #[test]
    fn built_in_kinds_accept_strategic_merge_patch_and_custom_resources_do_not() {
        assert!(supports_strategic("v1", "ConfigMap"));
        assert!(supports_strategic("apps/v1", "Deployment"));
        assert!(!supports_strategic("example.com/v1", "Widget"));
        // The group matters: a CRD may reuse a built-in kind's name.
        assert!(!supports_strategic("example.com/v1", "Deployment"));
    }
}
