//! What the machine offers pods: capacity, and allocatable (capacity minus what the agent
//! and the system keep for themselves), as the scheduler reads them from the Node's status.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU kept back from pods, in millicores, so that a node full of busy pods still leaves
/// the agent room to heartbeat.
pub const RESERVED_CPU_MILLIS: u64 = 100;
/// Memory kept back from pods (Kubernetes' default hard eviction threshold).
pub const RESERVED_MEMORY_BYTES: u64 = 100 * 1024 * 1024;

/// The machine's resources, measured once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u64,
    /// `None` when `/proc/meminfo` cannot be read (not Linux): the Node then reports no memory.
    pub memory_bytes: Option<u64>,
}

impl Machine {
    /// Measures this machine: CPUs as the process may use them (affinity and cgroup quota
    /// count), memory from `/proc/meminfo`.
    pub fn measure() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total(&text));
        Machine { cpus, memory_bytes }
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes (the file says kB, meaning KiB).
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        match words.next() {
            Some("kB") | Some("KiB") => value.checked_mul(1024),
            None => Some(value),
            Some(_) => None,
        }
    })
}

/// A resource list: `cpu`, `memory`, `pods`.
pub type Resources = BTreeMap<String, Quantity>;

/// Capacity and allocatable for `machine`, with room for `max_pods` pods. `overrides`
/// replace a resource in both lists verbatim (an operator's word is final; it is also how
/// to advertise a resource this module does not measure, such as `ephemeral-storage`).
pub fn resources(
    machine: &Machine,
    max_pods: u32,
    overrides: &BTreeMap<String, Quantity>,
) -> (Resources, Resources) {
    let mut capacity = Resources::new();
    let mut allocatable = Resources::new();
    capacity.insert("cpu".into(), Quantity(machine.cpus.to_string()));
    let cpu_left = (machine.cpus * 1000).saturating_sub(RESERVED_CPU_MILLIS);
    allocatable.insert("cpu".into(), Quantity(millis(cpu_left)));
    if let Some(bytes) = machine.memory_bytes {
        capacity.insert("memory".into(), Quantity(kibibytes(bytes)));
        let left = bytes.saturating_sub(RESERVED_MEMORY_BYTES);
        allocatable.insert("memory".into(), Quantity(kibibytes(left)));
    }
    capacity.insert("pods".into(), Quantity(max_pods.to_string()));
    allocatable.insert("pods".into(), Quantity(max_pods.to_string()));
    for (name, value) in overrides {
        capacity.insert(name.clone(), value.clone());
        allocatable.insert(name.clone(), value.clone());
    }
    (capacity, allocatable)
}

/// Whole cores stay whole (`"2"`), the rest is millicores (`"1900m"`).
fn millis(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

/// Bytes as kubelet writes them: whole KiB (`"16283784Ki"`), rounded down.
fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16283784 kB\nMemFree:         1024000 kB\n\
                           MemAvailable:    8000000 kB\n";

    #[test]
    fn mem_total_reads_kib_and_ignores_other_lines() {
        assert_eq!(mem_total(MEMINFO), Some(16_283_784 * 1024));
        assert_eq!(mem_total("MemFree: 5 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(
            mem_total("MemTotal: 5 MB\n"),
            None,
            "an unknown unit is not guessed"
        );
    }

    #[test]
    fn this_machine_has_cpus_and_memory() {
        let m = Machine::measure();
        assert!(m.cpus >= 1);
        if cfg!(target_os = "linux") {
            assert!(m.memory_bytes.unwrap() > RESERVED_MEMORY_BYTES);
        }
    }

    #[test]
    fn allocatable_keeps_a_reserve_back() {
        let m = Machine {
            cpus: 2,
            memory_bytes: Some(4 * 1024 * 1024 * 1024),
        };
        let (cap, alloc) = resources(&m, 5000, &BTreeMap::new());
        let get = |r: &Resources, k: &str| r[k].0.clone();
        assert_eq!(get(&cap, "cpu"), "2");
        assert_eq!(get(&alloc, "cpu"), "1900m");
        assert_eq!(get(&cap, "memory"), "4194304Ki");
        assert_eq!(get(&alloc, "memory"), "4091904Ki");
        assert_eq!(get(&cap, "pods"), "5000");
        assert_eq!(get(&alloc, "pods"), "5000");
    }

    #[test]
    fn overrides_win_and_a_tiny_machine_does_not_underflow() {
        let m = Machine {
            cpus: 1,
            memory_bytes: Some(1024),
        };
        let overrides = BTreeMap::from([
            ("cpu".to_string(), Quantity("8".into())),
            ("ephemeral-storage".to_string(), Quantity("10Gi".into())),
        ]);
        let (cap, alloc) = resources(&m, 10, &overrides);
        assert_eq!(cap["cpu"].0, "8");
        assert_eq!(alloc["cpu"].0, "8");
        assert_eq!(alloc["ephemeral-storage"].0, "10Gi");
        assert_eq!(alloc["memory"].0, "0Ki");
    }
}
