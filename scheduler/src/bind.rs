//! The scheduler's writes to pods: the binding that places one, and the `PodScheduled`
//! condition that says why one cannot be placed.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::error::Error;
use crate::pod::PodInfo;

/// Binds `pod` to `node` through the `pods/binding` subresource (which refuses a pod
/// already bound, so two schedulers can never both place one pod).
pub async fn bind(client: kube::Client, pod: &PodInfo, node: &str) -> Result<(), Error> {
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    Api::<Pod>::namespaced(client, &pod.namespace)
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &pod.name,
            &PostParams::default(),
            &binding,
        )
        .await
        .map(drop)
        .map_err(|source| Error::Bind {
            pod: pod.key(),
            node: node.to_owned(),
            source,
        })
}

/// Sets `PodScheduled=False`, reason `Unschedulable`, with `message`, as kube-scheduler
/// does. The strategic merge patch touches this one condition only; the transition time
/// moves only when the status does.
pub async fn report_unschedulable(
    client: kube::Client,
    pod: &PodInfo,
    message: &str,
) -> Result<(), Error> {
    let mut condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
    });
    let was_false = pod
        .scheduled_condition
        .as_ref()
        .is_some_and(|c| c.status == "False");
    if !was_false {
        condition["lastTransitionTime"] = json!(Time(jiff::Timestamp::now()));
    }
    let patch = json!({"status": {"conditions": [condition]}});
    Api::<Pod>::namespaced(client, &pod.namespace)
        .patch_status(
            &pod.name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .map(drop)
        .map_err(|source| Error::Report {
            pod: pod.key(),
            source,
        })
}
