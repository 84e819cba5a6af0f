//! Who is calling: the console's API keys and session tokens, resolved by the
//! console's own rules and cached ([`CredentialCache`], shared with the
//! console). A cached answer is dropped after [`CACHE_TTL`], when its
//! credential expires, and at once when the store commits any audited write
//! (a revoked key, a changed role or limit), so revocation takes effect on
//! the next request in this process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use autoglm_auth::{CredentialCache, Principal, Sessions, authenticate};
use autoglm_core::rbac::Permission;
use autoglm_core::security::RateLimit;
use autoglm_store::Store;

/// Longest a resolved credential is trusted without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// A caller the gateway admitted.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant it acts in.
    pub tenant: Arc<str>,
    /// The key id, or `user:NAME` for a session: the usage and limit key.
    pub credential: Arc<str>,
    /// Whether it may call models.
    pub may_invoke: bool,
    /// The key's limits.
    pub key_limit: Option<RateLimit>,
    /// The tenant's limits.
    pub tenant_limit: Option<RateLimit>,
    /// The tenant's token quota.
    pub tenant_tokens: Option<autoglm_core::quota::TokenQuota>,
}

impl Caller {
    fn of(p: Principal) -> Caller {
        let credential = match p.actor.strip_prefix("key:") {
            Some(id) => id.into(),
            None => p.actor.as_str().into(),
        };
        Caller {
            may_invoke: p.grant.allows(Permission::ServicesInvoke),
            tenant: p.grant.tenant.into(),
            credential,
            key_limit: p.key_limit,
            tenant_limit: p.tenant_limit,
            tenant_tokens: p.tenant_tokens,
        }
    }
}

/// Why a credential was refused, in words for the client.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status: 401, or 500 when the store failed.
    pub status: u16,
    /// In words.
    pub message: String,
}

/// Resolves bearer tokens against the store, with a cache.
#[derive(Debug)]
pub struct Authenticator {
    store: Arc<Store>,
    sessions: Sessions,
    cache: CredentialCache<Result<Caller, Refusal>>,
}

impl Authenticator {
    /// Over the console's store and session keys.
    pub fn new(store: Arc<Store>, sessions: Sessions) -> Authenticator {
        Authenticator {
            store,
            sessions,
            cache: CredentialCache::new(CACHE_TTL),
        }
    }

    /// The store credentials are read from.
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The caller of `token`, from the cache when fresh at `now`.
    pub async fn resolve(&self, token: &str, now: Instant) -> Result<Caller, Refusal> {
        // Read before resolving: see CredentialCache::put.
        let access = self.store.access_version();
        if let Some(answer) = self.cache.get(token, access, now, chrono::Utc::now()) {
            return answer;
        }
        let store = self.store.clone();
        let sessions = self.sessions.clone();
        let owned = token.to_owned();
        let resolved = tokio::task::spawn_blocking(move || {
            authenticate(&store, &sessions, &owned, chrono::Utc::now())
        })
        .await
        .map_err(|_| Refusal {
            status: 500,
            message: "authentication failed unexpectedly".into(),
        })?;
        let expires = resolved.as_ref().ok().and_then(|p| p.expires_at);
        let answer = resolved.map(Caller::of).map_err(|e| Refusal {
            status: if e.code.status() >= 500 { 500 } else { 401 },
            message: e.detail,
        });
        // Store failures are not cached: the next request asks again.
        if answer.as_ref().map_or_else(|r| r.status == 401, |_| true) {
            self.cache.put(token, access, now, expires, answer.clone());
        }
        answer
    }
}
