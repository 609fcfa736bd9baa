//! `frontend`: an HTTP component that calls the `backend` Service by name through outbound
//! `wasi:http`, and answers with one JSON combining the backend's answer and which pods took
//! part.
//!
//! | request | response |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (does not call the backend: readiness is the frontend's own) |
//! | `GET /` | `{"items": [...], "frontend": {"pod"}, "backend": {"url", "status", "pod"}}` from the backend's `GET /items` |
//! | `GET /items/:id` | `{"item": {...}, "frontend": {...}, "backend": {...}}` from the backend's `GET /items/:id` (the query string, e.g. `delay_ms`, is passed on) |
//!
//! A backend that cannot be reached, refuses, times out, or answers with a 5xx or non-JSON
//! gives 502 `{"error": "...", "frontend": {"pod"}, "backend": {"url"}}`; a backend 404 is
//! passed on as 404.
//!
//! Configuration (env): `BACKEND_URL` (default `http://backend`, i.e. the Service `backend` of
//! the pod's namespace), `BACKEND_TIMEOUT_MS` (default 2000), `POD_NAME` and `POD_NAMESPACE`
//! from the downward API. The pod must be annotated `sextant.dev/outbound: "allow"`.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use sextant_sdk::Error;
use sextant_sdk::client::{Client, ClientResponse, encode_segment};
use sextant_sdk::config::Env;
use sextant_sdk::http::{IntoResponse, Request, Response, Router};

/// The backend's base URL when `BACKEND_URL` is unset.
pub const DEFAULT_BACKEND_URL: &str = "http://backend";

/// How long a backend call may take when `BACKEND_TIMEOUT_MS` is unset.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// The frontend's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of the backend, without a trailing slash.
    pub backend_url: String,
    pub timeout: Duration,
    /// This pod's name, reported in every answer.
    pub pod: Option<String>,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Settings, Error> {
        let backend_url: String = env.get_or("BACKEND_URL", DEFAULT_BACKEND_URL.to_owned())?;
        Ok(Settings {
            backend_url: backend_url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_millis(env.get_or("BACKEND_TIMEOUT_MS", DEFAULT_TIMEOUT_MS)?),
            pod: env.raw("POD_NAME"),
        })
    }
}

/// Sends a GET to a URL: the SDK's client in the component, the backend's router in tests.
pub type Fetch = Rc<dyn Fn(&str) -> Result<ClientResponse, Error>>;

/// The routes, calling the backend through `fetch`.
pub fn routes(settings: Settings, fetch: Fetch) -> Router {
    let settings = Rc::new(settings);
    let (list, one) = ((settings.clone(), fetch.clone()), (settings, fetch));
    Router::new()
        .get("/healthz", |_| "ok")
        .get("/", move |_| {
            let url = format!("{}/items", list.0.backend_url);
            combine(&list.0, &url, list.1(&url), "items", |body| {
                body["items"].clone()
            })
        })
        .get("/items/:id", move |req: Request| {
            let Some(id) = req.param("id") else {
                return Error::http(500, "the route has no :id").into_response();
            };
            let mut url = format!("{}/items/{}", one.0.backend_url, encode_segment(id));
            if !req.query().is_empty() {
                url = format!("{url}?{}", req.query());
            }
            combine(&one.0, &url, one.1(&url), "item", |mut body| {
                // The backend's pod is reported under "backend"; the item is the rest.
                body.as_object_mut().map(|o| o.remove("pod"));
                body
            })
        })
}

/// The combined answer for a backend call to `url`, with the backend's JSON body (through
/// `pick`) under `key`; a 502 JSON error if the call failed.
fn combine(
    settings: &Settings,
    url: &str,
    fetched: Result<ClientResponse, Error>,
    key: &str,
    pick: impl FnOnce(Value) -> Value,
) -> Response {
    let frontend = json!({ "pod": settings.pod });
    let failed = |status: u16, error: String| {
        Response::json(&json!({
            "error": error,
            "frontend": frontend,
            "backend": { "url": url },
        }))
        .with_status(status)
    };
    let response = match fetched {
        Ok(response) => response,
        Err(e) => {
            sextant_sdk::warn!("backend call failed", url = url, error = e.to_string());
            return failed(502, format!("backend unavailable: {e}"));
        }
    };
    let body: Value = match response.json() {
        Ok(body) => body,
        Err(e) => return failed(502, e.to_string()),
    };
    if response.status() == 404 {
        let reason = body["error"].as_str().unwrap_or("not found");
        return failed(404, format!("backend: {reason}"));
    }
    if !response.is_success() {
        let reason = body["error"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        return failed(
            502,
            format!("backend answered {}: {reason}", response.status()),
        );
    }
    let backend_pod = response
        .header("x-pod-name")
        .map(str::to_owned)
        .or_else(|| body["pod"].as_str().map(str::to_owned));
    let mut combined = json!({
        "frontend": frontend,
        "backend": { "url": response.url(), "status": response.status(), "pod": backend_pod },
    });
    combined[key] = pick(body);
    Response::json(&combined)
}

/// The component's entry point: settings from the pod's env, the backend through the SDK's
/// client (short names resolved in `POD_NAMESPACE`).
fn serve(request: Request) -> Response {
    let settings = match Settings::from_env(&Env::process()) {
        Ok(settings) => settings,
        Err(e) => return e.into_response(),
    };
    let client = Client::new().with_timeout(settings.timeout);
    let pod = settings.pod.clone();
    let response = routes(settings, Rc::new(move |url: &str| client.get(url))).handle(request);
    match pod {
        Some(pod) => response.with_header("x-pod-name", pod),
        None => response,
    }
}

sextant_sdk::http_service!(serve);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sextant_sdk::client::resolve;
    use sextant_sdk::http::Headers;

    use super::*;

    fn settings() -> Settings {
        Settings::from_env(&Env::from_pairs([("POD_NAME", "frontend-1")])).unwrap()
    }

    /// Answers outbound calls with the backend's real routing, as pod `backend-7` in
    /// namespace `shop`, after checking the URL resolves to the Service's cluster name.
    fn backend() -> Fetch {
        Rc::new(|url: &str| {
            let target = resolve(url, "shop")?;
            assert!(
                target.authority.ends_with(".shop.svc.cluster.local"),
                "{url}"
            );
            let env = Env::from_pairs([("POD_NAME", "backend-7")]);
            let (status, headers, body) =
                backend::handle(&env, Request::new("GET", &target.path_with_query)).into_parts();
            Ok(ClientResponse::new(
                &target.url(),
                status,
                headers,
                body.into_bytes(),
            ))
        })
    }

    fn json_of(response: Response) -> (u16, Value) {
        let status = response.status_code();
        (
            status,
            serde_json::from_slice(&response.into_body().into_bytes()).unwrap(),
        )
    }

    #[test]
    fn settings_default_to_the_backend_service() {
        let s = Settings::from_env(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!(s.backend_url, "http://backend");
        assert_eq!(s.timeout, Duration::from_millis(2000));
        let s = Settings::from_env(&Env::from_pairs([
            ("BACKEND_URL", "http://api.shop/"),
            ("BACKEND_TIMEOUT_MS", "150"),
        ]))
        .unwrap();
        assert_eq!(
            (s.backend_url.as_str(), s.timeout),
            ("http://api.shop", Duration::from_millis(150))
        );
        let err =
            Settings::from_env(&Env::from_pairs([("BACKEND_TIMEOUT_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("BACKEND_TIMEOUT_MS"));
    }

    #[test]
    fn an_item_is_combined_with_both_pods() {
        let (status, body) =
            json_of(routes(settings(), backend()).handle(Request::new("GET", "/items/3")));
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({
                "item": {"id": 3, "name": "lantern", "tags": ["brass", "light"]},
                "frontend": {"pod": "frontend-1"},
                "backend": {
                    "url": "http://backend.shop.svc.cluster.local/items/3",
                    "status": 200,
                    "pod": "backend-7",
                },
            })
        );
    }

    #[test]
    fn the_list_and_the_query_string_reach_the_backend() {
        let (status, body) =
            json_of(routes(settings(), backend()).handle(Request::new("GET", "/")));
        assert_eq!(status, 200);
        assert_eq!(body["items"].as_array().unwrap().len(), 3);
        assert_eq!(
            body["backend"]["url"],
            "http://backend.shop.svc.cluster.local/items"
        );

        let (status, body) = json_of(
            routes(settings(), backend()).handle(Request::new("GET", "/items/1?delay_ms=1")),
        );
        assert_eq!(status, 200);
        assert_eq!(
            body["backend"]["url"],
            "http://backend.shop.svc.cluster.local/items/1?delay_ms=1"
        );
    }

    #[test]
    fn backend_answers_are_passed_on_or_turned_into_502() {
        let (status, body) =
            json_of(routes(settings(), backend()).handle(Request::new("GET", "/items/42")));
        assert_eq!(status, 404);
        assert_eq!(body["error"], "backend: no item 42; the items are 1, 2, 3");

        // The backend refuses a bad id with 400: not the caller's fault here, so 502.
        let (status, body) =
            json_of(routes(settings(), backend()).handle(Request::new("GET", "/items/x%2Fy")));
        assert_eq!(status, 502);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("backend answered 400"),
            "{body}"
        );

        let not_json: Fetch =
            Rc::new(|url: &str| Ok(ClientResponse::new(url, 200, Headers::new(), "<html>")));
        let (status, body) =
            json_of(routes(settings(), not_json).handle(Request::new("GET", "/items/1")));
        assert_eq!(status, 502);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("not the expected JSON"),
            "{body}"
        );
    }

    #[test]
    fn unreachable_or_slow_backends_give_a_clear_502() {
        let timed_out: Fetch = Rc::new(|url: &str| {
            Err(Error::Timeout {
                url: resolve(url, "shop")?.url(),
                after: Duration::from_secs(2),
            })
        });
        let (status, body) =
            json_of(routes(settings(), timed_out).handle(Request::new("GET", "/items/1")));
        assert_eq!(status, 502);
        assert_eq!(
            body,
            json!({
                "error": "backend unavailable: http://backend.shop.svc.cluster.local/items/1 did not answer within 2s",
                "frontend": {"pod": "frontend-1"},
                "backend": {"url": "http://backend/items/1"},
            })
        );

        let denied: Fetch = Rc::new(|url: &str| {
            Err(Error::OutboundDenied {
                url: url.to_owned(),
            })
        });
        let (status, body) = json_of(routes(settings(), denied).handle(Request::new("GET", "/")));
        assert_eq!(status, 502);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("sextant.dev/outbound"),
            "{body}"
        );
    }

    #[test]
    fn health_does_not_call_the_backend() {
        let never: Fetch = Rc::new(|_: &str| panic!("healthz must not call the backend"));
        let response = routes(settings(), never).handle(Request::new("GET", "/healthz"));
        assert_eq!(response.status_code(), 200);
    }
}
