//! The Deployment controller: one ReplicaSet per version of the pod template, and
//! rollouts that move pods from the old versions to the new one.
//!
//! # One reconcile
//! 1. Claim the ReplicaSets the Deployment selects (adopting orphans, releasing strays) and
//!    split them: the "new" one is the oldest whose template equals the Deployment's
//!    ([`template`]); all others are old.
//! 2. Paused, or only resized: keep every ReplicaSet's size in proportion ([`Rollout::sync`]),
//!    no new version is started.
//! 3. Otherwise take one rollout step: RollingUpdate grows the new ReplicaSet within
//!    `maxSurge` and shrinks old ones within `maxUnavailable` ([`rollout`]); Recreate
//!    scales old ones to zero, waits for their pods to be gone, then scales the new one up.
//! 4. Write the status ([`status`]) and requeue for the progress deadline, if any.
//!
//! Every write to a ReplicaSet carries the resourceVersion it was computed from, so a
//! step taken on a stale cache is refused (409) and taken again on fresh data.
//! `kubectl rollout undo` needs nothing special here: it copies an old ReplicaSet's
//! template into the Deployment, which makes that ReplicaSet new again, with a new
//! revision ([`revision`]).

mod revision;
mod rollout;
mod status;
mod template;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sextant_api::Selector;
use sextant_events::{Event, EventType, Recorder};
use tokio_util::sync::CancellationToken;

use self::rollout::size;
use crate::context::Context;
use crate::error::retry_soon;
use crate::owners::{self, Claim, ignore_not_found};
use crate::{Error, pods};

const CONTROLLER: &str = "deployment-controller";

/// How often a Recreate rollout looks whether the old pods are gone: their deletion is
/// not among the events this controller watches.
const RECREATE_POLL: Duration = Duration::from_secs(1);

struct Ctx {
    client: kube::Client,
    replicasets: Store<ReplicaSet>,
    recorder: Recorder,
    resync: Duration,
}

pub(crate) async fn run(ctx: Context, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (replicasets, writer) = reflector::store();
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let rs_events = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client,
        replicasets,
        recorder: ctx.recorder(CONTROLLER),
        resync: ctx.config.resync,
    });
    controller
        .watches_stream(rs_events, move |rs| deployments_for(&rs, &deployments))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, retry_soon, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "deployment controller");
            }
            future::ready(())
        })
        .await;
}

/// The Deployments a ReplicaSet event concerns: its controller, or, for an orphan, every
/// Deployment that could adopt it.
fn deployments_for(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let namespace = rs.namespace().unwrap_or_default();
    if let Some(owner) = owners::controller_of(&rs.metadata) {
        return if owner.kind == "Deployment" {
            vec![ObjectRef::new(&owner.name).within(&namespace)]
        } else {
            Vec::new()
        };
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|d| selector_of(d).is_ok_and(|s| !s.is_everything() && s.matches(rs.labels())))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn selector_of(d: &Deployment) -> Result<Selector, Error> {
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid("Deployment", d.name_any(), "it has no spec"))?;
    Selector::from_label_selector(&spec.selector)
        .map_err(|e| Error::invalid("Deployment", d.name_any(), format!("spec.selector: {e}")))
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ctx.replicasets.wait_until_ready().await.is_err() {
        // The ReplicaSet watch is gone: the controller is shutting down.
        return Ok(Action::await_change());
    }
    let selector = selector_of(&d)?;
    if selector.is_everything() {
        return select_nothing(&d, &ctx).await;
    }
    let sets = claim_replicasets(&d, &selector, &ctx).await?;
    let mut r = Rollout::new(&ctx, (*d).clone(), sets);
    r.reconcile().await.map(Action::requeue)
}

/// Kubernetes refuses to act on a Deployment whose selector is empty (it would adopt every
/// ReplicaSet of the namespace): it says so and only records that it saw the spec.
async fn select_nothing(d: &Deployment, ctx: &Ctx) -> Result<Action, Error> {
    let note = "This deployment is selecting all pods. A non-empty selector is required.";
    publish(
        ctx,
        d,
        EventType::Warning,
        "SelectingAll",
        note.into(),
        None,
    )
    .await;
    let observed = d.status.as_ref().and_then(|s| s.observed_generation);
    if observed < d.metadata.generation {
        let mut updated = d.clone();
        updated
            .status
            .get_or_insert_with(DeploymentStatus::default)
            .observed_generation = d.metadata.generation;
        let api =
            Api::<Deployment>::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
        api.replace_status(&d.name_any(), &PostParams::default(), &updated)
            .await?;
    }
    Ok(Action::await_change())
}

/// The ReplicaSets `d` owns after adopting matching orphans and releasing its own that no
/// longer match (Kubernetes' `ClaimReplicaSets`).
async fn claim_replicasets(
    d: &Deployment,
    selector: &Selector,
    ctx: &Ctx,
) -> Result<Vec<ReplicaSet>, Error> {
    let namespace = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let (mut owned, mut orphans, mut strays) = (Vec::new(), Vec::new(), Vec::new());
    for rs in ctx.replicasets.state() {
        if rs.namespace().as_deref() != Some(namespace.as_str()) {
            continue;
        }
        match owners::claim(&rs.metadata, &uid, selector.matches(rs.labels())) {
            Claim::Owned => owned.push((*rs).clone()),
            Claim::Adopt => orphans.push(rs),
            Claim::Release => strays.push(rs),
            Claim::Ignore => {}
        }
    }
    let api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &namespace);
    for rs in strays {
        ignore_not_found(owners::release(&api, rs.as_ref(), &uid).await)?;
    }
    if !orphans.is_empty() && can_adopt(d, ctx).await? {
        for rs in orphans {
            let adopted = owners::adopt(&api, rs.as_ref(), owners::controller_ref(d)).await;
            if ignore_not_found(adopted)?.is_some() {
                owned.push((*rs).clone());
            }
        }
    }
    Ok(owned)
}

/// Adopting needs a fresh look at the owner: one deleted (or replaced under the same name)
/// since the cache saw it must not take ReplicaSets.
async fn can_adopt(d: &Deployment, ctx: &Ctx) -> Result<bool, Error> {
    let api = Api::<Deployment>::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let fresh = api.get_opt(&d.name_any()).await?;
    Ok(fresh.is_some_and(|f| {
        f.metadata.uid == d.metadata.uid && f.metadata.deletion_timestamp.is_none()
    }))
}

/// Which of the Deployment's ReplicaSets a step acts on.
#[derive(Clone, Copy)]
enum Slot {
    New,
    Old(usize),
}

/// One reconcile of one Deployment: a working copy of it, whose status collects what the
/// steps found, and its ReplicaSets, replaced by the API's answer after each write.
struct Rollout<'a> {
    ctx: &'a Ctx,
    d: Deployment,
    /// The status as stored: written only when the computed one differs.
    stored: Option<DeploymentStatus>,
    new: Option<ReplicaSet>,
    old: Vec<ReplicaSet>,
    now: jiff::Timestamp,
}

impl<'a> Rollout<'a> {
    fn new(ctx: &'a Ctx, d: Deployment, mut sets: Vec<ReplicaSet>) -> Self {
        let order = rollout::by_age(&sets);
        let wanted = d.spec.as_ref().map(|s| &s.template);
        let new = order
            .into_iter()
            .find(|i| {
                let t = sets[*i].spec.as_ref().and_then(|s| s.template.as_ref());
                matches!((t, wanted), (Some(t), Some(w)) if template::equal_ignore_hash(t, w))
            })
            .map(|i| sets.remove(i));
        Rollout {
            ctx,
            stored: d.status.clone(),
            d,
            new,
            old: sets,
            now: jiff::Timestamp::now(),
        }
    }

    fn all(&self) -> Vec<&ReplicaSet> {
        self.old.iter().chain(self.new.as_ref()).collect()
    }

    fn slot(&mut self, slot: Slot) -> Option<&mut ReplicaSet> {
        match slot {
            Slot::New => self.new.as_mut(),
            Slot::Old(i) => self.old.get_mut(i),
        }
    }

    fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        )
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        )
    }

    fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(DeploymentStatus::default)
    }

    /// Steps 2–4 of the module docs; how soon to look again.
    async fn reconcile(&mut self) -> Result<Duration, Error> {
        if self.d.metadata.deletion_timestamp.is_some() {
            self.find_new(false).await?;
            return self.finish(false).await;
        }
        let mut s = self.d.status.clone().unwrap_or_default();
        status::pause_condition(&self.d, &mut s, self.now);
        self.d.status = Some(s);
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || rollout::is_scaling_event(&self.d, self.new.as_ref(), &self.old) {
            return self.sync().await;
        }
        if rollout::is_rolling(&self.d) {
            self.rolling().await
        } else {
            self.recreate().await
        }
    }

    /// Paused or resized: every ReplicaSet keeps or gets its share of `replicas`, no
    /// version is started (Kubernetes' `sync`).
    async fn sync(&mut self) -> Result<Duration, Error> {
        self.find_new(false).await?;
        self.scale().await?;
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup().await?;
        }
        self.finish(false).await
    }

    /// One RollingUpdate step: grow the new ReplicaSet, else shrink old ones, else tidy up.
    async fn rolling(&mut self) -> Result<Duration, Error> {
        self.find_new(true).await?;
        if self.grow_new().await? || self.shrink_old().await? {
            return self.finish(true).await;
        }
        if status::is_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup().await?;
        }
        self.finish(true).await
    }

    /// One Recreate step: old ReplicaSets to zero, then wait until none of their pods is
    /// left, then the new ReplicaSet to full size.
    async fn recreate(&mut self) -> Result<Duration, Error> {
        self.find_new(false).await?;
        let mut scaled = false;
        for i in 0..self.old.len() {
            if size(&self.old[i]) > 0 {
                scaled |= self.scale_and_record(Slot::Old(i), 0).await?;
            }
        }
        if scaled {
            return self.finish(true).await;
        }
        if self.old_pods_running().await? {
            let next = self.finish(true).await?;
            return Ok(next.min(RECREATE_POLL));
        }
        if self.new.is_none() {
            self.find_new(true).await?;
        }
        self.scale_and_record(Slot::New, rollout::desired(&self.d))
            .await?;
        if status::is_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup().await?;
        }
        self.finish(true).await
    }

    /// Finds the new ReplicaSet's revision and brings its annotations up to date, or, when
    /// there is none and `create`, creates it (Kubernetes' `getNewReplicaSet`).
    async fn find_new(&mut self, create: bool) -> Result<(), Error> {
        let next_revision = revision::max_revision(&self.old) + 1;
        let surge = rollout::max_surge(&self.d)?;
        let Some(mut rs) = self.new.clone() else {
            return if create {
                self.create_new(next_revision, surge).await
            } else {
                Ok(())
            };
        };
        let changed =
            revision::set_new_replicaset_annotations(&self.d, &mut rs, next_revision, true, surge);
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let spec = rs.spec.get_or_insert_with(Default::default);
        if changed || spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
            spec.min_ready_seconds = min_ready;
            rs = self
                .replicasets()
                .replace(&rs.name_any(), &PostParams::default(), &rs)
                .await?;
        }
        let revision = revision::revision(&rs.metadata);
        let name = rs.name_any();
        self.new = Some(rs);
        self.set_revision(revision).await?;
        let now = self.now;
        if status::progress_deadline(&self.d).is_some()
            && status::get(self.status_mut(), status::PROGRESSING).is_none()
        {
            let found = status::condition(
                status::PROGRESSING,
                "True",
                status::FOUND_NEW_RS,
                format!("Found new replica set {name:?}"),
                now,
            );
            status::set(self.status_mut(), found);
        }
        Ok(())
    }

    async fn create_new(&mut self, revision: i64, surge: i32) -> Result<(), Error> {
        let spec = self.d.spec.clone().unwrap_or_default();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template::hash(&spec.template, collisions);
        let mut rs = template::new_replicaset(&self.d, &hash, 0);
        let replicas = {
            let all: Vec<&ReplicaSet> = self.old.iter().chain([&rs]).collect();
            rollout::new_replicaset_size(&self.d, &all, &rs)?
        };
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        revision::set_new_replicaset_annotations(&self.d, &mut rs, revision, false, surge);
        let name = rs.name_any();
        let api = self.replicasets();
        let now = self.now;
        match api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if replicas > 0 {
                    let note = format!("Scaled up replica set {name} from 0 to {replicas}");
                    let related = Some(&created);
                    publish(
                        self.ctx,
                        &self.d,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        note,
                        related,
                    )
                    .await;
                }
                self.new = Some(created);
                self.set_revision(revision).await?;
                if status::progress_deadline(&self.d).is_some() {
                    let message = format!("Created new replica set {name:?}");
                    let c = status::condition(
                        status::PROGRESSING,
                        "True",
                        status::NEW_RS_CREATED,
                        message,
                        now,
                    );
                    status::set(self.status_mut(), c);
                }
                Ok(())
            }
            Err(kube::Error::Api(refused)) if refused.code == 409 => {
                // Ours from an earlier step the cache has not shown yet, or a hash collision.
                let existing = api.get(&name).await?;
                let ours = owners::controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| template::equal_ignore_hash(t, &spec.template));
                if ours && same {
                    self.new = Some(existing);
                    return self.set_revision(revision).await;
                }
                let count = self.status_mut().collision_count.get_or_insert(0);
                *count = count.saturating_add(1);
                let s = self.d.status.clone().unwrap_or_default();
                self.write_status(s).await?;
                // Retried soon, under the name the new collision count gives.
                Err(Error::Api(kube::Error::Api(refused)))
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {name:?}: {e}");
                if status::progress_deadline(&self.d).is_some() {
                    let c = status::condition(
                        status::PROGRESSING,
                        "False",
                        status::RS_CREATE_ERROR,
                        message.clone(),
                        now,
                    );
                    status::set(self.status_mut(), c);
                    let s = self.d.status.clone().unwrap_or_default();
                    if Some(&s) != self.stored.as_ref() {
                        self.write_status(s).await?;
                    }
                }
                publish(
                    self.ctx,
                    &self.d,
                    EventType::Warning,
                    "FailedCreate",
                    message,
                    None,
                )
                .await;
                Err(e.into())
            }
        }
    }

    /// Grows the new ReplicaSet within `maxSurge` (or shrinks it to `replicas`).
    async fn grow_new(&mut self) -> Result<bool, Error> {
        let Some(new) = self.new.as_ref() else {
            return Ok(false);
        };
        let replicas = rollout::desired(&self.d);
        let target = match size(new).cmp(&replicas) {
            std::cmp::Ordering::Equal => return Ok(false),
            std::cmp::Ordering::Greater => replicas,
            std::cmp::Ordering::Less => rollout::new_replicaset_size(&self.d, &self.all(), new)?,
        };
        self.scale_and_record(Slot::New, target).await
    }

    /// Shrinks old ReplicaSets as far as `maxUnavailable` allows, unavailable pods first.
    async fn shrink_old(&mut self) -> Result<bool, Error> {
        if self.old.iter().map(size).sum::<i32>() == 0 {
            return Ok(false);
        }
        let budget = rollout::max_scale_down(&self.d, &self.all(), self.new.as_ref())?;
        if budget <= 0 {
            return Ok(false);
        }
        let mut scaled = false;
        for (i, target) in rollout::shrink_unhealthy(&self.old, budget) {
            scaled |= self.scale_and_record(Slot::Old(i), target).await?;
        }
        let plan = rollout::shrink_old(&self.d, &self.all(), &self.old)?;
        for (i, target) in plan {
            scaled |= self.scale_and_record(Slot::Old(i), target).await?;
        }
        Ok(scaled)
    }

    /// Kubernetes' `scale`: the one active ReplicaSet follows `replicas`; a saturated new one
    /// lets the old ones go; mid-rollout, a resize is shared in proportion.
    async fn scale(&mut self) -> Result<(), Error> {
        let replicas = rollout::desired(&self.d);
        let single =
            rollout::active_or_latest(self.new.as_ref(), &self.old).map(ResourceExt::name_any);
        if let Some(name) = single {
            let slot = self.slot_named(&name);
            self.scale_and_record(slot, replicas).await?;
            return Ok(());
        }
        if rollout::is_saturated(&self.d, self.new.as_ref()) {
            for i in 0..self.old.len() {
                if size(&self.old[i]) > 0 {
                    self.scale_and_record(Slot::Old(i), 0).await?;
                }
            }
            return Ok(());
        }
        if rollout::is_rolling(&self.d) {
            let active: Vec<&ReplicaSet> =
                self.all().into_iter().filter(|rs| size(rs) > 0).collect();
            for (name, target) in rollout::proportional_sizes(&self.d, &active)? {
                let slot = self.slot_named(&name);
                self.scale_replicaset(slot, target).await?;
            }
        }
        Ok(())
    }

    fn slot_named(&self, name: &str) -> Slot {
        match self.old.iter().position(|rs| rs.name_any() == name) {
            Some(i) => Slot::Old(i),
            None => Slot::New,
        }
    }

    /// Scales one ReplicaSet when its size differs; whether it did.
    async fn scale_and_record(&mut self, slot: Slot, target: i32) -> Result<bool, Error> {
        let Some(rs) = self.slot(slot) else {
            return Ok(false);
        };
        if size(rs) == target {
            return Ok(false);
        }
        self.scale_replicaset(slot, target).await
    }

    /// Sets one ReplicaSet's size and replica annotations, with its resourceVersion, and
    /// records `ScalingReplicaSet`; whether the size changed.
    async fn scale_replicaset(&mut self, slot: Slot, target: i32) -> Result<bool, Error> {
        let desired = rollout::desired(&self.d);
        let max = desired + rollout::max_surge(&self.d)?;
        let Some(rs) = self.slot(slot).cloned() else {
            return Ok(false);
        };
        let from = size(&rs);
        if from == target && !revision::replicas_annotations_needed(&rs, desired, max) {
            return Ok(false);
        }
        let mut scaled = rs;
        scaled.spec.get_or_insert_with(Default::default).replicas = Some(target);
        revision::set_replicas_annotations(&mut scaled, desired, max);
        let name = scaled.name_any();
        let updated = self
            .replicasets()
            .replace(&name, &PostParams::default(), &scaled)
            .await?;
        if from != target {
            let direction = if target > from { "up" } else { "down" };
            let note = format!("Scaled {direction} replica set {name} from {from} to {target}");
            publish(
                self.ctx,
                &self.d,
                EventType::Normal,
                "ScalingReplicaSet",
                note,
                Some(&updated),
            )
            .await;
        }
        if let Some(rs) = self.slot(slot) {
            *rs = updated;
        }
        Ok(from != target)
    }

    /// Whether pods of old ReplicaSets still exist: Recreate starts new pods only after.
    /// Terminating pods count (their ReplicaSets no longer do), finished ones do not.
    async fn old_pods_running(&self) -> Result<bool, Error> {
        if self
            .old
            .iter()
            .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return Ok(true);
        }
        if self.old.is_empty() {
            return Ok(false);
        }
        let old: HashSet<&str> = self
            .old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let selector = selector_of(&self.d)?.to_string();
        let api = Api::<Pod>::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        );
        let pods = api.list(&ListParams::default().labels(&selector)).await?;
        Ok(pods.items.iter().any(|p| {
            owners::controller_of(&p.metadata).is_some_and(|r| old.contains(r.uid.as_str()))
                && !pods::is_terminal(p)
        }))
    }

    /// Deletes the oldest old ReplicaSets past `revisionHistoryLimit`, if they are empty
    /// and settled (Kubernetes' `cleanupDeployment`).
    async fn cleanup(&mut self) -> Result<(), Error> {
        let limit = self.d.spec.as_ref().and_then(|s| s.revision_history_limit);
        let Some(limit) = limit.and_then(|l| usize::try_from(l).ok()) else {
            return Ok(());
        };
        let mut alive: Vec<&ReplicaSet> = self
            .old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if alive.len() <= limit {
            return Ok(());
        }
        let excess = alive.len() - limit;
        alive.sort_by_key(|rs| {
            (
                revision::revision(&rs.metadata),
                rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                rs.name_any(),
            )
        });
        let api = self.replicasets();
        for rs in alive.into_iter().take(excess) {
            let settled = rs.status.as_ref().is_some_and(|s| {
                s.replicas == 0 && s.observed_generation >= rs.metadata.generation
            });
            if size(rs) != 0 || !settled {
                continue;
            }
            ignore_not_found(
                api.delete(&rs.name_any(), &DeleteParams::default())
                    .await
                    .map_err(Error::from),
            )?;
        }
        Ok(())
    }

    /// Sets the Deployment's revision annotation to the new ReplicaSet's. Kubernetes writes it
    /// with the status; here `/status` changes status only, so it is a metadata patch,
    /// guarded by the resourceVersion.
    async fn set_revision(&mut self, revision: i64) -> Result<(), Error> {
        let value = revision.to_string();
        let current = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(revision::REVISION));
        if current == Some(&value) {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "resourceVersion": self.d.metadata.resource_version,
            "annotations": {revision::REVISION: value},
        }});
        let updated = self
            .deployments()
            .patch(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        self.d.metadata.annotations = updated.metadata.annotations;
        if updated.metadata.generation == self.d.metadata.generation {
            // Otherwise the spec moved on: keep the old version so the status write is
            // refused and the next reconcile works on the new spec.
            self.d.metadata.resource_version = updated.metadata.resource_version;
        }
        Ok(())
    }

    /// Computes the status; with `progress`, the Progressing and ReplicaFailure conditions
    /// too; writes it when it changed, and says when to look again.
    async fn finish(&mut self, progress: bool) -> Result<Duration, Error> {
        let max_unavailable = rollout::max_unavailable(&self.d)?;
        let all = self.all();
        let new = self.new.as_ref();
        let mut s = status::calculate(&self.d, &all, new, max_unavailable, self.now);
        if progress {
            let name = new.map(ResourceExt::name_any);
            status::progress(&self.d, &mut s, name.as_deref(), self.now);
            status::replica_failure(&mut s, new, &all);
        }
        let next = status::recheck_after(&self.d, &s, self.now)
            .map_or(self.ctx.resync, |t| t.min(self.ctx.resync));
        if Some(&s) != self.stored.as_ref() {
            self.write_status(s).await?;
        }
        Ok(next)
    }

    async fn write_status(&mut self, s: DeploymentStatus) -> Result<(), Error> {
        let mut d = self.d.clone();
        d.status = Some(s);
        self.d = self
            .deployments()
            .replace_status(&d.name_any(), &PostParams::default(), &d)
            .await?;
        self.stored.clone_from(&self.d.status);
        Ok(())
    }
}

/// Records an Event on `d`, about `rs` at the version the step left it in. That reference
/// goes in the Event's `related` field, which also keeps kube's Recorder from folding two
/// scalings into one series (it tells Events apart by reason and objects, not by message).
async fn publish(
    ctx: &Ctx,
    d: &Deployment,
    type_: EventType,
    reason: &str,
    note: String,
    rs: Option<&ReplicaSet>,
) {
    let related = rs.map(|rs| {
        let mut r = rs.object_ref(&());
        r.resource_version = rs.resource_version();
        r
    });
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&event, &d.object_ref(&())).await {
        tracing::debug!(error = %e, "could not record an Event");
    }
}
