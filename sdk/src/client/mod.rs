//! Outbound HTTP through `wasi:http/outgoing-handler`, to other Services by their cluster
//! names, with timeouts.
//!
//! - `http://backend/…`, `http://backend.shop/…` and `http://backend.shop.svc/…` are sent to
//!   `backend.<ns>.svc.cluster.local` (see [`cluster_host`]), `<ns>` being the pod's
//!   namespace from env `POD_NAMESPACE` (`default` if unset). Manifests set it through the
//!   downward API:
//!   ```yaml
//!   env:
//!   - name: POD_NAMESPACE
//!     valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
//!   ```
//!   The full name goes out as the request's authority; the node agent maps it to the
//!   Service.
//! - The pod needs the annotation `sextant.dev/outbound: "allow"`: without it the node agent
//!   refuses every outbound request, and the client returns [`Error::OutboundDenied`].
//! - [`Client::with_timeout`] (default [`DEFAULT_TIMEOUT`]) bounds the whole exchange, from
//!   sending to the last byte of the body; the connect, first-byte and between-bytes timeouts
//!   of `wasi:http`'s request options default to it and may be set apart. A request that runs
//!   out of time fails with [`Error::Timeout`]; one that cannot connect with
//!   [`Error::Unreachable`]. A response of any status is `Ok`: use
//!   [`ClientResponse::error_for_status`] to turn 4xx/5xx into errors.
//!
//! ```no_run
//! use std::time::Duration;
//! use sextant_sdk::client::{self, Client};
//!
//! # fn main() -> Result<(), sextant_sdk::Error> {
//! let item: serde_json::Value = client::get("http://backend/items/1")?
//!     .error_for_status()?
//!     .json()?;
//!
//! let client = Client::new().with_timeout(Duration::from_secs(2));
//! let created = client.post_json("http://backend.shop/items", &serde_json::json!({"name": "cup"}))?;
//! println!("{} {}", created.status(), created.text()?);
//! # Ok(()) }
//! ```
//!
//! Sending needs `wasm32-wasip2`; in host builds [`Client::send`] returns [`Error::NotWasm`],
//! so workloads put their outbound calls behind a function they replace in host tests.

mod url;

#[cfg(target_arch = "wasm32")]
mod guest;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::percent::encode_segment;
pub use url::{CLUSTER_DOMAIN, Target, cluster_host, resolve};

use crate::Error;
use crate::http::Headers;

/// How long a request may take, start to end, unless the client sets its own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body a client accepts unless it sets its own (16 MiB).
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// Sends requests; cheap to create and to clone.
#[derive(Debug, Clone)]
pub struct Client {
    namespace: String,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    first_byte_timeout: Option<Duration>,
    between_bytes_timeout: Option<Duration>,
    max_response_body: usize,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// A client for the pod's namespace (env `POD_NAMESPACE`, else `default`) with the
    /// default timeout.
    pub fn new() -> Client {
        Client {
            namespace: crate::config::pod_namespace(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
            first_byte_timeout: None,
            between_bytes_timeout: None,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
        }
    }

    /// The namespace short Service names are looked up in.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Client {
        self.namespace = namespace.into();
        self
    }

    /// Bounds the whole exchange, from sending to the last byte of the response body.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Bounds connecting (`wasi:http` `connect-timeout`); defaults to the whole timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Client {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bounds the wait for the response's first byte (`first-byte-timeout`).
    pub fn with_first_byte_timeout(mut self, timeout: Duration) -> Client {
        self.first_byte_timeout = Some(timeout);
        self
    }

    /// Bounds each pause between bytes of the response (`between-bytes-timeout`).
    pub fn with_between_bytes_timeout(mut self, timeout: Duration) -> Client {
        self.between_bytes_timeout = Some(timeout);
        self
    }

    /// Refuses response bodies over `limit` bytes with [`Error::ResponseTooLarge`].
    pub fn with_max_response_body(mut self, limit: usize) -> Client {
        self.max_response_body = limit;
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connect, first-byte and between-bytes timeouts handed to the host.
    pub fn host_timeouts(&self) -> [Duration; 3] {
        [
            self.connect_timeout,
            self.first_byte_timeout,
            self.between_bytes_timeout,
        ]
        .map(|t| t.unwrap_or(self.timeout).min(self.timeout))
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<ClientResponse, Error> {
        self.send(ClientRequest::get(url))
    }

    /// `POST url` with `value` as a JSON body.
    pub fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        value: &T,
    ) -> Result<ClientResponse, Error> {
        self.send(ClientRequest::post(url).json(value)?)
    }

    /// Resolves `request`'s URL and the headers that go out with it, without sending.
    pub fn prepare(&self, request: ClientRequest) -> Result<Prepared, Error> {
        let target = resolve(&request.url, &self.namespace)?;
        let mut headers = request.headers;
        if !headers.contains("user-agent") {
            headers.insert(
                "user-agent",
                concat!("sextant-sdk/", env!("CARGO_PKG_VERSION")),
            );
        }
        Ok(Prepared {
            method: request.method,
            target,
            headers,
            body: request.body,
        })
    }

    /// Sends `request` and reads the whole response.
    pub fn send(&self, request: ClientRequest) -> Result<ClientResponse, Error> {
        let prepared = self.prepare(request)?;
        transport(self, prepared)
    }
}

#[cfg(target_arch = "wasm32")]
use guest::send as transport;

/// Host builds have no `wasi:http` to send through.
#[cfg(not(target_arch = "wasm32"))]
fn transport(_client: &Client, _prepared: Prepared) -> Result<ClientResponse, Error> {
    Err(Error::NotWasm)
}

/// A request ready to go: its URL resolved to a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub method: String,
    pub target: Target,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// An outbound request: method, URL, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    method: String,
    url: String,
    headers: Headers,
    body: Vec<u8>,
}

impl ClientRequest {
    /// A request with `method` (upper-cased) to `url`.
    pub fn new(method: &str, url: &str) -> ClientRequest {
        ClientRequest {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: &str) -> ClientRequest {
        ClientRequest::new("GET", url)
    }

    pub fn post(url: &str) -> ClientRequest {
        ClientRequest::new("POST", url)
    }

    /// Adds a header (e.g. `authorization`); `host` is set by the host from the URL.
    pub fn header(mut self, name: &str, value: &str) -> ClientRequest {
        self.headers.append(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> ClientRequest {
        self.body = body.into();
        self
    }

    /// Sets `value` as a JSON body with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<ClientRequest, Error> {
        self.body = serde_json::to_vec(value).map_err(|e| Error::Encode {
            reason: e.to_string(),
        })?;
        self.headers.insert("content-type", "application/json");
        Ok(self)
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Convenience for [`Client::get`] with [`Client::new`].
pub fn get(url: &str) -> Result<ClientResponse, Error> {
    Client::new().get(url)
}

/// Convenience for [`Client::post_json`] with [`Client::new`].
pub fn post_json<T: Serialize + ?Sized>(url: &str, value: &T) -> Result<ClientResponse, Error> {
    Client::new().post_json(url, value)
}

/// A response to an outbound request, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    url: String,
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl ClientResponse {
    /// A response from `url` (tests build these to stand in for a backend).
    pub fn new(url: &str, status: u16, headers: Headers, body: impl Into<Vec<u8>>) -> Self {
        ClientResponse {
            url: url.to_owned(),
            status,
            headers,
            body: body.into(),
        }
    }

    /// The URL the request went to, cluster name expanded.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|_| Error::BadResponse {
            url: self.url.clone(),
            reason: "the body is not UTF-8 text".to_owned(),
        })
    }

    /// The body deserialized from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::BadResponse {
            url: self.url.clone(),
            reason: format!("the body is not the expected JSON: {e}"),
        })
    }

    /// `self` if the status is 2xx; otherwise [`Error::BadResponse`] with the status and the
    /// start of the body.
    pub fn error_for_status(self) -> Result<ClientResponse, Error> {
        if self.is_success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.body);
        let snippet: String = text.trim().chars().take(200).collect();
        Err(Error::BadResponse {
            url: self.url,
            reason: format!("status {}: {snippet}", self.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_default_to_the_whole_timeout() {
        let client = Client::new()
            .with_namespace("shop")
            .with_timeout(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_millis(500))
            .with_between_bytes_timeout(Duration::from_secs(60));
        assert_eq!(
            client.host_timeouts(),
            [
                Duration::from_millis(500),
                Duration::from_secs(3),
                Duration::from_secs(3)
            ]
        );
    }

    #[test]
    fn prepare_expands_names_and_sets_headers() {
        let client = Client::new().with_namespace("shop");
        let request = ClientRequest::post("http://backend/items")
            .json(&serde_json::json!({"name": "cup"}))
            .unwrap()
            .header("x-trace", "1");
        let prepared = client.prepare(request).unwrap();
        assert_eq!(prepared.method, "POST");
        assert_eq!(
            prepared.target.url(),
            "http://backend.shop.svc.cluster.local/items"
        );
        assert_eq!(
            prepared.headers.get("content-type"),
            Some("application/json")
        );
        assert_eq!(prepared.headers.get("x-trace"), Some("1"));
        assert!(
            prepared
                .headers
                .get("user-agent")
                .unwrap()
                .starts_with("sextant-sdk/")
        );
        assert_eq!(prepared.body, br#"{"name":"cup"}"#);

        assert!(matches!(
            client.prepare(ClientRequest::get("backend")),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[test]
    fn host_builds_cannot_send() {
        assert!(matches!(
            Client::new().get("http://backend/"),
            Err(Error::NotWasm)
        ));
    }

    #[test]
    fn responses_decode_and_check_status() {
        let ok = ClientResponse::new("http://b/", 200, Headers::new(), r#"{"id":1}"#);
        assert_eq!(ok.json::<serde_json::Value>().unwrap()["id"], 1);
        assert!(ok.clone().error_for_status().is_ok());
        let err = ok.json::<Vec<u8>>().unwrap_err();
        assert_eq!(err.status_code(), 502);

        let failed = ClientResponse::new("http://b/", 503, Headers::new(), "  overloaded\n");
        let err = failed.error_for_status().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected response from http://b/: status 503: overloaded"
        );
    }
}
