//! When a node was last heard from, and what its conditions become when it falls silent.
//!
//! A node proves it is alive two ways: its kubelet renews the node's Lease in
//! `kube-node-lease` (cheap, every few seconds) and posts the node's status, whose Ready
//! condition carries `lastHeartbeatTime`. As in Kubernetes, neither timestamp is compared
//! with this process's clock: what counts is the local time at which either was *seen to
//! change* (the "probe time"), so a kubelet whose clock is off is judged fairly, and after
//! a restart or a change of leader every node gets a full grace period before it is
//! declared gone.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The conditions a kubelet reports and the controller turns Unknown when it goes silent.
/// `NetworkUnavailable` is left alone: the network plugin, not the kubelet, owns it.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The probe time of every node seen, shared by the Lease watch and the node reconciler.
/// A `std` mutex: nothing awaits while it is held.
#[derive(Default)]
pub(crate) struct Heartbeats {
    nodes: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    lease: Option<Timestamp>,
    status: Option<Timestamp>,
    /// The local time either of the two last moved.
    at: Timestamp,
}

impl Heartbeats {
    /// Records a Lease's `renewTime` for `node`, seen at `now`.
    pub(crate) fn lease(&self, node: &str, renewed: Option<Timestamp>, now: Timestamp) {
        let mut nodes = self.nodes.lock().expect("heartbeats lock");
        match nodes.get_mut(node) {
            Some(seen) if seen.lease != renewed => {
                seen.lease = renewed;
                seen.at = now;
            }
            Some(_) => {}
            None => {
                nodes.insert(
                    node.to_owned(),
                    Seen {
                        lease: renewed,
                        status: None,
                        at: now,
                    },
                );
            }
        }
    }

    /// Records the node's own status heartbeat and returns its probe time. A node first
    /// seen now counts as heard from now — except one whose kubelet never posted a Ready
    /// condition, which counts from its creation (it has had its chance already).
    pub(crate) fn probe(&self, node: &Node, now: Timestamp) -> Timestamp {
        let name = node.metadata.name.clone().unwrap_or_default();
        let beat = ready(node).map(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        let mut nodes = self.nodes.lock().expect("heartbeats lock");
        let seen = nodes.entry(name).or_insert_with(|| Seen {
            lease: None,
            status: beat.flatten(),
            at: match beat {
                Some(_) => now,
                None => node
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or(now, |t| t.0),
            },
        });
        if let Some(beat) = beat
            && seen.status != beat
        {
            seen.status = beat;
            seen.at = now;
        }
        seen.at
    }

    /// Forgets the nodes `keep` rejects (deleted ones), so the map does not grow forever.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.nodes
            .lock()
            .expect("heartbeats lock")
            .retain(|name, _| keep(name));
    }
}

pub(crate) fn ready(node: &Node) -> Option<&NodeCondition> {
    condition(node, "Ready")
}

pub(crate) fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// `True`, `False` or `Unknown`; a node with no Ready condition yet is `Unknown`.
pub(crate) fn ready_status(node: &Node) -> &str {
    ready(node).map_or("Unknown", |c| c.status.as_str())
}

/// The conditions of a node silent past its grace period (Kubernetes'
/// `tryUpdateNodeHealth`): each watched condition becomes `Unknown`, reason
/// `NodeStatusUnknown`, "Kubelet stopped posting node status."; one the kubelet never
/// posted is added as `Unknown`, reason `NodeStatusNeverUpdated`. `None` when they already
/// say so. Heartbeat times are kept: they still tell when the kubelet was last heard.
pub(crate) fn silenced(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in WATCHED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// Node `n1`, created at 0, whose kubelet last posted Ready=`ready` at `beat` seconds.
    pub(crate) fn node(ready: &str, beat: i64) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": at(0).to_string()},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                       "lastHeartbeatTime": at(beat).to_string(),
                       "lastTransitionTime": at(0).to_string()}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_probe_time_is_when_a_heartbeat_was_seen_to_move() {
        let hb = Heartbeats::default();
        assert_eq!(
            hb.probe(&node("True", 5), at(100)),
            at(100),
            "first sight: a full grace"
        );
        assert_eq!(
            hb.probe(&node("True", 5), at(130)),
            at(100),
            "same heartbeat: no news"
        );
        hb.lease("n1", Some(at(7)), at(131));
        assert_eq!(
            hb.probe(&node("True", 5), at(140)),
            at(131),
            "a renewed Lease counts"
        );
        hb.lease("n1", Some(at(7)), at(150));
        assert_eq!(hb.probe(&node("True", 5), at(160)), at(131));
        assert_eq!(
            hb.probe(&node("True", 6), at(170)),
            at(170),
            "so does a new status"
        );
    }

    #[test]
    fn a_node_that_never_reported_counts_from_its_creation() {
        let hb = Heartbeats::default();
        let mut silent = node("True", 0);
        silent.status = None;
        assert_eq!(hb.probe(&silent, at(100)), at(0));
    }

    #[test]
    fn silence_turns_every_watched_condition_unknown_once() {
        let conditions = silenced(&node("True", 5), at(50)).unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_heartbeat_time, Some(Time(at(5))));
        assert_eq!(ready.last_transition_time, Some(Time(at(50))));
        let never = conditions
            .iter()
            .find(|c| c.type_ == "DiskPressure")
            .unwrap();
        assert_eq!(never.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(conditions.len(), 4);

        let mut after = node("True", 5);
        after.status.as_mut().unwrap().conditions = Some(conditions);
        assert!(silenced(&after, at(60)).is_none());
    }
}
