//! Leader election with a coordination.k8s.io/v1 Lease, so that of several webhook replicas
//! exactly one reconciles (every replica serves admission).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
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
//
// "Not renewed for LeaseDuration" is judged as client-go judges it, on this replica's clock
// only: `tryAcquireOrRenew` keeps the record it last saw change and when it saw it
// (`setObservedRecord`: `observedTime = clock.Now()`, called when the record read differs from
// the one observed), and `isLeaseValid` is `observedTime + LeaseDurationSeconds` after now. The
// holder's renewTime is written for people to read, never compared with the local clock, so a
// skewed clock on either side neither steals a live lease nor keeps a dead one.

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

/// The lease record as this replica last saw it change, and when, by its own clock
/// (client-go's `observedRecord` and `observedTime`).
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub record: LeaseSpec,
    pub at: Instant,
}

impl Observation {
    /// The observation after reading `current` at `now`: a record that differs from the one
    /// observed (any field: holder, renewTime, ...) is new as of `now`; the same record keeps
    /// the time it was first seen, however long ago the holder says it renewed.
    pub fn after_reading(previous: Option<Observation>, current: &LeaseSpec, now: Instant) -> Self {
        match previous {
            Some(seen) if seen.record == *current => seen,
            _ => Observation {
                record: current.clone(),
                at: now,
            },
        }
    }

    /// client-go's `isLeaseValid`: observed less than the record's leaseDurationSeconds ago
    /// (a record without one is valid for 0 s, as `LeaseSpecToLeaderElectionRecord` in
    /// `tools/leaderelection/resourcelock/leaselock.go` reads it).
    pub fn is_valid(&self, now: Instant) -> bool {
        let seconds = self.record.lease_duration_seconds.unwrap_or(0);
        let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        self.at.checked_add(duration).is_none_or(|end| end > now)
    }

    /// Whether `me` must leave the lease alone at `now`: someone else holds it and it is still
    /// valid by this replica's observation.
    pub fn held_by_another(&self, me: &str, now: Instant) -> bool {
        match self.record.holder_identity.as_deref() {
            None | Some("") => false,
            Some(h) if h == me => false,
            Some(_) => self.is_valid(now),
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
    /// The record as last seen changing (read or written), and when.
    observed: Option<Observation>,
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: String, identity: String) -> LeaseLock {
        LeaseLock {
            api,
            name,
            identity,
            held: None,
            observed: None,
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

    /// Keeps what was written as the observed record, as of `now`.
    fn wrote(&mut self, lease: Lease, now: Instant) {
        self.observed = Some(Observation {
            record: lease.spec.clone().unwrap_or_default(),
            at: now,
        });
        self.held = Some(lease);
    }

    /// Acquires or renews the lease; `Ok(false)` when someone else holds it (or won a race).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let (now, wall) = (Instant::now(), Timestamp::now());
        let still_valid = self.observed.as_ref().is_some_and(|o| o.is_valid(now));
        // The fast path, while the lease observed as ours is valid (client-go step 1).
        if let Some(mut lease) = self.held.take().filter(|_| still_valid) {
            lease.spec = Some(self.spec(lease.spec.as_ref(), wall));
            // A conflict or any error falls through to reading the lease.
            if let Ok(written) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                self.wrote(written, now);
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
                    spec: Some(self.spec(None, wall)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let current = lease.spec.clone().unwrap_or_default();
                let observed = Observation::after_reading(self.observed.take(), &current, now);
                let taken = observed.held_by_another(&self.identity, now);
                self.observed = Some(observed);
                if taken {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(Some(&current), wall));
                // resourceVersion is kept: a concurrent writer makes this fail with 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.wrote(lease, now);
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
            Ok(released) => {
                self.wrote(released, Instant::now());
                self.held = None;
                Ok(())
            }
            // Written by someone else since: not ours to release any more.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        }
    }

    /// Reads `records` one after another, `step` apart, as a candidate does.
    fn read_all(records: &[LeaseSpec], start: Instant, step: Duration) -> Observation {
        let mut observed = None;
        for (i, r) in records.iter().enumerate() {
            let now = start + step * u32::try_from(i).unwrap();
            observed = Some(Observation::after_reading(observed, r, now));
        }
        observed.unwrap()
    }

    #[test]
    fn a_lease_is_judged_by_when_it_was_seen_to_change_not_by_its_renew_time() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // The holder's clock is an hour behind ours: its renewTime always looks expired,
        // yet it renews every 2 s, so the lease is live.
        let behind = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(1);
        let renewals: Vec<LeaseSpec> = (0..5)
            .map(|i| {
                spec(
                    "b",
                    behind + k8s_openapi::jiff::SignedDuration::from_secs(2 * i),
                )
            })
            .collect();
        let seen = read_all(&renewals, t0, s(2));
        assert_eq!(
            seen.at,
            t0 + s(8),
            "each renewal is a change, seen when read"
        );
        assert!(seen.held_by_another("a", t0 + s(8)));
        assert!(
            seen.held_by_another("a", t0 + s(22)),
            "valid 15 s after the last change"
        );
        assert!(!seen.held_by_another("a", t0 + s(23)), "then free");

        // The holder's clock is an hour ahead: its renewTime looks fresh for an hour, but it
        // stopped renewing; the lease is free 15 s after the record last changed.
        let ahead = spec(
            "b",
            Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(1),
        );
        let same_record = vec![ahead.clone(); 9];
        let seen = read_all(&same_record, t0, s(2));
        assert_eq!(
            seen.at, t0,
            "an unchanged record keeps the time it was first seen"
        );
        assert!(seen.held_by_another("a", t0 + s(14)));
        assert!(!seen.held_by_another("a", t0 + s(16)));
    }

    #[test]
    fn holding_rules() {
        let t0 = Instant::now();
        let now = Timestamp::now();
        let seen = |r: &LeaseSpec| Observation::after_reading(None, r, t0);
        // Ours, or nobody's: free to write.
        assert!(!seen(&spec("a", now)).held_by_another("a", t0));
        assert!(!seen(&LeaseSpec::default()).held_by_another("a", t0));
        let released = LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        assert!(
            !seen(&released).held_by_another("a", t0),
            "a released lease is free at once"
        );
        // Someone else's, just seen: not before its duration has passed without a change.
        assert!(seen(&spec("b", now)).held_by_another("a", t0));
        // A record without a duration is valid for 0 s (client-go reads it as 0).
        let no_duration = LeaseSpec {
            lease_duration_seconds: None,
            ..spec("b", now)
        };
        assert!(!seen(&no_duration).held_by_another("a", t0));
        // Another holder taking over is a change: the clock starts again.
        let before = Observation::after_reading(None, &spec("b", now), t0);
        let after =
            Observation::after_reading(Some(before), &spec("c", now), t0 + Duration::from_secs(20));
        assert!(after.held_by_another("a", t0 + Duration::from_secs(30)));
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
