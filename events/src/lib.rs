//! Recording `events.k8s.io/v1` Events for the scheduler and the controllers.
//!
//! kube-rs has a `Recorder`, but it folds every Event with the same reason on the same
//! object into one series that keeps the *first* message: "Created pod: a" then "Created
//! pod: b" would show as "Created pod: a (x2)", and a pod's FailedScheduling Event would
//! keep its first list of reasons forever. client-go keys a series on the message too; this
//! recorder does the same and otherwise takes kube-rs's `Event` and `Reporter` as they are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType, Reporter};

/// How long a series stays open: a repeat after this starts a new Event (client-go: 6 min).
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// Open series kept; past this, expired ones go, then all (a repeat then makes a new Event).
const MAX_SERIES: usize = 4096;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    type_: &'static str,
    reason: String,
    action: String,
    note: Option<String>,
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    related: Option<(Option<String>, Option<String>, Option<String>)>,
}

struct Series {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    open: Arc<Mutex<HashMap<Key, Series>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            open: Arc::default(),
        }
    }

    /// Records `ev` about `regarding` (cluster-scoped objects' Events go to `default`, as in
    /// Kubernetes): a new Event, or the next count of the open series with the same message.
    pub async fn publish(
        &self,
        ev: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key(ev, regarding);
        let repeat = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            // Pruned only when full, so that a publish costs O(1) (the scheduler records
            // thousands of Events a second).
            if open.len() >= MAX_SERIES {
                open.retain(|_, s| s.last + SERIES_TTL > now);
                if open.len() >= MAX_SERIES {
                    open.clear();
                }
            }
            open.get_mut(&key)
                .filter(|s| s.last + SERIES_TTL > now)
                .map(|s| {
                    s.count += 1;
                    s.last = now;
                    (s.name.clone(), s.namespace.clone(), s.count)
                })
        };
        if let Some((name, namespace, count)) = repeat {
            let patch = serde_json::json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }});
            Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            return Ok(());
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(type_name(ev.type_).to_owned()),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key,
            Series {
                name,
                namespace,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

/// A Normal Event whose action is its reason (what most controllers record).
pub fn normal(reason: &str, note: String) -> Event {
    event(EventType::Normal, reason, note)
}

/// A Warning Event whose action is its reason.
pub fn warning(reason: &str, note: String) -> Event {
    event(EventType::Warning, reason, note)
}

fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn key(ev: &Event, regarding: &ObjectReference) -> Key {
    Key {
        type_: type_name(ev.type_),
        reason: ev.reason.clone(),
        action: ev.action.clone(),
        note: ev.note.clone(),
        regarding: (
            regarding.kind.clone(),
            regarding.namespace.clone(),
            regarding.name.clone(),
            regarding.uid.clone(),
        ),
        related: ev
            .secondary
            .as_ref()
            .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "SuccessfulCreate".into(),
            note: Some(note.into()),
            action: "Create".into(),
            secondary: None,
        }
    }

    #[test]
    fn a_series_is_keyed_on_the_message_too() {
        let r = ObjectReference {
            name: Some("rs".into()),
            ..ObjectReference::default()
        };
        assert!(key(&ev("Created pod: a"), &r) != key(&ev("Created pod: b"), &r));
        assert!(key(&ev("Created pod: a"), &r) == key(&ev("Created pod: a"), &r));
    }
}
