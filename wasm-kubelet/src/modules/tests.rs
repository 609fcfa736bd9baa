//! Fetcher tests: real files, a real HTTP server on 127.0.0.1, a real registry when installed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

/// The smallest valid wasm module, and a slightly different one.
const MODULE: &[u8] = b"\0asm\x01\0\0\0";
const OTHER_MODULE: &[u8] = b"\0asm\x01\0\0\0\0\x03\x01\0\0"; // plus an empty custom section

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn fetcher(dir: &tempfile::TempDir) -> Fetcher {
    Fetcher::new(dir.path().join("modules")).unwrap()
}

fn count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every GET with `status` and `body` after
/// `delay`, counting requests. Stops when dropped.
struct TestServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    async fn start(status: &'static str, body: &'static [u8], delay: Duration) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (hits, stop) = (hits.clone(), stop.clone());
            async move {
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    let (mut conn, _) = tokio::select! {
                        _ = stop.cancelled() => break,
                        accepted = listener.accept() => accepted.unwrap(),
                    };
                    let hits = hits.clone();
                    conns.spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let reply = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(reply.as_bytes()).await;
                        let _ = conn.write_all(body).await;
                    });
                }
                conns.shutdown().await;
            }
        });
        TestServer {
            addr,
            hits,
            stop,
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn shut(mut self) {
        self.stop.cancel();
        self.task.take().unwrap().await.unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn file_modules_are_hashed_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let module = dir.path().join("app.wasm");
    std::fs::write(&module, MODULE).unwrap();
    let image = format!("file://{}", module.display());

    let fetched = fetcher
        .fetch(&image, false, PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(fetched.digest, sha(MODULE));
    assert_eq!(
        fetched.path,
        dir.path()
            .join("modules/sha256")
            .join(hex_of(&fetched.digest))
    );
    assert_eq!(std::fs::read(&fetched.path).unwrap(), MODULE);

    // Edited in place: the new content gets its own digest.
    std::fs::write(&module, OTHER_MODULE).unwrap();
    let again = fetcher
        .fetch(&image, false, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap();
    assert_eq!(again.digest, sha(OTHER_MODULE));
    assert_eq!(count(&dir.path().join("modules/sha256")), 2);
}

#[tokio::test]
async fn missing_and_relative_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let missing = dir.path().join("nope.wasm");
    let err = fetcher
        .fetch(
            &format!("file://{}", missing.display()),
            false,
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "module file {} not found on this node: copy it there or fix the path",
            missing.display()
        )
    );
    let err = fetcher
        .fetch("file://app.wasm", false, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("absolute path"), "{err}");
    let err = fetcher
        .fetch("busybox:1.36", false, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a wasm module"), "{err}");
}

#[tokio::test]
async fn http_digest_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let server = TestServer::start("200 OK", MODULE, Duration::ZERO).await;

    let good = format!(
        "{}#sha256={}",
        server.url("/app.wasm"),
        hex_of(&sha(MODULE))
    );
    let fetched = fetcher
        .fetch(&good, false, PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(fetched.digest, sha(MODULE));
    assert_eq!(std::fs::read(&fetched.path).unwrap(), MODULE);

    let other = tempfile::tempdir().unwrap();
    let fetcher = self::fetcher(&other);
    let bad = format!(
        "{}#sha256={}",
        server.url("/app.wasm"),
        hex_of(&sha(OTHER_MODULE))
    );
    let err = fetcher
        .fetch(&bad, false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "digest mismatch: expected {}, got {}",
            sha(OTHER_MODULE),
            sha(MODULE)
        )
    );
    assert_eq!(count(&other.path().join("modules/sha256")), 0);
    assert_eq!(count(&other.path().join("modules/tmp")), 0);
}

#[tokio::test]
async fn cached_modules_survive_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let server = TestServer::start("200 OK", MODULE, Duration::ZERO).await;
    let url = server.url("/app.wasm");
    let pinned = format!("{url}#sha256={}", hex_of(&sha(MODULE)));

    let err = fetcher
        .fetch(&url, false, PullPolicy::Never, &[])
        .await
        .unwrap_err();
    assert!(err.is_never_pull());
    assert_eq!(
        err.to_string(),
        format!("image not present and imagePullPolicy is Never: {url}")
    );

    let first = fetcher
        .fetch(&url, false, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap();
    assert_eq!(first.digest, sha(MODULE));
    fetcher
        .fetch(&url, false, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap();
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "the second fetch used the cache"
    );
    server.shut().await;

    assert_eq!(
        fetcher
            .fetch(&url, false, PullPolicy::IfNotPresent, &[])
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        fetcher
            .fetch(&url, false, PullPolicy::Never, &[])
            .await
            .unwrap(),
        first
    );
    // A digest-pinned URL already cached needs no network even with Always.
    assert_eq!(
        fetcher
            .fetch(&pinned, false, PullPolicy::Always, &[])
            .await
            .unwrap(),
        first
    );
    // A new Fetcher on the same directory (a restarted kubelet) remembers too.
    let restarted = self::fetcher(&dir);
    assert_eq!(
        restarted
            .fetch(&url, false, PullPolicy::Never, &[])
            .await
            .unwrap(),
        first
    );

    let err = fetcher
        .fetch(&url, false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot fetch {url}: connection refused")
    );
}

#[tokio::test]
async fn http_errors_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_module_bytes: 4,
        read_timeout: Duration::from_millis(300),
        fetch_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let fetcher = Fetcher::with_limits(dir.path().to_path_buf(), limits).unwrap();

    let missing = TestServer::start("404 Not Found", b"no", Duration::ZERO).await;
    let err = fetcher
        .fetch(&missing.url("/x.wasm"), false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot fetch {}: server answered 404 Not Found",
            missing.url("/x.wasm")
        )
    );

    let big = TestServer::start("200 OK", MODULE, Duration::ZERO).await;
    let err = fetcher
        .fetch(&big.url("/x.wasm"), false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "module {} is larger than the node's limit of 4 bytes",
            big.url("/x.wasm")
        )
    );

    let slow = TestServer::start("200 OK", b"ok", Duration::from_secs(10)).await;
    let err = fetcher
        .fetch(&slow.url("/x.wasm"), false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot fetch {}: timed out", slow.url("/x.wasm"))
    );
    assert_eq!(count(&dir.path().join("sha256")), 0);
    assert_eq!(count(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn concurrent_fetches_share_one_download() {
    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let server = TestServer::start("200 OK", MODULE, Duration::from_millis(300)).await;
    let url = server.url("/app.wasm");

    let fetches = (0..5).map(|_| fetcher.fetch(&url, false, PullPolicy::Always, &[]));
    let results = futures::future::join_all(fetches).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    for r in results {
        assert_eq!(r.unwrap().digest, sha(MODULE));
    }
    // Finished downloads are forgotten: the next Always goes to the server again.
    fetcher
        .fetch(&url, false, PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn pull_policy_defaults_like_kubernetes() {
    assert_eq!(PullPolicy::from_spec(Some("Never"), "x"), PullPolicy::Never);
    assert_eq!(
        PullPolicy::from_spec(None, "wasm://r:5000/app"),
        PullPolicy::Always
    );
    assert_eq!(
        PullPolicy::from_spec(None, "wasm://r:5000/app:latest"),
        PullPolicy::Always
    );
    assert_eq!(
        PullPolicy::from_spec(None, "wasm://r:5000/app:v1"),
        PullPolicy::IfNotPresent
    );
    assert_eq!(
        PullPolicy::from_spec(None, "https://h/app.wasm"),
        PullPolicy::Always
    );
    assert_eq!(
        PullPolicy::from_spec(None, "https://h/app.wasm#sha256=00"),
        PullPolicy::IfNotPresent
    );
}

/// A `docker-registry` (Debian package `docker-registry`) serving on a free 127.0.0.1 port
/// from a temp directory; killed when dropped.
struct Registry {
    addr: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

impl Registry {
    async fn start() -> Option<Registry> {
        // The binaries install this process-wide; a lone test must do it itself.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if !std::path::Path::new(REGISTRY_BIN).exists() {
            eprintln!("skipped: {REGISTRY_BIN} is absent (apt-get install docker-registry)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let registry = Registry {
            addr,
            _child: child,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let probe = client
                .get(format!("http://{}/v2/", registry.addr))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Some(registry);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("docker-registry did not start on {}", registry.addr);
    }

    async fn push(&self, repo_tag: &str, layer_media_type: &str, data: &'static [u8]) -> String {
        use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        let reference: oci_client::Reference = format!("{}/{repo_tag}", self.addr).parse().unwrap();
        let layers = [ImageLayer::new(data, layer_media_type.to_string(), None)];
        let config = Config::new(
            &b"{}"[..],
            "application/vnd.wasm.config.v0+json".to_string(),
            None,
        );
        let auth = oci_client::secrets::RegistryAuth::Anonymous;
        client
            .push(&reference, &layers, config, &auth, None)
            .await
            .unwrap();
        client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn wasm_artifacts_come_from_a_registry() {
    let Some(registry) = Registry::start().await else {
        return;
    };
    let manifest_digest = registry
        .push("demo/hello:v1", WASM_MEDIA_TYPE, MODULE)
        .await;
    registry
        .push(
            "demo/old:v1",
            oci_client::manifest::WASM_LAYER_MEDIA_TYPE,
            OTHER_MODULE,
        )
        .await;
    registry
        .push(
            "demo/tarball:v1",
            "application/vnd.oci.image.layer.v1.tar",
            b"not wasm",
        )
        .await;

    let dir = tempfile::tempdir().unwrap();
    let fetcher = fetcher(&dir);
    let tagged = format!("wasm://{}/demo/hello:v1", registry.addr);
    let fetched = fetcher
        .fetch(&tagged, false, PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(fetched.digest, sha(MODULE));
    assert_eq!(std::fs::read(&fetched.path).unwrap(), MODULE);

    let by_digest = format!("wasm://{}/demo/hello@{manifest_digest}", registry.addr);
    assert_eq!(
        fetcher
            .fetch(&by_digest, false, PullPolicy::IfNotPresent, &[])
            .await
            .unwrap(),
        fetched
    );
    // A plain reference in a wasm pod.
    let plain = format!("{}/demo/old:v1", registry.addr);
    let old = fetcher
        .fetch(&plain, true, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap();
    assert_eq!(old.digest, sha(OTHER_MODULE));

    let not_wasm = format!("wasm://{}/demo/tarball:v1", registry.addr);
    let err = fetcher
        .fetch(&not_wasm, false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{not_wasm} is not a wasm artifact: no layer of media type application/wasm \
             (layers: application/vnd.oci.image.layer.v1.tar)"
        )
    );
    let missing = format!("wasm://{}/demo/hello:v2", registry.addr);
    let err = fetcher
        .fetch(&missing, false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot pull {missing}: not found in the registry (manifest unknown)")
    );

    drop(registry);
    assert_eq!(
        fetcher
            .fetch(&tagged, false, PullPolicy::IfNotPresent, &[])
            .await
            .unwrap(),
        fetched
    );
    assert_eq!(
        fetcher
            .fetch(&tagged, false, PullPolicy::Never, &[])
            .await
            .unwrap(),
        fetched
    );
    let err = fetcher
        .fetch(&tagged, false, PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot pull {tagged}: connection refused")
    );
}
