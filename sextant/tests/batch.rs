//! Jobs and CronJobs against a real server and simulated nodes, driven with kubectl: a Job
//! runs its completions within its parallelism, retries failures to its backoff limit,
//! counts a pod deleted by hand exactly once, honours its deadline, suspension and TTL; a
//! CronJob fires on its schedule, keeps its history limits and its concurrency policy.
//!
//! Cron has minute resolution. Rather than wait for minute boundaries, the CronJob tests
//! set `status.lastScheduleTime` in the past, as a controller that was down would find it:
//! the controller then starts the most recent missed run at once. Only the Forbid test
//! waits for one real minute boundary, because what it checks is a second scheduled run.

mod support;

use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::agent::{Agent, EXIT_CODE, RUN_SECONDS, SimNode};
use support::{Server, eventually};

/// A Job manifest: `spec` plus a one-container pod template with `annotations` (the
/// simulated node reads its behaviour from them).
fn job(name: &str, spec: Value, annotations: Value) -> String {
    let mut spec = spec;
    spec["template"] = pod_template(annotations);
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

fn pod_template(annotations: Value) -> Value {
    json!({
        "metadata": {"annotations": annotations},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "work", "image": "busybox:1.36"}]},
    })
}

fn get(s: &Server, what: &str, jsonpath: &str) -> String {
    s.ok(&["get", what, "-o", &format!("jsonpath={jsonpath}")])
}

/// The names and phases of `job`'s pods (by the label the controller puts on them).
fn pods_of(s: &Server, job: &str) -> Vec<(String, String)> {
    let out = s.ok(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/job-name={job}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, p)| (n.to_owned(), p.to_owned()))
        .collect()
}

/// The messages of the Events with `reason` on the object named `name`.
fn events(s: &Server, name: &str, reason: &str) -> Vec<String> {
    let out = s.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    out.lines().map(str::to_owned).collect()
}

/// Asserts `jsonpath` of `object` is `want`; the panic shows the object, pods and Events.
fn expect(s: &Server, object: &str, jsonpath: &str, want: &str) {
    let got = get(s, object, jsonpath);
    if got != want {
        panic!(
            "{object} {jsonpath} is {got:?}, want {want:?}\n{}",
            dump(s, object)
        );
    }
}

fn dump(s: &Server, object: &str) -> String {
    format!(
        "{}\npods:\n{}\nevents:\n{}",
        s.ok(&["get", object, "-o", "yaml"]),
        s.ok(&["get", "pods", "-o", "wide", "--show-labels"]),
        s.ok(&["get", "events", "--sort-by=.metadata.creationTimestamp"]),
    )
}

/// `kubectl wait` for `condition`; on a timeout, the panic shows the object, its pods and
/// the Events, which is where the reason is.
fn wait_for(s: &Server, condition: &str, object: &str) {
    let out = s.kubectl(&[
        "wait",
        &format!("--for=condition={condition}"),
        object,
        "--timeout=60s",
    ]);
    if !out.status.success() {
        panic!(
            "{object} never got condition {condition}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            dump(s, object)
        );
    }
}

async fn start() -> (Server, kube::Client, Agent) {
    let s = Server::start(&[]);
    let client = support::client(&s).await;
    let agent = Agent::start(client.clone(), vec![SimNode::new("n1")]).await;
    (s, client, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_its_completions_within_its_parallelism() {
    let (s, _client, agent) = start().await;
    let manifest = job(
        "pi",
        json!({"completions": 3, "parallelism": 2}),
        json!({EXIT_CODE: "0", RUN_SECONDS: "1"}),
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_for(&s, "complete", "job/pi");

    expect(
        &s,
        "job/pi",
        "{.status.succeeded}|{.status.failed}|{.status.active}",
        "3|0|0",
    );
    assert!(
        !get(&s, "job/pi", "{.status.completionTime}").is_empty(),
        "a complete Job has a completionTime"
    );
    assert_eq!(
        get(
            &s,
            "job/pi",
            "{.status.conditions[?(@.type==\"SuccessCriteriaMet\")].status}"
        ),
        "True"
    );
    // The selector was generated from the Job's uid, and the pods carry it.
    let uid = get(&s, "job/pi", "{.metadata.uid}");
    assert_eq!(
        get(
            &s,
            "job/pi",
            "{.spec.selector.matchLabels.batch\\.kubernetes\\.io/controller-uid}"
        ),
        uid
    );
    let pods = pods_of(&s, "pi");
    assert_eq!(pods.len(), 3, "exactly `completions` pods: {pods:?}");
    assert!(
        pods.iter().all(|(_, phase)| phase == "Succeeded"),
        "{pods:?}"
    );
    for (pod, _) in &pods {
        let got = get(
            &s,
            &format!("pod/{pod}"),
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid}|{.metadata.labels.controller-uid}|{.metadata.labels.job-name}",
        );
        assert_eq!(got, format!("Job/{uid}|{uid}|pi"));
    }
    // Counted pods lose the tracking finalizer.
    eventually(10, "the pods' tracking finalizers to go", || {
        pods.iter()
            .all(|(pod, _)| {
                !get(&s, &format!("pod/{pod}"), "{.metadata.finalizers}")
                    .contains("batch.kubernetes.io/job-tracking")
            })
            .then_some(())
    });

    // Parallelism 2: the third pod was created only once one of the first two had ended.
    let mut created: Vec<(String, String)> = pods
        .iter()
        .map(|(pod, _)| {
            let t = get(
                &s,
                &format!("pod/{pod}"),
                "{.metadata.creationTimestamp}|{.status.containerStatuses[0].state.terminated.finishedAt}",
            );
            let (c, f) = t.split_once('|').unwrap();
            (c.to_owned(), f.to_owned())
        })
        .collect();
    created.sort();
    let first_end = created[..2].iter().map(|(_, f)| f).min().unwrap();
    assert!(
        &created[2].0 >= first_end,
        "the third pod started before a slot was free: {created:?}"
    );

    assert_eq!(events(&s, "pi", "SuccessfulCreate").len(), 3);
    assert_eq!(events(&s, "pi", "Completed"), ["Job completed"]);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_runs_each_index_once() {
    let (s, _client, agent) = start().await;
    let manifest = job(
        "render",
        json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        json!({EXIT_CODE: "0"}),
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_for(&s, "complete", "job/render");
    expect(
        &s,
        "job/render",
        "{.status.succeeded}|{.status.completedIndexes}",
        "3|0-2",
    );
    let mut seen: Vec<String> = pods_of(&s, "render")
        .iter()
        .map(|(pod, _)| {
            get(
                &s,
                &format!("pod/{pod}"),
                "{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {.spec.hostname} {.spec.containers[0].env[0].name}",
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "0 render-0 JOB_COMPLETION_INDEX",
            "1 render-1 JOB_COMPLETION_INDEX",
            "2 render-2 JOB_COMPLETION_INDEX"
        ]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_retries_to_its_backoff_limit_then_fails() {
    let (s, _client, agent) = start().await;
    let manifest = job(
        "doomed",
        json!({"backoffLimit": 2}),
        json!({EXIT_CODE: "1"}),
    );
    s.ok_stdin(&["apply", "-f", "-"], &manifest);
    wait_for(&s, "failed", "job/doomed");

    expect(
        &s,
        "job/doomed",
        "{.status.conditions[?(@.type==\"Failed\")].reason}|{.status.failed}|{.status.succeeded}",
        "BackoffLimitExceeded|3|0",
    );
    let pods = pods_of(&s, "doomed");
    assert_eq!(pods.len(), 3, "backoffLimit + 1 pods: {pods:?}");
    assert!(pods.iter().all(|(_, phase)| phase == "Failed"), "{pods:?}");
    assert_eq!(
        events(&s, "doomed", "BackoffLimitExceeded"),
        ["Job has reached the specified backoff limit"]
    );
    assert!(
        get(&s, "job/doomed", "{.status.completionTime}").is_empty(),
        "a failed Job never completes"
    );

    // Deleting the Job takes its pods along: their finalizers do not hold them.
    s.ok(&["delete", "job", "doomed"]);
    eventually(30, "the failed Job's pods to be deleted", || {
        pods_of(&s, "doomed").is_empty().then_some(())
    });
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_by_hand_counts_once_and_is_replaced() {
    let (s, _client, agent) = start().await;
    s.ok_stdin(
        &["apply", "-f", "-"],
        &job("steady", json!({"backoffLimit": 3}), json!({})),
    );
    let first = eventually(30, "a running pod", || {
        pods_of(&s, "steady")
            .into_iter()
            .find(|(_, phase)| phase == "Running")
            .map(|(n, _)| n)
    });
    s.ok(&["delete", "pod", &first, "--wait=false"]);
    let second = eventually(30, "a replacement pod", || {
        pods_of(&s, "steady")
            .into_iter()
            .find(|(n, phase)| *n != first && phase == "Running")
            .map(|(n, _)| n)
    });
    eventually(30, "the deleted pod to be gone", || {
        (!pods_of(&s, "steady").iter().any(|(n, _)| *n == first)).then_some(())
    });
    eventually(10, "the deleted pod to be counted, once", || {
        (get(&s, "job/steady", "{.status.failed}|{.status.active}") == "1|1").then_some(())
    });
    assert_eq!(
        events(&s, "steady", "SuccessfulCreate"),
        [
            format!("Created pod: {first}"),
            format!("Created pod: {second}")
        ]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_suspension_and_ttl() {
    let (s, _client, agent) = start().await;
    // Pods that never end, and a 2 s deadline.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "late",
            json!({"parallelism": 2, "completions": 2, "activeDeadlineSeconds": 2}),
            json!({}),
        ),
    );
    // A suspended Job starts nothing until resumed.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &job(
            "paused",
            json!({"suspend": true, "ttlSecondsAfterFinished": 1}),
            json!({EXIT_CODE: "0"}),
        ),
    );
    wait_for(&s, "suspended", "job/paused");
    wait_for(&s, "failed", "job/late");
    // The running pods of a failed Job are stopped and count as failures.
    expect(
        &s,
        "job/late",
        "{.status.conditions[?(@.type==\"Failed\")].reason}|{.status.failed}|{.status.active}",
        "DeadlineExceeded|2|0",
    );
    eventually(30, "the late Job's pods to be deleted", || {
        pods_of(&s, "late").is_empty().then_some(())
    });

    assert!(pods_of(&s, "paused").is_empty());
    s.ok(&[
        "patch",
        "job",
        "paused",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    // It runs, completes, and one second later is deleted with its pod.
    eventually(30, "the resumed Job to finish and expire", || {
        let out = s.kubectl(&["get", "job", "paused"]);
        String::from_utf8_lossy(&out.stderr)
            .contains("NotFound")
            .then_some(())
    });
    assert_eq!(events(&s, "paused", "Completed"), ["Job completed"]);
    assert_eq!(events(&s, "paused", "Resumed"), ["Job resumed"]);
    eventually(30, "the expired Job's pod to be deleted", || {
        pods_of(&s, "paused").is_empty().then_some(())
    });
    agent.stop().await;
}

/// A CronJob manifest whose Jobs' pods behave as `annotations` say.
fn cronjob(name: &str, spec: Value, annotations: Value) -> String {
    let mut spec = spec;
    spec["jobTemplate"] =
        json!({"spec": {"backoffLimit": 0, "template": pod_template(annotations)}});
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

/// Pretends the CronJob last ran `secs` ago, as after a controller outage.
async fn last_ran(client: &kube::Client, name: &str, secs: i64) {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs);
    let api: Api<CronJob> = Api::default_namespaced(client.clone());
    let patch =
        json!({"status": {"lastScheduleTime": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// The Jobs owned by CronJob `cj`, by name.
fn jobs_of(s: &Server, cj: &str) -> Vec<String> {
    let out = s.ok(&[
        "get",
        "jobs",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].name}{\"\\n\"}{end}",
    ]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, owner)| *owner == cj)
        .map(|(n, _)| n.to_owned())
        .collect();
    v.sort();
    v
}

/// The scheduled time a Job ran for, from its name (minutes since the epoch) and from its
/// annotation; they must agree.
fn scheduled_minute(s: &Server, job: &str) -> i64 {
    let minutes: i64 = job.rsplit('-').next().unwrap().parse().unwrap();
    let annotated = get(
        s,
        &format!("job/{job}"),
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    let t: jiff::Timestamp = annotated.parse().unwrap();
    assert_eq!(
        t.as_second(),
        minutes * 60,
        "{job} is annotated {annotated}"
    );
    minutes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_starts_its_missed_run_and_keeps_its_history() {
    let (s, client, agent) = start().await;
    // Yearly, so that no other run falls inside the test.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &cronjob(
            "yearly",
            json!({"schedule": "0 0 1 1 *", "successfulJobsHistoryLimit": 1}),
            json!({EXIT_CODE: "0", RUN_SECONDS: "1"}),
        ),
    );
    // Nothing was due since its creation.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(jobs_of(&s, "yearly").is_empty());

    last_ran(&client, "yearly", 400 * 24 * 3600).await;
    let scheduled = eventually(30, "the missed yearly run", || {
        jobs_of(&s, "yearly").into_iter().next()
    });
    let minute = scheduled_minute(&s, &scheduled);
    let new_year = jiff::Timestamp::from_second(minute * 60)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    assert_eq!(
        (
            new_year.month(),
            new_year.day(),
            new_year.hour(),
            new_year.minute()
        ),
        (1, 1, 0, 0)
    );
    wait_for(&s, "complete", &format!("job/{scheduled}"));
    eventually(30, "the CronJob to see its Job complete", || {
        let st = get(
            &s,
            "cronjob/yearly",
            "{.status.active}|{.status.lastSuccessfulTime}",
        );
        (st.starts_with('|') && st.len() > 1).then_some(())
    });
    assert_eq!(
        get(&s, "cronjob/yearly", "{.status.lastScheduleTime}"),
        new_year
            .timestamp()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    assert_eq!(
        events(&s, "yearly", "SuccessfulCreate"),
        [format!("Created job {scheduled}")]
    );
    assert_eq!(
        events(&s, "yearly", "SawCompletedJob"),
        [format!(
            "Saw completed job: {scheduled}, condition: Complete"
        )]
    );

    // A run by hand is the CronJob's too: once it completes, the older one is pruned.
    s.ok(&["create", "job", "by-hand", "--from=cronjob/yearly"]);
    wait_for(&s, "complete", "job/by-hand");
    eventually(30, "the history limit to prune the scheduled run", || {
        (jobs_of(&s, "yearly") == ["by-hand"]).then_some(())
    });
    assert_eq!(
        events(&s, "yearly", "SuccessfulDelete"),
        [format!("Deleted job {scheduled}")]
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_runs_while_one_is_active() {
    let (s, client, agent) = start().await;
    // Every minute; its pods never end.
    s.ok_stdin(
        &["apply", "-f", "-"],
        &cronjob(
            "solo",
            json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}),
            json!({}),
        ),
    );
    last_ran(&client, "solo", 180).await;
    let first = eventually(30, "the missed run", || {
        jobs_of(&s, "solo").into_iter().next()
    });
    let first_minute = scheduled_minute(&s, &first);
    assert_eq!(get(&s, "cronjob/solo", "{.status.active[*].name}"), first);

    // The next minute comes while the first run still runs: nothing new starts.
    eventually(75, "the next scheduled time to be refused", || {
        (!events(&s, "solo", "JobAlreadyActive").is_empty()).then_some(())
    });
    assert_eq!(jobs_of(&s, "solo"), std::slice::from_ref(&first));

    // Once it is gone, the refused run starts at once.
    s.ok(&["delete", "job", &first, "--wait=false"]);
    let second = eventually(30, "the refused run to start", || {
        jobs_of(&s, "solo").into_iter().find(|j| *j != first)
    });
    assert!(scheduled_minute(&s, &second) > first_minute);
    eventually(10, "the CronJob to list only the new run", || {
        (get(&s, "cronjob/solo", "{.status.active[*].name}") == second).then_some(())
    });
    agent.stop().await;
}
