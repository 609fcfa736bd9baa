//! The CRI runtime's health, as the node shows it: a task asks the runtime for its `Status`
//! every few seconds and publishes whether it is ready (as the runtime's name, which
//! container ids are prefixed with: `containerd://…`). The Node's `sextant.dev/oci` label
//! follows it (see [`super::run`]), so a node whose containerd died stops receiving OCI
//! pods, and gets them again once it is back; wasm pods are unaffected either way.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cri::Cri;

/// How often the runtime is asked while it answers as before.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Publishes the runtime's name while it is ready (`None` while it is not) until
/// `shutdown`, logging each change with what the runtime said.
pub async fn watch(cri: Cri, ready: watch::Sender<Option<String>>, shutdown: CancellationToken) {
    let mut last: Option<bool> = None;
    loop {
        let now = match tokio::time::timeout(Duration::from_secs(10), cri.status()).await {
            Ok(Ok(info)) if info.ready => {
                if last != Some(true) {
                    tracing::info!(runtime = %info.name, version = %info.version, "the CRI runtime is ready");
                }
                Some(info.name)
            }
            Ok(Ok(info)) => {
                if last != Some(false) {
                    tracing::warn!(
                        runtime = %info.name,
                        message = info.message.as_deref().unwrap_or(""),
                        "the CRI runtime answers but is not ready; OCI containers wait for it"
                    );
                }
                None
            }
            Ok(Err(e)) => {
                if last != Some(false) {
                    tracing::warn!(error = %e, "the CRI runtime does not answer; OCI containers wait for it");
                }
                None
            }
            Err(_) => {
                if last != Some(false) {
                    tracing::warn!("the CRI runtime did not answer its Status call within 10 s");
                }
                None
            }
        };
        last = Some(now.is_some());
        ready.send_if_modified(|r| {
            let changed = *r != now;
            *r = now;
            changed
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
