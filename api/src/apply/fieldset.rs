//! Sets of field paths, and their `FieldsV1` form in `metadata.managedFields`.
//!
//! A set is a tree, as in `sigs.k8s.io/structured-merge-diff/fieldpath`: each node holds
//! the path elements that are *members* (the path ending there is in the set) and the
//! elements that have *children* (something below is in the set). A list item can be both:
//! the applier owns the item itself and some of its fields, which `FieldsV1` writes as
//! `"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}`.
//!
//! Elements are kept in Kubernetes' order (field names, then keys, then values, then
//! indexes), so that [`FieldSet::to_fields_v1_string`] writes the very bytes the Kubernetes
//! API server stores, whatever order `serde_json` keeps object keys in.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::ApplyError;

/// One step of a path into an object.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of an object: `f:replicas`, printed `.replicas`.
    Field(String),
    /// An item of an associative list, by the values of its key fields, sorted by name:
    /// `k:{"name":"web"}`, printed `[name="web"]`.
    Key(Vec<(String, Value)>),
    /// An item of a set of primitives, by its value: `v:"example.com/protect"`, printed
    /// `[="example.com/protect"]`.
    Value(Value),
    /// An item of a list by position: `i:0`, printed `[0]`. Never produced here (lists
    /// without a key are atomic), but read from stored sets written by others.
    Index(usize),
}

impl PathElement {
    /// The key of this element in a `FieldsV1` object.
    pub fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{}:{}", Value::from(name.as_str()), value))
                    .collect();
                format!("k:{{{}}}", inner.join(","))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Reads one key of a `FieldsV1` object (anything but `"."`).
    pub fn from_fields_v1_key(key: &str) -> Result<PathElement, ApplyError> {
        let bad = |why: &str| ApplyError::InvalidFieldsV1 {
            reason: format!("{key:?}: {why}"),
        };
        let (prefix, rest) = key
            .split_once(':')
            .ok_or_else(|| bad("a key must start with f:, k:, v: or i:"))?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(map)) if !map.is_empty() => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(PathElement::Key(fields))
                }
                _ => Err(bad("k: must be followed by a non-empty JSON object")),
            },
            "v" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|_| bad("v: must be followed by a JSON value")),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|_| bad("i: must be followed by a list index")),
            _ => Err(bad("a key must start with f:, k:, v: or i:")),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

/// Kubernetes prints paths in conflict messages and `StatusCause.field` this way.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", print_value(value)))
                    .collect();
                write!(f, "[{}]", inner.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", print_value(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// `value.ToString` of structured-merge-diff: strings quoted, lists and maps spelled out.
fn print_value(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(print_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", print_value(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Kubernetes' order, which decides the order of keys in stored `FieldsV1`.
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    let c = an.cmp(bn).then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// A total order on JSON values: numbers by magnitude (so `80` sorts before `8080`).
fn compare_values(a: &Value, b: &Value) -> Ordering {
    use crate::patch::kind_rank as rank;
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| compare_values(x, y))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A path from the top of an object, printed as Kubernetes prints it: `.spec.replicas`,
/// `.spec.template.spec.containers[name="web"].image`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "{e}"))
    }
}

/// A set of field paths: what one manager owns, or what an object sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether nothing is in the set.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds one path; the empty path is ignored (the object itself is never owned).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether exactly this path is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Whether this path, or any path below it, is in the set: whether removing the
    /// value at `path` would take away something the set's owner set.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => {
                self.members.contains(last)
                    || self.children.get(last).is_some_and(|c| !c.is_empty())
            }
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.covers(rest)),
        }
    }

    /// Every path in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            let merged = match out.children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(element.clone(), merged);
        }
        out
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(element.clone(), rest);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(element.clone(), both);
                }
            }
        }
        out
    }

    /// The paths with nothing below them: the values themselves, without the list items
    /// that merely hold them. Conflicts are about values, so they are found among these.
    pub fn leaves(&self) -> FieldSet {
        let mut out = FieldSet::new();
        for member in &self.members {
            if self.children.get(member).is_none_or(FieldSet::is_empty) {
                out.members.insert(member.clone());
            }
        }
        for (element, child) in &self.children {
            let leaves = child.leaves();
            if !leaves.is_empty() {
                out.children.insert(element.clone(), leaves);
            }
        }
        out
    }

    /// Every path in the set, in Kubernetes' order (a list item before the fields in it).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for element in self.elements() {
            prefix.push(element.clone());
            if self.members.contains(element) {
                out.push(Path(prefix.clone()));
            }
            if let Some(child) = self.children.get(element) {
                child.collect_paths(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The members and the elements with children, merged in order, each once.
    fn elements(&self) -> impl Iterator<Item = &PathElement> {
        let mut all: Vec<&PathElement> = self.members.iter().collect();
        all.extend(
            self.children
                .iter()
                .filter(|(e, c)| !c.is_empty() && !self.members.contains(*e))
                .map(|(e, _)| e),
        );
        all.sort();
        all.into_iter()
    }

    /// Reads `metadata.managedFields[].fieldsV1`.
    ///
    /// # Errors
    /// [`ApplyError::InvalidFieldsV1`] when it is not an object of objects, or a key is not
    /// one of `f:`, `k:`, `v:`, `i:` and `.`.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, ApplyError> {
        let Value::Object(map) = value else {
            return Err(ApplyError::InvalidFieldsV1 {
                reason: "fieldsV1 must be a JSON object".to_string(),
            });
        };
        let mut out = FieldSet::new();
        for (key, child) in map {
            if key == "." {
                // The "." belongs to the parent, which has already recorded it.
                continue;
            }
            let element = PathElement::from_fields_v1_key(key)?;
            let Value::Object(inner) = child else {
                return Err(ApplyError::InvalidFieldsV1 {
                    reason: format!("{key:?}: the value must be a JSON object"),
                });
            };
            if inner.is_empty() || inner.contains_key(".") {
                out.members.insert(element.clone());
            }
            let below = FieldSet::from_fields_v1(child)?;
            if !below.is_empty() {
                out.children.insert(element, below);
            }
        }
        Ok(out)
    }

    /// The `fieldsV1` value stored in `metadata.managedFields`.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for element in self.elements() {
            let mut inner = match self.children.get(element) {
                Some(child) => match child.to_fields_v1() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if self.members.contains(element) && !inner.is_empty() {
                inner.insert(".".to_string(), Value::Object(Map::new()));
            }
            map.insert(element.to_fields_v1_key(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// `fieldsV1` as the exact JSON text Kubernetes writes: keys in Kubernetes' order and
    /// `"."` first, which a `serde_json::Map` may not keep.
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        for element in self.elements() {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&Value::from(element.to_fields_v1_key()).to_string());
            out.push(':');
            match self.children.get(element).filter(|c| !c.is_empty()) {
                Some(child) if self.members.contains(element) => {
                    let inner = child.to_fields_v1_string();
                    out.push_str("{\".\":{},");
                    out.push_str(&inner[1..]);
                }
                Some(child) => out.push_str(&child.to_fields_v1_string()),
                None => out.push_str("{}"),
            }
        }
        out.push('}');
        out
    }
}
