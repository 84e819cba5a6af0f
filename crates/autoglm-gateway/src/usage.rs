//! Usage accounting: requests and tokens per credential, service, version
//! and minute, summed in memory and added to the store in one transaction
//! every [`FLUSH_INTERVAL`], so that a request costs no write of its own.

use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use autoglm_core::security::UsageRecord;
use autoglm_store::{Store, UsageDelta, usage};
use chrono::DateTime;
use foldhash::HashMap;

/// How often sums are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Tenant, credential, service, version and the minute's Unix time,
/// joined by [`SEP`]: one string, so that a request looks its sums up
/// without allocating. Tenant, service and version are DNS labels, so
/// they are read from the ends and whatever lies between is the credential
/// (a user's name may contain anything).
type Key = Box<str>;
const SEP: char = '\u{1f}';

thread_local! {
    /// Where each thread joins the key it looks up.
    static JOINED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Sums waiting to be written.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<Key, [u64; 3]>>,
}

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct Used<'a> {
    /// The caller's tenant.
    pub tenant: &'a str,
    /// The caller's credential.
    pub credential: &'a str,
    /// The service.
    pub service: &'a str,
    /// The version that answered.
    pub version: &'a str,
    /// Prompt tokens the runtime reported.
    pub prompt_tokens: u64,
    /// Completion tokens the runtime reported.
    pub completion_tokens: u64,
}

/// The store's record of one key's sums.
fn delta(key: &str, sums: [u64; 3]) -> UsageDelta {
    let (rest, minute) = key.rsplit_once(SEP).unwrap_or_default();
    let (rest, version) = rest.rsplit_once(SEP).unwrap_or_default();
    let (rest, service) = rest.rsplit_once(SEP).unwrap_or_default();
    let (tenant, credential) = rest.split_once(SEP).unwrap_or_default();
    UsageDelta {
        tenant: tenant.to_owned(),
        record: UsageRecord {
            minute: minute
                .parse()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .unwrap_or_default(),
            key: credential.to_owned(),
            service: service.to_owned(),
            version: version.to_owned(),
            requests: sums[0],
            prompt_tokens: sums[1],
            completion_tokens: sums[2],
        },
    }
}

impl Usage {
    /// Counts one answered request, in the minute of `at`.
    pub fn record(&self, used: Used<'_>, at: SystemTime) {
        let seconds = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut minute = itoa::Buffer::new();
        let parts = [
            used.tenant,
            used.credential,
            used.service,
            used.version,
            minute.format(seconds - seconds % 60),
        ];
        JOINED.with_borrow_mut(|joined| {
            joined.clear();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    joined.push(SEP);
                }
                joined.push_str(part);
            }
            let mut pending = self.pending.lock();
            let sums = match pending.get_mut(joined.as_str()) {
                Some(sums) => sums,
                None => pending.entry(joined.as_str().into()).or_default(),
            };
            // Saturating: whatever a replica reports, a sum never wraps.
            sums[0] = sums[0].saturating_add(1);
            sums[1] = sums[1].saturating_add(used.prompt_tokens);
            sums[2] = sums[2].saturating_add(used.completion_tokens);
        });
    }

    /// Writes what is pending; on failure it is kept for the next flush.
    pub fn flush(&self, store: &Store) -> autoglm_store::Result<usize> {
        let taken = std::mem::take(&mut *self.pending.lock());
        if taken.is_empty() {
            return Ok(0);
        }
        let batch: Vec<UsageDelta> = taken.iter().map(|(key, sums)| delta(key, *sums)).collect();
        match store.bookkeeping(|tx| usage::add_usage(tx, &batch)) {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                let mut pending = self.pending.lock();
                for (k, s) in taken {
                    let sums = pending.entry(k).or_default();
                    for (sum, more) in sums.iter_mut().zip(s) {
                        *sum = sum.saturating_add(more);
                    }
                }
                Err(e)
            }
        }
    }

    /// Flushes every [`FLUSH_INTERVAL`] until the usage is dropped elsewhere.
    pub async fn flush_forever(self: Arc<Usage>, store: Arc<Store>) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            tick.tick().await;
            let (usage, store) = (self.clone(), store.clone());
            match tokio::task::spawn_blocking(move || usage.flush(&store)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot write usage; kept for the next try")
                }
                Err(e) => tracing::error!(error = %e, "usage flush panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_summed_per_key_and_minute_and_read_back_whole() {
        let usage = Usage::default();
        let used = |credential, prompt_tokens| Used {
            tenant: "acme",
            credential,
            service: "chat",
            version: "2",
            prompt_tokens,
            completion_tokens: 1,
        };
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let odd = "user:a\u{1f}b";
        usage.record(used("k1", 3), at(1_800_000_000));
        usage.record(used("k1", 4), at(1_800_000_059));
        usage.record(used("k1", 5), at(1_800_000_061));
        usage.record(used(odd, 6), at(1_800_000_000));
        let pending = usage.pending.lock();
        let mut deltas: Vec<UsageDelta> = pending.iter().map(|(k, s)| delta(k, *s)).collect();
        deltas.sort_by_key(|d| (d.record.key.clone(), d.record.minute));
        let seen: Vec<_> = deltas
            .iter()
            .map(|d| {
                let r = &d.record;
                let minute = r.minute.timestamp();
                let sums = (r.requests, r.prompt_tokens, r.completion_tokens);
                (
                    d.tenant.as_str(),
                    r.key.as_str(),
                    r.service.as_str(),
                    r.version.as_str(),
                    minute,
                    sums,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("acme", "k1", "chat", "2", 1_800_000_000, (2, 7, 2)),
                ("acme", "k1", "chat", "2", 1_800_000_060, (1, 5, 1)),
                ("acme", odd, "chat", "2", 1_800_000_000, (1, 6, 1)),
            ]
        );
    }

    #[test]
    fn sums_of_absurd_counts_saturate_instead_of_wrapping() {
        let usage = Usage::default();
        let absurd = Used {
            tenant: "acme",
            credential: "k1",
            service: "chat",
            version: "2",
            prompt_tokens: u64::MAX,
            completion_tokens: u64::MAX - 1,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        usage.record(absurd, at);
        usage.record(absurd, at);
        let pending = usage.pending.lock();
        assert_eq!(
            pending.values().copied().collect::<Vec<_>>(),
            [[2, u64::MAX, u64::MAX]]
        );
    }
}
