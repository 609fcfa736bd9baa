//! The response a handler returns, its body (whole or streamed), and the conversions that let
//! handlers return plain values ([`IntoResponse`]).

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

use super::Headers;
use crate::Error;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// A response: status, headers and a [`Body`]. Constructors set a content type; the `with_*`
/// methods adjust the rest.
///
/// ```
/// use sextant_sdk::http::Response;
///
/// let created = Response::json(&serde_json::json!({"id": 7}))
///     .with_status(201)
///     .with_header("location", "/items/7");
/// assert_eq!(created.status_code(), 201);
/// assert_eq!(created.into_body().into_bytes(), br#"{"id":7}"#);
/// ```
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Headers,
    body: Body,
}

impl Response {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: Headers::new(),
            body: Body::empty(),
        }
    }

    /// 200 with a UTF-8 text body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::bytes(TEXT, body.into())
    }

    /// 200 with `value` as JSON; 500 with the reason if it cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::bytes(JSON, body),
            Err(e) => Response::error(500, format!("cannot serialize the response: {e}")),
        }
    }

    /// 200 with `body` of the given content type.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::status(200)
            .with_header("content-type", content_type)
            .with_body(Body::from(body.into()))
    }

    /// 200 with a body streamed from `chunks`: each chunk is written to the connection as
    /// soon as the iterator yields it (no content-length; the host sends it chunked).
    pub fn stream<I>(content_type: &str, chunks: I) -> Response
    where
        I: IntoIterator + 'static,
        I::Item: Into<Vec<u8>>,
    {
        Response::status(200)
            .with_header("content-type", content_type)
            .with_body(Body::chunks(chunks))
    }

    /// 200 with a body that `write` produces after the headers are sent; each `flush` pushes
    /// what was written so far to the client.
    pub fn stream_with(
        content_type: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()> + 'static,
    ) -> Response {
        Response::status(200)
            .with_header("content-type", content_type)
            .with_body(Body::writer(write))
    }

    /// `status` with the JSON body `{"error": message}`, the SDK's error shape.
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        let body = serde_json::json!({ "error": message.into() });
        Response::json(&body).with_status(status)
    }

    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// Sets header `name` to `value`, replacing earlier values.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.insert(name, value);
        self
    }

    /// Adds a value for header `name` (e.g. a second `set-cookie`).
    pub fn append_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.append(name, value);
        self
    }

    pub fn with_body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    pub fn status_code(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    pub fn into_body(self) -> Body {
        self.body
    }

    pub fn into_parts(self) -> (u16, Headers, Body) {
        (self.status, self.headers, self.body)
    }
}

/// A response body: bytes in memory, or a stream produced while it is sent.
pub struct Body(BodyKind);

/// Produces a body by writing it once the headers are sent.
type WriteBody = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()>>;

enum BodyKind {
    Full(Vec<u8>),
    Chunks(Box<dyn Iterator<Item = Vec<u8>>>),
    Writer(WriteBody),
}

impl Body {
    pub fn empty() -> Body {
        Body(BodyKind::Full(Vec::new()))
    }

    /// A body written chunk by chunk as `chunks` yields them.
    pub fn chunks<I>(chunks: I) -> Body
    where
        I: IntoIterator + 'static,
        I::Item: Into<Vec<u8>>,
    {
        Body(BodyKind::Chunks(Box::new(
            chunks.into_iter().map(Into::into),
        )))
    }

    /// A body produced by `write` once the headers are sent.
    pub fn writer(write: impl FnOnce(&mut dyn Write) -> io::Result<()> + 'static) -> Body {
        Body(BodyKind::Writer(Box::new(write)))
    }

    /// The bytes of a body held in memory; `None` for a streamed one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            BodyKind::Full(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn is_stream(&self) -> bool {
        self.as_bytes().is_none()
    }

    /// Every byte of the body, running a stream to its end (tests use this). A writer that
    /// fails ends the body where it stopped, as it would on the wire.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.write_to(&mut out);
        out
    }

    /// Writes the body to `out`, flushing after each chunk of a stream so that it reaches the
    /// client as it is produced.
    pub fn write_to(self, out: &mut dyn Write) -> io::Result<()> {
        match self.0 {
            BodyKind::Full(bytes) => out.write_all(&bytes)?,
            BodyKind::Chunks(chunks) => {
                for chunk in chunks {
                    if !chunk.is_empty() {
                        out.write_all(&chunk)?;
                        out.flush()?;
                    }
                }
            }
            BodyKind::Writer(write) => write(out)?,
        }
        out.flush()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            BodyKind::Full(bytes) => write!(f, "Body({} bytes)", bytes.len()),
            BodyKind::Chunks(_) => f.write_str("Body(chunks)"),
            BodyKind::Writer(_) => f.write_str("Body(writer)"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body(BodyKind::Full(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(text.into_bytes())
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Body {
        Body::from(text.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Body {
        Body::from(bytes.to_vec())
    }
}

/// A value serialized as a JSON response (200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// What a handler may return: a [`Response`], text (`&str`, `String`), [`Json`], a
/// `(status, value)` pair, an [`Error`] (answered as `{"error": …}` with
/// [`Error::status_code`]), or a `Result` of any of these, so handlers can use `?`.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(&self.0)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Response::error(self.status_code(), self.to_string())
    }
}

impl<R: IntoResponse> IntoResponse for (u16, R) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<R: IntoResponse, E: IntoResponse> IntoResponse for Result<R, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(response: Response) -> String {
        String::from_utf8(response.into_body().into_bytes()).unwrap()
    }

    #[test]
    fn constructors_set_content_types() {
        let r = Response::text("hi");
        assert_eq!(r.header("content-type"), Some(TEXT));
        assert_eq!(text_of(r), "hi");
        let r = Response::json(&[1, 2]);
        assert_eq!(
            (r.status_code(), r.header("content-type")),
            (200, Some(JSON))
        );
        assert_eq!(text_of(r), "[1,2]");
        let r = Response::error(404, "no item 9");
        assert_eq!(r.status_code(), 404);
        assert_eq!(text_of(r), r#"{"error":"no item 9"}"#);
        assert_eq!(Response::status(204).into_body().into_bytes(), b"");
    }

    #[test]
    fn streams_flush_each_chunk() {
        /// Records the bytes written between flushes.
        #[derive(Default)]
        struct Flushes {
            pending: Vec<u8>,
            flushed: Vec<String>,
        }
        impl Write for Flushes {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.pending.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                if !self.pending.is_empty() {
                    let chunk = std::mem::take(&mut self.pending);
                    self.flushed.push(String::from_utf8(chunk).unwrap());
                }
                Ok(())
            }
        }

        let r = Response::stream(TEXT, (1..=3).map(|i| format!("line {i}\n")));
        assert!(r.body().is_stream());
        let mut out = Flushes::default();
        r.into_body().write_to(&mut out).unwrap();
        assert_eq!(out.flushed, ["line 1\n", "line 2\n", "line 3\n"]);

        let r = Response::stream_with(TEXT, |w| {
            w.write_all(b"a")?;
            w.flush()?;
            w.write_all(b"b")
        });
        let mut out = Flushes::default();
        r.into_body().write_to(&mut out).unwrap();
        assert_eq!(out.flushed, ["a", "b"]);
    }

    #[test]
    fn handler_results_convert() {
        let ok: Result<Json<u8>, Error> = Ok(Json(5));
        assert_eq!(text_of(ok.into_response()), "5");
        let err: Result<Json<u8>, Error> = Err(Error::http(409, "taken"));
        let r = err.into_response();
        assert_eq!(r.status_code(), 409);
        assert_eq!(text_of(r), r#"{"error":"taken"}"#);
        let r = (201, "made").into_response();
        assert_eq!((r.status_code(), text_of(r).as_str()), (201, "made"));
    }
}
