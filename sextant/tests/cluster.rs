//! Three `sextant server` processes as one cluster: every node serves the API, and the API
//! stays up when the first server (the raft leader) is killed.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{free_addr, kubectl_with, spawn_server, wait_until_ready};

struct Proc {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

fn start(dir: &std::path::Path, addr: &str, extra: &[&str]) -> Proc {
    let child = spawn_server(dir, addr, extra, Stdio::inherit(), "warn");
    wait_until_ready(dir);
    Proc {
        child,
        dir: dir.to_owned(),
    }
}

impl Proc {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        kubectl_with(&self.dir.join("kubeconfig.yaml"), args, stdin)
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn any_server_serves_the_api_and_it_survives_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let addrs = [free_addr(), free_addr(), free_addr()];
    let a = start(&root.path().join("a"), &addrs[0], &[]);
    let token = std::fs::read_to_string(a.dir.join("node-token")).unwrap();
    let seed = format!("https://{}", addrs[0]);
    let b = start(
        &root.path().join("b"),
        &addrs[1],
        &["--join", &seed, "--token", token.trim()],
    );
    let c = start(
        &root.path().join("c"),
        &addrs[2],
        &["--join", &seed, "--token", token.trim()],
    );

    // Written through one server, read through another.
    b.ok(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: via-b, namespace: default}\ndata: {k: v}\n"));
    assert_eq!(
        c.ok(
            &[
                "-n",
                "default",
                "get",
                "cm",
                "via-b",
                "-o",
                "jsonpath={.data.k}"
            ],
            None
        ),
        "v"
    );

    // Kill the first server (it bootstrapped the cluster and leads it) without warning.
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl(
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: via-c, namespace: default}\n"),
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let names = b.ok(&["-n", "default", "get", "cm", "-o", "name"], None);
    assert!(
        names.contains("configmap/via-b") && names.contains("configmap/via-c"),
        "{names}"
    );
}
