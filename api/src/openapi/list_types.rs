//! How the built-in types' lists, maps and structs are owned by server-side apply, which the
//! `k8s-openapi` schemas leave out: the `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`
//! and `x-kubernetes-map-type` markers.
//!
//! Extracted from the `+listType`, `+listMapKey`, `+mapType` and `+structType` markers of
//! `k8s.io/api` v0.33.9 (Kubernetes 1.33, the version `k8s-openapi`'s `v1_33` feature gives us),
//! for the packages whose kinds we serve; the `meta/v1` rows come from `k8s.io/apimachinery`.
//! Regenerate when moving to a newer Kubernetes.
//!
//! The strategic merge patch tags (`x-kubernetes-patch-strategy`, `-merge-key`) are not here:
//! they come from [`crate::patch::meta::tagged_fields`], the table the patch engine applies, so
//! that what kubectl reads is what the server does.

/// The markers of one property of one schema.
pub(super) struct ListType {
    pub schema: &'static str,
    pub property: &'static str,
    /// `atomic`, `set` or `map`; empty when unset.
    pub list_type: &'static str,
    pub list_map_keys: &'static [&'static str],
    /// `atomic` or `granular`; empty when unset.
    pub map_type: &'static str,
}

const fn atomic(schema: &'static str, property: &'static str) -> ListType {
    ListType {
        schema,
        property,
        list_type: "atomic",
        list_map_keys: &[],
        map_type: "",
    }
}

const fn set(schema: &'static str, property: &'static str) -> ListType {
    ListType {
        schema,
        property,
        list_type: "set",
        list_map_keys: &[],
        map_type: "",
    }
}

const fn map(
    schema: &'static str,
    property: &'static str,
    keys: &'static [&'static str],
) -> ListType {
    ListType {
        schema,
        property,
        list_type: "map",
        list_map_keys: keys,
        map_type: "",
    }
}

const fn map_type(
    schema: &'static str,
    property: &'static str,
    map_type: &'static str,
) -> ListType {
    ListType {
        schema,
        property,
        list_type: "",
        list_map_keys: &[],
        map_type,
    }
}

/// Types whose schema repeats another's properties, markers included: `EphemeralContainer`
/// inlines `EphemeralContainerCommon`, upstream's copy of `Container` (which has no schema of
/// its own), so it takes `Container`'s rows.
const SAME_AS: &[(&str, &str)] = &[(
    "io.k8s.api.core.v1.EphemeralContainer",
    "io.k8s.api.core.v1.Container",
)];

/// Every row of [`FIELDS`] with the schema it applies to, the [`SAME_AS`] copies included.
pub(super) fn fields() -> impl Iterator<Item = (&'static str, &'static ListType)> {
    FIELDS.iter().flat_map(|f| {
        let copies = SAME_AS
            .iter()
            .filter(move |(_, of)| *of == f.schema)
            .map(|(copy, _)| *copy);
        std::iter::once(f.schema)
            .chain(copies)
            .map(move |schema| (schema, f))
    })
}

const FIELDS: &[ListType] = &[
    set(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
    ),
    map(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        &["uid"],
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "managedFields",
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "matchExpressions",
    ),
    atomic(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "values",
    ),
    atomic("io.k8s.api.core.v1.PersistentVolumeSpec", "accessModes"),
    atomic("io.k8s.api.core.v1.PersistentVolumeSpec", "mountOptions"),
    atomic(
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "accessModes",
    ),
    atomic(
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "accessModes",
    ),
    map(
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        &["type"],
    ),
    map_type(
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "allocatedResourceStatuses",
        "granular",
    ),
    atomic("io.k8s.api.core.v1.RBDVolumeSource", "monitors"),
    atomic("io.k8s.api.core.v1.RBDPersistentVolumeSource", "monitors"),
    atomic("io.k8s.api.core.v1.CephFSVolumeSource", "monitors"),
    atomic(
        "io.k8s.api.core.v1.CephFSPersistentVolumeSource",
        "monitors",
    ),
    atomic("io.k8s.api.core.v1.SecretVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.SecretProjection", "items"),
    atomic("io.k8s.api.core.v1.ISCSIVolumeSource", "portals"),
    atomic("io.k8s.api.core.v1.ISCSIPersistentVolumeSource", "portals"),
    atomic("io.k8s.api.core.v1.FCVolumeSource", "targetWWNs"),
    atomic("io.k8s.api.core.v1.FCVolumeSource", "wwids"),
    atomic("io.k8s.api.core.v1.ConfigMapVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.ConfigMapProjection", "items"),
    atomic("io.k8s.api.core.v1.ProjectedVolumeSource", "sources"),
    atomic("io.k8s.api.core.v1.HTTPGetAction", "httpHeaders"),
    atomic("io.k8s.api.core.v1.ExecAction", "command"),
    atomic("io.k8s.api.core.v1.Capabilities", "add"),
    atomic("io.k8s.api.core.v1.Capabilities", "drop"),
    map(
        "io.k8s.api.core.v1.ResourceRequirements",
        "claims",
        &["name"],
    ),
    atomic("io.k8s.api.core.v1.Container", "command"),
    atomic("io.k8s.api.core.v1.Container", "args"),
    map(
        "io.k8s.api.core.v1.Container",
        "ports",
        &["containerPort", "protocol"],
    ),
    atomic("io.k8s.api.core.v1.Container", "envFrom"),
    map("io.k8s.api.core.v1.Container", "env", &["name"]),
    atomic("io.k8s.api.core.v1.Container", "resizePolicy"),
    map(
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        &["mountPath"],
    ),
    map(
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        &["devicePath"],
    ),
    map(
        "io.k8s.api.core.v1.ContainerStatus",
        "volumeMounts",
        &["mountPath"],
    ),
    map(
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        &["name"],
    ),
    map(
        "io.k8s.api.core.v1.ResourceStatus",
        "resources",
        &["resourceID"],
    ),
    atomic(
        "io.k8s.api.core.v1.LinuxContainerUser",
        "supplementalGroups",
    ),
    atomic("io.k8s.api.core.v1.NodeSelector", "nodeSelectorTerms"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchExpressions"),
    atomic("io.k8s.api.core.v1.NodeSelectorTerm", "matchFields"),
    atomic("io.k8s.api.core.v1.NodeSelectorRequirement", "values"),
    atomic(
        "io.k8s.api.core.v1.TopologySelectorTerm",
        "matchLabelExpressions",
    ),
    atomic(
        "io.k8s.api.core.v1.TopologySelectorLabelRequirement",
        "values",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAntiAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        "io.k8s.api.core.v1.PodAntiAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "namespaces"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "matchLabelKeys"),
    atomic("io.k8s.api.core.v1.PodAffinityTerm", "mismatchLabelKeys"),
    atomic(
        "io.k8s.api.core.v1.NodeAffinity",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    map("io.k8s.api.core.v1.PodSpec", "volumes", &["name"]),
    map("io.k8s.api.core.v1.PodSpec", "initContainers", &["name"]),
    map("io.k8s.api.core.v1.PodSpec", "containers", &["name"]),
    map(
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        &["name"],
    ),
    map_type("io.k8s.api.core.v1.PodSpec", "nodeSelector", "atomic"),
    map("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", &["name"]),
    atomic("io.k8s.api.core.v1.PodSpec", "tolerations"),
    map("io.k8s.api.core.v1.PodSpec", "hostAliases", &["ip"]),
    atomic("io.k8s.api.core.v1.PodSpec", "readinessGates"),
    map(
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    map("io.k8s.api.core.v1.PodSpec", "schedulingGates", &["name"]),
    map("io.k8s.api.core.v1.PodSpec", "resourceClaims", &["name"]),
    atomic(
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        "matchLabelKeys",
    ),
    atomic("io.k8s.api.core.v1.HostAlias", "hostnames"),
    atomic(
        "io.k8s.api.core.v1.PodSecurityContext",
        "supplementalGroups",
    ),
    atomic("io.k8s.api.core.v1.PodSecurityContext", "sysctls"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "nameservers"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "searches"),
    atomic("io.k8s.api.core.v1.PodDNSConfig", "options"),
    map("io.k8s.api.core.v1.PodStatus", "conditions", &["type"]),
    atomic("io.k8s.api.core.v1.PodStatus", "hostIPs"),
    map("io.k8s.api.core.v1.PodStatus", "podIPs", &["ip"]),
    atomic("io.k8s.api.core.v1.PodStatus", "initContainerStatuses"),
    atomic("io.k8s.api.core.v1.PodStatus", "containerStatuses"),
    atomic("io.k8s.api.core.v1.PodStatus", "ephemeralContainerStatuses"),
    map(
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        &["name"],
    ),
    map_type(
        "io.k8s.api.core.v1.ReplicationControllerSpec",
        "selector",
        "atomic",
    ),
    map(
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        &["type"],
    ),
    map("io.k8s.api.core.v1.ServiceStatus", "conditions", &["type"]),
    atomic("io.k8s.api.core.v1.LoadBalancerStatus", "ingress"),
    atomic("io.k8s.api.core.v1.LoadBalancerIngress", "ports"),
    map(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        &["port", "protocol"],
    ),
    map_type("io.k8s.api.core.v1.ServiceSpec", "selector", "atomic"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "clusterIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "externalIPs"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "loadBalancerSourceRanges"),
    atomic("io.k8s.api.core.v1.ServiceSpec", "ipFamilies"),
    map("io.k8s.api.core.v1.ServiceAccount", "secrets", &["name"]),
    atomic("io.k8s.api.core.v1.ServiceAccount", "imagePullSecrets"),
    atomic("io.k8s.api.core.v1.Endpoints", "subsets"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "addresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "notReadyAddresses"),
    atomic("io.k8s.api.core.v1.EndpointSubset", "ports"),
    set("io.k8s.api.core.v1.NodeSpec", "podCIDRs"),
    atomic("io.k8s.api.core.v1.NodeSpec", "taints"),
    map("io.k8s.api.core.v1.NodeStatus", "conditions", &["type"]),
    map("io.k8s.api.core.v1.NodeStatus", "addresses", &["type"]),
    atomic("io.k8s.api.core.v1.NodeStatus", "images"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesInUse"),
    atomic("io.k8s.api.core.v1.NodeStatus", "volumesAttached"),
    atomic("io.k8s.api.core.v1.NodeStatus", "runtimeHandlers"),
    atomic("io.k8s.api.core.v1.AvoidPods", "preferAvoidPods"),
    atomic("io.k8s.api.core.v1.ContainerImage", "names"),
    atomic("io.k8s.api.core.v1.NamespaceSpec", "finalizers"),
    map(
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        &["type"],
    ),
    atomic("io.k8s.api.core.v1.PodExecOptions", "command"),
    atomic("io.k8s.api.core.v1.PodPortForwardOptions", "ports"),
    atomic("io.k8s.api.core.v1.LimitRangeSpec", "limits"),
    atomic("io.k8s.api.core.v1.ResourceQuotaSpec", "scopes"),
    atomic("io.k8s.api.core.v1.ScopeSelector", "matchExpressions"),
    atomic(
        "io.k8s.api.core.v1.ScopedResourceSelectorRequirement",
        "values",
    ),
    map(
        "io.k8s.api.core.v1.ComponentStatus",
        "conditions",
        &["type"],
    ),
    atomic("io.k8s.api.core.v1.DownwardAPIVolumeSource", "items"),
    atomic("io.k8s.api.core.v1.DownwardAPIProjection", "items"),
    atomic("io.k8s.api.apps.v1.StatefulSetSpec", "volumeClaimTemplates"),
    map(
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        &["type"],
    ),
    map(
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        &["type"],
    ),
    map(
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        &["type"],
    ),
    map(
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        &["type"],
    ),
    set(
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        "values",
    ),
    atomic(
        "io.k8s.api.batch.v1.PodFailurePolicyRule",
        "onPodConditions",
    ),
    atomic("io.k8s.api.batch.v1.PodFailurePolicy", "rules"),
    atomic("io.k8s.api.batch.v1.SuccessPolicy", "rules"),
    atomic("io.k8s.api.batch.v1.JobStatus", "conditions"),
    set("io.k8s.api.batch.v1.UncountedTerminatedPods", "succeeded"),
    set("io.k8s.api.batch.v1.UncountedTerminatedPods", "failed"),
    atomic("io.k8s.api.batch.v1.CronJobStatus", "active"),
    atomic("io.k8s.api.discovery.v1.EndpointSlice", "endpoints"),
    atomic("io.k8s.api.discovery.v1.EndpointSlice", "ports"),
    set("io.k8s.api.discovery.v1.Endpoint", "addresses"),
    atomic("io.k8s.api.discovery.v1.EndpointHints", "forZones"),
    atomic("io.k8s.api.discovery.v1.EndpointHints", "forNodes"),
    map_type("io.k8s.api.node.v1.Scheduling", "nodeSelector", "atomic"),
    atomic("io.k8s.api.node.v1.Scheduling", "tolerations"),
    map(
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        &["type"],
    ),
];

/// Structs replaced as a whole by apply (`+structType=atomic`): `x-kubernetes-map-type: atomic`.
pub(super) const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
];
