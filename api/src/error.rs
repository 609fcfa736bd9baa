//! The crate's one error type, and the Kubernetes `Status` each variant becomes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

use crate::validation::{FieldError, aggregate_message};

/// What went wrong with a client's input. Every variant is the client's to fix: retrying
/// the same request fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A label selector did not parse or holds an invalid key or value. `input` is the
    /// selector text, or the part of a `LabelSelector` object at fault
    /// (`matchExpressions[0]`); `reason` says, in Kubernetes' words, what was found and
    /// what was expected.
    #[error("invalid label selector \"{input}\": {reason}")]
    InvalidLabelSelector {
        /// The selector text, or where in a `LabelSelector` the problem is.
        input: String,
        /// What is wrong, and what would be right.
        reason: String,
    },

    /// A field selector did not parse.
    #[error("invalid field selector \"{input}\": {reason}")]
    InvalidFieldSelector {
        /// The selector text.
        input: String,
        /// What is wrong, and what would be right.
        reason: String,
    },

    /// A field selector names a field its kind cannot be selected by.
    #[error("field label not supported: {field} ({kind} objects can be selected by {})", supported.join(", "))]
    UnsupportedField {
        /// The kind being listed or watched (`Pod`).
        kind: String,
        /// The field asked for.
        field: String,
        /// The fields the kind does offer.
        supported: Vec<&'static str>,
    },

    /// An object failed validation; `errors` says which fields and why. Printed as
    /// Kubernetes prints it: `Pod "Foo" is invalid: metadata.name: Invalid value: …`.
    #[error(
        "{} {name:?} is invalid: {}",
        qualified_kind(group, kind),
        aggregate_message(errors)
    )]
    Invalid {
        /// The object's API group (`""` for core).
        group: String,
        /// The object's kind.
        kind: String,
        /// The object's name, as submitted (may be empty).
        name: String,
        /// Each problem, in the order found.
        errors: Vec<FieldError>,
    },
}

/// `Kind.group`, or `Kind` for the core group: how Kubernetes names a kind in messages.
fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

impl Error {
    /// `Ok(())` when `errors` is empty, else [`Error::Invalid`] for the object named: the
    /// last step of validating an object.
    pub fn check_invalid(
        group: &str,
        kind: &str,
        name: &str,
        errors: Vec<FieldError>,
    ) -> Result<(), Error> {
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            errors,
        })
    }

    /// The HTTP status code Kubernetes answers with: 422 for an invalid object, 400 for a
    /// bad selector.
    pub fn code(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 422,
            Error::InvalidLabelSelector { .. }
            | Error::InvalidFieldSelector { .. }
            | Error::UnsupportedField { .. } => 400,
        }
    }

    /// The Kubernetes `Status` body for this error, with `details.causes` for an invalid
    /// object, so that kubectl prints each field's problem.
    pub fn to_status(&self) -> Status {
        let (reason, details) = match self {
            Error::Invalid {
                group,
                kind,
                name,
                errors,
            } => (
                "Invalid",
                Some(StatusDetails {
                    group: (!group.is_empty()).then(|| group.clone()),
                    kind: Some(kind.clone()),
                    name: Some(name.clone()),
                    causes: Some(errors.iter().map(FieldError::to_cause).collect()),
                    ..Default::default()
                }),
            ),
            _ => ("BadRequest", None),
        };
        Status {
            code: Some(i32::from(self.code())),
            details,
            message: Some(self.to_string()),
            reason: Some(reason.to_string()),
            status: Some("Failure".to_string()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_objects_become_422_with_causes() {
        let errors = vec![
            FieldError::invalid("metadata.name", "Foo", "bad"),
            FieldError::required("metadata.namespace", ""),
        ];
        let cases = [
            (
                "core kind",
                "",
                "Pod",
                "Pod \"Foo\" is invalid: [metadata.name: Invalid value: \"Foo\": bad, metadata.namespace: Required value]",
            ),
            (
                "grouped kind",
                "apps",
                "Deployment",
                "Deployment.apps \"Foo\" is invalid: [metadata.name: Invalid value: \"Foo\": bad, metadata.namespace: Required value]",
            ),
        ];
        for (name, group, kind, want) in cases {
            let error = Error::check_invalid(group, kind, "Foo", errors.clone()).unwrap_err();
            assert_eq!(error.to_string(), want, "case {name}");
            let status = error.to_status();
            assert_eq!(status.code, Some(422), "case {name}");
            assert_eq!(status.reason.as_deref(), Some("Invalid"), "case {name}");
            let details = status.details.unwrap_or_default();
            assert_eq!(
                details.group.as_deref(),
                (!group.is_empty()).then_some(group),
                "case {name}"
            );
            let causes = details.causes.unwrap_or_default();
            assert_eq!(causes.len(), 2, "case {name}");
            assert_eq!(
                causes[1].reason.as_deref(),
                Some("FieldValueRequired"),
                "case {name}"
            );
        }
        assert_eq!(Error::check_invalid("", "Pod", "a", Vec::new()), Ok(()));
    }

    #[test]
    fn bad_selectors_become_400() {
        let cases = [
            (
                "label",
                Error::InvalidLabelSelector {
                    input: "a in".into(),
                    reason: "r".into(),
                },
            ),
            (
                "field",
                Error::InvalidFieldSelector {
                    input: "a".into(),
                    reason: "r".into(),
                },
            ),
            (
                "unsupported",
                Error::UnsupportedField {
                    kind: "Pod".into(),
                    field: "x".into(),
                    supported: vec!["metadata.name"],
                },
            ),
        ];
        for (name, error) in cases {
            let status = error.to_status();
            assert_eq!(status.code, Some(400), "case {name}");
            assert_eq!(status.reason.as_deref(), Some("BadRequest"), "case {name}");
            assert_eq!(status.message, Some(error.to_string()), "case {name}");
            assert!(status.details.is_none(), "case {name}");
        }
    }
}
