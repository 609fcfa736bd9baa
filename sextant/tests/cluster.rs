//! Three `sextant server` processes as one cluster: every node serves the API, the API
//! stays up when the first server (the raft leader) is killed, and the scheduler's and the
//! controller manager's leadership moves to a surviving server when its holder is killed.

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

/// Three servers forming one cluster, each started with `extra` flags.
fn three_servers(root: &std::path::Path, extra: &[&str]) -> [Proc; 3] {
    let addrs = [free_addr(), free_addr(), free_addr()];
    let a = start(&root.join("a"), &addrs[0], extra);
    let token = std::fs::read_to_string(a.dir.join("node-token")).unwrap();
    let seed = format!("https://{}", addrs[0]);
    let join = |name: &str, addr: &str| {
        let mut args = vec!["--join", &seed, "--token", token.trim()];
        args.extend_from_slice(extra);
        start(&root.join(name), addr, &args)
    };
    let b = join("b", &addrs[1]);
    let c = join("c", &addrs[2]);
    [a, b, c]
}

#[test]
fn any_server_serves_the_api_and_it_survives_the_leader() {
    let root = tempfile::tempdir().unwrap();
    let [a, b, c] = three_servers(root.path(), &[]);

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

/// The holder of a leader Lease in kube-system, read through `p`.
fn holder(p: &Proc, lease: &str) -> Option<String> {
    let out = p.kubectl(
        &[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    let h = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !h.is_empty()).then_some(h)
}

#[test]
fn leadership_of_the_control_loops_moves_when_its_server_dies() {
    let root = tempfile::tempdir().unwrap();
    let servers = three_servers(root.path(), &["--leader-lease-seconds", "3"]);
    let url = |p: &Proc| {
        let kc = std::fs::read_to_string(p.dir.join("kubeconfig.yaml")).unwrap();
        let line = kc
            .lines()
            .find(|l| l.trim_start().starts_with("server:"))
            .unwrap();
        line.trim_start()
            .trim_start_matches("server:")
            .trim()
            .to_owned()
    };
    let urls: Vec<String> = servers.iter().map(url).collect();
    // Identities name the server's URL: find which server holds the scheduler's Lease.
    let first = support::eventually(30, "a scheduler leader", || {
        holder(&servers[1], "kube-scheduler")
    });
    let leader = urls
        .iter()
        .position(|u| first.contains(&format!("_{u}_")))
        .unwrap_or_else(|| panic!("{first} names none of {urls:?}"));
    support::eventually(30, "a controller-manager leader", || {
        holder(&servers[1], "kube-controller-manager")
    });

    let [a, b, c] = servers;
    let mut procs = [Some(a), Some(b), Some(c)];
    let mut dead = procs[leader].take().unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let survivor = procs.iter().flatten().next().unwrap();

    // A survivor takes the Lease over once it expires (3 s) — a raft election may come first
    // when the dead server also led the store.
    let next = support::eventually(40, "a new scheduler leader", || {
        holder(survivor, "kube-scheduler").filter(|h| *h != first)
    });
    assert!(
        urls.iter()
            .enumerate()
            .any(|(i, u)| i != leader && next.contains(&format!("_{u}_"))),
        "{next} should name a surviving server"
    );

    // The new leader schedules: a node appears and a pod lands on it.
    survivor.ok(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {sextant.dev/oci: \"true\"}}\n"));
    survivor.ok(
        &["patch", "node", "n1", "--subresource=status", "--type=merge", "-p",
          r#"{"status":{"allocatable":{"cpu":"4","memory":"8Gi","pods":"10"},"capacity":{"cpu":"4","memory":"8Gi","pods":"10"},"conditions":[{"type":"Ready","status":"True"}]}}"#],
        None,
    );
    survivor.ok(
        &["run", "p", "--image=busybox:1.36", "--restart=Never"],
        None,
    );
    support::eventually(30, "the pod bound to n1", || {
        let out = survivor.kubectl(
            &["get", "pod", "p", "-o", "jsonpath={.spec.nodeName}"],
            None,
        );
        (String::from_utf8_lossy(&out.stdout) == "n1").then_some(())
    });
}
