//! What a request addresses, read from its path and query, as Kubernetes' RequestInfo does.
//!
//! Paths under `/api/v1/` and `/apis/GROUP/VERSION/`:
//! `PLURAL`, `PLURAL/NAME`, `PLURAL/NAME/SUB`, and the same under `namespaces/NS/`.
//! `namespaces/NAME/status` addresses a namespace's status, not a resource called `status`.

use serde::Deserialize;
use sextant_api::resources::ResourceInfo;

use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

#[derive(Clone, Debug)]
pub struct Target {
    pub resource: ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// The store key of the addressed object.
    pub fn key(&self) -> ApiResult<String> {
        let name = self
            .name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("a name is required"))?;
        Ok(object_key(&self.resource, self.namespace.as_deref(), name))
    }

    /// A store error about the addressed object, as the API reports it (404, 409, …).
    pub fn store_error(&self, e: sextant_store::StoreError) -> ApiError {
        let r = &self.resource;
        ApiError::from_store(e, &r.group, &r.plural, self.name.as_deref().unwrap_or(""))
    }

    /// The store prefix of the addressed collection.
    pub fn collection_prefix(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}{ns}/", prefix_of(&self.resource)),
            None => prefix_of(&self.resource),
        }
    }
}

/// Where objects of `resource` live in the store (another resource's storage, for
/// resources served in two groups).
pub fn prefix_of(resource: &ResourceInfo) -> String {
    crate::convert::storage_prefix(resource).map_or_else(|| resource.key_prefix(), str::to_owned)
}

pub fn object_key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("{}{ns}/{name}", prefix_of(resource)),
        _ => format!("{}{name}", prefix_of(resource)),
    }
}

const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Resolves the segments after the group-version.
pub fn resolve(
    registry: &Registry,
    group: &str,
    version: &str,
    segs: &[&str],
) -> ApiResult<Target> {
    let (namespace, rest) = match segs {
        ["namespaces", ns, plural, rest @ ..] if !NAMESPACE_SUBRESOURCES.contains(plural) => {
            (Some((*ns).to_owned()), [&[*plural][..], rest].concat())
        }
        _ => (None, segs.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::NoResource { hint: None }),
    };
    let resource = registry
        .lookup(group, version, plural)
        .ok_or_else(|| ApiError::NoResource {
            hint: Some(format!(
                "no resource \"{plural}\" in {}",
                if group.is_empty() {
                    version.to_owned()
                } else {
                    format!("{group}/{version}")
                }
            )),
        })?;
    if namespace.is_some() && !resource.namespaced {
        return Err(ApiError::NoResource {
            hint: Some(format!("{plural} are not namespaced")),
        });
    }
    if let Some(sub) = sub
        && !resource.has_subresource(sub)
    {
        return Err(ApiError::NoResource {
            hint: Some(format!("{plural} have no subresource \"{sub}\"")),
        });
    }
    Ok(Target {
        resource,
        namespace,
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    })
}

/// The query parameters Kubernetes defines for the verbs served here. Unknown ones are ignored,
/// as Kubernetes ignores them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub timeout_seconds: Option<String>,
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<String>,
    pub include_object: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | "True"))
}

impl Params {
    pub fn parse(query: Option<&str>) -> ApiResult<Params> {
        serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }

    /// The same selection as a complete, current list: selectors kept, paging and
    /// resourceVersion dropped (the initial state of a watch, a delete-collection).
    pub fn selection_only(&self) -> Params {
        Params {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            ..Params::default()
        }
    }

    pub fn is_watch(&self) -> bool {
        truthy(&self.watch)
    }

    pub fn bookmarks(&self) -> bool {
        truthy(&self.allow_watch_bookmarks)
    }

    pub fn send_initial_events(&self) -> Option<bool> {
        self.send_initial_events
            .as_ref()
            .map(|_| truthy(&self.send_initial_events))
    }

    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}: the only supported value is \"All\""
            ))),
        }
    }

    pub fn force(&self) -> bool {
        truthy(&self.force)
    }

    fn number<T: std::str::FromStr>(name: &str, v: &Option<String>) -> ApiResult<Option<T>> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<T>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be a number, got {s:?}"))
                })
            })
            .transpose()
    }

    pub fn limit(&self) -> ApiResult<Option<usize>> {
        Ok(Self::number::<i64>("limit", &self.limit)?
            .filter(|l| *l > 0)
            .map(|l| l as usize))
    }

    pub fn timeout_seconds(&self) -> ApiResult<Option<u64>> {
        Self::number("timeoutSeconds", &self.timeout_seconds)
    }

    pub fn grace_period_seconds(&self) -> ApiResult<Option<i64>> {
        Self::number("gracePeriodSeconds", &self.grace_period_seconds)
    }

    /// `Strict`, `Warn` (the default) or `Ignore`.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is not supported: use Strict, Warn or Ignore"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_kubernetes() {
        let reg = Registry::default();
        let t = resolve(
            &reg,
            "",
            "v1",
            &["namespaces", "default", "pods", "web", "log"],
        )
        .unwrap();
        assert_eq!(
            (
                t.resource.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("log"))
        );
        assert_eq!(t.key().unwrap(), "/registry/core/pods/default/web");

        let t = resolve(&reg, "", "v1", &["namespaces", "kube-system", "status"]).unwrap();
        assert_eq!(
            (
                t.resource.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("namespaces", Some("kube-system"), Some("status"))
        );

        let t = resolve(&reg, "", "v1", &["pods"]).unwrap();
        assert_eq!((t.namespace.as_deref(), t.name.as_deref()), (None, None));
        assert_eq!(t.collection_prefix(), "/registry/core/pods/");

        let t = resolve(&reg, "apps", "v1", &["namespaces", "x", "deployments"]).unwrap();
        assert_eq!(t.collection_prefix(), "/registry/apps/deployments/x/");

        assert!(
            resolve(&reg, "", "v1", &["namespaces", "x", "nodes"]).is_err(),
            "nodes are cluster-scoped"
        );
        assert!(resolve(&reg, "", "v1", &["widgets"]).is_err());
        assert!(resolve(&reg, "", "v1", &["pods", "a", "scale"]).is_err());
    }

    #[test]
    fn query_parameters() {
        let p = Params::parse(Some(
            "watch=true&resourceVersion=10&labelSelector=app%3Dweb&limit=5&continue=abc",
        ))
        .unwrap();
        assert!(p.is_watch());
        assert_eq!(p.limit().unwrap(), Some(5));
        assert_eq!(p.label_selector.as_deref(), Some("app=web"));
        assert_eq!(p.continue_token.as_deref(), Some("abc"));
        assert!(
            Params::parse(Some("dryRun=Some"))
                .unwrap()
                .dry_run()
                .is_err()
        );
        assert!(Params::parse(Some("limit=x")).unwrap().limit().is_err());
    }
}
