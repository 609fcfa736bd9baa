//! `http-echo`: a `wasi:http/incoming-handler` component, one fresh instance per request,
//! that tests and benchmarks deploy behind a Deployment and a Service.
//!
//! | request | response |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (the readiness probe) |
//! | `GET /env/NAME` | 200 with env var NAME's value, 404 if unset |
//! | `GET /file?path=/abs/path` | 200 with that file's contents (from a mounted volume), 404 if unreadable |
//! | `GET /status/CODE` | CODE (e.g. `/status/500`, for a failing liveness probe) |
//! | anything else | 200 echoing `method:`, `path:`, `pod:` (if set) and `body:` lines |
//!
//! Every response carries `x-pod-name` (from env `POD_NAME`) when set, so a client can tell
//! which replica answered. The routing is plain Rust ([`route`]) so it is tested on the host;
//! only the `guest` module touches WASI, and it exists only when built for wasm.

#[cfg(target_arch = "wasm32")]
mod guest;

/// Request bodies larger than this are refused with 413: the echo is for small payloads.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request as the router sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Upper-case method name, e.g. `GET`.
    pub method: String,
    /// Path and query, e.g. `/file?path=/config/message`.
    pub path_with_query: String,
    pub body: Vec<u8>,
}

/// A response ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "text/plain; charset=utf-8".to_owned(),
            )],
            body: body.into(),
        }
    }
}

/// Answers one request. `env` looks up an environment variable (the module's own env inside
/// wasm; a map in tests); files are read with `std::fs`, which inside wasm sees only the
/// pod's mounted volumes.
pub fn route(request: &Request, env: &dyn Fn(&str) -> Option<String>) -> Response {
    let (path, query) = request
        .path_with_query
        .split_once('?')
        .unwrap_or((&request.path_with_query, ""));
    let mut response = match (request.method.as_str(), path) {
        ("GET", "/healthz") => Response::text(200, "ok"),
        ("GET", "/file") => file(query),
        ("GET", path) if path.starts_with("/env/") => {
            let name = percent_decode(&path["/env/".len()..]);
            match env(&name) {
                Some(value) => Response::text(200, value),
                None => Response::text(404, format!("env {name} is not set\n")),
            }
        }
        ("GET", path) if path.starts_with("/status/") => {
            match path["/status/".len()..].parse::<u16>() {
                Ok(code @ 200..=599) => Response::text(code, format!("status {code}\n")),
                _ => Response::text(400, "use /status/CODE with CODE in 200..=599\n"),
            }
        }
        _ => echo(request, env("POD_NAME").as_deref()),
    };
    if let Some(pod) = env("POD_NAME") {
        response.headers.push(("x-pod-name".to_owned(), pod));
    }
    response
}

/// `GET /file?path=/abs`: the file's bytes, or 404 saying why it could not be read.
fn file(query: &str) -> Response {
    let path = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "path")
        .map(|(_, value)| percent_decode(value));
    match path {
        None => Response::text(400, "use /file?path=/absolute/path\n"),
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => Response::text(200, bytes),
            Err(err) => Response::text(404, format!("cannot read {path}: {err}\n")),
        },
    }
}

fn echo(request: &Request, pod: Option<&str>) -> Response {
    let mut body = format!(
        "method: {}\npath: {}\n",
        request.method, request.path_with_query
    );
    if let Some(pod) = pod {
        body.push_str(&format!("pod: {pod}\n"));
    }
    body.push_str("body: ");
    body.push_str(&String::from_utf8_lossy(&request.body));
    body.push('\n');
    Response::text(200, body)
}

/// Decodes `%XX` escapes and `+` (as in query strings); malformed escapes stay as written.
fn percent_decode(s: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn get(path: &str) -> Request {
        Request {
            method: "GET".into(),
            path_with_query: path.into(),
            body: Vec::new(),
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn healthz_is_ok() {
        let response = route(&get("/healthz"), &env_of(&[]));
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"ok");
        assert_eq!(header(&response, "x-pod-name"), None);
    }

    #[test]
    fn env_returns_the_value_or_404() {
        let env = env_of(&[("COLOR", "blue")]);
        let response = route(&get("/env/COLOR"), &env);
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"blue"[..])
        );
        assert_eq!(route(&get("/env/MISSING"), &env).status, 404);
    }

    #[test]
    fn file_reads_mounted_files_or_404() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("message");
        std::fs::write(&path, "hello from a volume").unwrap();

        let response = route(
            &get(&format!("/file?path={}", path.display())),
            &env_of(&[]),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello from a volume");

        let encoded = path.display().to_string().replace('/', "%2F");
        let response = route(&get(&format!("/file?x=1&path={encoded}")), &env_of(&[]));
        assert_eq!(response.status, 200);

        let missing = dir.path().join("absent");
        let response = route(
            &get(&format!("/file?path={}", missing.display())),
            &env_of(&[]),
        );
        assert_eq!(response.status, 404);
        assert_eq!(route(&get("/file"), &env_of(&[])).status, 400);
    }

    #[test]
    fn status_returns_the_asked_code() {
        assert_eq!(route(&get("/status/503"), &env_of(&[])).status, 503);
        assert_eq!(route(&get("/status/99"), &env_of(&[])).status, 400);
    }

    #[test]
    fn other_requests_are_echoed_with_the_pod_name() {
        let request = Request {
            method: "POST".into(),
            path_with_query: "/things?id=7".into(),
            body: b"payload".to_vec(),
        };
        let response = route(&request, &env_of(&[("POD_NAME", "echo-1")]));
        assert_eq!(response.status, 200);
        assert_eq!(
            String::from_utf8(response.body.clone()).unwrap(),
            "method: POST\npath: /things?id=7\npod: echo-1\nbody: payload\n"
        );
        assert_eq!(header(&response, "x-pod-name"), Some("echo-1"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fa%20b+c"), "/a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
