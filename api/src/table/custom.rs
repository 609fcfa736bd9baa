//! Custom resources: columns from a CRD's `additionalPrinterColumns`, after Kubernetes'
//! `apiextensions-apiserver/pkg/registry/customresource/tableconvertor`.
//!
//! Each column names a JSONPath into the object and a type saying how to show what it
//! finds. The JSONPath subset here covers what printer columns use in practice:
//!
//! | expression | finds |
//! |---|---|
//! | `.spec.replicas` | a field (`$` in front and `{…}` around are allowed) |
//! | `.metadata.labels['app.kubernetes.io/name']`, `.a.b\.c` | a key holding dots or slashes |
//! | `.spec.ports[0].port`, `.items[-1]` | an element by index |
//! | `.spec.ports[*].port` | every element |
//! | `.status.conditions[?(@.type=="Ready")].status` | the elements whose field compares true (`==`, `!=`, `<`, `<=`, `>`, `>=`) |
//!
//! A cell shows the first value found, or `null` when there is none (missing keys are not
//! errors, as Kubernetes allows them).

use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::descriptions as d;
use super::{ColumnDefinition, human_duration};

/// The column definitions of a CRD version, after the NAME column every table starts with.
/// An empty list gives the AGE column Kubernetes serves for a CRD that lists no columns.
pub fn custom_columns(custom_columns: &[CustomResourceColumnDefinition]) -> Vec<ColumnDefinition> {
    Compiled::new(custom_columns).columns()
}

/// One object's cells under [`custom_columns`]. Compiling the paths once per list is
/// cheaper; [`super::to_table_with_columns`] does that.
pub fn custom_row(
    custom_columns: &[CustomResourceColumnDefinition],
    obj: &Value,
    now: Timestamp,
) -> Vec<Value> {
    Compiled::new(custom_columns).cells(obj, now)
}

/// Columns with their paths parsed, for one table.
pub(super) struct Compiled {
    columns: Vec<(ColumnDefinition, Option<JsonPath>)>,
}

impl Compiled {
    pub(super) fn new(custom_columns: &[CustomResourceColumnDefinition]) -> Compiled {
        let default_age;
        let custom_columns = if custom_columns.is_empty() {
            default_age = [CustomResourceColumnDefinition {
                name: "Age".to_string(),
                type_: "date".to_string(),
                description: Some(d::CREATION_TIMESTAMP.to_string()),
                json_path: ".metadata.creationTimestamp".to_string(),
                ..Default::default()
            }];
            &default_age[..]
        } else {
            custom_columns
        };
        let columns = custom_columns
            .iter()
            .map(|c| {
                let description = match c.description.as_deref() {
                    Some(text) if !text.is_empty() => text.to_string(),
                    _ => format!(
                        "Custom resource definition column (in JSONPath format): {}",
                        c.json_path
                    ),
                };
                let definition = ColumnDefinition {
                    name: c.name.clone(),
                    type_: c.type_.clone(),
                    format: c.format.clone().unwrap_or_default(),
                    description,
                    priority: c.priority.unwrap_or(0),
                };
                (definition, JsonPath::parse(&c.json_path).ok())
            })
            .collect();
        Compiled { columns }
    }

    pub(super) fn columns(&self) -> Vec<ColumnDefinition> {
        let mut all = vec![ColumnDefinition::new("Name", "string", d::NAME).name_format()];
        all.extend(self.columns.iter().map(|(c, _)| c.clone()));
        all
    }

    pub(super) fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        let mut cells = vec![
            obj.pointer("/metadata/name")
                .cloned()
                .unwrap_or_else(|| json!("")),
        ];
        for (column, path) in &self.columns {
            let found = path.as_ref().and_then(|p| p.find(obj).into_iter().next());
            cells.push(found.map_or(Value::Null, |v| cell_for(&column.type_, v, now)));
        }
        cells
    }
}

/// A found value as a cell of a column of type `type_` (Kubernetes' `cellForJSONValue`,
/// and JSONPath's own printing for `string` columns). A value of the wrong type is `null`.
fn cell_for(type_: &str, value: &Value, now: Timestamp) -> Value {
    match (type_, value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => json!(s),
        ("string", Value::Number(n)) => json!(go_number(n)),
        ("string", Value::Bool(b)) => json!(b.to_string()),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            // Go converts float64 to int64 by truncation.
            None => n.as_f64().map_or(Value::Null, |f| json!(f.trunc() as i64)),
        },
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(t) => json!(human_duration(now.duration_since(t))),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// A JSON number as Go's `fmt.Print` writes a decoded one: integers plainly, floats in
/// their shortest form, with an exponent only when very large or small (`1e+21`, `1e-05`).
fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let magnitude = f.abs();
    if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = exponent
            .strip_prefix('-')
            .map_or(("+", exponent), |d| ("-", d));
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{f}")
}

/// A parsed JSONPath expression, of the subset printer columns use (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Filter {
        path: Vec<Step>,
        op: Op,
        literal: Value,
    },
    Exists(Vec<Step>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Why a JSONPath expression could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPathError {
    /// The expression as given.
    pub expression: String,
    /// What was wrong, and where.
    pub reason: String,
}

impl fmt::Display for JsonPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unrecognized JSONPath {:?}: {}",
            self.expression, self.reason
        )
    }
}

impl std::error::Error for JsonPathError {}

impl JsonPath {
    /// Parses `expression`.
    ///
    /// # Errors
    /// A [`JsonPathError`] for syntax outside the supported subset (recursive descent
    /// `..`, unions, slices, functions).
    pub fn parse(expression: &str) -> Result<JsonPath, JsonPathError> {
        let err = |reason: String| JsonPathError {
            expression: expression.to_string(),
            reason,
        };
        let mut inner = expression.trim();
        if let Some(braced) = inner.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            inner = braced.trim();
        }
        inner = inner.strip_prefix('$').unwrap_or(inner);
        let chars: Vec<char> = inner.chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos, false).map_err(err)?;
        if pos != chars.len() {
            return Err(err(format!("unexpected {:?} at {pos}", chars[pos])));
        }
        Ok(JsonPath { steps })
    }

    /// Every value the path reaches in `obj`, in document order.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        walk(&self.steps, obj)
    }
}

fn walk<'a>(steps: &[Step], obj: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![obj];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Field(name) => next.extend(value.get(name.as_str())),
                Step::Index(i) => {
                    if let Some(list) = value.as_array() {
                        let at = if *i < 0 { list.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(at).ok().and_then(|at| list.get(at)));
                    }
                }
                Step::All => match value {
                    Value::Array(list) => next.extend(list.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter { path, op, literal } => {
                    let candidates: Vec<&Value> = match value {
                        Value::Array(list) => list.iter().collect(),
                        other => vec![other],
                    };
                    next.extend(candidates.into_iter().filter(|c| {
                        walk(path, c)
                            .into_iter()
                            .next()
                            .is_some_and(|found| compare(found, *op, literal))
                    }));
                }
                Step::Exists(path) => {
                    if let Value::Array(list) = value {
                        next.extend(list.iter().filter(|c| !walk(path, c).is_empty()));
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn compare(found: &Value, op: Op, literal: &Value) -> bool {
    if let (Some(a), Some(b)) = (found.as_f64(), literal.as_f64()) {
        return match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        };
    }
    match op {
        Op::Eq => found == literal,
        Op::Ne => found != literal,
        _ => match (found.as_str(), literal.as_str()) {
            (Some(a), Some(b)) => match op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                _ => a >= b,
            },
            _ => false,
        },
    }
}

/// Steps up to the end of input, or (inside a filter) up to an operator or `)`.
fn parse_steps(chars: &[char], pos: &mut usize, in_filter: bool) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while *pos < chars.len() {
        match chars[*pos] {
            '.' => {
                *pos += 1;
                if chars.get(*pos) == Some(&'.') {
                    return Err("recursive descent (..) is not supported".into());
                }
                if chars.get(*pos) == Some(&'*') {
                    *pos += 1;
                    steps.push(Step::All);
                    continue;
                }
                let mut name = String::new();
                while let Some(&c) = chars.get(*pos) {
                    match c {
                        '\\' if chars.get(*pos + 1).is_some() => {
                            name.push(chars[*pos + 1]);
                            *pos += 2;
                        }
                        '.' | '[' => break,
                        ' ' | '=' | '!' | '<' | '>' | ')' if in_filter => break,
                        _ => {
                            name.push(c);
                            *pos += 1;
                        }
                    }
                }
                if name.is_empty() {
                    // A lone `.` (the whole object) adds nothing.
                    if *pos < chars.len() && chars[*pos] != '[' {
                        return Err(format!("empty field name at {pos}"));
                    }
                    continue;
                }
                steps.push(Step::Field(name));
            }
            '[' => {
                *pos += 1;
                steps.push(parse_bracket(chars, pos)?);
            }
            _ if in_filter => break,
            c => return Err(format!("unexpected {c:?} at {pos}")),
        }
    }
    Ok(steps)
}

fn parse_bracket(chars: &[char], pos: &mut usize) -> Result<Step, String> {
    skip_spaces(chars, pos);
    let step = match chars.get(*pos) {
        Some('*') => {
            *pos += 1;
            Step::All
        }
        Some('\'' | '"') => Step::Field(parse_quoted(chars, pos)?),
        Some('?') => {
            *pos += 1;
            expect(chars, pos, '(')?;
            skip_spaces(chars, pos);
            expect(chars, pos, '@')?;
            let path = parse_steps(chars, pos, true)?;
            skip_spaces(chars, pos);
            let op = parse_op(chars, pos);
            let step = match op {
                None => Step::Exists(path),
                Some(op) => {
                    skip_spaces(chars, pos);
                    Step::Filter {
                        path,
                        op,
                        literal: parse_literal(chars, pos)?,
                    }
                }
            };
            skip_spaces(chars, pos);
            expect(chars, pos, ')')?;
            step
        }
        _ => {
            let start = *pos;
            while chars
                .get(*pos)
                .is_some_and(|c| *c == '-' || c.is_ascii_digit())
            {
                *pos += 1;
            }
            let digits: String = chars[start..*pos].iter().collect();
            let index = digits.parse::<i64>().map_err(|_| {
                format!("expected an index, '*', a quoted key or a filter at {start}")
            })?;
            Step::Index(index)
        }
    };
    skip_spaces(chars, pos);
    expect(chars, pos, ']')?;
    Ok(step)
}

fn parse_op(chars: &[char], pos: &mut usize) -> Option<Op> {
    let two: String = chars.iter().skip(*pos).take(2).collect();
    let (op, width) = match two.as_str() {
        "==" => (Op::Eq, 2),
        "!=" => (Op::Ne, 2),
        "<=" => (Op::Le, 2),
        ">=" => (Op::Ge, 2),
        _ => match chars.get(*pos) {
            Some('<') => (Op::Lt, 1),
            Some('>') => (Op::Gt, 1),
            // A single `=` is how some CRDs write equality; JSONPath accepts it.
            Some('=') => (Op::Eq, 1),
            _ => return None,
        },
    };
    *pos += width;
    Some(op)
}

fn parse_literal(chars: &[char], pos: &mut usize) -> Result<Value, String> {
    if matches!(chars.get(*pos), Some('\'' | '"')) {
        return parse_quoted(chars, pos).map(Value::String);
    }
    let start = *pos;
    while chars.get(*pos).is_some_and(|c| !matches!(c, ')' | ' ')) {
        *pos += 1;
    }
    let word: String = chars[start..*pos].iter().collect();
    match word.as_str() {
        "true" => Ok(json!(true)),
        "false" => Ok(json!(false)),
        "nil" | "null" => Ok(Value::Null),
        _ => serde_json::from_str::<serde_json::Number>(&word)
            .map(Value::Number)
            .map_err(|_| format!("expected a quoted string, a number or true/false at {start}")),
    }
}

fn parse_quoted(chars: &[char], pos: &mut usize) -> Result<String, String> {
    let quote = chars[*pos];
    let start = *pos;
    *pos += 1;
    let mut text = String::new();
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            '\\' if chars.get(*pos).is_some() => {
                text.push(chars[*pos]);
                *pos += 1;
            }
            c if c == quote => return Ok(text),
            c => text.push(c),
        }
    }
    Err(format!("unterminated quote from {start}"))
}

fn expect(chars: &[char], pos: &mut usize, wanted: char) -> Result<(), String> {
    if chars.get(*pos) == Some(&wanted) {
        *pos += 1;
        Ok(())
    } else {
        Err(format!("expected {wanted:?} at {pos}"))
    }
}

fn skip_spaces(chars: &[char], pos: &mut usize) {
    while chars.get(*pos) == Some(&' ') {
        *pos += 1;
    }
}
