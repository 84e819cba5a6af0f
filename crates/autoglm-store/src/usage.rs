//! Usage accounting: per tenant, credential, service, version and minute.
//! The gateway sums in memory and flushes a batch every few seconds, so a
//! request costs no write of its own; rows are added to, never replaced.

use crate::Transaction;
use autoglm_core::security::UsageRecord;
use chrono::{DateTime, Utc};

use crate::{Result, Store, parse_time, timestamp};

/// One batch entry: what one credential sent to one version in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The credential's tenant.
    pub tenant: String,
    /// The record, `minute` truncated to the minute.
    pub record: UsageRecord,
}

/// What `GET /api/v1/usage` may filter on.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Only this tenant's rows.
    pub tenant: String,
    /// Only this credential's rows.
    pub credential: Option<String>,
    /// Only this service's rows.
    pub service: Option<String>,
    /// Rows from this minute on.
    pub since: Option<DateTime<Utc>>,
    /// Sum the minutes into steps of this many seconds (a multiple of 60),
    /// each row starting at its step's first minute; `None` or 60: per minute.
    pub step_seconds: Option<u32>,
}

/// Adds a batch to the stored sums, inside a write.
pub fn add_usage(tx: &Transaction<'_>, batch: &[UsageDelta]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO usage (tenant, minute, credential, service, version, requests, prompt_tokens, completion_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant, minute, credential, service, version) DO UPDATE SET
           requests = requests + excluded.requests,
           prompt_tokens = prompt_tokens + excluded.prompt_tokens,
           completion_tokens = completion_tokens + excluded.completion_tokens",
    )?;
    for d in batch {
        let r = &d.record;
        stmt.execute((
            &d.tenant,
            timestamp(r.minute),
            &r.key,
            &r.service,
            &r.version,
            count(r.requests),
            count(r.prompt_tokens),
            count(r.completion_tokens),
        ))?;
    }
    Ok(())
}

/// A count as SQLite stores it: one past `i64::MAX` (a runtime's bogus token
/// count) is kept as the largest it holds, never wrapped to a negative.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// The tokens (prompt plus completion) `tenant` spent since 00:00 UTC
    /// of `now`'s day and since the 1st of its month, as flushed so far.
    pub fn tokens_spent(&self, tenant: &str, now: DateTime<Utc>) -> Result<(u64, u64)> {
        let (day, month) = day_and_month_start(now);
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT COALESCE(SUM(CASE WHEN minute >= ?2 THEN prompt_tokens + completion_tokens END), 0),
                        COALESCE(SUM(prompt_tokens + completion_tokens), 0)
                 FROM usage WHERE tenant = ?1 AND minute >= ?3",
            )?;
            let (today, month): (i64, i64) = stmt.query_row(
                (tenant, timestamp(day), timestamp(month)),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((today.max(0) as u64, month.max(0) as u64))
        })
    }
}

/// The first instant of `now`'s UTC day and of its month.
pub fn day_and_month_start(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::{Datelike, TimeZone};
    let day = Utc
        .with_ymd_and_hms(now.year(), now.month(), now.day(), 0, 0, 0)
        .single()
        .unwrap_or(now);
    let month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (day, month)
}

/// The most rows one usage read returns.
pub const USAGE_ROWS: usize = 10_000;

impl Store {
    /// Usage rows per step (a minute unless the filter says otherwise),
    /// oldest first, at most [`USAGE_ROWS`].
    pub fn list_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT strftime('%Y-%m-%dT%H:%M:%SZ',
                                 (CAST(strftime('%s', minute) AS INTEGER) / ?5) * ?5, 'unixepoch') AS step,
                        credential, service, version,
                        SUM(requests), SUM(prompt_tokens), SUM(completion_tokens)
                 FROM usage
                 WHERE tenant = ?1 AND (?2 IS NULL OR credential = ?2)
                   AND (?3 IS NULL OR service = ?3) AND (?4 IS NULL OR minute >= ?4)
                 GROUP BY step, credential, service, version
                 ORDER BY step, credential, service, version
                 LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                (
                    &filter.tenant,
                    &filter.credential,
                    &filter.service,
                    filter.since.map(timestamp),
                    filter.step_seconds.unwrap_or(60).max(60),
                    USAGE_ROWS as i64,
                ),
                |r| {
                    Ok(UsageRecord {
                        minute: parse_time(&r.get::<_, String>(0)?)?,
                        key: r.get(1)?,
                        service: r.get(2)?,
                        version: r.get(3)?,
                        requests: r.get::<_, i64>(4)? as u64,
                        prompt_tokens: r.get::<_, i64>(5)? as u64,
                        completion_tokens: r.get::<_, i64>(6)? as u64,
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_count_past_what_sqlite_holds_is_stored_as_its_largest_not_negative() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let batch = [UsageDelta {
            tenant: "default".into(),
            record: UsageRecord {
                minute: "2026-11-29T10:01:00Z".parse().unwrap(),
                key: "k1".into(),
                service: "chat".into(),
                version: "1".into(),
                requests: 1,
                prompt_tokens: u64::MAX,
                completion_tokens: i64::MAX as u64 + 1,
            },
        }];
        store
            .bookkeeping(|tx| {
                crate::tenancy::create_tenant(tx, "default")?;
                add_usage(tx, &batch)
            })
            .unwrap();
        let rows = store
            .list_usage(&UsageFilter {
                tenant: "default".into(),
                ..UsageFilter::default()
            })
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].requests, 1);
        assert_eq!(rows[0].prompt_tokens, i64::MAX as u64);
        assert_eq!(rows[0].completion_tokens, i64::MAX as u64);
    }
}
