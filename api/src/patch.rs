//! The three kinds of PATCH the Kubernetes API server applies, as pure functions on JSON.
//!
//! A PATCH request names its kind in `Content-Type`; [`PatchType::from_content_type`]
//! reads it, and [`apply`] applies the body to the stored object:
//!
//! | content type | what kubectl sends it for | function |
//! |---|---|---|
//! | `application/json-patch+json` (RFC 6902) | `kubectl patch --type json` | [`json_patch()`] |
//! | `application/merge-patch+json` (RFC 7386) | `label`, `annotate`, `scale`, and `apply`/`edit` of custom resources | [`merge_patch`] |
//! | `application/strategic-merge-patch+json` | `apply`, `edit`, `rollout restart`, `patch` of built-in kinds | [`strategic_merge_patch`] |
//!
//! Strategic merge patch is merge patch plus per-field knowledge: lists such as a pod's
//! `containers` are merged item by item (by `name`), not replaced, so `kubectl apply` of a
//! manifest naming one container leaves a sidecar injected by someone else alone. That
//! knowledge lives in [`meta`]; custom resources have none, and [`apply`] refuses strategic
//! merge patch for them with 415, as Kubernetes does (kubectl then falls back to merge patch).
//!
//! What follows is the caller's: decoding the result into its type, refusing a changed
//! `metadata.name`, checking `resourceVersion`, defaulting and validating, as for an update.
//!
//! # Layout
//! - `patch/json.rs`: RFC 6902, on top of the `json-patch` crate;
//! - `patch/merge.rs`: RFC 7386;
//! - `patch/strategic.rs`: strategic merge patch and its `$` directives;
//! - `patch/meta.rs`: the merge keys and strategies of the built-in kinds.

mod json;
mod merge;
pub mod meta;
mod strategic;

use std::fmt;

use serde_json::Value;

pub use json::{MAX_JSON_PATCH_OPERATIONS, json_patch};
pub use merge::merge_patch;
pub use meta::supports_strategic;
pub use strategic::strategic_merge_patch;

/// The kind of object being patched, which decides how strategic merge patch treats its
/// lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TypeRef<'a> {
    /// `v1`, `apps/v1`, `example.com/v1alpha1`.
    pub api_version: &'a str,
    /// `Pod`, `Deployment`.
    pub kind: &'a str,
}

impl<'a> TypeRef<'a> {
    /// The kind named by `apiVersion` and `kind`.
    pub const fn new(api_version: &'a str, kind: &'a str) -> Self {
        TypeRef { api_version, kind }
    }

    /// The kind an object says it is, from its `apiVersion` and `kind` fields.
    pub fn of(object: &'a Value) -> Option<Self> {
        Some(TypeRef::new(
            object.get("apiVersion")?.as_str()?,
            object.get("kind")?.as_str()?,
        ))
    }

    /// Whether the kind is built in, and so accepts strategic merge patch.
    pub fn supports_strategic(&self) -> bool {
        meta::supports_strategic(self.api_version, self.kind)
    }
}

/// How a PATCH body is to be read, from the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: a list of RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: an RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    Strategic,
}

/// The `Content-Type` of server-side apply, which this module does not implement.
const APPLY_PATCH_YAML: &str = "application/apply-patch+yaml";

impl PatchType {
    /// Every patch type, in the order Kubernetes lists them in its 415 message.
    pub const ALL: [PatchType; 3] = [PatchType::Json, PatchType::Merge, PatchType::Strategic];

    /// The patch type a request's `Content-Type` names. Parameters (`; charset=utf-8`) and
    /// case are ignored. Anything else, server-side apply included, is a 415.
    pub fn from_content_type(content_type: &str) -> Result<PatchType, PatchError> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if let Some(found) = PatchType::ALL
            .into_iter()
            .find(|t| t.content_type() == essence)
        {
            return Ok(found);
        }
        if essence == APPLY_PATCH_YAML {
            return Err(PatchError::ServerSideApply);
        }
        Err(PatchError::UnsupportedMediaType {
            content_type: content_type.to_string(),
            accepted: PatchType::ALL.iter().map(|t| t.content_type()).collect(),
        })
    }

    /// The media type that names this patch type.
    pub const fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }

    /// The media types a PATCH of this kind accepts: strategic merge patch only for
    /// built-in kinds. Servers list them in discovery and in 415 answers.
    pub fn accepted_for(kind: &TypeRef) -> Vec<&'static str> {
        PatchType::ALL
            .into_iter()
            .filter(|t| *t != PatchType::Strategic || kind.supports_strategic())
            .map(PatchType::content_type)
            .collect()
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchType::Json => "JSON patch",
            PatchType::Merge => "merge patch",
            PatchType::Strategic => "strategic merge patch",
        })
    }
}

/// Why a patch could not be applied. Every variant is the client's to fix: sending the
/// same patch again fails the same way, except [`PatchError::JsonPatchFailed`] from a
/// `test` operation, which may pass once the object has changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The `Content-Type` names no patch this server accepts for the kind (415).
    #[error("the body of the request was in an unknown format - accepted media types include: {}", accepted.join(", "))]
    UnsupportedMediaType {
        /// The `Content-Type` as sent.
        content_type: String,
        /// What would have been accepted.
        accepted: Vec<&'static str>,
    },

    /// Server-side apply was asked for (415).
    #[error(
        "the body of the request was in an unknown format - server-side apply ({APPLY_PATCH_YAML}) is not supported by this server; use client-side apply (kubectl apply without --server-side)"
    )]
    ServerSideApply,

    /// The body is not JSON, or not the shape its patch type needs (400).
    #[error("invalid {patch_type}: {reason}")]
    Malformed {
        /// The patch type the body was read as.
        patch_type: PatchType,
        /// What is wrong, and what was expected.
        reason: String,
    },

    /// A JSON patch has more operations than the server applies in one request (413).
    #[error(
        "the allowed maximum operations in a JSON patch is {max}, but the patch has {count}: split it into several requests"
    )]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
        /// [`MAX_JSON_PATCH_OPERATIONS`].
        max: usize,
    },

    /// One operation of a JSON patch failed; none of the patch was applied (422).
    #[error("JSON patch operation [{index}] ({op} {path}) failed: {reason}")]
    JsonPatchFailed {
        /// The operation's place in the patch, from 0.
        index: usize,
        /// `add`, `remove`, `replace`, `move`, `copy` or `test`.
        op: &'static str,
        /// The operation's `path`, a JSON pointer.
        path: String,
        /// What went wrong, and what the object holds instead.
        reason: String,
    },

    /// A strategic merge patch is not well formed: a bad `$` directive, a list item
    /// without its merge key, a `$setElementOrder` list that contradicts the patch (400).
    #[error("invalid strategic merge patch at {path}: {reason}")]
    InvalidStrategicPatch {
        /// Where in the patch, as a field path (`spec.template.spec.containers[name="web"]`).
        path: String,
        /// What is wrong, and what would be right.
        reason: String,
    },

    /// A strategic merge patch cannot be merged with the stored object: their lists hold
    /// different kinds of values (422).
    #[error("strategic merge patch conflicts with the object at {path}: {reason}")]
    StrategicConflict {
        /// Where in the object.
        path: String,
        /// What differs.
        reason: String,
    },

    /// The patch left something other than a JSON object (422).
    #[error("the patched object must be a JSON object, but the {patch_type} made it {found}")]
    NotAnObject {
        /// The patch type applied.
        patch_type: PatchType,
        /// What the result was instead (`an array`, `null`).
        found: &'static str,
    },
}

impl PatchError {
    /// The HTTP status code Kubernetes answers with.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::UnsupportedMediaType { .. } | PatchError::ServerSideApply => 415,
            PatchError::Malformed { .. } | PatchError::InvalidStrategicPatch { .. } => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::JsonPatchFailed { .. }
            | PatchError::StrategicConflict { .. }
            | PatchError::NotAnObject { .. } => 422,
        }
    }

    /// The `reason` of the Kubernetes `Status` for this error.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            415 => "UnsupportedMediaType",
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "BadRequest",
        }
    }
}

/// Applies a PATCH body to the stored object `doc` of kind `kind`, and returns the patched
/// object; `doc` itself is left as it was.
///
/// # Errors
/// - [`PatchError::UnsupportedMediaType`] (415) for a strategic merge patch of a custom
///   resource;
/// - [`PatchError::Malformed`] (400) when the body is not JSON, or not a list (JSON patch)
///   or an object (merge patches);
/// - the errors of [`json_patch()`] and [`strategic_merge_patch`];
/// - [`PatchError::NotAnObject`] (422) when the result is not an object.
pub fn apply(
    kind: &TypeRef,
    doc: &Value,
    patch_type: PatchType,
    patch: &[u8],
) -> Result<Value, PatchError> {
    if patch_type == PatchType::Strategic && !kind.supports_strategic() {
        return Err(PatchError::UnsupportedMediaType {
            content_type: patch_type.content_type().to_string(),
            accepted: PatchType::accepted_for(kind),
        });
    }
    let body: Value = serde_json::from_slice(patch).map_err(|e| PatchError::Malformed {
        patch_type,
        reason: format!("the body is not JSON: {e}"),
    })?;
    let patched = match patch_type {
        PatchType::Json => json_patch(doc, &body)?,
        PatchType::Merge => merge_patch(doc, require_object(patch_type, &body)?),
        PatchType::Strategic => {
            strategic_merge_patch(kind, doc, require_object(patch_type, &body)?)?
        }
    };
    if !patched.is_object() {
        return Err(PatchError::NotAnObject {
            patch_type,
            found: describe(&patched),
        });
    }
    Ok(patched)
}

/// Merge patches may in principle replace the whole document with a non-object; an API
/// object cannot be anything but an object, so say so before merging.
fn require_object(patch_type: PatchType, body: &Value) -> Result<&Value, PatchError> {
    if body.is_object() {
        return Ok(body);
    }
    Err(PatchError::Malformed {
        patch_type,
        reason: format!(
            "the body must be a JSON object holding the fields to change, not {}",
            describe(body)
        ),
    })
}

/// A JSON value's kind with its article, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;

/// A JSON value's kind as a number, ordering kinds (null < bool < number < string < array <
/// object) wherever values of mixed kinds must sort or be told apart.
pub(crate) fn kind_rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}
