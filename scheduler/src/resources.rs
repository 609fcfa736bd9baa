//! Amounts of resources, and what a pod requests, computed as kube-scheduler does
//! (`computePodResourceRequest` in `noderesources/fit.go`).
//!
//! All amounts are exact integers: CPU in millicores, memory and ephemeral storage in bytes,
//! other (extended) resources in thousandths of their unit, so that sums over many pods
//! never round.
//!
//! # Worked example
//! Containers `a` (cpu 100m) and `b` (cpu 200m), init container `i` (cpu 500m), overhead
//! cpu 50m: the app containers run together (300m), the init container runs alone before
//! them (500m), so the pod needs max(300m, 500m) + 50m = 550m.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sextant_api::quantity::Milli;

/// CPU counted for a container that requests none, when *scoring* (kube-scheduler's
/// `DefaultMilliCPURequest`): otherwise best-effort pods would all pile onto one node.
pub const DEFAULT_CPU_MILLIS: i64 = 100;
/// Memory counted for a container that requests none, when scoring (`DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_BYTES: i64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
    /// Every other resource (`nvidia.com/gpu`, `hugepages-2Mi`), in thousandths; usually empty.
    pub extended: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `requests` or `allocatable` map. Unreadable quantities count as zero: the
    /// API server validates them, so one that slips through is not worth refusing a pod for.
    pub fn from_map(map: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in map {
            r.set(name, thousandths(q));
        }
        r
    }

    fn set(&mut self, name: &str, thousandths: i64) {
        match name {
            "cpu" => self.cpu_millis = thousandths,
            "memory" => self.memory_bytes = ceil_div_1000(thousandths),
            "ephemeral-storage" => self.ephemeral_storage_bytes = ceil_div_1000(thousandths),
            // The pod count is a node's allocatable, not something a pod requests.
            "pods" => {}
            other => {
                self.extended.insert(other.to_owned(), thousandths);
            }
        }
    }

    pub fn add(&mut self, other: &Resources) {
        self.cpu_millis += other.cpu_millis;
        self.memory_bytes += other.memory_bytes;
        self.ephemeral_storage_bytes += other.ephemeral_storage_bytes;
        for (k, v) in &other.extended {
            *self.extended.entry(k.clone()).or_default() += v;
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.cpu_millis -= other.cpu_millis;
        self.memory_bytes -= other.memory_bytes;
        self.ephemeral_storage_bytes -= other.ephemeral_storage_bytes;
        for (k, v) in &other.extended {
            let left = self.extended.entry(k.clone()).or_default();
            *left -= v;
            if *left == 0 {
                self.extended.remove(k);
            }
        }
    }

    /// Raises each amount to at least `other`'s.
    fn max_with(&mut self, other: &Resources) {
        self.cpu_millis = self.cpu_millis.max(other.cpu_millis);
        self.memory_bytes = self.memory_bytes.max(other.memory_bytes);
        self.ephemeral_storage_bytes = self
            .ephemeral_storage_bytes
            .max(other.ephemeral_storage_bytes);
        for (k, v) in &other.extended {
            let mine = self.extended.entry(k.clone()).or_default();
            *mine = (*mine).max(*v);
        }
    }
}

/// What a pod requests: exact (for the fit filter) and with defaults for unset CPU and
/// memory (for the scores).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub exact: Resources,
    pub non_zero: Resources,
}

impl PodRequests {
    /// Kubernetes' rule: app containers (and restartable "sidecar" init containers) run
    /// together and add up; each other init container runs alone beside the sidecars started
    /// before it; the pod needs the larger of the two, plus its overhead.
    pub fn of(spec: &PodSpec) -> PodRequests {
        let mut app = PodRequests::default();
        for c in &spec.containers {
            app.add(&PodRequests::of_container(c));
        }
        let mut sidecars = PodRequests::default();
        let mut init_peak = PodRequests::default();
        for c in spec.init_containers.iter().flatten() {
            let own = PodRequests::of_container(c);
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars.add(&own);
                init_peak.max_with(&sidecars);
            } else {
                let mut running = own;
                running.add(&sidecars);
                init_peak.max_with(&running);
            }
        }
        app.add(&sidecars);
        app.max_with(&init_peak);
        if let Some(overhead) = &spec.overhead {
            let overhead = Resources::from_map(overhead);
            app.exact.add(&overhead);
            app.non_zero.add(&overhead);
        }
        app
    }

    /// A container's requests; a resource with a limit but no request requests its limit
    /// (what the API server's defaulting writes; done here too for pods stored without it).
    fn of_container(c: &Container) -> PodRequests {
        let empty = ResourceRequirements::default();
        let r = c.resources.as_ref().unwrap_or(&empty);
        let mut merged: BTreeMap<String, Quantity> = r.limits.clone().unwrap_or_default();
        merged.extend(r.requests.clone().unwrap_or_default());
        let exact = Resources::from_map(&merged);
        let mut non_zero = exact.clone();
        if !merged.contains_key("cpu") {
            non_zero.cpu_millis = DEFAULT_CPU_MILLIS;
        }
        if !merged.contains_key("memory") {
            non_zero.memory_bytes = DEFAULT_MEMORY_BYTES;
        }
        PodRequests { exact, non_zero }
    }

    pub fn add(&mut self, other: &PodRequests) {
        self.exact.add(&other.exact);
        self.non_zero.add(&other.non_zero);
    }

    pub fn subtract(&mut self, other: &PodRequests) {
        self.exact.subtract(&other.exact);
        self.non_zero.subtract(&other.non_zero);
    }

    fn max_with(&mut self, other: &PodRequests) {
        self.exact.max_with(&other.exact);
        self.non_zero.max_with(&other.non_zero);
    }
}

/// A quantity in thousandths of its unit, saturating at what an `i64` holds.
pub fn thousandths(q: &Quantity) -> i64 {
    Milli::parse(&q.0)
        .map(|m| i64::try_from(m.0).unwrap_or(if m.0 < 0 { i64::MIN } else { i64::MAX }))
        .unwrap_or(0)
}

fn ceil_div_1000(thousandths: i64) -> i64 {
    thousandths.div_euclid(1000) + i64::from(thousandths.rem_euclid(1000) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    fn container(name: &str, requests: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "busybox", "resources": {"requests": requests}})
    }

    #[test]
    fn app_containers_add_up() {
        let r = PodRequests::of(&spec(serde_json::json!({"containers": [
            container("a", serde_json::json!({"cpu": "100m", "memory": "64Mi"})),
            container("b", serde_json::json!({"cpu": "0.2", "memory": "1Gi"})),
        ]})));
        assert_eq!(r.exact.cpu_millis, 300);
        assert_eq!(r.exact.memory_bytes, (64 << 20) + (1 << 30));
    }

    #[test]
    fn the_worked_example_init_container_max_plus_overhead() {
        let r = PodRequests::of(&spec(serde_json::json!({
            "containers": [
                container("a", serde_json::json!({"cpu": "100m"})),
                container("b", serde_json::json!({"cpu": "200m"})),
            ],
            "initContainers": [container("i", serde_json::json!({"cpu": "500m"}))],
            "overhead": {"cpu": "50m"},
        })));
        assert_eq!(r.exact.cpu_millis, 550);
    }

    #[test]
    fn sidecars_run_beside_the_app_and_later_init_containers() {
        let mut sidecar = container("s", serde_json::json!({"cpu": "100m"}));
        sidecar["restartPolicy"] = "Always".into();
        let r = PodRequests::of(&spec(serde_json::json!({
            "containers": [container("a", serde_json::json!({"cpu": "200m"}))],
            "initContainers": [sidecar, container("i", serde_json::json!({"cpu": "250m"}))],
        })));
        // init phase: sidecar 100m + i 250m = 350m; running: a 200m + sidecar 100m = 300m.
        assert_eq!(r.exact.cpu_millis, 350);
    }

    #[test]
    fn unset_requests_are_zero_exactly_but_defaulted_for_scoring() {
        let r = PodRequests::of(&spec(
            serde_json::json!({"containers": [{"name": "a", "image": "busybox"}]}),
        ));
        assert_eq!(r.exact, Resources::default());
        assert_eq!(r.non_zero.cpu_millis, DEFAULT_CPU_MILLIS);
        assert_eq!(r.non_zero.memory_bytes, DEFAULT_MEMORY_BYTES);
    }

    #[test]
    fn a_limit_without_a_request_is_the_request() {
        let r = PodRequests::of(&spec(serde_json::json!({"containers": [
            {"name": "a", "image": "busybox", "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "2"}}}
        ]})));
        assert_eq!(r.exact.cpu_millis, 1000);
        assert_eq!(r.exact.extended.get("nvidia.com/gpu"), Some(&2000));
    }

    #[test]
    fn subtracting_what_was_added_leaves_nothing() {
        let one = PodRequests::of(&spec(serde_json::json!({"containers": [
            container("a", serde_json::json!({"cpu": "1", "example.com/dongle": "1"}))
        ]})));
        let mut total = PodRequests::default();
        total.add(&one);
        total.add(&one);
        total.subtract(&one);
        total.subtract(&one);
        assert_eq!(total, PodRequests::default());
    }
}
