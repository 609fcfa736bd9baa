//! Name and metadata validation, with Kubernetes' rules and Kubernetes' words.
//!
//! Clients (kubectl, client-go, kube-rs) and the people reading their output expect the
//! messages Kubernetes gives, down to the regex it quotes, so every message here follows
//! `k8s.io/apimachinery/pkg/util/validation` and `.../api/validation/objectmeta.go` as of
//! Kubernetes 1.33 (lengths are said in "characters", as 1.33 says).
//!
//! Two layers:
//! - `validate_*` string checks (`validate_dns1123_subdomain`, `validate_qualified_name`, …)
//!   return the problems as plain sentences; an empty list means the value is valid. They
//!   know nothing about where the value sits in an object.
//! - [`validate_object_meta`] and [`validate_object_meta_update`] place those sentences on
//!   field paths as [`FieldError`]s, which become a 422 `Status` with `details.causes`
//!   (see [`crate::Error::Invalid`] and [`crate::Error::to_status`]).
//!
//! # Worked examples
//! ```
//! use sextant_api::validation::{validate_dns1123_label, validate_object_meta, NameRule};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
//!
//! assert!(validate_dns1123_label("web-1").is_empty());
//! assert_eq!(validate_dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
//!
//! let meta = ObjectMeta { name: Some("Foo".into()), namespace: Some("default".into()), ..Default::default() };
//! let errors = validate_object_meta(&meta, true, NameRule::Dns1123Subdomain);
//! assert!(errors[0].to_string().starts_with(
//!     "metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, StatusCause};
use serde::Serialize;

/// Longest DNS-1123 label (RFC 1123): one dot-free piece of a host name.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain: a whole host name.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label (what Services use, so their names work as DNS names everywhere).
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest name part of a qualified name (label and annotation keys, finalizers).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Most bytes all of an object's annotation keys and values may take together.
///
/// Protects the store and every watcher from objects bloated through annotations (each
/// write is replicated and fanned out whole); it does not bound the object as a whole.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Kubernetes' "too long" sentence.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Kubernetes' "does not match" sentence: the rule, examples, and the regex it stands for,
/// so a reader can check a value by hand.
fn regex_error(message: &str, regex: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{regex}')");
    }
    // Kubernetes writes "'a', " then " or " between examples, so its messages read
    // "'my-name',  or '123-abc'" with two spaces; clients may compare, so we do the same.
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{regex}')",
        examples.join(" or ")
    )
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without a length limit.
fn is_dns1123_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Dot-separated DNS-1123 labels, without a length limit.
fn is_dns1123_subdomain_shaped(s: &str) -> bool {
    s.split('.').all(is_dns1123_label_shaped)
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, without a length limit.
fn is_dns1035_label_shaped(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && is_dns1123_label_shaped(s)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, without a length limit.
fn is_qualified_name_part_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Checks a DNS-1123 label (`my-name`, `123-abc`): what namespaces are named with.
pub fn validate_dns1123_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        problems.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !is_dns1123_label_shaped(value) {
        if is_dns1123_subdomain_shaped(value) {
            // A valid subdomain that is no label can only be wrong in its dots.
            problems.push("must not contain dots".to_string());
        } else {
            problems.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    problems
}

/// Checks a DNS-1123 subdomain (`example.com`): what most objects are named with.
pub fn validate_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        problems.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !is_dns1123_subdomain_shaped(value) {
        problems.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    problems
}

/// Checks a DNS-1035 label (`my-name`, `abc-123`; must start with a letter): Service names.
pub fn validate_dns1035_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        problems.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !is_dns1035_label_shaped(value) {
        problems.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    problems
}

/// Checks a qualified name: an optional DNS-1123 subdomain prefix and `/`, then a name of
/// at most 63 characters. Label keys, annotation keys and finalizers are qualified names.
pub fn validate_qualified_name(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                let prefix_problems = validate_dns1123_subdomain(prefix);
                problems.extend(
                    prefix_problems
                        .into_iter()
                        .map(|p| format!("prefix part {p}")),
                );
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        problems.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !is_qualified_name_part_shaped(name) {
        problems.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    problems
}

/// Checks a label value: empty, or up to 63 of `[-A-Za-z0-9_.]` starting and ending with an
/// alphanumeric character.
pub fn validate_label_value(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        problems.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part_shaped(value) {
        problems.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    problems
}

/// Checks a name that becomes one segment of a URL path (RBAC objects): anything but `.`,
/// `..`, or text holding `/` or `%`. With `prefix`, only the characters are checked, since
/// a generated suffix follows.
fn validate_path_segment_name(value: &str, prefix: bool) -> Vec<String> {
    if !prefix {
        for illegal in [".", ".."] {
            if value == illegal {
                return vec![format!("may not be '{illegal}'")];
            }
        }
    }
    ["/", "%"]
        .into_iter()
        .filter(|illegal| value.contains(illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

/// Which syntax an object's `metadata.name` must follow. Kubernetes picks it per kind,
/// because some names become DNS names (namespaces, services) or URL path segments (RBAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// `example.com`, up to 253 characters: the default for most kinds (pods, nodes,
    /// config maps, secrets, deployments, jobs, custom resources, …).
    Dns1123Subdomain,
    /// `my-name`, up to 63 characters, no dots: namespaces, whose names become DNS labels.
    Dns1123Label,
    /// `my-name`, up to 63 characters, starting with a letter: services, so that the
    /// service's DNS name is valid for every resolver.
    Dns1035Label,
    /// Anything but `.`, `..`, `/` and `%`: RBAC roles and bindings (`system:node`).
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to objects of `kind` in API `group` (`""` for core).
    ///
    /// Kinds not listed follow [`NameRule::Dns1123Subdomain`], as custom resources do.
    pub fn for_kind(group: &str, kind: &str) -> NameRule {
        match (group, kind) {
            ("", "Namespace") => NameRule::Dns1123Label,
            ("", "Service") => NameRule::Dns1035Label,
            (
                "rbac.authorization.k8s.io",
                "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
            ) => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Checks `name` against the rule. With `prefix`, `name` is a `generateName` prefix: a
    /// trailing `-` is allowed there, since the random suffix will follow it.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && self != NameRule::PathSegment {
            masked = mask_trailing_dash(name);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Dns1123Subdomain => validate_dns1123_subdomain(name),
            NameRule::Dns1123Label => validate_dns1123_label(name),
            NameRule::Dns1035Label => validate_dns1035_label(name),
            NameRule::PathSegment => validate_path_segment_name(name, prefix),
        }
    }
}

/// Replaces a trailing `-` (when not the only character) with `a`, so that a prefix such as
/// `web-` is judged as the names it will produce.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => format!("{rest}a"),
        _ => name.to_string(),
    }
}

/// Why a field is wrong, as Kubernetes' `CauseType` says it (the `reason` of a
/// `StatusCause`). Clients match on these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `FieldValueRequired`: the field is missing or empty.
    Required,
    /// `FieldValueInvalid`: the value is malformed (bad syntax, out of range, immutable).
    Invalid,
    /// `FieldValueForbidden`: well formed, but not allowed here.
    Forbidden,
    /// `FieldValueTooLong`: too long; the value is left out of the message.
    TooLong,
    /// `FieldValueNotSupported`: not one of the values this field accepts.
    NotSupported,
    /// `FieldValueDuplicate`: must be unique and is not.
    Duplicate,
}

impl Reason {
    /// The `reason` string of a `StatusCause` (`FieldValueInvalid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Required => "FieldValueRequired",
            Reason::Invalid => "FieldValueInvalid",
            Reason::Forbidden => "FieldValueForbidden",
            Reason::TooLong => "FieldValueTooLong",
            Reason::NotSupported => "FieldValueNotSupported",
            Reason::Duplicate => "FieldValueDuplicate",
        }
    }

    /// The words that open a message of this kind (`Invalid value`, …).
    fn words(self) -> &'static str {
        match self {
            Reason::Required => "Required value",
            Reason::Invalid => "Invalid value",
            Reason::Forbidden => "Forbidden",
            Reason::TooLong => "Too long",
            Reason::NotSupported => "Unsupported value",
            Reason::Duplicate => "Duplicate value",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one field of an object: a `StatusCause` in the making.
///
/// `message` is the text without the field (`Invalid value: "Foo": a lowercase RFC 1123
/// …`), as Kubernetes puts it in `details.causes[].message`; `Display` prefixes the field
/// (`metadata.name: Invalid value: …`), as in the `Status` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, dotted, with list indices in brackets (`metadata.labels`,
    /// `spec.containers[0].image`).
    pub field: String,
    /// The kind of problem.
    pub reason: Reason,
    /// What is wrong, with the offending value where Kubernetes shows it.
    pub message: String,
}

impl FieldError {
    /// An error of `reason` whose message names the bad value (rendered already, e.g.
    /// quoted) and, when not empty, a detail.
    fn with_value(field: &str, reason: Reason, rendered_value: &str, detail: &str) -> FieldError {
        let mut message = format!("{}: {rendered_value}", reason.words());
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        FieldError {
            field: field.to_string(),
            reason,
            message,
        }
    }

    /// An error of `reason` whose message leaves the value out.
    fn without_value(field: &str, reason: Reason, detail: &str) -> FieldError {
        let mut message = reason.words().to_string();
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        FieldError {
            field: field.to_string(),
            reason,
            message,
        }
    }

    /// The string `value` of `field` is malformed: `Invalid value: "value": detail`.
    pub fn invalid(field: &str, value: &str, detail: &str) -> FieldError {
        FieldError::with_value(field, Reason::Invalid, &go_quote(value), detail)
    }

    /// Like [`FieldError::invalid`] for a value of any serialisable type, shown as JSON
    /// (numbers bare, strings quoted, absent values as `null`).
    pub fn invalid_json<T: Serialize + ?Sized>(field: &str, value: &T, detail: &str) -> FieldError {
        FieldError::with_value(field, Reason::Invalid, &render_json(value), detail)
    }

    /// `field` is missing: `Required value[: detail]`.
    pub fn required(field: &str, detail: &str) -> FieldError {
        FieldError::without_value(field, Reason::Required, detail)
    }

    /// `field` may not be set here: `Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        FieldError::without_value(field, Reason::Forbidden, detail)
    }

    /// `field` is longer than `max_bytes`: `Too long: must have at most N bytes`.
    pub fn too_long(field: &str, max_bytes: usize) -> FieldError {
        FieldError::without_value(
            field,
            Reason::TooLong,
            &format!("must have at most {max_bytes} bytes"),
        )
    }

    /// The string `value` of `field` is not one of `supported`:
    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> FieldError {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::with_value(field, Reason::NotSupported, &go_quote(value), &detail)
    }

    /// The `StatusCause` Kubernetes puts in `details.causes` for this error.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.as_str().to_string()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins field errors the way Kubernetes' aggregate error prints them: one error alone,
/// several as `[a, b]`, repeated messages once.
pub(crate) fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let messages: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match messages.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", messages.join(", ")),
    }
}

/// Quotes a string as Go's `%q` does, so values in messages read as in Kubernetes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "<unprintable>".to_string())
}

const FINALIZER_ORPHAN: &str = "orphan";
const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// Checks `metadata` of an object being created.
///
/// Run it after the name is generated from `generateName` (see [`crate::names`]); a
/// `generateName` is still checked as a prefix, so a bad one is reported as such.
/// `namespaced` says whether the kind lives in namespaces; `name_rule` comes from
/// [`NameRule::for_kind`].
///
/// Checks, in Kubernetes' order: `generateName`, `name`, `namespace`, `generation`,
/// `labels`, `annotations`, `ownerReferences`, `finalizers`. `managedFields` is not checked.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_rule: NameRule,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        for problem in name_rule.check(generate_name, true) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                &problem,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for problem in name_rule.check(name, false) {
            errors.push(FieldError::invalid("metadata.name", name, &problem));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            errors.push(FieldError::required("metadata.namespace", ""));
        } else {
            for problem in validate_dns1123_label(namespace) {
                errors.push(FieldError::invalid(
                    "metadata.namespace",
                    namespace,
                    &problem,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    errors.extend(validate_meta_common(meta));
    errors
}

/// Checks `metadata` of an object replacing `old`: what may not change has not, and the
/// new labels, annotations, owner references and finalizers are well formed.
///
/// `metadata.resourceVersion` must be set: for an unconditional update the API server
/// copies the stored object's before calling this.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if old.deletion_timestamp.is_some() {
        let old_finalizers: BTreeSet<&String> = old.finalizers.iter().flatten().collect();
        let added: BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_finalizers.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| go_quote(f)).collect();
            errors.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    if new
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        errors.push(FieldError::invalid(
            "metadata.resourceVersion",
            "",
            "must be specified for an update",
        ));
    }
    let (new_generation, old_generation) =
        (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if new_generation < old_generation {
        errors.push(FieldError::invalid_json(
            "metadata.generation",
            &new_generation,
            "must not be decremented",
        ));
    }
    immutable(&mut errors, "metadata.name", &new.name, &old.name);
    immutable(
        &mut errors,
        "metadata.namespace",
        &new.namespace,
        &old.namespace,
    );
    immutable(&mut errors, "metadata.uid", &new.uid, &old.uid);
    immutable(
        &mut errors,
        "metadata.creationTimestamp",
        &new.creation_timestamp,
        &old.creation_timestamp,
    );
    immutable(
        &mut errors,
        "metadata.deletionTimestamp",
        &new.deletion_timestamp,
        &old.deletion_timestamp,
    );
    immutable(
        &mut errors,
        "metadata.deletionGracePeriodSeconds",
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
    );
    errors.extend(validate_meta_common(new));
    errors
}

/// Reports `field` as immutable when `new` differs from `old`. An absent value and an empty
/// string count as the same, as in Kubernetes (whose strings cannot be absent).
fn immutable<T: PartialEq + Serialize>(
    errors: &mut Vec<FieldError>,
    field: &str,
    new: &Option<T>,
    old: &Option<T>,
) {
    let differs = match (new, old) {
        (Some(n), Some(o)) => n != o,
        (None, None) => false,
        (Some(v), None) | (None, Some(v)) => render_json(v) != "\"\"",
    };
    if differs {
        errors.push(FieldError::invalid_json(field, new, "field is immutable"));
    }
}

/// The checks shared by create and update.
fn validate_meta_common(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(generation) = meta.generation
        && generation < 0
    {
        errors.push(FieldError::invalid_json(
            "metadata.generation",
            &generation,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(labels) = &meta.labels {
        errors.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = &meta.annotations {
        errors.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    if let Some(owners) = &meta.owner_references {
        errors.extend(validate_owner_references(
            owners,
            "metadata.ownerReferences",
        ));
    }
    if let Some(finalizers) = &meta.finalizers {
        errors.extend(validate_finalizers(finalizers, "metadata.finalizers"));
    }
    errors
}

/// Checks a label map: keys are qualified names, values label values. Errors sit on
/// `field` itself, as in Kubernetes.
pub fn validate_labels(labels: &BTreeMap<String, String>, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        for problem in validate_qualified_name(key) {
            errors.push(FieldError::invalid(field, key, &problem));
        }
        for problem in validate_label_value(value) {
            errors.push(FieldError::invalid(field, value, &problem));
        }
    }
    errors
}

/// Checks an annotation map: keys are qualified names (in any case), and keys and values
/// together stay within [`TOTAL_ANNOTATION_SIZE_LIMIT`].
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    field: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for problem in validate_qualified_name(&key.to_lowercase()) {
            errors.push(FieldError::invalid(field, key, &problem));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

/// Checks owner references: each names its owner fully, events own nothing, and at most one
/// is the controller. Errors sit on `field`, not on an index, as in Kubernetes.
pub fn validate_owner_references(owners: &[OwnerReference], field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut controller: Option<String> = None;
    for owner in owners {
        // Kubernetes' schema.ParseGroupVersion: "v1", "apps/v1"; more slashes are no version.
        let (group, version) = match owner.api_version.split('/').collect::<Vec<_>>().as_slice() {
            [version] => ("", *version),
            [group, version] => (*group, *version),
            _ => ("", ""),
        };
        if version.is_empty() {
            errors.push(FieldError::invalid(
                &format!("{field}.apiVersion"),
                &owner.api_version,
                "version must not be empty",
            ));
        }
        if owner.kind.is_empty() {
            errors.push(FieldError::invalid(
                &format!("{field}.kind"),
                &owner.kind,
                "must not be empty",
            ));
        }
        if owner.name.is_empty() {
            errors.push(FieldError::invalid(
                &format!("{field}.name"),
                &owner.name,
                "must not be empty",
            ));
        }
        if owner.uid.is_empty() {
            errors.push(FieldError::invalid(
                &format!("{field}.uid"),
                &owner.uid,
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && owner.kind == "Event" {
            errors.push(FieldError::invalid_json(
                field,
                owner,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if owner.controller == Some(true) {
            let this = format!("{}/{}", owner.kind, owner.name);
            match &controller {
                Some(first) => errors.push(FieldError::invalid_json(
                    field,
                    owners,
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => controller = Some(this),
            }
        }
    }
    errors
}

/// Checks finalizers: each a qualified name, and never both `orphan` and
/// `foregroundDeletion` (they ask for opposite things).
pub fn validate_finalizers(finalizers: &[String], field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for finalizer in finalizers {
        for problem in validate_qualified_name(finalizer) {
            errors.push(FieldError::invalid(field, finalizer, &problem));
        }
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN) && has(FINALIZER_FOREGROUND) {
        errors.push(FieldError::invalid_json(
            field,
            finalizers,
            &format!("finalizer {FINALIZER_ORPHAN} and {FINALIZER_FOREGROUND} cannot be both set"),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    #[test]
    fn dns1123_subdomain() {
        let long_ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        let cases: &[(&str, &str, bool)] = &[
            ("simple", "example", true),
            ("dotted", "example.com", true),
            ("digits first", "1-2.3", true),
            ("253 characters", &long_ok, true),
            ("empty", "", false),
            ("upper case", "Foo", false),
            ("leading dash", "-a", false),
            ("trailing dash", "a-", false),
            ("double dot", "a..b", false),
            ("trailing dot", "a.", false),
            ("underscore", "a_b", false),
            ("non-ascii", "café", false),
        ];
        for (name, input, valid) in cases {
            assert_eq!(
                validate_dns1123_subdomain(input).is_empty(),
                *valid,
                "case {name}: {input:?}"
            );
        }
        let too_long = format!("{long_ok}a");
        assert_eq!(
            validate_dns1123_subdomain(&too_long),
            vec!["must be no more than 253 characters".to_string()]
        );
        assert_eq!(
            validate_dns1123_subdomain("Foo"),
            vec![SUBDOMAIN_MSG.to_string()]
        );
    }

    #[test]
    fn dns1123_label() {
        let cases: &[(&str, &str, Vec<String>)] = &[
            ("simple", "my-name", vec![]),
            ("digits", "123-abc", vec![]),
            ("63 characters", &"a".repeat(63), vec![]),
            (
                "64 characters",
                &"a".repeat(64),
                vec!["must be no more than 63 characters".into()],
            ),
            ("dots", "a.b", vec!["must not contain dots".into()]),
            ("upper", "A", vec![LABEL_MSG.to_string()]),
            ("empty", "", vec![LABEL_MSG.to_string()]),
        ];
        for (name, input, want) in cases {
            assert_eq!(&validate_dns1123_label(input), want, "case {name}");
        }
    }

    #[test]
    fn dns1035_label() {
        let cases: &[(&str, &str, bool)] = &[
            ("letter first", "web", true),
            ("digit inside", "a-1", true),
            ("digit first", "1a", false),
            ("dash last", "a-", false),
            ("dot", "a.b", false),
            ("64 characters", &"a".repeat(64), false),
        ];
        for (name, input, valid) in cases {
            assert_eq!(
                validate_dns1035_label(input).is_empty(),
                *valid,
                "case {name}"
            );
        }
    }

    #[test]
    fn qualified_names() {
        let cases: &[(&str, &str, bool)] = &[
            ("plain", "app", true),
            ("mixed case and punctuation", "My_name.v-1", true),
            ("prefixed", "sextant.dev/wasm", true),
            ("kubernetes prefix", "app.kubernetes.io/name", true),
            ("63 character name", &"a".repeat(63), true),
            ("64 character name", &"a".repeat(64), false),
            ("empty", "", false),
            ("empty prefix", "/a", false),
            ("empty name", "a/", false),
            ("two slashes", "a/b/c", false),
            ("upper-case prefix", "Example.com/a", false),
            ("leading dot", ".a", false),
            ("space", "a b", false),
        ];
        for (name, input, valid) in cases {
            assert_eq!(
                validate_qualified_name(input).is_empty(),
                *valid,
                "case {name}: {input:?}"
            );
        }
        assert_eq!(
            validate_qualified_name("/a"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert_eq!(
            validate_qualified_name("a/").first().map(String::as_str),
            Some("name part must be non-empty")
        );
        assert!(
            validate_qualified_name("a/b/c")[0].starts_with("a qualified name must consist of")
        );
    }

    #[test]
    fn label_values() {
        let cases: &[(&str, &str, bool)] = &[
            ("empty is allowed", "", true),
            ("plain", "prod", true),
            ("punctuation inside", "v1.2_3-4", true),
            ("63 characters", &"x".repeat(63), true),
            ("64 characters", &"x".repeat(64), false),
            ("leading dash", "-x", false),
            ("slash", "a/b", false),
        ];
        for (name, input, valid) in cases {
            assert_eq!(
                validate_label_value(input).is_empty(),
                *valid,
                "case {name}"
            );
        }
    }

    #[test]
    fn name_rules_per_kind() {
        let cases: &[(&str, &str, &str, NameRule)] = &[
            ("namespace", "", "Namespace", NameRule::Dns1123Label),
            ("service", "", "Service", NameRule::Dns1035Label),
            ("pod", "", "Pod", NameRule::Dns1123Subdomain),
            (
                "deployment",
                "apps",
                "Deployment",
                NameRule::Dns1123Subdomain,
            ),
            (
                "cluster role",
                "rbac.authorization.k8s.io",
                "ClusterRole",
                NameRule::PathSegment,
            ),
            (
                "custom resource",
                "example.com",
                "Widget",
                NameRule::Dns1123Subdomain,
            ),
        ];
        for (name, group, kind, want) in cases {
            assert_eq!(NameRule::for_kind(group, kind), *want, "case {name}");
        }
    }

    #[test]
    fn name_rule_checks() {
        let cases: &[(&str, NameRule, &str, bool, bool)] = &[
            (
                "prefix with trailing dash",
                NameRule::Dns1123Subdomain,
                "web-",
                true,
                true,
            ),
            (
                "same as a name",
                NameRule::Dns1123Subdomain,
                "web-",
                false,
                false,
            ),
            (
                "single dash prefix",
                NameRule::Dns1123Subdomain,
                "-",
                true,
                false,
            ),
            (
                "rbac colon",
                NameRule::PathSegment,
                "system:node",
                false,
                true,
            ),
            ("rbac dot", NameRule::PathSegment, ".", false, false),
            ("rbac dot prefix", NameRule::PathSegment, ".", true, true),
            ("rbac slash", NameRule::PathSegment, "a/b", false, false),
            (
                "service digit first",
                NameRule::Dns1035Label,
                "1web",
                false,
                false,
            ),
            (
                "namespace prefix",
                NameRule::Dns1123Label,
                "team-",
                true,
                true,
            ),
        ];
        for (name, rule, input, prefix, valid) in cases {
            assert_eq!(rule.check(input, *prefix).is_empty(), *valid, "case {name}");
        }
        assert_eq!(
            NameRule::PathSegment.check("a/%", false),
            vec!["may not contain '/'", "may not contain '%'"]
        );
    }

    fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..Default::default()
        }
    }

    fn rendered(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn object_meta_on_create() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let cases: Vec<(&str, ObjectMeta, bool, NameRule, Vec<String>)> = vec![
            ("valid pod", meta("web-0", Some("default")), true, NameRule::Dns1123Subdomain, vec![]),
            (
                "upper-case name",
                meta("Foo", Some("default")),
                true,
                NameRule::Dns1123Subdomain,
                vec![format!("metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}")],
            ),
            (
                "no name",
                ObjectMeta { namespace: Some("default".into()), ..Default::default() },
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.name: Required value: name or generateName is required".into()],
            ),
            (
                "missing namespace",
                meta("a", None),
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.namespace: Required value".into()],
            ),
            (
                "namespace on a cluster-scoped kind",
                meta("node-1", Some("default")),
                false,
                NameRule::Dns1123Subdomain,
                vec!["metadata.namespace: Forbidden: not allowed on this type".into()],
            ),
            (
                "bad namespace",
                meta("a", Some("a.b")),
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.namespace: Invalid value: \"a.b\": must not contain dots".into()],
            ),
            (
                "namespace named with dots",
                meta("team.a", None),
                false,
                NameRule::Dns1123Label,
                vec!["metadata.name: Invalid value: \"team.a\": must not contain dots".into()],
            ),
            (
                "bad generateName",
                ObjectMeta {
                    generate_name: Some("Web-".into()),
                    name: Some("Web-abcde".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                true,
                NameRule::Dns1123Subdomain,
                vec![
                    format!("metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}"),
                    format!("metadata.name: Invalid value: \"Web-abcde\": {SUBDOMAIN_MSG}"),
                ],
            ),
            (
                "bad label key and value",
                ObjectMeta {
                    labels: Some(BTreeMap::from([("a/b/c".to_string(), "-x".to_string())])),
                    ..meta("a", Some("default"))
                },
                true,
                NameRule::Dns1123Subdomain,
                vec![
                    "metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
                    "metadata.labels: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
                ],
            ),
            (
                "upper-case annotation key is fine",
                ObjectMeta {
                    annotations: Some(BTreeMap::from([("Example.COM/Note".to_string(), "hi".to_string())])),
                    ..meta("a", Some("default"))
                },
                true,
                NameRule::Dns1123Subdomain,
                vec![],
            ),
            (
                "annotations too large",
                ObjectMeta {
                    annotations: Some(BTreeMap::from([("k".to_string(), big)])),
                    ..meta("a", Some("default"))
                },
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.annotations: Too long: must have at most 262144 bytes".into()],
            ),
            (
                "negative generation",
                ObjectMeta { generation: Some(-1), ..meta("a", Some("default")) },
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.generation: Invalid value: -1: must be greater than or equal to 0".into()],
            ),
            (
                "conflicting finalizers",
                ObjectMeta {
                    finalizers: Some(vec!["orphan".into(), "foregroundDeletion".into()]),
                    ..meta("a", Some("default"))
                },
                true,
                NameRule::Dns1123Subdomain,
                vec!["metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set".into()],
            ),
        ];
        for (name, meta, namespaced, rule, want) in cases {
            assert_eq!(
                rendered(&validate_object_meta(&meta, namespaced, rule)),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn owner_references() {
        let owner = |kind: &str, name: &str, controller: bool| OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u-1".into(),
            controller: Some(controller),
            ..Default::default()
        };
        let cases: Vec<(&str, Vec<OwnerReference>, Vec<&str>)> = vec![
            (
                "one controller",
                vec![owner("ReplicaSet", "a", true), owner("Thing", "b", false)],
                vec![],
            ),
            (
                "missing parts",
                vec![OwnerReference {
                    api_version: "a/b/c".into(),
                    ..Default::default()
                }],
                vec![
                    "metadata.ownerReferences.apiVersion: Invalid value: \"a/b/c\": version must not be empty",
                    "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                    "metadata.ownerReferences.name: Invalid value: \"\": must not be empty",
                    "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
                ],
            ),
        ];
        for (name, owners, want) in cases {
            assert_eq!(
                rendered(&validate_owner_references(
                    &owners,
                    "metadata.ownerReferences"
                )),
                want,
                "case {name}"
            );
        }
        let two = vec![
            owner("ReplicaSet", "a", true),
            owner("ReplicaSet", "b", true),
        ];
        let errors = validate_owner_references(&two, "metadata.ownerReferences");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .ends_with("Found \"true\" in references for ReplicaSet/a and ReplicaSet/b")
        );
        let event = vec![OwnerReference {
            api_version: "v1".into(),
            ..owner("Event", "e", false)
        }];
        assert!(
            validate_owner_references(&event, "x")[0]
                .message
                .ends_with("/v1, Kind=Event is disallowed from being an owner")
        );
    }

    #[test]
    fn object_meta_on_update() {
        let old = ObjectMeta {
            resource_version: Some("5".into()),
            uid: Some("u1".into()),
            generation: Some(3),
            ..meta("a", Some("ns"))
        };
        let cases: Vec<(&str, ObjectMeta, Vec<&str>)> = vec![
            ("unchanged", old.clone(), vec![]),
            (
                "renamed",
                ObjectMeta {
                    name: Some("b".into()),
                    ..old.clone()
                },
                vec!["metadata.name: Invalid value: \"b\": field is immutable"],
            ),
            (
                "uid cleared",
                ObjectMeta {
                    uid: None,
                    ..old.clone()
                },
                vec!["metadata.uid: Invalid value: null: field is immutable"],
            ),
            (
                "no resourceVersion",
                ObjectMeta {
                    resource_version: None,
                    ..old.clone()
                },
                vec![
                    "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                ],
            ),
            (
                "generation decremented",
                ObjectMeta {
                    generation: Some(2),
                    ..old.clone()
                },
                vec!["metadata.generation: Invalid value: 2: must not be decremented"],
            ),
        ];
        for (name, new, want) in cases {
            assert_eq!(
                rendered(&validate_object_meta_update(&new, &old)),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let deleting = ObjectMeta {
            resource_version: Some("1".into()),
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            )),
            finalizers: Some(vec!["a.io/x".into()]),
            ..meta("a", Some("ns"))
        };
        let new = ObjectMeta {
            finalizers: Some(vec!["a.io/x".into(), "a.io/y".into()]),
            ..deleting.clone()
        };
        assert_eq!(
            rendered(&validate_object_meta_update(&new, &deleting)),
            vec![
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"a.io/y\"}"
            ]
        );
    }

    #[test]
    fn causes_and_aggregates() {
        let one = FieldError::invalid("metadata.name", "Foo", "bad");
        let cause = one.to_cause();
        assert_eq!(cause.reason.as_deref(), Some("FieldValueInvalid"));
        assert_eq!(cause.field.as_deref(), Some("metadata.name"));
        assert_eq!(
            cause.message.as_deref(),
            Some("Invalid value: \"Foo\": bad")
        );
        let two = FieldError::required("metadata.namespace", "");
        assert_eq!(
            aggregate_message(std::slice::from_ref(&one)),
            "metadata.name: Invalid value: \"Foo\": bad"
        );
        assert_eq!(
            aggregate_message(&[one.clone(), two, one]),
            "[metadata.name: Invalid value: \"Foo\": bad, metadata.namespace: Required value]"
        );
        assert_eq!(
            FieldError::not_supported("spec.x", "c", &["a", "b"]).message,
            "Unsupported value: \"c\": supported values: \"a\", \"b\""
        );
    }

    #[test]
    fn go_quoting() {
        let cases = [
            ("plain", "a", "\"a\""),
            ("quote", "a\"b", "\"a\\\"b\""),
            ("newline", "a\nb", "\"a\\nb\""),
            ("nul", "\0", "\"\\x00\""),
            ("unicode kept", "é", "\"é\""),
        ];
        for (name, input, want) in cases {
            assert_eq!(go_quote(input), want, "case {name}");
        }
    }
}
