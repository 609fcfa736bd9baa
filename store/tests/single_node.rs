//! One store node, embedded: the operations, lists, watches, compaction and restarts.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_store::{EventKind, ListRequest, Op, Precondition, StoreError, WatchMessage};
use support::{eventually, init_tracing, start_node};

async fn single(dir: &std::path::Path) -> support::TestNode {
    let node = start_node(dir, None, |_| {}).await;
    node.store.bootstrap().await.unwrap();
    node
}

#[tokio::test]
async fn preconditions_guard_every_write() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = &node.store;

    let r1 = s.create("/a", b"1".to_vec()).await.unwrap();
    assert!(
        matches!(s.create("/a", b"x".to_vec()).await, Err(StoreError::AlreadyExists { key }) if key == "/a")
    );

    let r2 = s
        .put("/a", b"2".to_vec(), Precondition::Revision(r1))
        .await
        .unwrap();
    assert_eq!(r2, r1 + 1, "revisions are gap-free");
    match s.put("/a", b"3".to_vec(), Precondition::Revision(r1)).await {
        Err(StoreError::Conflict { wanted, found, .. }) => {
            assert_eq!(wanted, Precondition::Revision(r1));
            assert_eq!(found, Some(r2));
        }
        other => panic!("expected a conflict naming both revisions, got {other:?}"),
    }
    let msg = s
        .put("/a", b"3".to_vec(), Precondition::Revision(r1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("Revision({r1})")) && msg.contains(&format!("revision {r2}")),
        "{msg}"
    );

    assert!(matches!(
        s.delete("/a", Precondition::Revision(r1)).await,
        Err(StoreError::Conflict { .. })
    ));
    let deleted = s.delete("/a", Precondition::Revision(r2)).await.unwrap();
    assert_eq!(deleted.value, b"2");
    assert_eq!(deleted.create_revision, r1);
    assert!(deleted.mod_revision > r2);
    assert_eq!(s.get("/a").await.unwrap(), None);
    assert!(matches!(
        s.delete("/a", Precondition::None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.put("/a", vec![], Precondition::Exists).await,
        Err(StoreError::NotFound { .. })
    ));

    // A transaction whose second op fails changes nothing.
    s.create("/b", b"b".to_vec()).await.unwrap();
    let before = s.revision().unwrap();
    let err = s
        .txn(vec![
            Op::Put {
                key: "/c".into(),
                value: b"c".to_vec(),
                precondition: Precondition::Absent,
            },
            Op::Put {
                key: "/b".into(),
                value: b"b2".to_vec(),
                precondition: Precondition::Absent,
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { key } if key == "/b"));
    assert_eq!(s.get("/c").await.unwrap(), None);
    assert_eq!(
        s.revision().unwrap(),
        before,
        "a rejected transaction takes no revision"
    );

    // One that succeeds applies every op under one revision.
    let (rev, prev) = s
        .txn(vec![
            Op::Put {
                key: "/c".into(),
                value: b"c".to_vec(),
                precondition: Precondition::Absent,
            },
            Op::Delete {
                key: "/b".into(),
                precondition: Precondition::Exists,
            },
        ])
        .await
        .unwrap();
    assert_eq!(rev, before + 1);
    assert_eq!(prev[0], None);
    assert_eq!(prev[1].as_ref().unwrap().value, b"b");
    assert_eq!(s.get("/c").await.unwrap().unwrap().mod_revision, rev);
    node.stop().await;
}

#[tokio::test]
async fn concurrent_writers_all_get_distinct_revisions() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let mut tasks = Vec::new();
    for w in 0..50 {
        let s = node.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                revs.push(
                    s.create(format!("/w/{w:02}/{i:02}"), vec![w as u8])
                        .await
                        .unwrap(),
                );
            }
            revs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1000);
    assert_eq!(
        all.last().unwrap() - all.first().unwrap(),
        999,
        "one revision per write, no gaps"
    );
    let list = node
        .store
        .list(ListRequest {
            prefix: "/w/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1000);
    node.stop().await;
}

#[tokio::test]
async fn pagination_is_stable_under_concurrent_writes() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = node.store.clone();
    let mut original = BTreeMap::new();
    for i in 0..100 {
        let key = format!("/p/{i:03}");
        s.create(key.clone(), format!("v{i}").into_bytes())
            .await
            .unwrap();
        original.insert(key, format!("v{i}").into_bytes());
    }

    let first = s
        .list(ListRequest {
            prefix: "/p/".into(),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(first.more);
    let at = first.revision;

    // Writers change, delete and add keys across the whole range while we page.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in (0..100).step_by(3) {
                let key = format!("/p/{i:03}");
                s.put(key.clone(), b"changed".to_vec(), Precondition::Exists)
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    s.delete(key, Precondition::None).await.unwrap();
                }
                s.create(format!("/p/{i:03}x"), b"new".to_vec())
                    .await
                    .unwrap();
            }
        })
    };

    let mut seen: BTreeMap<String, Vec<u8>> = first
        .items
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    let mut last = seen.keys().last().cloned();
    loop {
        let page = s
            .list(ListRequest {
                prefix: "/p/".into(),
                start_after: last.clone(),
                limit: Some(10),
                revision: Some(at),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, at);
        for kv in &page.items {
            assert!(kv.mod_revision <= at, "{} is newer than the list", kv.key);
        }
        last = page.items.last().map(|kv| kv.key.clone()).or(last);
        seen.extend(page.items.into_iter().map(|kv| (kv.key, kv.value)));
        if !page.more {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert_eq!(
        seen, original,
        "the pages join into the list as it was at revision {at}"
    );

    // The same walk now, at the latest revision, sees the writers' work.
    let now = s
        .list(ListRequest {
            prefix: "/p/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(now.items.iter().any(|kv| kv.key == "/p/000x"));
    assert!(!now.items.iter().any(|kv| kv.key == "/p/000"));
    node.stop().await;
}

#[tokio::test]
async fn watch_from_an_old_revision_replays_exactly_what_was_missed() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = node.store.clone();
    s.create("/a/0", b"0".to_vec()).await.unwrap();
    let start = s.revision().unwrap();

    // Missed while nobody watched: two under /a/, one elsewhere.
    let r1 = s.create("/a/1", b"1".to_vec()).await.unwrap();
    s.create("/b/1", b"1".to_vec()).await.unwrap();
    let r2 = s
        .put("/a/0", b"0b".to_vec(), Precondition::Exists)
        .await
        .unwrap();

    // Writes racing with the watch's start must neither be lost nor doubled.
    let racing = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..200 {
                revs.push(s.create(format!("/a/r{i:03}"), vec![]).await.unwrap());
            }
            revs.push(
                s.delete("/a/1", Precondition::None)
                    .await
                    .unwrap()
                    .mod_revision,
            );
            revs
        })
    };
    let mut w = s.watch("/a/", start).await.unwrap();
    let racing = racing.await.unwrap();

    let mut expected = vec![r1, r2];
    expected.extend(racing);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch stalled")
            .unwrap()
        {
            WatchMessage::Events(events) => {
                for e in events {
                    assert!(e.kv.key.starts_with("/a/"));
                    got.push((e.revision(), e.kind));
                }
            }
            WatchMessage::Progress(_) => {}
        }
    }
    assert_eq!(got.iter().map(|(r, _)| *r).collect::<Vec<_>>(), expected);
    assert_eq!(got[0].1, EventKind::Created);
    assert_eq!(got[1].1, EventKind::Updated);
    assert_eq!(got.last().unwrap().1, EventKind::Deleted);
    node.stop().await;
}

#[tokio::test]
async fn a_slow_watcher_never_blocks_writes_and_catches_up_from_history() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = node.store.clone();
    let start = s.revision().unwrap();
    let mut w = s.watch("/k/", start).await.unwrap();
    // More batches than the live channel holds, while the watcher is not read.
    let n = sextant_store_hub_capacity() + 500;
    for i in 0..n {
        s.create(format!("/k/{i:05}"), vec![]).await.unwrap();
    }
    let mut revs = Vec::new();
    while revs.len() < n {
        if let WatchMessage::Events(events) = w.next().await.unwrap() {
            revs.extend(events.iter().map(|e| e.revision()));
        }
    }
    let expected: Vec<u64> = (start + 1..=start + n as u64).collect();
    assert_eq!(revs, expected);
    node.stop().await;
}

fn sextant_store_hub_capacity() -> usize {
    4096
}

#[tokio::test]
async fn idle_watchers_get_progress_notifications() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let s = node.store.clone();
    let rev = s.create("/x", vec![]).await.unwrap();
    let mut w = s.watch("/quiet/", rev).await.unwrap();
    // Writes elsewhere advance the revision the progress notice reports.
    let rev2 = s.create("/y", vec![]).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, WatchMessage::Progress(rev2));
    node.stop().await;
}

#[tokio::test]
async fn compacted_revisions_are_refused_and_history_stays_bounded() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), None, |c| {
        c.snapshot_every = 100;
        c.logs_kept_after_snapshot = 10;
        c.compaction_interval = Duration::from_millis(200);
    })
    .await;
    node.store.bootstrap().await.unwrap();
    let s = node.store.clone();
    let first = s.create("/c/0", vec![]).await.unwrap();
    for round in 0..400u32 {
        for k in 0..5 {
            s.put(
                format!("/c/{k}"),
                round.to_le_bytes().to_vec(),
                Precondition::None,
            )
            .await
            .unwrap();
        }
    }
    // The compactor and raft snapshots keep history and the log bounded however long the
    // same keys are updated.
    eventually(10, "history compacted", async || {
        s.status().unwrap().compacted > first
    })
    .await;
    eventually(10, "log purged after a snapshot", async || {
        s.log_len().unwrap() < 500
    })
    .await;
    assert!(
        s.history_len().unwrap() < 2000,
        "history holds {}",
        s.history_len().unwrap()
    );

    let compacted = s.status().unwrap().compacted;
    match s.watch("/c/", first).await {
        Err(StoreError::Compacted {
            requested,
            compacted: c,
        }) => {
            assert_eq!(requested, first);
            assert_eq!(c, compacted);
        }
        Err(e) => panic!("expected Compacted, got {e}"),
        Ok(_) => panic!("expected Compacted, got a watcher"),
    }
    assert!(matches!(
        s.list(ListRequest {
            prefix: "/c/".into(),
            revision: Some(first),
            ..Default::default()
        })
        .await,
        Err(StoreError::Compacted { .. })
    ));
    // From the compacted revision on, watching works.
    s.watch("/c/", compacted).await.unwrap();
    let all = s
        .list(ListRequest {
            prefix: "/c/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.items.iter().all(|kv| kv.value == 399u32.to_le_bytes()));
    node.stop().await;
}

#[tokio::test]
async fn a_restarted_node_keeps_everything() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    let first = node.store.revision().unwrap();
    for i in 0..300 {
        node.store
            .create(format!("/r/{i:03}"), format!("{i}").into_bytes())
            .await
            .unwrap();
    }
    node.store
        .delete("/r/007", Precondition::None)
        .await
        .unwrap();
    let rev = node.store.revision().unwrap();
    let id = node.store.id();
    node.stop().await;

    let node = start_node(dir.path(), None, |_| {}).await;
    assert_eq!(node.store.id(), id, "a node keeps its identity");
    // No bootstrap: it finds its membership in its own log.
    eventually(10, "leader after restart", async || {
        node.store.status().unwrap().leader == Some(id)
    })
    .await;
    let list = node
        .store
        .list(ListRequest {
            prefix: "/r/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.items.len(), 299);
    assert_eq!(list.revision, rev);
    assert_eq!(
        node.store.get("/r/042").await.unwrap().unwrap().value,
        b"42"
    );
    // History survives too: a watch from before the restart replays it.
    let mut w = node.store.watch("/r/", first).await.unwrap();
    let mut n = 0;
    while n < 301 {
        if let WatchMessage::Events(e) = w.next().await.unwrap() {
            n += e.len();
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn damaged_files_give_a_clear_error_at_start() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let node = single(dir.path()).await;
    node.store.create("/d", b"precious".to_vec()).await.unwrap();
    node.stop().await;

    // Garbage in place of the state machine file.
    let state = dir.path().join("state.redb");
    let saved = std::fs::read(&state).unwrap();
    std::fs::write(&state, vec![0xAB; saved.len()]).unwrap();
    let err = sextant_store::Store::open(
        support::fast_config(dir.path(), "http://127.0.0.1:1"),
        reqwest::Client::new(),
    )
    .await
    .err()
    .expect("a garbage file must not open");
    let msg = err.to_string();
    assert!(
        msg.contains("state.redb") && msg.contains("restore"),
        "{msg}"
    );

    // A truncated raft log.
    std::fs::write(&state, &saved).unwrap();
    let log = dir.path().join("raft-log.redb");
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() / 3]).unwrap();
    let err = sextant_store::Store::open(
        support::fast_config(dir.path(), "http://127.0.0.1:1"),
        reqwest::Client::new(),
    )
    .await
    .err()
    .expect("a truncated log must not open");
    assert!(err.to_string().contains("raft-log.redb"), "{err}");
}
