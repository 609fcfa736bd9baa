//! What an operator may tune in the node agent (the `wasm-kubelet` and `sextant server` flags).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// Pods' directories and logs, the module cache and compiled code.
    pub data_dir: PathBuf,
    /// Where the kubelet's HTTPS endpoint listens (port 0: any free port, published in the
    /// Node's `daemonEndpoints`).
    pub kubelet_listen: SocketAddr,
    /// The address the API server and other nodes reach this node at (its `InternalIP`).
    pub node_ip: IpAddr,
    /// The kubelet's serving certificate and key (PEM), and the CA whose client
    /// certificates it accepts (the API server's).
    pub serving: Option<ServingCert>,
    /// How long the node's Lease lasts: it is renewed every quarter of this.
    pub lease_duration: Duration,
    /// How often the Node's status is rewritten when nothing changed.
    pub status_interval: Duration,
    pub max_pods: u32,
    /// The CRI runtime's socket (`--cri-socket`): OCI containers go to it. Without one the
    /// node runs wasm only, and says so by lacking the `sextant.dev/oci` label.
    pub cri_socket: Option<PathBuf>,
    /// The node's pod range, when not given by the controller manager (`--pod-cidr`).
    pub pod_cidr: Option<ipnet::Ipv4Net>,
    /// First and longest wait before restarting a container that exited (Kubernetes: 10 s
    /// doubling up to 5 min, forgotten after 10 min of running well).
    pub crash_backoff: (Duration, Duration),
    /// The same for retrying a failed module fetch (`ImagePullBackOff`).
    pub pull_backoff: (Duration, Duration),
}

#[derive(Clone)]
pub struct ServingCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServingCert { .. }")
    }
}

impl Config {
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            kubelet_listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
            node_ip: Ipv4Addr::LOCALHOST.into(),
            serving: None,
            lease_duration: Duration::from_secs(40),
            status_interval: Duration::from_secs(10),
            max_pods: 5000,
            cri_socket: None,
            pod_cidr: None,
            crash_backoff: (Duration::from_secs(10), Duration::from_secs(300)),
            pull_backoff: (Duration::from_secs(10), Duration::from_secs(300)),
        }
    }
}
