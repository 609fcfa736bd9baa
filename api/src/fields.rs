//! Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Running`), as
//! Kubernetes parses them (`k8s.io/apimachinery/pkg/fields/selector.go`) and evaluates them.
//!
//! Unlike labels, fields are not free-form: each kind offers a short list of fields that
//! may be selected on (kubelets select their pods by `spec.nodeName`, `kubectl describe`
//! selects events by `involvedObject.*`). The steps mirror Kubernetes':
//! 1. [`FieldSelector::parse`] checks the syntax only;
//! 2. [`FieldSelector::for_kind`] checks every field against the kind's list (an unknown
//!    one is a 400, `field label not supported: foo`) and renames old aliases;
//! 3. [`object_fields`] computes an object's selectable fields once (say, per watch
//!    event), and [`FieldSelector::matches`] tests a selector against them.
//!
//! A field an object does not set counts as its zero value: `""` for text, `0` for counts,
//! `false` for flags, as Kubernetes reads them from Go structs. So `spec.nodeName=` selects
//! the pods not yet scheduled.
//!
//! # Worked example
//! ```
//! use sextant_api::fields::{object_fields, FieldSelector};
//! use serde_json::json;
//!
//! let selector = FieldSelector::parse("spec.nodeName=,status.phase!=Failed")?.for_kind("", "Pod")?;
//! let pending = json!({"metadata": {"name": "web"}, "spec": {}, "status": {"phase": "Pending"}});
//! assert!(selector.matches(&object_fields("", "Pod", &pending)));
//!
//! let err = FieldSelector::parse("spec.foo=1")?.for_kind("", "Pod").unwrap_err();
//! assert!(err.to_string().starts_with("field label not supported: spec.foo"));
//! # Ok::<(), sextant_api::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::Error;

/// How a [`FieldRequirement`] relates a field to its value. `==` parses as `Equals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One condition on one field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field path, as the client wrote it (`spec.nodeName`).
    pub field: String,
    /// Equal or not equal.
    pub operator: FieldOperator,
    /// The value, unescaped (`\,`, `\=` and `\\` in the text become `,`, `=` and `\`).
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        let actual = fields.get(&self.field).map_or("", String::as_str);
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// The text form, with `\`, `,` and `=` in the value escaped so it parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{operator}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: all its requirements must hold. Empty text selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that selects every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Whether the selector restricts nothing.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in the order Kubernetes keeps them (sorted by their text).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal, when the selector says so (`metadata.name=web`): lets
    /// the caller fetch one object, or one node's pods, instead of scanning all.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Parses the text form: comma-joined `field=value`, `field==value` or `field!=value`.
    /// A value may hold `,`, `=` or `\` when escaped with `\`. Fields are not checked here;
    /// see [`FieldSelector::for_kind`].
    ///
    /// # Errors
    /// [`Error::InvalidFieldSelector`] naming the term that does not parse.
    pub fn parse(text: &str) -> Result<FieldSelector, Error> {
        let invalid = |reason: String| Error::InvalidFieldSelector {
            input: text.to_string(),
            reason,
        };
        let mut terms = split_terms(text);
        // Kubernetes sorts the terms as written; keep its order for identical output.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(invalid(format!(
                    "can't understand '{term}'; write FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE, joined by commas"
                )));
            };
            let value = unescape_value(raw_value).map_err(invalid)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Checks every field against those the kind offers (see [`supported_fields`]), and
    /// rewrites aliases Kubernetes still accepts (a pod's `spec.host` is `spec.nodeName`).
    ///
    /// # Errors
    /// [`Error::UnsupportedField`] for the first field the kind does not offer.
    pub fn for_kind(self, group: &str, kind: &str) -> Result<FieldSelector, Error> {
        let table = kind_table(group, kind);
        let mut requirements = Vec::with_capacity(self.requirements.len());
        for mut requirement in self.requirements {
            if let Some((_, canonical)) = table
                .iter()
                .flat_map(|t| t.aliases)
                .find(|(alias, _)| *alias == requirement.field)
            {
                requirement.field = (*canonical).to_string();
            }
            if lookup(table, &requirement.field).is_none() {
                return Err(Error::UnsupportedField {
                    kind: kind.to_string(),
                    field: requirement.field,
                    supported: supported_fields(group, kind),
                });
            }
            requirements.push(requirement);
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether an object with these selectable fields (from [`object_fields`]) is selected.
    /// A field missing from `fields` counts as `""`.
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(fields))
    }

    /// [`FieldSelector::matches`] on an object's JSON; for one-off checks. Where objects are
    /// tested against many selectors, compute [`object_fields`] once instead.
    pub fn matches_object(&self, group: &str, kind: &str, object: &Value) -> bool {
        self.matches(&object_fields(group, kind, object))
    }
}

impl FromStr for FieldSelector {
    type Err = Error;

    fn from_str(text: &str) -> Result<FieldSelector, Error> {
        FieldSelector::parse(text)
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Splits on commas that are not escaped; escapes stay in the terms.
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits a term at its first operator. The field may not hold operator characters, so the
/// first `!=`, `==` or `=` (tried in that order at each position) is the operator.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (text, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

/// Undoes [`escape_value`]; a bare `,` or `=`, or an unknown escape, is an error.
fn unescape_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => value.push(escaped),
                Some(other) => {
                    return Err(format!(
                        "invalid escape sequence: \\{other}; only \\\\, \\, and \\= may be escaped in a value"
                    ));
                }
                None => return Err(
                    "invalid escape sequence: \\ at the end of a value; write \\\\ for a backslash"
                        .into(),
                ),
            },
            ',' | '=' => {
                return Err(format!(
                    "unescaped character in value: '{c}'; write \\{c} for a literal '{c}'"
                ));
            }
            c => value.push(c),
        }
    }
    Ok(value)
}

/// Escapes `\`, `,` and `=` so any string can stand as a value in a field selector.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where a selectable field's value comes from in the object's JSON, and which zero value
/// stands in when it is absent.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A string at a JSON pointer; absent is `""`.
    Text(&'static str),
    /// An integer at a JSON pointer, in decimal; absent is `0`.
    Integer(&'static str),
    /// A boolean at a JSON pointer, `true` or `false`; absent is `false`.
    Flag(&'static str),
    /// A pod's IP: `status.podIP`, else the first of `status.podIPs`.
    PodIp,
    /// An event's source: `source.component`, else `reportingComponent`.
    EventComponent,
}

impl Source {
    fn read(self, object: &Value) -> String {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match self {
            Source::Text(pointer) => text(pointer),
            Source::Integer(pointer) => object
                .pointer(pointer)
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
            Source::Flag(pointer) => object
                .pointer(pointer)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string(),
            Source::PodIp => {
                let ip = text("/status/podIP");
                if ip.is_empty() {
                    text("/status/podIPs/0/ip")
                } else {
                    ip
                }
            }
            Source::EventComponent => {
                let component = text("/source/component");
                if component.is_empty() {
                    text("/reportingComponent")
                } else {
                    component
                }
            }
        }
    }
}

/// The fields one kind offers beyond `metadata.name` and `metadata.namespace`.
struct KindFields {
    group: &'static str,
    kind: &'static str,
    fields: &'static [(&'static str, Source)],
    /// Old names Kubernetes still accepts, and the field each stands for.
    aliases: &'static [(&'static str, &'static str)],
}

/// Every kind offers these.
const COMMON_FIELDS: &[(&str, Source)] = &[
    ("metadata.name", Source::Text("/metadata/name")),
    ("metadata.namespace", Source::Text("/metadata/namespace")),
];

/// The kinds with more to select on, after `pkg/apis/*/v1/conversion.go` and the
/// `ToSelectableFields` functions of `pkg/registry`.
const KINDS: &[KindFields] = &[
    KindFields {
        group: "",
        kind: "Pod",
        fields: &[
            ("spec.nodeName", Source::Text("/spec/nodeName")),
            ("spec.restartPolicy", Source::Text("/spec/restartPolicy")),
            ("spec.schedulerName", Source::Text("/spec/schedulerName")),
            (
                "spec.serviceAccountName",
                Source::Text("/spec/serviceAccountName"),
            ),
            ("status.phase", Source::Text("/status/phase")),
            ("status.podIP", Source::PodIp),
            (
                "status.nominatedNodeName",
                Source::Text("/status/nominatedNodeName"),
            ),
        ],
        aliases: &[("spec.host", "spec.nodeName")],
    },
    KindFields {
        group: "",
        kind: "Event",
        fields: &[
            ("involvedObject.kind", Source::Text("/involvedObject/kind")),
            (
                "involvedObject.namespace",
                Source::Text("/involvedObject/namespace"),
            ),
            ("involvedObject.name", Source::Text("/involvedObject/name")),
            ("involvedObject.uid", Source::Text("/involvedObject/uid")),
            (
                "involvedObject.apiVersion",
                Source::Text("/involvedObject/apiVersion"),
            ),
            (
                "involvedObject.resourceVersion",
                Source::Text("/involvedObject/resourceVersion"),
            ),
            (
                "involvedObject.fieldPath",
                Source::Text("/involvedObject/fieldPath"),
            ),
            ("reason", Source::Text("/reason")),
            ("reportingComponent", Source::Text("/reportingComponent")),
            ("source", Source::EventComponent),
            ("type", Source::Text("/type")),
        ],
        aliases: &[],
    },
    KindFields {
        group: "",
        kind: "Node",
        fields: &[("spec.unschedulable", Source::Flag("/spec/unschedulable"))],
        aliases: &[],
    },
    KindFields {
        group: "",
        kind: "Namespace",
        fields: &[("status.phase", Source::Text("/status/phase"))],
        aliases: &[],
    },
    KindFields {
        group: "",
        kind: "Secret",
        fields: &[("type", Source::Text("/type"))],
        aliases: &[],
    },
    KindFields {
        group: "",
        kind: "ReplicationController",
        fields: &[("status.replicas", Source::Integer("/status/replicas"))],
        aliases: &[],
    },
    KindFields {
        group: "apps",
        kind: "ReplicaSet",
        fields: &[("status.replicas", Source::Integer("/status/replicas"))],
        aliases: &[],
    },
    KindFields {
        group: "batch",
        kind: "Job",
        // The label says "successful"; the field it reads is status.succeeded.
        fields: &[("status.successful", Source::Integer("/status/succeeded"))],
        aliases: &[],
    },
];

fn kind_table(group: &str, kind: &str) -> Option<&'static KindFields> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

fn lookup(table: Option<&'static KindFields>, field: &str) -> Option<Source> {
    COMMON_FIELDS
        .iter()
        .chain(table.into_iter().flat_map(|t| t.fields))
        .find(|(name, _)| *name == field)
        .map(|(_, source)| *source)
}

/// The fields objects of `kind` in API `group` (`""` for core) may be selected on.
pub fn supported_fields(group: &str, kind: &str) -> Vec<&'static str> {
    COMMON_FIELDS
        .iter()
        .chain(kind_table(group, kind).into_iter().flat_map(|t| t.fields))
        .map(|(name, _)| *name)
        .collect()
}

/// An object's selectable fields and their values (Kubernetes' `fields.Set`), read from its
/// JSON. Every supported field is present, absent ones at their zero value.
pub fn object_fields(group: &str, kind: &str, object: &Value) -> BTreeMap<String, String> {
    COMMON_FIELDS
        .iter()
        .chain(kind_table(group, kind).into_iter().flat_map(|t| t.fields))
        .map(|(name, source)| ((*name).to_string(), source.read(object)))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses() {
        let cases = [
            ("empty", "", ""),
            ("equals", "metadata.name=web", "metadata.name=web"),
            ("double equals", "metadata.name==web", "metadata.name=web"),
            ("not equals", "spec.nodeName!=", "spec.nodeName!="),
            ("empty value", "spec.nodeName=", "spec.nodeName="),
            (
                "sorted",
                "status.phase=Running,metadata.name=a",
                "metadata.name=a,status.phase=Running",
            ),
            (
                "empty terms skipped",
                ",metadata.name=a,,",
                "metadata.name=a",
            ),
            ("escaped comma", r"reason=a\,b", r"reason=a\,b"),
            (
                "escaped equals and backslash",
                r"reason=a\=b\\c",
                r"reason=a\=b\\c",
            ),
            ("first operator splits", "a!=b", "a!=b"),
        ];
        for (name, input, want) in cases {
            let selector =
                FieldSelector::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(selector.to_string(), want, "case {name}");
        }
        let escaped = FieldSelector::parse(r"reason=a\,b\=c\\").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(escaped.requirements()[0].value, r"a,b=c\");
    }

    #[test]
    fn reports_parse_errors() {
        let cases = [
            (
                "no operator",
                "metadata.name",
                "invalid field selector \"metadata.name\": can't understand 'metadata.name'",
            ),
            (
                "bare equals in value",
                "a=b=c",
                "invalid field selector \"a=b=c\": unescaped character in value: '='",
            ),
            (
                "unknown escape",
                r"a=\n",
                r#"invalid field selector "a=\n": invalid escape sequence: \n"#,
            ),
            (
                "trailing backslash",
                r"a=b\",
                r#"invalid field selector "a=b\": invalid escape sequence: \ at the end"#,
            ),
        ];
        for (name, input, want) in cases {
            match FieldSelector::parse(input) {
                Ok(s) => panic!("case {name}: parsed as {s}"),
                Err(e) => assert!(e.to_string().starts_with(want), "case {name}: got {e}"),
            }
        }
    }

    #[test]
    fn checks_fields_per_kind() {
        /// (case, group, kind, selector, canonical text or the unsupported field)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            Result<&'static str, &'static str>,
        );
        let cases: &[Case] = &[
            (
                "pod node",
                "",
                "Pod",
                "spec.nodeName=n1",
                Ok("spec.nodeName=n1"),
            ),
            (
                "pod alias",
                "",
                "Pod",
                "spec.host=n1",
                Ok("spec.nodeName=n1"),
            ),
            ("pod unknown", "", "Pod", "spec.foo=1", Err("spec.foo")),
            (
                "metadata everywhere",
                "example.com",
                "Widget",
                "metadata.namespace=a",
                Ok("metadata.namespace=a"),
            ),
            (
                "custom kind offers no more",
                "example.com",
                "Widget",
                "status.phase=a",
                Err("status.phase"),
            ),
            (
                "node",
                "",
                "Node",
                "spec.unschedulable=true",
                Ok("spec.unschedulable=true"),
            ),
            (
                "namespace",
                "",
                "Namespace",
                "status.phase=Active",
                Ok("status.phase=Active"),
            ),
            ("secret", "", "Secret", "type=Opaque", Ok("type=Opaque")),
            (
                "replicaset",
                "apps",
                "ReplicaSet",
                "status.replicas=0",
                Ok("status.replicas=0"),
            ),
            (
                "replicaset in wrong group",
                "",
                "ReplicaSet",
                "status.replicas=0",
                Err("status.replicas"),
            ),
            (
                "job",
                "batch",
                "Job",
                "status.successful=1",
                Ok("status.successful=1"),
            ),
            (
                "event",
                "",
                "Event",
                "involvedObject.name=web,type=Warning",
                Ok("involvedObject.name=web,type=Warning"),
            ),
            ("event unknown", "", "Event", "message=x", Err("message")),
        ];
        for (name, group, kind, input, want) in cases {
            let parsed = FieldSelector::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            match (parsed.for_kind(group, kind), want) {
                (Ok(selector), Ok(text)) => assert_eq!(selector.to_string(), *text, "case {name}"),
                (Err(Error::UnsupportedField { field, .. }), Err(bad)) => {
                    assert_eq!(field, *bad, "case {name}")
                }
                (got, want) => panic!("case {name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn unsupported_field_message_lists_the_choices() {
        let error = FieldSelector::parse("foo=1")
            .and_then(|s| s.for_kind("", "Secret"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "field label not supported: foo (Secret objects can be selected by metadata.name, metadata.namespace, type)"
        );
    }

    #[test]
    fn matches_pods() {
        let scheduled = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]}
        });
        let pending = json!({"metadata": {"name": "web-2", "namespace": "default"}, "spec": {}, "status": {"phase": "Pending"}});
        let cases = [
            ("by node", "spec.nodeName=node-1", true, false),
            ("unscheduled", "spec.nodeName=", false, true),
            ("scheduled", "spec.nodeName!=", true, false),
            ("by phase", "status.phase=Running", true, false),
            ("phase not", "status.phase!=Running", false, true),
            (
                "by name and namespace",
                "metadata.name=web-1,metadata.namespace=default",
                true,
                false,
            ),
            ("pod IP from podIPs", "status.podIP=10.0.0.7", true, false),
            (
                "missing service account is empty",
                "spec.serviceAccountName=",
                true,
                true,
            ),
            ("everything", "", true, true),
        ];
        for (name, input, want_scheduled, want_pending) in cases {
            let selector = FieldSelector::parse(input)
                .and_then(|s| s.for_kind("", "Pod"))
                .unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(
                selector.matches_object("", "Pod", &scheduled),
                want_scheduled,
                "case {name} (scheduled)"
            );
            assert_eq!(
                selector.matches_object("", "Pod", &pending),
                want_pending,
                "case {name} (pending)"
            );
        }
    }

    #[test]
    fn reads_typed_fields_with_zero_values() {
        let cases = [
            (
                "node flag set",
                "",
                "Node",
                json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable",
                "true",
            ),
            (
                "node flag absent",
                "",
                "Node",
                json!({"spec": {}}),
                "spec.unschedulable",
                "false",
            ),
            (
                "replicas",
                "apps",
                "ReplicaSet",
                json!({"status": {"replicas": 3}}),
                "status.replicas",
                "3",
            ),
            (
                "replicas absent",
                "apps",
                "ReplicaSet",
                json!({}),
                "status.replicas",
                "0",
            ),
            (
                "job succeeded",
                "batch",
                "Job",
                json!({"status": {"succeeded": 2}}),
                "status.successful",
                "2",
            ),
            (
                "event source",
                "",
                "Event",
                json!({"source": {"component": "kubelet"}}),
                "source",
                "kubelet",
            ),
            (
                "event source falls back",
                "",
                "Event",
                json!({"reportingComponent": "sextant-scheduler"}),
                "source",
                "sextant-scheduler",
            ),
            (
                "secret type",
                "",
                "Secret",
                json!({"type": "Opaque"}),
                "type",
                "Opaque",
            ),
            (
                "namespace of a cluster object",
                "",
                "Node",
                json!({"metadata": {"name": "n"}}),
                "metadata.namespace",
                "",
            ),
        ];
        for (name, group, kind, object, field, want) in cases {
            let fields = object_fields(group, kind, &object);
            assert_eq!(
                fields.get(field).map(String::as_str),
                Some(want),
                "case {name}"
            );
        }
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let cases = [
            ("lone equals", "="),
            ("multibyte field", "é!=ü"),
            ("nul", "a=\0"),
            ("escape before multibyte", "a=\\é"),
        ];
        for (name, input) in cases {
            // Each either fails to parse or names a field pods do not offer.
            let result = FieldSelector::parse(input).and_then(|s| s.for_kind("", "Pod"));
            assert!(result.is_err(), "case {name}: {result:?}");
        }
    }

    #[test]
    fn exact_match_and_escaping() {
        let selector = FieldSelector::parse("metadata.name=web,status.phase!=Failed")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(selector.requires_exact_match("metadata.name"), Some("web"));
        assert_eq!(selector.requires_exact_match("status.phase"), None);
        let value = r"a,b=c\d";
        let text = format!("reason={}", escape_value(value));
        let parsed = FieldSelector::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.requirements()[0].value, value);
    }
}
