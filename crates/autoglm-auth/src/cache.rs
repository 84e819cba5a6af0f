//! Resolved credentials, kept so that a busy caller's token is checked
//! against the store once rather than on every request.
//!
//! An entry is dropped as soon as the store has committed a change to keys,
//! users, roles or tenants since it was resolved (a revoked key, a changed
//! role or limit: the store's access version, `Store::access_version`), when
//! its credential expires, and after the cache's time to live.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Most credentials kept; the cache starts over when full.
const CAPACITY: usize = 10_000;

/// Answers per bearer token, valid for one state of the store.
#[derive(Debug)]
pub struct CredentialCache<T> {
    ttl: Duration,
    inner: Mutex<Entries<T>>,
}

#[derive(Debug)]
struct Entries<T> {
    /// The store's access version the entries were resolved at.
    version: u64,
    by_token: HashMap<String, Entry<T>>,
}

#[derive(Debug)]
struct Entry<T> {
    resolved: Instant,
    expires: Option<DateTime<Utc>>,
    answer: T,
}

impl<T: Clone> CredentialCache<T> {
    /// An empty cache whose entries live at most `ttl`.
    pub fn new(ttl: Duration) -> CredentialCache<T> {
        CredentialCache {
            ttl,
            inner: Mutex::new(Entries {
                version: 0,
                by_token: HashMap::new(),
            }),
        }
    }

    /// The answer kept for `token`, when the store's access version is still
    /// `version`, the credential has not expired at `wall` and the entry is
    /// younger than the time to live at `now`.
    pub fn get(&self, token: &str, version: u64, now: Instant, wall: DateTime<Utc>) -> Option<T> {
        let mut inner = self.inner.lock();
        if inner.version != version {
            inner.by_token.clear();
            inner.version = version;
            return None;
        }
        let entry = inner.by_token.get(token)?;
        let fresh =
            now.duration_since(entry.resolved) < self.ttl && entry.expires.is_none_or(|t| wall < t);
        fresh.then(|| entry.answer.clone())
    }

    /// Keeps `answer`, resolved from the store when its access version
    /// was `version`. The version must be read before resolving: a change
    /// that lands while the store is read then leaves the answer unkept.
    pub fn put(
        &self,
        token: &str,
        version: u64,
        now: Instant,
        expires: Option<DateTime<Utc>>,
        answer: T,
    ) {
        let mut inner = self.inner.lock();
        if version < inner.version {
            return;
        }
        if version > inner.version || inner.by_token.len() >= CAPACITY {
            inner.by_token.clear();
            inner.version = version;
        }
        inner.by_token.insert(
            token.to_owned(),
            Entry {
                resolved: now,
                expires,
                answer,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn an_answer_is_kept_until_the_next_change_to_access() {
        let cache = CredentialCache::new(TTL);
        let (now, wall) = (Instant::now(), Utc::now());
        cache.put("t", 5, now, None, "alice");
        assert_eq!(cache.get("t", 5, now, wall), Some("alice"));
        assert_eq!(cache.get("other", 5, now, wall), None);
        assert_eq!(
            cache.get("t", 6, now, wall),
            None,
            "keys, roles or limits changed"
        );
        assert_eq!(cache.get("t", 6, now, wall), None, "and the entry is gone");
    }

    #[test]
    fn an_answer_resolved_before_a_change_is_not_kept_after_it() {
        let cache = CredentialCache::new(TTL);
        let (now, wall) = (Instant::now(), Utc::now());
        // A reader saw access version 5, then a revocation (6) landed and a
        // request already looked at the cache with version 6.
        assert_eq!(cache.get("t", 6, now, wall), None);
        cache.put("t", 5, now, None, "alice (not yet revoked)");
        assert_eq!(cache.get("t", 6, now, wall), None);
    }

    #[test]
    fn an_answer_ends_with_its_credential_and_its_time_to_live() {
        let cache = CredentialCache::new(TTL);
        let (now, wall) = (Instant::now(), Utc::now());
        cache.put("key", 1, now, Some(wall + chrono::Duration::seconds(1)), 1);
        cache.put("session", 1, now, None, 2);
        assert_eq!(cache.get("key", 1, now, wall), Some(1));
        let later = wall + chrono::Duration::seconds(1);
        assert_eq!(cache.get("key", 1, now, later), None, "the key expired");
        assert_eq!(cache.get("session", 1, now + TTL, wall), None, "too old");
        assert_eq!(cache.get("session", 1, now + TTL / 2, wall), Some(2));
    }
}
