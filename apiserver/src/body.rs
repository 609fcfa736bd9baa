//! Request bodies in, response bodies out: size limits, content types, and what the client
//! accepts back (plain JSON, or a `Table` for kubectl).

use axum::body::{Body, Bytes};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Kubernetes' own limit on request bodies (3 MiB), which also bounds what one object costs
/// the store.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub async fn read(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        // axum reports the limit as a `LengthLimitError` in the source chain.
        let mut cause: Option<&dyn std::error::Error> = Some(&e);
        while let Some(c) = cause {
            if c.to_string().contains("length limit exceeded") {
                return ApiError::TooLarge { limit: MAX_BODY };
            }
            cause = c.source();
        }
        ApiError::bad_request(format!("cannot read the request body: {e}"))
    })
}

/// The media types a body may come in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    JsonPatch,
    MergePatch,
    StrategicMergePatch,
    ApplyPatch,
    /// `application/vnd.kubernetes.protobuf`: kubectl sends built-in kinds this way for its
    /// typed commands (`create configmap`, `run`, `expose`, ...); decoded to the same JSON.
    Protobuf,
}

impl BodyType {
    pub fn from_content_type(ct: Option<&str>) -> ApiResult<BodyType> {
        let ct = ct.unwrap_or("application/json");
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Ok(match base.as_str() {
            "application/json" | "" | "*/*" => BodyType::Json,
            "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
            "application/json-patch+json" => BodyType::JsonPatch,
            "application/merge-patch+json" => BodyType::MergePatch,
            "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
            "application/apply-patch+yaml" => BodyType::ApplyPatch,
            sextant_kpb::MEDIA_TYPE => BodyType::Protobuf,
            _ => {
                return Err(ApiError::UnsupportedMediaType {
                    message: format!(
                        "the body of the request was in an unknown format ({ct}) - accepted media types include: \
                         application/json, application/yaml, application/json-patch+json, \
                         application/merge-patch+json, application/strategic-merge-patch+json, \
                         application/apply-patch+yaml, application/vnd.kubernetes.protobuf"
                    ),
                });
            }
        })
    }
}

/// Decodes a JSON, YAML or Kubernetes protobuf object. Nesting is bounded by serde_json's,
/// serde_yaml's and sextant-kpb's recursion limits, and YAML alias expansion by serde_yaml's
/// repetition limit, so a "billion laughs" body is refused instead of filling memory.
pub fn decode_object(body_type: BodyType, bytes: &[u8]) -> ApiResult<Value> {
    let value: Value = match body_type {
        BodyType::Yaml | BodyType::ApplyPatch => {
            let yaml: serde_yaml::Value = serde_yaml::from_slice(bytes).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
            })?;
            serde_json::to_value(yaml).map_err(|e| {
                ApiError::bad_request(format!("the YAML body cannot be read as JSON: {e}"))
            })?
        }
        BodyType::Protobuf => sextant_kpb::decode_k8s_protobuf(bytes).map_err(|e| {
            ApiError::bad_request(format!("the protobuf request body cannot be decoded: {e}"))
        })?,
        _ => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?,
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(value)
}

/// What the client asked to get back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    Json,
    Table,
    /// `PartialObjectMetadata(List)`: metadata only, what metadata informers (the garbage
    /// collector, kube-rs `metadata_watcher`) ask for.
    Metadata,
}

/// Reads the Accept header. kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io`
/// first and plain JSON as a fallback; we serve the first we can. Protobuf is not served:
/// clients that also accept JSON get JSON.
pub fn negotiate(accept: Option<&str>) -> ApiResult<Accept> {
    let Some(accept) = accept else {
        return Ok(Accept::Json);
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = params
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        match get("as") {
            None => return Ok(Accept::Json),
            Some("Table")
                if get("g") == Some("meta.k8s.io")
                    && matches!(get("v"), Some("v1" | "v1beta1")) =>
            {
                return Ok(Accept::Table);
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if get("g") == Some("meta.k8s.io")
                    && matches!(get("v"), Some("v1" | "v1beta1")) =>
            {
                return Ok(Accept::Metadata);
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::NotAcceptable {
        message: format!(
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata(List);v=v1;g=meta.k8s.io (asked for {accept})"
        ),
    })
}

/// An object reduced to its metadata, as `PartialObjectMetadata` (v1).
pub fn partial_metadata(obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)).unwrap(), Accept::Table);
        assert_eq!(negotiate(Some("application/json")).unwrap(), Accept::Json);
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            ))
            .unwrap(),
            Accept::Json
        );
        assert_eq!(
            negotiate(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json"
            ))
            .unwrap(),
            Accept::Metadata
        );
        assert!(negotiate(Some("application/vnd.kubernetes.protobuf")).is_err());
        assert_eq!(negotiate(None).unwrap(), Accept::Json);
    }

    #[test]
    fn bodies() {
        assert!(decode_object(BodyType::Json, b"[1]").is_err());
        assert!(decode_object(BodyType::Json, b"{bad").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(decode_object(BodyType::Json, format!("{{\"a\":{deep}}}").as_bytes()).is_err());
        let bomb = b"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        assert!(
            decode_object(BodyType::Yaml, bomb).is_err(),
            "alias bombs are refused"
        );
        let v = decode_object(BodyType::Yaml, b"apiVersion: v1\nkind: ConfigMap\n").unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(
            BodyType::from_content_type(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            BodyType::Protobuf
        );
        assert!(decode_object(BodyType::Protobuf, b"{}").is_err());
        assert_eq!(
            BodyType::from_content_type(Some("application/apply-patch+yaml")).unwrap(),
            BodyType::ApplyPatch
        );
    }
}
