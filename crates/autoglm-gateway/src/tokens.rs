//! Tenant token quotas: tokens spent per UTC day and calendar month. A
//! request is admitted while what the tenant spent is under each quota; its
//! tokens are charged when the answer says how many it used (so the request
//! that crosses a quota completes, and the next is refused), as the rate
//! limits' token buckets are.
//!
//! What a tenant spent is read from the store's usage the first time this
//! gateway sees the tenant, and counted here from then on; a new day or
//! month starts from zero. Every [`REFRESH`] it is read again and the larger
//! count kept, so that several gateways see each other's traffic as it is
//! flushed (within a refresh and a flush, about 12 s, of each other).

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_core::quota::TokenQuota;
use chrono::{DateTime, Datelike, Utc};
use foldhash::HashMap;
use parking_lot::Mutex;

/// How often a tenant's stored spending is read again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// What one tenant spent in the current day and month.
#[derive(Debug, Clone, Copy)]
struct Spent {
    day: (i32, u32, u32),
    today: u64,
    month: (i32, u32),
    this_month: u64,
    /// When the store was last read for it.
    read_at: Instant,
}

impl Spent {
    /// Starts a new day or month from zero when `now` is in one.
    fn roll(&mut self, now: DateTime<Utc>) {
        let month = (now.year(), now.month());
        if self.month != month {
            self.month = month;
            self.this_month = 0;
        }
        let day = (now.year(), now.month(), now.day());
        if self.day != day {
            self.day = day;
            self.today = 0;
        }
    }
}

/// Why a request is refused: which quota is spent, and when it renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSpent {
    /// `day` or `month`.
    pub period: &'static str,
    /// The quota.
    pub limit: u64,
    /// What was spent.
    pub spent: u64,
    /// When it renews.
    pub renews: DateTime<Utc>,
}

/// The tokens each tenant spent.
#[derive(Debug, Default)]
pub struct TokenLedger {
    spent: Mutex<HashMap<Arc<str>, Spent>>,
}

impl TokenLedger {
    /// Whether `tenant`'s stored spending has been read.
    pub fn knows(&self, tenant: &str) -> bool {
        self.spent.lock().contains_key(tenant)
    }

    /// Whether `tenant`'s stored spending is due to be read again (and
    /// marks it read, so that one request at a time reads it).
    pub fn due(&self, tenant: &str, at: Instant) -> bool {
        match self.spent.lock().get_mut(tenant) {
            Some(spent) if at.saturating_duration_since(spent.read_at) >= REFRESH => {
                spent.read_at = at;
                true
            }
            _ => false,
        }
    }

    /// Takes the stored spending of `tenant` (today, this month) at `now`:
    /// the larger of it and what is counted here, for each period.
    pub fn seed(&self, tenant: &Arc<str>, (today, this_month): (u64, u64), now: DateTime<Utc>) {
        let mut all = self.spent.lock();
        let spent = all.entry(tenant.clone()).or_insert(Spent {
            day: (now.year(), now.month(), now.day()),
            today: 0,
            month: (now.year(), now.month()),
            this_month: 0,
            read_at: Instant::now(),
        });
        spent.roll(now);
        spent.today = spent.today.max(today);
        spent.this_month = spent.this_month.max(this_month);
    }

    /// Whether `tenant` may send another request under `quota` at `now`.
    pub fn admit(
        &self,
        tenant: &str,
        quota: TokenQuota,
        now: DateTime<Utc>,
    ) -> Result<(), QuotaSpent> {
        let mut all = self.spent.lock();
        let Some(spent) = all.get_mut(tenant) else {
            return Ok(());
        };
        spent.roll(now);
        let (day_start, month_start) = autoglm_store::day_and_month_start(now);
        if let Some(limit) = quota.per_day
            && spent.today >= limit
        {
            return Err(QuotaSpent {
                period: "day",
                limit,
                spent: spent.today,
                renews: day_start + chrono::Duration::days(1),
            });
        }
        if let Some(limit) = quota.per_month
            && spent.this_month >= limit
        {
            return Err(QuotaSpent {
                period: "month",
                limit,
                spent: spent.this_month,
                renews: month_start
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(month_start),
            });
        }
        Ok(())
    }

    /// Charges `tokens` to `tenant` (counted only for tenants read).
    pub fn charge(&self, tenant: &str, tokens: u64, now: DateTime<Utc>) {
        if let Some(spent) = self.spent.lock().get_mut(tenant) {
            spent.roll(now);
            spent.today = spent.today.saturating_add(tokens);
            spent.this_month = spent.this_month.saturating_add(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap()
    }

    #[test]
    fn a_day_quota_refuses_once_spent_and_renews_at_midnight() {
        let ledger = TokenLedger::default();
        let tenant: Arc<str> = "acme".into();
        let quota = TokenQuota {
            per_day: Some(100),
            per_month: Some(250),
        };
        ledger.seed(&tenant, (60, 60), at(7, 10));
        assert_eq!(ledger.admit("acme", quota, at(7, 10)), Ok(()));
        ledger.charge("acme", 50, at(7, 11));
        let refusal = ledger.admit("acme", quota, at(7, 12)).unwrap_err();
        assert_eq!(
            (refusal.period, refusal.limit, refusal.spent),
            ("day", 100, 110)
        );
        assert_eq!(refusal.renews, at(8, 0));
        // A new day: the day's count starts again, the month's goes on.
        assert_eq!(ledger.admit("acme", quota, at(8, 0)), Ok(()));
        ledger.charge("acme", 90, at(8, 1));
        ledger.charge("acme", 60, at(9, 1));
        let refusal = ledger.admit("acme", quota, at(9, 2)).unwrap_err();
        assert_eq!((refusal.period, refusal.spent), ("month", 260));
        assert_eq!(
            refusal.renews,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_later_read_keeps_the_larger_count_of_each_period() {
        let ledger = TokenLedger::default();
        let tenant: Arc<str> = "acme".into();
        ledger.seed(&tenant, (10, 10), at(7, 10));
        ledger.charge("acme", 5, at(7, 10));
        // Not yet flushed: what is counted here stands.
        ledger.seed(&tenant, (0, 0), at(7, 10));
        let quota = TokenQuota {
            per_day: Some(15),
            per_month: Some(100),
        };
        assert_eq!(
            ledger.admit("acme", quota, at(7, 10)).unwrap_err().spent,
            15
        );
        // Another gateway's traffic, flushed: the store's count stands.
        ledger.seed(&tenant, (12, 120), at(8, 1));
        let refused = ledger.admit("acme", quota, at(8, 1)).unwrap_err();
        assert_eq!((refused.period, refused.spent), ("month", 120));
    }

    #[test]
    fn the_store_is_read_again_once_a_refresh_has_passed() {
        let ledger = TokenLedger::default();
        let tenant: Arc<str> = "acme".into();
        ledger.seed(&tenant, (0, 0), at(7, 10));
        let start = Instant::now();
        assert!(!ledger.due("acme", start));
        assert!(ledger.due("acme", start + REFRESH));
        assert!(!ledger.due("acme", start + REFRESH), "one reader at a time");
        assert!(!ledger.due("other", start + REFRESH));
    }
}
