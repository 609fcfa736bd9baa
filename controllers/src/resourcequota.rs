//! ResourceQuota: reports what a namespace uses (`status.used`) against each quota's
//! `spec.hard`, so that `kubectl describe quota` shows it. Admission refuses pods over quota
//! on its own (apiserver `admission.rs`); both count pods with `sextant_api::quota`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use serde_json::{Value, json};
use sextant_api::quantity::Milli;
use sextant_api::quota::{counts_against_quota, quota_usage};
use sextant_api::resources::{ResourceInfo, builtin};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::context::Context;
use crate::error::retry_soon;

/// Object counts are not watched (any kind may be counted); they are recounted this often.
const RECOUNT: Duration = Duration::from_secs(15);

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    let controller = Controller::new(quotas, watcher::Config::default());
    let store = controller.store();
    controller
        // A pod change can move the usage of every quota in its namespace.
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            move |pod: Pod| {
                let ns = pod.metadata.namespace.clone();
                store
                    .state()
                    .into_iter()
                    .filter(move |q| q.metadata.namespace == ns)
                    .map(|q| ObjectRef::from_obj(&*q))
            },
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, Arc::new(ctx))
        .for_each(|_| std::future::ready(()))
        .await;
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = quota.metadata.namespace.clone().unwrap_or_default();
    let name = quota.metadata.name.clone().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let live: Vec<Value> = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .filter(counts_against_quota)
        .collect();
    let mut used: BTreeMap<String, Milli> = BTreeMap::new();
    for pod in &live {
        for (k, q) in quota_usage(pod) {
            used.entry(k).or_default().0 += q.0;
        }
    }
    let mut status_used = serde_json::Map::new();
    for key in hard.keys() {
        let value = match counted_resource(key) {
            Some(r) if r.plural != "pods" => {
                let n = count(&ctx.client, &r, &ns).await?;
                Milli(1000 * i128::from(n))
            }
            _ => used.get(key).copied().unwrap_or_default(),
        };
        status_used.insert(key.clone(), json!(value.to_string()));
    }
    let status = json!({"status": {"hard": hard, "used": status_used}});
    let current = serde_json::to_value(&quota.status).unwrap_or_default();
    if current.get("used") != status["status"].get("used")
        || current.get("hard") != status["status"].get("hard")
    {
        Api::<ResourceQuota>::namespaced(ctx.client.clone(), &ns)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    Ok(Action::requeue(RECOUNT))
}

/// The resource an object-count quota key names: `configmaps` (the legacy core keys) or
/// `count/<plural>` and `count/<plural>.<group>`.
fn counted_resource(key: &str) -> Option<ResourceInfo> {
    let (plural, group) = match key.strip_prefix("count/") {
        Some(rest) => rest.split_once('.').unwrap_or((rest, "")),
        None if matches!(
            key,
            "pods"
                | "services"
                | "configmaps"
                | "secrets"
                | "replicationcontrollers"
                | "resourcequotas"
                | "persistentvolumeclaims"
        ) =>
        {
            (key, "")
        }
        None => return None,
    };
    builtin()
        .into_iter()
        .find(|r| r.plural == plural && r.group == group && r.namespaced)
}

async fn count(client: &kube::Client, r: &ResourceInfo, ns: &str) -> Result<i64, Error> {
    let ar = ApiResource {
        group: r.group.clone(),
        version: r.version.clone(),
        api_version: r.api_version(),
        kind: r.kind.clone(),
        plural: r.plural.clone(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list_metadata(&ListParams::default()).await?;
    Ok(i64::try_from(list.items.len()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_keys_name_resources() {
        assert_eq!(counted_resource("configmaps").unwrap().kind, "ConfigMap");
        assert_eq!(counted_resource("count/secrets").unwrap().kind, "Secret");
        assert_eq!(
            counted_resource("count/deployments.apps").unwrap().kind,
            "Deployment"
        );
        assert!(counted_resource("requests.cpu").is_none());
        assert!(counted_resource("count/nodes").is_none());
    }
}
