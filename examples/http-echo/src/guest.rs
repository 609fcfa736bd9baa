//! The WASI side: turns a `wasi:http` request into a [`Request`], and a [`Response`] back into
//! a `wasi:http` response. Built only for wasm, where the `wasip2` bindings exist.

use std::io::{Read, Write};

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

use crate::{MAX_BODY, Request, Response, route};

struct Component;

impl wasip2::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = match read_body(&request) {
            Some(body) => route(
                &Request {
                    method: method_name(request.method()),
                    path_with_query: request.path_with_query().unwrap_or_else(|| "/".to_owned()),
                    body,
                },
                &|name| std::env::var(name).ok(),
            ),
            None => Response::text(413, format!("request body over {MAX_BODY} bytes\n")),
        };
        send(response_out, response);
    }
}

wasip2::http::proxy::export!(Component);

fn method_name(method: Method) -> String {
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
        Method::Other(other) => other,
    }
}

/// Reads the whole body, up to [`MAX_BODY`]; `None` if it is larger.
fn read_body(request: &IncomingRequest) -> Option<Vec<u8>> {
    let Ok(body) = request.consume() else {
        return Some(Vec::new());
    };
    let mut bytes = Vec::new();
    if let Ok(stream) = body.stream() {
        // A read error mid-body leaves what arrived so far: the echo shows it as it came.
        let _ = stream.take(MAX_BODY as u64 + 1).read_to_end(&mut bytes);
    }
    drop(IncomingBody::finish(body));
    (bytes.len() <= MAX_BODY).then_some(bytes)
}

fn send(response_out: ResponseOutparam, response: Response) {
    let mut entries: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    entries.push((
        "content-length".to_owned(),
        response.body.len().to_string().into_bytes(),
    ));
    // A header the host refuses (e.g. a POD_NAME with a newline) must not lose the response.
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status);
    let Ok(body) = outgoing.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(outgoing));
    if let Ok(mut stream) = body.write() {
        // The client may have gone away; there is nobody left to tell, so errors end the reply.
        if stream.write_all(&response.body).is_ok() {
            let _ = stream.blocking_flush();
        }
    }
    let _ = OutgoingBody::finish(body, None);
}
