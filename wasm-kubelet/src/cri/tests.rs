//! Integration tests against a real containerd with its CRI plugin (`scripts/containerd.sh`),
//! whose socket is in `SEXTANT_CRI_SOCKET`. Every test pod has a uid of its own, and a guard
//! removes it from the runtime however the test ends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::logs::{self, Stream};
use crate::modules::PullPolicy;
use crate::wasm::{Exit, ExitReason};

const BUSYBOX: &str = "sextant.local/busybox:1";

fn socket() -> PathBuf {
    match std::env::var_os("SEXTANT_CRI_SOCKET") {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => panic!(
            "the CRI tests need a containerd with its CRI plugin: run `scripts/containerd.sh start` \
             and `export SEXTANT_CRI_SOCKET=<the socket path it prints>` (scripts/test.sh does both)"
        ),
    }
}

/// Removes a pod's sandboxes and containers from the runtime when dropped, even when the
/// test panicked. It uses a runtime of its own on a thread of its own: the test's runtime
/// may be unwinding, or be the very thread this blocks.
struct PodGuard {
    socket: PathBuf,
    uid: String,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let socket = self.socket.clone();
        let uid = self.uid.clone();
        let removed = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let cri = Cri::connect(&socket).map_err(|e| e.to_string())?;
                cri.remove_pod(&uid).await.map_err(|e| e.to_string())
            })
        })
        .join();
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot remove test pod {}: {e}", self.uid),
            Err(_) => eprintln!("cannot remove test pod {}: the cleanup panicked", self.uid),
        }
    }
}

/// A pod with a running sandbox, its directory, and the busybox image's id.
struct TestPod {
    // First, so that the pod leaves the runtime before its directory is deleted.
    _guard: PodGuard,
    cri: Cri,
    uid: String,
    dir: tempfile::TempDir,
    config: PodSandboxConfig,
    sandbox_id: String,
    image: String,
}

impl TestPod {
    async fn start(name: &str) -> TestPod {
        let socket = socket();
        let cri = Cri::connect(&socket).unwrap();
        let uid = format!("sextant-test-{:016x}", rand::random::<u64>());
        let guard = PodGuard {
            socket,
            uid: uid.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "sextant-test", "uid": uid},
            "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}
        }))
        .unwrap();
        let config = sandbox_config(&pod, dir.path());
        let sandbox_id = cri.run_sandbox(&config).await.unwrap();
        let image = cri
            .ensure_image(BUSYBOX, PullPolicy::IfNotPresent, &[], &config)
            .await
            .unwrap();
        TestPod {
            _guard: guard,
            cri,
            uid,
            dir,
            config,
            sandbox_id,
            image,
        }
    }

    /// The config of container `spec` (JSON of a pod spec's container, image added).
    fn container(&self, spec: serde_json::Value, mounts: &[crate::wasm::Mount]) -> ContainerConfig {
        let mut spec = spec;
        spec["image"] = BUSYBOX.into();
        let c: Container = serde_json::from_value(spec).unwrap();
        let log = format!("{}/0.log", c.name);
        container_config(&c, &[], mounts, &self.image, 0, &log)
    }

    /// Runs a container to its end, never stopped; returns its exit and id.
    async fn run(&self, config: ContainerConfig) -> (Exit, String) {
        let (tx, rx) = std::sync::mpsc::channel();
        let exit = tokio::time::timeout(
            Duration::from_secs(60),
            self.cri.run(
                &self.sandbox_id,
                &self.config,
                config,
                move |id| tx.send(id.to_owned()).unwrap(),
                CancellationToken::new(),
                || Duration::from_secs(10),
            ),
        )
        .await
        .expect("the container ran for more than a minute");
        (exit, rx.recv().expect("started was not called"))
    }

    /// Runs `config`, calls `during` with the id once started, then stops the container
    /// with `grace`; returns the exit, the result of `during`, and how long the stop took.
    async fn run_then_stop<T>(
        &self,
        config: ContainerConfig,
        grace: Duration,
        during: impl AsyncFnOnce(String) -> T,
    ) -> (Exit, T, Duration) {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = self.cri.run(
            &self.sandbox_id,
            &self.config,
            config,
            move |id| tx.send(id.to_owned()).unwrap(),
            stop.clone(),
            move || grace,
        );
        let drive = async {
            let id = rx.await.expect("the container did not start");
            let out = during(id).await;
            stop.cancel();
            (out, Instant::now())
        };
        let (exit, (out, cancelled)) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(run, drive) })
                .await
                .expect("the container ran for more than a minute");
        (exit, out, cancelled.elapsed())
    }
}

fn entries(pod: &TestPod, container: &str) -> Vec<(Stream, String)> {
    logs::read(&logs::path(pod.dir.path(), container, 0))
        .unwrap()
        .into_iter()
        .map(|e| (e.stream, e.content))
        .collect()
}

#[tokio::test]
async fn the_runtime_is_ready() {
    let cri = Cri::connect(&socket()).unwrap();
    let info = cri.status().await.unwrap();
    assert!(info.ready, "{info:?}");
    assert_eq!(info.message, None);
    assert_eq!(info.name, "containerd");
    assert!(
        !info.version.is_empty() && !info.api_version.is_empty(),
        "{info:?}"
    );
}

#[tokio::test]
async fn a_dead_runtime_is_reported_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    // Connecting never blocks nor fails: the runtime may come later.
    let cri = Cri::connect(&missing).unwrap();
    let err = cri.status().await.unwrap_err();
    assert!(matches!(err, CriError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("--cri-socket"), "{text}");
    assert!(Cri::connect(&dir.path().join("x".repeat(120))).is_err());
}

#[tokio::test]
async fn image_pull_policies() {
    let cri = Cri::connect(&socket()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "images", "namespace": "sextant-test", "uid": "images"},
        "spec": {"containers": []}
    }))
    .unwrap();
    let sandbox = sandbox_config(&pod, dir.path());

    // Never, and the runtime lacks it.
    let err = cri
        .ensure_image("sextant.local/absent:1", PullPolicy::Never, &[], &sandbox)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ErrImageNeverPull", "{err}");
    assert!(err.to_string().contains("sextant.local/absent:1"), "{err}");

    // Present: no pull is attempted (one could not succeed: sextant.local is no registry).
    let id = cri
        .ensure_image(BUSYBOX, PullPolicy::IfNotPresent, &[], &sandbox)
        .await
        .unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    let again = cri
        .ensure_image(BUSYBOX, PullPolicy::Never, &[], &sandbox)
        .await
        .unwrap();
    assert_eq!(again, id);

    // Absent, and the registry is not there: the runtime's cause is in the message.
    let err = cri
        .ensure_image(
            "127.0.0.1:1/nothing:1",
            PullPolicy::IfNotPresent,
            &[],
            &sandbox,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ErrImagePull", "{err}");
    assert!(matches!(err, CriError::Pull { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1/nothing:1"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
}

#[tokio::test]
async fn a_container_runs_to_completion_and_logs() {
    let pod = TestPod::start("logs").await;
    let config = pod.container(
        serde_json::json!({"name": "hello", "command": ["sh", "-c", "echo hello; echo err >&2"]}),
        &[],
    );
    let (exit, id) = pod.run(config).await;
    assert_eq!(exit.code, 0, "{exit:?}");
    assert_eq!(exit.reason, ExitReason::Completed);
    let lines = entries(&pod, "hello");
    assert!(
        lines.contains(&(Stream::Stdout, "hello".into())),
        "{lines:?}"
    );
    assert!(lines.contains(&(Stream::Stderr, "err".into())), "{lines:?}");
    // The ended container is removed; its log stays.
    let gone = pod.cri.container_status(&id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

#[tokio::test]
async fn a_failing_container_reports_its_code() {
    let pod = TestPod::start("fails").await;
    let config = pod.container(
        serde_json::json!({"name": "three", "command": ["sh", "-c", "exit 3"]}),
        &[],
    );
    let (exit, _) = pod.run(config).await;
    assert_eq!((exit.code, exit.reason), (3, ExitReason::Error), "{exit:?}");
}

#[tokio::test]
async fn a_container_that_cannot_start_says_why() {
    let pod = TestPod::start("nostart").await;
    let config = pod.container(
        serde_json::json!({"name": "missing", "command": ["/bin/no-such-program"]}),
        &[],
    );
    let (tx, _rx) = std::sync::mpsc::channel();
    let exit = pod
        .cri
        .run(
            &pod.sandbox_id,
            &pod.config,
            config,
            move |id| tx.send(id.to_owned()).unwrap(),
            CancellationToken::new(),
            || Duration::from_secs(1),
        )
        .await;
    assert_eq!(
        (exit.code, exit.reason),
        (128, ExitReason::Error),
        "{exit:?}"
    );
    let message = exit.message.unwrap_or_default();
    assert!(
        message.contains("cannot start container missing"),
        "{message}"
    );
    assert!(message.contains("no-such-program"), "{message}");
}

#[tokio::test]
async fn the_memory_limit_ends_in_oom_killed() {
    let pod = TestPod::start("oom").await;
    let config = pod.container(
        serde_json::json!({
            "name": "hog",
            "command": ["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
            "resources": {"limits": {"memory": "16Mi"}}
        }),
        &[],
    );
    let (exit, _) = pod.run(config).await;
    assert_eq!(
        (exit.code, exit.reason),
        (137, ExitReason::OOMKilled),
        "{exit:?}"
    );
    assert!(!entries(&pod, "hog").contains(&(Stream::Stdout, "survived".into())));
}

#[tokio::test]
async fn stopping_sends_sigterm_first() {
    let pod = TestPod::start("graceful").await;
    let config = pod.container(
        serde_json::json!({
            "name": "trapper",
            "command": ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; sleep 100 & wait"]
        }),
        &[],
    );
    let log = logs::path(pod.dir.path(), "trapper", 0);
    let (exit, (), took) = pod
        .run_then_stop(config, Duration::from_secs(30), async |_| {
            // Stop once the trap is set.
            for _ in 0..100 {
                if logs::read(&log).is_ok_and(|l| l.iter().any(|e| e.content == "ready")) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the container never said it was ready");
        })
        .await;
    assert_eq!(
        (exit.code, exit.reason),
        (0, ExitReason::Completed),
        "{exit:?}"
    );
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert!(entries(&pod, "trapper").contains(&(Stream::Stdout, "bye".into())));
}

#[tokio::test]
async fn stopping_kills_after_the_grace_period() {
    let pod = TestPod::start("stubborn").await;
    // A shell as PID 1 ignores SIGTERM: only SIGKILL ends it.
    let config = pod.container(
        serde_json::json!({"name": "stubborn", "command": ["sh", "-c", "sleep 100 & wait"]}),
        &[],
    );
    let (exit, (), took) = pod
        .run_then_stop(config, Duration::from_secs(1), async |_| {})
        .await;
    assert_eq!(
        (exit.code, exit.reason),
        (137, ExitReason::Killed),
        "{exit:?}"
    );
    assert!(took >= Duration::from_secs(1), "stopping took {took:?}");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
}

#[tokio::test]
async fn a_mounted_host_directory_is_shared() {
    let pod = TestPod::start("mounts").await;
    let volume = pod.dir.path().join("volumes/data");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::write(volume.join("in"), "from the host").unwrap();
    let mounts = [crate::wasm::Mount {
        host: volume.clone(),
        guest: "/data".into(),
        read_only: false,
    }];
    let config = pod.container(
        serde_json::json!({
            "name": "writer",
            "command": ["sh", "-c", "cat /data/in > /data/out; echo ' and back' >> /data/out"]
        }),
        &mounts,
    );
    let (exit, _) = pod.run(config).await;
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?}");
    assert_eq!(
        std::fs::read_to_string(volume.join("out")).unwrap(),
        "from the host and back\n"
    );
}

#[tokio::test]
async fn exec_into_a_running_container() {
    let pod = TestPod::start("exec").await;
    let config = pod.container(
        serde_json::json!({
            "name": "sleeper",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"]
        }),
        &[],
    );
    let cri = pod.cri.clone();
    let (exit, (output, url), _) = pod
        .run_then_stop(config, Duration::from_secs(5), async |id| {
            let cmd = ["sh", "-c", "echo out; echo err >&2; exit 7"].map(String::from);
            let output = cri
                .exec_sync(&id, cmd.to_vec(), Duration::from_secs(10))
                .await
                .unwrap();
            let url = cri
                .exec_url(&id, vec!["sh".into()], true, true, false, true)
                .await
                .unwrap();
            (output, url)
        })
        .await;
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(output.exit_code, 7);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(exit.reason, ExitReason::Completed, "{exit:?}");
}

#[tokio::test]
async fn remove_pod_leaves_nothing() {
    let pod = TestPod::start("removal").await;
    assert_eq!(
        pod.cri.find_sandbox(&pod.uid).await.unwrap(),
        Some(pod.sandbox_id.clone())
    );
    // A container left running, as a dropped run would leave it.
    let config = pod.container(
        serde_json::json!({"name": "left", "command": ["sh", "-c", "sleep 100"]}),
        &[],
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let id = {
        let run = pod.cri.run(
            &pod.sandbox_id,
            &pod.config,
            config,
            move |id| tx.send(id.to_owned()).unwrap(),
            CancellationToken::new(),
            || Duration::ZERO,
        );
        tokio::pin!(run);
        // The run is dropped once the container has started.
        tokio::select! {
            exit = &mut run => panic!("ended early: {exit:?}"),
            () = tokio::time::sleep(Duration::from_secs(30)) => panic!("did not start"),
            id = rx => id.unwrap(),
        }
    };
    let running = pod.cri.container_status(&id).await.unwrap();
    assert_eq!(
        running.state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32
    );

    pod.cri.remove_pod(&pod.uid).await.unwrap();
    assert_eq!(pod.cri.find_sandbox(&pod.uid).await.unwrap(), None);
    assert!(pod.cri.sandboxes(&pod.uid, None).await.unwrap().is_empty());
    let gone = pod.cri.container_status(&id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    // Removing again is fine.
    pod.cri.remove_pod(&pod.uid).await.unwrap();
}
