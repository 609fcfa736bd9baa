//! The CronJob controller: makes a Job at each time of a CronJob's `schedule`, applies its
//! `concurrencyPolicy`, keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`,
//! and deletes finished Jobs beyond the history limits.
//!
//! # The schedule, level-triggered
//! Nothing is remembered between reconciles but the CronJob's status: the Job to make is
//! the one for the latest scheduled time after `lastScheduleTime` (or the creation), no
//! older than `startingDeadlineSeconds`. So a controller that was down, or a Forbid
//! CronJob whose previous Job just ended, starts the run it missed, once. Each reconcile
//! then requeues for just after the next scheduled time (100 ms after, as Kubernetes'
//! `nextScheduleDelta`, so the clock has surely passed it).
//!
//! A Job's name is `<cronjob>-<scheduled time in minutes since the epoch>`, as in
//! Kubernetes: two controllers, or a retry after a lost status write, make the same name,
//! and the second create is refused instead of running the Job twice.
//!
//! Jobs made by hand with `kubectl create job --from=cronjob/NAME` are owned by the CronJob
//! too: they count for `lastSuccessfulTime` and the history limits, never for `active`.

mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use sextant_events::{Event, Recorder, normal, warning};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::{Error, retry_soon};
use crate::owners;
use schedule::{MISSED_WARNING_THRESHOLD, Schedule};

/// The annotation on each Job saying which scheduled time it runs for.
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// kubectl's mark on a Job made by `kubectl create job --from=cronjob/...`.
const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";

/// Kubernetes' `nextScheduleDelta`: wake a little after the scheduled time, never before.
const AFTER_SCHEDULE: Duration = Duration::from_millis(100);

struct State {
    ctx: Context,
    recorder: Recorder,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let cronjobs = Api::<CronJob>::all(ctx.client.clone());
    let jobs = Api::<Job>::all(ctx.client.clone());
    let state = Arc::new(State {
        recorder: ctx.recorder("cronjob-controller"),
        ctx,
    });
    Controller::new(cronjobs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, state)
        .for_each(|_| async {})
        .await;
}

async fn reconcile(cached: Arc<CronJob>, state: Arc<State>) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let cronjobs = Api::<CronJob>::namespaced(state.ctx.client.clone(), &ns);
    // The status written by the last reconcile may not be in the cache yet.
    let Some(cj) = cronjobs.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let jobs_api = Api::<Job>::namespaced(state.ctx.client.clone(), &ns);
    let uid = cj.uid().unwrap_or_default();
    let jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| owners::controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();

    let mut run = Run {
        state: &state,
        cj: &cj,
        jobs_api: &jobs_api,
        status: cj.status.clone().unwrap_or_default(),
        after_write: Vec::new(),
    };
    run.sync_active(&jobs);
    run.prune_history(&jobs).await?;
    let action = run.schedule(Timestamp::now()).await?;
    let Run {
        status,
        after_write,
        ..
    } = run;

    let mut updated = cj.clone();
    updated.status = Some(status);
    let before = cj.status.clone().unwrap_or_default();
    if serde_json::to_value(&before).ok() != serde_json::to_value(&updated.status).ok() {
        cronjobs
            .replace_status(&cj.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    for ev in after_write {
        state.publish(&cj, ev).await;
    }
    Ok(action)
}

/// One reconcile of one CronJob: the status it builds, and the Events to record once that
/// status is stored (so that a conflict and retry does not record them twice).
struct Run<'a> {
    state: &'a State,
    cj: &'a CronJob,
    jobs_api: &'a Api<Job>,
    status: CronJobStatus,
    after_write: Vec<Event>,
}

impl Run<'_> {
    /// `status.active` holds exactly the CronJob's unfinished scheduled Jobs;
    /// `lastSuccessfulTime` is the latest completion.
    fn sync_active(&mut self, jobs: &[Job]) {
        let mut active = self.status.active.take().unwrap_or_default();
        active.retain(|r| {
            jobs.iter()
                .any(|j| j.uid() == r.uid && finished(j).is_none())
        });
        for job in jobs {
            let listed = active.iter().any(|r| r.uid == job.uid());
            let was_listed = self
                .cj
                .status
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .is_some_and(|a| a.iter().any(|r| r.uid == job.uid()));
            match finished(job) {
                Some(condition) => {
                    if was_listed {
                        self.after_write.push(about(
                            normal(
                                "SawCompletedJob",
                                format!(
                                    "Saw completed job: {}, condition: {condition}",
                                    job.name_any()
                                ),
                            ),
                            reference(job),
                        ));
                    }
                    if condition == "Complete" {
                        self.saw_success(job);
                    }
                }
                None if !listed && !is_manual(job) => {
                    // Created by us just before a lost status write, or by someone else with
                    // us as owner: Kubernetes warns and leaves it out of `active`.
                    self.after_write.push(about(
                        warning(
                            "UnexpectedJob",
                            format!(
                                "Saw a job that the controller did not create or forgot: {}",
                                job.name_any()
                            ),
                        ),
                        reference(job),
                    ));
                }
                None => {}
            }
        }
        self.status.active = (!active.is_empty()).then_some(active);
    }

    fn saw_success(&mut self, job: &Job) {
        let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.clone()) else {
            return;
        };
        if self
            .status
            .last_successful_time
            .as_ref()
            .is_none_or(|t| t.0 < done.0)
        {
            self.status.last_successful_time = Some(done);
        }
    }

    /// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` and
    /// `failedJobsHistoryLimit`.
    async fn prune_history(&mut self, jobs: &[Job]) -> Result<(), Error> {
        let spec = &self.cj.spec;
        let spec = spec.as_ref();
        let limits = [
            (
                "Complete",
                spec.and_then(|s| s.successful_jobs_history_limit),
            ),
            ("Failed", spec.and_then(|s| s.failed_jobs_history_limit)),
        ];
        for (condition, limit) in limits {
            let Some(limit) = limit else { continue };
            for job in beyond_limit(jobs, condition, limit) {
                self.delete_job(&job.name_any()).await?;
            }
        }
        Ok(())
    }

    /// Starts the run that is due, if any, and says when to look again.
    async fn schedule(&mut self, now: Timestamp) -> Result<Action, Error> {
        let cj = self.cj;
        let Some(spec) = cj.spec.as_ref() else {
            return Ok(Action::await_change());
        };
        if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
            return Ok(Action::await_change());
        }
        let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                // Nothing to retry until the CronJob is edited; the watch brings the edit.
                self.after_write
                    .push(warning(e.reason(), e.message().to_owned()));
                return Ok(Action::await_change());
            }
        };
        let mut earliest = self
            .status
            .last_schedule_time
            .as_ref()
            .or(cj.metadata.creation_timestamp.as_ref())
            .map_or(now, |t| t.0);
        if let Some(deadline) = spec.starting_deadline_seconds {
            earliest = earliest.max(now - SignedDuration::from_secs(deadline));
        }
        let missed = schedule.missed(earliest, now);
        let wake = self.wake_for_next(&schedule, now);
        let Some(due) = missed.most_recent else {
            return Ok(wake);
        };
        if missed.count > MISSED_WARNING_THRESHOLD {
            self.after_write.push(warning(
                "TooManyMissedTimes",
                format!(
                    "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                    missed.count
                ),
            ));
        }
        let active = self.status.active.clone().unwrap_or_default();
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                self.after_write.push(normal(
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                ));
                return Ok(wake);
            }
            Some("Replace") => {
                for r in &active {
                    if let Some(name) = &r.name {
                        self.delete_job(name).await?;
                    }
                }
                self.status.active = None;
            }
            _ => {}
        }
        self.start(&schedule, due).await?;
        Ok(wake)
    }

    /// Creates the Job for the scheduled time `due`, and records it in the status.
    async fn start(&mut self, schedule: &Schedule, due: Timestamp) -> Result<(), Error> {
        let job = job_for(self.cj, schedule, due);
        let name = job.name_any();
        let created = match self.jobs_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                self.state
                    .publish(
                        self.cj,
                        about(
                            normal("SuccessfulCreate", format!("Created job {name}")),
                            reference(&created),
                        ),
                    )
                    .await;
                Some(created)
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                // Made by an earlier attempt whose status write was lost, or by someone else.
                let existing = self.jobs_api.get_opt(&name).await?;
                let ours = existing.filter(|j| {
                    owners::controller_of(&j.metadata)
                        .is_some_and(|r| Some(&r.uid) == self.cj.uid().as_ref())
                });
                if ours.is_none() {
                    self.after_write.push(warning(
                        "FailedCreate",
                        format!("Error creating job: {name} already exists and is not owned by this CronJob; rename or delete it"),
                    ));
                }
                ours.filter(|j| finished(j).is_none())
            }
            Err(e) => {
                self.state
                    .publish(
                        self.cj,
                        warning("FailedCreate", format!("Error creating job: {e}")),
                    )
                    .await;
                return Err(e.into());
            }
        };
        if let Some(job) = created {
            let mut active = self.status.active.take().unwrap_or_default();
            if !active.iter().any(|r| r.uid == job.uid()) {
                active.push(reference(&job));
            }
            self.status.active = Some(active);
        }
        self.status.last_schedule_time = Some(Time(due));
        Ok(())
    }

    async fn delete_job(&mut self, name: &str) -> Result<(), Error> {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match self.jobs_api.delete(name, &dp).await {
            Ok(_) => {
                self.state
                    .publish(
                        self.cj,
                        about(
                            normal("SuccessfulDelete", format!("Deleted job {name}")),
                            job_named(self.cj, name),
                        ),
                    )
                    .await;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => {
                self.state
                    .publish(
                        self.cj,
                        warning("FailedDelete", format!("Error deleting job {name}: {e}")),
                    )
                    .await;
                Err(e.into())
            }
        }
    }

    /// Requeue just after the next scheduled time; a schedule with none (`0 0 30 2 *`)
    /// waits for an edit.
    fn wake_for_next(&self, schedule: &Schedule, now: Timestamp) -> Action {
        match schedule.next_after(now) {
            Some(next) => {
                let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
                Action::requeue(wait + AFTER_SCHEDULE)
            }
            None => Action::await_change(),
        }
    }
}

/// The Job for the scheduled time `due`: the CronJob's template, named and annotated for
/// that time, controlled by the CronJob.
fn job_for(cj: &CronJob, schedule: &Schedule, due: Timestamp) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let from = template.metadata.unwrap_or_default();
    let mut annotations = from.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.to_owned(), schedule.format(due));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), due)),
            labels: from.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owners::controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Kubernetes' `getJobName`: the scheduled time in minutes since the epoch.
fn job_name(cronjob: &str, due: Timestamp) -> String {
    format!("{cronjob}-{}", due.as_second().div_euclid(60))
}

/// `Complete` or `Failed`, once a Job has finished.
fn finished(job: &Job) -> Option<&'static str> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

fn is_manual(job: &Job) -> bool {
    job.annotations().get(INSTANTIATE).map(String::as_str) == Some("manual")
}

/// The finished Jobs with `condition` beyond the newest `limit`, oldest first, by start time
/// (Jobs that never started count as newest), then name — Kubernetes' `byJobStartTime`.
fn beyond_limit<'a>(jobs: &'a [Job], condition: &str, limit: i32) -> Vec<&'a Job> {
    let mut done: Vec<&Job> = jobs
        .iter()
        .filter(|j| finished(j) == Some(condition) && j.metadata.deletion_timestamp.is_none())
        .collect();
    done.sort_by_key(|j| {
        let start = j
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0);
        (start.is_none(), start, j.name_any())
    });
    let keep = usize::try_from(limit).unwrap_or(0);
    let excess = done.len().saturating_sub(keep);
    done.truncate(excess);
    done
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some(Job::api_version(&()).into_owned()),
        kind: Some(Job::kind(&()).into_owned()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

impl State {
    async fn publish(&self, cj: &CronJob, ev: Event) {
        if let Err(e) = self.recorder.publish(&ev, &cj.object_ref(&())).await {
            tracing::warn!(cronjob = %cj.name_any(), error = %e, "could not record an Event");
        }
    }
}

/// A reference to the Job `name` of `cj`, for an Event's `related`.
fn job_named(cj: &CronJob, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(Job::api_version(&()).into_owned()),
        kind: Some(Job::kind(&()).into_owned()),
        namespace: cj.namespace(),
        name: Some(name.to_owned()),
        ..ObjectReference::default()
    }
}

/// `ev` about the Job `related` too; Events about different Jobs then stay apart (kube-rs
/// merges Events that differ only in their message into one series).
fn about(ev: Event, related: ObjectReference) -> Event {
    Event {
        secondary: Some(related),
        ..ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, condition: Option<&str>, start: Option<&str>) -> Job {
        let conditions: Vec<_> = condition
            .map(|c| json!({"type": c, "status": "True"}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": conditions, "startTime": start},
        }))
        .unwrap()
    }

    #[test]
    fn names_count_minutes_since_the_epoch() {
        let t: Timestamp = "2026-01-05T08:00:00Z".parse().unwrap();
        assert_eq!(job_name("backup", t), "backup-29460000");
    }

    #[test]
    fn history_keeps_the_newest() {
        let jobs = [
            job("c", Some("Complete"), Some("2026-01-01T00:03:00Z")),
            job("a", Some("Complete"), Some("2026-01-01T00:01:00Z")),
            job("never-started", Some("Complete"), None),
            job("b", Some("Complete"), Some("2026-01-01T00:02:00Z")),
            job("f1", Some("Failed"), Some("2026-01-01T00:01:00Z")),
            job("f2", Some("Failed"), Some("2026-01-01T00:02:00Z")),
            job("running", None, Some("2026-01-01T00:00:00Z")),
        ];
        let names = |v: Vec<&Job>| v.iter().map(|j| j.name_any()).collect::<Vec<_>>();
        assert_eq!(names(beyond_limit(&jobs, "Complete", 2)), ["a", "b"]);
        assert_eq!(names(beyond_limit(&jobs, "Failed", 1)), ["f1"]);
        assert_eq!(names(beyond_limit(&jobs, "Failed", 0)), ["f1", "f2"]);
        assert!(beyond_limit(&jobs, "Complete", 10).is_empty());
    }

    #[test]
    fn a_scheduled_job_is_the_template_named_for_its_time() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "d", "uid": "u-9"},
            "spec": {"schedule": "0 9 * * *", "timeZone": "Europe/Paris", "jobTemplate": {
                "metadata": {"labels": {"app": "b"}, "annotations": {"team": "ops"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}}}
        }))
        .unwrap();
        let s = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        let due: Timestamp = "2026-01-05T08:00:00Z".parse().unwrap();
        let job = job_for(&cj, &s, due);
        assert_eq!(job.name_any(), "backup-29460000");
        assert_eq!(job.labels()["app"], "b");
        assert_eq!(job.annotations()["team"], "ops");
        assert_eq!(
            job.annotations()[SCHEDULED_TIMESTAMP],
            "2026-01-05T09:00:00+01:00"
        );
        let owner = &job.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "u-9")
        );
    }
}
