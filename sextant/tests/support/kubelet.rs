//! A `wasm-kubelet` process joined to a test server as another node.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `wasm-kubelet`, built beside the test binaries by `cargo build --workspace`.
fn kubelet_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.ancestors().nth(2).unwrap().join("wasm-kubelet");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

pub struct Kubelet {
    child: Child,
}

impl Kubelet {
    pub fn start(server_dir: &Path, server_addr: &str, node: &str, data_dir: &Path) -> Kubelet {
        let token = std::fs::read_to_string(server_dir.join("node-token")).unwrap();
        let child = Command::new(kubelet_bin())
            .args([
                "--server",
                &format!("https://{server_addr}"),
                "--node-name",
                node,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--kubelet-listen", "127.0.0.1:0"])
            .env("SEXTANT_TOKEN", token.trim())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Kubelet { child }
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "wasm-kubelet exited with {status:?}");
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
