//! Service cluster IPs and node ports against real servers, through kubectl: allocated on
//! create (`create service`, `expose`), checked when asked for (422 in Kubernetes' words),
//! immutable, kept, added and dropped across updates and type changes, freed on delete,
//! untouched by dry runs; never handed out twice, by concurrent creates on one server or on
//! three; kept across a restart; and the `kubernetes` Service on the first address.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, free_addr, kubectl_with, spawn_server, wait_until_ready};

fn ok(kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_with(kc, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs kubectl expecting it to fail; returns what it printed on stderr.
fn fails(kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl_with(kc, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn get(kc: &Path, kind: &str, name: &str) -> Value {
    serde_json::from_str(&ok(kc, &["get", kind, name, "-o", "json"], None)).unwrap()
}

fn ip_of(svc: &Value) -> String {
    svc["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

/// In the default range, 127.96.0.0/12.
fn in_default_range(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|ip| ip.octets()[0] == 127 && (96..112).contains(&ip.octets()[1]))
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn service(name: &str, spec: Value) -> String {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

#[test]
fn services_get_addresses_and_node_ports_as_in_kubernetes() {
    let s = Server::start(&[]);
    let kc = s.kubeconfig();
    let kc = kc.as_path();

    // The `kubernetes` Service: the first address, 443 to the API server's port.
    let api_port: i64 = s.addr.rsplit(':').next().unwrap().parse().unwrap();
    let k = get(kc, "svc", "kubernetes");
    assert_eq!(ip_of(&k), "127.96.0.1");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);
    assert_eq!(k["spec"]["ports"][0]["targetPort"], api_port);
    let ep = get(kc, "endpoints", "kubernetes");
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.0.0.1", "{ep}");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], api_port, "{ep}");

    // ClusterIP and NodePort Services get an address, and ports from the node-port range.
    ok(
        kc,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
        None,
    );
    let web = get(kc, "svc", "web");
    let web_ip = ip_of(&web);
    assert!(in_default_range(&web_ip) && web_ip != "127.96.0.1", "{web}");
    assert_eq!(web["spec"]["clusterIPs"], json!([web_ip]));
    assert_eq!(web["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack");
    ok(
        kc,
        &["create", "service", "nodeport", "np", "--tcp=80:8080"],
        None,
    );
    let np = get(kc, "svc", "np");
    assert!(in_default_range(&ip_of(&np)) && ip_of(&np) != web_ip);
    assert!(
        node_ports(&np).iter().all(|p| (30000..=32767).contains(p)),
        "{np}"
    );
    assert_eq!(node_ports(&np).len(), 1);
    let create_np = |name: &str, node_port: &str| {
        vec![
            "create".to_owned(),
            "service".into(),
            "nodeport".into(),
            name.into(),
            "--tcp=81:8080".into(),
            format!("--node-port={node_port}"),
        ]
    };
    let fixed = create_np("fixed", "30080");
    ok(kc, &args(&fixed), None);
    assert_eq!(node_ports(&get(kc, "svc", "fixed")), [30080]);

    // Values asked for must be in range and free.
    let err = fails(kc, &args(&create_np("clash", "30080")), None);
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        ),
        "{err}"
    );
    let err = fails(kc, &args(&create_np("far", "40000")), None);
    assert!(
        err.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{err}"
    );
    let with_ip =
        |name: &str, ip: &str| service(name, json!({"clusterIP": ip, "ports": [{"port": 80}]}));
    let err = fails(kc, &["create", "-f", "-"], Some(&with_ip("copy", &web_ip)));
    assert!(
        err.contains(&format!(
            "spec.clusterIPs: Invalid value: [\"{web_ip}\"]: failed to allocate IP {web_ip}: provided IP is already allocated"
        )),
        "{err}"
    );
    let err = fails(
        kc,
        &["create", "-f", "-"],
        Some(&with_ip("away", "10.0.0.1")),
    );
    assert!(
        err.contains("is not in the valid range. The range of valid IPs is 127.96.0.0/12"),
        "{err}"
    );
    ok(
        kc,
        &["create", "-f", "-"],
        Some(&with_ip("dns", "127.96.0.10")),
    );
    assert_eq!(ip_of(&get(kc, "svc", "dns")), "127.96.0.10");
    // A second create of the same Service is a conflict, not a clash with itself.
    let err = fails(
        kc,
        &["create", "-f", "-"],
        Some(&with_ip("dns", "127.96.0.10")),
    );
    assert!(err.contains("AlreadyExists"), "{err}");

    // Headless and ExternalName Services get no address; a node port on ClusterIP is refused.
    ok(
        kc,
        &[
            "create",
            "service",
            "clusterip",
            "headless",
            "--clusterip=None",
        ],
        None,
    );
    let headless = get(kc, "svc", "headless");
    assert_eq!(ip_of(&headless), "None");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    ok(
        kc,
        &[
            "create",
            "service",
            "externalname",
            "ext",
            "--external-name=db.example.com",
        ],
        None,
    );
    assert!(get(kc, "svc", "ext")["spec"].get("clusterIP").is_none());
    let err = fails(
        kc,
        &["create", "-f", "-"],
        Some(&service(
            "ext2",
            json!({"type": "ExternalName", "externalName": "db.example.com", "clusterIP": "127.96.0.11"}),
        )),
    );
    assert!(
        err.contains("spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
        "{err}"
    );
    let err = fails(
        kc,
        &["create", "-f", "-"],
        Some(&service(
            "cip",
            json!({"ports": [{"port": 80, "nodePort": 30081}]}),
        )),
    );
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{err}"
    );

    // `kubectl expose` allocates too.
    ok(
        kc,
        &[
            "create",
            "deployment",
            "api",
            "--image=file:///srv/api.wasm",
        ],
        None,
    );
    ok(
        kc,
        &[
            "expose",
            "deployment",
            "api",
            "--port=80",
            "--target-port=8080",
            "--type=NodePort",
        ],
        None,
    );
    let api = get(kc, "svc", "api");
    assert!(in_default_range(&ip_of(&api)), "{api}");
    assert_eq!(node_ports(&api).len(), 1, "{api}");

    // The address is immutable; what the client leaves out is kept.
    let err = fails(
        kc,
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"clusterIP":"127.96.0.200"}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.clusterIP: Invalid value: \"127.96.0.200\": field is immutable")
            && err.contains("may not change once set"),
        "{err}"
    );
    let mut manifest = get(kc, "svc", "fixed");
    for field in ["clusterIP", "clusterIPs"] {
        manifest["spec"].as_object_mut().unwrap().remove(field);
    }
    manifest["spec"]["ports"][0]
        .as_object_mut()
        .unwrap()
        .remove("nodePort");
    manifest["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    ok(kc, &["replace", "-f", "-"], Some(&manifest.to_string()));
    let fixed_now = get(kc, "svc", "fixed");
    assert_eq!(node_ports(&fixed_now), [30080], "{fixed_now}");
    assert!(in_default_range(&ip_of(&fixed_now)), "{fixed_now}");

    // Type changes: ClusterIP → NodePort takes a node port, and back frees it.
    ok(
        kc,
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
        ],
        None,
    );
    let web = get(kc, "svc", "web");
    assert_eq!(ip_of(&web), web_ip);
    let web_port = node_ports(&web)[0];
    ok(
        kc,
        &[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ],
        None,
    );
    assert_eq!(node_ports(&get(kc, "svc", "web")), Vec::<i64>::new());
    ok(kc, &args(&create_np("reuse", &web_port.to_string())), None);
    // ExternalName → ClusterIP takes an address, and back frees it.
    ok(
        kc,
        &[
            "patch",
            "svc",
            "ext",
            "-p",
            r#"{"spec":{"type":"ClusterIP","externalName":null,"ports":[{"port":80}]}}"#,
        ],
        None,
    );
    let ext_ip = ip_of(&get(kc, "svc", "ext"));
    assert!(in_default_range(&ext_ip), "{ext_ip}");
    ok(
        kc,
        &[
            "patch",
            "svc",
            "ext",
            "-p",
            r#"{"spec":{"type":"ExternalName","externalName":"db.example.com"}}"#,
        ],
        None,
    );
    assert!(get(kc, "svc", "ext")["spec"].get("clusterIP").is_none());
    ok(
        kc,
        &["create", "-f", "-"],
        Some(&with_ip("ext-ip", &ext_ip)),
    );

    // Deleting frees: the same address and port can be asked for again.
    ok(kc, &["delete", "svc", "fixed", "web"], None);
    ok(kc, &args(&create_np("fixed-again", "30080")), None);
    ok(
        kc,
        &["create", "-f", "-"],
        Some(&with_ip("web-again", &web_ip)),
    );

    // A dry run allocates nothing.
    let dry = create_np("dry", "30500");
    let mut dry_args = args(&dry);
    dry_args.extend(["--dry-run=server", "-o", "json"]);
    let shown: Value = serde_json::from_str(&ok(kc, &dry_args, None)).unwrap();
    assert!(in_default_range(&ip_of(&shown)), "{shown}");
    assert_eq!(node_ports(&shown), [30500]);
    assert!(
        !kubectl_with(kc, &["get", "svc", "dry"], None)
            .status
            .success()
    );
    ok(kc, &args(&create_np("dry", "30500")), None);
}

/// A server process on `dir`, restartable.
struct Proc {
    dir: PathBuf,
    addr: String,
    flags: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    fn start(dir: &Path, addr: &str, flags: &[&str]) -> Proc {
        let mut p = Proc {
            dir: dir.to_owned(),
            addr: addr.to_owned(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        // The server writes its kubeconfig when it is ready, on every start.
        let _ = std::fs::remove_file(self.kubeconfig());
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        self.child = Some(spawn_server(
            &self.dir,
            &self.addr,
            &flags,
            Stdio::inherit(),
            "warn",
        ));
        wait_until_ready(&self.dir);
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Creates `names` at once, each through the kubeconfig `via(i)` gives, and checks that
/// every create succeeded.
fn create_at_once(names: &[String], kind: &str, via: impl Fn(usize) -> PathBuf) {
    let threads: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (kc, name, kind) = (via(i), name.clone(), kind.to_owned());
            std::thread::spawn(move || {
                kubectl_with(&kc, &["create", "service", &kind, &name, "--tcp=80"], None)
            })
        })
        .collect();
    for (t, name) in threads.into_iter().zip(names) {
        let out = t.join().unwrap();
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every Service's address and node ports, by name.
fn allocations(kc: &Path) -> BTreeMap<String, (String, Vec<i64>)> {
    let list: Value = serde_json::from_str(&ok(kc, &["get", "svc", "-o", "json"], None)).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                (ip_of(s), node_ports(s)),
            )
        })
        .collect()
}

#[test]
fn allocations_are_unique_under_concurrent_creates_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // 14 addresses (the first is the `kubernetes` Service's) and 10 node ports.
    let flags = [
        "--service-cluster-ip-range",
        "127.97.0.0/28",
        "--service-node-port-range",
        "30100-30109",
    ];
    let mut server = Proc::start(dir.path(), &free_addr(), &flags);
    let kc = server.kubeconfig();

    let node_port_services: Vec<String> = (0..10).map(|i| format!("np-{i}")).collect();
    create_at_once(&node_port_services, "nodeport", |_| kc.clone());
    let cluster_ip_services: Vec<String> = (0..3).map(|i| format!("cip-{i}")).collect();
    create_at_once(&cluster_ip_services, "clusterip", |_| kc.clone());
    let before = allocations(&kc);
    let ips: BTreeSet<&String> = before.values().map(|(ip, _)| ip).collect();
    assert_eq!(ips.len(), 14, "every address once: {before:?}");
    assert!(
        ips.iter().all(|ip| ip.starts_with("127.97.0.")),
        "{before:?}"
    );
    let ports: BTreeSet<i64> = before.values().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(
        ports,
        (30100..=30109).collect(),
        "every port once: {before:?}"
    );

    // Both ranges are full, and say what to do about it; a failed create leaves nothing.
    let err = fails(
        &kc,
        &["create", "service", "clusterip", "more", "--tcp=80"],
        None,
    );
    assert!(
        err.contains("range is full; widen --service-cluster-ip-range"),
        "{err}"
    );
    let err = fails(
        &kc,
        &["create", "service", "nodeport", "more", "--tcp=80"],
        None,
    );
    assert!(err.contains("range is full"), "{err}");
    assert_eq!(allocations(&kc), before);

    // A restart keeps every allocation, and the ranges stay full.
    server.restart();
    assert_eq!(allocations(&kc), before);
    fails(
        &kc,
        &["create", "service", "clusterip", "more", "--tcp=80"],
        None,
    );

    // What a deleted Service held is the only thing free, so the next one gets exactly it.
    ok(&kc, &["delete", "svc", "np-3"], None);
    ok(
        &kc,
        &["create", "service", "nodeport", "after", "--tcp=80"],
        None,
    );
    assert_eq!(allocations(&kc)["after"], before["np-3"]);
}

#[test]
fn three_servers_never_hand_out_one_node_port_twice() {
    let root = tempfile::tempdir().unwrap();
    let flags = ["--service-node-port-range", "30200-30208"];
    let addrs = [free_addr(), free_addr(), free_addr()];
    let a = Proc::start(&root.path().join("a"), &addrs[0], &flags);
    let token = std::fs::read_to_string(a.dir.join("node-token")).unwrap();
    let seed = format!("https://{}", addrs[0]);
    let join = |name: &str, addr: &str| {
        let mut args = vec!["--join", &seed, "--token", token.trim()];
        args.extend_from_slice(&flags);
        Proc::start(&root.path().join(name), addr, &args)
    };
    let b = join("b", &addrs[1]);
    let c = join("c", &addrs[2]);
    let servers = [&a, &b, &c];

    // Nine NodePort Services at once, three through each server: nine ports, none twice.
    let names: Vec<String> = (0..9).map(|i| format!("np-{i}")).collect();
    create_at_once(&names, "nodeport", |i| servers[i % 3].kubeconfig());
    let seen = allocations(&c.kubeconfig());
    let ports: BTreeSet<i64> = seen.values().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(ports, (30200..=30208).collect(), "{seen:?}");
    let ips: BTreeSet<&String> = seen.values().map(|(ip, _)| ip).collect();
    assert_eq!(ips.len(), seen.len(), "{seen:?}");
    let err = fails(
        &b.kubeconfig(),
        &["create", "service", "nodeport", "more", "--tcp=80"],
        None,
    );
    assert!(err.contains("range is full"), "{err}");

    // The `kubernetes` Endpoints list every server.
    let ep = get(&a.kubeconfig(), "endpoints", "kubernetes");
    let listed: BTreeSet<i64> = ep["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ports"][0]["port"].as_i64().unwrap())
        .collect();
    let want: BTreeSet<i64> = addrs
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, want, "{ep}");
}
