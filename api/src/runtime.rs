//! Which runtime runs a container: the contract of DESIGN.md ("Wasm in a pod spec"), in one
//! place for the scheduler (which nodes can take a pod) and the node agent (which runtime
//! starts each container).

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// The `runtimeClassName` that makes plain image references wasm artifacts (as in
/// runwasi/SpinKube manifests).
pub const WASM_RUNTIME_CLASS: &str = "wasm";
/// Node label saying the node runs wasm containers.
pub const WASM_NODE_LABEL: &str = "sextant.dev/wasm";
/// Node label saying the node runs OCI containers through CRI.
pub const OCI_NODE_LABEL: &str = "sextant.dev/oci";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Wasm,
    Oci,
}

impl Runtime {
    /// The node label that advertises this runtime.
    pub fn node_label(self) -> &'static str {
        match self {
            Runtime::Wasm => WASM_NODE_LABEL,
            Runtime::Oci => OCI_NODE_LABEL,
        }
    }

    /// How the scheduler names a missing runtime ("node(s) lack the OCI runtime").
    pub fn display_name(self) -> &'static str {
        match self {
            Runtime::Wasm => "wasm",
            Runtime::Oci => "OCI",
        }
    }

    /// The runtime of one image reference, given the pod's `runtimeClassName`.
    pub fn of_image(image: &str, runtime_class: Option<&str>) -> Runtime {
        let scheme = image.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("file" | "http" | "https" | "wasm") => Runtime::Wasm,
            _ if runtime_class == Some(WASM_RUNTIME_CLASS) => Runtime::Wasm,
            _ => Runtime::Oci,
        }
    }

    pub fn of_container(c: &Container, runtime_class: Option<&str>) -> Runtime {
        Runtime::of_image(c.image.as_deref().unwrap_or_default(), runtime_class)
    }
}

/// The runtimes a pod needs, over its init and app containers: (wasm, oci).
pub fn needed_by(spec: &PodSpec) -> (bool, bool) {
    let class = spec.runtime_class_name.as_deref();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let (mut wasm, mut oci) = (false, false);
    for c in all {
        match Runtime::of_container(c, class) {
            Runtime::Wasm => wasm = true,
            Runtime::Oci => oci = true,
        }
    }
    (wasm, oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_schemes_pick_the_runtime() {
        assert_eq!(Runtime::of_image("file:///m/app.wasm", None), Runtime::Wasm);
        assert_eq!(
            Runtime::of_image("https://h/app.wasm#sha256=00", None),
            Runtime::Wasm
        );
        assert_eq!(
            Runtime::of_image("wasm://reg:5000/app:v1", None),
            Runtime::Wasm
        );
        assert_eq!(Runtime::of_image("busybox:1.36", None), Runtime::Oci);
        assert_eq!(Runtime::of_image("reg:5000/app:v2", None), Runtime::Oci);
        assert_eq!(
            Runtime::of_image("reg:5000/app:v2", Some("wasm")),
            Runtime::Wasm
        );
    }

    #[test]
    fn a_pod_can_need_both() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({"containers": [
            {"name": "a", "image": "file:///a.wasm"}, {"name": "b", "image": "busybox"}
        ]}))
        .unwrap();
        assert_eq!(needed_by(&spec), (true, true));
    }
}
