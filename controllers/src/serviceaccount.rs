//! The ServiceAccount controller: a `default` ServiceAccount in every namespace that is not
//! being deleted, recreated if someone deletes it — pods that name no account run as it
//! (Kubernetes' `serviceaccount-controller`).
//!
//! Level-triggered on namespaces, and on `default` accounts mapped back to their namespace,
//! so that deleting the account brings it straight back.

use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::{Error, retry_soon};

/// The account every namespace gets.
const DEFAULT: &str = "default";

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client),
        watcher::Config::default().fields(&format!("metadata.name={DEFAULT}")),
        |sa| Some(ObjectRef::new(&sa.namespace()?)),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, retry_soon, Arc::new(ctx))
    .for_each(|_| future::ready(()))
    .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if is_terminating(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    if api.get_opt(DEFAULT).await?.is_some() {
        return Ok(Action::requeue(ctx.config.resync));
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(Action::requeue(ctx.config.resync)),
        // Created meanwhile, or the namespace began terminating: nothing left to do.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// A namespace being deleted must not get new objects: they would only delay its end.
fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_namespaces_are_left_alone() {
        let mut ns = Namespace::default();
        assert!(!is_terminating(&ns));
        ns.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Terminating".into()),
            ..Default::default()
        });
        assert!(is_terminating(&ns));
    }
}
