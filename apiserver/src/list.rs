//! Lists: selectors, `limit`/`continue`, resourceVersion rules, and the Table form.
//!
//! A continue token pins the revision of the first page, so a paginated list is one
//! consistent snapshot however long it takes; when that revision is compacted the token has
//! expired (410), as in Kubernetes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sextant_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use sextant_api::resources::ResourceInfo;
use sextant_api::table::IncludeObject;
use sextant_api::{FieldSelector, Selector};
use sextant_store::{ListRequest, StoreError};

use crate::body::{Accept, partial_metadata};
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::request::{Params, Target};
use crate::state::ApiState;

/// Which objects a list or watch selects.
pub struct Filter {
    labels: Selector,
    fields: FieldSelector,
    group: String,
    kind: String,
}

impl Filter {
    pub fn new(t: &Target, params: &Params) -> ApiResult<Filter> {
        let labels = match params.label_selector.as_deref() {
            Some(s) if !s.is_empty() => Selector::parse(s)?,
            _ => Selector::everything(),
        };
        let mut fields = match params.field_selector.as_deref() {
            Some(s) if !s.is_empty() => {
                FieldSelector::parse(s)?.for_kind(&t.resource.group, &t.resource.kind)?
            }
            _ => FieldSelector::everything(),
        };
        // A watch or list of one named object (`/pods/NAME?watch=1`) selects it by name.
        if let Some(name) = &t.name {
            fields = FieldSelector::parse(&format!(
                "metadata.name={}",
                sextant_api::fields::escape_value(name)
            ))?
            .for_kind(&t.resource.group, &t.resource.kind)?;
        }
        Ok(Filter {
            labels,
            fields,
            group: t.resource.group.clone(),
            kind: t.resource.kind.clone(),
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_everything() || self.labels.matches(&objects::labels(obj)))
            && (self.fields.is_everything()
                || self.fields.matches_object(&self.group, &self.kind, obj))
    }
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_token(rv: u64, start: &str) -> String {
    let t = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).expect("JSON encodes"))
}

fn decode_token(token: &str) -> ApiResult<ContinueToken> {
    let bad = || {
        ApiError::bad_request("the continue token is not valid; start the list again without it")
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// The objects of a list, with the revision they are consistent at.
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: u64,
    pub continue_token: Option<String>,
}

/// Reads matching objects, page by page from the store, until `limit` match.
pub async fn collect(
    state: &ApiState,
    t: &Target,
    params: &Params,
    filter: &Filter,
) -> ApiResult<Listed> {
    let limit = params.limit()?;
    let prefix = t.collection_prefix();
    let (mut revision, mut start_after) =
        match params.continue_token.as_deref().filter(|c| !c.is_empty()) {
            Some(token) => {
                let tok = decode_token(token)?;
                if !tok.start.starts_with(&prefix) {
                    return Err(ApiError::bad_request(
                        "the continue token belongs to another list",
                    ));
                }
                (Some(tok.rv), Some(tok.start))
            }
            None => {
                let exact = params.resource_version_match.as_deref() == Some("Exact");
                let rv = params
                    .resource_version
                    .as_deref()
                    .filter(|v| !v.is_empty() && *v != "0");
                match (exact, rv) {
                    (true, Some(rv)) => (
                        Some(rv.parse().map_err(|_| {
                            ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                        })?),
                        None,
                    ),
                    _ => (None, None),
                }
            }
        };
    let mut items = Vec::new();
    loop {
        let page = limit
            .map(|l| (l - items.len()).max(1) * 2)
            .unwrap_or(usize::MAX)
            .min(5_000);
        let resp = state
            .store
            .list(ListRequest { prefix: prefix.clone(), start_after: start_after.clone(), limit: Some(page), revision })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if params.continue_token.is_some() => ApiError::Gone {
                    message: "The provided continue parameter is too old to display a consistent list result. \
                              You can start a new list without the continue parameter."
                        .into(),
                },
                other => other.into(),
            })?;
        revision = Some(resp.revision);
        for kv in &resp.items {
            let obj = objects::from_store_as(&t.resource, kv)?;
            if filter.matches(&obj) {
                items.push(obj);
            }
            start_after = Some(kv.key.clone());
            if limit.is_some_and(|l| items.len() >= l) {
                let more = resp.more
                    || kv.key != resp.items.last().map(|k| k.key.clone()).unwrap_or_default();
                let token = more.then(|| encode_token(resp.revision, &kv.key));
                return Ok(Listed {
                    items,
                    revision: resp.revision,
                    continue_token: token,
                });
            }
        }
        if !resp.more {
            return Ok(Listed {
                items,
                revision: resp.revision,
                continue_token: None,
            });
        }
    }
}

/// The Table of `objects`: Kubernetes' columns for built-in kinds, the CRD's
/// `additionalPrinterColumns` for custom ones.
pub fn table(
    state: &ApiState,
    r: &ResourceInfo,
    objects: &[Value],
    include: IncludeObject,
    list_meta: &ListMeta,
) -> Value {
    let now = jiff::Timestamp::now();
    match state.registry.custom_columns(r) {
        Some(columns) => sextant_api::table::to_table_with_columns(
            &columns,
            &r.api_version(),
            &r.kind,
            objects,
            include,
            now,
            list_meta,
        ),
        None => sextant_api::table::to_table(
            &r.api_version(),
            &r.kind,
            objects,
            include,
            now,
            list_meta,
        ),
    }
}

pub async fn list(
    state: &ApiState,
    t: &Target,
    params: &Params,
    accept: Accept,
) -> ApiResult<Value> {
    let filter = Filter::new(t, params)?;
    let listed = collect(state, t, params, &filter).await?;
    let r = &t.resource;
    Ok(match accept {
        Accept::Table => {
            let include =
                IncludeObject::from_query(params.include_object.as_deref()).ok_or_else(|| {
                    ApiError::bad_request("includeObject must be None, Metadata or Object")
                })?;
            let list_meta = ListMeta {
                resource_version: Some(listed.revision.to_string()),
                continue_: listed.continue_token,
                ..Default::default()
            };
            table(state, r, &listed.items, include, &list_meta)
        }
        Accept::Json | Accept::Metadata => {
            let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
            if let Some(c) = listed.continue_token {
                metadata["continue"] = json!(c);
            }
            if accept == Accept::Metadata {
                let items: Vec<Value> = listed.items.iter().map(partial_metadata).collect();
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items})
            } else {
                json!({"kind": r.list_kind(), "apiVersion": r.api_version(), "metadata": metadata, "items": listed.items})
            }
        }
    })
}

/// A single object in the form the client asked for.
pub fn render_one(
    state: &ApiState,
    t: &Target,
    obj: Value,
    accept: Accept,
    params: &Params,
) -> ApiResult<Value> {
    match (accept, t.subresource.as_deref()) {
        (Accept::Table, None) => {
            let r = &t.resource;
            let include =
                IncludeObject::from_query(params.include_object.as_deref()).ok_or_else(|| {
                    ApiError::bad_request("includeObject must be None, Metadata or Object")
                })?;
            let list_meta = ListMeta {
                resource_version: objects::meta_str(&obj, "resourceVersion").map(str::to_owned),
                ..Default::default()
            };
            Ok(table(state, r, &[obj], include, &list_meta))
        }
        (Accept::Metadata, None) => Ok(partial_metadata(&obj)),
        _ => Ok(obj),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_token(42, "/registry/core/pods/default/b");
        let back = decode_token(&t).unwrap();
        assert_eq!(
            (back.rv, back.start.as_str()),
            (42, "/registry/core/pods/default/b")
        );
        assert_eq!(decode_token("!!!").err().unwrap().code(), 400);
    }
}
