//! Rate limits: token buckets per API key and per tenant, one for requests
//! per second (burst = the rate) and one for tokens per minute (burst = a
//! minute's worth). A request is admitted when every bucket that applies has
//! room; its tokens are charged once the answer says how many it used, so
//! a bucket may go below zero and then refuses until it refills.

use parking_lot::Mutex;
use std::time::Instant;

use autoglm_core::security::RateLimit;
use foldhash::HashMap;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: f64, per_second: f64, now: Instant) -> Bucket {
        Bucket {
            capacity,
            per_second,
            level: capacity,
            last: now,
        }
    }

    /// Adds what accrued since the last refill. Requests read their clocks
    /// at different moments and may come out of order: an earlier `now`
    /// adds nothing and does not move the bucket back in time.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * self.per_second).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// Seconds until `need` is available.
    fn wait_for(&self, need: f64) -> f64 {
        ((need - self.level) / self.per_second).max(0.0)
    }
}

/// The buckets of one key or tenant.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    limit: RateLimit,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Buckets {
    fn new(limit: RateLimit, now: Instant) -> Buckets {
        Buckets {
            limit,
            requests: limit
                .requests_per_second
                .map(|r| Bucket::new(f64::from(r), f64::from(r), now)),
            tokens: limit
                .tokens_per_minute
                .map(|t| Bucket::new(f64::from(t), f64::from(t) / 60.0, now)),
        }
    }

    /// Seconds until a request fits, or 0 when it fits now.
    fn wait(&mut self, now: Instant) -> f64 {
        let mut wait: f64 = 0.0;
        if let Some(b) = &mut self.requests {
            b.refill(now);
            wait = wait.max(b.wait_for(1.0));
        }
        if let Some(b) = &mut self.tokens {
            b.refill(now);
            // Any room at all admits a request; what it uses is charged after.
            if b.level <= 0.0 {
                wait = wait.max(b.wait_for(1.0));
            }
        }
        wait
    }
}

/// A bucket level as a header value: whole units, never negative.
fn whole(level: f64) -> u64 {
    level.max(0.0).floor() as u64
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The API key's.
    Key,
    /// The tenant's.
    Tenant,
}

impl Scope {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Tenant => "tenant",
        }
    }
}

/// The tightest limits that apply, as the `x-ratelimit-*` header fields
/// tell a client: each a limit and what is left of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remaining {
    /// Requests per second.
    pub requests: Option<(u64, u64)>,
    /// Tokens per minute.
    pub tokens: Option<(u64, u64)>,
}

impl Remaining {
    /// Its header fields, their numbers written into `digits`.
    pub fn fields<'a>(
        &self,
        digits: &'a mut [itoa::Buffer; 4],
    ) -> impl Iterator<Item = (&'static str, &'a str)> + use<'a> {
        let [a, b, c, d] = digits;
        let requests = self.requests.map(|(limit, left)| {
            [
                ("x-ratelimit-limit-requests", a.format(limit)),
                ("x-ratelimit-remaining-requests", b.format(left)),
            ]
        });
        let tokens = self.tokens.map(|(limit, left)| {
            [
                ("x-ratelimit-limit-tokens", c.format(limit)),
                ("x-ratelimit-remaining-tokens", d.format(left)),
            ]
        });
        requests.into_iter().chain(tokens).flatten()
    }
}

/// Whether a request may pass, and the limits' state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The scope that refused it, and in how many seconds to retry.
    pub refused: Option<(Scope, u64)>,
    /// The rate-limit header fields' values.
    pub remaining: Remaining,
}

/// Every key's and tenant's buckets.
#[derive(Debug, Default)]
pub struct Limiter {
    keys: Mutex<HashMap<String, Buckets>>,
    tenants: Mutex<HashMap<String, Buckets>>,
}

fn entry<'a>(
    map: &'a mut HashMap<String, Buckets>,
    id: &str,
    limit: RateLimit,
    now: Instant,
) -> &'a mut Buckets {
    if !map.contains_key(id) {
        map.insert(id.to_owned(), Buckets::new(limit, now));
    }
    let b = map.get_mut(id).expect("inserted above");
    if b.limit != limit {
        *b = Buckets::new(limit, now);
    }
    b
}

impl Limiter {
    /// Admits (and counts) a request of `key` in `tenant`, or says when to retry.
    pub fn admit(
        &self,
        key: (&str, Option<RateLimit>),
        tenant: (&str, Option<RateLimit>),
        now: Instant,
    ) -> Verdict {
        let mut keys = self.keys.lock();
        let mut tenants = self.tenants.lock();
        let mut key_b = key.1.map(|l| entry(&mut keys, key.0, l, now));
        let mut tenant_b = tenant.1.map(|l| entry(&mut tenants, tenant.0, l, now));
        let key_wait = key_b.as_mut().map_or(0.0, |b| b.wait(now));
        let tenant_wait = tenant_b.as_mut().map_or(0.0, |b| b.wait(now));
        let refused = if key_wait > 0.0 {
            Some((Scope::Key, key_wait.ceil() as u64))
        } else if tenant_wait > 0.0 {
            Some((Scope::Tenant, tenant_wait.ceil() as u64))
        } else {
            for b in [key_b.as_mut(), tenant_b.as_mut()].into_iter().flatten() {
                if let Some(r) = &mut b.requests {
                    r.level -= 1.0;
                }
            }
            None
        };
        let tightest = |pick: fn(&Buckets) -> Option<Bucket>| {
            [key_b.as_deref(), tenant_b.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(pick)
                .min_by(|a, b| a.level.total_cmp(&b.level))
        };
        let state = |b: Bucket| (whole(b.capacity), whole(b.level));
        let remaining = Remaining {
            requests: tightest(|b| b.requests).map(state),
            tokens: tightest(|b| b.tokens).map(state),
        };
        Verdict { refused, remaining }
    }

    /// Charges the tokens a request used to its key and tenant.
    pub fn charge(&self, key: &str, tenant: &str, tokens: u64, now: Instant) {
        let tokens = tokens as f64;
        for (map, id) in [(&self.keys, key), (&self.tenants, tenant)] {
            let mut map = map.lock();
            if let Some(b) = map.get_mut(id).and_then(|b| b.tokens.as_mut()) {
                b.refill(now);
                b.level -= tokens;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rps(n: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests_per_second: Some(n),
            tokens_per_minute: None,
        })
    }

    #[test]
    fn a_burst_of_the_rate_is_admitted_and_no_more() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let admitted = (0..20)
            .filter(|_| l.admit(("k", rps(5)), ("t", None), t0).refused.is_none())
            .count();
        assert_eq!(admitted, 5);
        let v = l.admit(("k", rps(5)), ("t", None), t0);
        assert_eq!(v.refused, Some((Scope::Key, 1)));
        // 200 ms refill one request at 5/s.
        let later = t0 + Duration::from_millis(200);
        assert!(l.admit(("k", rps(5)), ("t", None), later).refused.is_none());
        assert!(l.admit(("k", rps(5)), ("t", None), later).refused.is_some());
    }

    #[test]
    fn the_tenant_limit_covers_all_its_keys() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let mut admitted = 0;
        for i in 0..30 {
            let key = format!("k{}", i % 3);
            if l.admit((&key, rps(100)), ("t", rps(10)), t0)
                .refused
                .is_none()
            {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10);
        let v = l.admit(("k0", rps(100)), ("t", rps(10)), t0);
        assert_eq!(v.refused.map(|r| r.0), Some(Scope::Tenant));
    }

    #[test]
    fn tokens_are_charged_after_and_refuse_until_refilled() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let tpm = Some(RateLimit {
            requests_per_second: None,
            tokens_per_minute: Some(600),
        });
        assert!(l.admit(("k", tpm), ("t", None), t0).refused.is_none());
        l.charge("k", "t", 700, t0);
        let v = l.admit(("k", tpm), ("t", None), t0);
        // 100 below zero at 10 tokens/s: 10 s, and one more token: 11 s.
        assert_eq!(v.refused, Some((Scope::Key, 11)));
        assert_eq!(v.remaining.tokens, Some((600, 0)));
        let mut digits = Default::default();
        let fields: Vec<_> = v.remaining.fields(&mut digits).collect();
        assert_eq!(
            fields,
            [
                ("x-ratelimit-limit-tokens", "600"),
                ("x-ratelimit-remaining-tokens", "0")
            ]
        );
        assert!(
            l.admit(("k", tpm), ("t", None), t0 + Duration::from_secs(11))
                .refused
                .is_none()
        );
    }
}
