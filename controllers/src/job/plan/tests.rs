use serde_json::{Value, json};

use super::*;
use crate::job::indexed;

const NOW: &str = "2026-03-01T10:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn job(spec: Value, status: Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {"restartPolicy": "Never", "containers": []}});
    serde_json::from_value(json!({
        "metadata": {"name": "pi", "namespace": "d", "uid": "job-uid"},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

/// A tracked pod named `name` (uid `name`) in `phase`, finished `secs_ago` if it has.
fn pod(name: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": name, "finalizers": [TRACKING_FINALIZER],
                     "creationTimestamp": ago(100)},
        "spec": {"containers": [], "nodeName": "n1"},
        "status": {"phase": phase},
    }))
    .unwrap()
}

fn finished(name: &str, phase: &str, secs_ago: i64) -> Pod {
    let mut p = pod(name, phase);
    let code = if phase == "Succeeded" { 0 } else { 1 };
    p.status = serde_json::from_value(json!({"phase": phase, "containerStatuses": [{
        "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "finishedAt": ago(secs_ago)}}}]}))
    .unwrap();
    p
}

fn untracked(mut p: Pod) -> Pod {
    p.metadata.finalizers = None;
    p
}

fn deleting(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(Time(now()));
    p
}

fn ready(mut p: Pod) -> Pod {
    let status = p.status.get_or_insert_with(Default::default);
    status.conditions = Some(vec![
        serde_json::from_value(json!({"type": "Ready", "status": "True"})).unwrap(),
    ]);
    p
}

fn run(job: &Job, pods: &[Pod]) -> Plan {
    let refs: Vec<&Pod> = pods.iter().collect();
    plan(job, &refs, now(), Backoff::default())
}

fn condition<'a>(plan: &'a Plan, type_: &str) -> Option<&'a JobCondition> {
    plan.status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn uncounted(plan: &Plan) -> (Vec<String>, Vec<String>) {
    let u = plan
        .status
        .uncounted_terminated_pods
        .clone()
        .unwrap_or_default();
    (
        u.succeeded.unwrap_or_default(),
        u.failed.unwrap_or_default(),
    )
}

#[test]
fn a_new_job_starts_parallelism_pods_but_no_more_than_completions() {
    let p = run(
        &job(json!({"completions": 3, "parallelism": 2}), json!(null)),
        &[],
    );
    assert_eq!(p.create.len(), 2);
    assert_eq!(p.status.active, Some(2));
    assert_eq!(p.status.start_time, Some(Time(now())));
    let p = run(
        &job(json!({"completions": 1, "parallelism": 5}), json!(null)),
        &[],
    );
    assert_eq!(p.create.len(), 1);
    // A work queue (no completions) runs `parallelism` pods.
    let p = run(&job(json!({"parallelism": 3}), json!(null)), &[]);
    assert_eq!(p.create.len(), 3);
}

#[test]
fn counting_takes_three_steps_and_counts_once() {
    let j = job(
        json!({"completions": 3, "parallelism": 2}),
        json!({"startTime": ago(10)}),
    );
    let pods = [finished("a", "Succeeded", 1), ready(pod("b", "Running"))];

    // Step 1: the finished pod is recorded, and only then may lose its finalizer.
    let p1 = run(&j, &pods);
    assert_eq!(uncounted(&p1), (vec!["a".to_owned()], vec![]));
    assert_eq!(p1.status.succeeded, Some(0));
    assert_eq!(p1.unfinalize, ["a"]);
    // One running, one succeeded (uncounted still counts toward completions): one more.
    assert_eq!(
        (p1.create.len(), p1.status.active, p1.status.ready),
        (1, Some(2), Some(1))
    );

    // The same pods again (the finalizer removal not seen yet): nothing counted twice.
    let j2 = Job {
        status: Some(p1.status.clone()),
        ..j.clone()
    };
    let again = run(&j2, &pods);
    assert_eq!(uncounted(&again), (vec!["a".to_owned()], vec![]));
    assert_eq!(again.status.succeeded, Some(0));

    // Step 3: the finalizer is gone, so the pod moves into the counter.
    let pods = [
        untracked(finished("a", "Succeeded", 1)),
        ready(pod("b", "Running")),
    ];
    let p3 = run(&j2, &pods);
    assert_eq!(p3.status.succeeded, Some(1));
    assert_eq!(uncounted(&p3), (vec![], vec![]));
    assert!(p3.unfinalize.is_empty());

    // And once counted, a pod deleted by hand (gone from the list) stays counted.
    let j3 = Job {
        status: Some(p3.status.clone()),
        ..j.clone()
    };
    let p4 = run(&j3, &[ready(pod("b", "Running"))]);
    assert_eq!(p4.status.succeeded, Some(1));
}

#[test]
fn a_running_pod_deleted_by_hand_is_a_failure_and_is_replaced() {
    let j = job(json!({"completions": 1}), json!({"startTime": ago(10)}));
    let p = run(&j, &[deleting(pod("a", "Running"))]);
    assert_eq!(uncounted(&p).1, ["a"]);
    assert_eq!(p.unfinalize, ["a"]);
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.status.terminating, Some(1));
}

#[test]
fn replacing_only_failed_pods_waits_for_the_terminating_ones() {
    let j = job(
        json!({"completions": 1, "podReplacementPolicy": "Failed"}),
        json!({"startTime": ago(10)}),
    );
    let p = run(&j, &[deleting(pod("a", "Running"))]);
    assert_eq!(p.create.len(), 0);
    assert_eq!(uncounted(&p).1, ["a"]);
}

#[test]
fn failures_back_off_exponentially() {
    let j = job(
        json!({"completions": 1, "backoffLimit": 6}),
        json!({"startTime": ago(60), "failed": 2}),
    );
    // Two failures since the last success: wait 2 s after the latest, which ended just now.
    let pods = [
        untracked(finished("a", "Failed", 30)),
        untracked(finished("b", "Failed", 0)),
    ];
    let p = run(&j, &pods);
    assert_eq!(p.create.len(), 0);
    assert_eq!(p.requeue, Some(Duration::from_secs(2)));
    // Once the delay has passed, the replacement starts.
    let pods = [
        untracked(finished("a", "Failed", 30)),
        untracked(finished("b", "Failed", 5)),
    ];
    assert_eq!(run(&j, &pods).create.len(), 1);
    assert_eq!(Backoff::default().after_failures(1), Duration::from_secs(1));
    assert_eq!(Backoff::default().after_failures(3), Duration::from_secs(4));
    assert_eq!(
        Backoff::default().after_failures(30),
        Duration::from_secs(60)
    );
}

#[test]
fn the_backoff_limit_fails_the_job_after_the_last_pod_is_counted() {
    let j = job(
        json!({"completions": 1, "backoffLimit": 2}),
        json!({"startTime": ago(60), "failed": 2}),
    );
    // The third failure: decided, recorded, not yet final.
    let p = run(
        &j,
        &[
            untracked(finished("a", "Failed", 9)),
            finished("c", "Failed", 0),
        ],
    );
    let target = condition(&p, "FailureTarget").unwrap();
    assert_eq!(target.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(condition(&p, "Failed").is_none());
    assert_eq!((p.create.len(), uncounted(&p).1), (0, vec!["c".to_owned()]));
    assert!(p.notes.is_empty());

    // Counted: now it has failed, with an Event.
    let j2 = Job {
        status: Some(p.status.clone()),
        ..j.clone()
    };
    let p2 = run(&j2, &[untracked(finished("c", "Failed", 0))]);
    assert_eq!(p2.status.failed, Some(3));
    let failed = condition(&p2, "Failed").unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_deref()),
        ("True", Some("BackoffLimitExceeded"))
    );
    assert_eq!(
        p2.notes,
        [Note {
            warning: true,
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into()
        }]
    );
    assert_eq!(p2.create.len(), 0);
}

#[test]
fn a_failed_job_deletes_its_running_pods_and_counts_them() {
    let j = job(
        json!({"parallelism": 2, "completions": 4, "backoffLimit": 0}),
        json!({"startTime": ago(60)}),
    );
    let p = run(
        &j,
        &[finished("a", "Failed", 0), ready(pod("b", "Running"))],
    );
    assert!(condition(&p, "FailureTarget").is_some());
    assert_eq!(p.delete, ["b"]);
    assert_eq!(uncounted(&p).1, ["a", "b"]);
    assert_eq!((p.status.active, p.status.terminating), (Some(0), Some(1)));
}

#[test]
fn restarts_are_the_failures_of_on_failure_pods() {
    let mut j = job(
        json!({"completions": 1, "backoffLimit": 2}),
        json!({"startTime": ago(60)}),
    );
    j.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("OnFailure".into());
    let mut p = pod("a", "Running");
    p.status = serde_json::from_value(json!({"phase": "Running", "containerStatuses": [{
        "name": "c", "image": "x", "imageID": "", "ready": false, "restartCount": 2}]}))
    .unwrap();
    let plan = run(&j, &[p]);
    assert_eq!(
        condition(&plan, "FailureTarget").and_then(|c| c.reason.as_deref()),
        Some("BackoffLimitExceeded")
    );
}

#[test]
fn the_deadline_fails_the_job() {
    let j = job(
        json!({"completions": 1, "activeDeadlineSeconds": 30}),
        json!({"startTime": ago(31)}),
    );
    let p = run(&j, &[pod("a", "Running")]);
    assert_eq!(
        condition(&p, "FailureTarget").and_then(|c| c.reason.as_deref()),
        Some("DeadlineExceeded")
    );
    assert_eq!(p.delete, ["a"]);
    // Before the deadline, the controller looks again when it comes.
    let j = job(
        json!({"completions": 1, "activeDeadlineSeconds": 30}),
        json!({"startTime": ago(20)}),
    );
    let p = run(&j, &[pod("a", "Running")]);
    assert_eq!(p.requeue, Some(Duration::from_secs(10)));
}

#[test]
fn enough_successes_complete_the_job() {
    let j = job(
        json!({"completions": 2, "parallelism": 2}),
        json!({"startTime": ago(60), "succeeded": 1}),
    );
    let p = run(&j, &[finished("b", "Succeeded", 0)]);
    assert_eq!(
        condition(&p, "SuccessCriteriaMet").map(|c| c.status.as_str()),
        Some("True")
    );
    assert!(condition(&p, "Complete").is_none());
    let j2 = Job {
        status: Some(p.status.clone()),
        ..j.clone()
    };
    let p2 = run(&j2, &[untracked(finished("b", "Succeeded", 0))]);
    assert_eq!(
        condition(&p2, "Complete").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(p2.status.succeeded, Some(2));
    assert_eq!(p2.status.completion_time, Some(Time(now())));
    assert_eq!(p2.notes[0].reason, "Completed");
}

#[test]
fn a_work_queue_completes_when_one_succeeded_and_the_rest_finished() {
    let j = job(json!({"parallelism": 2}), json!({"startTime": ago(60)}));
    let p = run(&j, &[finished("a", "Succeeded", 0), pod("b", "Running")]);
    assert_eq!(p.create.len(), 0, "no new pod after a success");
    assert!(
        condition(&p, "SuccessCriteriaMet").is_none(),
        "b still runs"
    );
}

#[test]
fn suspending_deletes_pods_without_counting_them_and_resuming_restarts_the_clock() {
    let j = job(
        json!({"completions": 1, "suspend": true}),
        json!({"startTime": ago(60)}),
    );
    let p = run(&j, &[pod("a", "Running")]);
    assert_eq!(p.delete, ["a"]);
    assert_eq!(
        condition(&p, "Suspended").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(p.notes[0].reason, "Suspended");
    let j2 = Job {
        status: Some(p.status.clone()),
        ..j.clone()
    };
    let p2 = run(&j2, &[deleting(pod("a", "Running"))]);
    assert_eq!(uncounted(&p2), (vec![], vec![]));
    assert_eq!(
        p2.unfinalize,
        ["a"],
        "a deleted pod nobody counts must still go"
    );

    let mut resumed = j2.clone();
    resumed.spec.as_mut().unwrap().suspend = Some(false);
    let p3 = run(&resumed, &[]);
    assert_eq!(
        condition(&p3, "Suspended").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_eq!(p3.status.start_time, Some(Time(now())));
    assert_eq!(p3.create.len(), 1);
}

#[test]
fn surplus_pods_go_least_progressed_first() {
    let j = job(
        json!({"completions": 3, "parallelism": 1}),
        json!({"startTime": ago(60)}),
    );
    let pods = [
        ready(pod("ready", "Running")),
        pod("pending", "Pending"),
        pod("running", "Running"),
    ];
    let p = run(&j, &pods);
    assert_eq!(p.delete, ["pending", "running"]);
}

#[test]
fn a_finished_job_releases_its_pods_and_expires_after_its_ttl() {
    let status = json!({"startTime": ago(60), "completionTime": ago(5), "succeeded": 1,
        "conditions": [{"type": "Complete", "status": "True"}]});
    let j = job(
        json!({"completions": 1, "ttlSecondsAfterFinished": 10}),
        status.clone(),
    );
    let p = run(&j, &[finished("a", "Succeeded", 5)]);
    assert_eq!(
        (p.create.len(), p.unfinalize.clone()),
        (0, vec!["a".to_owned()])
    );
    assert_eq!(p.requeue, Some(Duration::from_secs(5)));
    assert!(!p.expired);
    let j = job(
        json!({"completions": 1, "ttlSecondsAfterFinished": 5}),
        status,
    );
    assert!(run(&j, &[]).expired);
}

fn indexed_pod(name: &str, index: i32, phase: &str) -> Pod {
    let mut p = pod(name, phase);
    p.metadata.annotations = Some(
        [(indexed::COMPLETION_INDEX.to_owned(), index.to_string())]
            .into_iter()
            .collect(),
    );
    p
}

#[test]
fn an_indexed_job_runs_one_pod_per_open_index_and_counts_indexes() {
    let spec = json!({"completions": 4, "parallelism": 2, "completionMode": "Indexed"});
    let p = run(&job(spec.clone(), json!(null)), &[]);
    assert_eq!(p.create, [Some(0), Some(1)]);

    // Index 0 succeeded (recorded now), index 1 runs: index 2 starts.
    let j = job(spec.clone(), json!({"startTime": ago(10)}));
    let mut done = indexed_pod("a", 0, "Succeeded");
    done.status = finished("a", "Succeeded", 1).status;
    let p = run(&j, &[done.clone(), indexed_pod("b", 1, "Running")]);
    assert_eq!(p.create, [Some(2)]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.status.succeeded, Some(1));

    // A second success for index 0 adds nothing; a duplicate pod for index 1 goes.
    let j = job(
        spec,
        json!({"startTime": ago(10), "completedIndexes": "0", "succeeded": 1}),
    );
    let mut again = indexed_pod("a2", 0, "Succeeded");
    again.status = finished("a2", "Succeeded", 1).status;
    let p = run(
        &j,
        &[
            untracked(done),
            again,
            ready(indexed_pod("b", 1, "Running")),
            indexed_pod("b2", 1, "Pending"),
        ],
    );
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.delete, ["b2"]);
    assert_eq!(p.create, [Some(2)]);
}

#[test]
fn an_indexed_job_completes_when_every_index_has() {
    let spec = json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed"});
    let j = job(
        spec,
        json!({"startTime": ago(10), "completedIndexes": "1", "succeeded": 1}),
    );
    let p = run(&j, &[indexed_pod("a", 0, "Succeeded")]);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0,1"));
    assert_eq!(
        condition(&p, "SuccessCriteriaMet").map(|c| c.status.as_str()),
        Some("True")
    );
}
