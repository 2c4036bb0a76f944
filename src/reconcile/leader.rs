//! Leader election with a coordination.k8s.io/v1 Lease, so that of several webhook replicas
//! exactly one reconciles (every replica serves admission).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

// The timing follows client-go's leader election
// (kubernetes/client-go `tools/leaderelection/leaderelection.go`): candidates may take a lease
// whose holder has not renewed it for LeaseDuration; the holder retries its renewal every
// RetryPeriod and gives up leading once RenewDeadline has passed without one, which
// `NewLeaderElector` requires to be shorter than LeaseDuration (and longer than
// JitterFactor 1.2 × RetryPeriod), so that it has stopped before anyone else may start. The
// values are client-go's defaults for core components (15 s, 10 s, 2 s). On shutdown the
// holder releases the lease (client-go's `ReleaseOnCancel`: holder cleared, duration 1 s), so
// another replica takes over without waiting for it to expire.

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps leading without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews, and candidates try to acquire.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// How long a former holder's reconciles may take to finish: within the lease's remaining
/// validity after the renew deadline.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// The outcome of one attempt to renew a lease this replica holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Written: the lease is ours for another [`LEASE_DURATION`].
    Renewed,
    /// Someone else holds it, or wrote it first.
    TakenOver,
    /// No answer, or an error: the lease may still be ours.
    Failed,
}

/// What the holder does after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep leading; the deadline counts from now.
    Lead,
    /// Keep leading and retry after [`RETRY_PERIOD`].
    Retry,
    /// Stop reconciling now.
    GiveUp,
}

/// Decides after an attempt made `since_renewal` after the last successful renewal.
pub fn verdict(attempt: Attempt, since_renewal: Duration) -> Verdict {
    match attempt {
        Attempt::Renewed => Verdict::Lead,
        Attempt::TakenOver => Verdict::GiveUp,
        Attempt::Failed if since_renewal + RETRY_PERIOD < RENEW_DEADLINE => Verdict::Retry,
        Attempt::Failed => Verdict::GiveUp,
    }
}

/// May `me` take or keep this lease at `now`?
pub fn may_hold(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .map(|s| SignedDuration::from_secs(i64::from(s)))
                .unwrap_or(SignedDuration::from_secs(15));
            match &spec.renew_time {
                Some(MicroTime(renewed)) => renewed
                    .checked_add(duration)
                    .map(|expiry| expiry < now)
                    .unwrap_or(true),
                None => true,
            }
        }
    }
}

/// A lease this process competes for.
pub struct LeaseLock {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    /// The lease as last written by this replica while it holds it: renewed with one
    /// request (a write that fails on a conflict), as client-go's fast path does.
    held: Option<Lease>,
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: String, identity: String) -> LeaseLock {
        LeaseLock {
            api,
            name,
            identity,
            held: None,
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let was_mine = previous.and_then(|p| p.holder_identity.as_deref()) == Some(&self.identity);
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: if was_mine {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if was_mine || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// Acquires or renews the lease; `Ok(false)` when someone else holds it (or won a race).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        if let Some(mut lease) = self.held.take() {
            lease.spec = Some(self.spec(lease.spec.as_ref(), now));
            // A conflict or any error falls through to reading the lease.
            if let Ok(written) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                self.held = Some(written);
                return Ok(true);
            }
        }
        let written = match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, now)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                if !may_hold(lease.spec.as_ref(), &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(lease.spec.as_ref(), now));
                // resourceVersion is kept: a concurrent writer makes this fail with 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.held = Some(lease);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up if this replica holds it: no holder, valid for 1 s. Call only once
    /// nothing it guards runs any more.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.held.take() else {
            return Ok(());
        };
        let now = Timestamp::now();
        let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Written by someone else since: not ours to release any more.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn holding_rules() {
        let now = Timestamp::now();
        assert!(may_hold(None, "a", now));
        assert!(may_hold(Some(&spec("a", 1)), "a", now));
        assert!(!may_hold(Some(&spec("b", 1)), "a", now));
        assert!(may_hold(Some(&spec("b", 60)), "a", now));
        assert!(may_hold(Some(&LeaseSpec::default()), "a", now));
        let released = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        assert!(
            may_hold(Some(&released), "a", now),
            "a released lease is free"
        );
    }

    #[test]
    fn timing_satisfies_client_go_rules() {
        // NewLeaderElector: leaseDuration > renewDeadline > JitterFactor (1.2) × retryPeriod.
        assert!(LEASE_DURATION > RENEW_DEADLINE);
        assert!(RENEW_DEADLINE.as_secs_f64() > 1.2 * RETRY_PERIOD.as_secs_f64());
        // A former holder's reconciles end before anyone else may take the lease.
        assert!(RENEW_DEADLINE + STOP_GRACE < LEASE_DURATION);
    }

    #[test]
    fn the_holder_gives_up_before_the_lease_expires() {
        let s = Duration::from_secs;
        assert_eq!(verdict(Attempt::Renewed, s(9)), Verdict::Lead);
        assert_eq!(verdict(Attempt::Failed, s(2)), Verdict::Retry);
        assert_eq!(verdict(Attempt::Failed, s(6)), Verdict::Retry);
        // The next retry would come after the deadline: stop now.
        assert_eq!(verdict(Attempt::Failed, s(8)), Verdict::GiveUp);
        assert_eq!(verdict(Attempt::Failed, s(10)), Verdict::GiveUp);
        // Someone else holds it: at once, whatever the time.
        assert_eq!(verdict(Attempt::TakenOver, s(0)), Verdict::GiveUp);
        // Every attempt that keeps leading is made before the deadline, which comes before
        // the lease expires for the others.
        for secs in 0..30 {
            if verdict(Attempt::Failed, s(secs)) == Verdict::Retry {
                assert!(s(secs) + RETRY_PERIOD < RENEW_DEADLINE);
            }
        }
    }
}
