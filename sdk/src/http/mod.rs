//! HTTP services: a component exporting `wasi:http/incoming-handler`, which the node agent
//! serves on the container's first `containerPort`, one fresh instance per request.
//!
//! Write handlers over [`Request`] and [`Response`], put them in a [`Router`], and export the
//! service with [`http_service!`](crate::http_service). Build the crate as a `cdylib`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! sextant-sdk = "…"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! ```
//! use sextant_sdk::http::{Json, Request, Response, Router};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Note { id: u32, text: String }
//!
//! pub fn routes() -> Router {
//!     Router::new()
//!         .get("/healthz", |_| "ok")
//!         .get("/notes/:id", |req: Request| -> Result<Json<Note>, sextant_sdk::Error> {
//!             let id = req.param_as("id")?;
//!             Ok(Json(Note { id, text: "hello".into() }))
//!         })
//!         .post("/notes", |req: Request| -> Result<Response, sextant_sdk::Error> {
//!             let note: Note = req.json()?;
//!             Ok(Response::json(&note).with_status(201))
//!         })
//! }
//!
//! // Evaluated for every request (each request has a fresh instance anyway).
//! sextant_sdk::http_service!(routes());
//!
//! // The routing is plain Rust, so it is tested on the host:
//! let created = routes().handle(Request::new("POST", "/notes").with_json(&Note { id: 1, text: "x".into() }));
//! assert_eq!(created.status_code(), 201);
//! ```
//!
//! Request bodies are read whole, up to [`DEFAULT_MAX_BODY`] (`http_service!(routes(),
//! max_body = N)` to change it); a larger one is answered 413 with a JSON error before any
//! handler runs. Responses with a whole body carry `content-length`; streamed ones
//! ([`Response::stream`], [`Response::stream_with`]) are sent as they are produced. Header
//! names or values the host refuses are dropped with a `warn` log line rather than losing the
//! response.

mod headers;
mod request;
mod response;
mod router;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

pub use headers::Headers;
pub use request::Request;
pub use response::{Body, IntoResponse, Json, Response};
pub use router::Router;

/// Request bodies larger than this (1 MiB) are refused with 413 unless the service sets its
/// own `max_body`.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// Something that answers requests: a [`Router`], or any `Fn(Request) -> impl IntoResponse`.
pub trait Service {
    fn call(&self, request: Request) -> Response;
}

impl<F, R> Service for F
where
    F: Fn(Request) -> R,
    R: IntoResponse,
{
    fn call(&self, request: Request) -> Response {
        self(request).into_response()
    }
}

/// The 413 answer for a body over `max_body` bytes.
pub fn too_large(max_body: usize) -> Response {
    Response::error(
        413,
        format!("request body is over {max_body} bytes; send a smaller one"),
    )
}

/// Type-checks `http_service!`'s argument in host builds, where nothing is exported.
#[doc(hidden)]
pub fn __check_service<S: Service>(_service: impl FnOnce() -> S) {}

/// Exports an HTTP service: implements `wasi:http/incoming-handler` so that every request is
/// read into a [`Request`](crate::http::Request), handed to the service, and its
/// [`Response`](crate::http::Response) written back.
///
/// The argument is an expression evaluated per request that gives a
/// [`Service`](crate::http::Service): a router-building call (`routes()`) or a function
/// `fn(Request) -> impl IntoResponse`. Use it once per crate, at module level. In host builds
/// it exports nothing (so host tests and `cargo check` work) but still type-checks its argument.
///
/// ```
/// use sextant_sdk::http::Request;
///
/// fn hello(req: Request) -> String {
///     format!("hello from {}\n", req.path())
/// }
///
/// sextant_sdk::http_service!(hello, max_body = 64 * 1024);
/// ```
#[macro_export]
macro_rules! http_service {
    ($service:expr $(,)?) => {
        $crate::http_service!($service, max_body = $crate::http::DEFAULT_MAX_BODY);
    };
    ($service:expr, max_body = $max_body:expr $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SextantHttpService;

            impl $crate::http::guest::IncomingHandler for SextantHttpService {
                fn handle(
                    request: $crate::http::guest::IncomingRequest,
                    response_out: $crate::http::guest::ResponseOutparam,
                ) {
                    $crate::http::guest::serve(request, response_out, &$service, $max_body);
                }
            }

            $crate::http::guest::wasip2::http::proxy::export!(SextantHttpService);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            #[allow(dead_code, reason = "only type-checks the service in host builds")]
            fn sextant_check_service() {
                let _ = $max_body;
                $crate::http::__check_service(|| $service);
            }
        };
    };
}
