//! A real `sextant server` process in a temp dir, and a real `kubectl` pointed at it.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

pub mod agent;
pub mod kubelet;
pub mod pods;
pub mod wasm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
}

pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Starts `sextant server` on `dir` and `addr`; the server's log goes to `log` (piped when a
/// test reads it, inherited otherwise). The server runs no node agent unless `extra` names
/// one with `--node-name` (most tests place pods on simulated nodes, `agent.rs`).
pub fn spawn_server(dir: &Path, addr: &str, extra: &[&str], log: Stdio, log_level: &str) -> Child {
    let agent = extra.contains(&"--node-name");
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "server",
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            addr,
        ])
        .args(if agent {
            &[][..]
        } else {
            &["--disable-agent"][..]
        })
        .args([
            "--cluster-cidr",
            &cluster_cidr(addr),
            "--node-cidr-mask-size",
            "24",
        ])
        .args(if agent && !extra.contains(&"--service-cluster-ip-range") {
            service_ranges(addr)
        } else {
            Vec::new()
        })
        .args(extra)
        .env("RUST_LOG", log_level)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A pod range of its own for each test server (from its port), so that pods of servers
/// running side by side never share an address.
pub fn cluster_cidr(addr: &str) -> String {
    let port: u32 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let slot = port % 2048;
    // 127.128.0.0/9 in /20s: 16 nodes of 254 pods each per server.
    let base = (127u32 << 24) | (128 << 16) | (slot << 12);
    format!("{}/20", std::net::Ipv4Addr::from(base))
}

/// Service ranges of their own for each test server that runs a node agent (from its
/// port): the agents of servers running side by side serve ClusterIPs and NodePorts on
/// loopback, and must not answer for each other's Services.
pub fn service_ranges(addr: &str) -> Vec<String> {
    let port: u32 = addr.rsplit(':').next().unwrap().parse().unwrap();
    // 127.96.0.0/12 in /24s, and 30000-32767 in slices of 10 ports.
    let ips = (127u32 << 24) | (96 << 16) | ((port % 4096) << 8);
    let first_port = 30000 + (port % 276) * 10;
    vec![
        "--service-cluster-ip-range".into(),
        format!("{}/24", std::net::Ipv4Addr::from(ips)),
        "--service-node-port-range".into(),
        format!("{first_port}-{}", first_port + 9),
    ]
}

/// Waits until the server on `dir` has written its kubeconfig: it is then ready.
pub fn wait_until_ready(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("kubeconfig.yaml").exists() {
        assert!(
            Instant::now() < deadline,
            "the server on {} wrote no kubeconfig within 60s",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let child = spawn_server(dir.path(), &addr, extra, Stdio::inherit(), "warn");
        wait_until_ready(dir.path());
        Server {
            dir,
            addr,
            child: Some(child),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pki/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// An HTTP client that trusts the cluster CA.
    pub fn http(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = std::fs::read(self.dir.path().join("pki/ca.crt")).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// Runs kubectl with this server's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_with(&self.kubeconfig(), args, None)
    }

    /// Runs kubectl and returns stdout; panics with stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl with `stdin` as input (for `-f -`).
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = kubectl_with(&self.kubeconfig(), args, Some(stdin));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the server exited with {status:?}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 20s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn kubectl_with(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is installed (see scripts/setup.sh)");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Polls `f` until it returns Some, for up to `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kube-rs client for the server, from the kubeconfig it wrote.
pub async fn client(s: &Server) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}
