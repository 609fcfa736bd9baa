//! `backend`: a JSON items API, a `wasi:http/incoming-handler` component built with the SDK's
//! router, deployed behind the Service `backend` that `frontend` calls by name.
//!
//! | request | response |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (the readiness probe) |
//! | `GET /items` | 200 `{"items": [...], "pod": POD_NAME}` |
//! | `GET /items/:id[?delay_ms=N]` | 200 `{"id", "name", "tags", "pod"}`; 404 for an unknown id; 400 for a non-numeric one; answers after N ms (at most [`MAX_DELAY_MS`]), so tests can make a caller time out |
//! | `GET /export` | 200 `application/x-ndjson`, one item per line, each line streamed as its own chunk |
//! | `POST /items` | 201 echoing the posted JSON object with an `id` and `pod`, `location: /items/ID`; 400 unless it is an object with a string `name` |
//!
//! Every answer carries `x-pod-name` (env `POD_NAME`) when set. Nothing is stored: each
//! request runs in a fresh instance, so a posted item's id is derived from its name (the same
//! name always gets the same id, from 100 to 999). The routing is plain Rust ([`routes`]),
//! tested on the host.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sextant_sdk::Error;
use sextant_sdk::config::Env;
use sextant_sdk::http::{Json, Request, Response, Router};

/// The longest `delay_ms` honoured.
pub const MAX_DELAY_MS: u64 = 30_000;

/// An item of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The fixed catalogue every replica serves.
pub fn catalog() -> Vec<Item> {
    let item = |id, name: &str, tags: &[&str]| Item {
        id,
        name: name.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    };
    vec![
        item(1, "anvil", &["heavy", "iron"]),
        item(2, "rope", &["hemp"]),
        item(3, "lantern", &["brass", "light"]),
    ]
}

/// The routes, answering as the pod named by env `POD_NAME` (if set).
pub fn routes(env: &Env) -> Router {
    let pod = env.raw("POD_NAME");
    let (list_pod, item_pod, post_pod) = (pod.clone(), pod.clone(), pod);
    Router::new()
        .get("/healthz", |_| "ok")
        .get("/items", move |_| {
            Json(json!({ "items": catalog(), "pod": list_pod }))
        })
        .get("/items/:id", move |req: Request| {
            get_item(&req, item_pod.as_deref())
        })
        .get("/export", |_| {
            Response::stream(
                "application/x-ndjson",
                catalog().into_iter().map(|item| {
                    let mut line = serde_json::to_vec(&item).unwrap_or_default();
                    line.push(b'\n');
                    line
                }),
            )
        })
        .post("/items", move |req: Request| {
            create_item(&req, post_pod.as_deref())
        })
}

/// Answers one request: [`routes`] plus the `x-pod-name` header.
pub fn handle(env: &Env, request: Request) -> Response {
    let response = routes(env).handle(request);
    match env.raw("POD_NAME") {
        Some(pod) => response.with_header("x-pod-name", pod),
        None => response,
    }
}

fn get_item(req: &Request, pod: Option<&str>) -> Result<Response, Error> {
    let id: u32 = req.param_as("id")?;
    if let Some(delay) = req.query_param("delay_ms") {
        let ms: u64 = delay.parse().map_err(|_| {
            Error::http(
                400,
                format!("delay_ms={delay:?} is not a number of milliseconds"),
            )
        })?;
        std::thread::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS)));
    }
    let item = catalog()
        .into_iter()
        .find(|item| item.id == id)
        .ok_or_else(|| {
            let ids: Vec<String> = catalog().iter().map(|i| i.id.to_string()).collect();
            Error::http(
                404,
                format!("no item {id}; the items are {}", ids.join(", ")),
            )
        })?;
    let mut body = serde_json::to_value(item).map_err(|e| Error::http(500, e.to_string()))?;
    body["pod"] = json!(pod);
    Ok(Response::json(&body))
}

fn create_item(req: &Request, pod: Option<&str>) -> Result<Response, Error> {
    let mut item: Map<String, Value> = req.json()?;
    let Some(name) = item.get("name").and_then(Value::as_str) else {
        return Err(Error::http(
            400,
            "an item is a JSON object with a string \"name\"",
        ));
    };
    let id = id_for(name);
    item.insert("id".to_owned(), json!(id));
    item.insert("pod".to_owned(), json!(pod));
    Ok(Response::json(&item)
        .with_status(201)
        .with_header("location", format!("/items/{id}")))
}

/// A stable id in 100..=999 for `name` (FNV-1a), since nothing is stored.
pub fn id_for(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    100 + hash % 900
}

/// The component's entry point: every request reads the pod's env afresh.
fn serve(request: Request) -> Response {
    handle(&Env::process(), request)
}

sextant_sdk::http_service!(serve, max_body = 64 * 1024);

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("POD_NAME", "backend-1")])
    }

    fn json_of(response: Response) -> Value {
        serde_json::from_slice(&response.into_body().into_bytes()).unwrap()
    }

    #[test]
    fn lists_and_gets_items_naming_the_pod() {
        let r = handle(&env(), Request::new("GET", "/items"));
        assert_eq!(r.status_code(), 200);
        assert_eq!(r.header("x-pod-name"), Some("backend-1"));
        let body = json_of(r);
        assert_eq!(body["items"].as_array().unwrap().len(), 3);
        assert_eq!(body["pod"], "backend-1");

        let r = handle(&env(), Request::new("GET", "/items/2"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            json_of(r),
            json!({"id": 2, "name": "rope", "tags": ["hemp"], "pod": "backend-1"})
        );
    }

    #[test]
    fn unknown_or_bad_ids_are_explained() {
        let r = handle(&env(), Request::new("GET", "/items/9"));
        assert_eq!(r.status_code(), 404);
        assert_eq!(json_of(r)["error"], "no item 9; the items are 1, 2, 3");
        let r = handle(&env(), Request::new("GET", "/items/nine"));
        assert_eq!(r.status_code(), 400);
        let r = handle(&env(), Request::new("GET", "/items/1?delay_ms=soon"));
        assert_eq!(r.status_code(), 400);
        let r = handle(&env(), Request::new("GET", "/items/1?delay_ms=1"));
        assert_eq!(r.status_code(), 200);
    }

    #[test]
    fn posts_are_echoed_with_an_id() {
        let request =
            Request::new("POST", "/items").with_json(&json!({"name": "bucket", "tags": ["tin"]}));
        let r = handle(&env(), request);
        assert_eq!(r.status_code(), 201);
        let id = id_for("bucket");
        assert!((100..1000).contains(&id));
        assert_eq!(r.header("location"), Some(format!("/items/{id}").as_str()));
        assert_eq!(
            json_of(r),
            json!({"id": id, "name": "bucket", "tags": ["tin"], "pod": "backend-1"})
        );

        for bad in [&b"[1]"[..], b"{\"name\": 5}", b"not json"] {
            let r = handle(&env(), Request::new("POST", "/items").with_body(bad));
            assert_eq!(r.status_code(), 400, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn export_streams_one_line_per_item() {
        let r = handle(&env(), Request::new("GET", "/export"));
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert!(r.body().is_stream());
        let text = String::from_utf8(r.into_body().into_bytes()).unwrap();
        let items: Vec<Item> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(items, catalog());
    }

    #[test]
    fn health_and_unknown_routes() {
        let r = handle(
            &Env::from_pairs::<&str, &str>([]),
            Request::new("GET", "/healthz"),
        );
        assert_eq!(r.status_code(), 200);
        assert_eq!(r.header("x-pod-name"), None);
        assert_eq!(
            handle(&env(), Request::new("GET", "/nope")).status_code(),
            404
        );
        assert_eq!(
            handle(&env(), Request::new("DELETE", "/items/1")).status_code(),
            405
        );
    }
}
