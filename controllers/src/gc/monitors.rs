//! Monitors: one watch per resource the API server serves that can be listed, watched and
//! deleted, all feeding the one ownership graph; and the kind → resource table that turns an
//! ownerReference's `apiVersion`/`kind` into a URL.
//!
//! Discovery runs again every [`DISCOVERY_PERIOD`] and whenever a CustomResourceDefinition
//! changes, so custom resources are collected like built-in ones: a new resource gets a
//! monitor, a resource no longer served loses its monitor and its objects leave the graph.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ObjectMeta, PartialObjectMeta};
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::graph::{Graph, Observed, Uid};
use super::queue::WorkQueue;

/// How often discovery runs even when no CRD changed (kube-controller-manager's GC resyncs
/// its monitors every 30 s too).
const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);
/// CRD writes come in bursts (create, then Established): one discovery after the burst.
const CRD_SETTLE: Duration = Duration::from_millis(300);

/// Resources the collector does not watch: Events are many, short-lived and never own
/// anything (Kubernetes' collector ignores them too).
fn ignored(ar: &ApiResource) -> bool {
    ar.plural == "events" && (ar.group.is_empty() || ar.group == "events.k8s.io")
}

fn is_crds(ar: &ApiResource) -> bool {
    ar.group == "apiextensions.k8s.io" && ar.plural == "customresourcedefinitions"
}

/// Kind → resource, for every served version, so ownerReferences resolve to URLs.
#[derive(Default)]
pub(crate) struct Mapper {
    /// (group, kind) → the resources serving it, the preferred version first.
    kinds: HashMap<(String, String), Vec<(ApiResource, bool)>>,
}

impl Mapper {
    fn new(discovery: &Discovery) -> Mapper {
        let mut kinds: HashMap<(String, String), Vec<(ApiResource, bool)>> = HashMap::new();
        for group in discovery.groups() {
            let preferred = group.preferred_version_or_latest().to_owned();
            let versions = std::iter::once(preferred.as_str())
                .chain(group.versions().filter(|v| *v != preferred));
            for version in versions {
                for (ar, caps) in group.versioned_resources(version) {
                    let namespaced = caps.scope == Scope::Namespaced;
                    kinds
                        .entry((ar.group.clone(), ar.kind.clone()))
                        .or_default()
                        .push((ar, namespaced));
                }
            }
        }
        Mapper { kinds }
    }

    /// The resource for an ownerReference's `apiVersion` and `kind`, and whether it is
    /// namespaced. The version named is used when served, the preferred one otherwise: the
    /// object is the same whichever version it is read in.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let all = self.kinds.get(&(group.to_owned(), kind.to_owned()))?;
        all.iter()
            .find(|(ar, _)| ar.version == version)
            .or_else(|| all.first())
            .cloned()
    }
}

struct Running {
    stop: CancellationToken,
    synced: Arc<AtomicBool>,
}

pub(crate) struct Monitors {
    client: kube::Client,
    graph: Arc<Mutex<Graph>>,
    queue: Arc<WorkQueue>,
    running: Mutex<HashMap<ApiResource, Running>>,
    mapper: RwLock<Arc<Mapper>>,
    crd_changed: tokio::sync::Notify,
    tasks: TaskTracker,
    /// Discovery has succeeded once: until then no resource is known, so nothing is synced.
    discovered: AtomicBool,
    shutdown: CancellationToken,
}

impl Monitors {
    pub fn new(
        client: kube::Client,
        graph: Arc<Mutex<Graph>>,
        queue: Arc<WorkQueue>,
        shutdown: CancellationToken,
    ) -> Self {
        Monitors {
            client,
            graph,
            queue,
            running: Mutex::default(),
            mapper: RwLock::default(),
            crd_changed: tokio::sync::Notify::new(),
            tasks: TaskTracker::new(),
            discovered: AtomicBool::new(false),
            shutdown,
        }
    }

    pub fn mapper(&self) -> Arc<Mapper> {
        self.mapper
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every monitor has listed its resource once: the graph holds every object that
    /// existed when it started. Removing an orphan or foreground finalizer waits for this,
    /// since a dependent missing from the graph would otherwise be missed.
    pub fn all_synced(&self) -> bool {
        self.discovered.load(Ordering::Acquire)
            && self
                .lock_running()
                .values()
                .all(|r| r.synced.load(Ordering::Acquire))
    }

    /// Discovers, starts and stops monitors, until shutdown; then waits for every monitor
    /// to stop.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.rediscover().await;
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                () = tokio::time::sleep(DISCOVERY_PERIOD) => {}
                () = self.crd_changed.notified() => {
                    tokio::time::sleep(CRD_SETTLE).await;
                }
            }
        }
        for (_, r) in self.lock_running().drain() {
            r.stop.cancel();
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    async fn rediscover(self: &Arc<Self>) {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: API discovery failed; keeping the current monitors and retrying");
                return;
            }
        };
        *self
            .mapper
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Mapper::new(&discovery));
        let wanted: HashSet<ApiResource> = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .filter(|(ar, caps)| {
                !ignored(ar)
                    && [verbs::LIST, verbs::WATCH, verbs::DELETE]
                        .iter()
                        .all(|v| caps.supports_operation(v))
            })
            .map(|(ar, _)| ar)
            .collect();
        let mut running = self.lock_running();
        running.retain(|ar, r| {
            let keep = wanted.contains(ar);
            if !keep {
                tracing::info!(resource = %ar.plural, group = %ar.group, "garbage collector: no longer served; monitor stopped");
                r.stop.cancel();
            }
            keep
        });
        for ar in wanted {
            if running.contains_key(&ar) {
                continue;
            }
            let stop = self.shutdown.child_token();
            let synced = Arc::new(AtomicBool::new(false));
            self.tasks.spawn(self.clone().monitor(
                Arc::new(ar.clone()),
                stop.clone(),
                synced.clone(),
            ));
            running.insert(ar, Running { stop, synced });
        }
        drop(running);
        self.discovered.store(true, Ordering::Release);
    }

    /// Watches one resource into the graph until `stop`; then its objects leave the graph
    /// (when the resource is no longer served they are gone, and their dependents are
    /// looked at again).
    async fn monitor(
        self: Arc<Self>,
        ar: Arc<ApiResource>,
        stop: CancellationToken,
        synced: Arc<AtomicBool>,
    ) {
        // Metadata only: ownerReferences and finalizers are all the graph needs.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &*ar);
        let events = watcher(api, watcher::Config::default()).default_backoff();
        let mut events = std::pin::pin!(events);
        // Uids listed since the last Init: what the relist found.
        let mut relisted: Option<HashSet<Uid>> = None;
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => break,
                e = events.next() => e,
            };
            let event = match event {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(resource = %ar.plural, group = %ar.group, error = %e, "garbage collector: watch failed; retrying with backoff");
                    continue;
                }
            };
            let wake = match event {
                watcher::Event::Init => {
                    relisted = Some(HashSet::new());
                    Vec::new()
                }
                watcher::Event::InitApply(obj) => {
                    if let (Some(seen), Some(uid)) = (relisted.as_mut(), obj.metadata.uid.as_ref())
                    {
                        seen.insert(uid.clone());
                    }
                    self.observe(&ar, &obj.metadata)
                }
                watcher::Event::InitDone => {
                    let seen = relisted.take().unwrap_or_default();
                    let wake = self.graph().retain(&ar, &seen);
                    synced.store(true, Ordering::Release);
                    wake
                }
                watcher::Event::Apply(obj) => self.observe(&ar, &obj.metadata),
                watcher::Event::Delete(obj) => {
                    let uid = obj.metadata.uid.unwrap_or_default();
                    self.changed(&ar);
                    self.graph().forget(&uid)
                }
            };
            self.queue.add_all(wake);
        }
        // Not on shutdown, nor when a new monitor took over the same resource.
        if !self.shutdown.is_cancelled() && !self.lock_running().contains_key(&*ar) {
            let wake = self.graph().retain(&ar, &HashSet::new());
            self.queue.add_all(wake);
        }
    }

    fn observe(&self, ar: &Arc<ApiResource>, meta: &ObjectMeta) -> Vec<Uid> {
        self.changed(ar);
        match Observed::from_meta(ar, meta) {
            Some(o) => self.graph().observe(o),
            None => Vec::new(),
        }
    }

    /// A CRD changed: what the API server serves may have changed with it.
    fn changed(&self, ar: &ApiResource) {
        if is_crds(ar) {
            self.crd_changed.notify_one();
        }
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<ApiResource, Running>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
