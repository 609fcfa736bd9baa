//! Server-side apply and field management, as the Kubernetes API server does them
//! (`sigs.k8s.io/structured-merge-diff` and `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`),
//! as pure functions on JSON objects.
//!
//! Every write records who set which field in `metadata.managedFields`, so that
//! `kubectl apply --server-side` can tell when it is about to overwrite a value someone else
//! set (a conflict), and can delete what it set before and no longer sets without touching
//! what others set.
//!
//! # The protocol
//! 1. A create, update or patch calls [`record_update`]: its manager (`operation: Update`)
//!    gains the fields whose value it changed; every other manager loses them.
//! 2. A PATCH with `application/apply-patch+yaml` calls [`apply`]:
//!    1. the applied configuration is merged into the live object (objects key by key,
//!       lists of objects by their merge key, sets of strings as sets, other lists whole);
//!    2. the fields the applier set last time and no longer sets are removed, unless some
//!       other manager also owns them;
//!    3. every field whose value that changed, and that another manager owns, is a conflict.
//!       Without `force` the apply fails with all of them; with it, the applier takes them;
//!    4. the applier's `Apply` entry becomes exactly the fields of its configuration.
//!       Setting a field to the value it already has is no conflict: both managers own it.
//!
//! # Worked example
//! `kubectl apply --server-side` of a Deployment with `replicas: 3` (manager `kubectl`),
//! then `kubectl scale --replicas 5` (`kubectl-scale`, Update: it takes `.spec.replicas`),
//! then the same apply again: `.spec.replicas` would go from 5 to 3 and `kubectl-scale`
//! owns it, so the apply fails with
//! `Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas`.
//! With `--force-conflicts` it succeeds and `kubectl-scale`, left with nothing, is dropped.
//!
//! # What the caller does
//! Fills server-owned metadata (uid, resourceVersion, creationTimestamp) on create, resets
//! `status` for kinds with a status subresource (as for any update), validates, and turns
//! [`ApplyError`] into a `Status` with [`ApplyError::code`] and [`ApplyError::causes`].
//! Manager names come from `?fieldManager=`; the caller defaults it as Kubernetes does.
//!
//! # Departures from Kubernetes
//! - The types come from [`crate::patch::meta`]'s strategic-merge tags, not OpenAPI: lists
//!   are keyed by one field (ports by `containerPort`, not `containerPort` and `protocol`),
//!   and untagged lists are atomic, as for custom resources without `x-kubernetes-list-type`.
//!   `LabelSelector` fields are atomic, as upstream (`+structType=atomic`).
//! - An `Update` entry records the values changed and the list items added; Kubernetes also
//!   records maps that did not exist before (`"f:labels": {".": {}, ...}`), which depends on
//!   whether the Go field is a pointer. Ownership of values, hence conflicts, is the same.
//! - `metadata.managedFields` in an applied configuration is ignored; Kubernetes refuses it.
//! - No conversion between versions of a kind, no merging of old `Update` entries into
//!   `ancient-changes` after ten, no upgrade of `kubectl.kubernetes.io/last-applied-configuration`.

mod fieldset;

use serde_json::{Map, Value};

pub use fieldset::{FieldSet, Path, PathElement};

use crate::patch::TypeRef;
use crate::patch::meta::{self, Strategy};

/// The manager Kubernetes gives everything an object held before its first apply, when it
/// has no managed fields at all (objects written before tracking began).
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// `operation` of the entry written by server-side apply.
pub const OPERATION_APPLY: &str = "Apply";
/// `operation` of the entries written by create, update and patch.
pub const OPERATION_UPDATE: &str = "Update";

/// Why an apply was refused. Retrying the same request fails the same way, except a
/// conflict, which passes once the other manager gives the fields up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Fields the apply would change are owned by other managers (409). The message is
    /// Kubernetes' own, which kubectl recognises and follows with its advice.
    #[error(
        "{}\nuse --force-conflicts to take these fields, or remove them from your configuration",
        conflict_message(conflicts)
    )]
    Conflict {
        /// Each conflict as (the manager as Kubernetes prints it, `"kubectl-scale" using
        /// apps/v1`, the field path, `.spec.replicas`), by manager then path.
        conflicts: Vec<(String, String)>,
    },

    /// The applied configuration cannot be applied as it stands (400).
    #[error("invalid apply configuration: {reason}")]
    InvalidApply {
        /// What is wrong, and what would be right.
        reason: String,
    },

    /// A `fieldsV1` is not a field set (400). Only [`FieldSet::from_fields_v1`] returns it:
    /// [`apply`] and [`record_update`] treat an object whose stored managed fields do not
    /// read as untracked, since refusing every later write would leave it stuck.
    #[error("invalid managedFields fieldsV1: {reason}")]
    InvalidFieldsV1 {
        /// Which key is wrong, and why.
        reason: String,
    },
}

impl ApplyError {
    /// The HTTP status code Kubernetes answers with.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflict { .. } => 409,
            ApplyError::InvalidApply { .. } | ApplyError::InvalidFieldsV1 { .. } => 400,
        }
    }

    /// The `reason` of the Kubernetes `Status`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Conflict { .. } => "Conflict",
            _ => "BadRequest",
        }
    }

    /// The `details.causes` of the `Status` as (`type`, `message`, `field`): kubectl reads
    /// `FieldManagerConflict` causes to know that `--force-conflicts` would help.
    pub fn causes(&self) -> Vec<(&'static str, String, String)> {
        match self {
            ApplyError::Conflict { conflicts } => conflicts
                .iter()
                .map(|(manager, path)| {
                    (
                        "FieldManagerConflict",
                        format!("conflict with {manager}"),
                        path.clone(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `getConflictMessage` of Kubernetes' field manager.
fn conflict_message(conflicts: &[(String, String)]) -> String {
    if let [(manager, path)] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
    }
    let mut lines = Vec::new();
    let mut last: Option<&str> = None;
    for (manager, path) in conflicts {
        if last != Some(manager.as_str()) {
            lines.push(format!("conflicts with {manager}:"));
            last = Some(manager);
        }
        lines.push(format!("- {path}"));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Applies `applied` to `live` for `manager`; the result carries the new
/// `metadata.managedFields`. `now` is the RFC 3339 time recorded for the manager.
///
/// # Errors
/// - [`ApplyError::InvalidApply`] when `applied` is not an object, lacks `apiVersion`,
///   `kind` or `metadata.name`, names another kind than `kind`, or holds a list item
///   without its merge key or twice the same key;
/// - [`ApplyError::Conflict`] without `force`, when fields another manager owns would change.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    kind: &TypeRef,
    now: &str,
) -> Result<Value, ApplyError> {
    check_applied(applied, kind)?;
    let types = Types { kind: *kind };
    let applied_set = types.fields(applied, Mode::APPLY)?;
    let mut config = applied.clone();
    if let Some(metadata) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        metadata.remove("resourceVersion");
    }
    let applier = Entry::new(manager, OPERATION_APPLY, kind.api_version, now, applied_set);

    let Some(live) = live else {
        strip_nulls(&mut config);
        return Ok(with_managed_fields(config, vec![applier]));
    };

    let mut entries = match read_entries(live) {
        Some(entries) if !entries.is_empty() => entries,
        // Kubernetes gives an untracked object's fields to a stand-in manager first, so
        // that the first apply does not silently take values it never set.
        _ => {
            let set = types.fields(live, Mode::UNTRACKED)?;
            vec![Entry::new(
                BEFORE_FIRST_APPLY,
                OPERATION_UPDATE,
                kind.api_version,
                now,
                set,
            )]
        }
    };
    let previous = entries.iter().position(|e| e.same_manager(&applier));
    let last_set = previous.map(|i| entries.remove(i));

    let mut merged = strip_managed_fields(live);
    types.merge(&mut merged, &config, &mut String::new());

    // Prune: what the applier set before and no longer sets goes, unless someone still
    // owns it (or something below it).
    if let Some(last) = &last_set {
        let owned = entries
            .iter()
            .fold(applier.set.clone(), |all, e| all.union(&e.set));
        for path in last.set.difference(&applier.set).paths() {
            if !owned.covers(&path.0) {
                remove_path(&mut merged, &path.0);
            }
        }
    }

    let before = strip_managed_fields(live);
    let mut diff = types.compare(&before, &merged, Mode::APPLY)?;
    // A `null` in the configuration removes a value; for whoever set that value it is a
    // change like any other, not a silent loss.
    for path in applier.set.leaves().paths() {
        if get_path(applied, &path.0).is_some_and(Value::is_null)
            && get_path(&before, &path.0).is_some_and(|v| !v.is_null())
        {
            diff.changed.insert(&path.0);
        }
    }
    let mut conflicts = Vec::new();
    let mut taken = Vec::new();
    for entry in &entries {
        let lost = entry.set.intersection(&diff.changed);
        if !lost.is_empty() {
            conflicts.extend(lost.paths().into_iter().map(|p| (entry.printed(), p)));
        }
        taken.push(lost);
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        return Err(ApplyError::Conflict {
            conflicts: conflicts
                .into_iter()
                .map(|(m, p)| (m, p.to_string()))
                .collect(),
        });
    }
    for (entry, lost) in entries.iter_mut().zip(&taken) {
        entry.set = entry.set.difference(lost).difference(&diff.removed);
    }

    let unchanged = before == merged;
    let mut applier = applier;
    if let Some(last) = last_set
        && unchanged
        && last.set == applier.set
    {
        applier.time = last.time;
    }
    entries.push(applier);
    Ok(with_managed_fields(merged, entries))
}

/// Records a create (`old` is `None`), update or patch by `manager` (`operation: Update`)
/// in the managed fields of `new`, and returns `new` with them.
///
/// The managed fields come from `new` when the request sent some (as `kubectl replace` of
/// an object read back does), else from `old`. As in Kubernetes, `managedFields: []` in
/// `new` clears them, and an existing object without any stays untracked until its first
/// apply.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    kind: &TypeRef,
    now: &str,
) -> Value {
    let types = Types { kind: *kind };
    let sent = new.pointer("/metadata/managedFields");
    let reset = match sent {
        Some(Value::Array(items)) => {
            items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    };
    let mut entries = if reset {
        Vec::new()
    } else {
        match read_entries(new) {
            Some(entries) if !entries.is_empty() => entries,
            _ => old.and_then(read_entries).unwrap_or_default(),
        }
    };
    let after = strip_managed_fields(new);
    if old.is_some() && entries.is_empty() {
        return after;
    }
    let before = old
        .map(strip_managed_fields)
        .unwrap_or(Value::Object(Map::new()));
    // Objects already stored were valid, so these walks only skip what they cannot key.
    let Ok(diff) = types.compare(&before, &after, Mode::UPDATE) else {
        return after;
    };
    let mut mine = Entry::new(
        manager,
        OPERATION_UPDATE,
        kind.api_version,
        now,
        FieldSet::new(),
    );
    let previous = entries.iter().position(|e| e.same_manager(&mine));
    let last = previous.map(|i| entries.remove(i));
    for entry in &mut entries {
        entry.set = entry
            .set
            .difference(&diff.changed)
            .difference(&diff.removed);
    }
    let had = last.as_ref().map(|e| e.set.clone()).unwrap_or_default();
    mine.set = had.difference(&diff.removed).union(&diff.changed);
    if let Some(last) = last
        && before == after
        && last.set == mine.set
    {
        mine.time = last.time;
    }
    entries.push(mine);
    with_managed_fields(after, entries)
}

/// The fields an applied configuration sets, which its applier comes to own: every value
/// and list item, without the server's metadata and `status`.
///
/// # Errors
/// [`ApplyError::InvalidApply`] for a list item without its merge key, or a key twice.
pub fn fields_of(object: &Value, kind: &TypeRef) -> Result<FieldSet, ApplyError> {
    Types { kind: *kind }.fields(object, Mode::APPLY)
}

fn check_applied(applied: &Value, kind: &TypeRef) -> Result<(), ApplyError> {
    let invalid = |reason: String| Err(ApplyError::InvalidApply { reason });
    let Value::Object(map) = applied else {
        return invalid(format!(
            "it must be a whole object with apiVersion, kind and metadata.name, not {}",
            describe(applied)
        ));
    };
    let (want_version, want_kind) = (kind.api_version, kind.kind);
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            return invalid(format!(
                "apiVersion must be set; add `apiVersion: {want_version}`"
            ));
        }
        Some(v) if v != want_version => {
            return invalid(format!(
                "Incorrect version specified in apply patch. Specified patch version: {v}, expected: {want_version}"
            ));
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => return invalid(format!("kind must be set; add `kind: {want_kind}`")),
        Some(k) if k != want_kind => {
            return invalid(format!(
                "the configuration is a {k}, but is applied to a {want_kind}; apply it to its own resource"
            ));
        }
        Some(_) => {}
    }
    let name = applied.pointer("/metadata/name").and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        return invalid(
            "metadata.name must be set: server-side apply needs the name of the object it creates or updates"
                .to_string(),
        );
    }
    Ok(())
}

use crate::patch::describe;

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, now: &str, set: FieldSet) -> Entry {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            subresource: String::new(),
            time: Some(now.to_string()),
            set,
        }
    }

    /// Kubernetes' manager identity: an applier is one entry whatever version it applied
    /// with; an updater has one entry per version.
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == OPERATION_APPLY || self.api_version == other.api_version)
    }

    /// `printManager` of Kubernetes' field manager, for conflict messages.
    fn printed(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == OPERATION_UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn read(value: &Value) -> Option<Entry> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        if value.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            return None;
        }
        Some(Entry {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation")?,
            api_version: text("apiVersion").unwrap_or_default(),
            subresource: text("subresource").unwrap_or_default(),
            time: text("time"),
            set: FieldSet::from_fields_v1(value.get("fieldsV1").unwrap_or(&Value::Null)).ok()?,
        })
    }

    fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".into(), self.manager.clone().into());
        map.insert("operation".into(), self.operation.clone().into());
        map.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            map.insert("time".into(), time.clone().into());
        }
        map.insert("fieldsType".into(), "FieldsV1".into());
        map.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            map.insert("subresource".into(), self.subresource.clone().into());
        }
        Value::Object(map)
    }
}

/// The entries of an object, or `None` when any fails to read: Kubernetes then treats
/// the object as untracked rather than trusting part of its history.
fn read_entries(object: &Value) -> Option<Vec<Entry>> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Entry::read).collect(),
        Some(_) => None,
    }
}

/// Writes the entries in Kubernetes' order (appliers first, then by time, manager,
/// version), dropping those left with nothing.
fn with_managed_fields(mut object: Value, mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            let list = entries.iter().map(Entry::to_value).collect();
            metadata.insert("managedFields".into(), Value::Array(list));
        }
    }
    object
}

fn strip_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(metadata) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    out
}

/// An explicit `null` in an applied configuration means "absent": the field is owned but
/// not stored, as a typed Kubernetes object would drop it.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The `metadata` fields Kubernetes never gives to a manager (`stripMetaManager`): the
/// server sets them, or they name the object rather than describe it.
const SERVER_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// What a walk over an object leaves out, and how strict it is about list keys.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Leave `status` out: the applier never owns it through the main resource.
    skip_status: bool,
    /// Fail on a list item without its key, instead of skipping it. Stored objects are
    /// walked leniently: refusing an update because of what is already stored helps no one.
    strict: bool,
}

impl Mode {
    const APPLY: Mode = Mode {
        skip_status: true,
        strict: true,
    };
    const UPDATE: Mode = Mode {
        skip_status: false,
        strict: false,
    };
    /// What an untracked object held before its first apply, as an update through the
    /// main resource would have recorded it.
    const UNTRACKED: Mode = Mode {
        skip_status: true,
        strict: false,
    };
}

/// How a list is merged and owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// Items are objects identified by this field; each is owned on its own.
    Associative(&'static str),
    /// Items are primitives kept as a set; each is owned on its own.
    Set,
    /// The list is one value, owned and replaced whole.
    Atomic,
}

/// The changes between two versions of an object.
struct Diff {
    /// Values added or modified, and list items added: what their owners lose.
    changed: FieldSet,
    /// Values and items that are gone.
    removed: FieldSet,
}

/// The type knowledge of one kind, looked up by the dotted path of field names
/// (`spec.template.spec.containers`; list items add nothing).
#[derive(Clone, Copy)]
struct Types<'a> {
    kind: TypeRef<'a>,
}

impl Types<'_> {
    fn strategy(&self, dotted: &str) -> Option<Strategy> {
        meta::lookup(self.kind.api_version, self.kind.kind, dotted).map(|f| f.strategy)
    }

    fn list_kind(&self, dotted: &str) -> ListKind {
        match self.strategy(dotted) {
            Some(Strategy::MergeByKey(key)) => ListKind::Associative(key),
            Some(Strategy::MergeSet) => ListKind::Set,
            _ => ListKind::Atomic,
        }
    }

    /// Objects owned and replaced whole: `patchStrategy:"replace"`, and `LabelSelector`,
    /// which upstream marks `+structType=atomic` so that a selector is never half changed.
    fn atomic_object(&self, dotted: &str) -> bool {
        if self.strategy(dotted) == Some(Strategy::Replace) {
            return true;
        }
        let name = dotted.rsplit('.').next().unwrap_or(dotted);
        if matches!(name, "labelSelector" | "namespaceSelector") {
            return true;
        }
        // A Service's and a ReplicationController's `spec.selector` are plain maps.
        dotted == "spec.selector"
            && matches!(
                (self.kind.api_version, self.kind.kind),
                (
                    "apps/v1",
                    "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
                ) | ("batch/v1", "Job")
                    | ("policy/v1", "PodDisruptionBudget")
            )
    }

    /// The fields an object sets.
    fn fields(&self, object: &Value, mode: Mode) -> Result<FieldSet, ApplyError> {
        let mut out = FieldSet::new();
        if let Value::Object(map) = object {
            for (name, value) in map {
                if ignored_at_top(name, mode) {
                    continue;
                }
                let mut path = vec![PathElement::Field(name.clone())];
                if name == "metadata"
                    && let Value::Object(metadata) = value
                {
                    for (field, value) in metadata {
                        if SERVER_METADATA.contains(&field.as_str()) {
                            continue;
                        }
                        path.push(PathElement::Field(field.clone()));
                        let dotted = format!("metadata.{field}");
                        self.collect(value, &dotted, &mut path, &mut out, mode)?;
                        path.pop();
                    }
                    continue;
                }
                self.collect(value, name, &mut path, &mut out, mode)?;
            }
        }
        Ok(out)
    }

    fn collect(
        &self,
        value: &Value,
        dotted: &str,
        path: &mut Vec<PathElement>,
        out: &mut FieldSet,
        mode: Mode,
    ) -> Result<(), ApplyError> {
        match value {
            Value::Object(map) if !self.atomic_object(dotted) => {
                // An empty object sets nothing, as upstream: only values are owned.
                for (name, child) in map {
                    path.push(PathElement::Field(name.clone()));
                    self.collect(child, &format!("{dotted}.{name}"), path, out, mode)?;
                    path.pop();
                }
            }
            Value::Array(items) => match self.list_kind(dotted) {
                ListKind::Atomic => out.insert(path),
                kind => {
                    let mut seen = FieldSet::new();
                    for (index, item) in items.iter().enumerate() {
                        let element = match item_element(kind, item) {
                            Ok(element) => element,
                            Err(why) if mode.strict => {
                                return Err(ApplyError::InvalidApply {
                                    reason: format!(
                                        "{}: element {index}: {why}",
                                        Path(path.clone())
                                    ),
                                });
                            }
                            Err(_) => continue,
                        };
                        if seen.contains(std::slice::from_ref(&element)) {
                            if mode.strict {
                                return Err(ApplyError::InvalidApply {
                                    reason: format!(
                                        "{}: duplicate entries for {}; each item must appear once",
                                        Path(path.clone()),
                                        Path(vec![element]),
                                    ),
                                });
                            }
                            continue;
                        }
                        seen.insert(std::slice::from_ref(&element));
                        path.push(element);
                        out.insert(path);
                        if kind != ListKind::Set {
                            self.collect(item, dotted, path, out, mode)?;
                        }
                        path.pop();
                    }
                }
            },
            _ => out.insert(path),
        }
        Ok(())
    }

    /// Merges `config` into `live`: objects key by key, associative lists item by item
    /// (live items the configuration does not name stay, in place; new ones go last),
    /// sets as sets, anything else replaced.
    fn merge(&self, live: &mut Value, config: &Value, dotted: &mut String) {
        match (live, config) {
            (Value::Object(live), Value::Object(config)) if !self.atomic_object(dotted) => {
                for (name, value) in config {
                    let len = dotted.len();
                    if !dotted.is_empty() {
                        dotted.push('.');
                    }
                    dotted.push_str(name);
                    if value.is_null() {
                        live.remove(name);
                    } else if let Some(existing) = live.get_mut(name) {
                        self.merge(existing, value, dotted);
                    } else {
                        let mut value = value.clone();
                        strip_nulls(&mut value);
                        live.insert(name.clone(), value);
                    }
                    dotted.truncate(len);
                }
            }
            (Value::Array(live), Value::Array(config)) => match self.list_kind(dotted) {
                ListKind::Atomic => *live = config.clone(),
                kind => {
                    for item in config {
                        let Ok(element) = item_element(kind, item) else {
                            continue;
                        };
                        let found = live
                            .iter_mut()
                            .find(|l| item_element(kind, l).is_ok_and(|e| e == element));
                        match found {
                            Some(existing) => self.merge(existing, item, dotted),
                            None => {
                                let mut item = item.clone();
                                strip_nulls(&mut item);
                                live.push(item);
                            }
                        }
                    }
                }
            },
            (live, config) => {
                *live = config.clone();
                strip_nulls(live);
            }
        }
    }

    fn compare(&self, before: &Value, after: &Value, mode: Mode) -> Result<Diff, ApplyError> {
        let lenient = Mode {
            strict: false,
            ..mode
        };
        let old = self.fields(before, lenient)?;
        let new = self.fields(after, lenient)?;
        let mut changed = new.difference(&old);
        for path in new.intersection(&old).leaves().paths() {
            if get_path(before, &path.0) != get_path(after, &path.0) {
                changed.insert(&path.0);
            }
        }
        Ok(Diff {
            changed,
            removed: old.difference(&new),
        })
    }
}

fn ignored_at_top(name: &str, mode: Mode) -> bool {
    matches!(name, "apiVersion" | "kind") || (mode.skip_status && name == "status")
}

/// The path element naming a list item, or why it has none.
fn item_element(kind: ListKind, item: &Value) -> Result<PathElement, String> {
    match kind {
        ListKind::Associative(key) => match item {
            Value::Object(map) => match map.get(key) {
                Some(value) if !value.is_null() => {
                    Ok(PathElement::Key(vec![(key.to_string(), value.clone())]))
                }
                _ => Err(format!(
                    "associative list with keys has an element that omits key field {key:?}; set it, it identifies the item"
                )),
            },
            _ => Err(format!(
                "expected an object identified by {key:?}, found {}",
                describe(item)
            )),
        },
        ListKind::Set => match item {
            Value::Array(_) | Value::Object(_) | Value::Null => Err(format!(
                "expected a string or number in this set, found {}",
                describe(item)
            )),
            _ => Ok(PathElement::Value(item.clone())),
        },
        ListKind::Atomic => Err("an atomic list has no items of its own".to_string()),
    }
}

fn find_item(items: &[Value], element: &PathElement) -> Option<usize> {
    items.iter().position(|item| match element {
        PathElement::Key(fields) => fields
            .iter()
            .all(|(name, value)| item.get(name) == Some(value)),
        PathElement::Value(value) => item == value,
        _ => false,
    })
}

fn get_path<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match (first, value) {
        (PathElement::Field(name), Value::Object(map)) => map.get(name)?,
        (PathElement::Index(i), Value::Array(items)) => items.get(*i)?,
        (element, Value::Array(items)) => &items[find_item(items, element)?],
        _ => return None,
    };
    get_path(next, rest)
}

/// Removes the value at `path`, and any object or list that this leaves empty: a typed
/// Kubernetes object would not keep an empty `labels` map or `finalizers` list either.
/// Returns whether `value` is now empty because of it.
fn remove_path(value: &mut Value, path: &[PathElement]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match (first, value) {
        (PathElement::Field(name), Value::Object(map)) => {
            let gone = if rest.is_empty() {
                map.remove(name).is_some()
            } else if let Some(child) = map.get_mut(name) {
                if remove_path(child, rest) {
                    map.remove(name);
                    true
                } else {
                    false
                }
            } else {
                false
            };
            gone && map.is_empty()
        }
        (element, Value::Array(items)) => {
            let index = match element {
                PathElement::Index(i) if *i < items.len() => Some(*i),
                PathElement::Index(_) => None,
                element => find_item(items, element),
            };
            let Some(index) = index else {
                return false;
            };
            if rest.is_empty() {
                items.remove(index);
                return items.is_empty();
            }
            // A kept item keeps its key fields, or it would stop being the same item; and
            // an item is never dropped for losing its other fields, only by its own path.
            if let (PathElement::Key(keys), [PathElement::Field(name)]) = (element, rest)
                && keys.iter().any(|(key, _)| key == name)
            {
                return false;
            }
            remove_path(&mut items[index], rest);
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
