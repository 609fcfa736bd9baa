//! Strategic merge patch (`application/strategic-merge-patch+json`), as the API server
//! applies it (Kubernetes' `StrategicMergeMapPatch`, `k8s.io/apimachinery/pkg/util/strategicpatch`).
//!
//! It is a merge patch (`null` deletes, objects merge) in which lists tagged in [`meta`]
//! merge instead of being replaced, and in which keys starting with `$` are directives:
//!
//! | directive | where | effect |
//! |---|---|---|
//! | `"$patch": "replace"` | in an object | the object replaces the stored one |
//! | `"$patch": "delete"` | in an object | the object becomes `{}` |
//! | `{"name": "x", "$patch": "delete"}` | an item of a merged list | removes the stored item `x` |
//! | `{"$patch": "replace"}` | an item of a merged list | the patch's items replace the stored list |
//! | `"$deleteFromPrimitiveList/f": [..]` | beside a set `f` | removes those values from `f` |
//! | `"$setElementOrder/f": [..]` | beside a merged list `f` | the order of `f` afterwards |
//! | `"$retainKeys": [..]` | in an object | clears the stored fields not listed |
//!
//! # Order of merged lists
//! Without `$setElementOrder`, the items the patch names come in the patch's order, and
//! the stored items it does not name keep their place relative to each other; where the
//! two interleave, a stored item goes first only if it came before the patch item in the
//! stored list. So a new item lands *before* the stored ones: Kubernetes does the same
//! (`mergeSortedSlice`), and kubectl apply sends `$setElementOrder` whenever order matters.
//!
//! # Departures from Kubernetes
//! Where Kubernetes would store a directive as data (a patch for a field the object lacks
//! is copied verbatim, `$patch` markers and all), the directives are resolved as if the
//! stored field were empty. `"$patch": "merge"` in an object is accepted as the default
//! it names instead of being refused. Unknown `$` keys are refused instead of stored.
//! Stored list items lacking the merge key are kept in place instead of failing the patch.

use serde_json::{Map, Value};

use super::meta::{self, Field, Schema, Strategy};
use super::{PatchError, TypeRef};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies a strategic merge patch to a copy of `doc`, with the merge keys of `kind`.
///
/// A kind without metadata (a custom resource) gets merge-patch semantics for its lists,
/// directives still honoured; whether to accept strategic merge patch for it at all is the
/// caller's decision ([`meta::supports_strategic`]; [`super::apply`] refuses it).
///
/// # Errors
/// [`PatchError::InvalidStrategicPatch`] for a malformed patch (unknown directive, list item
/// without its merge key, bad `$retainKeys` or `$setElementOrder`), and
/// [`PatchError::StrategicConflict`] when a list's stored and patched items are of
/// different JSON kinds.
pub fn strategic_merge_patch(
    kind: &TypeRef,
    doc: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let schema = meta::schema_for(kind.api_version, kind.kind);
    let Value::Object(patch) = patch else {
        return Err(invalid(
            "",
            "the patch must be a JSON object holding the fields to change",
        ));
    };
    let original = match doc {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        _ => return Err(conflict("", "the stored document is not a JSON object")),
    };
    merge_map(original, patch.clone(), schema, "").map(Value::Object)
}

/// Merges `patch` into the object `original` whose type is `schema`; `path` is where, for
/// messages.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<&'static Schema>,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => return merge_map(Map::new(), patch, schema, path),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(invalid(
                    path,
                    format!(
                        "unknown {DIRECTIVE} directive {directive} in an object: use \"replace\", \"delete\" or \"merge\""
                    ),
                ));
            }
        }
    }
    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_set_element_order(&mut original, &mut patch, schema, path)?;

    // Deletions from sets go first, so that a value both removed and added by one patch
    // ends up present whatever order the patch's keys came in.
    let (deletions, changes): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(key, _)| key.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, value) in deletions {
        let name = directive_target(
            &key[DELETE_FROM_PRIMITIVE_LIST.len()..],
            DELETE_FROM_PRIMITIVE_LIST,
            path,
        )?;
        delete_from_primitive_list(&mut original, name, value, &join(path, name))?;
    }
    for (key, value) in changes {
        if key.starts_with('$') {
            return Err(invalid(
                path,
                format!(
                    "unknown directive {key:?}: the directives are {DIRECTIVE}, {RETAIN_KEYS}, {DELETE_FROM_PRIMITIVE_LIST}/<field> and {SET_ELEMENT_ORDER}/<field>"
                ),
            ));
        }
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let field = schema.and_then(|s| s.field(&key));
        let here = join(path, &key);
        let merged = match (original.remove(&key), value) {
            (Some(_), value) if field.is_some_and(|f| f.strategy == Strategy::Replace) => {
                fresh(value, field, &here)?
            }
            (Some(Value::Object(stored)), Value::Object(value)) => Value::Object(merge_map(
                stored,
                value,
                field.and_then(|f| f.schema),
                &here,
            )?),
            (Some(Value::Array(stored)), Value::Array(value)) => match field.map(|f| f.strategy) {
                Some(Strategy::MergeByKey(_) | Strategy::MergeSet) => Value::Array(merge_list(
                    stored,
                    value,
                    field.expect("matched above"),
                    &here,
                )?),
                _ => Value::Array(value),
            },
            // Absent, or of another JSON kind: the patch's value stands, directives resolved.
            (_, value) => fresh(value, field, &here)?,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value with nothing stored to merge it with: merged into an empty value, so that
/// its directives and `null`s are resolved rather than stored.
fn fresh(value: Value, field: Option<&'static Field>, path: &str) -> Result<Value, PatchError> {
    Ok(match (value, field.map(|f| f.strategy)) {
        (Value::Object(value), _) => Value::Object(merge_map(
            Map::new(),
            value,
            field.and_then(|f| f.schema),
            path,
        )?),
        (Value::Array(value), Some(Strategy::MergeByKey(_) | Strategy::MergeSet)) => Value::Array(
            merge_list(Vec::new(), value, field.expect("matched above"), path)?,
        ),
        (value, _) => value,
    })
}

/// The field name after `$deleteFromPrimitiveList/` or `$setElementOrder/`.
fn directive_target<'a>(rest: &'a str, prefix: &str, path: &str) -> Result<&'a str, PatchError> {
    match rest.strip_prefix('/') {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(invalid(
            path,
            format!("a {prefix} directive must be written {prefix}/<field name>"),
        )),
    }
}

/// `$retainKeys`: the stored fields not listed are cleared. Every field the patch sets must
/// be listed, or the patch would set a field it also asks to clear.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &str,
) -> Result<(), PatchError> {
    let Some(list) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = list else {
        return Err(invalid(
            path,
            format!("{RETAIN_KEYS} must be a list of field names"),
        ));
    };
    let mut keep = Vec::with_capacity(list.len());
    for name in &list {
        match name.as_str() {
            Some(name) => keep.push(name),
            None => {
                return Err(invalid(
                    path,
                    format!("{RETAIN_KEYS} must be a list of field names, but holds {name}"),
                ));
            }
        }
    }
    for (key, value) in patch.iter() {
        let directive =
            key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !keep.contains(&key.as_str()) {
            return Err(invalid(
                path,
                format!(
                    "the patch sets {key:?} but {RETAIN_KEYS} {} does not list it: list every field the patch sets",
                    Value::Array(list.clone())
                ),
            ));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: removes values from a set of primitives.
fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    name: &str,
    values: Value,
    path: &str,
) -> Result<(), PatchError> {
    let Value::Array(values) = values else {
        return Err(invalid(
            path,
            format!("{DELETE_FROM_PRIMITIVE_LIST}/{name} must be a list of the values to remove"),
        ));
    };
    if let Some(Value::Array(stored)) = original.get_mut(name) {
        stored.retain(|v| !values.iter().any(|d| same(v, d)));
    }
    Ok(())
}

/// `$setElementOrder/<field>`: merges the list `<field>` now, and puts the result in the
/// order given. The items the order names come in that order; stored items it does not
/// name keep their place relative to the stored list.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<&'static Schema>,
    path: &str,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order = patch.remove(&key).expect("key listed above");
        let name = directive_target(&key[SET_ELEMENT_ORDER.len()..], SET_ELEMENT_ORDER, path)?;
        let here = join(path, name);
        let Value::Array(order) = order else {
            return Err(invalid(
                &here,
                format!("{SET_ELEMENT_ORDER}/{name} must be a list"),
            ));
        };
        let Some(field) = schema
            .and_then(|s| s.field(name))
            .filter(|f| matches!(f.strategy, Strategy::MergeByKey(_) | Strategy::MergeSet))
        else {
            // A list that is replaced whole takes the patch's order; nothing to do.
            continue;
        };
        let key_name = merge_key(field);
        let stored = match original.get(name) {
            Some(Value::Array(list)) => Some(list),
            None | Some(Value::Null) => None,
            Some(_) => return Err(conflict(&here, "the stored value is not a list")),
        };
        let patched = match patch.get(name) {
            Some(Value::Array(list)) => Some(list),
            None => None,
            // `null` (delete the list) and other kinds are left to the main merge.
            Some(_) => continue,
        };
        if let Some(patched) = patched {
            check_order(patched, &order, key_name, name, &here)?;
        }
        let server_order = stored.cloned().unwrap_or_default();
        let merged = match (stored, patched) {
            (Some(stored), None) => stored.clone(),
            (stored, Some(patched)) => merge_list(
                stored.cloned().unwrap_or_default(),
                patched.clone(),
                field,
                &here,
            )?,
            (None, None) => continue,
        };
        original.insert(
            name.to_string(),
            Value::Array(arrange(merged, &order, &server_order, key_name)),
        );
        patch.remove(name);
    }
    Ok(())
}

/// The patch's list must name its items in the same relative order as `$setElementOrder`,
/// and only items it names (deletions aside): otherwise the two say different things.
fn check_order(
    patched: &[Value],
    order: &[Value],
    key: Option<&str>,
    name: &str,
    path: &str,
) -> Result<(), PatchError> {
    let items: Vec<&Value> = patched
        .iter()
        .filter(|item| {
            !(key.is_some() && item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete"))
        })
        .collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if identity(items[p], key, path)?
            .zip(identity(&order[o], key, path)?)
            .is_some_and(|(a, b)| same(a, b))
        {
            p += 1;
        }
        o += 1;
    }
    while p < items.len() && items[p].get(DIRECTIVE).is_some() {
        p += 1;
    }
    if p < items.len() {
        return Err(invalid(
            path,
            format!(
                "the order of the items in the patch, {}, does not match {SET_ELEMENT_ORDER}/{name}, {}: the order list must name every item the patch holds, in the same order",
                Value::Array(patched.to_vec()),
                Value::Array(order.to_vec())
            ),
        ));
    }
    Ok(())
}

fn merge_key(field: &Field) -> Option<&'static str> {
    match field.strategy {
        Strategy::MergeByKey(key) => Some(key),
        _ => None,
    }
}

/// What identifies a list item: its merge key's value, or the item itself in a set.
/// `Ok(None)` for an object without the key.
fn identity<'v>(
    item: &'v Value,
    key: Option<&str>,
    path: &str,
) -> Result<Option<&'v Value>, PatchError> {
    match key {
        None => Ok(Some(item)),
        Some(key) => match item {
            Value::Object(map) => Ok(map.get(key)),
            other => Err(conflict(
                path,
                format!("expected a list of objects keyed by {key:?}, found the item {other}"),
            )),
        },
    }
}

/// The position in `list` of the item identified like `item`.
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let wanted = match key {
        None => item,
        Some(key) => item.get(key)?,
    };
    list.iter().position(|v| match key {
        None => same(v, wanted),
        Some(key) => v.get(key).is_some_and(|v| same(v, wanted)),
    })
}

/// Merges two lists tagged merge: objects by their merge key, primitives as a set.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &'static Field,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let objects = items_are_objects(&original, &patch, path)?;
    let key = merge_key(field);
    if !objects {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(&patch) {
            if !merged.iter().any(|m| same(m, item)) {
                merged.push(item.clone());
            }
        }
        return Ok(arrange(merged, &patch, &original, None));
    }
    let Some(key) = key else {
        return Err(conflict(
            path,
            "the list is merged as a set of strings or numbers, but holds objects",
        ));
    };
    let (mut merged, patch) = apply_list_directives(original, patch, key, path)?;
    let server_order = merged.clone();
    for item in &patch {
        let Value::Object(item) = item else {
            unreachable!("items_are_objects checked every item")
        };
        let Some(value) = item.get(key) else {
            return Err(invalid(
                path,
                format!(
                    "the item {} has no {key:?}, the key this list is merged by",
                    Value::Object(item.clone())
                ),
            ));
        };
        let here = format!("{path}[{key}={value}]");
        let schema = field.schema;
        match merged
            .iter()
            .position(|m| m.get(key).is_some_and(|v| same(v, value)))
        {
            Some(i) => {
                let Value::Object(stored) = merged[i].take() else {
                    unreachable!("items_are_objects checked every item")
                };
                merged[i] = Value::Object(merge_map(stored, item.clone(), schema, &here)?);
            }
            None => merged.push(Value::Object(merge_map(
                Map::new(),
                item.clone(),
                schema,
                &here,
            )?)),
        }
    }
    Ok(arrange(merged, &patch, &server_order, Some(key)))
}

/// Applies the `$patch` items of a merged list of objects: deletes the stored items they
/// name, or makes the patch's items the whole list. Returns the stored list and the
/// patch's items still to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(value) = item.get(key) else {
                    return Err(invalid(
                        path,
                        format!(
                            "the item {item} says \"$patch\": \"delete\" but has no {key:?} to say which item to delete"
                        ),
                    ));
                };
                original.retain(|stored| !stored.get(key).is_some_and(|v| same(v, value)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(invalid(
                    path,
                    "\"$patch\": \"merge\" is not supported in a list: merging is what a list tagged merge does already",
                ));
            }
            _ => {
                return Err(invalid(
                    path,
                    format!(
                        "unknown {DIRECTIVE} directive {directive} in a list item: use \"delete\" or \"replace\""
                    ),
                ));
            }
        }
    }
    if replace {
        let mut items = Vec::with_capacity(rest.len());
        for item in rest {
            let Value::Object(item) = item else {
                unreachable!("items_are_objects checked every item")
            };
            items.push(Value::Object(merge_map(Map::new(), item, None, path)?));
        }
        return Ok((items, Vec::new()));
    }
    Ok((original, rest))
}

/// Whether the items of both lists are objects (`true`) or primitives (`false`). All must
/// be of one JSON kind, and none a list.
fn items_are_objects(original: &[Value], patch: &[Value], path: &str) -> Result<bool, PatchError> {
    let kind = crate::patch::kind_rank;
    let mut items = original.iter().chain(patch);
    let first = items.next().expect("callers pass at least one item");
    if first.is_array() {
        return Err(conflict(path, "lists of lists cannot be merged"));
    }
    if let Some(other) = items.find(|v| kind(v) != kind(first)) {
        return Err(conflict(
            path,
            format!("the list's items are not all of one kind: {first} and {other}"),
        ));
    }
    Ok(first.is_object())
}

/// Orders `merged`: the items `wanted` names, in its order, interleaved with the others in
/// their `server` order; an unnamed item goes before a named one only if the stored list
/// had it first. This is Kubernetes' `normalizeElementOrder` with `mergeSortedSlice`.
fn arrange(
    merged: Vec<Value>,
    wanted: &[Value],
    server: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut named, mut unnamed): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(wanted, item, key).is_some());
    named.sort_by_cached_key(|item| position(wanted, item, key));
    unnamed.sort_by_cached_key(|item| position(server, item, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + unnamed.len());
    let mut named = named.into_iter().peekable();
    let mut unnamed = unnamed.into_iter().peekable();
    loop {
        let take_unnamed = match (unnamed.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(u), Some(n)) => match (position(server, u, key), position(server, n, key)) {
                (Some(u), Some(n)) => u < n,
                _ => false,
            },
        };
        let next = if take_unnamed {
            unnamed.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out
}

/// Equality as Kubernetes sees it after decoding JSON into Go: every number is a float64,
/// so `80` and `80.0` are one merge key.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> PatchError {
    PatchError::InvalidStrategicPatch {
        path: display_path(path),
        reason: reason.into(),
    }
}

fn conflict(path: &str, reason: impl Into<String>) -> PatchError {
    PatchError::StrategicConflict {
        path: display_path(path),
        reason: reason.into(),
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "the top level".to_string()
    } else {
        path.to_string()
    }
}
