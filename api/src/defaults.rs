//! Defaulting: the values Kubernetes fills in when an object leaves them out, so that
//! controllers, the node agent and `kubectl` read the same object Kubernetes would store.
//!
//! Worked example: a Deployment posted with only `selector` and a template with one
//! container `image: nginx` is stored with `replicas: 1`, `strategy: RollingUpdate 25%/25%`,
//! `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, and a pod template whose
//! spec has `restartPolicy: Always`, `dnsPolicy: ClusterFirst`,
//! `terminationGracePeriodSeconds: 30`, and a container with `imagePullPolicy: Always`
//! (the image has no tag, so `latest`).
//!
//! Only fields that are absent are set; nothing a client wrote is changed.

use serde_json::{Value, json};

/// Sets `obj[field]` to `value` when it is absent or null.
fn default(obj: &mut Value, field: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(field).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// The object at `path` (created as `{}` when absent).
fn at<'a>(obj: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut cur = obj;
    for p in path {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = cur.get_mut(*p).expect("just made");
    }
    cur
}

/// Applies the defaults of `group`/`kind` to `obj`, in place.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => pod_spec(at(obj, &["spec"])),
        ("", "Namespace") => {
            default(at(obj, &["spec"]), "finalizers", json!(["kubernetes"]));
            default(at(obj, &["status"]), "phase", json!("Active"));
        }
        ("", "Service") => service(obj),
        ("", "Secret") => default(obj, "type", json!("Opaque")),
        ("apps", "Deployment") => {
            let spec = at(obj, &["spec"]);
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = at(spec, &["strategy"]);
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = at(strategy, &["rollingUpdate"]);
                default(ru, "maxSurge", json!("25%"));
                default(ru, "maxUnavailable", json!("25%"));
            }
            pod_template(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = at(obj, &["spec"]);
            default(spec, "replicas", json!(1));
            pod_template(spec);
        }
        ("batch", "Job") => job_spec(at(obj, &["spec"])),
        ("batch", "CronJob") => {
            let spec = at(obj, &["spec"]);
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            job_spec(at(spec, &["jobTemplate", "spec"]));
        }
        _ => {}
    }
}

fn pod_template(spec: &mut Value) {
    if spec.get("template").is_some_and(Value::is_object) {
        pod_spec(at(spec, &["template", "spec"]));
    }
}

fn job_spec(spec: &mut Value) {
    // Both unset: one pod, run to one success. Parallelism set alone: a work queue, whose
    // completions stay unset (Kubernetes' SetDefaults_Job).
    let unset = |k: &str| spec.get(k).is_none_or(Value::is_null);
    if unset("completions") && unset("parallelism") {
        spec["completions"] = json!(1);
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    pod_template(spec);
}

fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    default(spec, "serviceAccountName", json!("default"));
    let sa = spec["serviceAccountName"].clone();
    default(spec, "serviceAccount", sa);
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    default(c, "imagePullPolicy", json!(image_pull_policy(image)));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
        }
    }
}

/// `Always` for `:latest` or an untagged image (which means latest), else `IfNotPresent`.
/// A digest pins the image, so it never needs pulling again.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(obj: &mut Value) {
    let spec = at(obj, &["spec"]);
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec["type"] != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            default(p, "targetPort", port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_as_in_the_worked_example() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
    }

    #[test]
    fn nothing_written_by_the_client_changes() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert!(d["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pull_policies() {
        for (image, want) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("reg:5000/app", "Always"),
            ("reg:5000/app:v2", "IfNotPresent"),
            ("app@sha256:abc", "IfNotPresent"),
        ] {
            assert_eq!(image_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn services_and_jobs() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("", "Service", &mut s);
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let mut j =
            json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}});
        apply("batch", "Job", &mut j);
        assert_eq!(
            (
                j["spec"]["completions"].clone(),
                j["spec"]["backoffLimit"].clone()
            ),
            (json!(1), json!(6))
        );
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }
}
