//! kill -9 in the middle of a stream of writes loses no acknowledged write.
//!
//! The test runs its own binary again as a child (the ignored `crash_child` test), which
//! writes from many tasks and prints each key once the store has acknowledged it. The parent
//! kills the child with SIGKILL mid-stream, reopens the data dir, and checks every key
//! the child printed.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sextant_store::Precondition;
use support::{init_tracing, start_node};

const DIR_VAR: &str = "SEXTANT_CRASH_CHILD_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env("SEXTANT_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (acked, killed_after) = tokio::task::spawn_blocking(move || {
            let mut acked = Vec::new();
            let started = Instant::now();
            for line in stdout.lines() {
                let line = line.unwrap();
                if let Some(key) = line.strip_prefix("ack ") {
                    acked.push(key.to_owned());
                }
                // Kill in full flight: well after writes started, at an arbitrary point.
                if acked.len() >= 1500 + round * 700 || started.elapsed() > Duration::from_secs(60)
                {
                    break;
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            (acked, started.elapsed())
        })
        .await
        .unwrap();
        assert!(
            acked.len() >= 1500,
            "the child acknowledged only {} writes in {killed_after:?}",
            acked.len()
        );

        let node = start_node(dir.path(), None, |_| {}).await;
        for key in &acked {
            // `get` is linearizable: it waits until the restarted node has re-applied its log.
            assert!(
                node.store.get(key).await.unwrap().is_some(),
                "acknowledged write {key} was lost (round {round})"
            );
        }
        node.stop().await;
    }
}

/// The child half of the test above; does nothing unless started by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_9_loses_no_acknowledged_write as a child process"]
async fn crash_child() {
    let dir = std::env::var(DIR_VAR).expect("started by the crash test");
    let round = std::env::var("SEXTANT_CRASH_ROUND").unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let node = start_node(std::path::Path::new(&dir), None, |_| {}).await;
    node.store.bootstrap().await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let s = node.store.clone();
        let round = round.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{round}/{w:02}/{i:06}");
                s.put(key.clone(), vec![7; 100], Precondition::None)
                    .await
                    .unwrap();
                println!("ack {key}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
