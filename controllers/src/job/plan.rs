//! One step of a Job's life, decided without IO: from the stored Job and its pods, what
//! to delete, what to create, which status to write and which finalizers to drop.
//!
//! # Counting each finished pod exactly once
//! Every pod a Job creates carries the `batch.kubernetes.io/job-tracking` finalizer, so it
//! cannot vanish before it is counted, whoever deletes it. Counting is Kubernetes'
//! three-step protocol:
//! 1. a finished pod that still has the finalizer is added, by uid, to
//!    `status.uncountedTerminatedPods` (and the status written);
//! 2. only then is its finalizer removed;
//! 3. a uid in `uncountedTerminatedPods` whose pod has lost the finalizer (or is gone)
//!    moves into `status.succeeded` or `status.failed`.
//!
//! A crash or a conflict between any two steps repeats a step, never a count: step 1 is a
//! set insertion, step 2 is idempotent, and step 3 only moves uids that step 1 recorded.
//! A pod deleted before it finished counts as failed (as in Kubernetes), except while the
//! Job is suspended or has already met its success criteria (the controller deleted it).
//!
//! # Finishing
//! As Kubernetes 1.31+ does, a Job first gets an interim condition — `FailureTarget` or
//! `SuccessCriteriaMet` — which stops new pods and deletes the active ones; the terminal
//! condition (`Failed` or `Complete`) and its Event follow once no pod runs or terminates
//! and every pod is counted, so that `kubectl wait --for=condition=complete` returns only
//! when the Job's numbers are final.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::indexed::{self, Indexes};
use crate::pods;

/// Kept on every pod the Job controller creates until the pod is counted in the status.
pub(super) const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// At most this many pods are created or deleted in one step (Kubernetes'
/// `MaxPodCreateDeletePerSync`), so one huge Job cannot monopolise the API server.
const MAX_POD_CHANGES_PER_STEP: usize = 500;

/// The delay before replacing failed pods: `base · 2^(n-1)` after the n-th failure since
/// the last success, capped at `max`.
///
/// Kubernetes waits 10 s · 2^(n-1), capped at 6 minutes. Sextant's default base is 1 s (cap
/// 60 s): the same doubling, ten times faster, because a wasm module starts in
/// milliseconds where a container starts in seconds, and so that a Job that retries to its
/// backoff limit can be watched (and tested) in seconds rather than minutes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    fn after_failures(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What one reconcile does, in this order: delete, create, write `status`, remove
/// `unfinalize`'s finalizers (only after the status naming them is stored), record `notes`.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub status: JobStatus,
    /// Pods to create from the template: one per entry, with its completion index in an
    /// Indexed Job.
    pub create: Vec<Option<i32>>,
    /// Active pods to delete, by name.
    pub delete: Vec<String>,
    /// Pods whose tracking finalizer may go once `status` is written, by name.
    pub unfinalize: Vec<String>,
    /// Events for the Job, recorded once `status` is written.
    pub notes: Vec<Note>,
    /// When to look again even if nothing changes (backoff, deadline, TTL).
    pub requeue: Option<Duration>,
    /// `ttlSecondsAfterFinished` has passed: delete the Job.
    pub expired: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The interim condition a Job gets when its outcome is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fails(FailReason),
    Succeeds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailReason {
    BackoffLimitExceeded,
    DeadlineExceeded,
}

impl FailReason {
    fn reason(self) -> &'static str {
        match self {
            FailReason::BackoffLimitExceeded => "BackoffLimitExceeded",
            FailReason::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    fn message(self) -> &'static str {
        match self {
            FailReason::BackoffLimitExceeded => "Job has reached the specified backoff limit",
            FailReason::DeadlineExceeded => "Job was active longer than specified deadline",
        }
    }

    fn from_reason(reason: Option<&str>) -> FailReason {
        match reason {
            Some("DeadlineExceeded") => FailReason::DeadlineExceeded,
            _ => FailReason::BackoffLimitExceeded,
        }
    }
}

const SUCCESS_REASON: &str = "CompletionsReached";
const SUCCESS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// Decides the next step for `job`, whose own pods (controller reference to it) are `pods`.
pub(super) fn plan(job: &Job, pods: &[&Pod], now: Timestamp, backoff: Backoff) -> Plan {
    let empty = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&empty);
    let old = job.status.clone().unwrap_or_default();
    let mut conditions = Conditions(old.conditions.clone().unwrap_or_default());
    let mut plan = Plan::default();
    let mut status = old.clone();
    let mut tally = Tally::settle(&old, pods);

    let finished = conditions.terminal().is_some();
    if finished || job.metadata.deletion_timestamp.is_some() {
        // Everything was counted before the terminal condition; a Job being deleted
        // counts nothing more. Either way its pods may go.
        plan.unfinalize = names(pods.iter().copied().filter(|p| is_tracked(p)));
        tally.write(spec, &mut status);
        status.active = Some(count(pods, pods::is_active));
        status.ready = Some(count(pods, |p| pods::is_active(p) && pods::is_ready(p)));
        status.terminating = Some(count(pods, is_terminating));
        if finished && job.metadata.deletion_timestamp.is_none() {
            expire(spec, &status, &conditions, now, &mut plan);
        }
        plan.status = status;
        return plan;
    }

    let suspended = spec.suspend == Some(true);
    let mut outcome = conditions.outcome();
    // A deleted pod is a failure unless the controller deleted it for a reason that is
    // not the pod's fault.
    let deletion_fails = !suspended && outcome != Some(Outcome::Succeeds);
    tally.record(spec, pods, deletion_fails, false);
    if outcome.is_none() {
        outcome = advance(
            spec,
            pods,
            &tally,
            &mut conditions,
            &mut status,
            now,
            &mut plan,
        );
    }
    if matches!(outcome, Some(Outcome::Fails(_))) {
        // Once a Job has failed, every pod still running is one of its failures.
        tally.record(spec, pods, true, true);
    }

    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| pods::is_active(p))
        .collect();
    let mut deleting: Vec<&Pod> = Vec::new();
    match outcome {
        Some(done) => {
            deleting.extend(active.iter().copied());
            let settled =
                active.is_empty() && count(pods, is_terminating) == 0 && tally.uncounted.is_empty();
            if settled {
                finish(done, &mut conditions, &mut status, now, &mut plan);
            }
        }
        None if suspended => deleting.extend(active.iter().copied()),
        None => {
            let (create, stop) = manage(
                spec,
                pods,
                &active,
                tally.succeeded_total(spec),
                &tally.completed,
            );
            deleting.extend(stop);
            if !create.is_empty() {
                match backoff_remaining(pods, now, backoff) {
                    Some(wait) => plan.requeue = Some(wait),
                    None => plan.create = create,
                }
            }
            if let (Some(start), Some(deadline)) =
                (&status.start_time, spec.active_deadline_seconds)
            {
                let end = start.0 + SignedDuration::from_secs(deadline);
                plan.requeue = earliest(plan.requeue, until(end, now));
            }
        }
    }
    deleting.truncate(MAX_POD_CHANGES_PER_STEP);
    plan.delete = names(deleting.iter().copied());
    count_pods(&active, &deleting, pods, plan.create.len(), &mut status);
    tally.write(spec, &mut status);
    status.conditions = (!conditions.0.is_empty()).then_some(conditions.0);
    // Recorded pods may lose their finalizer once the status is stored; so may pods deleted
    // without counting (suspension, surplus after success), which would otherwise stay.
    plan.unfinalize = names(pods.iter().copied().filter(|p| {
        let recorded = p
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| tally.uncounted.contains(u));
        let uncounted_deletion = p.metadata.deletion_timestamp.is_some() && !deletion_fails;
        is_tracked(p) && (recorded || uncounted_deletion)
    }));
    plan.status = status;
    plan
}

/// For a Job not yet decided: suspension, resumption, the start time, and whether it has
/// now failed or succeeded (recorded as the interim condition).
fn advance(
    spec: &JobSpec,
    pods: &[&Pod],
    tally: &Tally,
    conditions: &mut Conditions,
    status: &mut JobStatus,
    now: Timestamp,
    plan: &mut Plan,
) -> Option<Outcome> {
    if spec.suspend == Some(true) {
        if !conditions.is_true("Suspended") {
            conditions.set("Suspended", "True", "JobSuspended", "Job suspended", now);
            plan.notes.push(note(false, "Suspended", "Job suspended"));
        }
        return None;
    }
    if conditions.is_true("Suspended") {
        conditions.set("Suspended", "False", "JobResumed", "Job resumed", now);
        plan.notes.push(note(false, "Resumed", "Job resumed"));
        // The deadline counts from the resumption, as in Kubernetes.
        status.start_time = Some(Time(now));
    }
    let start = status.start_time.get_or_insert(Time(now)).0;
    let outcome = decide(
        spec,
        pods,
        tally.succeeded_total(spec),
        tally.failed + tally.uncounted.failed.len_i32(),
        start,
        now,
    );
    match outcome {
        Some(Outcome::Fails(why)) => {
            conditions.set("FailureTarget", "True", why.reason(), why.message(), now);
        }
        Some(Outcome::Succeeds) => {
            conditions.set(
                "SuccessCriteriaMet",
                "True",
                SUCCESS_REASON,
                SUCCESS_MESSAGE,
                now,
            );
        }
        None => {}
    }
    outcome
}

/// `active`, `ready` and `terminating` as they will be once this step's deletions and
/// creations are done.
fn count_pods(
    active: &[&Pod],
    deleting: &[&Pod],
    pods: &[&Pod],
    creating: usize,
    status: &mut JobStatus,
) {
    let deleting_now: HashSet<&str> = deleting
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let staying: Vec<&Pod> = active
        .iter()
        .copied()
        .filter(|p| {
            !p.metadata
                .uid
                .as_deref()
                .is_some_and(|u| deleting_now.contains(u))
        })
        .collect();
    status.active = Some(i32::try_from(staying.len() + creating).unwrap_or(i32::MAX));
    status.ready = Some(count(&staying, pods::is_ready));
    status.terminating =
        Some(count(pods, is_terminating) + i32::try_from(deleting.len()).unwrap_or(i32::MAX));
}

/// What the Job has counted: the counters, the recorded but not yet counted pods, and an
/// Indexed Job's succeeded indexes.
struct Tally {
    succeeded: i32,
    failed: i32,
    uncounted: Uncounted,
    completed: Indexes,
}

impl Tally {
    /// Step 3 of the protocol: recorded pods that lost their finalizer are counted.
    fn settle(old: &JobStatus, pods: &[&Pod]) -> Tally {
        let tracked: HashSet<&str> = pods
            .iter()
            .filter(|p| is_tracked(p))
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let mut uncounted = Uncounted::from(old.uncounted_terminated_pods.as_ref());
        let mut succeeded = old.succeeded.unwrap_or(0);
        let mut failed = old.failed.unwrap_or(0);
        uncounted.succeeded.retain(|uid| {
            let waiting = tracked.contains(uid.as_str());
            succeeded += i32::from(!waiting);
            waiting
        });
        uncounted.failed.retain(|uid| {
            let waiting = tracked.contains(uid.as_str());
            failed += i32::from(!waiting);
            waiting
        });
        Tally {
            succeeded,
            failed,
            uncounted,
            completed: Indexes::parse(old.completed_indexes.as_deref()),
        }
    }

    /// Step 1: records the finished pods (see [`Uncounted::add_finished`]), and in an
    /// Indexed Job the indexes that succeeded.
    fn record(&mut self, spec: &JobSpec, pods: &[&Pod], deletion_fails: bool, all_fail: bool) {
        self.uncounted.add_finished(pods, deletion_fails, all_fail);
        if is_indexed(spec) {
            let completions = spec.completions.unwrap_or(0);
            for pod in pods {
                let recorded = pod
                    .metadata
                    .uid
                    .as_deref()
                    .is_some_and(|u| self.uncounted.succeeded.contains(u));
                if let Some(i) = indexed::index_of(pod).filter(|i| recorded && *i < completions) {
                    self.completed.insert(i);
                }
            }
        }
    }

    /// Successes so far, recorded ones included: an Indexed Job counts indexes, not pods.
    fn succeeded_total(&self, spec: &JobSpec) -> i32 {
        if is_indexed(spec) {
            self.completed.len()
        } else {
            self.succeeded + self.uncounted.succeeded.len_i32()
        }
    }

    fn write(&self, spec: &JobSpec, status: &mut JobStatus) {
        let indexed = is_indexed(spec);
        status.succeeded = Some(if indexed {
            self.completed.len()
        } else {
            self.succeeded
        });
        status.failed = Some(self.failed);
        status.completed_indexes = if indexed {
            self.completed.format()
        } else {
            None
        };
        status.uncounted_terminated_pods = Some(self.uncounted.to_status());
    }
}

fn is_indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// Whether the Job's outcome is decided: too many failures, past its deadline, or enough
/// successes.
fn decide(
    spec: &JobSpec,
    pods: &[&Pod],
    succeeded: i32,
    failed: i32,
    start: Timestamp,
    now: Timestamp,
) -> Option<Outcome> {
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    if failed > backoff_limit || past_backoff_limit_on_failure(spec, pods, backoff_limit) {
        return Some(Outcome::Fails(FailReason::BackoffLimitExceeded));
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && now >= start + SignedDuration::from_secs(deadline)
    {
        return Some(Outcome::Fails(FailReason::DeadlineExceeded));
    }
    let active = count(pods, pods::is_active);
    let complete = match spec.completions {
        // A work queue: done when one pod succeeded and the others have finished.
        None => succeeded > 0 && active == 0,
        Some(c) => succeeded >= c && active == 0,
    };
    complete.then_some(Outcome::Succeeds)
}

/// Which pods to start (with their index, for an Indexed Job) and which active ones to
/// stop, for a Job still running.
fn manage<'a>(
    spec: &JobSpec,
    pods: &[&Pod],
    active: &[&'a Pod],
    succeeded: i32,
    completed: &Indexes,
) -> (Vec<Option<i32>>, Vec<&'a Pod>) {
    // `podReplacementPolicy: Failed` waits until a deleted pod has really stopped before
    // it starts its replacement.
    let terminating = if spec.pod_replacement_policy.as_deref() == Some("Failed") {
        usize::try_from(count(pods, is_terminating)).unwrap_or(0)
    } else {
        0
    };
    if is_indexed(spec) {
        let completions = spec.completions.unwrap_or(0);
        let (keep, mut stop) = indexed::sort_active(active, completions, completed);
        let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
        let kept: Vec<&Pod> = keep.values().copied().collect();
        stop.extend(
            removal_order(&kept)
                .into_iter()
                .take(kept.len().saturating_sub(parallelism)),
        );
        let room = parallelism
            .saturating_sub(kept.len() + terminating)
            .min(MAX_POD_CHANGES_PER_STEP);
        let start = indexed::pending(completions, completed, &keep, room);
        return (start.into_iter().map(Some).collect(), stop);
    }
    let want = wanted_active(spec, active.len(), succeeded);
    if active.len() > want {
        let stop = removal_order(active).into_iter().take(active.len() - want);
        return (Vec::new(), stop.collect());
    }
    let room = want
        .saturating_sub(active.len() + terminating)
        .min(MAX_POD_CHANGES_PER_STEP);
    (vec![None; room], Vec::new())
}

/// With `restartPolicy: OnFailure` a failing container restarts inside its pod, so its
/// restarts are the failures (Kubernetes' `pastBackoffLimitOnFailure`).
fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[&Pod], limit: i32) -> bool {
    let policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(pods::phase(p), "Pending" | "Running"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// How many pods should run: never more than `parallelism`, never more than the
/// completions still missing; a work queue (no `completions`) starts no new pod once one
/// has succeeded.
fn wanted_active(spec: &JobSpec, active: usize, succeeded: i32) -> usize {
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    match spec.completions {
        None if succeeded > 0 => active,
        None => parallelism,
        Some(c) => usize::try_from(c - succeeded).unwrap_or(0).min(parallelism),
    }
}

/// Adds the terminal condition once the outcome has settled.
fn finish(
    done: Outcome,
    conditions: &mut Conditions,
    status: &mut JobStatus,
    now: Timestamp,
    plan: &mut Plan,
) {
    match done {
        Outcome::Succeeds => {
            conditions.set("Complete", "True", SUCCESS_REASON, SUCCESS_MESSAGE, now);
            status.completion_time = Some(Time(now));
            plan.notes.push(note(false, "Completed", "Job completed"));
        }
        Outcome::Fails(why) => {
            conditions.set("Failed", "True", why.reason(), why.message(), now);
            plan.notes.push(note(true, why.reason(), why.message()));
        }
    }
}

/// `ttlSecondsAfterFinished`: the Job is deleted that long after it finished.
fn expire(
    spec: &JobSpec,
    status: &JobStatus,
    conditions: &Conditions,
    now: Timestamp,
    plan: &mut Plan,
) {
    let Some(ttl) = spec.ttl_seconds_after_finished else {
        return;
    };
    let finished_at = status
        .completion_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            conditions
                .terminal()
                .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        })
        .unwrap_or(now);
    match until(finished_at + SignedDuration::from_secs(i64::from(ttl)), now) {
        Some(wait) => plan.requeue = Some(wait),
        None => plan.expired = true,
    }
}

/// How long to wait before replacing failed pods, if at all.
fn backoff_remaining(pods: &[&Pod], now: Timestamp, backoff: Backoff) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| pods::phase(p) == "Succeeded")
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<Timestamp> = pods
        .iter()
        .filter(|p| pods::phase(p) == "Failed")
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last_failure = failures.iter().max()?;
    let n = u32::try_from(failures.len()).unwrap_or(u32::MAX);
    let delay = SignedDuration::try_from(backoff.after_failures(n)).ok()?;
    until(*last_failure + delay, now)
}

/// When a pod stopped: its containers' latest `finishedAt`, else when it stopped being
/// Ready, else when it was deleted or created.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let terminated = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    terminated
        .or_else(|| {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "Ready" && c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        })
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The pods to give up first when there are too many: the least progressed (Kubernetes'
/// `ActivePods` order): unscheduled, then pending, then not ready, then the newest.
fn removal_order<'a>(active: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut v = active.to_vec();
    v.sort_by_key(|p| {
        let scheduled = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let running = pods::phase(p) == "Running";
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (
            scheduled,
            running,
            pods::is_ready(p),
            std::cmp::Reverse(created),
        )
    });
    v
}

fn is_tracked(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !pods::is_terminal(pod)
}

fn count(pods: &[&Pod], f: impl Fn(&Pod) -> bool) -> i32 {
    count_iter(pods.iter().filter(|p| f(p)))
}

fn count_iter<T>(it: impl Iterator<Item = T>) -> i32 {
    i32::try_from(it.count()).unwrap_or(i32::MAX)
}

fn names<'a>(pods: impl Iterator<Item = &'a Pod>) -> Vec<String> {
    pods.filter_map(|p| p.metadata.name.clone()).collect()
}

fn note(warning: bool, reason: &'static str, message: &str) -> Note {
    Note {
        warning,
        reason,
        message: message.to_owned(),
    }
}

/// How long from `now` until `t`, if `t` is still ahead.
fn until(t: Timestamp, now: Timestamp) -> Option<Duration> {
    Duration::try_from(t.duration_since(now))
        .ok()
        .filter(|d| !d.is_zero())
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `status.uncountedTerminatedPods` as two sets of uids.
#[derive(Debug, Default)]
struct Uncounted {
    succeeded: BTreeSet<String>,
    failed: BTreeSet<String>,
}

trait LenI32 {
    fn len_i32(&self) -> i32;
}

impl LenI32 for BTreeSet<String> {
    fn len_i32(&self) -> i32 {
        i32::try_from(self.len()).unwrap_or(i32::MAX)
    }
}

impl Uncounted {
    fn from(status: Option<&UncountedTerminatedPods>) -> Self {
        let set = |v: Option<&Vec<String>>| v.into_iter().flatten().cloned().collect();
        Uncounted {
            succeeded: set(status.and_then(|s| s.succeeded.as_ref())),
            failed: set(status.and_then(|s| s.failed.as_ref())),
        }
    }

    fn contains(&self, uid: &str) -> bool {
        self.succeeded.contains(uid) || self.failed.contains(uid)
    }

    fn is_empty(&self) -> bool {
        self.succeeded.is_empty() && self.failed.is_empty()
    }

    /// Step 1 of the protocol: records the tracked pods that have finished. A pod being
    /// deleted counts as failed when `deletion_fails`; with `all_fail` every pod that has not
    /// succeeded does (the Job has failed).
    fn add_finished(&mut self, pods: &[&Pod], deletion_fails: bool, all_fail: bool) {
        for pod in pods.iter().filter(|p| is_tracked(p)) {
            let Some(uid) = pod.metadata.uid.as_deref() else {
                continue;
            };
            if self.contains(uid) {
                continue;
            }
            let phase = pods::phase(pod);
            if phase == "Succeeded" {
                self.succeeded.insert(uid.to_owned());
            } else if phase == "Failed"
                || all_fail
                || (deletion_fails && pod.metadata.deletion_timestamp.is_some())
            {
                self.failed.insert(uid.to_owned());
            }
        }
    }

    fn to_status(&self) -> UncountedTerminatedPods {
        let list = |s: &BTreeSet<String>| (!s.is_empty()).then(|| s.iter().cloned().collect());
        UncountedTerminatedPods {
            succeeded: list(&self.succeeded),
            failed: list(&self.failed),
        }
    }
}

/// A Job's conditions, with Kubernetes' rule that a condition's transition time changes
/// only when its status does.
struct Conditions(Vec<JobCondition>);

impl Conditions {
    fn get(&self, type_: &str) -> Option<&JobCondition> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    fn is_true(&self, type_: &str) -> bool {
        self.get(type_).is_some_and(|c| c.status == "True")
    }

    /// `Complete` or `Failed`, if the Job has finished.
    fn terminal(&self) -> Option<&JobCondition> {
        self.0
            .iter()
            .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
    }

    /// The interim condition, if the outcome is already decided.
    fn outcome(&self) -> Option<Outcome> {
        if let Some(c) = self.get("FailureTarget").filter(|c| c.status == "True") {
            return Some(Outcome::Fails(FailReason::from_reason(c.reason.as_deref())));
        }
        self.is_true("SuccessCriteriaMet")
            .then_some(Outcome::Succeeds)
    }

    fn set(&mut self, type_: &str, status: &str, reason: &str, message: &str, now: Timestamp) {
        if let Some(c) = self.0.iter_mut().find(|c| c.type_ == type_) {
            if c.status != status {
                c.status = status.to_owned();
                c.last_transition_time = Some(Time(now));
            }
            c.last_probe_time = Some(Time(now));
            c.reason = Some(reason.to_owned());
            c.message = Some(message.to_owned());
            return;
        }
        self.0.push(JobCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_probe_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
        });
    }
}

#[cfg(test)]
mod tests;
