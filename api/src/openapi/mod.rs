//! The OpenAPI documents the API server publishes at `/openapi/v2` and `/openapi/v3/...`.
//!
//! Unmodified kubectl depends on them: `kubectl explain` reads the group-version's v3 document,
//! finds the schema whose `x-kubernetes-group-version-kind` matches the resource, and follows
//! its `$ref`s; `kubectl apply` asks for server-side field validation only if the kind's PATCH
//! operation lists a `fieldValidation` parameter, and computes strategic merge patches from the
//! schemas' patch strategies. Schemas come from `k8s-openapi`'s `JsonSchema` impls under
//! upstream's names (`io.k8s.api.core.v1.Pod`), with the fix-ups listed in `schemas.rs`.
//!
//! # Caching
//! The documents are large (core/v1 alone is over half a megabyte) and change only when the set
//! of resources does. [`Documents::build`] renders all of them with their content hashes, so the
//! server can build once per resource set, serve the same bytes with the hash as ETag, and put
//! the hashes into the v3 index's `?hash=` URLs, as kube-apiserver does. The schema catalogue
//! itself is generated once per process.
//!
//! # Layout
//! - `schemas.rs`: the schema catalogue, its fix-ups, and cutting it down to one document;
//! - `paths.rs`: every resource's operations, in v3 and v2 form;
//! - `list_types.rs`: list, map and struct types for server-side apply, which `k8s-openapi` does
//!   not carry. The patch strategies beside them come from [`crate::patch::meta`], the table the
//!   patch engine itself applies.

mod list_types;
mod paths;
mod schemas;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;
use paths::Served;
use schemas::{DELETE_OPTIONS, META_ROOTS, SCALE, WATCH_EVENT};

/// A custom resource with the `openAPIV3Schema` of its CRD version.
pub type CustomResource = (ResourceInfo, Value);

/// The key of a group-version in the v3 index and its URL: `api/v1`, `apis/apps/v1`.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `/openapi/v3` index: one entry per group-version in `resources` (custom resources
/// included), each pointing at `/openapi/v3/{path}?hash={hash_of(path)}`. kubectl caches each
/// document under that URL, so the hash must change whenever the document does.
pub fn v3_index(resources: &[ResourceInfo], hash_of: impl Fn(&str) -> String) -> Value {
    let gvs: BTreeSet<String> = resources
        .iter()
        .map(|r| group_version_path(&r.group, &r.version))
        .collect();
    let paths: Map<String, Value> = gvs
        .into_iter()
        .map(|p| {
            let url = format!("/openapi/v3/{p}?hash={}", hash_of(&p));
            (p, json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// The v3 document of one group-version of built-in resources.
pub fn v3_group_version(resources: &[ResourceInfo], group: &str, version: &str) -> Value {
    v3_group_version_with_crds(resources, &[], group, version)
}

/// The v3 document of one group-version, custom resources included. Resources whose kind has
/// neither a built-in schema nor a CRD schema are left out rather than given dangling refs.
pub fn v3_group_version_with_crds(
    resources: &[ResourceInfo],
    crds: &[CustomResource],
    group: &str,
    version: &str,
) -> Value {
    let set = ResourceSet::new(resources, crds);
    let served: Vec<&Served> = set
        .served
        .iter()
        .filter(|s| s.info.group == group && s.info.version == version)
        .collect();

    let mut path_items = Map::new();
    let (path, item, _) = paths::resources_path(group, version);
    path_items.insert(path, item);
    for s in &served {
        for item in paths::resource_paths(s) {
            path_items.insert(item.path.clone(), paths::render_v3(&item, s));
        }
    }
    let mut components = set.schemas_for(&served, &[(group, version)]);
    for (_, schema) in components.iter_mut() {
        schemas::to_v3(schema);
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": path_items,
        "components": {
            "schemas": components,
            "securitySchemes": { "BearerToken": { "type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header" } },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// The Swagger 2.0 document of every built-in resource.
pub fn v2(resources: &[ResourceInfo]) -> Value {
    v2_with_crds(resources, &[])
}

/// The Swagger 2.0 document of everything served. Custom resource schemas lose what 2.0
/// cannot say (`oneOf`, `anyOf`, `not`, `nullable`), as upstream's do.
pub fn v2_with_crds(resources: &[ResourceInfo], crds: &[CustomResource]) -> Value {
    let set = ResourceSet::new(resources, crds);
    let served: Vec<&Served> = set.served.iter().collect();
    let gvs: BTreeSet<(&str, &str)> = served
        .iter()
        .map(|s| (s.info.group.as_str(), s.info.version.as_str()))
        .collect();

    let mut path_items = Map::new();
    for (group, version) in &gvs {
        let (path, _, item) = paths::resources_path(group, version);
        path_items.insert(path, item);
    }
    for s in &served {
        for item in paths::resource_paths(s) {
            path_items.insert(item.path.clone(), paths::render_v2(&item, s));
        }
    }
    let gvs: Vec<(&str, &str)> = gvs.into_iter().collect();
    let mut definitions = set.schemas_for(&served, &gvs);
    for (name, schema) in definitions.iter_mut() {
        schemas::to_v2(name, schema);
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "unversioned" },
        "paths": path_items,
        "definitions": definitions,
        "securityDefinitions": { "BearerToken": { "type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header" } },
        "security": [{ "BearerToken": [] }],
    })
}

/// The resources a document describes, each with its schemas.
struct ResourceSet<'a> {
    served: Vec<Served<'a>>,
    /// Custom resources' kind and list schemas.
    crd_defs: Map<String, Value>,
}

impl<'a> ResourceSet<'a> {
    fn new(resources: &'a [ResourceInfo], crds: &'a [CustomResource]) -> Self {
        let catalogue = schemas::catalogue();
        let mut served = Vec::new();
        let mut crd_defs = Map::new();
        let same = |a: &ResourceInfo, b: &ResourceInfo| {
            a.group == b.group && a.version == b.version && a.plural == b.plural
        };
        for (info, schema) in crds {
            let [(name, kind_schema), (list_name, list_schema)] =
                schemas::crd_schemas(info, schema);
            crd_defs.insert(name.clone(), kind_schema);
            crd_defs.insert(list_name.clone(), list_schema);
            served.push(Served {
                info,
                schema: name,
                list_schema: list_name,
                custom: true,
            });
        }
        for info in resources {
            if crds.iter().any(|(c, _)| same(c, info)) {
                continue;
            }
            let kind = catalogue.schema_of(&info.group, &info.version, &info.kind);
            let list = catalogue.schema_of(&info.group, &info.version, &info.list_kind());
            if let (Some(kind), Some(list)) = (kind, list) {
                served.push(Served {
                    info,
                    schema: kind.to_owned(),
                    list_schema: list.to_owned(),
                    custom: false,
                });
            }
        }
        // Discovery order is not stable across CRD updates; documents must be.
        served.sort_by(|a, b| {
            (&a.info.group, &a.info.version, &a.info.plural).cmp(&(
                &b.info.group,
                &b.info.version,
                &b.info.plural,
            ))
        });
        ResourceSet { served, crd_defs }
    }

    /// The schemas reachable from `served`'s kinds and the meta types, in neutral form, with
    /// `DeleteOptions` and `WatchEvent` claiming the document's group-versions as upstream's do.
    fn schemas_for(&self, served: &[&Served], gvs: &[(&str, &str)]) -> Map<String, Value> {
        let catalogue = schemas::catalogue();
        let mut roots: Vec<&str> = META_ROOTS.to_vec();
        for s in served {
            roots.push(&s.schema);
            roots.push(&s.list_schema);
            if s.info.has_subresource("scale") {
                roots.push(SCALE);
            }
        }
        let names = schemas::closure(roots, &[&catalogue.defs, &self.crd_defs]);
        let mut out = Map::new();
        for name in names {
            let Some(schema) = self
                .crd_defs
                .get(&name)
                .or_else(|| catalogue.defs.get(&name))
            else {
                continue;
            };
            let mut schema = schema.clone();
            if name == DELETE_OPTIONS || name == WATCH_EVENT {
                let kind = name.rsplit('.').next().unwrap_or_default();
                let mut all: Vec<Value> =
                    gvs.iter().map(|(g, v)| schemas::gvk(g, v, kind)).collect();
                if !gvs.contains(&("", "v1")) {
                    all.push(schemas::gvk("", "v1", kind));
                }
                if let Some(obj) = schema.as_object_mut() {
                    obj.insert("x-kubernetes-group-version-kind".into(), Value::Array(all));
                }
            }
            out.insert(name, schema);
        }
        out
    }
}

/// A stable hash of a document's bytes, for ETags and the index's `?hash=`: 128-bit FNV-1a in
/// upper-case hex. It only has to change when the bytes do, and the bytes are our own, so a
/// cryptographic hash (upstream uses SHA-512) would buy nothing here.
pub fn content_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME));
    format!("{hash:032X}")
}

/// One document as served: its JSON bytes and their [`content_hash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl Rendered {
    pub fn new(document: &Value) -> Self {
        // A `Value` always serializes; maps are sorted, so equal documents give equal bytes.
        let bytes = serde_json::to_vec(document).unwrap_or_default();
        let hash = content_hash(&bytes);
        Rendered { bytes, hash }
    }
}

/// Every OpenAPI document for one set of resources, ready to serve.
#[derive(Clone, Debug)]
pub struct Documents {
    /// `/openapi/v2`.
    pub v2: Rendered,
    /// `/openapi/v3`.
    pub v3_index: Rendered,
    /// `/openapi/v3/{key}`, keyed by [`group_version_path`].
    pub v3: BTreeMap<String, Rendered>,
}

impl Documents {
    /// Renders everything; rebuild when a CRD (or the built-in set) changes.
    pub fn build(resources: &[ResourceInfo], crds: &[CustomResource]) -> Self {
        let mut gvs: BTreeSet<(&str, &str)> = resources
            .iter()
            .map(|r| (r.group.as_str(), r.version.as_str()))
            .collect();
        gvs.extend(
            crds.iter()
                .map(|(r, _)| (r.group.as_str(), r.version.as_str())),
        );
        let v3: BTreeMap<String, Rendered> = gvs
            .iter()
            .map(|(g, v)| {
                (
                    group_version_path(g, v),
                    Rendered::new(&v3_group_version_with_crds(resources, crds, g, v)),
                )
            })
            .collect();
        let mut all: Vec<ResourceInfo> = resources.to_vec();
        all.extend(crds.iter().map(|(r, _)| r.clone()));
        let index = v3_index(&all, |p| {
            v3.get(p).map(|r| r.hash.clone()).unwrap_or_default()
        });
        Documents {
            v2: Rendered::new(&v2_with_crds(resources, crds)),
            v3_index: Rendered::new(&index),
            v3,
        }
    }

    /// The v3 document for the path after `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
    pub fn group_version(&self, path: &str) -> Option<&Rendered> {
        self.v3.get(path.trim_matches('/'))
    }
}

#[cfg(test)]
mod tests;
