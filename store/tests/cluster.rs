//! Three store nodes in one test process, over real HTTP on loopback.

mod support;

use std::time::Duration;

use sextant_store::{ListRequest, Precondition, StoreError};
use support::{TestNode, eventually, init_tracing, start_node};

async fn leader_of(nodes: &[&TestNode]) -> u64 {
    let mut leader = None;
    eventually(15, "a leader known to every node", async || {
        let seen: Vec<_> = nodes
            .iter()
            .map(|n| n.store.status().unwrap().leader)
            .collect();
        leader = seen[0];
        leader.is_some() && seen.iter().all(|l| *l == leader)
    })
    .await;
    leader.unwrap()
}

/// Creates `key` the way the store asks a client to during a failover: a retryable error is
/// retried, and after `Unavailable` (the write may have landed before the leader died) the
/// key is read first, so that a create that did land is not mistaken for a conflict.
async fn create_through_failover(store: &sextant_store::Store, key: &str, value: &[u8]) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.create(key, value.to_vec()).await {
            Ok(rev) => return rev,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                if matches!(e, StoreError::Unavailable { .. })
                    && let Ok(Some(kv)) = store.get(key).await
                {
                    assert_eq!(kv.value, value, "{key} holds what this create wrote");
                    return kv.mod_revision;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes go on after the leader died: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_its_leader_and_a_restarted_follower_catches_up_by_snapshot() {
    init_tracing();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let small_snapshots = |c: &mut sextant_store::StoreConfig| {
        c.snapshot_every = 50;
        c.logs_kept_after_snapshot = 5;
    };
    let n1 = start_node(dirs[0].path(), None, small_snapshots).await;
    n1.store.bootstrap().await.unwrap();
    let n2 = start_node(dirs[1].path(), None, small_snapshots).await;
    n2.store.join(&n1.url()).await.unwrap();
    let n3 = start_node(dirs[2].path(), None, small_snapshots).await;
    // Joining through a follower works too: it forwards to the leader.
    n3.store.join(&n2.url()).await.unwrap();
    assert_eq!(n1.store.status().unwrap().voters.len(), 3);

    // Writes through any node, linearizable reads through any other.
    let rev = n2.store.create("/k/from-n2", b"2".to_vec()).await.unwrap();
    assert_eq!(
        n3.store
            .get("/k/from-n2")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        rev
    );
    n3.store.create("/k/from-n3", b"3".to_vec()).await.unwrap();
    assert!(n1.store.get("/k/from-n3").await.unwrap().is_some());

    // Kill the leader: the other two elect a new one and keep serving.
    let mut nodes = vec![n1, n2, n3];
    let leader = leader_of(&nodes.iter().collect::<Vec<_>>()).await;
    let pos = nodes.iter().position(|n| n.store.id() == leader).unwrap();
    let dead = nodes.remove(pos);
    let (dead_dir, dead_addr) = (dead.dir.clone(), dead.addr);
    dead.kill().await;

    let (a, b) = (&nodes[0], &nodes[1]);
    let rev = create_through_failover(&a.store, "/k/after-failover", b"ok").await;
    let got = b.store.get("/k/after-failover").await.unwrap().unwrap();
    assert_eq!(got.mod_revision, rev);
    let new_leader = leader_of(&[a, b]).await;
    assert_ne!(new_leader, leader);

    // Stop a follower, write enough for the leader to snapshot and purge its log past it.
    let follower_pos = if a.store.id() == new_leader { 1 } else { 0 };
    let follower = nodes.remove(follower_pos);
    let (f_dir, f_addr, f_id) = (follower.dir.clone(), follower.addr, follower.store.id());
    follower.stop().await;
    // The old leader comes back, so that two of three are up while the follower is away.
    let old = start_node(&dead_dir, Some(dead_addr), small_snapshots).await;
    let live = &nodes[0];
    for i in 0..300 {
        live.store
            .put(
                format!("/bulk/{}", i % 20),
                format!("{i}").into_bytes(),
                Precondition::None,
            )
            .await
            .unwrap();
    }
    let leader_status = live.store.status().unwrap();
    assert!(
        leader_status.purged_index.is_some(),
        "the leader purged its log after a snapshot"
    );

    let back = start_node(&f_dir, Some(f_addr), small_snapshots).await;
    assert_eq!(back.store.id(), f_id);
    let want = live
        .store
        .list(ListRequest {
            prefix: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually(20, "the restarted follower catches up", async || {
        back.store.revision().unwrap() >= want.revision
    })
    .await;
    let status = back.store.status().unwrap();
    assert!(
        status.snapshot_index.is_some(),
        "caught up through a snapshot: {status:?}"
    );
    for kv in &want.items {
        assert_eq!(
            back.store.get_local(&kv.key).unwrap().as_ref(),
            Some(kv),
            "{}",
            kv.key
        );
    }
    // And the old leader, back as a follower, serves linearizable reads of what it missed.
    assert_eq!(
        old.store
            .get("/k/after-failover")
            .await
            .unwrap()
            .unwrap()
            .value,
        b"ok"
    );

    // Remove a node from the running cluster: the rest go on with two voters.
    live.store.remove_node(f_id).await.unwrap();
    eventually(10, "membership without the removed node", async || {
        live.store.status().unwrap().voters.len() == 2
    })
    .await;
    live.store.create("/k/after-remove", vec![]).await.unwrap();
    assert!(old.store.get("/k/after-remove").await.unwrap().is_some());

    back.stop().await;
    old.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_the_wrong_token_are_refused() {
    init_tracing();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n1 = start_node(d1.path(), None, |_| {}).await;
    n1.store.bootstrap().await.unwrap();
    let intruder = start_node(d2.path(), None, |c| c.cluster_token = "wrong".into()).await;
    match intruder.store.join(&n1.url()).await {
        Err(e @ StoreError::Unauthorized { .. }) => assert!(e.to_string().contains("token"), "{e}"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(n1.store.status().unwrap().voters.len(), 1);
    // Nothing reaches raft without the token either.
    let resp = reqwest::Client::new()
        .post(format!("{}/sextant.dev/store/v1/raft/vote", n1.url()))
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The cluster is unaffected.
    n1.store.create("/still", vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    intruder.stop().await;
    n1.stop().await;
}
