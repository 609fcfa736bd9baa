//! kube-rs, the Rust client library, against a real `sextant server`: typed CRUD, a raw
//! watch from a compacted resourceVersion (410), and `kube::runtime::watcher` recovering
//! from one by relisting.

mod support;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use support::{Server, client};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}, "data": {"k": value}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_works_and_its_watcher_recovers_from_410() {
    // History is compacted every second, so a resourceVersion goes stale quickly.
    let s = Server::start(&["--compaction-interval", "1"]);
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = cms
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    let first_rv = created.metadata.resource_version.clone().unwrap();
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["k"], "1");
    let mut changed = created.clone();
    changed.data = Some([("k".to_owned(), "2".to_owned())].into());
    let replaced = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(replaced.metadata.resource_version.unwrap(), first_rv);
    // A stale resourceVersion is a 409.
    let stale = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, kube::Error::Api(ref s) if s.code == 409),
        "{stale:?}"
    );
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "3"}})),
    )
    .await
    .unwrap();
    let listed = cms.list(&ListParams::default().labels("")).await.unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("a"))
    );

    // Churn and wait two compaction intervals: the first resourceVersion is gone.
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("churn-{i}"), "x"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    cms.create(&PostParams::default(), &cm("after-compaction", "x"))
        .await
        .unwrap();
    let mut raw = cms
        .watch(&WatchParams::default(), &first_rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(10), raw.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // The watcher lists, then watches; when its version is compacted it relists by itself.
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "quiet"}})).unwrap(),
    )
    .await
    .unwrap();
    let quiet: Api<ConfigMap> = Api::namespaced(client.clone(), "quiet");
    let mut events = watcher(quiet.clone(), watcher::Config::default().timeout(1)).boxed();
    let mut init_done = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while init_done < 2 {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the watcher relists after a 410")
            .unwrap();
        if let Ok(watcher::Event::InitDone) = ev {
            init_done += 1;
            // Writes elsewhere move the store on, so the watcher's version ages out.
            for i in 0..5 {
                cms.create(
                    &PostParams::default(),
                    &cm(&format!("tick-{init_done}-{i}"), "x"),
                )
                .await
                .unwrap();
            }
        }
    }
    // After recovering it still sees changes in its namespace.
    quiet
        .create(&PostParams::default(), &cm("seen", "1"))
        .await
        .unwrap();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the watcher sees the new object")
            .unwrap();
        if let Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) = ev
            && c.metadata.name.as_deref() == Some("seen")
        {
            break;
        }
    }
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());
    drop(events);
    s.stop();
}

/// Metadata-only reads (`PartialObjectMetadata`), as the garbage collector and kube-rs
/// `metadata_watcher` use them: get, list and watch return metadata without the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_get_list_and_watch() {
    let s = Server::start(&[]);
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("m1", "secret-ish"))
        .await
        .unwrap();
    let one = cms.get_metadata("m1").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("m1"));
    assert_eq!(one.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some("m1"))
    );
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/default/configmaps")
                .header(
                    "Accept",
                    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                )
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!raw.contains("secret-ish"), "metadata only: {raw}");

    let meta: Api<kube::api::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(client.clone(), "default");
    let mut events = watcher(meta, watcher::Config::default()).boxed();
    cms.create(&PostParams::default(), &cm("m2", "x"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the metadata watcher sees m2")
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(m) | watcher::Event::InitApply(m) = ev
            && m.metadata.name.as_deref() == Some("m2")
        {
            break;
        }
    }
    drop(events);
    s.stop();
}
