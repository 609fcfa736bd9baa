//! The pods bound to this node: a watch on them (field selector `spec.nodeName`), one task
//! per pod running its state machine (`lifecycle.rs`), and the reporter that writes their
//! statuses back (`status.rs`).
//!
//! Static pods (`static_pods.rs`) come from manifests in `DATA_DIR/manifests/` instead of the
//! API, and run the same way.
//!
//! Each pod's spec is also kept on disk (`pod.json` in its directory), so that an agent that
//! restarts while the control plane is unreachable runs the same pods again, and one that
//! reconnects after a partition reconciles by uid: pods still in the API keep running
//! untouched, pods deleted meanwhile are stopped, new ones start.

mod backoff;
mod container;
pub mod env;
mod exec;
mod ipam;
mod lifecycle;
pub mod probes;
mod service_env;
pub mod sources;
mod static_pods;
mod status;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use exec::{Containers, ExecTargets};
pub use ipam::Ipam;
pub use lifecycle::OUTBOUND_ANNOTATION;
pub(crate) use status::Reporter;

use crate::config::Config;
use crate::cri::Cri;
use crate::modules::{self, Fetcher, RegistryAuth};
use crate::wasm::Runtime;

/// What every pod's task shares.
pub(crate) struct Shared {
    pub client: kube::Client,
    pub config: Config,
    pub runtime: Runtime,
    pub fetcher: Fetcher,
    pub ipam: Ipam,
    pub reporter: Arc<Reporter>,
    /// The CRI runtime for OCI containers, when the node has one.
    pub cri: Option<Cri>,
    /// The runtime's name while it answers ready (container ids are `NAME://ID`).
    pub oci_ready: watch::Receiver<Option<String>>,
    /// Every container's runtime and CRI id, for exec.
    pub containers: Containers,
    /// The cluster's Services and their ready endpoints (the node's proxy keeps it).
    pub services: crate::proxy::ServiceTable,
}

impl Shared {
    pub fn pods_dir(&self) -> PathBuf {
        self.config.data_dir.join("pods")
    }

    /// `DATA_DIR/pods/<namespace>_<name>_<uid>`: the layout the kubelet endpoint reads logs from.
    pub fn pod_dir(&self, pod: &Pod) -> PathBuf {
        self.pods_dir().join(format!(
            "{}_{}_{}",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            pod.uid().unwrap_or_default()
        ))
    }

    /// The pod's address: the one it had (an adopted pod), or a new one, kept in its directory.
    pub fn pod_ip(&self, pod: &Pod, dir: &Path) -> Option<IpAddr> {
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return Some(self.config.node_ip);
        }
        let file = dir.join("ip");
        let kept = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .or_else(|| pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok());
        if let Some(ip) = kept
            && self.ipam.claim(ip)
        {
            return Some(ip.into());
        }
        let ip = self.ipam.allocate()?;
        if let Err(e) =
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&file, ip.to_string()))
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot record the pod's address");
        }
        Some(ip.into())
    }

    /// How the pod's wasm containers reach cluster Services (the node's service table, from
    /// the pod's namespace).
    pub fn service_resolver(&self, pod: &Pod) -> Option<crate::wasm::ServiceResolver> {
        use crate::wasm::ServiceRoute;
        let table = self.services.clone();
        let namespace = pod.namespace().unwrap_or_default();
        Some(Arc::new(move |host: &str, port: u16| {
            if let Some(endpoint) = table.resolve(host, port, &namespace) {
                return Some(ServiceRoute::Endpoint(endpoint));
            }
            let bare_service =
                !host.contains('.') && table.services_in(&namespace).iter().any(|s| s.name == host);
            (table.is_cluster_name(host) || bare_service).then_some(ServiceRoute::NoEndpoint)
        }))
    }

    /// The Service environment variables of a pod's containers (see `service_env.rs`).
    pub fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        let namespace = pod.namespace().unwrap_or_default();
        let mut services = self.services.services_in(&namespace);
        if namespace != "default" {
            services.extend(
                self.services
                    .services_in("default")
                    .into_iter()
                    .filter(|s| s.name == "kubernetes"),
            );
        }
        service_env::vars(pod, &services)
    }

    /// Registry credentials from the pod's `imagePullSecrets`; a secret that cannot be read
    /// is skipped (the fetch then says the registry refused).
    pub async fn registry_auth(&self, pod: &Pod) -> Vec<RegistryAuth> {
        let Some(names) = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
        else {
            return Vec::new();
        };
        let api: Api<Secret> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let mut auths = Vec::new();
        for name in names {
            if let Ok(Some(secret)) = api.get_opt(&name.name).await
                && let Some(json) = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(".dockerconfigjson"))
            {
                auths.extend(modules::auths_from_docker_config(&json.0));
            }
        }
        auths
    }
}

struct Worker {
    pod: watch::Sender<Arc<Pod>>,
    gone: CancellationToken,
}

/// Runs the node's pods until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    for pod in load_kept(&shared.pods_dir()) {
        start(&shared, &mut workers, &mut tasks, &shutdown, pod);
    }
    let manifests = shared.config.data_dir.join("manifests");
    let mut statics: HashSet<String> = HashSet::new();
    for pod in static_pods::load(&manifests, &shared.config.node_name) {
        statics.extend(pod.uid());
        start(&shared, &mut workers, &mut tasks, &shutdown, pod);
    }
    // Mirror pods are written one round at a time, beside the loop, so that an unreachable
    // API never holds up the pods.
    let mut mirroring: JoinSet<()> = JoinSet::new();
    let mut rescan = tokio::time::interval(static_pods::RESCAN);
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.config.node_name);
    let mut events = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut listed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = tasks.join_next() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                }
            }
            Some(_) = mirroring.join_next() => {}
            _ = rescan.tick() => {
                let pods = static_pods::load(&manifests, &shared.config.node_name);
                let now: HashSet<String> = pods.iter().filter_map(|p| p.uid()).collect();
                for (uid, w) in &workers {
                    if statics.contains(uid) && !now.contains(uid) {
                        w.gone.cancel();
                    }
                }
                for pod in &pods {
                    start(&shared, &mut workers, &mut tasks, &shutdown, pod.clone());
                }
                statics = now;
                if mirroring.is_empty() {
                    let client = shared.client.clone();
                    let node = shared.config.node_name.clone();
                    mirroring.spawn(async move { static_pods::mirror(&client, &node, &pods).await });
                }
            }
            ev = events.next() => match ev {
                // Mirror pods are the API's copies of static pods, which run from their files;
                // deleting one only needs the node's final word.
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) if static_pods::is_mirror(&pod) => {
                    if pod.metadata.deletion_timestamp.is_some() {
                        let client = shared.client.clone();
                        mirroring.spawn(async move { static_pods::delete_mirror(&client, &pod).await });
                    }
                }
                Some(Ok(watcher::Event::Apply(pod))) => {
                    start(&shared, &mut workers, &mut tasks, &shutdown, Arc::new(pod));
                }
                Some(Ok(watcher::Event::InitApply(pod))) => {
                    listed.insert(pod.uid().unwrap_or_default());
                    start(&shared, &mut workers, &mut tasks, &shutdown, Arc::new(pod));
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(w) = workers.get(&pod.uid().unwrap_or_default()) {
                        w.gone.cancel();
                    }
                }
                Some(Ok(watcher::Event::Init)) => listed.clear(),
                Some(Ok(watcher::Event::InitDone)) => {
                    // Pods deleted while the watch was down (or while the agent was off).
                    for (uid, w) in &workers {
                        if !listed.contains(uid) && !statics.contains(uid) {
                            w.gone.cancel();
                        }
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "the pod watch failed; pods keep running, retrying"),
                None => break,
            }
        }
    }
    drop(workers);
    mirroring.shutdown().await;
    while tasks.join_next().await.is_some() {}
}

/// Hands the pod to its task, starting one for a pod not seen before.
fn start(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, Worker>,
    tasks: &mut JoinSet<String>,
    shutdown: &CancellationToken,
    pod: Arc<Pod>,
) {
    let uid = pod.uid().unwrap_or_default();
    keep(&shared.pod_dir(&pod), &pod);
    if let Some(w) = workers.get(&uid) {
        w.pod.send_replace(pod);
        return;
    }
    let (tx, rx) = watch::channel(pod);
    let gone = CancellationToken::new();
    let run = lifecycle::run(shared.clone(), rx, gone.clone(), shutdown.clone());
    let key = uid.clone();
    tasks.spawn(async move {
        run.await;
        key
    });
    workers.insert(uid, Worker { pod: tx, gone });
}

/// Writes the pod's object to its directory, for the next start of the agent.
fn keep(dir: &Path, pod: &Pod) {
    let write = std::fs::create_dir_all(dir).and_then(|()| {
        let json = serde_json::to_vec(pod).map_err(std::io::Error::other)?;
        let tmp = dir.join("pod.json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, dir.join("pod.json"))
    });
    if let Err(e) = write {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep the pod's spec on disk");
    }
}

/// The pods a previous run of the agent was running.
fn load_kept(pods_dir: &Path) -> Vec<Arc<Pod>> {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let bytes = std::fs::read(e.path().join("pod.json")).ok()?;
            match serde_json::from_slice::<Pod>(&bytes) {
                Ok(p) => Some(Arc::new(p)),
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), error = %err, "skipping a kept pod that cannot be read");
                    None
                }
            }
        })
        .collect()
}
