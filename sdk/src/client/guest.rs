//! Sending through `wasi:http/outgoing-handler` (wasm only), with the client's timeouts: the
//! host enforces connect/first-byte/between-bytes, and the guest the whole exchange's deadline
//! by polling each wait together with a monotonic-clock timer.

use std::io::Write as _;
use std::time::Duration;

use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::poll::{Pollable, poll};
use wasip2::io::streams::{InputStream, StreamError};

use super::{Client, ClientResponse, Prepared};
use crate::Error;
use crate::http::guest::{fields_of, headers_of};

/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 * 1024;

/// Sends `prepared` and reads the whole response within the client's timeout.
pub fn send(client: &Client, prepared: Prepared) -> Result<ClientResponse, Error> {
    let url = prepared.target.url();
    let deadline = monotonic_clock::now().saturating_add(nanos(client.timeout));
    let fail = |code: ErrorCode| error_of(code, &url, client);
    let invalid = |what: &str| Error::InvalidUrl {
        url: url.clone(),
        reason: format!("the host refused its {what}"),
    };

    let fields = fields_of(&prepared.headers);
    let with_body =
        !prepared.body.is_empty() || matches!(prepared.method.as_str(), "POST" | "PUT" | "PATCH");
    if with_body {
        let _ = fields.append("content-length", prepared.body.len().to_string().as_bytes());
    }
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method_of(&prepared.method))
        .map_err(|()| invalid("method"))?;
    let scheme = if prepared.target.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&prepared.target.authority))
        .map_err(|()| invalid("host"))?;
    request
        .set_path_with_query(Some(&prepared.target.path_with_query))
        .map_err(|()| invalid("path"))?;
    let body = request.body().map_err(|()| invalid("body"))?;

    let options = RequestOptions::new();
    let [connect, first_byte, between_bytes] = client.host_timeouts();
    // A host that does not support one of these still has the guest's deadline.
    let _ = options.set_connect_timeout(Some(nanos(connect)));
    let _ = options.set_first_byte_timeout(Some(nanos(first_byte)));
    let _ = options.set_between_bytes_timeout(Some(nanos(between_bytes)));

    let future = outgoing_handler::handle(request, Some(options)).map_err(fail)?;
    write_body(body, &prepared.body).map_err(|cause| Error::Unreachable {
        url: url.clone(),
        cause,
    })?;
    let response = wait_for_head(&future, deadline)
        .ok_or_else(|| timeout(&url, client))?
        .map_err(fail)?;
    let result = read_response(&response, client, &url, deadline);
    drop(response);
    drop(future);
    result
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    if !bytes.is_empty() {
        let mut stream = body
            .write()
            .map_err(|()| "the request body is closed".to_owned())?;
        stream
            .write_all(bytes)
            .and_then(|()| std::io::Write::flush(&mut stream))
            .map_err(|e| format!("cannot send the request body: {e}"))?;
    }
    OutgoingBody::finish(body, None).map_err(|code| code.to_string())
}

/// The response head, `None` if the deadline passed first.
fn wait_for_head(
    future: &FutureIncomingResponse,
    deadline: u64,
) -> Option<Result<IncomingResponse, ErrorCode>> {
    loop {
        match future.get() {
            Some(Ok(result)) => return Some(result),
            Some(Err(())) => {
                return Some(Err(ErrorCode::InternalError(Some(
                    "the response was already taken".to_owned(),
                ))));
            }
            None => {}
        }
        if monotonic_clock::now() >= deadline {
            return None;
        }
        let ready = future.subscribe();
        wait(&ready, deadline);
    }
}

/// Blocks until `ready` or the deadline; `true` if `ready` fired.
fn wait(ready: &Pollable, deadline: u64) -> bool {
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll(&[ready, &timer]).contains(&0)
}

fn read_response(
    response: &IncomingResponse,
    client: &Client,
    url: &str,
    deadline: u64,
) -> Result<ClientResponse, Error> {
    let status = response.status();
    let headers = headers_of(response.headers());
    let limit = client.max_response_body;
    if headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        return Err(Error::ResponseTooLarge {
            url: url.to_owned(),
            limit,
        });
    }
    let body = response.consume().map_err(|()| Error::Unreachable {
        url: url.to_owned(),
        cause: "the response body was already taken".to_owned(),
    })?;
    let stream = body.stream().map_err(|()| Error::Unreachable {
        url: url.to_owned(),
        cause: "the response body was already taken".to_owned(),
    })?;
    let bytes = read_all(&stream, limit, deadline, url, client);
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(ClientResponse::new(url, status, headers, bytes?))
}

fn read_all(
    stream: &InputStream,
    limit: usize,
    deadline: u64,
    url: &str,
    client: &Client,
) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    loop {
        match stream.read(READ_CHUNK) {
            Ok(chunk) if chunk.is_empty() => {
                let ready = stream.subscribe();
                if !wait(&ready, deadline) {
                    return Err(timeout(url, client));
                }
            }
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Err(Error::ResponseTooLarge {
                        url: url.to_owned(),
                        limit,
                    });
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(code) => error_of(code, url, client),
                    None => Error::Unreachable {
                        url: url.to_owned(),
                        cause: e.to_debug_string(),
                    },
                });
            }
        }
    }
}

fn timeout(url: &str, client: &Client) -> Error {
    Error::Timeout {
        url: url.to_owned(),
        after: client.timeout,
    }
}

/// The SDK error for a `wasi:http` error code, naming what to check.
fn error_of(code: ErrorCode, url: &str, client: &Client) -> Error {
    let [connect, first_byte, between_bytes] = client.host_timeouts();
    let timeout_after = |after: Duration| Error::Timeout {
        url: url.to_owned(),
        after,
    };
    let unreachable = |cause: String| Error::Unreachable {
        url: url.to_owned(),
        cause,
    };
    match code {
        ErrorCode::HttpRequestDenied => Error::OutboundDenied {
            url: url.to_owned(),
        },
        ErrorCode::DnsTimeout | ErrorCode::ConnectionTimeout => timeout_after(connect),
        ErrorCode::HttpResponseTimeout => timeout_after(first_byte),
        ErrorCode::ConnectionReadTimeout => timeout_after(between_bytes.min(first_byte)),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => unreachable(
            "no such host: check the Service's name and namespace (kubectl get svc -A)".to_owned(),
        ),
        ErrorCode::ConnectionRefused => unreachable(
            "connection refused: does the Service have ready endpoints (kubectl get endpoints)?"
                .to_owned(),
        ),
        other => unreachable(other.to_string()),
    }
}

fn method_of(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_owned()),
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
