//! Credentials: password hashes, session JWTs and API keys, resolved to a
//! [`Principal`] with a role in one tenant.
//!
//! No HTTP here: the console and the gateway each read the bearer token off
//! their own requests and answer an [`AuthError`] in their own protocol.

mod cache;
mod error;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use autoglm_core::error::ErrorCode;
use autoglm_core::rbac::{Grant, Permission, Role};
use autoglm_core::security::{Identity, RateLimit};
use autoglm_store::{NewApiKey, Store};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cache::CredentialCache;
pub use error::AuthError;

/// Prefix of every API key secret, so that leaked keys are easy to scan for.
pub const KEY_PREFIX: &str = "agk_";
/// How long a session token lasts.
pub const SESSION_TTL: Duration = Duration::minutes(15);

/// Who is calling and what they may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub username: String,
    /// `user:NAME` for sessions, `key:ID` for API keys: the audit actor.
    pub actor: String,
    /// The role in a tenant, narrowed by scopes.
    pub grant: Grant,
    /// The gateway limits of the key (none for sessions).
    pub key_limit: Option<RateLimit>,
    /// The gateway limits of the tenant.
    pub tenant_limit: Option<RateLimit>,
    /// The tenant's token quota, when it has one.
    pub tenant_tokens: Option<autoglm_core::quota::TokenQuota>,
    /// When the credential stops being valid (the key's expiry, the session's end).
    pub expires_at: Option<DateTime<Utc>>,
}

impl Principal {
    /// Refuses unless the grant allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AuthError> {
        if self.grant.allows(permission) {
            Ok(())
        } else {
            Err(AuthError::new(
                ErrorCode::Forbidden,
                format!(
                    "{} (role {} in tenant {:?}) lacks permission {}",
                    self.actor,
                    self.grant.role.as_str(),
                    self.grant.tenant,
                    permission.as_str()
                ),
            ))
        }
    }

    /// The principal as `whoami` reports it.
    pub fn identity(&self) -> Identity {
        Identity {
            username: self.username.clone(),
            credential: if self.actor.starts_with("key:") {
                "api_key"
            } else {
                "session"
            }
            .to_owned(),
            tenant: self.grant.tenant.clone(),
            role: self.grant.role,
            permissions: Permission::ALL
                .into_iter()
                .filter(|p| self.grant.allows(*p))
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Signs and checks session tokens with the installation's secret, and
/// derives the web console's CSRF tokens from it.
#[derive(Clone)]
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// HMAC-SHA256 keyed with a key of its own, derived from the secret.
    csrf: Hmac<Sha256>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(..)")
    }
}

impl Sessions {
    /// Uses `secret` (kept in the store's settings) for HS256.
    pub fn new(secret: &[u8]) -> Sessions {
        // A key of its own (the secret's MAC of a fixed label), so that a
        // CSRF token is never a MAC the session signing could also produce.
        let mac = |key: &[u8]| {
            Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
        };
        let csrf_key = mac(secret)
            .chain_update(b"autoglm web csrf key")
            .finalize()
            .into_bytes();
        Sessions {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            csrf: mac(&csrf_key),
        }
    }

    /// The CSRF token of the web forms a holder of `credential` submits: its
    /// HMAC under the installation's key, so that knowing (or guessing) a
    /// credential is not enough to forge one, and the token of a session
    /// stays the same across restarts of the console.
    pub fn csrf_token(&self, credential: &str) -> String {
        let mac = self.csrf.clone().chain_update(credential.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Issues a token for `username` in `tenant`.
    pub fn issue(
        &self,
        username: &str,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        let expires = now + SESSION_TTL;
        let claims = Claims {
            sub: username.to_owned(),
            tenant: tenant.to_owned(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::internal("jwt encode", &e))?;
        Ok((token, expires))
    }

    fn check(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::new(
                    ErrorCode::TokenExpired,
                    "the session token has expired; log in again",
                ),
                _ => AuthError::new(
                    ErrorCode::InvalidCredentials,
                    "the session token is not valid",
                ),
            })
    }
}

/// Hashes a password with Argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>())
        .map_err(|e| AuthError::internal("salt", &std::io::Error::other(e.to_string())))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::internal("argon2", &std::io::Error::other(e.to_string())))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A real hash to compare against when the user does not exist, so that a
/// wrong user name takes as long as a wrong password and names cannot be
/// probed by timing.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&random_string(16))
            .map_err(|e| e.detail)
            .unwrap_or_default()
    })
}

/// A random alphanumeric string.
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// sha256 of an API key secret: the secret has 238 bits of entropy, so a fast
/// hash is enough and lookups stay one index probe.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Makes a new key: its public id, the secret to show once, and the row to store.
pub fn new_api_key(
    username: &str,
    tenant: &str,
    name: Option<String>,
    scopes: Option<Vec<Permission>>,
    expires_at: Option<DateTime<Utc>>,
) -> (String, NewApiKey) {
    let id = random_string(12).to_lowercase();
    let secret = format!("{KEY_PREFIX}{id}_{}", random_string(40));
    let row = NewApiKey {
        id,
        secret_hash: secret_hash(&secret),
        name,
        username: username.to_owned(),
        tenant: tenant.to_owned(),
        scopes,
        expires_at,
        rate_limit: None,
    };
    (secret, row)
}

/// The token of an `Authorization` value of the Bearer scheme, the scheme
/// in any case (RFC 9110 §11.1: schemes are case-insensitive); `None` for
/// another scheme or an empty token. The console and the gateway both read
/// the header with it, so that they accept the same spellings.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Resolves a bearer token to a principal, reading current roles from the store.
pub fn authenticate(
    store: &Store,
    sessions: &Sessions,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    if token.starts_with(KEY_PREFIX) {
        let found = store.key_by_secret_hash(&secret_hash(token))?;
        let Some(found) = found else {
            return Err(AuthError::new(
                ErrorCode::InvalidCredentials,
                "the API key is not valid",
            ));
        };
        let key = found.key;
        if key.revoked_at.is_some() {
            return Err(AuthError::new(
                ErrorCode::InvalidCredentials,
                format!("API key {} was revoked", key.id),
            ));
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::new(
                ErrorCode::TokenExpired,
                format!("API key {} has expired", key.id),
            ));
        }
        let role = found.role.ok_or_else(|| {
            AuthError::new(
                ErrorCode::InvalidCredentials,
                "the key's owner no longer has a role in its tenant",
            )
        })?;
        store.touch_key(&key.id, now)?;
        return Ok(Principal {
            actor: format!("key:{}", key.id),
            username: key.username,
            grant: Grant {
                tenant: key.tenant,
                role,
                scopes: key.scopes,
            },
            key_limit: key.rate_limit,
            tenant_limit: found.tenant_rate_limit,
            tenant_tokens: found.tenant_quota.tokens(),
            expires_at: key.expires_at,
        });
    }
    let claims = sessions.check(token)?;
    let role: Role = store.role_of(&claims.sub, &claims.tenant)?.ok_or_else(|| {
        AuthError::new(
            ErrorCode::InvalidCredentials,
            "the user no longer has a role in this tenant",
        )
    })?;
    let tenant_limit = store.tenant_rate_limit(&claims.tenant)?;
    let tenant_tokens = store.tenant_quota(&claims.tenant)?.tokens();
    Ok(Principal {
        actor: format!("user:{}", claims.sub),
        username: claims.sub,
        grant: Grant {
            tenant: claims.tenant,
            role,
            scopes: None,
        },
        key_limit: None,
        tenant_limit,
        tenant_tokens,
        expires_at: DateTime::from_timestamp(claims.exp, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in [
            "Bearer agk_x",
            "bearer agk_x",
            "BEARER agk_x",
            "bEaReR   agk_x  ",
        ] {
            assert_eq!(bearer_token(value), Some("agk_x"), "{value:?}");
        }
        for value in [
            "Basic agk_x",
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Bearerx agk_x",
            "agk_x",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn sessions_expire_and_reject_forgeries() {
        let sessions = Sessions::new(b"0123456789abcdef0123456789abcdef");
        let (token, _) = sessions.issue("alice", "default", Utc::now()).unwrap();
        assert_eq!(sessions.check(&token).unwrap().sub, "alice");

        let (old, _) = sessions
            .issue(
                "alice",
                "default",
                Utc::now() - SESSION_TTL - Duration::seconds(5),
            )
            .unwrap();
        assert_eq!(
            sessions.check(&old).unwrap_err().code,
            ErrorCode::TokenExpired
        );

        let other = Sessions::new(b"another secret, same length.....");
        let (forged, _) = other.issue("alice", "default", Utc::now()).unwrap();
        assert_eq!(
            sessions.check(&forged).unwrap_err().code,
            ErrorCode::InvalidCredentials
        );
    }

    #[test]
    fn csrf_tokens_are_keyed_by_the_installation_secret() {
        let sessions = Sessions::new(b"0123456789abcdef0123456789abcdef");
        let token = sessions.csrf_token("agk_credential");
        assert_eq!(token.len(), 32);
        // The same secret (a restart) gives the same token...
        let restarted = Sessions::new(b"0123456789abcdef0123456789abcdef");
        assert_eq!(restarted.csrf_token("agk_credential"), token);
        // ... another credential or another installation's secret does not,
        assert_ne!(sessions.csrf_token("agk_credentiak"), token);
        let other = Sessions::new(b"another secret, same length.....");
        assert_ne!(other.csrf_token("agk_credential"), token);
        // ... and neither does an unkeyed hash of the credential.
        assert!(!secret_hash("csrf:agk_credential").starts_with(&token));
    }

    #[test]
    fn keys_are_long_prefixed_and_stored_hashed() {
        let (secret, row) = new_api_key("alice", "default", None, None, None);
        assert!(secret.starts_with(KEY_PREFIX));
        assert!(secret.len() >= 50);
        assert!(!row.secret_hash.contains(&secret));
        assert_eq!(row.secret_hash, secret_hash(&secret));
    }
}
