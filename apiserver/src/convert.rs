//! Resources served in two groups from one storage: core `v1` Events and
//! `events.k8s.io/v1` Events are the same objects (as in Kubernetes), stored in the core form
//! and converted on the way in and out.
//!
//! The mapping (events.k8s.io/v1 ↔ core v1): `regarding` ↔ `involvedObject`, `note` ↔
//! `message`, `reportingController` ↔ `reportingComponent`, `deprecatedSource` ↔ `source`,
//! `deprecatedFirstTimestamp` ↔ `firstTimestamp`, `deprecatedLastTimestamp` ↔
//! `lastTimestamp`, `deprecatedCount` ↔ `count`; `eventTime`, `series`, `action`, `reason`,
//! `related`, `type` and `reportingInstance` are the same in both.

use serde_json::{Map, Value, json};
use sextant_api::resources::ResourceInfo;

/// (events.k8s.io/v1 name, core v1 name)
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn is_events_group(r: &ResourceInfo) -> bool {
    r.group == "events.k8s.io" && r.kind == "Event"
}

/// Where objects of `r` are stored, when another resource owns the storage.
pub fn storage_prefix(r: &ResourceInfo) -> Option<&'static str> {
    is_events_group(r).then_some("/registry/core/events/")
}

fn rename(obj: &mut Value, pairs: impl Iterator<Item = (&'static str, &'static str)>) {
    if let Some(map) = obj.as_object_mut() {
        let mut moved: Map<String, Value> = Map::new();
        for (from, to) in pairs {
            if let Some(v) = map.remove(from) {
                moved.insert(to.to_owned(), v);
            }
        }
        map.extend(moved);
    }
}

/// The stored (core) form of an object written through `r`.
pub fn to_stored(r: &ResourceInfo, mut obj: Value) -> Value {
    if is_events_group(r) {
        rename(&mut obj, EVENT_FIELDS.iter().copied());
        obj["apiVersion"] = json!("v1");
    }
    obj
}

/// The form `r` serves of a stored object.
pub fn to_served(r: &ResourceInfo, mut obj: Value) -> Value {
    if is_events_group(r) {
        rename(&mut obj, EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)));
        obj["apiVersion"] = json!("events.k8s.io/v1");
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_groups() {
        let events = sextant_api::resources::builtin()
            .into_iter()
            .find(|r| r.group == "events.k8s.io")
            .unwrap();
        let new_style = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "web"}, "note": "Scheduled", "reason": "Scheduled",
            "reportingController": "sextant-scheduler", "type": "Normal"});
        let stored = to_stored(&events, new_style.clone());
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "Scheduled");
        assert_eq!(stored["reportingComponent"], "sextant-scheduler");
        assert_eq!(stored["apiVersion"], "v1");
        assert!(stored.get("regarding").is_none());
        assert_eq!(to_served(&events, stored), new_style);
        assert_eq!(storage_prefix(&events), Some("/registry/core/events/"));
    }
}
