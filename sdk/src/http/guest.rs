//! The WASI side of HTTP services (wasm only): reads a `wasi:http` incoming request into a
//! [`Request`], and writes a [`Response`] back, streaming bodies as they are produced.
//! [`http_service!`](crate::http_service) expands to a handler that calls [`serve`].

use std::io::{Read, Write};

use wasip2::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingResponse};

pub use wasip2;
pub use wasip2::exports::http::incoming_handler::Guest as IncomingHandler;
pub use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use super::{Body, Headers, Request, Response, Service, too_large};

/// Answers one request with `service`: a body over `max_body` bytes gets 413 without calling it.
pub fn serve<S: Service + ?Sized>(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    service: &S,
    max_body: usize,
) {
    let head = matches!(request.method(), Method::Head);
    let response = match read(&request, max_body) {
        Ok(request) => service.call(request),
        Err(response) => response,
    };
    drop(request);
    send(response_out, response, head);
}

pub(crate) fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(other) => other.to_ascii_uppercase(),
    }
}

/// Header fields as [`Headers`]; values that are not UTF-8 are decoded lossily.
pub(crate) fn headers_of(fields: Fields) -> Headers {
    fields
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect()
}

/// `fields` from `headers`, leaving out (with a warning) what the host refuses, and the
/// framing headers the host sets itself.
pub(crate) fn fields_of(headers: &Headers) -> Fields {
    let fields = Fields::new();
    for (name, value) in headers.iter() {
        if matches!(name, "content-length" | "transfer-encoding" | "connection") {
            continue;
        }
        if let Err(e) = fields.append(name, value.as_bytes()) {
            crate::warn!("header dropped", header = name, reason = e.to_string());
        }
    }
    fields
}

fn read(request: &IncomingRequest, max_body: usize) -> Result<Request, Response> {
    let headers = headers_of(request.headers());
    let declared = headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large(max_body));
    }
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let mut body = Vec::new();
    if let Ok(incoming) = request.consume() {
        if let Ok(stream) = incoming.stream() {
            let read = stream.take(max_body as u64 + 1).read_to_end(&mut body);
            if let Err(e) = read {
                return Err(Response::error(
                    400,
                    format!("cannot read the request body: {e}"),
                ));
            }
        }
        drop(IncomingBody::finish(incoming));
    }
    if body.len() > max_body {
        return Err(too_large(max_body));
    }
    Ok(
        Request::new(&method_name(&request.method()), &path_with_query)
            .with_headers(headers)
            .with_body(body),
    )
}

fn send(response_out: ResponseOutparam, response: Response, head: bool) {
    let (status, headers, body) = response.into_parts();
    let fields = fields_of(&headers);
    let length = body.as_bytes().map(<[u8]>::len);
    if let Some(length) = length.filter(|_| !head) {
        let _ = fields.append("content-length", length.to_string().as_bytes());
    }
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(status).is_err() {
        crate::error!("invalid status code, answering 500", status = status);
        let _ = outgoing.set_status_code(500);
    }
    let Ok(out_body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(outgoing));
    if !head {
        write_body(&out_body, body);
    }
    if let Err(e) = OutgoingBody::finish(out_body, None) {
        crate::warn!("response body not finished", reason = e.to_string());
    }
}

fn write_body(out_body: &OutgoingBody, body: Body) {
    let Ok(mut stream) = out_body.write() else {
        return;
    };
    // The client may have gone away mid-body; there is nobody left to tell but the log.
    if let Err(e) = body.write_to(&mut stream as &mut dyn Write) {
        crate::debug!("response body cut short", reason = e.to_string());
    }
}
