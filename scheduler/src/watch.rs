//! The watches that feed the cache and the queue: pods (every pod not yet ended, bound or
//! not, in one watch, as kube-scheduler's informer), nodes, and namespaces (their labels,
//! for affinity terms with a `namespaceSelector`).
//!
//! Each runs in its own task and turns objects into what the scheduler needs of them
//! there ([`PodInfo`], [`NodeFacts`]), so that decoding and reading objects happens beside
//! the scheduling loop, not in it. A (re)list arrives as one [`Change::Relisted`], so the
//! loop can replace its picture at once and drop what disappeared meanwhile.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::node::NodeFacts;
use crate::pod::PodInfo;

/// Room for this many changes between a watch and the loop: enough to absorb a burst of
/// pod creations, small enough that a stalled loop slows the watch instead of growing.
const CHANNEL: usize = 4096;

#[derive(Debug)]
pub enum Change<T> {
    Apply(T),
    Delete(T),
    /// Everything there is, after a (re)list.
    Relisted(Vec<T>),
}

/// A namespace's name and labels.
pub type NamespaceLabels = (String, BTreeMap<String, String>);

pub struct Feeds {
    pub pods: mpsc::Receiver<Change<Arc<PodInfo>>>,
    pub nodes: mpsc::Receiver<Change<NodeFacts>>,
    pub namespaces: mpsc::Receiver<Change<NamespaceLabels>>,
}

/// Starts the three watches in `tasks`; they stop at `stop` or when `Feeds` is dropped.
pub fn start(client: &kube::Client, tasks: &mut JoinSet<()>, stop: &CancellationToken) -> Feeds {
    // Ended pods hold nothing on their nodes; leaving them out of the watch (as
    // kube-scheduler does) turns a pod's end into a delete.
    let live = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let pods = feed(tasks, stop, Api::<Pod>::all(client.clone()), live, |p| {
        Arc::new(PodInfo::from_pod(p))
    });
    let nodes = feed(
        tasks,
        stop,
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        NodeFacts::from_node,
    );
    let namespaces = feed(
        tasks,
        stop,
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        |ns: &Namespace| {
            let meta = &ns.metadata;
            (
                meta.name.clone().unwrap_or_default(),
                meta.labels.clone().unwrap_or_default(),
            )
        },
    );
    Feeds {
        pods,
        nodes,
        namespaces,
    }
}

fn feed<K, T>(
    tasks: &mut JoinSet<()>,
    stop: &CancellationToken,
    api: Api<K>,
    config: watcher::Config,
    read: fn(&K) -> T,
) -> mpsc::Receiver<Change<T>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHANNEL);
    let stop = stop.clone();
    tasks.spawn(async move {
        let stream = watcher::watcher(api, config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut listing = Vec::new();
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = stream.next() => event,
            };
            let change = match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, kind = %K::kind(&K::DynamicType::default()), "scheduler watch failed; retrying with backoff");
                    continue;
                }
                Some(Ok(Event::Init)) => {
                    listing.clear();
                    continue;
                }
                Some(Ok(Event::InitApply(obj))) => {
                    listing.push(read(&obj));
                    continue;
                }
                Some(Ok(Event::InitDone)) => Change::Relisted(std::mem::take(&mut listing)),
                Some(Ok(Event::Apply(obj))) => Change::Apply(read(&obj)),
                Some(Ok(Event::Delete(obj))) => Change::Delete(read(&obj)),
            };
            if tx.send(change).await.is_err() {
                return;
            }
        }
    });
    rx
}
