//! A container's CRI config from its spec, filled as the kubelet fills it
//! (`kuberuntime_container.go`, `kuberuntime_container_linux.go`): command and args with
//! `$(VAR)` expanded, env, mounts, resources as cgroup settings, and the security context.

use std::collections::{BTreeMap, HashMap};

use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, Mount,
    PodSandboxConfig,
};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sextant_api::quantity::Milli;

use super::sandbox::{POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL};
use crate::pods::env::expand;

/// The kubelet's label naming the container in the pod spec.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// The kubelet's annotation carrying the run's restart count.
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";

/// The CFS period the kubelet uses for CPU limits (100 ms), and the smallest quota it sets.
const CPU_PERIOD: i64 = 100_000;
const MIN_CPU_QUOTA: i64 = 1_000;
/// cgroup v1 `cpu.shares`: 1024 per CPU, within these bounds.
const MIN_CPU_SHARES: i64 = 2;
const MAX_CPU_SHARES: i64 = 262_144;

/// The config of one run (`attempt` = restart count) of container `c`: created from
/// `image_ref` (what [`super::Cri::ensure_image`] returned), with the resolved `env` and
/// volume `mounts`, logging to `log_path` relative to the sandbox's log directory (e.g.
/// `NAME/N.log`, as [`crate::logs::path`] names it).
///
/// What belongs to the pod is not here: [`super::Cri::run`] adds it from the sandbox's
/// config (`join_sandbox`), so that it cannot disagree with the sandbox the container
/// runs in.
pub fn container_config(
    c: &Container,
    env: &[(String, String)],
    mounts: &[crate::wasm::Mount],
    image_ref: &str,
    attempt: u32,
    log_path: &str,
) -> ContainerConfig {
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|a| expand(a, env)).collect()
    };
    let labels = HashMap::from([(CONTAINER_NAME_LABEL.to_owned(), c.name.clone())]);
    let annotations = HashMap::from([(RESTART_COUNT_ANNOTATION.to_owned(), attempt.to_string())]);

    let mounts = mounts
        .iter()
        .map(|m| Mount {
            container_path: m.guest.clone(),
            // The runtime resolves the path, not this process: it must be absolute.
            host_path: std::path::absolute(&m.host)
                .unwrap_or_else(|_| m.host.clone())
                .to_string_lossy()
                .into_owned(),
            readonly: m.read_only,
            ..Mount::default()
        })
        .collect();

    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(ImageSpec {
            image: image_ref.to_owned(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..ImageSpec::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: env
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts,
        labels,
        annotations,
        log_path: log_path.to_owned(),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources(c)),
            security_context: Some(security_context(c)),
        }),
        ..ContainerConfig::default()
    }
}

/// Limits and requests as cgroup settings, with the kubelet's formulas: a memory limit is
/// the cgroup's limit; a CPU limit is a CFS quota per 100 ms period; the CPU request (the
/// limit when only that is given) sets `cpu.shares`, 1024 per CPU and never below 2.
fn resources(c: &Container) -> LinuxContainerResources {
    let resources = c.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let mut out = LinuxContainerResources::default();

    if let Some(milli_bytes) = milli(limits, "memory") {
        // Quantities may carry fractions of a byte; the kubelet rounds them up.
        out.memory_limit_in_bytes = clamp((milli_bytes + 999) / 1000);
    }
    let cpu_limit = milli(limits, "cpu");
    if let Some(millicores) = cpu_limit.filter(|&m| m > 0) {
        out.cpu_period = CPU_PERIOD;
        out.cpu_quota = clamp(millicores * i128::from(CPU_PERIOD) / 1000).max(MIN_CPU_QUOTA);
    }
    let cpu_request = milli(requests, "cpu").filter(|&m| m > 0).or(cpu_limit);
    out.cpu_shares =
        clamp(cpu_request.unwrap_or(0) * 1024 / 1000).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    out
}

/// A quantity of `map` in thousandths of its unit (millicores, millibytes), if it parses.
fn milli(map: Option<&BTreeMap<String, Quantity>>, name: &str) -> Option<i128> {
    map.and_then(|m| m.get(name))
        .and_then(|q| Milli::parse(&q.0).ok())
        .map(|m| m.0.max(0))
}

fn clamp(v: i128) -> i64 {
    v.clamp(0, i128::from(i64::MAX)) as i64
}

/// The container's own security context (the pod's defaults come with `join_sandbox`).
fn security_context(c: &Container) -> LinuxContainerSecurityContext {
    let sc = c.security_context.as_ref();
    let capabilities = sc
        .and_then(|s| s.capabilities.as_ref())
        .map(|caps| Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        });
    LinuxContainerSecurityContext {
        capabilities,
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        run_as_user: sc
            .and_then(|s| s.run_as_user)
            .map(|value| Int64Value { value }),
        run_as_group: sc
            .and_then(|s| s.run_as_group)
            .map(|value| Int64Value { value }),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        // Only an explicit `allowPrivilegeEscalation: false` sets no_new_privs, as in the
        // kubelet: the field's default allows escalation.
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        ..LinuxContainerSecurityContext::default()
    }
}

/// Makes `config` a container of the pod whose sandbox is `sandbox`: the pod's labels (by
/// which [`super::Cri::remove_pod`] finds it), the sandbox's namespaces, and the pod-level
/// user, group and supplemental groups where the container's own security context says
/// nothing.
pub(super) fn join_sandbox(config: &mut ContainerConfig, sandbox: &PodSandboxConfig) {
    for key in [POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL] {
        if let Some(value) = sandbox.labels.get(key) {
            config.labels.insert(key.to_owned(), value.clone());
        }
    }
    let Some(pod) = sandbox
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
    else {
        return;
    };
    let linux = config
        .linux
        .get_or_insert_with(LinuxContainerConfig::default);
    let sc = linux
        .security_context
        .get_or_insert_with(LinuxContainerSecurityContext::default);
    sc.namespace_options = pod.namespace_options.clone();
    if sc.run_as_user.is_none() {
        sc.run_as_user = pod.run_as_user;
    }
    if sc.run_as_group.is_none() {
        sc.run_as_group = pod.run_as_group;
    }
    if sc.supplemental_groups.is_empty() {
        sc.supplemental_groups = pod.supplemental_groups.clone();
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::cri::sandbox_config;

    fn sandbox() -> PodSandboxConfig {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]},
                "containers": [{"name": "app", "image": "busybox"}]
            }
        }))
        .unwrap();
        sandbox_config(&pod, Path::new("/pods/u-1"))
    }

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn command_args_env_and_mounts() {
        let c = container(serde_json::json!({
            "name": "app", "image": "sextant.local/busybox:1",
            "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(MISSING)"],
            "args": ["$(GREETING)-arg"],
            "workingDir": "/work", "stdin": true, "stdinOnce": true, "tty": true
        }));
        let env = vec![("GREETING".to_owned(), "hi".to_owned())];
        let mounts = vec![crate::wasm::Mount {
            host: PathBuf::from("/var/pods/u-1/volumes/data"),
            guest: "/data".into(),
            read_only: true,
        }];
        let config = container_config(&c, &env, &mounts, "sha256:abc", 2, "app/2.log");

        assert_eq!(
            config.command,
            ["sh", "-c", "echo hi $(GREETING) $(MISSING)"]
        );
        assert_eq!(config.args, ["hi-arg"]);
        assert_eq!(config.working_dir, "/work");
        assert!(config.stdin && config.stdin_once && config.tty);
        assert_eq!(
            config.envs,
            [KeyValue {
                key: "GREETING".into(),
                value: "hi".into()
            }]
        );
        assert_eq!(config.mounts.len(), 1);
        let m = &config.mounts[0];
        assert_eq!(
            (m.host_path.as_str(), m.container_path.as_str(), m.readonly),
            ("/var/pods/u-1/volumes/data", "/data", true)
        );
        let meta = config.metadata.unwrap();
        assert_eq!((meta.name.as_str(), meta.attempt), ("app", 2));
        let image = config.image.unwrap();
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "sextant.local/busybox:1");
        assert_eq!(config.log_path, "app/2.log");
        assert_eq!(config.annotations[RESTART_COUNT_ANNOTATION], "2");
    }

    #[test]
    fn labels_name_the_container_and_its_pod() {
        let c = container(serde_json::json!({"name": "app", "image": "busybox"}));
        let mut config = container_config(&c, &[], &[], "img", 0, "app/0.log");
        assert_eq!(config.labels.len(), 1);
        assert_eq!(config.labels[CONTAINER_NAME_LABEL], "app");
        join_sandbox(&mut config, &sandbox());
        assert_eq!(config.labels[CONTAINER_NAME_LABEL], "app");
        assert_eq!(config.labels[POD_UID_LABEL], "u-1");
        assert_eq!(config.labels[POD_NAME_LABEL], "web");
        assert_eq!(config.labels[POD_NAMESPACE_LABEL], "shop");
        // The pod's own labels stay on the sandbox.
        assert!(!config.labels.contains_key("app"));
        // No command in the spec: the image's entrypoint and cmd run.
        assert!(config.command.is_empty() && config.args.is_empty());
    }

    #[test]
    fn resources_follow_the_kubelet() {
        let run = |resources: serde_json::Value| {
            let c = container(serde_json::json!({"name": "a", "resources": resources}));
            container_config(&c, &[], &[], "img", 0, "a/0.log")
                .linux
                .unwrap()
                .resources
                .unwrap()
        };
        let r = run(serde_json::json!({
            "limits": {"memory": "16Mi", "cpu": "500m"},
            "requests": {"cpu": "250m"}
        }));
        assert_eq!(r.memory_limit_in_bytes, 16 * 1024 * 1024);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 50_000));
        assert_eq!(r.cpu_shares, 256);

        // Only a limit: the request defaults to it.
        let r = run(serde_json::json!({"limits": {"cpu": "2"}}));
        assert_eq!((r.cpu_quota, r.cpu_shares), (200_000, 2048));
        // Tiny values meet the kubelet's floors.
        let r = run(serde_json::json!({"limits": {"cpu": "1m"}, "requests": {"cpu": "1m"}}));
        assert_eq!((r.cpu_quota, r.cpu_shares), (1_000, 2));
        // Nothing: best effort, minimal shares, no limits.
        let r = run(serde_json::json!({}));
        assert_eq!(
            (
                r.memory_limit_in_bytes,
                r.cpu_quota,
                r.cpu_period,
                r.cpu_shares
            ),
            (0, 0, 0, 2)
        );
        // Fractions of a byte round up.
        let r = run(serde_json::json!({"limits": {"memory": "1500m"}}));
        assert_eq!(r.memory_limit_in_bytes, 2);
    }

    #[test]
    fn security_context_basics() {
        let c = container(serde_json::json!({
            "name": "a",
            "securityContext": {
                "runAsUser": 2000, "readOnlyRootFilesystem": true, "privileged": false,
                "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}
            }
        }));
        let pod_sandbox = sandbox();
        let mut config = container_config(&c, &[], &[], "img", 0, "a/0.log");
        let own = config.linux.clone().unwrap().security_context.unwrap();
        assert_eq!((own.run_as_group, own.namespace_options), (None, None));
        join_sandbox(&mut config, &pod_sandbox);
        let sc = config.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user, Some(Int64Value { value: 2000 }));
        // The pod's group and supplemental groups apply where the container says nothing.
        assert_eq!(sc.run_as_group, Some(Int64Value { value: 3000 }));
        assert_eq!(sc.supplemental_groups, [4000]);
        assert!(sc.readonly_rootfs && sc.no_new_privs && !sc.privileged);
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        let sandbox_ns = pod_sandbox
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options;
        assert_eq!(sc.namespace_options, sandbox_ns);

        let plain =
            container(serde_json::json!({"name": "b", "securityContext": {"privileged": true}}));
        let mut config = container_config(&plain, &[], &[], "img", 0, "b/0.log");
        join_sandbox(&mut config, &sandbox());
        let sc = config.linux.unwrap().security_context.unwrap();
        assert!(sc.privileged && !sc.no_new_privs && sc.capabilities.is_none());
        assert_eq!(sc.run_as_user, Some(Int64Value { value: 1000 }));
    }
}
