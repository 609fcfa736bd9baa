//! JSON patch (RFC 6902, `application/json-patch+json`), applied by the `json-patch` crate;
//! this file only bounds the work and words the errors.

use json_patch::{Patch, PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::{PatchError, PatchType, describe};

/// The most operations one JSON patch may hold: each `copy` can double the document, so an
/// unbounded list is a cheap way to make the server build a huge object. Kubernetes uses
/// the same figure and answers 413 beyond it. The size of the request body is bounded
/// separately, by the server.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 patch, a JSON array of operations, to a copy of `doc`. All
/// operations apply or none do.
///
/// # Errors
/// [`PatchError::Malformed`] when `patch` is not a list of operations,
/// [`PatchError::TooManyOperations`] past [`MAX_JSON_PATCH_OPERATIONS`], and
/// [`PatchError::JsonPatchFailed`] naming the first operation that failed.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(malformed(format!(
            "the body must be a JSON array of operations, not {}",
            describe(patch)
        )));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: ops.len(),
            max: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let op = serde_json::from_value::<PatchOperation>(op.clone()).map_err(|e| {
            malformed(format!(
                "operation [{index}]: {e}; each operation looks like {{\"op\": \"replace\", \"path\": \"/spec/replicas\", \"value\": 3}}"
            ))
        })?;
        parsed.push(op);
    }
    let patch = Patch(parsed);
    let mut out = doc.clone();
    // `patch_unsafe` leaves the operations before the failing one applied instead of undoing
    // them: `out` is thrown away on error anyway, and the half-patched state is what a
    // failed `test` compared against, so the message can show it.
    json_patch::patch_unsafe(&mut out, &patch).map_err(|e| explain(&out, &patch, e))?;
    Ok(out)
}

fn malformed(reason: String) -> PatchError {
    PatchError::Malformed {
        patch_type: PatchType::Json,
        reason,
    }
}

/// Turns the crate's error into one that names the operation and says what the object held.
fn explain(state: &Value, patch: &Patch, err: json_patch::PatchError) -> PatchError {
    let index = err.operation;
    let op = &patch.0[index];
    let path = op.path().to_string();
    let (name, from) = match op {
        PatchOperation::Add(_) => ("add", None),
        PatchOperation::Remove(_) => ("remove", None),
        PatchOperation::Replace(_) => ("replace", None),
        PatchOperation::Move(m) => ("move", Some(m.from.to_string())),
        PatchOperation::Copy(c) => ("copy", Some(c.from.to_string())),
        PatchOperation::Test(_) => ("test", None),
    };
    let reason = match (&err.kind, op) {
        (PatchErrorKind::TestFailed, PatchOperation::Test(t)) => match state.pointer(&path) {
            Some(actual) => format!(
                "the value at {path} is {}, not {}",
                brief(actual),
                brief(&t.value)
            ),
            None => format!("there is no value at {path}"),
        },
        (PatchErrorKind::InvalidPointer, PatchOperation::Add(_)) => format!(
            "cannot add at {path}: its parent does not exist or is not an object or array, or the array index is past the end (add creates only the last segment of the path)"
        ),
        (PatchErrorKind::InvalidPointer, _) => format!("there is no value at {path}"),
        (PatchErrorKind::InvalidFromPointer, _) => {
            format!("there is no value at \"from\" {}", from.unwrap_or_default())
        }
        (PatchErrorKind::CannotMoveInsideItself, _) => {
            format!(
                "cannot move {} into its own child {path}",
                from.unwrap_or_default()
            )
        }
        (other, _) => other.to_string(),
    };
    PatchError::JsonPatchFailed {
        index,
        op: name,
        path,
        reason,
    }
}

/// A value in a message, cut short: the object under test may be a whole pod spec.
fn brief(value: &Value) -> String {
    const LIMIT: usize = 120;
    let text = value.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
