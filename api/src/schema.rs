//! Custom resources checked against their CRD's structural schema (`openAPIV3Schema`), as
//! the Kubernetes API server checks them: wrong types, missing required fields and values
//! outside an enum are refused with field paths, and fields the schema does not declare are
//! pruned (reported, so `fieldValidation=Strict` can refuse them instead).
//!
//! Worked example: with `spec: {type: object, properties: {replicas: {type: integer}}}`,
//! the object `{"spec": {"replicas": "3", "colour": "red"}}` gives the error
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
//! "string"` and reports `spec.colour` as unknown (it is pruned when not refused).
//!
//! `apiVersion`, `kind` and `metadata` are the server's to check, as in Kubernetes: the schema
//! is applied to everything else. `x-kubernetes-preserve-unknown-fields` keeps undeclared
//! fields below it; `x-kubernetes-int-or-string` accepts either.

use serde_json::{Map, Value};

use crate::validation::FieldError;

/// What checking an object found.
#[derive(Debug, Default)]
pub struct Checked {
    pub errors: Vec<FieldError>,
    /// Fields pruned because the schema does not declare them, as dotted paths.
    pub unknown: Vec<String>,
}

/// Checks `obj` against `schema`, pruning undeclared fields in place.
pub fn check(schema: &Value, obj: &mut Value) -> Checked {
    let mut out = Checked::default();
    if let (Some(props), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object_mut(),
    ) {
        for (k, v) in map.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.get(k) {
                Some(s) => walk(s, v, k, &mut out),
                None if preserves(schema) => {}
                None => out.unknown.push(k.clone()),
            }
        }
        if !preserves(schema) {
            map.retain(|k, _| {
                matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.contains_key(k)
            });
        }
        required(schema, map, "", &mut out);
    }
    out
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Checked) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) {
            let field = if path.is_empty() {
                r.to_owned()
            } else {
                format!("{path}.{r}")
            };
            out.errors.push(FieldError::required(&field, ""));
        }
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Checked) {
    if v.is_null()
        && schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let want = schema.get("type").and_then(Value::as_str);
    let got = type_name(v);
    let type_ok = match want {
        _ if int_or_string => matches!(got, "integer" | "string"),
        None => true,
        Some("number") => matches!(got, "number" | "integer"),
        Some(w) => w == got,
    };
    if !type_ok {
        let want = if int_or_string {
            "integer or string"
        } else {
            want.unwrap_or("")
        };
        out.errors.push(FieldError::invalid(
            path,
            got,
            &format!("{path} in body must be of type {want}: \"{got}\""),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.errors.push(FieldError::not_supported(
            path,
            &v.to_string(),
            &list.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map.iter_mut() {
                let child_path = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) | (None, Some(s)) => walk(s, child, &child_path, out),
                    (None, None)
                        if preserves(schema) || props.is_none() && schema.get("type").is_none() => {
                    }
                    (None, None) => out.unknown.push(child_path),
                }
            }
            if additional.is_none()
                && !preserves(schema)
                && let Some(props) = props
            {
                map.retain(|k, _| props.contains_key(k));
            }
            required(schema, map, path, out);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["image"], "properties": {
                "replicas": {"type": "integer"},
                "image": {"type": "string"},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "port": {"x-kubernetes-int-or-string": true},
                "env": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }})
    }

    #[test]
    fn the_worked_example_and_friends() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"replicas": "3", "image": "i", "colour": "red", "mode": "medium", "port": "http",
                     "env": [{"name": "A", "value": "dropped"}], "extra": {"anything": 1}, "labels": {"a": 1}},
            "top": 1});
        let c = check(&schema(), &mut obj);
        let messages: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("spec.replicas in body must be of type integer: \"string\"")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("spec.mode")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("spec.labels.a")),
            "{messages:?}"
        );
        assert_eq!(c.unknown, vec!["spec.colour", "spec.env[0].value", "top"]);
        assert!(obj.get("top").is_none() && obj["spec"].get("colour").is_none());
        assert_eq!(obj["spec"]["extra"], json!({"anything": 1}), "preserved");
        assert_eq!(obj["metadata"]["name"], "n", "metadata is the server's");
    }

    #[test]
    fn required_fields() {
        let mut obj = json!({"spec": {"replicas": 1}});
        let c = check(&schema(), &mut obj);
        assert_eq!(c.errors.len(), 1);
        assert!(
            c.errors[0].to_string().contains("spec.image"),
            "{}",
            c.errors[0]
        );
        let mut ok = json!({"spec": {"image": "x", "port": 80}});
        assert!(check(&schema(), &mut ok).errors.is_empty());
    }
}
