//! The Node's status as this agent reports it: pure functions from what the agent knows
//! (the spec, the machine, the last status the API held) to the `status` it writes.

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::NodeSpec;
use super::capacity::{self, Machine, Resources};

/// What does not change while the agent runs, measured once.
#[derive(Debug, Clone)]
pub struct Facts {
    pub capacity: Resources,
    pub allocatable: Resources,
    pub node_info: NodeSystemInfo,
}

impl Facts {
    /// Measures this host for `spec`.
    pub fn measure(spec: &NodeSpec) -> Facts {
        let (capacity, allocatable) =
            capacity::resources(&Machine::measure(), spec.max_pods, &spec.capacity_overrides);
        Facts {
            capacity,
            allocatable,
            node_info: super::info::system_info(),
        }
    }
}

/// One condition as the agent means it: type, status, reason, message.
type Wanted = (&'static str, &'static str, &'static str, &'static str);

/// The conditions the agent owns. The pressure conditions are always False: the agent
/// does not evict (yet), and saying "no pressure" is what lets the scheduler use the node.
fn wanted(ready: bool) -> [Wanted; 4] {
    [
        if ready {
            (
                "Ready",
                "True",
                "KubeletReady",
                "wasm-kubelet is posting ready status",
            )
        } else {
            (
                "Ready",
                "False",
                "KubeletNotReady",
                "wasm-kubelet is starting its runtime",
            )
        },
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
    ]
}

/// The conditions to post at `now`: every heartbeat time is `now`; a transition time moves
/// only when the status differs from what `previous` (the API's copy) says, so a node that
/// stays Ready keeps the moment it became Ready — and one the node-lifecycle controller had
/// marked Unknown gets a fresh transition when it comes back.
pub fn conditions(ready: bool, previous: &[NodeCondition], now: Timestamp) -> Vec<NodeCondition> {
    wanted(ready)
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let transition = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// The full status to write through `nodes/<name>/status`. `previous` is the status the
/// API last returned (None when unknown).
pub fn build(
    spec: &NodeSpec,
    facts: &Facts,
    ready: bool,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let previous = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    NodeStatus {
        addresses: Some(spec.addresses.clone()),
        allocatable: Some(facts.allocatable.clone()),
        capacity: Some(facts.capacity.clone()),
        conditions: Some(conditions(ready, previous, now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(spec.kubelet_port),
            }),
        }),
        node_info: Some(facts.node_info.clone()),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn spec() -> NodeSpec {
        NodeSpec::new("n1", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 10250)
    }

    #[test]
    fn a_first_status_is_ready_with_everything_the_scheduler_reads() {
        let spec = spec();
        let facts = Facts::measure(&spec);
        let status = build(&spec, &facts, true, None, at(5));
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(json["addresses"][0]["type"], "InternalIP");
        assert_eq!(json["addresses"][0]["address"], "10.0.0.7");
        assert_eq!(json["capacity"]["pods"], "5000");
        assert!(json["allocatable"]["cpu"].is_string());
        assert_eq!(json["nodeInfo"]["kubeletVersion"], "v1.33.0-sextant");
        assert_eq!(
            json["nodeInfo"]["containerRuntimeVersion"],
            "wasmtime://48.0.8"
        );
        let conds = status.conditions.unwrap();
        let types: Vec<_> = conds
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("Ready", "True"),
                ("MemoryPressure", "False"),
                ("DiskPressure", "False"),
                ("PIDPressure", "False")
            ]
        );
        assert_eq!(conds[0].reason.as_deref(), Some("KubeletReady"));
        assert!(
            conds
                .iter()
                .all(|c| c.last_heartbeat_time == Some(Time(at(5))))
        );
        assert!(
            conds
                .iter()
                .all(|c| c.last_transition_time == Some(Time(at(5))))
        );
    }

    #[test]
    fn transition_times_move_only_when_the_status_changes() {
        let first = conditions(true, &[], at(0));
        let again = conditions(true, &first, at(10));
        assert_eq!(again[0].last_heartbeat_time, Some(Time(at(10))));
        assert_eq!(again[0].last_transition_time, Some(Time(at(0))));

        // The node-lifecycle controller marked the node Unknown while it was away.
        let mut silenced = again.clone();
        silenced[0].status = "Unknown".into();
        silenced[0].last_transition_time = Some(Time(at(50)));
        let back = conditions(true, &silenced, at(60));
        assert_eq!(back[0].status, "True");
        assert_eq!(back[0].last_transition_time, Some(Time(at(60))));
        assert_eq!(
            back[1].last_transition_time,
            Some(Time(at(0))),
            "MemoryPressure never changed"
        );

        let not_ready = conditions(false, &back, at(70));
        assert_eq!(not_ready[0].status, "False");
        assert_eq!(not_ready[0].reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(not_ready[0].last_transition_time, Some(Time(at(70))));
    }
}
