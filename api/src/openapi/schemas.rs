//! The schema catalogue: every built-in kind's schema, generated once from `k8s-openapi`'s
//! `JsonSchema` impls, fixed up where kubectl expects upstream's shapes, then cut per document.
//!
//! Schemas are kept in one neutral form (refs as `#/components/schemas/NAME`, `$ref` with
//! sibling keywords) and turned into v3 or v2 form only when a document is rendered, so the
//! expensive part (running schemars over ~400 types) happens once per process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, discovery, events, node, policy,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::list_types;
use crate::resources::ResourceInfo;

/// Where refs point in the catalogue and in v3 documents.
pub(super) const V3_REF_PREFIX: &str = "#/components/schemas/";
/// Where refs point in v2 documents.
pub(super) const V2_REF_PREFIX: &str = "#/definitions/";

pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
pub(super) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Meta types that every group-version document carries, whatever its kinds reference.
pub(super) const META_ROOTS: &[&str] = &[
    STATUS,
    DELETE_OPTIONS,
    WATCH_EVENT,
    PATCH,
    API_RESOURCE_LIST,
];

/// A kind with a Rust type, and how to put that type's schema into a generator.
struct KindType {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    add: fn(&mut SchemaGenerator) -> String,
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

macro_rules! kind_types {
    ($($group:literal $version:literal $kind:ident => $ty:ty;)*) => {
        const KIND_TYPES: &[KindType] = &[
            $(KindType { group: $group, version: $version, kind: stringify!($kind), add: add::<$ty> },)*
        ];
    };
}

// Every kind a `ResourceInfo` can name and get a schema for. A served resource whose kind is
// missing here (and is no CRD) is left out of the documents rather than given dangling refs.
kind_types! {
    "" "v1" Pod => core::v1::Pod;
    "" "v1" Service => core::v1::Service;
    "" "v1" Endpoints => core::v1::Endpoints;
    "" "v1" ConfigMap => core::v1::ConfigMap;
    "" "v1" Secret => core::v1::Secret;
    "" "v1" ServiceAccount => core::v1::ServiceAccount;
    "" "v1" Event => core::v1::Event;
    "" "v1" LimitRange => core::v1::LimitRange;
    "" "v1" ResourceQuota => core::v1::ResourceQuota;
    "" "v1" Namespace => core::v1::Namespace;
    "" "v1" Node => core::v1::Node;
    "" "v1" PersistentVolume => core::v1::PersistentVolume;
    "" "v1" PersistentVolumeClaim => core::v1::PersistentVolumeClaim;
    "" "v1" PodTemplate => core::v1::PodTemplate;
    "" "v1" ReplicationController => core::v1::ReplicationController;
    "" "v1" Binding => core::v1::Binding;
    "apps" "v1" Deployment => apps::v1::Deployment;
    "apps" "v1" ReplicaSet => apps::v1::ReplicaSet;
    "apps" "v1" StatefulSet => apps::v1::StatefulSet;
    "apps" "v1" DaemonSet => apps::v1::DaemonSet;
    "apps" "v1" ControllerRevision => apps::v1::ControllerRevision;
    "batch" "v1" Job => batch::v1::Job;
    "batch" "v1" CronJob => batch::v1::CronJob;
    "discovery.k8s.io" "v1" EndpointSlice => discovery::v1::EndpointSlice;
    "events.k8s.io" "v1" Event => events::v1::Event;
    "coordination.k8s.io" "v1" Lease => coordination::v1::Lease;
    "node.k8s.io" "v1" RuntimeClass => node::v1::RuntimeClass;
    "autoscaling" "v1" Scale => autoscaling::v1::Scale;
    "autoscaling" "v1" HorizontalPodAutoscaler => autoscaling::v1::HorizontalPodAutoscaler;
    "policy" "v1" Eviction => policy::v1::Eviction;
    "policy" "v1" PodDisruptionBudget => policy::v1::PodDisruptionBudget;
    "apiextensions.k8s.io" "v1" CustomResourceDefinition => apiextensions::v1::CustomResourceDefinition;
}

/// `{"group", "version", "kind"}` exactly: kubectl explain compares it with `reflect.DeepEqual`.
pub(super) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

pub(super) struct Catalogue {
    pub defs: Map<String, Value>,
    /// `(group, version, kind)` to schema name, lists included.
    kinds: BTreeMap<(String, String, String), String>,
}

impl Catalogue {
    /// The schema of an object of `kind` in `group/version`, if it has a Rust type.
    pub fn schema_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
            .map(String::as_str)
    }
}

/// Built on first use and kept: schemars output does not change while the process runs.
pub(super) fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(build_catalogue)
}

fn build_catalogue() -> Catalogue {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.meta_schema = None;
        // schemars' own OpenAPI transforms drop `$ref` siblings (our field descriptions); the
        // per-version rendering below decides what to do with them instead.
        s.transforms.clear();
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut kinds = BTreeMap::new();
    for t in KIND_TYPES {
        let name = (t.add)(&mut generator);
        kinds.insert(
            (t.group.to_owned(), t.version.to_owned(), t.kind.to_owned()),
            name,
        );
    }
    add::<meta::v1::Status>(&mut generator);
    add::<meta::v1::DeleteOptions>(&mut generator);
    add::<meta::v1::WatchEvent<core::v1::Pod>>(&mut generator); // the same schema for any `T`
    add::<meta::v1::Patch>(&mut generator);
    add::<meta::v1::APIResourceList>(&mut generator);
    let mut defs = generator.take_definitions(false);

    for t in KIND_TYPES {
        let name = kinds[&(t.group.to_owned(), t.version.to_owned(), t.kind.to_owned())].clone();
        set_gvk(&mut defs[&name], gvk(t.group, t.version, t.kind));
        let list = list_schema(&name, t.group, t.version, t.kind);
        let list_name = format!("{name}List");
        defs.insert(list_name.clone(), list);
        kinds.insert(
            (
                t.group.to_owned(),
                t.version.to_owned(),
                format!("{}List", t.kind),
            ),
            list_name,
        );
    }
    set_gvk(&mut defs[STATUS], gvk("", "v1", "Status"));
    fix_up(&mut defs);
    Catalogue { defs, kinds }
}

fn set_gvk(schema: &mut Value, gvk: Value) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            Value::Array(vec![gvk]),
        );
    }
}

/// `k8s-openapi` has no schema for `List<T>`; this is the one upstream publishes as `PodList`.
pub(super) fn list_schema(item_schema: &str, group: &str, version: &str, kind: &str) -> Value {
    let mut list = json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": api_version_property(),
            "kind": kind_property(),
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": { "$ref": format!("{V3_REF_PREFIX}{item_schema}") },
            },
            "metadata": {
                "$ref": format!("{V3_REF_PREFIX}{LIST_META}"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
    });
    set_gvk(&mut list, gvk(group, version, &format!("{kind}List")));
    list
}

pub(super) fn api_version_property() -> Value {
    json!({
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    })
}

pub(super) fn kind_property() -> Value {
    json!({
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    })
}

/// Where schemars' output differs from what kube-apiserver publishes in ways clients notice.
fn fix_up(defs: &mut Map<String, Value>) {
    // Upstream (v3): IntOrString is `oneOf integer|string` with format `int-or-string`, Quantity
    // `oneOf string|number`; neither has a `type`, which is what makes kubectl explain print
    // `<IntOrString>` and `<Quantity>`. `x-kubernetes-int-or-string` is a CRD-only marker.
    let keep_description = |defs: &Map<String, Value>, name: &str| {
        defs.get(name).and_then(|s| s.get("description")).cloned()
    };
    if let Some(d) = keep_description(defs, INT_OR_STRING) {
        defs.insert(
            INT_OR_STRING.into(),
            json!({ "description": d, "format": "int-or-string", "oneOf": [{ "type": "integer" }, { "type": "string" }] }),
        );
    }
    if let Some(d) = keep_description(defs, QUANTITY) {
        defs.insert(
            QUANTITY.into(),
            json!({ "description": d, "oneOf": [{ "type": "string" }, { "type": "number" }] }),
        );
    }
    // CRD schema fragments hold any JSON value (a `default` of `5`), not only objects, and the
    // `...Or...` unions cannot be told apart in OpenAPI 3.0: upstream gives them no type at all.
    for name in [
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
    ] {
        if let Some(d) = keep_description(defs, name) {
            defs.insert(name.into(), json!({ "description": d }));
        }
    }
    for (schema, field) in crate::patch::meta::tagged_fields() {
        let tags = [
            ("x-kubernetes-patch-strategy", field.patch_strategy()),
            ("x-kubernetes-patch-merge-key", field.patch_merge_key()),
        ];
        if let Some(prop) = property_mut(defs, schema, field.name) {
            for (key, value) in tags {
                if let Some(value) = value {
                    prop.insert(key.into(), value.into());
                }
            }
        }
    }
    for (schema, f) in list_types::fields() {
        let Some(prop) = property_mut(defs, schema, f.property) else {
            continue;
        };
        for (key, value) in [
            ("x-kubernetes-list-type", f.list_type),
            ("x-kubernetes-map-type", f.map_type),
        ] {
            if !value.is_empty() {
                prop.insert(key.into(), value.into());
            }
        }
        if !f.list_map_keys.is_empty() {
            prop.insert("x-kubernetes-list-map-keys".into(), json!(f.list_map_keys));
        }
    }
    for name in list_types::ATOMIC_STRUCTS {
        if let Some(s) = defs.get_mut(*name).and_then(Value::as_object_mut) {
            s.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
}

/// The schema of `property` in the catalogue's `schema`, if both exist.
fn property_mut<'a>(
    defs: &'a mut Map<String, Value>,
    schema: &str,
    property: &str,
) -> Option<&'a mut Map<String, Value>> {
    defs.get_mut(schema)?
        .get_mut("properties")?
        .get_mut(property)?
        .as_object_mut()
}

/// Calls `f` on every subschema directly inside `schema`. Only schema keywords are followed:
/// values such as `default` or `enum` are data, where a `$ref` key is not a reference, and the
/// keys of `properties` are names (`JSONSchemaProps` has properties called `$ref` and `default`).
fn subschemas_mut(schema: &mut Map<String, Value>, f: &mut impl FnMut(&mut Value)) {
    for (key, value) in schema.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .for_each(&mut *f),
            "allOf" | "anyOf" | "oneOf" => {
                value.as_array_mut().into_iter().flatten().for_each(&mut *f)
            }
            "items" | "additionalProperties" | "additionalItems" | "not" => f(value),
            _ => {}
        }
    }
}

fn subschemas<'a>(schema: &'a Map<String, Value>, f: &mut impl FnMut(&'a Value)) {
    for (key, value) in schema {
        match key.as_str() {
            "properties" | "patternProperties" => value
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .for_each(&mut *f),
            "allOf" | "anyOf" | "oneOf" => value.as_array().into_iter().flatten().for_each(&mut *f),
            "items" | "additionalProperties" | "additionalItems" | "not" => f(value),
            _ => {}
        }
    }
}

/// Calls `f` with the name behind every `#/components/schemas/` ref in `schema`.
pub(super) fn for_each_ref(schema: &Value, f: &mut impl FnMut(&str)) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if let Some(name) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(V3_REF_PREFIX))
    {
        f(name);
    }
    subschemas(obj, &mut |s| for_each_ref(s, f));
}

/// The names reachable from `roots` through refs, roots included; names found in neither map
/// are skipped (the tests check that none are).
pub(super) fn closure<'a>(
    roots: impl IntoIterator<Item = &'a str>,
    sources: &[&Map<String, Value>],
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = roots.into_iter().map(str::to_owned).collect();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let Some(schema) = sources.iter().find_map(|m| m.get(&name)) else {
            continue;
        };
        for_each_ref(schema, &mut |r| {
            if !seen.contains(r) {
                todo.push(r.to_owned());
            }
        });
        seen.insert(name);
    }
    seen
}

/// OpenAPI 3.0 ignores keywords beside a `$ref`, so upstream wraps the ref in a one-element
/// `allOf` to keep a field's description, patch strategy and the like; kubectl explain reads both.
pub(super) fn to_v3(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    subschemas_mut(obj, &mut to_v3);
    if obj.len() > 1 && obj.get("$ref").is_some_and(Value::is_string) {
        let r = obj.remove("$ref").unwrap_or_default();
        obj.insert("allOf".into(), json!([{ "$ref": r }]));
    }
}

/// Swagger 2.0 keeps `$ref` siblings as they are (upstream does too) but has no `oneOf`,
/// `anyOf`, `not` or `nullable`: those become what kube-apiserver's v2 shows.
pub(super) fn to_v2(name: &str, schema: &mut Value) {
    if name == INT_OR_STRING || name == QUANTITY {
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("oneOf");
            obj.insert("type".into(), "string".into());
        }
        return;
    }
    strip_v2(schema);
}

fn strip_v2(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    for key in ["oneOf", "anyOf", "not", "nullable"] {
        obj.remove(key);
    }
    if let Some(r) = obj.get_mut("$ref")
        && let Some(name) = r.as_str().and_then(|r| r.strip_prefix(V3_REF_PREFIX))
    {
        *r = format!("{V2_REF_PREFIX}{name}").into();
    }
    subschemas_mut(obj, &mut strip_v2);
}

/// Upstream's name for a custom resource's schema: the group reversed, `com.example.v1.CronTab`.
pub(super) fn crd_schema_name(info: &ResourceInfo, kind: &str) -> String {
    let mut parts: Vec<&str> = info.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{kind}", parts.join("."), info.version)
}

/// A CRD's `openAPIV3Schema` made into a kind's schema as kube-apiserver publishes it:
/// `apiVersion`, `kind` and a `metadata` that refers to `ObjectMeta`, plus the GVK.
pub(super) fn crd_schemas(info: &ResourceInfo, schema: &Value) -> [(String, Value); 2] {
    let name = crd_schema_name(info, &info.kind);
    let mut s = match schema {
        Value::Object(obj) => obj.clone(),
        _ => Map::new(),
    };
    s.entry("type").or_insert_with(|| "object".into());
    let props = s
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(props) = props.as_object_mut() {
        props.insert("apiVersion".into(), api_version_property());
        props.insert("kind".into(), kind_property());
        props.insert(
            "metadata".into(),
            json!({
                "$ref": format!("{V3_REF_PREFIX}{OBJECT_META}"),
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            }),
        );
    }
    let mut s = Value::Object(s);
    set_gvk(&mut s, gvk(&info.group, &info.version, &info.kind));
    let list = list_schema(&name, &info.group, &info.version, &info.kind);
    [(name.clone(), s), (format!("{name}List"), list)]
}
