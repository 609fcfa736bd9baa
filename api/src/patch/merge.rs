//! JSON merge patch (RFC 7386, `application/merge-patch+json`): what kubectl sends for
//! `label`, `annotate` and `scale`, and for `apply`/`edit` of custom resources.

use serde_json::Value;

/// Applies an RFC 7386 merge patch to a copy of `doc`: `null` deletes a member, objects
/// merge member by member, and anything else, lists included, replaces the stored value.
///
/// Lists being replaced whole is why kubectl prefers strategic merge patch for built-in
/// kinds: a merge patch naming one container drops all the others.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}
