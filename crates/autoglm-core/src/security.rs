//! Wire types of authentication and tenancy: login, users, tenants, API keys.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rbac::{Permission, Role};

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The tenant to act in; the system tenant when absent.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A session token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LoginResponse {
    /// A JWT to send as `Authorization: Bearer`.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// The tenant it acts in.
    pub tenant: String,
    /// The user's role there.
    pub role: Role,
}

/// `GET /api/v1/auth/whoami`: the caller as the console sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Identity {
    /// The user behind the credential.
    pub username: String,
    /// `session` or `api_key`.
    pub credential: String,
    /// The tenant the credential acts in.
    pub tenant: String,
    /// The user's role there.
    pub role: Role,
    /// What the credential may do.
    pub permissions: Vec<Permission>,
}

/// A tenant: the unit that maps to a Kubernetes namespace.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Tenant {
    /// DNS-1123 label.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// DNS-1123 label.
    pub name: String,
}

/// A user, without secrets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct User {
    /// DNS-1123 label.
    pub username: String,
    /// Roles per tenant.
    pub roles: Vec<Membership>,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// A role held in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Membership {
    /// The tenant.
    pub tenant: String,
    /// The role there.
    pub role: Role,
}

/// `POST /api/v1/users`: creates a user with a role in the caller's tenant.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// DNS-1123 label.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    /// The role in the caller's tenant.
    pub role: Role,
}

/// `PUT /api/v1/users/{username}/role`: sets the user's role in the caller's tenant.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// The new role.
    pub role: Role,
    /// The tenant to set it in: the caller's when absent. Only system admins
    /// may name another tenant (this is how a new tenant gets its first admin).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label for humans.
    #[serde(default)]
    pub name: Option<String>,
    /// Narrow the key to these permissions; all of the owner's when absent.
    #[serde(default)]
    pub scopes: Option<Vec<Permission>>,
    /// Lifetime in seconds; the key never expires when absent.
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
    /// Limits on what the key may send through the gateway; none when absent.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// Gateway limits of a key or a tenant; each absent one is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests per second, with a burst of as many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Prompt plus completion tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
}

impl RateLimit {
    /// Largest value either limit may take.
    pub const MAX: u32 = 100_000_000;

    /// Refuses zero (which would lock the key out: revoke it instead) and absurd values.
    pub fn validate(&self) -> Result<(), RateLimitError> {
        for (field, value) in [
            ("requests_per_second", self.requests_per_second),
            ("tokens_per_minute", self.tokens_per_minute),
        ] {
            if let Some(value) = value
                && !(1..=Self::MAX).contains(&value)
            {
                return Err(RateLimitError { field, value });
            }
        }
        Ok(())
    }
}

/// A limit of a [`RateLimit`] outside 1 to [`RateLimit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("rate_limit.{field} must be 1 to {}, not {value}", RateLimit::MAX)]
pub struct RateLimitError {
    /// `requests_per_second` or `tokens_per_minute`.
    pub field: &'static str,
    /// The value refused.
    pub value: u32,
}

/// One row of `GET /api/v1/usage`: what one key sent to one service version in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageRecord {
    /// Start of the minute.
    pub minute: DateTime<Utc>,
    /// The API key's id, or `user:NAME` for a session.
    pub key: String,
    /// The service called.
    pub service: String,
    /// The version that answered.
    pub version: String,
    /// Requests answered.
    pub requests: u64,
    /// Prompt tokens, as the runtime counted them.
    pub prompt_tokens: u64,
    /// Completion tokens, as the runtime counted them.
    pub completion_tokens: u64,
}

/// An API key, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApiKey {
    /// Public identifier, also the start of the secret.
    pub id: String,
    /// A label for humans.
    pub name: Option<String>,
    /// The owner.
    pub username: String,
    /// The tenant the key acts in.
    pub tenant: String,
    /// The scopes, or none for all of the owner's permissions.
    pub scopes: Option<Vec<Permission>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last time it authenticated a request (minute precision).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Gateway limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// The answer to key creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedApiKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret; send it as `Authorization: Bearer`. It is stored only as a hash.
    pub secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_refuse_zero_and_absurd_values() {
        assert_eq!(RateLimit::default().validate(), Ok(()));
        let zero = RateLimit {
            requests_per_second: Some(0),
            ..Default::default()
        };
        assert_eq!(
            zero.validate(),
            Err(RateLimitError {
                field: "requests_per_second",
                value: 0
            })
        );
        let huge = RateLimit {
            tokens_per_minute: Some(RateLimit::MAX + 1),
            ..Default::default()
        };
        assert_eq!(
            huge.validate().map_err(|e| e.to_string()),
            Err("rate_limit.tokens_per_minute must be 1 to 100000000, not 100000001".to_owned())
        );
    }
}
