//! A `kube::Client` that reaches this process's own API router without a socket: the
//! all-in-one server's scheduler and controllers talk to the API exactly as remote ones do
//! (same routes, same auth, same admission), minus TLS and TCP.

use axum::Router;
use http::HeaderValue;
use http::header::{AUTHORIZATION, USER_AGENT};
use tower::ServiceBuilder;

/// A client over `router` that authenticates every request with `token`. `component`
/// becomes the User-Agent, hence the default field manager of what the client writes
/// (`managedFields` then name "kube-scheduler" or "kube-controller-manager", as in Kubernetes).
pub fn client(router: Router, token: &str, component: &'static str) -> kube::Client {
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("tokens are printable ASCII (tokens::random_hex)");
    let agent = HeaderValue::from_str(&format!("{component}/{}", env!("CARGO_PKG_VERSION")))
        .expect("component names are ASCII");
    let service = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<kube::client::Body>| {
            req.headers_mut().insert(AUTHORIZATION, bearer.clone());
            req.headers_mut().insert(USER_AGENT, agent.clone());
            req
        })
        .service(router);
    kube::Client::new(service, "default")
}
