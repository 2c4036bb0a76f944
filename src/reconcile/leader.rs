//! Leader election with a coordination.k8s.io/v1 Lease, so that of several webhook replicas
//! exactly one reconciles (every replica serves admission).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and others retry).
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);

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
}

impl LeaseLock {
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
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None, now)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                if !may_hold(lease.spec.as_ref(), &self.identity, now) {
                    return Ok(false);
                }
                lease.spec = Some(self.spec(lease.spec.as_ref(), now));
                // resourceVersion is kept: a concurrent writer makes this fail with 409.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
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
    }
}
