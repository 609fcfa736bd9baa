//! Label selectors, parsed and matched as Kubernetes does
//! (`k8s.io/apimachinery/pkg/labels/selector.go`).
//!
//! A selector arrives two ways, and both end as the same [`Selector`]:
//! - as text, in `?labelSelector=` or `kubectl -l`: [`Selector::parse`] (or `str::parse`);
//! - as a `LabelSelector` object in a spec (a ReplicaSet's `selector`):
//!   [`Selector::from_label_selector`].
//!
//! # Grammar
//! ```text
//! selector    ::= requirement ("," requirement)*      (empty text selects everything)
//! requirement ::= "!" KEY                              (KEY absent)
//!               | KEY                                  (KEY present)
//!               | KEY ("=" | "==" | "!=") [VALUE]      (absent VALUE means "")
//!               | KEY ("in" | "notin") "(" [VALUE ("," [VALUE])*] ")"
//!               | KEY (">" | "<") INTEGER
//! ```
//! Whitespace between tokens is ignored. KEY is a qualified name, VALUE a label value
//! (see [`crate::validation`]). `in` and `notin` are words only where an operator may
//! stand, so `in in (in)` is a valid selector.
//!
//! # Worked examples
//! ```
//! use std::collections::BTreeMap;
//! use sextant_api::labels::Selector;
//!
//! let pod = BTreeMap::from([("app".to_string(), "web".to_string()), ("tier".to_string(), "fe".to_string())]);
//! let matches = |s: &str| s.parse::<Selector>().map(|selector| selector.matches(&pod));
//! assert!(matches("app=web")?);
//! assert!(matches("app in (web,api),!canary")?);
//! assert!(matches("env notin (prod)")?);   // an absent label is "not in" any set
//! assert!(!matches("env")?);                // ... but does not exist
//! assert!(matches("")?);                    // empty selects everything
//! assert_eq!(matches("app in (web").map_err(|e| e.to_string()),
//!     Err("invalid label selector \"app in (web\": unable to parse requirement: found '', expected: ',' or ')'".into()));
//! # Ok::<(), sextant_api::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::Error;
use crate::validation::{go_quote, validate_label_value, validate_qualified_name};

/// How a [`Requirement`] relates a label to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`: present, with this value.
    Equals,
    /// `key==value`: the same as [`Operator::Equals`], kept apart to print back as written.
    DoubleEquals,
    /// `key!=value`: absent, or present with another value.
    NotEquals,
    /// `key in (a,b)`: present, with one of the values.
    In,
    /// `key notin (a,b)`: absent, or present with none of the values.
    NotIn,
    /// `key`: present, with any value.
    Exists,
    /// `!key`: absent.
    DoesNotExist,
    /// `key>3`: present, and an integer greater than the value.
    GreaterThan,
    /// `key<3`: present, and an integer less than the value.
    LessThan,
}

/// One condition on one label; a [`Selector`] holds all that must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without repeats, so equal requirements compare and print equal.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement after Kubernetes' checks (`labels.NewRequirement`): the key is a
    /// qualified name, each value a label value, and the number of values fits the operator.
    /// The error is the problem, in Kubernetes' words, to be wrapped by the caller.
    fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
        let mut problems = Vec::new();
        let key_problems = validate_qualified_name(key);
        if !key_problems.is_empty() {
            problems.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(key),
                key_problems.join("; ")
            ));
        }
        let count_problem = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(problem) = count_problem {
            problems.push(format!(
                "values: Invalid value: {}: {problem}",
                render_list(&values)
            ));
        }
        for (i, value) in values.iter().enumerate() {
            if matches!(operator, Operator::GreaterThan | Operator::LessThan)
                && value.parse::<i64>().is_err()
            {
                problems.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(value)
                ));
            }
            let value_problems = validate_label_value(value);
            if !value_problems.is_empty() {
                problems.push(format!(
                    "values[{i}]: Invalid value: {}: {}",
                    go_quote(value),
                    value_problems.join("; ")
                ));
            }
        }
        match problems.as_slice() {
            [] => {
                let mut values = values;
                values.sort();
                values.dedup();
                Ok(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                })
            }
            [one] => Err(one.clone()),
            _ => Err(format!("[{}]", problems.join(", "))),
        }
    }

    /// The label the requirement is about.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label must relate to [`Requirement::values`].
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted; empty for [`Operator::Exists`] and [`Operator::DoesNotExist`].
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether `labels` meet this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                // A label that is no integer matches neither, as in Kubernetes.
                let (Some(Ok(actual)), [bound]) =
                    (value.map(|v| v.parse::<i64>()), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

/// Renders a value list as Go's `%v` would in Kubernetes' messages: `[a b]`.
fn render_list(values: &[String]) -> String {
    format!("[{}]", values.join(" "))
}

impl fmt::Display for Requirement {
    /// Kubernetes' canonical text: `a=b`, `a!=b`, `a in (x,y)`, `!a`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={values}", self.key),
            Operator::NotEquals => write!(f, "{}!={values}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{values}", self.key),
            Operator::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

/// A parsed label selector: all its requirements must hold.
///
/// Two selectors select without requirements, and they differ: [`Selector::everything`]
/// (empty text, or an empty `LabelSelector`) selects every object, while
/// [`Selector::nothing`] (an absent `LabelSelector`, as on a ReplicaSet without one) selects
/// none. Controllers depend on that difference to avoid adopting every pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    /// Sorted by key, so a selector prints the same however it was written.
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// The selector that selects every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// The selector that selects no object.
    pub fn nothing() -> Selector {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Whether the selector restricts nothing (Kubernetes' `Empty()`).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether the selector is [`Selector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The value `key` must have, when the selector pins it to exactly one (`key=v`,
    /// `key==v`, `key in (v)`): lets a caller look objects up by that label instead of
    /// scanning all.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == key)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }

    /// A selector requiring every label of `labels`, without checking them (Kubernetes'
    /// `SelectorFromSet`): for labels taken from stored, hence valid, objects.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Selector {
        let requirements = labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Parses the text form (`?labelSelector=`), with Kubernetes' rules and error wording.
    ///
    /// # Errors
    /// [`Error::InvalidLabelSelector`] saying what was found and what was expected instead.
    pub fn parse(text: &str) -> Result<Selector, Error> {
        let tokens = lex(text);
        let mut parser = Parser {
            tokens,
            position: 0,
        };
        let mut requirements = parser
            .parse()
            .map_err(|reason| Error::InvalidLabelSelector {
                input: text.to_string(),
                reason,
            })?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `LabelSelector` from an object's spec (Kubernetes'
    /// `LabelSelectorAsSelector`): `matchLabels` become `=` requirements and
    /// `matchExpressions` take `In`, `NotIn`, `Exists` or `DoesNotExist`. An empty
    /// `LabelSelector` selects everything; use [`Selector::from_optional_label_selector`]
    /// where an absent one must select nothing.
    ///
    /// # Errors
    /// [`Error::InvalidLabelSelector`] naming the bad part (`matchLabels`,
    /// `matchExpressions[i]`) and why.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Selector, Error> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            let requirement = Requirement::new(key, Operator::Equals, vec![value.clone()])
                .map_err(|reason| Error::InvalidLabelSelector {
                    input: format!("matchLabels[{key}]"),
                    reason,
                })?;
            requirements.push(requirement);
        }
        for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let input = format!("matchExpressions[{i}]");
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(Error::InvalidLabelSelector {
                        input,
                        reason: format!(
                            "{} is not a valid label selector operator; use In, NotIn, Exists or DoesNotExist",
                            go_quote(other)
                        ),
                    });
                }
            };
            let values = expression.values.clone().unwrap_or_default();
            let requirement = Requirement::new(&expression.key, operator, values)
                .map_err(|reason| Error::InvalidLabelSelector { input, reason })?;
            requirements.push(requirement);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Like [`Selector::from_label_selector`], with an absent selector selecting nothing.
    pub fn from_optional_label_selector(
        selector: Option<&LabelSelector>,
    ) -> Result<Selector, Error> {
        selector.map_or_else(|| Ok(Selector::nothing()), Selector::from_label_selector)
    }
}

impl FromStr for Selector {
    type Err = Error;

    fn from_str(text: &str) -> Result<Selector, Error> {
        Selector::parse(text)
    }
}

impl fmt::Display for Selector {
    /// Kubernetes' canonical text: requirements sorted by key, joined by commas. Both
    /// [`Selector::everything`] and [`Selector::nothing`] print as empty text.
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

/// What the lexer sees. `In` and `NotIn` are identifiers wherever a value may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    OpenParen,
    CloseParen,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    Identifier,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits the text into tokens, ending with [`Token::End`]. Every character belongs to some
/// token, so lexing cannot fail; the parser reports what does not fit.
fn lex(text: &str) -> Vec<(Token, &str)> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_whitespace);
        let Some(first) = rest.chars().next() else {
            tokens.push((Token::End, ""));
            return tokens;
        };
        let (token, length) = if is_special(first) {
            // Operators are at most two characters; take the longest that is one.
            match rest.get(..2) {
                Some("==") => (Token::DoubleEquals, 2),
                Some("!=") => (Token::NotEquals, 2),
                _ => {
                    let token = match first {
                        '=' => Token::Equals,
                        '!' => Token::Not,
                        '(' => Token::OpenParen,
                        ')' => Token::CloseParen,
                        ',' => Token::Comma,
                        '>' => Token::GreaterThan,
                        _ => Token::LessThan,
                    };
                    (token, 1)
                }
            }
        } else {
            let length = rest
                .find(|c| is_special(c) || is_whitespace(c))
                .unwrap_or(rest.len());
            let token = match &rest[..length] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            (token, length)
        };
        tokens.push((token, &rest[..length]));
        rest = &rest[length..];
    }
}

/// Where the parser stands: reading a key and operator, or values (where `in` and `notin`
/// are plain words).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// A recursive-descent parser over the tokens, with Kubernetes' error messages.
struct Parser<'a> {
    tokens: Vec<(Token, &'a str)>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        // The last token is always End; reading past it keeps returning End.
        let (token, literal) = self
            .tokens
            .get(self.position)
            .or_else(|| self.tokens.last())
            .copied()
            .unwrap_or((Token::End, ""));
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::Not => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::Not {
                                return Err(format!(
                                    "found '{literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = unary {
            return Requirement::new(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values)
    }

    /// Reads `[!]KEY`; returns the operator too when no other follows (`KEY` is Exists,
    /// `!KEY` is DoesNotExist).
    fn parse_key_and_infer_operator(&mut self) -> Result<(&'a str, Option<Operator>), String> {
        let (mut token, mut literal) = self.consume(Context::Values);
        let negated = token == Token::Not;
        if negated {
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let key_problems = validate_qualified_name(literal);
        if !key_problems.is_empty() {
            return Err(format!(
                "key: Invalid value: {}: {}",
                go_quote(literal),
                key_problems.join("; ")
            ));
        }
        if negated {
            return Ok((literal, Some(Operator::DoesNotExist)));
        }
        match self.lookahead(Context::Values).0 {
            Token::End | Token::Comma => Ok((literal, Some(Operator::Exists))),
            _ => Ok((literal, None)),
        }
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    /// Reads `(v1,v2,…)`. Empty places are empty values: `()` and `(a,)` both hold `""`.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenParen {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifier_list()?;
                let (token, literal) = self.consume(Context::Values);
                if token != Token::CloseParen {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::CloseParen => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    /// Reads comma-separated, possibly empty, values up to (not including) `)`.
    fn parse_identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal.to_string());
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::CloseParen => return Ok(values),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new()); // "(,"
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::CloseParen => {
                            values.push(String::new()); // ",)"
                            return Ok(values);
                        }
                        Token::Comma => values.push(String::new()), // ",,"
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// Reads the value after `=`, `==`, `!=`, `>` or `<`; none at all means `""`.
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(Context::Values).0, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal.to_string()])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_to_canonical_text() {
        let cases = [
            ("empty", "", ""),
            ("blank", "  \t", ""),
            ("equals", "a=b", "a=b"),
            ("double equals", "a==b", "a==b"),
            ("not equals", "a!=b", "a!=b"),
            ("empty value", "a=", "a="),
            ("empty value before comma", "a=,b", "a=,b"),
            ("exists", "a", "a"),
            ("does not exist", "!a", "!a"),
            ("in, sorted and deduplicated", "a in (z,x,z)", "a in (x,z)"),
            ("notin", "a notin (x)", "a notin (x)"),
            ("sorted by key", "z=1,a=2", "a=2,z=1"),
            ("whitespace", " a = b , c in ( x , y ) ", "a=b,c in (x,y)"),
            ("empty set", "a in ()", "a in ()"),
            ("leading empty value", "a in (,b)", "a in (,b)"),
            ("trailing empty value", "a in (b,)", "a in (,b)"),
            ("keywords as values", "a in (in,notin)", "a in (in,notin)"),
            ("keyword as key", "in in (in)", "in in (in)"),
            ("keyword as exact value", "a=in", "a=in"),
            (
                "prefixed key",
                "sextant.dev/wasm=true",
                "sextant.dev/wasm=true",
            ),
            ("greater than", "a>1", "a>1"),
            ("less than", "a<5", "a<5"),
            (
                "kubernetes doc example",
                "x in (foo,,baz),y,z notin ()",
                "x in (,baz,foo),y,z notin ()",
            ),
        ];
        for (name, input, want) in cases {
            let selector = Selector::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(selector.to_string(), want, "case {name}");
        }
    }

    #[test]
    fn reports_parse_errors_in_kubernetes_words() {
        let cases = [
            (
                "missing paren",
                "a in x",
                "unable to parse requirement: found 'x' expected: '('",
            ),
            (
                "unclosed set",
                "a in (x",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "trailing comma",
                "a=b,",
                "found '', expected: identifier after ','",
            ),
            (
                "two values",
                "a=b c",
                "found 'c', expected: ',' or 'end of string'",
            ),
            (
                "starts with operator",
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "bang alone",
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "not with value",
                "!a=b",
                "found '=', expected: ',' or 'end of string'",
            ),
            (
                "bad operator",
                "a (x)",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "operator as value",
                "a==!",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "bad key",
                "a/b/c=d",
                "unable to parse requirement: key: Invalid value: \"a/b/c\": a qualified name must consist",
            ),
            (
                "bad value",
                "a=-b",
                "unable to parse requirement: values[0]: Invalid value: \"-b\": a valid label must be",
            ),
            (
                "non-integer bound",
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "set after equals",
                "a=(b)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
        ];
        for (name, input, want) in cases {
            match Selector::parse(input) {
                Ok(s) => panic!("case {name}: parsed as {s}"),
                Err(Error::InvalidLabelSelector {
                    input: got_input,
                    reason,
                }) => {
                    assert_eq!(got_input, input, "case {name}");
                    assert!(reason.starts_with(want), "case {name}: got {reason:?}");
                }
                Err(other) => panic!("case {name}: wrong error {other:?}"),
            }
        }
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let cases = [
            ("multibyte key", "é=1"),
            ("multibyte after bang", "!é"),
            ("multibyte operator neighbour", "a=é"),
            ("nul", "a=\0b"),
            ("only punctuation", ")(,=!<>"),
            ("unclosed after comma", "a in (b,"),
            ("deep nesting", "a in ((((b))))"),
        ];
        for (name, input) in cases {
            assert!(Selector::parse(input).is_err(), "case {name}");
        }
    }

    #[test]
    fn matches_labels() {
        let pod = labels(&[
            ("app", "web"),
            ("tier", "frontend"),
            ("replicas", "3"),
            ("empty", ""),
        ]);
        let cases = [
            ("equals", "app=web", true),
            ("equals other", "app=api", false),
            ("double equals", "app==web", true),
            ("not equals", "app!=api", true),
            ("not equals same", "app!=web", false),
            ("not equals absent", "env!=prod", true),
            ("in", "tier in (backend,frontend)", true),
            ("in absent", "env in (prod)", false),
            ("notin", "tier notin (backend)", true),
            ("notin absent", "env notin (prod)", true),
            ("notin present", "tier notin (frontend)", false),
            ("exists", "app", true),
            ("exists absent", "env", false),
            ("does not exist", "!env", true),
            ("does not exist present", "!app", false),
            ("all must hold", "app=web,tier=backend", false),
            ("empty value matches empty label", "empty=", true),
            ("empty value does not match absence", "missing=", false),
            ("empty set matches empty label", "empty in ()", true),
            ("greater than", "replicas>2", true),
            ("greater than equal", "replicas>3", false),
            ("less than", "replicas<4", true),
            ("greater than on non-integer", "app>1", false),
            ("everything", "", true),
        ];
        for (name, input, want) in cases {
            let selector = Selector::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(selector.matches(&pod), want, "case {name}");
        }
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| v.to_string()).collect())
            },
        }
    }

    #[test]
    fn converts_label_selector_objects() {
        let cases: Vec<(&str, LabelSelector, Result<&str, &str>)> = vec![
            ("empty selects everything", LabelSelector::default(), Ok("")),
            (
                "match labels",
                LabelSelector {
                    match_labels: Some(labels(&[("b", "2"), ("a", "1")])),
                    ..Default::default()
                },
                Ok("a=1,b=2"),
            ),
            (
                "all four operators",
                LabelSelector {
                    match_expressions: Some(vec![
                        expression("a", "In", &["x", "y"]),
                        expression("b", "NotIn", &["z"]),
                        expression("c", "Exists", &[]),
                        expression("d", "DoesNotExist", &[]),
                    ]),
                    ..Default::default()
                },
                Ok("a in (x,y),b notin (z),c,!d"),
            ),
            (
                "unknown operator",
                LabelSelector {
                    match_expressions: Some(vec![expression("a", "Gt", &["1"])]),
                    ..Default::default()
                },
                Err(
                    "invalid label selector \"matchExpressions[0]\": \"Gt\" is not a valid label selector operator; use In, NotIn, Exists or DoesNotExist",
                ),
            ),
            (
                "in without values",
                LabelSelector {
                    match_expressions: Some(vec![expression("a", "In", &[])]),
                    ..Default::default()
                },
                Err(
                    "invalid label selector \"matchExpressions[0]\": values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
                ),
            ),
            (
                "exists with values",
                LabelSelector {
                    match_expressions: Some(vec![expression("a", "Exists", &["x"])]),
                    ..Default::default()
                },
                Err(
                    "invalid label selector \"matchExpressions[0]\": values: Invalid value: [x]: values set must be empty for exists and does not exist",
                ),
            ),
            (
                "bad match label value",
                LabelSelector {
                    match_labels: Some(labels(&[("a", "b c")])),
                    ..Default::default()
                },
                Err(
                    "invalid label selector \"matchLabels[a]\": values[0]: Invalid value: \"b c\": a valid label must be",
                ),
            ),
        ];
        for (name, input, want) in cases {
            match (Selector::from_label_selector(&input), want) {
                (Ok(selector), Ok(text)) => assert_eq!(selector.to_string(), text, "case {name}"),
                (Err(error), Err(message)) => {
                    assert!(
                        error.to_string().starts_with(message),
                        "case {name}: got {error}"
                    )
                }
                (got, want) => panic!("case {name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn absent_selector_selects_nothing() {
        let all = labels(&[("a", "1")]);
        let nothing =
            Selector::from_optional_label_selector(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(nothing.is_nothing() && !nothing.is_everything());
        assert!(!nothing.matches(&all));
        let everything = Selector::from_optional_label_selector(Some(&LabelSelector::default()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(everything.is_everything());
        assert!(everything.matches(&all));
    }

    #[test]
    fn exact_matches_and_sets() {
        let cases = [
            ("equals", "a=1,b=2", "a", Some("1")),
            ("single-value in", "a in (x)", "a", Some("x")),
            ("multi-value in", "a in (x,y)", "a", None),
            ("not equals", "a!=1", "a", None),
            ("other key", "b=2", "a", None),
        ];
        for (name, input, key, want) in cases {
            let selector = Selector::parse(input).unwrap_or_else(|e| panic!("case {name}: {e}"));
            assert_eq!(selector.requires_exact_match(key), want, "case {name}");
        }
        let set = labels(&[("app", "web"), ("tier", "fe")]);
        let selector = Selector::from_labels(&set);
        assert_eq!(selector.to_string(), "app=web,tier=fe");
        assert!(selector.matches(&set));
        assert!(!selector.matches(&labels(&[("app", "web")])));
    }
}
