//! `sextant server` as a real process: first start, joining, wrong tokens, SIGTERM.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_addr, spawn_server};

fn start(dir: &Path, listen: &str, extra: &[&str]) -> Child {
    spawn_server(dir, listen, extra, Stdio::piped(), "info")
}

/// A client trusting the cluster CA in `dir`.
fn client(dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(dir.join("pki/ca.crt")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

/// The store secret: the last part of the join token.
fn secret(token: &str) -> String {
    token.trim().rsplit("::").next().unwrap().to_owned()
}

async fn status(dir: &Path, listen: &str, secret: &str) -> Option<serde_json::Value> {
    let resp = client(dir)
        .get(format!("https://{listen}/sextant.dev/store/v1/status"))
        .bearer_auth(secret)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM and returns the exit status and what the process logged. The log is
/// read while the server stops: a server that cannot reach its peers logs a lot, and a
/// full pipe would block it.
fn terminate(mut child: Child) -> (std::process::ExitStatus, String) {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut log);
        String::from_utf8_lossy(&log).into_owned()
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within 20s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn servers_start_join_and_stop_cleanly_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b, dir_c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    let (addr_a, addr_b, addr_c) = (free_addr(), free_addr(), free_addr());

    let a = start(&dir_a, &addr_a, &[]);
    let token = wait_for("node-token", async || {
        std::fs::read_to_string(dir_a.join("node-token")).ok()
    })
    .await;
    assert!(
        token.starts_with("SXT1::") && secret(&token).len() >= 32,
        "a join token: {token:?}"
    );
    let sec = secret(&token);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir_a.join("node-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the token is readable by its owner only");
    let s = wait_for("first server ready", async || {
        status(&dir_a, &addr_a, &sec)
            .await
            .filter(|s| s["leader"].is_u64())
    })
    .await;
    assert_eq!(s["voters"].as_object().unwrap().len(), 1);
    assert!(
        status(&dir_a, &addr_a, "not-the-token").await.is_none(),
        "the status endpoint needs the token"
    );
    wait_for("kubeconfig", async || {
        std::fs::read_to_string(dir_a.join("kubeconfig.yaml")).ok()
    })
    .await;

    // A second server joins with the token.
    let b = start(
        &dir_b,
        &addr_b,
        &["--join", &format!("https://{addr_a}"), "--token", &token],
    );
    wait_for("two voters", async || {
        status(&dir_a, &addr_a, &sec)
            .await
            .filter(|s| s["voters"].as_object().unwrap().len() == 2)
    })
    .await;
    // The joined server got the cluster's CA and admin credential.
    wait_for("second kubeconfig", async || {
        std::fs::read_to_string(dir_b.join("kubeconfig.yaml")).ok()
    })
    .await;
    assert_eq!(
        std::fs::read(dir_b.join("pki/ca.crt")).unwrap(),
        std::fs::read(dir_a.join("pki/ca.crt")).unwrap()
    );

    // A third with the wrong token is refused, says why, and exits non-zero.
    let forged = format!(
        "{}::not-the-secret",
        token.trim().rsplit_once("::").unwrap().0
    );
    let c = start(
        &dir_c,
        &addr_c,
        &["--join", &format!("https://{addr_a}"), "--token", &forged],
    );
    let out = c.wait_with_output().unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("token"), "the error names the token: {log}");

    for child in [b, a] {
        let (status, log) = terminate(child);
        assert!(status.success(), "exit status {status:?}; log:\n{log}");
        assert!(
            log.contains("SIGTERM received") && log.contains("sextant server stopped"),
            "{log}"
        );
    }
}
