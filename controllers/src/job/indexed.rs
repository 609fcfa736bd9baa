//! `completionMode: Indexed`: each of the `completions` indexes 0..n-1 needs one pod that
//! succeeds; a pod learns its index from the annotation (and label)
//! `batch.kubernetes.io/job-completion-index` and the environment variable
//! `JOB_COMPLETION_INDEX`, and its hostname is `<job>-<index>`.
//!
//! The status lists the succeeded indexes as ranges (`status.completedIndexes: "0-2,5"`)
//! and `succeeded` is their number, so a second pod succeeding for an index already done
//! changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};

use crate::pods;

/// The annotation (and label) that carries a pod's index.
pub(super) const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The pod's index, if it has a well-formed one.
pub(super) fn index_of(pod: &Pod) -> Option<i32> {
    let from = |m: Option<&BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))
}

/// The succeeded indexes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Indexes(BTreeSet<i32>);

impl Indexes {
    /// Reads `status.completedIndexes`; what does not parse is dropped (the pods that made
    /// it are counted again from their own annotations while they exist).
    pub fn parse(text: Option<&str>) -> Indexes {
        let mut set = BTreeSet::new();
        for part in text.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
            let range = match part.split_once('-') {
                Some((a, b)) => a.parse::<i32>().ok().zip(b.parse::<i32>().ok()),
                None => part.parse::<i32>().ok().map(|i| (i, i)),
            };
            if let Some((a, b)) = range {
                set.extend(a..=b);
            }
        }
        Indexes(set)
    }

    pub fn insert(&mut self, i: i32) {
        self.0.insert(i);
    }

    pub fn contains(&self, i: i32) -> bool {
        self.0.contains(&i)
    }

    pub fn len(&self) -> i32 {
        i32::try_from(self.0.len()).unwrap_or(i32::MAX)
    }

    /// As `status.completedIndexes` writes it: ascending runs, `None` when empty.
    pub fn format(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        let mut run: Option<(i32, i32)> = None;
        for &i in &self.0 {
            run = match run {
                Some((a, b)) if i == b + 1 => Some((a, i)),
                Some(r) => {
                    parts.push(range(r));
                    Some((i, i))
                }
                None => Some((i, i)),
            };
        }
        parts.extend(run.map(range));
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// One run of indexes as Kubernetes writes it: `3`, `3,4` (a pair), `3-7`.
fn range((a, b): (i32, i32)) -> String {
    if a == b {
        a.to_string()
    } else if b == a + 1 {
        format!("{a},{b}")
    } else {
        format!("{a}-{b}")
    }
}

/// Splits the active pods into those to keep and those to delete: a pod whose index is
/// missing, out of range or already done goes, and of two pods for one index the less
/// progressed one goes.
pub(super) fn sort_active<'a>(
    active: &[&'a Pod],
    completions: i32,
    completed: &Indexes,
) -> (BTreeMap<i32, &'a Pod>, Vec<&'a Pod>) {
    let mut keep: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut surplus = Vec::new();
    for pod in active {
        match index_of(pod) {
            Some(i) if i < completions && !completed.contains(i) => match keep.get(&i) {
                Some(other) if progress(other) >= progress(pod) => surplus.push(*pod),
                Some(other) => {
                    surplus.push(*other);
                    keep.insert(i, pod);
                }
                None => {
                    keep.insert(i, pod);
                }
            },
            _ => surplus.push(*pod),
        }
    }
    (keep, surplus)
}

fn progress(pod: &Pod) -> (bool, bool) {
    (pods::is_ready(pod), pods::phase(pod) == "Running")
}

/// The lowest indexes that have neither succeeded nor a pod, at most `room` of them.
pub(super) fn pending(
    completions: i32,
    completed: &Indexes,
    running: &BTreeMap<i32, &Pod>,
    room: usize,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !completed.contains(*i) && !running.contains_key(i))
        .take(room)
        .collect()
}

/// Makes `pod` the pod of index `i`: annotation, label, hostname and environment.
pub(super) fn assign(pod: &mut Pod, job_name: &str, i: i32) {
    let value = i.to_string();
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.to_owned(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.to_owned(), value);
    pod.metadata.generate_name = Some(format!("{job_name}-{i}-"));
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.hostname.is_none() {
        spec.hostname = Some(format!("{job_name}-{i}"));
    }
    let env = EnvVar {
        name: INDEX_ENV.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..EnvVarSource::default()
        }),
    };
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        let vars = c.env.get_or_insert_with(Vec::new);
        if !vars.iter().any(|v| v.name == INDEX_ENV) {
            vars.push(env.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, index: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": index.map(|i| json!({COMPLETION_INDEX: i}))},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn completed_indexes_read_and_write_as_ranges() {
        for (text, want) in [
            ("", None),
            ("3", Some("3")),
            ("0-2,5,7-8", Some("0-2,5,7,8")),
            ("4,5", Some("4,5")),
            ("1,2,3,9", Some("1-3,9")),
            ("x,4", Some("4")),
        ] {
            assert_eq!(
                Indexes::parse(Some(text)).format().as_deref(),
                want,
                "{text}"
            );
        }
        assert_eq!(Indexes::parse(Some("0-2,5")).len(), 4);
    }

    #[test]
    fn one_pod_per_open_index() {
        let completed = Indexes::parse(Some("1"));
        let a = pod("a", Some("0"), "Pending");
        let a2 = pod("a2", Some("0"), "Running");
        let done = pod("done", Some("1"), "Running");
        let stray = pod("stray", Some("9"), "Running");
        let bare = pod("bare", None, "Running");
        let (keep, surplus) = sort_active(&[&a, &a2, &done, &stray, &bare], 4, &completed);
        assert_eq!(keep.keys().copied().collect::<Vec<_>>(), [0]);
        assert_eq!(keep[&0].metadata.name.as_deref(), Some("a2"));
        let mut gone: Vec<_> = surplus
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        gone.sort();
        assert_eq!(gone, ["a", "bare", "done", "stray"]);
        assert_eq!(pending(4, &completed, &keep, 5), [2, 3]);
        assert_eq!(pending(4, &completed, &keep, 1), [2]);
    }

    #[test]
    fn an_indexed_pod_knows_its_index() {
        let mut p = pod("x", None, "Pending");
        assign(&mut p, "render", 3);
        assert_eq!(index_of(&p), Some(3));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("render-3-"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("render-3"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }
}
