//! Which containers run on this node and where, for `kubectl exec` and exec probes: the
//! pod tasks record each container's runtime and, while an OCI container runs, its CRI id;
//! the kubelet endpoint asks [`ExecTargets`] for a streaming URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::cri::Cri;
use crate::server::exec::{ExecBackend, ExecError, ExecRequest};

/// `(namespace, pod, container)`.
type Key = (String, String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Wasm,
    /// An OCI container, with its CRI id while it runs.
    Oci(Option<String>),
}

/// The node's containers by pod and name; cheap to clone (one shared table).
#[derive(Clone, Default)]
pub struct Containers(Arc<Mutex<HashMap<Key, Entry>>>);

fn key(namespace: &str, pod: &str, container: &str) -> Key {
    (namespace.to_owned(), pod.to_owned(), container.to_owned())
}

impl Containers {
    /// Records a pod's container and its runtime (before it first starts).
    pub fn add(&self, namespace: &str, pod: &str, container: &str, oci: bool) {
        let entry = if oci { Entry::Oci(None) } else { Entry::Wasm };
        self.lock().insert(key(namespace, pod, container), entry);
    }

    /// An OCI container started (`Some(id)`) or ended (`None`).
    pub fn set_running(&self, namespace: &str, pod: &str, container: &str, id: Option<&str>) {
        if let Some(Entry::Oci(running)) = self.lock().get_mut(&key(namespace, pod, container)) {
            *running = id.map(str::to_owned);
        }
    }

    /// Forgets every container of a pod that ended.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.lock()
            .retain(|(ns, name, _), _| !(ns == namespace && name == pod));
    }

    fn get(&self, namespace: &str, pod: &str, container: &str) -> Option<Entry> {
        self.lock().get(&key(namespace, pod, container)).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding this lock leaves a consistent map (single inserts/removes).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The kubelet endpoint's way into containers: OCI ones through the CRI runtime's streaming
/// server; wasm ones have no processes to exec into, and say so.
pub struct ExecTargets {
    containers: Containers,
    cri: Option<Cri>,
}

impl ExecTargets {
    pub fn new(containers: Containers, cri: Option<Cri>) -> ExecTargets {
        ExecTargets { containers, cri }
    }
}

impl ExecBackend for ExecTargets {
    fn exec(&self, req: ExecRequest) -> BoxFuture<'_, Result<String, ExecError>> {
        Box::pin(async move {
            let what = format!(
                "{}/{} container {:?}",
                req.namespace, req.pod, req.container
            );
            match self
                .containers
                .get(&req.namespace, &req.pod, &req.container)
            {
                None => Err(ExecError::NotFound(format!(
                    "pod {what} does not run on this node"
                ))),
                Some(Entry::Wasm) => Err(ExecError::Wasm {
                    container: req.container,
                }),
                Some(Entry::Oci(None)) => Err(ExecError::NotRunning(format!(
                    "{what} is not running; see `kubectl describe pod {}` for why",
                    req.pod
                ))),
                Some(Entry::Oci(Some(id))) => {
                    let Some(cri) = &self.cri else {
                        return Err(ExecError::Runtime("this node has no CRI runtime".into()));
                    };
                    cri.exec_url(&id, req.command, req.stdin, req.stdout, req.stderr, req.tty)
                        .await
                        .map_err(|e| ExecError::Runtime(e.to_string()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wasm_missing_and_stopped_containers_say_why() {
        let containers = Containers::default();
        containers.add("ns", "p", "app", false);
        containers.add("ns", "p", "db", true);
        let targets = ExecTargets::new(containers.clone(), None);
        let req = |c: &str| ExecRequest {
            namespace: "ns".into(),
            pod: "p".into(),
            container: c.into(),
            command: vec!["sh".into()],
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert!(matches!(
            targets.exec(req("app")).await,
            Err(ExecError::Wasm { .. })
        ));
        assert!(matches!(
            targets.exec(req("db")).await,
            Err(ExecError::NotRunning(_))
        ));
        assert!(matches!(
            targets.exec(req("nope")).await,
            Err(ExecError::NotFound(_))
        ));
        containers.set_running("ns", "p", "db", Some("abc"));
        assert!(matches!(
            targets.exec(req("db")).await,
            Err(ExecError::Runtime(_))
        ));
        containers.remove_pod("ns", "p");
        assert!(matches!(
            targets.exec(req("app")).await,
            Err(ExecError::NotFound(_))
        ));
    }
}
