//! A router: method + path pattern → handler, with path parameters, and clear 404/405 answers.

use std::fmt;

use super::{IntoResponse, Request, Response, Service};
use crate::percent;

type Handler = Box<dyn Fn(Request) -> Response>;

/// Routes requests to handlers by method and path pattern.
///
/// Patterns are `/`-separated segments: a literal (`items`), a parameter (`:id` or `{id}`,
/// one non-empty segment, read with [`Request::param`]), or, last, a wildcard (`*rest` or
/// `{*rest}`, the remaining path, possibly empty). Parameters are percent-decoded. When several
/// routes match, the most specific wins (literal before parameter before wildcard, segment by
/// segment), whatever the order they were added in. A trailing slash is ignored (`/items/`
/// is `/items`). `HEAD` is served by the `GET` route (the SDK drops the body).
///
/// No route for the path: 404 `{"error": "no route for GET /x"}` (or the
/// [`fallback`](Router::fallback)). A route for the path but not the method: 405 with an
/// `allow` header listing the methods that are.
///
/// ```
/// use sextant_sdk::http::{Json, Request, Response, Router};
///
/// let router = Router::new()
///     .get("/items/:id", |req: Request| -> Result<Response, sextant_sdk::Error> {
///         let id: u32 = req.param_as("id")?;
///         Ok(Response::json(&serde_json::json!({ "id": id })))
///     })
///     .post("/items", |req: Request| req.json::<serde_json::Value>().map(Json));
///
/// let response = router.handle(Request::new("GET", "/items/7"));
/// assert_eq!(response.into_body().into_bytes(), br#"{"id":7}"#);
/// assert_eq!(router.handle(Request::new("GET", "/items/x")).status_code(), 400);
/// assert_eq!(router.handle(Request::new("DELETE", "/items")).status_code(), 405);
/// assert_eq!(router.handle(Request::new("GET", "/nope")).status_code(), 404);
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    fallback: Option<Handler>,
}

struct Route {
    method: String,
    pattern: Pattern,
    handler: Handler,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route for `method` (any method name, case-insensitive).
    ///
    /// # Panics
    /// If `pattern` does not start with `/`, has an empty parameter name, or has a wildcard
    /// before its last segment: a mistake in the program, found on its first request.
    pub fn route<F, R>(mut self, method: &str, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        let pattern = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            pattern,
            handler: Box::new(move |request| handler(request).into_response()),
        });
        self
    }

    pub fn get<F, R>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route("GET", pattern, handler)
    }

    pub fn post<F, R>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route("POST", pattern, handler)
    }

    pub fn put<F, R>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route("PUT", pattern, handler)
    }

    pub fn patch<F, R>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route("PATCH", pattern, handler)
    }

    pub fn delete<F, R>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.route("DELETE", pattern, handler)
    }

    /// Answers requests no route's path matches, instead of the default 404.
    pub fn fallback<F, R>(mut self, handler: F) -> Router
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.fallback = Some(Box::new(move |request| handler(request).into_response()));
        self
    }

    /// Routes `request` to its handler and returns the handler's response.
    pub fn handle(&self, mut request: Request) -> Response {
        let segments = split_path(request.path());
        let mut best: Option<(&Route, Vec<(String, String)>)> = None;
        let mut allowed: Vec<&str> = Vec::new();
        for route in &self.routes {
            let Some(params) = route.pattern.matches(&segments) else {
                continue;
            };
            allowed.push(&route.method);
            let method_fits = route.method == request.method()
                || (request.method() == "HEAD" && route.method == "GET");
            let better = best
                .as_ref()
                .is_none_or(|(b, _)| route.pattern.rank() < b.pattern.rank());
            if method_fits && better {
                best = Some((route, params));
            }
        }
        if let Some((route, params)) = best {
            request.set_params(params);
            return (route.handler)(request);
        }
        if allowed.is_empty() {
            return match &self.fallback {
                Some(fallback) => fallback(request),
                None => Response::error(
                    404,
                    format!("no route for {} {}", request.method(), request.path()),
                ),
            };
        }
        if allowed.contains(&"GET") {
            allowed.push("HEAD");
        }
        allowed.sort_unstable();
        allowed.dedup();
        let allow = allowed.join(", ");
        Response::error(
            405,
            format!(
                "method {} is not allowed on {}; allowed: {allow}",
                request.method(),
                request.path()
            ),
        )
        .with_header("allow", allow)
    }
}

impl Service for Router {
    fn call(&self, request: Request) -> Response {
        self.handle(request)
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for route in &self.routes {
            list.entry(&format_args!("{} {}", route.method, route.pattern.text));
        }
        list.finish()
    }
}

/// The path's segments without the leading slash and one trailing slash, undecoded.
fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Wildcard(String),
}

#[derive(Debug)]
struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("route pattern {text:?} must start with '/'"));
        }
        let parts = split_path(text);
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let inner = part
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .map(|p| {
                    p.strip_prefix('*')
                        .map_or(format!(":{p}"), |w| format!("*{w}"))
                });
            let part = inner.as_deref().unwrap_or(part);
            let segment = if let Some(name) = part.strip_prefix(':') {
                Segment::Param(name.to_owned())
            } else if let Some(name) = part.strip_prefix('*') {
                if i + 1 != parts.len() {
                    return Err(format!(
                        "route pattern {text:?}: a wildcard must be the last segment"
                    ));
                }
                Segment::Wildcard(name.to_owned())
            } else {
                Segment::Literal(percent::decode(part))
            };
            if matches!(&segment, Segment::Param(n) | Segment::Wildcard(n) if n.is_empty()) {
                return Err(format!("route pattern {text:?}: a parameter needs a name"));
            }
            segments.push(segment);
        }
        Ok(Pattern {
            text: text.to_owned(),
            segments,
        })
    }

    /// The parameters if `path` matches.
    fn matches(&self, path: &[&str]) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Wildcard(name) => {
                    let rest = path.get(i..).unwrap_or_default().join("/");
                    params.push((name.clone(), percent::decode(&rest)));
                    return Some(params);
                }
                Segment::Literal(literal) => {
                    if percent::decode(path.get(i)?) != *literal {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = path.get(i).filter(|v| !v.is_empty())?;
                    params.push((name.clone(), percent::decode(value)));
                }
            }
        }
        (path.len() == self.segments.len()).then_some(params)
    }

    /// Lower is more specific: segment by segment, literal < parameter < wildcard.
    fn rank(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param(_) => 1,
                Segment::Wildcard(_) => 2,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: Response) -> String {
        String::from_utf8(response.into_body().into_bytes()).unwrap()
    }

    fn named(name: &'static str) -> impl Fn(Request) -> String {
        move |req: Request| {
            let params: Vec<String> = req.params().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name} {}", params.join(" "))
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let router = Router::new()
            .get("/files/*rest", named("files"))
            .get("/items/:id", named("item"))
            .get("/items/new", named("new"))
            .get("/items/{id}/parts/{part}", named("part"))
            .get("/", named("root"));
        let get = |path: &str| body(router.handle(Request::new("GET", path)));
        assert_eq!(get("/items/new"), "new ");
        assert_eq!(get("/items/42"), "item id=42");
        assert_eq!(get("/items/42/"), "item id=42");
        assert_eq!(get("/items/a%20b/parts/x"), "part id=a b part=x");
        assert_eq!(get("/files/a/b.txt"), "files rest=a/b.txt");
        assert_eq!(get("/files"), "files rest=");
        assert_eq!(get("/"), "root ");
        assert_eq!(get("/items//"), "{\"error\":\"no route for GET /items//\"}");
    }

    #[test]
    fn unknown_paths_404_and_wrong_methods_405() {
        let router = Router::new()
            .get("/items", named("list"))
            .post("/items", named("create"));
        let r = router.handle(Request::new("GET", "/nothing"));
        assert_eq!(r.status_code(), 404);
        assert_eq!(body(r), r#"{"error":"no route for GET /nothing"}"#);

        let r = router.handle(Request::new("DELETE", "/items"));
        assert_eq!(r.status_code(), 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
        assert!(body(r).contains("method DELETE is not allowed on /items"));

        assert_eq!(body(router.handle(Request::new("HEAD", "/items"))), "list ");
        assert_eq!(
            body(router.handle(Request::new("post", "/items"))),
            "create "
        );
    }

    #[test]
    fn fallback_replaces_the_404() {
        let router = Router::new()
            .get("/a", named("a"))
            .fallback(|req: Request| (404, format!("nothing at {}", req.path())));
        let r = router.handle(Request::new("GET", "/b"));
        assert_eq!((r.status_code(), body(r).as_str()), (404, "nothing at /b"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("items").is_err());
        assert!(Pattern::parse("/a/*rest/b").is_err());
        assert!(Pattern::parse("/a/:").is_err());
        assert!(Pattern::parse("/a/{}").is_err());
        assert_eq!(
            Pattern::parse("/a/{*rest}").unwrap().segments,
            [
                Segment::Literal("a".into()),
                Segment::Wildcard("rest".into())
            ]
        );
    }
}
