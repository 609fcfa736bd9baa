//! Sextant's API types and the rules that go with them.
//!
//! This crate does no IO (no tokio, no HTTP): it holds what the API server, the controllers
//! and the node agent must agree on about objects, so that each rule is written once and
//! unit-tested without a server. Rules and messages follow Kubernetes 1.33, because
//! kubectl and every client library expect them.
//!
//! # Where to start
//! - An API server handling `?labelSelector=` and `?fieldSelector=` parses them with
//!   [`labels::Selector::parse`] and [`fields::FieldSelector::parse`] (then
//!   [`fields::FieldSelector::for_kind`]), and filters objects with their `matches`.
//! - On create it fills `metadata.name` from `generateName` with [`names::generate_name`],
//!   validates with [`validation::validate_object_meta`], and turns the problems into a
//!   422 with [`Error::check_invalid`] and [`Error::to_status`].
//!
//! # Layout
//! - `labels.rs`: label selectors, from text or from a `LabelSelector` object;
//! - `fields.rs`: field selectors and the fields each kind can be selected by;
//! - `validation.rs`: names, labels, annotations, object metadata; field errors;
//! - `names.rs`: names generated from `generateName`;
//! - `defaults.rs`: the values Kubernetes fills in for absent fields, per kind;
//! - `patch.rs`: JSON patch, merge patch and strategic merge patch, as the API server applies them;
//! - `apply/`: server-side apply and `metadata.managedFields`: who owns which field, conflicts;
//! - `quantity.rs`: resource quantities (`500m`, `128Mi`) as exact integers;
//! - `schema.rs`: custom resources checked and pruned against their CRD's schema;
//! - `resources.rs`: the resources served, with their names, scope and subresources;
//! - `table/`: the `Table` objects `kubectl get` prints, with Kubernetes' columns per kind;
//! - `openapi/`: the OpenAPI v2 and v3 documents kubectl reads, built from those resources;
//! - `error.rs`: the one error type, and the `Status` each error becomes.

pub mod apply;
pub mod defaults;
mod error;
pub mod fields;
pub mod labels;
pub mod names;
pub mod openapi;
pub mod patch;
pub mod quantity;
pub mod quota;
pub mod resources;
pub mod runtime;
pub mod schema;
pub mod table;
pub mod validation;

pub use error::Error;
pub use fields::FieldSelector;
pub use labels::Selector;
pub use validation::{FieldError, NameRule, Reason};

/// The Kubernetes API types, re-exported so that every crate uses the same version.
pub use k8s_openapi;
