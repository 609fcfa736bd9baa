//! ReplicaSets and Deployments against a real server and simulated nodes, driven with
//! kubectl: replica counts heal after pods are deleted by hand, orphans are adopted, the
//! least ready pod goes first; rollouts keep `replicas - maxUnavailable` pods ready,
//! Recreate never runs two versions at once, and every `kubectl rollout` verb works.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use support::agent::{Agent, NEVER_READY, READY_AFTER, SimNode};
use support::{Server, eventually};

const OLD: &str = "busybox:1.36";
const NEW: &str = "busybox:1.37";

/// A pod template labelled `app: <app>`, one container `c` running `image`.
fn template(app: &str, image: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": app}, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": image}]},
    })
}

fn replicaset(name: &str, replicas: i32, annotations: Value) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, OLD, annotations),
        },
    })
    .to_string()
}

/// A Deployment of `app` with `spec` merged over replicas 1 and a template of [`OLD`].
fn deployment(app: &str, spec: Value, annotations: Value, pod_annotations: Value) -> String {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": template(app, OLD, pod_annotations),
        },
    });
    for (k, v) in spec.as_object().unwrap() {
        d["spec"][k] = v.clone();
    }
    d.to_string()
}

fn apply(s: &Server, manifest: &str) {
    s.ok_stdin(&["apply", "-f", "-"], manifest);
}

fn get(s: &Server, what: &str, jsonpath: &str) -> String {
    let path = format!("jsonpath={jsonpath}");
    let args: Vec<&str> = what.split(' ').chain(["-o", path.as_str()]).collect();
    let mut all = vec!["get"];
    all.extend(args);
    s.ok(&all)
}

/// The pods labelled `app=<app>`, as the API has them.
fn pods(s: &Server, app: &str) -> Vec<Pod> {
    let out = s.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(list["items"].clone()).unwrap()
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

/// The live (not terminating) pods of `app`.
fn live_pods(s: &Server, app: &str) -> Vec<Pod> {
    pods(s, app)
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Waits until `app` has exactly `count` live pods, all Ready and running `image`.
fn wait_for_ready_pods(s: &Server, app: &str, count: usize, image_: &str) -> Vec<Pod> {
    eventually(60, &format!("{count} ready {image_} pods of {app}"), || {
        let all = pods(s, app);
        let done = all.len() == count && all.iter().all(|p| is_ready(p) && image(p) == image_);
        done.then_some(all)
    })
}

/// The messages of the Events with `reason` about the object called `name`.
fn events(s: &Server, name: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={name},reason={reason}");
    let out = s.ok(&[
        "get",
        "events",
        "--field-selector",
        &selector,
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    let mut messages: Vec<String> = out.lines().map(str::to_owned).collect();
    messages.sort();
    messages
}

fn rollout_status(s: &Server, deployment: &str) -> String {
    s.ok(&[
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=90s",
    ])
}

/// The ReplicaSets of `app`: `name revision replicas` per line, sorted by revision.
fn replicasets(s: &Server, app: &str) -> Vec<(String, String, String)> {
    let out = s.ok(&[
        "get",
        "rs",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.spec.replicas}{\"\\n\"}{end}",
    ]);
    let mut sets: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    sets.sort_by_key(|(_, rev, _)| rev.parse::<i64>().unwrap_or(0));
    sets
}

/// Samples the pods of an app every 50 ms while a rollout runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

/// One look at the pods: Ready live ones, and all (live or terminating) of each image.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ready: usize,
    old: usize,
    new: usize,
}

impl Sampler {
    fn start(client: kube::Client, app: &str, old_image: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, selector, old_image) =
            (stop.clone(), format!("app={app}"), old_image.to_owned());
        let task = tokio::spawn(async move {
            let api: Api<Pod> = Api::default_namespaced(client);
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
                    let items = &list.items;
                    let old = items.iter().filter(|p| image(p) == old_image).count();
                    samples.push(Sample {
                        ready: items
                            .iter()
                            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                            .count(),
                        old,
                        new: items.len() - old,
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        });
        Sampler { stop, task }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_heals_adopts_and_gives_up_the_least_ready_pod_first() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;

    // An orphan that runs but is never Ready, there before its ReplicaSet.
    let lazy = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "lazy", "labels": {"app": "web"}, "annotations": {NEVER_READY: "true"}},
        "spec": {"containers": [{"name": "c", "image": OLD}]},
    });
    apply(&s, &lazy.to_string());
    eventually(30, "the orphan to run", || {
        (get(&s, "pod lazy", "{.status.phase}") == "Running").then_some(())
    });

    // The ReplicaSet adopts it and creates only the two pods missing.
    apply(&s, &replicaset("web", 3, json!({})));
    let owner = eventually(30, "the orphan to be adopted", || {
        let owner = get(
            &s,
            "pod lazy",
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}/{.metadata.ownerReferences[0].blockOwnerDeletion}",
        );
        (owner != "///").then_some(owner)
    });
    assert_eq!(owner, "ReplicaSet/web/true/true");
    let status = "{.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.fullyLabeledReplicas}/{.status.observedGeneration}";
    eventually(30, "3 pods, 2 of them ready", || {
        (get(&s, "rs web", status) == "3/2/2/3/1").then_some(())
    });
    let created = events(&s, "web", "SuccessfulCreate");
    assert_eq!(
        created.len(),
        2,
        "only the missing pods are created: {created:?}"
    );
    assert!(
        created.iter().all(|m| m.starts_with("Created pod: web-")),
        "{created:?}"
    );

    // A pod deleted by hand is replaced.
    let victim = pods(&s, "web")
        .into_iter()
        .map(|p| name(&p))
        .find(|n| n != "lazy")
        .unwrap();
    s.ok(&["delete", "pod", &victim]);
    eventually(30, "a replacement pod", || {
        let live = live_pods(&s, "web");
        let replaced = live.len() == 3 && live.iter().all(|p| name(p) != victim);
        (replaced && get(&s, "rs web", status) == "3/2/2/3/1").then_some(())
    });
    assert_eq!(events(&s, "web", "SuccessfulCreate").len(), 3);

    // Scaled down, the pod that is not Ready goes first although it is the oldest.
    s.ok(&["scale", "rs", "web", "--replicas=2"]);
    eventually(30, "the lazy pod to go", || {
        let live = live_pods(&s, "web");
        (live.len() == 2 && live.iter().all(|p| name(p) != "lazy")).then_some(())
    });
    eventually(30, "2 ready pods", || {
        (get(&s, "rs web", status) == "2/2/2/2/2").then_some(())
    });
    assert_eq!(events(&s, "web", "SuccessfulDelete"), ["Deleted pod: lazy"]);

    // A pod relabelled away is released, and replaced.
    let stray = name(&live_pods(&s, "web")[0]);
    s.ok(&["label", "pod", &stray, "app=elsewhere", "--overwrite"]);
    eventually(30, "the relabelled pod to be released and replaced", || {
        let owners = get(&s, &format!("pod {stray}"), "{.metadata.ownerReferences}");
        let released = owners.is_empty() || owners == "[]";
        (released && live_pods(&s, "web").len() == 2).then_some(())
    });
    eventually(30, "the ReplicaSet to settle", || {
        (get(&s, "rs web", status) == "2/2/2/2/2").then_some(())
    });
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_replicas_minus_max_unavailable_ready() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(
        client.clone(),
        vec![SimNode::new("n1"), SimNode::new("n2"), SimNode::new("n3")],
    )
    .await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    apply(
        &s,
        &deployment(
            "web",
            json!({"replicas": 4, "strategy": strategy}),
            json!({}),
            json!({READY_AFTER: "2"}),
        ),
    );
    assert!(rollout_status(&s, "web").contains("successfully rolled out"));
    wait_for_ready_pods(&s, "web", 4, OLD);
    let first = replicasets(&s, "web");
    assert_eq!(first.len(), 1);
    let (old_rs, revision, _) = first[0].clone();
    assert_eq!(revision, "1");
    assert_eq!(
        events(&s, "web", "ScalingReplicaSet"),
        [format!("Scaled up replica set {old_rs} from 0 to 4")]
    );

    // Readiness takes 2 s per new pod: the rollout must wait for it, step by step.
    let sampler = Sampler::start(client.clone(), "web", OLD);
    s.ok(&["set", "image", "deployment/web", &format!("c={NEW}")]);
    assert!(rollout_status(&s, "web").contains("successfully rolled out"));
    let samples = sampler.finish().await;

    let mid_rollout = samples.iter().filter(|x| x.old > 0 && x.new > 0).count();
    assert!(
        mid_rollout >= 10,
        "the sampler should watch the rollout happen: {samples:?}"
    );
    let worst = samples.iter().map(|x| x.ready).min().unwrap();
    assert!(
        worst >= 3,
        "ready pods fell to {worst} (replicas 4, maxUnavailable 1): {samples:?}"
    );

    wait_for_ready_pods(&s, "web", 4, NEW);
    let sets = replicasets(&s, "web");
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0], (old_rs.clone(), "1".into(), "0".into()));
    let (new_rs, revision, replicas) = sets[1].clone();
    assert_eq!((revision.as_str(), replicas.as_str()), ("2", "4"));
    assert_eq!(
        get(
            &s,
            "deployment web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "2"
    );
    // The first step: one surge pod, then one old pod less (4 - 1 unavailable).
    let scaling = events(&s, "web", "ScalingReplicaSet");
    for step in [
        format!("Scaled up replica set {new_rs} from 0 to 1"),
        format!("Scaled down replica set {old_rs} from 4 to 3"),
    ] {
        assert!(scaling.contains(&step), "no {step:?} in {scaling:?}");
    }
    let status = "{.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.unavailableReplicas}";
    assert_eq!(get(&s, "deployment web", status), "4/4/4/4/");
    let conditions = get(
        &s,
        "deployment web",
        "{range .status.conditions[*]}{.type}={.status}/{.reason} {end}",
    );
    let mut conditions: Vec<&str> = conditions.split_whitespace().collect();
    conditions.sort_unstable();
    assert_eq!(
        conditions,
        [
            "Available=True/MinimumReplicasAvailable",
            "Progressing=True/NewReplicaSetAvailable"
        ]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_history_undo_scale_pause_resume_and_restart() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;
    let cause = "kubernetes.io/change-cause";
    apply(
        &s,
        &deployment(
            "app",
            json!({"replicas": 2}),
            json!({cause: "first"}),
            json!({}),
        ),
    );
    rollout_status(&s, "app");
    let original = replicasets(&s, "app")[0].0.clone();

    // The change cause is written after the change (as `kubectl annotate` advises): it goes
    // to the ReplicaSet that is new by then. Written before, it would relabel revision 1.
    s.ok(&["set", "image", "deployment/app", &format!("c={NEW}")]);
    let annotation = format!("{cause}=second");
    s.ok(&["annotate", "deployment/app", &annotation, "--overwrite"]);
    rollout_status(&s, "app");
    let history = |s: &Server| -> Vec<String> {
        let out = s.ok(&["rollout", "history", "deployment/app"]);
        out.lines()
            .skip_while(|l| !l.starts_with("REVISION"))
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    eventually(30, "history with both change causes", || {
        (history(&s) == ["1 first", "2 second"]).then_some(())
    });
    let first = s.ok(&["rollout", "history", "deployment/app", "--revision=1"]);
    assert!(first.contains(OLD), "{first}");

    // Undo: the template goes back, the old ReplicaSet is new again under revision 3.
    let undo = s.ok(&["rollout", "undo", "deployment/app"]);
    assert!(undo.contains("rolled back"), "{undo}");
    rollout_status(&s, "app");
    assert_eq!(
        get(
            &s,
            "deployment app",
            "{.spec.template.spec.containers[0].image}"
        ),
        OLD
    );
    assert_eq!(
        get(
            &s,
            "deployment app",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "3"
    );
    wait_for_ready_pods(&s, "app", 2, OLD);
    let sets = replicasets(&s, "app");
    assert_eq!(
        sets.last().unwrap(),
        &(original.clone(), "3".into(), "2".into()),
        "{sets:?}"
    );
    assert_eq!(
        get(
            &s,
            &format!("rs {original}"),
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}"
        ),
        "1"
    );
    assert_eq!(history(&s), ["2 second", "3 first"]);

    // `kubectl scale` (the scale subresource) resizes the current ReplicaSet only.
    s.ok(&["scale", "deployment/app", "--replicas=3"]);
    wait_for_ready_pods(&s, "app", 3, OLD);
    assert_eq!(replicasets(&s, "app").last().unwrap().2, "3");

    // Paused, a template change starts nothing; the spec is still observed.
    s.ok(&["rollout", "pause", "deployment/app"]);
    s.ok(&["set", "image", "deployment/app", "c=busybox:1.38"]);
    eventually(30, "the paused spec to be observed", || {
        let seen = get(
            &s,
            "deployment app",
            "{.metadata.generation}/{.status.observedGeneration}/{.status.conditions[?(@.type==\"Progressing\")].reason}",
        );
        let f: Vec<&str> = seen.split('/').collect();
        (f[0] == f[1] && f[2] == "DeploymentPaused").then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        replicasets(&s, "app").len(),
        2,
        "no ReplicaSet while paused"
    );
    wait_for_ready_pods(&s, "app", 3, OLD);

    s.ok(&["rollout", "resume", "deployment/app"]);
    rollout_status(&s, "app");
    wait_for_ready_pods(&s, "app", 3, "busybox:1.38");
    assert_eq!(replicasets(&s, "app").last().unwrap().1, "4");

    // Restart: the same template with a new annotation, so every pod is replaced.
    let before: Vec<String> = pods(&s, "app").iter().map(name).collect();
    s.ok(&["rollout", "restart", "deployment/app"]);
    rollout_status(&s, "app");
    let after = wait_for_ready_pods(&s, "app", 3, "busybox:1.38");
    assert!(
        after.iter().all(|p| !before.contains(&name(p))),
        "{before:?} survived a restart"
    );
    assert!(
        !get(
            &s,
            "deployment app",
            "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
        )
        .is_empty()
    );
    assert_eq!(replicasets(&s, "app").last().unwrap().1, "5");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1"), SimNode::new("n2")]).await;
    let spec = json!({"replicas": 3, "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 1});
    apply(
        &s,
        &deployment("batch", spec, json!({}), json!({READY_AFTER: "1"})),
    );
    rollout_status(&s, "batch");
    let first = replicasets(&s, "batch")[0].0.clone();
    assert_eq!(
        events(&s, "batch", "ScalingReplicaSet"),
        [format!("Scaled up replica set {first} from 0 to 3")]
    );

    let sampler = Sampler::start(client.clone(), "batch", OLD);
    s.ok(&["set", "image", "deployment/batch", &format!("c={NEW}")]);
    rollout_status(&s, "batch");
    let samples = sampler.finish().await;
    assert!(
        samples.iter().all(|x| x.old == 0 || x.new == 0),
        "old and new pods ran together: {samples:?}"
    );
    assert!(samples.iter().any(|x| x.old > 0) && samples.iter().any(|x| x.new > 0));
    wait_for_ready_pods(&s, "batch", 3, NEW);
    let second = replicasets(&s, "batch")[1].0.clone();
    let scaling = events(&s, "batch", "ScalingReplicaSet");
    assert!(
        scaling.contains(&format!("Scaled down replica set {first} from 3 to 0")),
        "{scaling:?}"
    );
    assert!(
        scaling.contains(&format!("Scaled up replica set {second} from 0 to 3")),
        "{scaling:?}"
    );

    // revisionHistoryLimit 1: a third version leaves the second as the only old one.
    s.ok(&["set", "image", "deployment/batch", "c=busybox:1.38"]);
    rollout_status(&s, "batch");
    let sets = eventually(30, "the oldest ReplicaSet to be deleted", || {
        let sets = replicasets(&s, "batch");
        (sets.len() == 2).then_some(sets)
    });
    assert_eq!(sets[0], (second, "2".into(), "0".into()));
    assert_eq!(sets[1].1, "3");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_never_becomes_ready_exceeds_its_progress_deadline() {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1")]).await;
    apply(
        &s,
        &deployment(
            "stuck",
            json!({"progressDeadlineSeconds": 3}),
            json!({}),
            json!({NEVER_READY: "true"}),
        ),
    );
    let progressing = "{.status.conditions[?(@.type==\"Progressing\")].status}/{.status.conditions[?(@.type==\"Progressing\")].reason}";
    eventually(30, "the progress deadline to pass", || {
        (get(&s, "deployment stuck", progressing) == "False/ProgressDeadlineExceeded").then_some(())
    });
    let available = "{.status.conditions[?(@.type==\"Available\")].status}/{.status.conditions[?(@.type==\"Available\")].reason}";
    assert_eq!(
        get(&s, "deployment stuck", available),
        "False/MinimumReplicasUnavailable"
    );
    let out = s.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=20s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    agent.stop().await;
}
