//! The REST operations of each resource, described once and rendered as OpenAPI v3 or Swagger 2.0.
//!
//! Names, actions and parameters are kube-apiserver's, because clients key on them: kubectl
//! finds a kind's schema through the `x-kubernetes-group-version-kind` of its operations, and
//! decides whether to ask for server-side field validation by looking for `fieldValidation`
//! among the parameters of the kind's PATCH operation (the operation's own list: parameters
//! declared on the path item are not looked at, so every query parameter sits on its operation).

use serde_json::{Map, Value, json};

use super::schemas::{
    self, DELETE_OPTIONS, PATCH, SCALE, STATUS, V2_REF_PREFIX, V3_REF_PREFIX, WATCH_EVENT,
};
use crate::resources::ResourceInfo;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    String,
    Boolean,
    Integer,
}

#[derive(Clone, Copy)]
struct Param {
    name: &'static str,
    ty: Ty,
    description: &'static str,
}

const fn q(name: &'static str, ty: Ty, description: &'static str) -> Param {
    Param {
        name,
        ty,
        description,
    }
}

const PRETTY: Param = q(
    "pretty",
    Ty::String,
    "If 'true', then the output is pretty printed.",
);
const DRY_RUN: Param = q(
    "dryRun",
    Ty::String,
    "When present, indicates that modifications should not be persisted. The only valid value is 'All': all dry run stages are processed.",
);
const FIELD_MANAGER: Param = q(
    "fieldManager",
    Ty::String,
    "A name associated with the actor or entity making these changes, at most 128 printable characters. Required for apply requests (application/apply-patch), optional otherwise.",
);
const FIELD_VALIDATION: Param = q(
    "fieldValidation",
    Ty::String,
    "How the server treats unknown or duplicate fields in the request: Ignore (drop them silently), Warn (drop them and return a warning header per field; the default), or Strict (fail the request with BadRequest).",
);
const FORCE: Param = q(
    "force",
    Ty::Boolean,
    "Force is going to \"force\" Apply requests: the request re-acquires fields owned by other managers instead of failing with a conflict. Must be unset for non-apply patch requests.",
);
const GRACE_PERIOD: Param = q(
    "gracePeriodSeconds",
    Ty::Integer,
    "The duration in seconds before the object should be deleted; zero means delete immediately. Unset uses the kind's default.",
);
const PROPAGATION: Param = q(
    "propagationPolicy",
    Ty::String,
    "Whether and how garbage collection will be performed on dependents: Orphan, Background or Foreground.",
);
const ORPHAN: Param = q(
    "orphanDependents",
    Ty::Boolean,
    "Deprecated: use propagationPolicy. If true, dependents are orphaned; if false, the \"orphan\" finalizer is removed.",
);
const IGNORE_STORE_READ_ERROR: Param = q(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    Ty::Boolean,
    "If true, an object that cannot be read from storage (corrupt or undecryptable) is deleted anyway, skipping finalizers and admission. May break the cluster.",
);
const ALLOW_WATCH_BOOKMARKS: Param = q(
    "allowWatchBookmarks",
    Ty::Boolean,
    "Requests BOOKMARK watch events; servers may ignore it. Ignored on plain lists.",
);
const CONTINUE: Param = q(
    "continue",
    Ty::String,
    "The continue token of a previous paged list, to fetch the next page with the same query.",
);
const FIELD_SELECTOR: Param = q(
    "fieldSelector",
    Ty::String,
    "Restricts the returned objects by their fields. Defaults to everything.",
);
const LABEL_SELECTOR: Param = q(
    "labelSelector",
    Ty::String,
    "Restricts the returned objects by their labels. Defaults to everything.",
);
const LIMIT: Param = q(
    "limit",
    Ty::Integer,
    "The maximum number of objects to return; if there are more, the list's metadata.continue is set for the next page.",
);
const RESOURCE_VERSION: Param = q(
    "resourceVersion",
    Ty::String,
    "Constrains which resource versions a request may be served from; see resourceVersionMatch. Defaults to unset (most recent).",
);
const RESOURCE_VERSION_MATCH: Param = q(
    "resourceVersionMatch",
    Ty::String,
    "How resourceVersion is applied to list calls: Exact or NotOlderThan. Requires resourceVersion.",
);
const SEND_INITIAL_EVENTS: Param = q(
    "sendInitialEvents",
    Ty::Boolean,
    "With watch=true, starts the watch with synthetic ADDED events for the current state, then a bookmark annotated \"k8s.io/initial-events-end\".",
);
const TIMEOUT_SECONDS: Param = q(
    "timeoutSeconds",
    Ty::Integer,
    "Timeout for the list/watch call, regardless of activity.",
);
const WATCH: Param = q(
    "watch",
    Ty::Boolean,
    "Watch for changes to the described resources and return them as a stream of add, update and remove notifications.",
);

const LIST_PARAMS: &[Param] = &[
    ALLOW_WATCH_BOOKMARKS,
    CONTINUE,
    FIELD_SELECTOR,
    LABEL_SELECTOR,
    LIMIT,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
    WATCH,
];
const WRITE_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
const DELETE_PARAMS: &[Param] = &[
    DRY_RUN,
    GRACE_PERIOD,
    IGNORE_STORE_READ_ERROR,
    ORPHAN,
    PROPAGATION,
];
const DELETE_COLLECTION_PARAMS: &[Param] = &[
    CONTINUE,
    DRY_RUN,
    FIELD_SELECTOR,
    GRACE_PERIOD,
    IGNORE_STORE_READ_ERROR,
    LABEL_SELECTOR,
    LIMIT,
    ORPHAN,
    PROPAGATION,
    RESOURCE_VERSION,
    RESOURCE_VERSION_MATCH,
    SEND_INITIAL_EVENTS,
    TIMEOUT_SECONDS,
];

/// The PATCH content types: strategic merge only for kinds with Go structs behind them, as
/// upstream; its presence is what makes kubectl compute strategic patches from our schemas.
pub(super) const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const OBJECT_TYPES: &[&str] = &["application/json", "application/yaml"];
const STREAM_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

enum Body {
    /// The object itself (create, replace).
    Object(String),
    Patch {
        strategic: bool,
    },
    Delete,
}

struct Op {
    method: &'static str,
    id: String,
    action: &'static str,
    gvk: Value,
    description: String,
    params: &'static [Param],
    body: Option<Body>,
    /// Response codes with the schema each returns.
    responses: Vec<(&'static str, String)>,
    streams: bool,
}

pub(super) struct PathItem {
    pub path: String,
    namespaced: bool,
    named: bool,
    ops: Vec<Op>,
}

/// What a document needs to know about one served resource.
pub(super) struct Served<'a> {
    pub info: &'a ResourceInfo,
    /// Schema names of the kind and its list.
    pub schema: String,
    pub list_schema: String,
    /// Custom resources take no strategic merge patch.
    pub custom: bool,
}

/// `Apps`, `Core`, `Discovery` (`.k8s.io` dropped), `RbacAuthorization`, `StableExampleCom`.
fn group_part(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    group.split(['.', '-']).map(upper_first).collect()
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The `tags` entry upstream gives each operation: `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    let g = group_part(group);
    let mut chars = g.chars();
    let lower = chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default();
    format!("{lower}_{version}")
}

/// `/api/v1` or `/apis/apps/v1`.
pub(super) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn has_verb(info: &ResourceInfo, verb: &str) -> bool {
    info.verbs.iter().any(|v| v == verb)
}

/// Every path of one resource, in upstream's shape.
pub(super) fn resource_paths(s: &Served) -> Vec<PathItem> {
    let r = s.info;
    let gp = group_part(&r.group);
    let v = upper_first(&r.version);
    let kind = &r.kind;
    let base = prefix(&r.group, &r.version);
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let scope_path = if r.namespaced {
        format!("/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("/{}", r.plural)
    };
    let kind_gvk = schemas::gvk(&r.group, &r.version, kind);
    let op = |method,
              id: String,
              action,
              description: String,
              params,
              body,
              responses: Vec<(&'static str, String)>| {
        Op {
            method,
            id,
            action,
            gvk: kind_gvk.clone(),
            description,
            params,
            body,
            responses,
            streams: false,
        }
    };
    let list = |id: String| {
        let (description, responses) = (
            format!("list or watch objects of kind {kind}"),
            vec![("200", s.list_schema.clone())],
        );
        Op {
            streams: true,
            ..op("get", id, "list", description, LIST_PARAMS, None, responses)
        }
    };
    // Reading, replacing and patching work alike on the object and on its subresources.
    let read = |id: String, description: String, schema: &str| {
        op(
            "get",
            id,
            "get",
            description,
            &[],
            None,
            vec![("200", schema.to_owned())],
        )
    };
    let replace = |id: String, description: String, schema: &str| {
        let (body, responses) = (
            Body::Object(schema.to_owned()),
            vec![("200", schema.to_owned()), ("201", schema.to_owned())],
        );
        op(
            "put",
            id,
            "put",
            description,
            WRITE_PARAMS,
            Some(body),
            responses,
        )
    };
    let patch = |id: String, description: String, schema: &str| {
        let (body, responses) = (
            Body::Patch {
                strategic: !s.custom,
            },
            vec![("200", schema.to_owned()), ("201", schema.to_owned())],
        );
        op(
            "patch",
            id,
            "patch",
            description,
            PATCH_PARAMS,
            Some(body),
            responses,
        )
    };
    let obj = s.schema.as_str();
    let mut out = Vec::new();

    // The collection.
    let mut ops = Vec::new();
    if has_verb(r, "list") {
        ops.push(list(format!("list{gp}{v}{ns}{kind}")));
    }
    if has_verb(r, "create") {
        ops.push(op(
            "post",
            format!("create{gp}{v}{ns}{kind}"),
            "post",
            format!("create a {kind}"),
            WRITE_PARAMS,
            Some(Body::Object(obj.to_owned())),
            vec![
                ("200", obj.to_owned()),
                ("201", obj.to_owned()),
                ("202", obj.to_owned()),
            ],
        ));
    }
    if has_verb(r, "deletecollection") {
        ops.push(op(
            "delete",
            format!("delete{gp}{v}Collection{ns}{kind}"),
            "deletecollection",
            format!("delete collection of {kind}"),
            DELETE_COLLECTION_PARAMS,
            Some(Body::Delete),
            vec![("200", STATUS.into())],
        ));
    }
    out.push(PathItem {
        path: format!("{base}{scope_path}"),
        namespaced: r.namespaced,
        named: false,
        ops,
    });

    // One object.
    let mut ops = Vec::new();
    if has_verb(r, "get") {
        ops.push(read(
            format!("read{gp}{v}{ns}{kind}"),
            format!("read the specified {kind}"),
            obj,
        ));
    }
    if has_verb(r, "update") {
        ops.push(replace(
            format!("replace{gp}{v}{ns}{kind}"),
            format!("replace the specified {kind}"),
            obj,
        ));
    }
    if has_verb(r, "delete") {
        ops.push(op(
            "delete",
            format!("delete{gp}{v}{ns}{kind}"),
            "delete",
            format!("delete a {kind}"),
            DELETE_PARAMS,
            Some(Body::Delete),
            vec![("200", STATUS.into()), ("202", STATUS.into())],
        ));
    }
    if has_verb(r, "patch") {
        ops.push(patch(
            format!("patch{gp}{v}{ns}{kind}"),
            format!("partially update the specified {kind}"),
            obj,
        ));
    }
    out.push(PathItem {
        path: format!("{base}{scope_path}/{{name}}"),
        namespaced: r.namespaced,
        named: true,
        ops,
    });

    // Subresources that carry the object (status) or a Scale.
    for (sub, suffix, schema, sub_gvk) in [
        ("status", "Status", obj, kind_gvk.clone()),
        (
            "scale",
            "Scale",
            SCALE,
            schemas::gvk("autoscaling", "v1", "Scale"),
        ),
    ] {
        if !r.has_subresource(sub) {
            continue;
        }
        let mut ops = vec![
            read(
                format!("read{gp}{v}{ns}{kind}{suffix}"),
                format!("read {sub} of the specified {kind}"),
                schema,
            ),
            replace(
                format!("replace{gp}{v}{ns}{kind}{suffix}"),
                format!("replace {sub} of the specified {kind}"),
                schema,
            ),
            patch(
                format!("patch{gp}{v}{ns}{kind}{suffix}"),
                format!("partially update {sub} of the specified {kind}"),
                schema,
            ),
        ];
        for o in &mut ops {
            o.gvk = sub_gvk.clone();
        }
        out.push(PathItem {
            path: format!("{base}{scope_path}/{{name}}/{sub}"),
            namespaced: r.namespaced,
            named: true,
            ops,
        });
    }

    if r.namespaced && has_verb(r, "list") {
        let o = list(format!("list{gp}{v}{kind}ForAllNamespaces"));
        out.push(PathItem {
            path: format!("{base}/{}", r.plural),
            namespaced: false,
            named: false,
            ops: vec![o],
        });
    }

    // The deprecated `/watch/` paths, still in upstream's documents and generated clients.
    if has_verb(r, "watch") {
        let watch = |path: String, id: String, action, description: String, namespaced, named| {
            let o = Op {
                streams: true,
                ..op(
                    "get",
                    id,
                    action,
                    description,
                    LIST_PARAMS,
                    None,
                    vec![("200", WATCH_EVENT.into())],
                )
            };
            PathItem {
                path,
                namespaced,
                named,
                ops: vec![o],
            }
        };
        out.push(watch(
            format!("{base}/watch{scope_path}"),
            format!("watch{gp}{v}{ns}{kind}List"),
            "watchlist",
            format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
            r.namespaced,
            false,
        ));
        out.push(watch(
            format!("{base}/watch{scope_path}/{{name}}"),
            format!("watch{gp}{v}{ns}{kind}"),
            "watch",
            format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
            r.namespaced,
            true,
        ));
        if r.namespaced {
            out.push(watch(
                format!("{base}/watch/{}", r.plural),
                format!("watch{gp}{v}{kind}ListForAllNamespaces"),
                "watchlist",
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                false,
                false,
            ));
        }
    }
    out
}

/// `GET /api/v1/`: the group-version's resource list, as upstream documents it.
pub(super) fn resources_path(group: &str, version: &str) -> (String, Value, Value) {
    let id = format!(
        "get{}{}APIResources",
        group_part(group),
        upper_first(version)
    );
    let path = format!("{}/", prefix(group, version));
    let v3 = json!({
        "get": {
            "description": "get available resources",
            "operationId": id,
            "tags": [tag(group, version)],
            "responses": {
                "200": { "description": "OK", "content": content(OBJECT_TYPES, &json!({ "$ref": format!("{V3_REF_PREFIX}{}", schemas::API_RESOURCE_LIST) })) },
                "401": { "description": "Unauthorized" },
            },
        },
    });
    let v2 = json!({
        "get": {
            "description": "get available resources",
            "operationId": id,
            "tags": [tag(group, version)],
            "consumes": OBJECT_TYPES,
            "produces": OBJECT_TYPES,
            "schemes": ["https"],
            "responses": {
                "200": { "description": "OK", "schema": { "$ref": format!("{V2_REF_PREFIX}{}", schemas::API_RESOURCE_LIST) } },
                "401": { "description": "Unauthorized" },
            },
        },
    });
    (path, v3, v2)
}

/// The content types a PATCH accepts: [`PATCH_TYPES`], less strategic merge patch for
/// custom resources.
fn patch_types(strategic: bool) -> Vec<&'static str> {
    PATCH_TYPES
        .iter()
        .copied()
        .filter(|t| strategic || !t.starts_with("application/strategic"))
        .collect()
}

fn content(types: &[&str], schema: &Value) -> Value {
    Value::Object(
        types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": schema })))
            .collect(),
    )
}

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::String => "string",
        Ty::Boolean => "boolean",
        Ty::Integer => "integer",
    }
}

fn path_params(item: &PathItem, kind: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if item.named {
        out.push(("name", format!("name of the {kind}")));
    }
    if item.namespaced {
        out.push((
            "namespace",
            "object name and auth scope, such as for teams and projects".to_owned(),
        ));
    }
    out
}

fn status_text(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

/// One path item in OpenAPI v3 form.
pub(super) fn render_v3(item: &PathItem, s: &Served) -> Value {
    let mut out = Map::new();
    let mut shared = Vec::new();
    for (name, description) in path_params(item, &s.info.kind) {
        shared.push(json!({ "name": name, "in": "path", "description": description, "required": true, "schema": { "type": "string", "uniqueItems": true } }));
    }
    shared.push(json!({ "name": PRETTY.name, "in": "query", "description": PRETTY.description, "schema": { "type": "string", "uniqueItems": true } }));
    out.insert("parameters".into(), Value::Array(shared));
    for op in &item.ops {
        let mut o = Map::new();
        o.insert("description".into(), op.description.clone().into());
        o.insert("operationId".into(), op.id.clone().into());
        o.insert("tags".into(), json!([tag(&s.info.group, &s.info.version)]));
        if !op.params.is_empty() {
            let params = op
                .params
                .iter()
                .map(|p| json!({ "name": p.name, "in": "query", "description": p.description, "schema": { "type": type_name(p.ty), "uniqueItems": true } }))
                .collect();
            o.insert("parameters".into(), Value::Array(params));
        }
        match &op.body {
            Some(Body::Object(schema)) => {
                o.insert(
                    "requestBody".into(),
                    json!({ "content": content(&["*/*"], &v3_ref(schema)), "required": true }),
                );
            }
            Some(Body::Patch { strategic }) => {
                let types = patch_types(*strategic);
                o.insert(
                    "requestBody".into(),
                    json!({ "content": content(&types, &v3_ref(PATCH)), "required": true }),
                );
            }
            Some(Body::Delete) => {
                o.insert(
                    "requestBody".into(),
                    json!({ "content": content(&["*/*"], &v3_ref(DELETE_OPTIONS)) }),
                );
            }
            None => {}
        }
        let types = if op.streams {
            STREAM_TYPES
        } else {
            OBJECT_TYPES
        };
        let mut responses = Map::new();
        for (code, schema) in &op.responses {
            responses.insert(
                (*code).into(),
                json!({ "description": status_text(code), "content": content(types, &v3_ref(schema)) }),
            );
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        o.insert("responses".into(), Value::Object(responses));
        o.insert("x-kubernetes-action".into(), op.action.into());
        o.insert("x-kubernetes-group-version-kind".into(), op.gvk.clone());
        out.insert(op.method.into(), Value::Object(o));
    }
    Value::Object(out)
}

/// One path item in Swagger 2.0 form.
pub(super) fn render_v2(item: &PathItem, s: &Served) -> Value {
    let mut out = Map::new();
    let mut shared = Vec::new();
    for (name, description) in path_params(item, &s.info.kind) {
        shared.push(json!({ "name": name, "in": "path", "description": description, "required": true, "type": "string", "uniqueItems": true }));
    }
    shared.push(json!({ "name": PRETTY.name, "in": "query", "description": PRETTY.description, "type": "string", "uniqueItems": true }));
    out.insert("parameters".into(), Value::Array(shared));
    for op in &item.ops {
        let mut o = Map::new();
        o.insert("description".into(), op.description.clone().into());
        o.insert("operationId".into(), op.id.clone().into());
        o.insert("tags".into(), json!([tag(&s.info.group, &s.info.version)]));
        o.insert("schemes".into(), json!(["https"]));
        let mut params: Vec<Value> = Vec::new();
        let consumes: Vec<&str> = match &op.body {
            Some(Body::Object(schema)) => {
                params.push(json!({ "name": "body", "in": "body", "required": true, "schema": v2_ref(schema) }));
                vec!["*/*"]
            }
            Some(Body::Patch { strategic }) => {
                params.push(json!({ "name": "body", "in": "body", "required": true, "schema": v2_ref(PATCH) }));
                patch_types(*strategic)
            }
            Some(Body::Delete) => {
                params.push(
                    json!({ "name": "body", "in": "body", "schema": v2_ref(DELETE_OPTIONS) }),
                );
                vec!["*/*"]
            }
            None => vec!["*/*"],
        };
        params.extend(
            op.params
                .iter()
                .map(|p| json!({ "name": p.name, "in": "query", "description": p.description, "type": type_name(p.ty), "uniqueItems": true })),
        );
        if !params.is_empty() {
            o.insert("parameters".into(), Value::Array(params));
        }
        o.insert("consumes".into(), json!(consumes));
        o.insert(
            "produces".into(),
            json!(if op.streams {
                STREAM_TYPES
            } else {
                OBJECT_TYPES
            }),
        );
        let mut responses = Map::new();
        for (code, schema) in &op.responses {
            responses.insert(
                (*code).into(),
                json!({ "description": status_text(code), "schema": v2_ref(schema) }),
            );
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        o.insert("responses".into(), Value::Object(responses));
        o.insert("x-kubernetes-action".into(), op.action.into());
        o.insert("x-kubernetes-group-version-kind".into(), op.gvk.clone());
        out.insert(op.method.into(), Value::Object(o));
    }
    Value::Object(out)
}

fn v3_ref(name: &str) -> Value {
    json!({ "$ref": format!("{V3_REF_PREFIX}{name}") })
}

fn v2_ref(name: &str) -> Value {
    json!({ "$ref": format!("{V2_REF_PREFIX}{name}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_name_the_group_as_kubernetes_does() {
        assert_eq!(group_part(""), "Core");
        assert_eq!(group_part("apps"), "Apps");
        assert_eq!(group_part("discovery.k8s.io"), "Discovery");
        assert_eq!(group_part("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_part("stable.example.com"), "StableExampleCom");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("", "v1"), "core_v1");
    }
}
