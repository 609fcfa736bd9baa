//! The pod sandbox: the runtime's holder of a pod's shared namespaces, in which its OCI
//! containers are created.
//!
//! # Networking: the node's namespace
//! Every sandbox shares the node's network namespace (`NamespaceMode::NODE`, what
//! `hostNetwork: true` asks of a kubelet), whatever the pod spec says. Sextant gives pods
//! addresses from the node's pod CIDR without any CNI plugin (`pods/ipam.rs`); wasm
//! containers listen on the node's own interfaces, and OCI containers of the same pod must
//! see the same network to reach them on `localhost`. A per-pod namespace would need a CNI
//! plugin to configure it, which neither this agent nor its test machines have; and traffic
//! in tests stays on loopback, which a shared namespace gives for free. The consequence, as
//! with `hostNetwork`: a container's ports are the node's ports, so two pods cannot both
//! listen on one port, and `hostPort` mappings are only a claim the runtime may record.
//!
//! The UTS namespace goes with the network: containers see the node's hostname, and
//! `spec.hostname` is not applied, as for a `hostNetwork` pod.
//!
//! The sandbox's IPC namespace is the pod's own; its PID namespace is the pod's when
//! `shareProcessNamespace` is set, else each container has its own, as in Kubernetes.

use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::{
    Int64Value, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxFilter,
    PodSandboxMetadata, PodSandboxState, PodSandboxStateValue, PortMapping, Protocol,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StopPodSandboxRequest,
};
use k8s_openapi::api::core::v1::Pod;

use super::{CALL_TIMEOUT, Cri, CriError, LIFECYCLE_TIMEOUT, request};

/// The kubelet's sandbox and container labels: how a pod's objects are found in the
/// runtime (and what `crictl pods --name`, `--namespace` and `--label` filter on).
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// The sandbox config of `pod`, whose container logs go under `pod_dir` (made absolute: the
/// runtime resolves it, not this process; container log paths are relative to it).
pub fn sandbox_config(pod: &Pod, pod_dir: &Path) -> PodSandboxConfig {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    let uid = meta.uid.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();

    // Pod labels first, so that the kubelet's own labels cannot be overridden by them.
    let mut labels: HashMap<String, String> = meta
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_NAMESPACE_LABEL.into(), namespace.clone());
    labels.insert(POD_UID_LABEL.into(), uid.clone());
    let annotations = meta
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();

    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init_containers = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let port_mappings = containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();

    let share_pid = spec.and_then(|s| s.share_process_namespace) == Some(true);
    let pod_security = spec.and_then(|s| s.security_context.as_ref());
    // The CRI requires the sandbox to know when a privileged container will join it.
    let privileged = containers.iter().chain(init_containers).any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    });
    // fsGroup joins the supplemental groups, as the kubelet does, so that the containers'
    // processes can use the volumes made for that group.
    let supplemental_groups = pod_security
        .map(|s| {
            let mut groups = s.supplemental_groups.clone().unwrap_or_default();
            groups.extend(s.fs_group.filter(|g| !groups.contains(g)));
            groups
        })
        .unwrap_or_default();
    let security_context = LinuxSandboxSecurityContext {
        namespace_options: Some(NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: if share_pid {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            } as i32,
            ipc: NamespaceMode::Pod as i32,
            ..NamespaceOption::default()
        }),
        run_as_user: pod_security
            .and_then(|s| s.run_as_user)
            .map(|value| Int64Value { value }),
        run_as_group: pod_security
            .and_then(|s| s.run_as_group)
            .map(|value| Int64Value { value }),
        supplemental_groups,
        privileged,
        ..LinuxSandboxSecurityContext::default()
    };

    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name,
            uid,
            namespace,
            attempt: 0,
        }),
        // Empty: with the node's network the runtime shares the node's UTS namespace too,
        // where a hostname cannot be set (runc refuses: "unable to set hostname without a
        // private UTS namespace"). Containers see the node's hostname, as in a hostNetwork
        // pod, for which the kubelet leaves this empty as well.
        hostname: String::new(),
        log_directory: std::path::absolute(pod_dir)
            .unwrap_or_else(|_| pod_dir.to_path_buf())
            .to_string_lossy()
            .into_owned(),
        dns_config: None,
        port_mappings,
        labels,
        annotations,
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(security_context),
            ..LinuxPodSandboxConfig::default()
        }),
        windows: None,
    }
}

impl Cri {
    /// Runs a sandbox for `config` and returns its id.
    pub async fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String, CriError> {
        let response = self
            .call(
                "RunPodSandbox",
                LIFECYCLE_TIMEOUT,
                self.rt().run_pod_sandbox(request(
                    RunPodSandboxRequest {
                        config: Some(config.clone()),
                        runtime_handler: String::new(),
                    },
                    LIFECYCLE_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.pod_sandbox_id)
    }

    /// The ready sandbox of the pod with this uid, if the runtime has one: what an agent
    /// that restarted finds of the pods it ran (the newest, should there be several).
    pub async fn find_sandbox(&self, pod_uid: &str) -> Result<Option<String>, CriError> {
        let sandboxes = self
            .sandboxes(pod_uid, Some(PodSandboxState::SandboxReady))
            .await?;
        Ok(sandboxes
            .into_iter()
            .max_by_key(|s| s.created_at)
            .map(|s| s.id))
    }

    /// Stops and removes every sandbox of the pod with this uid, and every container of
    /// the pod. What is already gone is fine; the first other failure is returned after
    /// everything else has been tried.
    pub async fn remove_pod(&self, pod_uid: &str) -> Result<(), CriError> {
        let mut first_error = None;
        let mut note = |result: Result<(), CriError>| match result {
            Err(e) if !e.is_not_found() => {
                first_error.get_or_insert(e);
            }
            _ => {}
        };
        let sandboxes = self.sandboxes(pod_uid, None).await?;
        let mut rt = self.rt();
        // Stopping a sandbox stops its containers too.
        for sandbox in &sandboxes {
            let stop = rt.stop_pod_sandbox(request(
                StopPodSandboxRequest {
                    pod_sandbox_id: sandbox.id.clone(),
                },
                LIFECYCLE_TIMEOUT,
            ));
            note(
                self.call("StopPodSandbox", LIFECYCLE_TIMEOUT, stop)
                    .await
                    .map(drop),
            );
        }
        // Containers by label as well as by sandbox: one whose sandbox is already gone
        // would be found no other way.
        let containers = self
            .call(
                "ListContainers",
                CALL_TIMEOUT,
                self.rt().list_containers(request(
                    ListContainersRequest {
                        filter: Some(k8s_cri::v1::ContainerFilter {
                            label_selector: uid_selector(pod_uid),
                            ..Default::default()
                        }),
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        for container in containers.containers {
            let remove = rt.remove_container(request(
                RemoveContainerRequest {
                    container_id: container.id,
                },
                LIFECYCLE_TIMEOUT,
            ));
            note(
                self.call("RemoveContainer", LIFECYCLE_TIMEOUT, remove)
                    .await
                    .map(drop),
            );
        }
        for sandbox in sandboxes {
            let remove = rt.remove_pod_sandbox(request(
                RemovePodSandboxRequest {
                    pod_sandbox_id: sandbox.id,
                },
                LIFECYCLE_TIMEOUT,
            ));
            note(
                self.call("RemovePodSandbox", LIFECYCLE_TIMEOUT, remove)
                    .await
                    .map(drop),
            );
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The sandboxes labelled with this pod uid, in `state` if given.
    pub(super) async fn sandboxes(
        &self,
        pod_uid: &str,
        state: Option<PodSandboxState>,
    ) -> Result<Vec<k8s_cri::v1::PodSandbox>, CriError> {
        let response = self
            .call(
                "ListPodSandbox",
                CALL_TIMEOUT,
                self.rt().list_pod_sandbox(request(
                    ListPodSandboxRequest {
                        filter: Some(PodSandboxFilter {
                            id: String::new(),
                            state: state.map(|s| PodSandboxStateValue { state: s as i32 }),
                            label_selector: uid_selector(pod_uid),
                        }),
                    },
                    CALL_TIMEOUT,
                )),
            )
            .await?;
        Ok(response.items)
    }
}

fn uid_selector(pod_uid: &str) -> HashMap<String, String> {
    HashMap::from([(POD_UID_LABEL.to_owned(), pod_uid.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn sandbox_config_follows_the_pod() {
        let pod = pod(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1",
                "labels": {"app": "web", "io.kubernetes.pod.uid": "forged"},
                "annotations": {"note": "hi"}
            },
            "spec": {
                "shareProcessNamespace": true,
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000,
                                    "supplementalGroups": [4000], "fsGroup": 2000},
                "containers": [
                    {"name": "a", "image": "busybox", "ports": [
                        {"containerPort": 80, "hostPort": 8080},
                        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                        {"containerPort": 9090}
                    ]},
                    {"name": "b", "image": "busybox", "securityContext": {"privileged": true}}
                ]
            }
        }));
        let config = sandbox_config(&pod, Path::new("/var/pods/u-1"));
        let meta = config.metadata.as_ref().unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web", "shop", "u-1", 0)
        );
        assert_eq!(
            config.hostname, "",
            "the node's UTS namespace has the node's name"
        );
        assert_eq!(config.log_directory, "/var/pods/u-1");
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.labels[POD_UID_LABEL], "u-1");
        assert_eq!(config.labels[POD_NAME_LABEL], "web");
        assert_eq!(config.labels[POD_NAMESPACE_LABEL], "shop");
        assert_eq!(config.annotations["note"], "hi");

        let ports: Vec<_> = config
            .port_mappings
            .iter()
            .map(|p| {
                (
                    p.protocol,
                    p.container_port,
                    p.host_port,
                    p.host_ip.as_str(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            vec![
                (Protocol::Tcp as i32, 80, 8080, ""),
                (Protocol::Udp as i32, 53, 5353, "127.0.0.1")
            ]
        );

        let security = config.linux.unwrap().security_context.unwrap();
        let ns = security.namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, NamespaceMode::Pod as i32);
        assert_eq!(security.run_as_user, Some(Int64Value { value: 1000 }));
        assert_eq!(security.run_as_group, Some(Int64Value { value: 3000 }));
        assert_eq!(security.supplemental_groups, vec![4000, 2000]);
        assert!(security.privileged);
    }

    #[test]
    fn defaults_of_a_bare_pod() {
        let pod = pod(serde_json::json!({
            "metadata": {"name": "p", "uid": "u-2"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}]}
        }));
        let config = sandbox_config(&pod, Path::new("relative/dir"));
        assert_eq!(config.metadata.unwrap().namespace, "default");
        assert!(Path::new(&config.log_directory).is_absolute());
        assert!(config.log_directory.ends_with("relative/dir"));
        assert!(config.port_mappings.is_empty());
        let security = config.linux.unwrap().security_context.unwrap();
        assert_eq!(
            security.namespace_options.unwrap().pid,
            NamespaceMode::Container as i32
        );
        assert!(!security.privileged);
        assert_eq!(security.run_as_user, None);
    }
}
