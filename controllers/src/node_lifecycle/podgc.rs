//! Pod garbage collection (Kubernetes' `PodGC`): pods no kubelet will ever finish are
//! removed with a force delete (grace period 0), since no kubelet is left to confirm a
//! graceful one.
//!
//! - A pod bound to a Node that no longer exists. The Node must have been missing for a
//!   grace period (Kubernetes' 40 s quarantine; here `--node-monitor-grace-period`), and its
//!   absence is confirmed with the API, so a pod bound a moment before its Node's object
//!   reached our cache is not taken for an orphan.
//! - A pod being deleted that was never scheduled: no kubelet owns it.
//!
//! A periodic sweep over the pod cache, as in Kubernetes (every 20 s there), rather than a
//! reconciler per pod: orphans are rare, and the sweep costs no API call when there are
//! none. The period is the grace period, capped at 20 s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use super::{State, force_delete};
use crate::endpoints::filled;
use crate::error::Error;

const MAX_PERIOD: Duration = Duration::from_secs(20);

pub(crate) async fn run(state: Arc<State>, shutdown: CancellationToken) {
    let period = state.grace.clamp(Duration::from_secs(1), MAX_PERIOD);
    let mut tick = tokio::time::interval(period);
    let mut missing: HashMap<String, Timestamp> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !filled(&state.pods) || !nodes_filled(&state) {
            continue;
        }
        if let Err(error) = sweep(&state, &mut missing, Timestamp::now()).await {
            tracing::warn!(%error, "pod garbage collection failed; it runs again shortly");
        }
    }
}

fn nodes_filled(state: &State) -> bool {
    use futures::FutureExt;
    state
        .nodes
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// One pass. `missing` remembers since when each absent Node has been missing.
async fn sweep(
    state: &State,
    missing: &mut HashMap<String, Timestamp>,
    now: Timestamp,
) -> Result<(), Error> {
    let nodes: HashSet<String> = state.nodes.state().iter().map(|n| n.name_any()).collect();
    state.heartbeats.retain(|n| nodes.contains(n));
    let pods = state.pods.state();
    let absent_now: HashSet<&str> = pods
        .iter()
        .filter_map(|p| node_of(p))
        .filter(|n| !nodes.contains(*n))
        .collect();
    missing.retain(|n, _| absent_now.contains(n.as_str()));
    let quarantine =
        jiff::SignedDuration::try_from(state.grace).unwrap_or(jiff::SignedDuration::MAX);
    let mut confirmed: HashMap<String, bool> = HashMap::new();
    for pod in &pods {
        match node_of(pod) {
            None if pod.metadata.deletion_timestamp.is_some() => force_delete(state, pod).await?,
            None => {}
            Some(node) if absent_now.contains(node) => {
                let since = *missing.entry(node.to_owned()).or_insert(now);
                if now.duration_since(since) < quarantine {
                    continue;
                }
                if !confirmed.contains_key(node) {
                    let gone = Api::<Node>::all(state.client.clone())
                        .get_opt(node)
                        .await?
                        .is_none();
                    confirmed.insert(node.to_owned(), gone);
                }
                if confirmed[node] {
                    tracing::info!(pod = %pod.name_any(), node, "deleting a pod whose node is gone");
                    force_delete(state, pod).await?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}
