//! One proxied connection: the first endpoint that accepts, then bytes both ways until
//! either side closes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// Connects to the first of `targets` that accepts within `timeout` each: the round-robin
/// pick first, the others as fallbacks (an endpoint still listed ready may already be gone).
pub async fn connect_any(targets: &[SocketAddr], timeout: Duration) -> Option<TcpStream> {
    for target in targets {
        match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => tracing::debug!(%target, error = %e, "endpoint refused; trying the next"),
            Err(_) => tracing::debug!(%target, "endpoint did not answer in time; trying the next"),
        }
    }
    None
}

/// Serves one accepted connection: to the first endpoint that takes it, or closed at once
/// when none does.
pub(crate) async fn splice(mut inbound: TcpStream, targets: Vec<SocketAddr>, timeout: Duration) {
    let Some(mut outbound) = connect_any(&targets, timeout).await else {
        tracing::debug!(?targets, "no endpoint took the connection; closing it");
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        tracing::debug!(error = %e, "a proxied connection ended with an error");
    }
}
