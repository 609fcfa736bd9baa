//! A release `sextant server` run as a child process on a fresh data dir, and the admin
//! kube-rs client for it: what the suites that measure the real binary over HTTPS share.
//!
//! The binary is looked up beside the bench binary (`target/release/`), so `cargo run
//! --release -p bench` measures what `cargo build --release -p sextant` built.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::Api;

/// The directory this bench binary runs from: where cargo put the other release binaries.
pub fn release_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("the bench binary has no parent directory")?
        .to_owned())
}

/// This crate's directory in the checkout being measured. Read at run time (`cargo run`
/// sets it) because the compile-time value is stale when one target dir serves two
/// checkouts: cargo does not rebuild a binary just because the checkout moved.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Builds what the suites that run real binaries need (the release `sextant` and
/// `wasm-kubelet`, and the example modules) with the cargo that started this bench: one
/// command then measures the checkout as it is, never a binary left over from an older
/// build. Up-to-date builds take cargo a second. Run outside cargo (`CARGO` unset), it
/// builds nothing, and the suites say what is missing.
pub fn ensure_built() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let target = release_dir()?
        .parent()
        .context("the bench binary is not in a cargo target dir")?
        .to_owned();
    for args in [
        // Not `-p bench`: that would relink the binary running now.
        &["build", "--release", "-p", "sextant", "-p", "wasm-kubelet"][..],
        &["build-examples", "--release"][..],
    ] {
        let status = Command::new(&cargo)
            .args(args)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(crate_dir())
            .status()
            .context("cannot run cargo")?;
        anyhow::ensure!(status.success(), "`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

/// The release `sextant` binary (built by [`ensure_built`] when run through cargo).
pub fn sextant_binary() -> anyhow::Result<PathBuf> {
    let path = release_dir()?.join("sextant");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build it with `cargo build --release -p sextant`",
        path.display()
    );
    Ok(path)
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Process {
    child: Child,
    what: &'static str,
}

impl Process {
    /// Owns `child`, named `what` in errors.
    pub fn new(child: Child, what: &'static str) -> Process {
        Process { child, what }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .with_context(|| format!("cannot read the {}'s /proc status", self.what))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    /// Fails with the process's log if it has exited.
    pub fn ensure_alive(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "the {} exited with {status}; its log: {}",
                self.what,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// SIGTERM, and SIGKILL if it is still there after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drop kills it.
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `sextant server` on a fresh data dir, and an admin client for it.
pub struct Server {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, the API's address.
    pub addr: String,
    pub process: Process,
    /// The admin kubeconfig's client config, to make more clients (each its own connections).
    pub config: kube::Config,
    pub client: kube::Client,
}

impl Server {
    /// Starts `sextant server --data-dir TMP --listen ADDR ARGS…` (`RUST_LOG=warn`, its
    /// stderr in `TMP/server.log`) and returns once it wrote its admin kubeconfig.
    pub async fn start(sextant: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let addr = free_addr()?;
        let log_path = dir.path().join("server.log");
        let child = Command::new(sextant)
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &addr])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .spawn()
            .with_context(|| format!("cannot run {}", sextant.display()))?;
        let mut process = Process::new(child, "sextant server");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !kubeconfig.exists() {
            process.ensure_alive(&log_path)?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server wrote no kubeconfig within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The file appears before it is complete only if written in place; give it a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        let client = kube::Client::try_from(config.clone())?;
        Ok(Server {
            dir,
            addr,
            process,
            config,
            client,
        })
    }

    /// Waits until `name` is Ready and has its pod range.
    pub async fn wait_node_ready(&self, name: &str) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let node = nodes.get_opt(name).await?;
            let ready = node.as_ref().is_some_and(|n| {
                let has_cidr = n.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some());
                let is_ready = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                has_cidr && is_ready
            });
            if ready {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {name} was not Ready with a pod range within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server cleanly (SIGTERM; SIGKILL after 30 s).
    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(30)).await;
    }
}

/// `127.0.0.1:PORT` with a port the kernel just handed out and that is free again.
pub fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}
