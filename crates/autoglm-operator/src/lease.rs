//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's
//! leaderelection does it: a candidate takes the lease when nobody holds it,
//! or when its holder has not renewed it for a whole lease duration as seen
//! by this candidate's own clock (so clock skew between machines does not
//! matter); the leader renews it well inside that duration, and every write
//! carries the resourceVersion it read, so two candidates never both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Who competes for which lease, and how fast.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease object's name.
    pub name: String,
    /// This candidate, unique among them (host name and process id).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the leader renews and a candidate retries: a third of the duration.
    pub fn period(&self) -> Duration {
        self.duration / 3
    }
}

/// What a candidate does about the lease it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write itself in as holder.
    Take,
    /// It holds the lease: write a fresh renew time.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// The decision for a lease whose holder is `holder`, unchanged for `unchanged_for`.
pub fn decide(
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    duration: Duration,
) -> Decision {
    match holder {
        None | Some("") => Decision::Take,
        Some(h) if h == me => Decision::Renew,
        Some(_) if unchanged_for >= duration => Decision::Take,
        Some(_) => Decision::Wait,
    }
}

/// A lease's holder and last renewal: what must change for it to be alive.
type Record = (Option<String>, Option<MicroTime>);

/// One candidate's view of the lease over time.
pub struct Candidate {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The holder and renew time last seen, and when this candidate first saw them.
    seen: Option<(Record, Instant)>,
}

impl Candidate {
    /// A candidate for the lease in `api`'s namespace.
    pub fn new(api: Api<Lease>, config: LeaseConfig) -> Candidate {
        Candidate {
            api,
            config,
            seen: None,
        }
    }

    /// Tries once to take or renew the lease; true when this candidate holds it now.
    pub async fn try_hold(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = self.config.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conflict_is_loss(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let record: Record = (spec.holder_identity.clone(), spec.renew_time.clone());
        let unchanged_for = match &self.seen {
            Some((seen, since)) if *seen == record => since.elapsed(),
            _ => {
                self.seen = Some((record.clone(), Instant::now()));
                Duration::ZERO
            }
        };
        let their_duration = spec
            .lease_duration_seconds
            .map_or(self.config.duration, |s| {
                Duration::from_secs(s.max(1) as u64)
            });
        match decide(
            record.0.as_deref(),
            &self.config.identity,
            unchanged_for,
            their_duration,
        ) {
            Decision::Wait => return Ok(false),
            Decision::Take => {
                spec.holder_identity = Some(self.config.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            Decision::Renew => {}
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(seconds);
        // `replace` sends the resourceVersion read above: a concurrent writer makes it fail.
        conflict_is_loss(
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election"),
            }
            tokio::time::sleep(self.config.period()).await;
        }
    }

    /// Renews the lease until a renewal has failed for longer than the
    /// lease lasts; then another candidate may hold it, so leadership is lost.
    pub async fn keep(&mut self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.period()).await;
            match self.try_hold().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return,
                Err(error) => tracing::warn!(%error, "renewing the leader lease"),
            }
            if renewed.elapsed() >= self.config.duration {
                return;
            }
        }
    }

    /// Gives the lease up on a clean exit, so the next leader need not wait it out.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.config.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(error) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "releasing the leader lease");
        }
    }
}

/// A write refused for a conflict means another candidate got there first.
fn conflict_is_loss(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn a_free_lease_is_taken_and_ones_own_renewed() {
        assert_eq!(decide(None, "a", Duration::ZERO, LEASE), Decision::Take);
        assert_eq!(decide(Some(""), "a", Duration::ZERO, LEASE), Decision::Take);
        assert_eq!(
            decide(Some("a"), "a", Duration::ZERO, LEASE),
            Decision::Renew
        );
    }

    #[test]
    fn anothers_lease_is_taken_only_after_a_whole_duration_without_renewal() {
        assert_eq!(
            decide(Some("b"), "a", Duration::from_secs(14), LEASE),
            Decision::Wait
        );
        assert_eq!(decide(Some("b"), "a", LEASE, LEASE), Decision::Take);
    }
}
