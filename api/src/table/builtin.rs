//! The columns and cells of built-in kinds, after Kubernetes'
//! `pkg/printers/internalversion/printers.go`.
//!
//! Each kind has one arm in [`Printer::columns`] and one in [`Printer::cells`]; the two must
//! stay the same length, which the tests check for every kind.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::descriptions as d;
use super::{ColumnDefinition, human_duration, parse_time, since};
use crate::labels::Selector;

/// Which printer a kind gets. Kinds without a printer of their own in Kubernetes use its
/// default convertor ([`Printer::CreatedAt`]); unknown kinds are custom resources
/// ([`Printer::Age`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Printer {
    Pod,
    Deployment,
    ReplicaSet,
    ReplicationController,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Endpoints,
    EndpointSlice,
    Node,
    Namespace,
    ConfigMap,
    Secret,
    ServiceAccount,
    Event,
    Lease,
    RuntimeClass,
    ResourceQuota,
    CreatedAt,
    Age,
}

impl Printer {
    /// Any version of a group prints alike: Kubernetes converts to one internal type first.
    pub(super) fn for_kind(group: &str, kind: &str) -> Printer {
        match (group, kind) {
            ("", "Pod") => Printer::Pod,
            ("apps", "Deployment") => Printer::Deployment,
            ("apps", "ReplicaSet") => Printer::ReplicaSet,
            ("", "ReplicationController") => Printer::ReplicationController,
            ("apps", "StatefulSet") => Printer::StatefulSet,
            ("apps", "DaemonSet") => Printer::DaemonSet,
            ("batch", "Job") => Printer::Job,
            ("batch", "CronJob") => Printer::CronJob,
            ("", "Service") => Printer::Service,
            ("", "Endpoints") => Printer::Endpoints,
            ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
            ("", "Node") => Printer::Node,
            ("", "Namespace") => Printer::Namespace,
            ("", "ConfigMap") => Printer::ConfigMap,
            ("", "Secret") => Printer::Secret,
            ("", "ServiceAccount") => Printer::ServiceAccount,
            ("" | "events.k8s.io", "Event") => Printer::Event,
            ("coordination.k8s.io", "Lease") => Printer::Lease,
            ("node.k8s.io", "RuntimeClass") => Printer::RuntimeClass,
            ("", "ResourceQuota") => Printer::ResourceQuota,
            ("", "LimitRange" | "Binding" | "PodTemplate")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
            | ("apiregistration.k8s.io", "APIService") => Printer::CreatedAt,
            _ => Printer::Age,
        }
    }

    pub(super) fn columns(self) -> Vec<ColumnDefinition> {
        let c = ColumnDefinition::new;
        let name = c("Name", "string", d::NAME).name_format();
        let age = || c("Age", "string", d::CREATION_TIMESTAMP);
        let containers = || {
            c(
                "Containers",
                "string",
                "Names of each container in the template.",
            )
            .wide()
        };
        let images = || {
            c(
                "Images",
                "string",
                "Images referenced by each container in the template.",
            )
            .wide()
        };
        match self {
            Printer::Pod => vec![
                name,
                c(
                    "Ready",
                    "string",
                    "The aggregate readiness state of this pod for accepting traffic.",
                ),
                c(
                    "Status",
                    "string",
                    "The aggregate status of the containers in this pod.",
                ),
                c(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                ),
                age(),
                c("IP", "string", d::POD_IP).wide(),
                c("Node", "string", d::POD_NODE_NAME).wide(),
                c("Nominated Node", "string", d::POD_NOMINATED_NODE_NAME).wide(),
                c("Readiness Gates", "string", d::POD_READINESS_GATES).wide(),
            ],
            Printer::Deployment => vec![
                name,
                c("Ready", "string", "Number of the pod with ready state"),
                c("Up-to-date", "string", d::DEPLOYMENT_UPDATED_REPLICAS),
                c("Available", "string", d::DEPLOYMENT_AVAILABLE_REPLICAS),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::DEPLOYMENT_SELECTOR).wide(),
            ],
            Printer::ReplicaSet => vec![
                name,
                c("Desired", "integer", d::REPLICA_SET_DESIRED),
                c("Current", "integer", d::REPLICA_SET_CURRENT),
                c("Ready", "integer", d::REPLICA_SET_READY),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::REPLICA_SET_SELECTOR).wide(),
            ],
            Printer::ReplicationController => vec![
                name,
                c("Desired", "integer", d::RC_DESIRED),
                c("Current", "integer", d::RC_CURRENT),
                c("Ready", "integer", d::RC_READY),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::RC_SELECTOR).wide(),
            ],
            Printer::StatefulSet => vec![
                name,
                c("Ready", "string", "Number of the pod with ready state"),
                age(),
                containers(),
                images(),
            ],
            Printer::DaemonSet => vec![
                name,
                c("Desired", "integer", d::DAEMON_SET_DESIRED),
                c("Current", "integer", d::DAEMON_SET_CURRENT),
                c("Ready", "integer", d::DAEMON_SET_READY),
                c("Up-to-date", "integer", d::DAEMON_SET_UP_TO_DATE),
                c("Available", "integer", d::DAEMON_SET_AVAILABLE),
                c("Node Selector", "string", d::POD_NODE_SELECTOR),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::DAEMON_SET_SELECTOR).wide(),
            ],
            Printer::Job => vec![
                name,
                c("Status", "string", "Status of the job."),
                c("Completions", "string", d::JOB_SUCCEEDED),
                c("Duration", "string", "Time required to complete the job."),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::JOB_SELECTOR).wide(),
            ],
            Printer::CronJob => vec![
                name,
                c("Schedule", "string", d::CRON_JOB_SCHEDULE),
                c("Timezone", "string", d::CRON_JOB_TIME_ZONE),
                c("Suspend", "boolean", d::CRON_JOB_SUSPEND),
                c("Active", "integer", d::CRON_JOB_ACTIVE),
                c("Last Schedule", "string", d::CRON_JOB_LAST_SCHEDULE),
                age(),
                containers(),
                images(),
                c("Selector", "string", d::JOB_SELECTOR).wide(),
            ],
            Printer::Service => vec![
                name,
                c("Type", "string", d::SERVICE_TYPE),
                c("Cluster-IP", "string", d::SERVICE_CLUSTER_IP),
                c("External-IP", "string", d::SERVICE_EXTERNAL_IPS),
                c("Port(s)", "string", d::SERVICE_PORTS),
                age(),
                c("Selector", "string", d::SERVICE_SELECTOR).wide(),
            ],
            Printer::Endpoints => vec![name, c("Endpoints", "string", d::ENDPOINTS_SUBSETS), age()],
            Printer::EndpointSlice => vec![
                name,
                c("AddressType", "string", d::ENDPOINT_SLICE_ADDRESS_TYPE),
                c("Ports", "string", d::ENDPOINT_SLICE_PORTS),
                c("Endpoints", "string", d::ENDPOINT_SLICE_ENDPOINTS),
                age(),
            ],
            Printer::Node => vec![
                name,
                c("Status", "string", "The status of the node"),
                c("Roles", "string", "The roles of the node"),
                age(),
                c("Version", "string", d::NODE_KUBELET_VERSION),
                c("Internal-IP", "string", d::NODE_ADDRESSES).wide(),
                c("External-IP", "string", d::NODE_ADDRESSES).wide(),
                c("OS-Image", "string", d::NODE_OS_IMAGE).wide(),
                c("Kernel-Version", "string", d::NODE_KERNEL_VERSION).wide(),
                c("Container-Runtime", "string", d::NODE_CONTAINER_RUNTIME).wide(),
            ],
            Printer::Namespace => vec![
                name,
                c("Status", "string", "The status of the namespace"),
                age(),
            ],
            Printer::ConfigMap => vec![name, c("Data", "string", d::CONFIG_MAP_DATA), age()],
            Printer::Secret => vec![
                name,
                c("Type", "string", d::SECRET_TYPE),
                c("Data", "string", d::SECRET_DATA),
                age(),
            ],
            Printer::ServiceAccount => {
                vec![
                    name,
                    c("Secrets", "string", d::SERVICE_ACCOUNT_SECRETS),
                    age(),
                ]
            }
            // Events lead with LAST SEEN and keep NAME for -o wide: people read events by
            // time, and their names are generated.
            Printer::Event => vec![
                c("Last Seen", "string", d::EVENT_LAST_TIMESTAMP),
                c("Type", "string", d::EVENT_TYPE),
                c("Reason", "string", d::EVENT_REASON),
                c("Object", "string", d::EVENT_INVOLVED_OBJECT),
                c("Subobject", "string", d::EVENT_FIELD_PATH).wide(),
                c("Source", "string", d::EVENT_SOURCE).wide(),
                c("Message", "string", d::EVENT_MESSAGE),
                c("First Seen", "string", d::EVENT_FIRST_TIMESTAMP).wide(),
                c("Count", "string", d::EVENT_COUNT).wide(),
                name.wide(),
            ],
            Printer::Lease => vec![name, c("Holder", "string", d::LEASE_HOLDER), age()],
            // Kubernetes describes this column with a key ObjectMeta does not have, so its
            // description is empty; kept so for the same bytes on the wire.
            Printer::RuntimeClass => vec![name, c("Handler", "string", ""), age()],
            Printer::ResourceQuota => vec![
                name,
                c(
                    "Request",
                    "string",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                c(
                    "Limit",
                    "string",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
                age(),
            ],
            Printer::CreatedAt => vec![name, c("Created At", "date", d::CREATION_TIMESTAMP)],
            Printer::Age => vec![name, c("Age", "date", d::CREATION_TIMESTAMP)],
        }
    }

    pub(super) fn cells(self, obj: &Value, now: Timestamp) -> Vec<Value> {
        let name = json!(text(obj, "/metadata/name"));
        let age = || json!(since(opt_text(obj, "/metadata/creationTimestamp"), now));
        match self {
            Printer::Pod => pod_cells(obj, now),
            Printer::Deployment => {
                let (names, images) = containers(obj, "/spec/template/spec/containers");
                let selector = obj.pointer("/spec/selector").map_or(String::new(), |s| {
                    format_selector(Some(s)).unwrap_or_else(|| "<invalid>".into())
                });
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(obj, "/status/readyReplicas"),
                        replicas(obj)
                    )),
                    json!(int(obj, "/status/updatedReplicas")),
                    json!(int(obj, "/status/availableReplicas")),
                    age(),
                    json!(names),
                    json!(images),
                    json!(selector),
                ]
            }
            Printer::ReplicaSet => {
                let (names, images) = containers(obj, "/spec/template/spec/containers");
                vec![
                    name,
                    json!(replicas(obj)),
                    json!(int(obj, "/status/replicas")),
                    json!(int(obj, "/status/readyReplicas")),
                    age(),
                    json!(names),
                    json!(images),
                    json!(format_label_selector(obj.pointer("/spec/selector"))),
                ]
            }
            Printer::ReplicationController => {
                let (names, images) = containers(obj, "/spec/template/spec/containers");
                vec![
                    name,
                    json!(replicas(obj)),
                    json!(int(obj, "/status/replicas")),
                    json!(int(obj, "/status/readyReplicas")),
                    age(),
                    json!(names),
                    json!(images),
                    json!(format_labels(obj.pointer("/spec/selector"))),
                ]
            }
            Printer::StatefulSet => {
                let (names, images) = containers(obj, "/spec/template/spec/containers");
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(obj, "/status/readyReplicas"),
                        replicas(obj)
                    )),
                    age(),
                    json!(names),
                    json!(images),
                ]
            }
            Printer::DaemonSet => {
                let (names, images) = containers(obj, "/spec/template/spec/containers");
                vec![
                    name,
                    json!(int(obj, "/status/desiredNumberScheduled")),
                    json!(int(obj, "/status/currentNumberScheduled")),
                    json!(int(obj, "/status/numberReady")),
                    json!(int(obj, "/status/updatedNumberScheduled")),
                    json!(int(obj, "/status/numberAvailable")),
                    json!(format_labels(
                        obj.pointer("/spec/template/spec/nodeSelector")
                    )),
                    age(),
                    json!(names),
                    json!(images),
                    json!(format_label_selector(obj.pointer("/spec/selector"))),
                ]
            }
            Printer::Job => job_cells(obj, now),
            Printer::CronJob => {
                let (names, images) =
                    containers(obj, "/spec/jobTemplate/spec/template/spec/containers");
                let last_schedule = match opt_text(obj, "/status/lastScheduleTime") {
                    Some(t) => since(Some(t), now),
                    None => "<none>".to_string(),
                };
                let suspend = match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                };
                vec![
                    name,
                    json!(text(obj, "/spec/schedule")),
                    json!(opt_text(obj, "/spec/timeZone").unwrap_or("<none>")),
                    json!(suspend),
                    json!(items(obj, "/status/active").len()),
                    json!(last_schedule),
                    age(),
                    json!(names),
                    json!(images),
                    json!(format_label_selector(
                        obj.pointer("/spec/jobTemplate/spec/selector")
                    )),
                ]
            }
            Printer::Service => service_cells(obj, now),
            Printer::Endpoints => vec![name, json!(format_endpoints(obj)), age()],
            Printer::EndpointSlice => {
                let ports = items(obj, "/ports").iter().map(|p| {
                    match (
                        p.get("port").and_then(Value::as_i64),
                        p.get("name").and_then(Value::as_str),
                    ) {
                        (Some(port), _) => port.to_string(),
                        (None, Some(name)) => name.to_string(),
                        (None, None) => "*".to_string(),
                    }
                });
                let addresses = items(obj, "/endpoints")
                    .iter()
                    .flat_map(|e| items(e, "/addresses"))
                    .map(|a| a.as_str().unwrap_or("").to_string());
                vec![
                    name,
                    json!(text(obj, "/addressType")),
                    json!(first_three_unset(ports)),
                    json!(first_three_unset(addresses)),
                    age(),
                ]
            }
            Printer::Node => node_cells(obj, now),
            Printer::Namespace => vec![name, json!(text(obj, "/status/phase")), age()],
            Printer::ConfigMap => {
                let count = entries(obj, "/data") + entries(obj, "/binaryData");
                vec![name, json!(count), age()]
            }
            Printer::Secret => vec![
                name,
                json!(text(obj, "/type")),
                json!(entries(obj, "/data")),
                age(),
            ],
            Printer::ServiceAccount => vec![name, json!(items(obj, "/secrets").len()), age()],
            Printer::Event => event_cells(obj, now),
            Printer::Lease => vec![name, json!(text(obj, "/spec/holderIdentity")), age()],
            Printer::RuntimeClass => vec![name, json!(text(obj, "/handler")), age()],
            Printer::ResourceQuota => resource_quota_cells(obj, now),
            Printer::CreatedAt => {
                let created = parse_time(opt_text(obj, "/metadata/creationTimestamp"))
                    .map_or(Value::Null, |t| {
                        json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    });
                vec![name, created]
            }
            Printer::Age => vec![name, age()],
        }
    }

    /// The row's `conditions`: a finished pod is marked `Completed`, which clients may use
    /// to dim or hide it.
    pub(super) fn conditions(self, obj: &Value) -> Option<Value> {
        if self != Printer::Pod {
            return None;
        }
        let (reason, message) = match text(obj, "/status/phase") {
            "Succeeded" => ("Succeeded", "The pod has completed successfully."),
            "Failed" => ("Failed", "The pod failed."),
            _ => return None,
        };
        Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
    }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = items(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    // Sidecars (init containers that restart always) count as containers of the pod.
    let init_specs = items(pod, "/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .count();
    let total = items(pod, "/spec/containers").len() + sidecars;

    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let mut initializing = false;
    for (i, status) in items(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let sidecar = is_sidecar(text(status, "/name"));
        let finished = last_finished(status);
        restarts += int(status, "/restartCount");
        last_restart = later(last_restart, finished);
        if sidecar {
            sidecar_restarts += int(status, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = present(status, "/state/terminated");
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && status.get("started").and_then(Value::as_bool) == Some(true) {
            if flag(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match text(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| text(c, "/type") == "Initialized" && text(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Backwards, so the first container with something to say has the last word.
        for status in items(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(last_restart, last_finished(status));
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = present(status, "/state/terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if flag(status, "/ready") && present(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // One container completed while another still runs: the pod is not done.
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if present(pod, "/metadata/deletionTimestamp").is_some() {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now.duration_since(t)))
        }
        _ => restarts.to_string(),
    };

    let pod_ip = items(pod, "/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    let gates = items(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passed = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| text(c, "/type") == wanted)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };

    vec![
        json!(text(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(since(opt_text(pod, "/metadata/creationTimestamp"), now)),
        json!(or_none(pod_ip)),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

/// When a container's previous run ended, if it has had one.
fn last_finished(status: &Value) -> Option<Timestamp> {
    parse_time(opt_text(status, "/lastState/terminated/finishedAt"))
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => match int(job, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_time(opt_text(job, "/status/startTime"));
    let completion = parse_time(opt_text(job, "/status/completionTime"));
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.duration_since(s)),
        (Some(s), Some(c)) => human_duration(c.duration_since(s)),
    };
    let conditions = items(job, "/status/conditions");
    // The first condition of a type decides, as Kubernetes' hasJobCondition reads them.
    let has = |kind: &str| {
        conditions
            .iter()
            .find(|c| text(c, "/type") == kind)
            .is_some_and(|c| text(c, "/status") == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if present(job, "/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers(job, "/spec/template/spec/containers");
    vec![
        json!(text(job, "/metadata/name")),
        json!(status),
        json!(completions),
        json!(duration),
        json!(since(opt_text(job, "/metadata/creationTimestamp"), now)),
        json!(names),
        json!(images),
        json!(format_label_selector(job.pointer("/spec/selector"))),
    ]
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Stored Services are defaulted to ClusterIP; an undefaulted one prints the same.
    let svc_type = opt_text(svc, "/spec/type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP");
    let cluster_ip = items(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_text(svc, "/spec/clusterIP"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let external_ips: Vec<&str> = items(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            // Kubernetes' server converts with Wide set, so the list is never cut to 16
            // characters here; kubectl shows it whole.
            let ingress: BTreeSet<&str> = items(svc, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| match (text(i, "/ip"), text(i, "/hostname")) {
                    ("", "") => None,
                    ("", host) => Some(host),
                    (ip, _) => Some(ip),
                })
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external_ips).collect();
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = items(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = opt_text(p, "/protocol").unwrap_or("TCP");
            match int(p, "/nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int(p, "/port")),
                _ => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        json!(text(svc, "/metadata/name")),
        json!(svc_type),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(since(opt_text(svc, "/metadata/creationTimestamp"), now)),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// Up to three `ip:port` pairs, then `+ N more...`; a subset without ports lists its IPs.
fn format_endpoints(endpoints: &Value) -> String {
    const MAX: usize = 3;
    let subsets = items(endpoints, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = items(subset, "/addresses");
        let ports = items(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|a| text(a, "/ip").to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                let ip = text(address, "/ip");
                let port = int(port, "/port");
                // Go's net.JoinHostPort: IPv6 addresses go in brackets.
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    if list.len() > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(","), count - MAX);
    }
    list.join(",")
}

/// Kubernetes' `listWithMoreString` for EndpointSlices: three items, `+ N more...`, or
/// `<unset>` for none.
fn first_three_unset(values: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let all: Vec<String> = values.collect();
    if all.len() > MAX {
        return format!("{} + {} more...", all[..MAX].join(","), all.len() - MAX);
    }
    if all.is_empty() {
        "<unset>".to_string()
    } else {
        all.join(",")
    }
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    // Only the Ready condition speaks for the node; the last one of that type wins, as in
    // Kubernetes' map of conditions by type.
    let ready = items(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if flag(node, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (key, value) in node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if key == "kubernetes.io/role"
            && let Some(role) = value.as_str().filter(|r| !r.is_empty())
        {
            roles.insert(role.to_string());
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        items(node, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map_or("<none>", |a| text(a, "/address"))
    };
    let info = |field: &str| match text(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>",
        value => value,
    };
    vec![
        json!(text(node, "/metadata/name")),
        json!(status.join(",")),
        json!(roles),
        json!(since(opt_text(node, "/metadata/creationTimestamp"), now)),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Core `v1` Events and `events.k8s.io/v1` Events print alike (Kubernetes serves both from
/// one internal type); the second kind names its fields differently, so each is read under
/// either name.
fn event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    let either =
        |core: &str, events: &str| opt_text(event, core).or_else(|| opt_text(event, events));
    let first_seen = match either("/firstTimestamp", "/deprecatedFirstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(opt_text(event, "/eventTime"), now),
    };
    let mut last_seen = match either("/lastTimestamp", "/deprecatedLastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = event
        .get("count")
        .or_else(|| event.get("deprecatedCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = present(event, "/series") {
        last_seen = since(opt_text(series, "/lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        // Events of the new API happen once unless they have a series.
        count = 1;
    }
    let regarding = present(event, "/involvedObject")
        .or_else(|| present(event, "/regarding"))
        .unwrap_or(&Value::Null);
    let kind = text(regarding, "/kind").to_lowercase();
    let target = match text(regarding, "/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let source = present(event, "/source")
        .or_else(|| present(event, "/deprecatedSource"))
        .unwrap_or(&Value::Null);
    let component = first_non_empty(
        text(source, "/component"),
        text(event, "/reportingController"),
    );
    let host = first_non_empty(text(source, "/host"), text(event, "/reportingInstance"));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let message = either("/message", "/note").unwrap_or("").trim();
    vec![
        json!(last_seen),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(target),
        json!(text(regarding, "/fieldPath")),
        json!(source),
        json!(message),
        json!(first_seen),
        json!(count),
        json!(text(event, "/metadata/name")),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// `resource: used/hard` for each resource in `status.hard`, sorted, split into the
/// `limits.*` ones and the rest. Quantities print as stored.
fn resource_quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let hard = quota.pointer("/status/hard").and_then(Value::as_object);
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let sorted: BTreeMap<&String, &Value> = hard.into_iter().flatten().collect();
    for (resource, hard) in sorted {
        let used = quota
            .pointer("/status/used")
            .and_then(|u| u.get(resource.as_str()))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let entry = format!("{resource}: {used}/{}", hard.as_str().unwrap_or("0"));
        if resource.split('.').next() == Some("limits") && resource.contains('.') {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        json!(text(quota, "/metadata/name")),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        json!(since(opt_text(quota, "/metadata/creationTimestamp"), now)),
    ]
}

/// Container names and images of a pod template, each joined by commas.
fn containers(obj: &Value, pointer: &str) -> (String, String) {
    let list = items(obj, pointer);
    let names: Vec<&str> = list.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `spec.replicas`, defaulted to 1 as the API server defaults it.
fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// A `LabelSelector`'s canonical text (`app=web,tier in (a,b)`); `None` if it is invalid.
/// An absent selector selects nothing and prints as empty text, as in Kubernetes.
fn format_selector(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let parsed: LabelSelector = serde_json::from_value(selector.clone()).ok()?;
    Selector::from_label_selector(&parsed)
        .ok()
        .map(|s| s.to_string())
}

/// Kubernetes' `FormatLabelSelector`: [`format_selector`], with `<none>` for empty text
/// and `<error>` for an invalid selector.
fn format_label_selector(selector: Option<&Value>) -> String {
    match format_selector(selector) {
        None => "<error>".to_string(),
        Some(text) if text.is_empty() => "<none>".to_string(),
        Some(text) => text,
    }
}

/// Kubernetes' `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
fn format_labels(map: Option<&Value>) -> String {
    let pairs: BTreeMap<&String, &str> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn or_none(value: &str) -> &str {
    if value.is_empty() { "<none>" } else { value }
}

/// The string at `pointer`, or `""` (Go's zero value) when absent or not a string.
fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    opt_text(obj, pointer).unwrap_or("")
}

fn opt_text<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(obj: &Value, pointer: &str) -> bool {
    obj.pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The value at `pointer` unless absent or `null`: what a Go pointer field being non-nil
/// means.
fn present<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Value> {
    obj.pointer(pointer).filter(|v| !v.is_null())
}

fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn entries(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}
