//! Leader election through a `coordination.k8s.io` Lease, as kube-scheduler and
//! kube-controller-manager do it: of all the processes that run the same component, the one
//! named in the Lease's `holderIdentity` acts, and renews the Lease while it does. Another
//! takes the Lease over once it has gone unrenewed for `leaseDurationSeconds`.
//!
//! Every write is a compare-and-swap on the Lease's `resourceVersion`, so two candidates
//! can never both believe they won. A leader that cannot renew within its renew deadline
//! stops acting *before* its Lease can expire, so two leaders never overlap.
//!
//! kube-rs has no leader election of its own; this is the client-go `leaderelection`
//! algorithm over kube-rs's typed `Api<Lease>`.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the leader-election Lease {namespace}/{name} cannot be read or written: {source}; check that the API server is reachable and that this identity may write Leases"
    )]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Timing of an election; client-go's defaults are 15 s / 10 s / 2 s.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a Lease holds after its last renewal: the longest a dead leader blocks others.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops acting (must be < `lease_duration`).
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and leaders renew.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// A timing scaled from one lease duration, keeping client-go's proportions.
    pub fn with_lease_duration(lease: Duration) -> Self {
        let lease = lease.max(Duration::from_secs(2));
        Timing {
            lease_duration: lease,
            renew_deadline: lease.mul_f64(0.7),
            retry_period: lease.mul_f64(0.2),
        }
    }
}

/// One candidate for one Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
}

impl Elector {
    /// `identity` must be unique among candidates (kube-scheduler uses `hostname_uuid`).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: impl Into<String>,
        timing: Timing,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.into(),
            timing,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Runs `lead` each time this candidate becomes leader, until `shutdown`. The token
    /// `lead` receives is cancelled when leadership is lost or on shutdown; `run` waits for
    /// `lead` to return before it campaigns again, and releases the Lease on shutdown so
    /// that a successor need not wait for it to expire.
    pub async fn run<F, Fut>(&self, shutdown: CancellationToken, mut lead: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            if !self.acquire(&shutdown).await {
                return;
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            let term = shutdown.child_token();
            let acting = lead(term.clone());
            tokio::pin!(acting);
            let lost = tokio::select! {
                () = &mut acting => None,
                lost = self.renew_until_lost(&term) => Some(lost),
            };
            term.cancel();
            match lost {
                // Leadership lost: stop acting before the Lease can pass to another.
                Some(true) => {
                    acting.await;
                    tracing::warn!(lease = %self.name, identity = %self.identity, "lost leadership; stopped acting");
                }
                // Shutdown: stop acting, then hand the Lease over.
                Some(false) => {
                    acting.await;
                    self.release().await;
                    return;
                }
                // The component ended on its own: hand the Lease over and campaign again,
                // so that it restarts here or elsewhere.
                None => {
                    tracing::error!(lease = %self.name, identity = %self.identity, "stopped acting on its own; campaigning again");
                    self.release().await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(self.timing.retry_period).await;
                }
            }
        }
    }

    /// Campaigns until this candidate holds the Lease (true) or shutdown (false).
    async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
        }
    }

    /// Renews every retry period; returns true when leadership is lost (a renewal failed
    /// for longer than the renew deadline, or another holder took the Lease), false when
    /// `term` is cancelled.
    async fn renew_until_lost(&self, term: &CancellationToken) -> bool {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = term.cancelled() => return false,
                () = tokio::time::sleep(self.timing.retry_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return true,
                Err(e) => tracing::warn!(error = %e, "cannot renew the leader Lease"),
            }
            if last_renewed.elapsed() >= self.timing.renew_deadline {
                return true;
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: Ok(true) when this candidate holds the
    /// Lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let lease_secs = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(lease_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() && !expired(spec, now) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(lease_secs);
        // `replace` carries the resourceVersion we read: a concurrent writer makes it a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Hands the Lease back (holder cleared) so that another candidate takes over at once;
    /// given up after a renew deadline (the API may be unreachable), as the Lease then
    /// expires on its own.
    async fn release(&self) {
        if tokio::time::timeout(self.timing.renew_deadline, self.try_release())
            .await
            .is_err()
        {
            tracing::warn!(lease = %self.name, "cannot release the leader Lease in time; it expires on its own");
        }
    }

    async fn try_release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.name, identity = %self.identity, "released leadership")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot release the leader Lease; it expires on its own")
            }
        }
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Lease {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }
}

/// A Lease expires `leaseDurationSeconds` after its last renewal (or acquisition).
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = spec.renew_time.clone().or(spec.acquire_time.clone()) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed + jiff::SignedDuration::from_secs(secs) < now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("a".into()),
            renew_time: Some(MicroTime(
                Timestamp::now() - jiff::SignedDuration::from_secs(renewed_secs_ago),
            )),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration_since_renewal() {
        let now = Timestamp::now();
        assert!(!expired(&spec(3, 10), now));
        assert!(expired(&spec(11, 10), now));
        assert!(expired(&LeaseSpec::default(), now));
    }

    #[test]
    fn timing_keeps_the_renew_deadline_inside_the_lease() {
        let t = Timing::with_lease_duration(Duration::from_secs(4));
        assert!(t.renew_deadline < t.lease_duration);
        assert!(t.retry_period < t.renew_deadline);
    }
}
