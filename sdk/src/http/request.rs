//! An incoming request, read whole (its body is bounded by the service's `max_body`).

use std::fmt::Display;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Headers;
use crate::{Error, percent};

/// An incoming HTTP request as handlers see it. [`Request::new`] and its `with_*` methods
/// build one for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: String,
    headers: Headers,
    body: Vec<u8>,
    params: Vec<(String, String)>,
}

impl Request {
    /// A request with no headers or body; `method` is upper-cased, `path_with_query` is split
    /// at the first `?` (an empty path is `/`).
    pub fn new(method: &str, path_with_query: &str) -> Request {
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query, ""));
        Request {
            method: method.to_ascii_uppercase(),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            query: query.to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds a header (appending to any of the same name).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.append(name, value);
        self
    }

    /// Replaces all headers.
    pub fn with_headers(mut self, headers: Headers) -> Request {
        self.headers = headers;
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body with `content-type: application/json`.
    pub fn with_json<T: Serialize + ?Sized>(self, value: &T) -> Request {
        let body = serde_json::to_vec(value).unwrap_or_default();
        let mut request = self.with_body(body);
        request.headers.insert("content-type", "application/json");
        request
    }

    /// The method in upper case, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path as sent (still percent-encoded), e.g. `/items/42`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string without `?`, empty if none.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The path and query as sent, e.g. `/items?limit=5`.
    pub fn path_with_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The first value of query parameter `name`, decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent::decode_query(k), percent::decode_query(v))
            })
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text; [`Error::BadText`] (400) if it is not.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|_| Error::BadText)
    }

    /// The body deserialized from JSON; [`Error::BadJson`] (400) naming what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::BadJson {
            reason: e.to_string(),
        })
    }

    /// Path parameter `name` of the matched route (`:id` in `/items/:id`), decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path parameter `name` parsed as `T`; [`Error::BadParam`] (400) if it does not parse.
    pub fn param_as<T>(&self, name: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: Display,
    {
        let value = self
            .param(name)
            .ok_or_else(|| Error::http(500, format!("the route has no path parameter :{name}")))?;
        value.parse().map_err(|e: T::Err| Error::BadParam {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Every path parameter of the matched route, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct Item {
        name: String,
    }

    #[test]
    fn parts_and_query() {
        let r = Request::new("get", "/search?q=blue+shoes&size=42&q=x&flag");
        assert_eq!(r.method(), "GET");
        assert_eq!(r.path(), "/search");
        assert_eq!(r.query_param("q").as_deref(), Some("blue shoes"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("none"), None);
        assert_eq!(r.path_with_query(), "/search?q=blue+shoes&size=42&q=x&flag");
        assert_eq!(Request::new("GET", "").path(), "/");
    }

    #[test]
    fn json_bodies() {
        let r = Request::new("POST", "/items").with_json(&Item { name: "cup".into() });
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json::<Item>().unwrap().name, "cup");

        let bad = Request::new("POST", "/items").with_body("{\"nom\":1}");
        let err = bad.json::<Item>().unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(err.to_string().contains("missing field `name`"), "{err}");
        assert!(matches!(
            Request::new("POST", "/").with_body(vec![0xff]).text(),
            Err(Error::BadText)
        ));
    }

    #[test]
    fn typed_params() {
        let mut r = Request::new("GET", "/items/x7");
        r.set_params(vec![("id".into(), "x7".into())]);
        assert_eq!(r.param("id"), Some("x7"));
        let err = r.param_as::<u32>("id").unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(err.to_string().starts_with("path parameter id=\"x7\""));
        assert_eq!(r.param_as::<u32>("nope").unwrap_err().status_code(), 500);
    }
}
