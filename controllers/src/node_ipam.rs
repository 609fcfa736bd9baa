//! The node IPAM controller: gives every Node a `spec.podCIDR` carved out of the cluster's
//! pod range, from which its agent hands out pod IPs (Kubernetes' `nodeipam` controller with
//! the range allocator).
//!
//! Sextant's default pod range lies inside 127.0.0.0/8, so every pod address is bindable on
//! loopback without network setup; on real networks the range is `--cluster-cidr`.
//!
//! Level-triggered on Nodes: a node without a range gets the lowest free one; a range once
//! given never changes (pods hold addresses from it). Ranges in use are read from the Nodes
//! themselves on every reconcile, so nothing is lost when leadership moves.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, future};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::{Error, retry_soon};

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let nodes = Api::<Node>::all(ctx.client.clone());
    Controller::new(nodes, watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, Arc::new(ctx))
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let api = Api::<Node>::all(ctx.client.clone());
    let used: BTreeSet<Ipv4Net> = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok())
        .collect();
    let ipam = &ctx.config.ipam;
    let Some(range) = first_free(ipam.cluster_cidr, ipam.node_mask, &used) else {
        tracing::warn!(node = %node.name_any(), cidr = %ipam.cluster_cidr, "the cluster's pod range is exhausted; widen --cluster-cidr");
        return Ok(Action::requeue(ctx.config.resync));
    };
    let patch = serde_json::json!({"spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]}});
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    tracing::info!(node = %node.name_any(), %range, "allocated the node's pod range");
    Ok(Action::await_change())
}

/// The lowest `/mask` subnet of `cluster` that no node holds.
fn first_free(cluster: Ipv4Net, mask: u8, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
    cluster
        .subnets(mask.max(cluster.prefix_len()))
        .ok()?
        .find(|s| !used.iter().any(|u| u.contains(s) || s.contains(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_handed_out_lowest_first_and_never_overlap() {
        let cluster: Ipv4Net = "127.128.0.0/16".parse().unwrap();
        let mut used = BTreeSet::new();
        let a = first_free(cluster, 24, &used).unwrap();
        assert_eq!(a.to_string(), "127.128.0.0/24");
        used.insert(a);
        used.insert("127.128.1.0/25".parse().unwrap());
        assert_eq!(
            first_free(cluster, 24, &used).unwrap().to_string(),
            "127.128.2.0/24"
        );
        let tiny: Ipv4Net = "127.128.0.0/24".parse().unwrap();
        assert_eq!(first_free(tiny, 24, &used), None);
    }
}
