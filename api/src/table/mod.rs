//! Server-side `Table` conversion: what `kubectl get` prints.
//!
//! kubectl (v1.20 and later) does not lay out columns itself. It asks for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json` and prints the
//! `meta.k8s.io/v1` `Table` the server returns: `columnDefinitions` say the headers, each
//! row's `cells` the values, already formatted. So every column and every cell text here
//! follows Kubernetes' printers (`pkg/printers/internalversion/printers.go`, Kubernetes
//! 1.33) — a user comparing `kubectl get pods` on Sextant and on a kind cluster should see
//! the same words, down to `Init:1/2`, `CrashLoopBackOff` and `5 (3m2s ago)`.
//!
//! How kubectl uses the rest:
//! - columns of `priority` 1 are printed only with `-o wide`; the server always fills their
//!   cells (as Kubernetes does, which converts with `Wide: true`);
//! - `--show-labels`, `-L` and `-A`'s NAMESPACE column are computed client-side from each
//!   row's `object`, which the server fills according to `?includeObject=` ([`IncludeObject`]);
//!   with `None`, those flags print nothing.
//!
//! Everything here is a pure function of JSON objects and of `now`, the instant ages are
//! measured from, so tests fix `now` and the API server passes the current time.
//!
//! # Worked example
//! ```
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
//! use k8s_openapi::jiff::Timestamp;
//! use sextant_api::table::{self, IncludeObject};
//! use serde_json::json;
//!
//! let now: Timestamp = "2025-01-01T12:00:00Z".parse().unwrap();
//! let pod = json!({
//!     "metadata": {"name": "web", "creationTimestamp": "2025-01-01T11:56:58Z"},
//!     "spec": {"containers": [{"name": "app", "image": "nginx"}]},
//!     "status": {"phase": "Running", "containerStatuses": [
//!         {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]},
//! });
//! assert_eq!(table::row("v1", "Pod", &pod, now)[..5],
//!     [json!("web"), json!("1/1"), json!("Running"), json!("0"), json!("3m2s")]);
//!
//! let list_meta = ListMeta { resource_version: Some("42".into()), ..Default::default() };
//! let t = table::to_table("v1", "Pod", &[pod], IncludeObject::Metadata, now, &list_meta);
//! assert_eq!(t["kind"], "Table");
//! assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
//! assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
//! ```
//!
//! # Layout
//! - `builtin.rs`: the columns and cells of each built-in kind;
//! - `custom.rs`: custom resources, whose columns a CRD's `additionalPrinterColumns` give
//!   as JSONPath expressions;
//! - `duration.rs`: ages as Kubernetes' `duration.HumanDuration` writes them;
//! - `descriptions.rs`: the column descriptions, from the API reference.

mod builtin;
mod custom;
mod descriptions;
mod duration;
#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use custom::{JsonPath, JsonPathError, custom_columns, custom_row};
pub use duration::human_duration;

/// The `apiVersion` of `Table` and of the `PartialObjectMetadata` in its rows.
pub const TABLE_API_VERSION: &str = "meta.k8s.io/v1";

/// One column of a `Table` (`meta.k8s.io/v1` `TableColumnDefinition`).
///
/// Every field is always serialized, empty or zero included, because Kubernetes' Go type
/// has no `omitempty` on them and strict decoders expect all five.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    /// The header; kubectl prints it upper-cased (`Nominated Node` → `NOMINATED NODE`).
    pub name: String,
    /// An OpenAPI type: `string`, `integer`, `number`, `boolean`, or `date`. kubectl
    /// prints cells as they come, so this is a hint for other clients.
    #[serde(rename = "type")]
    pub type_: String,
    /// `name` marks the column holding the object's name; otherwise usually empty.
    pub format: String,
    pub description: String,
    /// 0 for the default view, 1 (or more) for columns only `-o wide` shows.
    pub priority: i32,
}

impl ColumnDefinition {
    /// A column of the default view.
    pub fn new(name: &str, type_: &str, description: &str) -> ColumnDefinition {
        ColumnDefinition {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: description.to_string(),
            priority: 0,
        }
    }

    /// The same column, shown only with `-o wide`.
    pub fn wide(mut self) -> ColumnDefinition {
        self.priority = 1;
        self
    }

    /// The same column, marked as holding the object's name.
    pub fn name_format(mut self) -> ColumnDefinition {
        self.format = "name".to_string();
        self
    }
}

/// What each row's `object` holds (`?includeObject=`).
///
/// kubectl needs the object's metadata for `--show-labels`, `-L` and the NAMESPACE column
/// of `-A`, and nothing more, so the default sends only that and keeps lists of large
/// objects small.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IncludeObject {
    /// `object` is `null`.
    None,
    /// A `PartialObjectMetadata` (`meta.k8s.io/v1`) holding the object's `metadata`.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Reads the query parameter; an absent or empty one means [`IncludeObject::Metadata`].
    /// `None` for any other value, which Kubernetes answers with a 400.
    pub fn from_query(value: Option<&str>) -> Option<IncludeObject> {
        match value.unwrap_or("") {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }

    /// What goes into a row's `object` for `obj`. `kind` and `apiVersion` are filled in
    /// when the stored object lacks them, so a client can always decode the row.
    pub fn render(self, api_version: &str, kind: &str, obj: &Value) -> Value {
        match self {
            IncludeObject::None => Value::Null,
            IncludeObject::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": TABLE_API_VERSION,
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            }),
            IncludeObject::Object => {
                let mut whole = obj.clone();
                if let Some(map) = whole.as_object_mut() {
                    map.entry("kind").or_insert_with(|| json!(kind));
                    map.entry("apiVersion")
                        .or_insert_with(|| json!(api_version));
                }
                whole
            }
        }
    }
}

/// The columns `kubectl get` shows for a kind of `api_version` (`v1`, `apps/v1`, …).
///
/// Built-in kinds get Kubernetes' columns. Built-in kinds Kubernetes prints with its
/// default convertor (LimitRange, CustomResourceDefinition, Role, …) get NAME and
/// CREATED AT. Any other kind is taken for a custom resource without printer columns:
/// NAME and AGE, as a CRD without `additionalPrinterColumns` shows; for one with them,
/// use [`custom_columns`].
pub fn columns(api_version: &str, kind: &str) -> Vec<ColumnDefinition> {
    builtin::Printer::for_kind(group_of(api_version), kind).columns()
}

/// The cells of one object's row, in the order of [`columns`]. Ages are measured to `now`.
///
/// Fields the object lacks read as Kubernetes' zero values (or the API default, where
/// Kubernetes would have defaulted the stored object: `spec.replicas` 1, a Service port's
/// protocol TCP), so a half-written object still prints instead of failing the list.
pub fn row(api_version: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    builtin::Printer::for_kind(group_of(api_version), kind).cells(obj, now)
}

/// The whole `Table` for `objects` of one kind: one row per object, in order.
///
/// `list_meta` becomes the table's `metadata` (`resourceVersion`, `continue`,
/// `remainingItemCount`); for a single GET pass the object's `resourceVersion`.
///
/// For a watch, Kubernetes sends the column definitions with the first event only; a
/// caller doing the same sets `columnDefinitions` to `null` on later events.
pub fn to_table(
    api_version: &str,
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
    list_meta: &ListMeta,
) -> Value {
    let printer = builtin::Printer::for_kind(group_of(api_version), kind);
    let rows = objects
        .iter()
        .map(|obj| {
            let mut row = json!({
                "cells": printer.cells(obj, now),
                "object": include.render(api_version, kind, obj),
            });
            if let Some(conditions) = printer.conditions(obj) {
                row["conditions"] = conditions;
            }
            row
        })
        .collect();
    table_value(printer.columns(), rows, list_meta)
}

/// [`to_table`] for a custom resource whose CRD version lists `additionalPrinterColumns`.
///
/// An empty `custom_columns` gives the AGE column Kubernetes adds to a CRD that lists none.
/// A column whose JSONPath this crate cannot evaluate (see [`JsonPath`]) prints empty
/// cells rather than failing the list; CRD validation is the place to reject it.
pub fn to_table_with_columns(
    custom_columns: &[CustomResourceColumnDefinition],
    api_version: &str,
    kind: &str,
    objects: &[Value],
    include: IncludeObject,
    now: Timestamp,
    list_meta: &ListMeta,
) -> Value {
    let compiled = custom::Compiled::new(custom_columns);
    let rows = objects
        .iter()
        .map(|obj| {
            json!({
                "cells": compiled.cells(obj, now),
                "object": include.render(api_version, kind, obj),
            })
        })
        .collect();
    table_value(compiled.columns(), rows, list_meta)
}

fn table_value(columns: Vec<ColumnDefinition>, rows: Vec<Value>, list_meta: &ListMeta) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": serde_json::to_value(list_meta).unwrap_or_else(|_| json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// `apps` for `apps/v1`, `""` for the core group's `v1`.
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// `HumanDuration` of the time from `timestamp` to `now`, or `<unknown>` when the
/// timestamp is absent or unreadable (Kubernetes' `translateTimestampSince` on a zero time).
fn since(timestamp: Option<&str>, now: Timestamp) -> String {
    match parse_time(timestamp) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

fn parse_time(timestamp: Option<&str>) -> Option<Timestamp> {
    timestamp.filter(|t| !t.is_empty())?.parse().ok()
}
