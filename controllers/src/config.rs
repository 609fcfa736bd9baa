//! What an operator may tune in the controller manager (`sextant server` flags).

use std::time::Duration;

use sextant_leader::Timing;

#[derive(Debug, Clone)]
pub struct Config {
    /// This process's name in the leader Lease and in the Events it records.
    pub identity: String,
    pub leader: Timing,
    /// A node whose Lease has not been renewed for this long is NotReady/Unknown
    /// (kube-controller-manager's `--node-monitor-grace-period`, 40 s).
    pub node_grace_period: Duration,
    /// How long pods stay on an unreachable node before they are evicted (Kubernetes adds a
    /// 300 s toleration to every pod; ours is shorter so that a node's work moves sooner).
    pub pod_eviction_timeout: Duration,
    /// How often a reconciler revisits an object even when nothing changed.
    pub resync: Duration,
    pub ipam: Ipam,
}

/// The pod address range, split among nodes (`--cluster-cidr`, `--node-cidr-mask-size`).
#[derive(Debug, Clone, Copy)]
pub struct Ipam {
    pub cluster_cidr: ipnet::Ipv4Net,
    pub node_mask: u8,
}

impl Default for Ipam {
    /// Inside loopback, so pod addresses need no network setup: 1,024 nodes of 8,190 pods
    /// (a wasm node holds thousands of pods, far beyond Kubernetes' 110).
    fn default() -> Self {
        Ipam {
            cluster_cidr: DEFAULT_CLUSTER_CIDR.parse().expect("a valid CIDR"),
            node_mask: 19,
        }
    }
}

pub const DEFAULT_CLUSTER_CIDR: &str = "127.128.0.0/9";

impl Config {
    pub fn new(identity: impl Into<String>) -> Self {
        Config {
            identity: identity.into(),
            leader: Timing::default(),
            node_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(60),
            resync: Duration::from_secs(300),
            ipam: Ipam::default(),
        }
    }
}
