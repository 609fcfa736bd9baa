//! CustomResourceDefinitions: a level-triggered loop that keeps the served resources equal
//! to the CRDs in the store.
//!
//! Each pass reads every CRD, derives the resources they define (one per served version),
//! swaps them into the registry (discovery, routing, OpenAPI and table columns follow), marks
//! new CRDs `Established`, and deletes the objects of CRDs that are gone. Then it waits for
//! the next change to any CRD, or a resync, and does it all again: a missed event costs a
//! little latency, never a wrong result.

use std::time::Duration;

use serde_json::{Value, json};
use sextant_api::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use sextant_api::resources::ResourceInfo;
use sextant_store::{ListRequest, Precondition, WatchMessage};

use crate::objects;
use crate::registry::CustomKind;
use crate::state::ApiState;

const PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Even with no change seen, look again this often.
const RESYNC: Duration = Duration::from_secs(30);

/// The resources one CRD defines, one per served version.
pub fn kinds_of(crd: &Value) -> Vec<CustomKind> {
    let spec = &crd["spec"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        spec["names"]["kind"].as_str(),
        spec["names"]["plural"].as_str(),
    ) else {
        return Vec::new();
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let mut subresources = Vec::new();
            if v["subresources"]["status"].is_object() {
                subresources.push("status".to_owned());
            }
            if v["subresources"]["scale"].is_object() {
                subresources.push("scale".to_owned());
            }
            let info = ResourceInfo {
                group: group.to_owned(),
                version: version.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                singular: spec["names"]["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&spec["names"]["shortNames"]),
                categories: strings(&spec["names"]["categories"]),
                subresources,
                verbs: [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            };
            let schema = v["schema"]["openAPIV3Schema"].clone();
            let columns: Vec<CustomResourceColumnDefinition> =
                serde_json::from_value(v["additionalPrinterColumns"].clone()).unwrap_or_default();
            Some(CustomKind {
                info,
                schema,
                columns,
            })
        })
        .collect()
}

fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// One pass: returns the revision it read at.
async fn reconcile(
    state: &ApiState,
    previous: &mut Vec<CustomKind>,
) -> Result<u64, sextant_store::StoreError> {
    let listed = state
        .store
        .list(ListRequest {
            prefix: PREFIX.into(),
            ..Default::default()
        })
        .await?;
    let mut kinds = Vec::new();
    for kv in &listed.items {
        let Ok(crd) = objects::from_store(kv) else {
            continue;
        };
        kinds.extend(kinds_of(&crd));
        if !is_established(&crd) && !objects::meta(&crd).contains_key("deletionTimestamp") {
            let mut crd = crd.clone();
            let names = crd["spec"]["names"].clone();
            crd["status"] = json!({"acceptedNames": names, "storedVersions": crd["spec"]["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default()});
            objects::set_condition(
                &mut crd,
                "NamesAccepted",
                "True",
                Some("NoConflicts"),
                Some("no conflicts found"),
            );
            objects::set_condition(
                &mut crd,
                "Established",
                "True",
                Some("InitialNamesAccepted"),
                Some("the initial names have been accepted"),
            );
            // Another control-plane node may have done it first: a conflict is fine.
            let _ = state
                .store
                .put(
                    kv.key.clone(),
                    objects::to_store(&crd),
                    Precondition::Revision(kv.mod_revision),
                )
                .await;
        }
    }
    // The objects of a resource whose CRD is gone go with it.
    for gone in previous.iter().filter(|p| {
        !kinds
            .iter()
            .any(|k| k.info.group == p.info.group && k.info.plural == p.info.plural)
    }) {
        let objects = state
            .store
            .list(ListRequest {
                prefix: gone.info.key_prefix(),
                ..Default::default()
            })
            .await?;
        for kv in objects.items {
            let _ = state
                .store
                .delete(kv.key, Precondition::Revision(kv.mod_revision))
                .await;
        }
        tracing::info!(group = %gone.info.group, plural = %gone.info.plural, "custom resource removed");
    }
    state.registry.set_custom(kinds.clone());
    *previous = kinds;
    Ok(listed.revision)
}

/// Runs until the server shuts down.
pub async fn run(state: ApiState) {
    let mut previous = Vec::new();
    loop {
        let revision = match reconcile(&state, &mut previous).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading CustomResourceDefinitions failed; retrying");
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Ok(mut watcher) = state.store.watch(PREFIX, revision).await else {
            continue;
        };
        let deadline = tokio::time::Instant::now() + RESYNC;
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => break,
                msg = watcher.next() => match msg {
                    Ok(WatchMessage::Events(_)) | Err(_) => break,
                    Ok(WatchMessage::Progress(_)) => {}
                },
            }
        }
    }
}
