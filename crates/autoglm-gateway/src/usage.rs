//! Usage accounting: requests and tokens per credential, service, version
//! and minute, summed in memory and added to the store in one transaction
//! every [`FLUSH_INTERVAL`], so that a request costs no write of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoglm_core::security::UsageRecord;
use autoglm_store::{Store, UsageDelta, usage};
use chrono::{DateTime, DurationRound, Utc};

/// How often sums are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Tenant, credential, service and version joined by [`SEP`] (none of them
/// may contain it: they are DNS labels and key ids), and the minute: one
/// allocation per request instead of four.
type Key = (String, DateTime<Utc>);
const SEP: char = '\u{1f}';

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

impl Usage {
    /// Counts one answered request.
    pub fn record(&self, used: Used<'_>, at: DateTime<Utc>) {
        let minute = at
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap_or(at);
        let parts = [used.tenant, used.credential, used.service, used.version];
        let mut joined = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                joined.push(SEP);
            }
            joined.push_str(part);
        }
        let key = (joined, minute);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let sums = pending.entry(key).or_default();
        sums[0] += 1;
        sums[1] += used.prompt_tokens;
        sums[2] += used.completion_tokens;
    }

    /// Writes what is pending; on failure it is kept for the next flush.
    pub fn flush(&self, store: &Store) -> autoglm_store::Result<usize> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let batch: Vec<UsageDelta> = taken
            .iter()
            .map(|((joined, minute), s)| {
                let mut parts = joined.split(SEP).map(str::to_owned);
                let mut next = || parts.next().unwrap_or_default();
                UsageDelta {
                    tenant: next(),
                    record: UsageRecord {
                        minute: *minute,
                        key: next(),
                        service: next(),
                        version: next(),
                        requests: s[0],
                        prompt_tokens: s[1],
                        completion_tokens: s[2],
                    },
                }
            })
            .collect();
        match store.bookkeeping(|tx| usage::add_usage(tx, &batch)) {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (k, s) in taken {
                    let sums = pending.entry(k).or_default();
                    for i in 0..3 {
                        sums[i] += s[i];
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
