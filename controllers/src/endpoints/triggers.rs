//! Which Services to revisit when a pod changes: those that selected the pod before the
//! change and those that select it after (Kubernetes' `GetServicesToUpdateOnPodChange`).
//! Looking only at the new pod would miss the Service a relabelled pod just left, whose
//! endpoints would keep the pod until the next resync.
//!
//! The pod cache is filled here, by hand, rather than by `reflector()`: the previous copy of
//! each pod must be read from the cache *before* the event replaces it.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt, future, stream};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};

use super::pod::selects;

/// Watches every pod into `writer` and yields the Services each change concerns, read from
/// `services` (the Service controller's own cache).
pub(crate) fn service_triggers(
    pods: Api<Pod>,
    writer: Writer<Pod>,
    services: Store<Service>,
) -> impl Stream<Item = ObjectRef<Service>> + Send + 'static {
    let mut triggers = Triggers::new(writer, services);
    watcher(pods, watcher::Config::default())
        .default_backoff()
        .filter_map(|event| {
            future::ready(match event {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(%error, "pod watch failed; it restarts after a backoff");
                    None
                }
            })
        })
        .flat_map(move |event| stream::iter(triggers.apply(event)))
}

struct Triggers {
    writer: Writer<Pod>,
    pods: Store<Pod>,
    services: Store<Service>,
    /// The pods seen so far in a relist; those missing from it at its end were deleted
    /// while the watch was down, and their Services must hear about it.
    relisted: Option<HashSet<ObjectRef<Pod>>>,
}

impl Triggers {
    fn new(writer: Writer<Pod>, services: Store<Service>) -> Self {
        Triggers {
            pods: writer.as_reader(),
            writer,
            services,
            relisted: None,
        }
    }

    /// Records `event` in the pod cache and returns the Services it concerns.
    fn apply(&mut self, event: watcher::Event<Pod>) -> Vec<ObjectRef<Service>> {
        // The pods whose Services are concerned: the one in the event, its previous copy,
        // and at the end of a relist those that did not come back.
        let mut earlier: Vec<Arc<Pod>> = Vec::new();
        let mut current: Option<&Pod> = None;
        match &event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = ObjectRef::from_obj(pod);
                earlier.extend(self.pods.get(&key));
                if let Some(seen) = &mut self.relisted {
                    seen.insert(key);
                }
                current = Some(pod);
            }
            watcher::Event::Delete(pod) => {
                earlier.extend(self.pods.get(&ObjectRef::from_obj(pod)));
                current = Some(pod);
            }
            watcher::Event::Init => self.relisted = Some(HashSet::new()),
            watcher::Event::InitDone => {
                let seen = self.relisted.take().unwrap_or_default();
                earlier = self
                    .pods
                    .state()
                    .into_iter()
                    .filter(|p| !seen.contains(&ObjectRef::from_obj(p.as_ref())))
                    .collect();
            }
        }
        let concerned: Vec<&Pod> = earlier.iter().map(AsRef::as_ref).chain(current).collect();
        let services = self.selecting(&concerned);
        self.writer.apply_watcher_event(&event);
        services
    }

    fn selecting(&self, pods: &[&Pod]) -> Vec<ObjectRef<Service>> {
        if pods.is_empty() {
            return Vec::new();
        }
        let found: HashSet<ObjectRef<Service>> = self
            .services
            .state()
            .iter()
            .filter(|svc| pods.iter().any(|pod| selects(svc, pod)))
            .map(|svc| ObjectRef::from_obj(svc.as_ref()))
            .collect();
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use serde_json::json;

    use super::super::pod::fixtures::{pod, service};
    use super::*;

    fn triggers_with_web_service() -> Triggers {
        let (services, mut svc_writer) = reflector::store();
        svc_writer.apply_watcher_event(&watcher::Event::Apply(service(json!(8080))));
        Triggers::new(reflector::store().1, services)
    }

    fn names(refs: Vec<ObjectRef<Service>>) -> Vec<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_pod_that_leaves_a_service_still_tells_it() {
        let mut t = triggers_with_web_service();
        let web = pod("a", "10.0.0.1").build();
        assert_eq!(names(t.apply(watcher::Event::Apply(web))), ["web"]);
        let relabelled = pod("a", "10.0.0.1").label("app", "db").build();
        assert_eq!(
            names(t.apply(watcher::Event::Apply(relabelled.clone()))),
            ["web"]
        );
        assert!(
            t.apply(watcher::Event::Apply(relabelled)).is_empty(),
            "once the cache holds the new labels, the old Service is no longer concerned"
        );
    }

    #[test]
    fn deletions_missed_while_the_watch_was_down_reach_their_service() {
        let mut t = triggers_with_web_service();
        t.apply(watcher::Event::Apply(pod("a", "10.0.0.1").build()));
        t.apply(watcher::Event::Apply(
            pod("b", "10.0.0.2").label("app", "db").build(),
        ));
        assert!(t.apply(watcher::Event::Init).is_empty());
        t.apply(watcher::Event::InitApply(
            pod("b", "10.0.0.2").label("app", "db").build(),
        ));
        assert_eq!(
            names(t.apply(watcher::Event::InitDone)),
            ["web"],
            "pod a is gone"
        );
        assert_eq!(t.pods.state().len(), 1);
    }
}
