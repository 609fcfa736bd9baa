//! At start-up, the allocation records are brought in line with the stored Services, as
//! Kubernetes' repair controllers do: a record no Service holds is released, and a value a
//! Service holds without a record (stored by a Sextant from before allocation) is recorded.
//!
//! Every write path keeps records and Services in one transaction, so on a store written by
//! this version there is nothing to do. Several servers may repair at once: every write is
//! conditional, and losing a race changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sextant_store::{KeyValue, ListRequest, Precondition, Store, StoreError};

use super::alloc::{IP_PREFIX, PORT_PREFIX, keys, record, record_uid};
use super::spec;
use crate::objects;

const SERVICES: &str = "/registry/core/services/";

async fn list(store: &Store, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
    Ok(store
        .list(ListRequest {
            prefix: prefix.to_owned(),
            ..Default::default()
        })
        .await?
        .items)
}

pub(crate) async fn run(store: &Store) -> Result<(), StoreError> {
    // Records first, then Services: a record listed here was written with its Service, so
    // that Service is in the later list unless it has since gone, and then its record has
    // gone too (the conditional delete below fails harmlessly).
    let mut records = list(store, IP_PREFIX).await?;
    records.extend(list(store, PORT_PREFIX).await?);
    let mut holders: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for kv in list(store, SERVICES).await? {
        let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        for key in keys(&spec::held(&svc)) {
            holders.entry(key).or_default().push(svc.clone());
        }
    }
    let uid = |svc: &Value| objects::meta_str(svc, "uid").map(str::to_owned);
    let mut kept = BTreeSet::new();
    for kv in &records {
        let owner = record_uid(&kv.value);
        let held = holders
            .get(&kv.key)
            .is_some_and(|hs| hs.iter().any(|h| uid(h) == owner));
        if held {
            kept.insert(kv.key.as_str());
            continue;
        }
        tracing::info!(record = %kv.key, "releasing a Service allocation that no Service holds");
        match store
            .delete(kv.key.clone(), Precondition::Revision(kv.mod_revision))
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for (key, hs) in &holders {
        if hs.len() > 1 {
            let names: Vec<String> = hs
                .iter()
                .map(|h| {
                    format!(
                        "{}/{}",
                        objects::meta_str(h, "namespace").unwrap_or_default(),
                        objects::name(h).unwrap_or_default()
                    )
                })
                .collect();
            tracing::warn!(
                record = %key, services = ?names,
                "Services share one cluster IP or node port; delete and re-create all but one"
            );
        }
        if kept.contains(key.as_str()) {
            continue;
        }
        // A Service deleted between the list and this write leaves the record behind,
        // until the next start-up releases it: only Services stored before records existed
        // come this way.
        match store.create(key.clone(), record(&hs[0])).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
