//! Who this node is: its labels and `status.nodeInfo`, read from the host once at start.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::NodeSystemInfo;

/// The version this agent reports as its kubelet's: the Kubernetes API it follows.
pub const KUBELET_VERSION: &str = "v1.33.0-sextant";
/// The runtime the agent runs pods in, as `containerRuntimeVersion` shows it.
pub const CONTAINER_RUNTIME_VERSION: &str = "wasmtime://48.0.8";

/// The architecture as Kubernetes (and Go's GOARCH) names it.
pub fn go_arch() -> &'static str {
    go_arch_of(std::env::consts::ARCH)
}

fn go_arch_of(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The operating system as Kubernetes names it (`linux`, `darwin`, ...).
pub fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// The labels every node carries, with `extra` (the operator's) laid over them: the wasm
/// runtime label the scheduler places wasm pods by, and the well-known hostname, os and
/// arch labels (also in their deprecated `beta.` form, which old manifests still select on).
pub fn labels(node_name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (
            sextant_api::runtime::WASM_NODE_LABEL.to_string(),
            "true".to_string(),
        ),
        ("kubernetes.io/hostname".into(), node_name.to_string()),
        ("kubernetes.io/os".into(), go_os().into()),
        ("kubernetes.io/arch".into(), go_arch().into()),
        ("beta.kubernetes.io/os".into(), go_os().into()),
        ("beta.kubernetes.io/arch".into(), go_arch().into()),
    ]);
    labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// `status.nodeInfo` from the host's files. What cannot be read is left empty: a node in a
/// minimal container still registers.
pub fn system_info() -> NodeSystemInfo {
    let read = |path: &str| read_trimmed(Path::new(path)).unwrap_or_default();
    NodeSystemInfo {
        architecture: go_arch().into(),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: CONTAINER_RUNTIME_VERSION.into(),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: read("/etc/machine-id"),
        operating_system: go_os().into(),
        os_image: std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| go_os().into()),
        swap: None,
        // Readable by root only on most machines; empty otherwise, as kubelet leaves it.
        system_uuid: read("/sys/class/dmi/id/product_uuid"),
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `PRETTY_NAME` of an os-release file, unquoted.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        Some(value.replace("\\\"", "\"")).filter(|v| !v.is_empty())
    })
}

/// This machine's host name, for the Node's `Hostname` address.
pub fn hostname() -> Option<String> {
    read_trimmed(Path::new("/proc/sys/kernel/hostname"))
        .or_else(|| read_trimmed(Path::new("/etc/hostname")))
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_wasm_hostname_os_and_arch_and_take_extras() {
        let extra = BTreeMap::from([
            ("zone".to_string(), "edge-1".to_string()),
            ("kubernetes.io/hostname".to_string(), "override".to_string()),
        ]);
        let l = labels("n1", &extra);
        assert_eq!(l["sextant.dev/wasm"], "true");
        assert_eq!(l["kubernetes.io/hostname"], "override");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["beta.kubernetes.io/os"], "linux");
        assert_eq!(l["kubernetes.io/arch"], go_arch());
        assert_eq!(l["zone"], "edge-1");
        assert!(!l.contains_key("sextant.dev/oci"), "a wasm-only agent");
    }

    #[test]
    fn arch_names_follow_go() {
        assert_eq!(go_arch_of("x86_64"), "amd64");
        assert_eq!(go_arch_of("aarch64"), "arm64");
        assert_eq!(go_arch_of("mips"), "mips");
    }

    #[test]
    fn pretty_name_is_unquoted() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            pretty_name("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(pretty_name("ID=x\n"), None);
    }

    #[test]
    fn system_info_reads_this_host() {
        let info = system_info();
        assert_eq!(info.kubelet_version, KUBELET_VERSION);
        assert_eq!(info.operating_system, go_os());
        if cfg!(target_os = "linux") {
            assert!(!info.kernel_version.is_empty());
            assert_eq!(info.boot_id.len(), 36, "{}", info.boot_id);
        }
    }
}
