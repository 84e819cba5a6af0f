//! Tenants, users, memberships, API keys and installation settings.

use autoglm_core::error::ErrorCode;
use autoglm_core::quota::Quota;
use autoglm_core::rbac::{Permission, Role};
use autoglm_core::security::{ApiKey, Membership, RateLimit, Tenant, User};
use chrono::{DateTime, Utc};
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row};

use crate::Transaction;
use crate::{Result, Store, StoreError, parse_json, parse_time, timestamp};

/// What login needs to know about a user.
#[derive(Debug, Clone)]
pub struct UserCredential {
    /// The PHC-format password hash.
    pub password_hash: String,
    /// Roles per tenant.
    pub roles: Vec<Membership>,
}

/// What authenticating an API key needs to know.
#[derive(Debug, Clone)]
pub struct KeyCredential {
    /// The key's record.
    pub key: ApiKey,
    /// The owner's current role in the key's tenant, if they still have one.
    pub role: Option<Role>,
    /// The gateway limits of the key's tenant.
    pub tenant_rate_limit: Option<RateLimit>,
    /// The key's tenant's quota (`{}` when none).
    pub tenant_quota: Quota,
}

/// A key to insert; the secret itself is never stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Public id.
    pub id: String,
    /// sha256 of the secret, hex.
    pub secret_hash: String,
    /// Label.
    pub name: Option<String>,
    /// Owner.
    pub username: String,
    /// Tenant.
    pub tenant: String,
    /// Scopes.
    pub scopes: Option<Vec<Permission>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Gateway limits.
    pub rate_limit: Option<RateLimit>,
}

fn role_of(s: String) -> r2d2_sqlite::rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| {
        r2d2_sqlite::rusqlite::Error::InvalidColumnType(
            0,
            s,
            r2d2_sqlite::rusqlite::types::Type::Text,
        )
    })
}

fn optional_json<T: serde::de::DeserializeOwned>(
    s: Option<String>,
) -> r2d2_sqlite::rusqlite::Result<Option<T>> {
    s.as_deref().map(parse_json).transpose()
}

fn optional_time(s: Option<String>) -> r2d2_sqlite::rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

const KEY_COLUMNS: &str = "k.id, k.name, k.username, k.tenant, k.scopes, k.created_at, k.expires_at, k.last_used_at, k.revoked_at, k.rate_limit";

fn api_key(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<ApiKey> {
    let scopes: Option<String> = r.get(4)?;
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        username: r.get(2)?,
        tenant: r.get(3)?,
        scopes: scopes.as_deref().map(parse_json).transpose()?,
        created_at: parse_time(&r.get::<_, String>(5)?)?,
        expires_at: optional_time(r.get(6)?)?,
        last_used_at: optional_time(r.get(7)?)?,
        revoked_at: optional_time(r.get(8)?)?,
        rate_limit: optional_json(r.get(9)?)?,
    })
}

fn memberships(conn: &Connection, username: &str) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tenant, role FROM memberships WHERE username = ?1 ORDER BY tenant",
    )?;
    let rows = stmt.query_map([username], |r| {
        Ok(Membership {
            tenant: r.get(0)?,
            role: role_of(r.get(1)?)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Creates a tenant inside a write.
pub fn create_tenant(tx: &Transaction<'_>, name: &str) -> Result<Tenant> {
    let now = Utc::now();
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?1, ?2)",
        (name, timestamp(now)),
    )?;
    if inserted == 0 {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!("tenant {name:?} already exists"),
        ));
    }
    crate::config::seed_environments(tx, name)?;
    Ok(Tenant {
        name: name.to_owned(),
        created_at: now,
    })
}

/// Creates a user with a role in `tenant`, inside a write.
pub fn create_user(
    tx: &Transaction<'_>,
    username: &str,
    password_hash: &str,
    tenant: &str,
    role: Role,
) -> Result<User> {
    let now = Utc::now();
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
        (username, password_hash, timestamp(now)),
    )?;
    if inserted == 0 {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!("user {username:?} already exists"),
        ));
    }
    tx.execute(
        "INSERT INTO memberships (username, tenant, role) VALUES (?1, ?2, ?3)",
        (username, tenant, role.as_str()),
    )?;
    Ok(User {
        username: username.to_owned(),
        roles: vec![Membership {
            tenant: tenant.to_owned(),
            role,
        }],
        created_at: now,
    })
}

/// Sets a user's role in a tenant, inside a write.
pub fn set_role(tx: &Transaction<'_>, username: &str, tenant: &str, role: Role) -> Result<User> {
    let tenant_exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)",
        [tenant],
        |r| r.get(0),
    )?;
    if !tenant_exists {
        return Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("tenant {tenant:?} does not exist"),
        ));
    }
    let created: Option<String> = tx
        .query_row(
            "SELECT created_at FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?;
    let created = created.ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("user {username:?} does not exist"),
        )
    })?;
    tx.execute(
        "INSERT INTO memberships (username, tenant, role) VALUES (?1, ?2, ?3)
         ON CONFLICT (username, tenant) DO UPDATE SET role = excluded.role",
        (username, tenant, role.as_str()),
    )?;
    Ok(User {
        username: username.to_owned(),
        roles: memberships(tx, username)?,
        created_at: parse_time(&created)?,
    })
}

/// Inserts an API key, inside a write.
pub fn insert_key(tx: &Transaction<'_>, key: &NewApiKey) -> Result<ApiKey> {
    let now = Utc::now();
    let scopes = key
        .scopes
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".to_owned()));
    let rate_limit = key
        .rate_limit
        .as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "{}".to_owned()));
    tx.execute(
        "INSERT INTO api_keys (id, secret_hash, name, username, tenant, scopes, created_at, expires_at, rate_limit)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        (
            &key.id,
            &key.secret_hash,
            &key.name,
            &key.username,
            &key.tenant,
            &scopes,
            timestamp(now),
            key.expires_at.map(timestamp),
            rate_limit,
        ),
    )?;
    Ok(ApiKey {
        id: key.id.clone(),
        name: key.name.clone(),
        username: key.username.clone(),
        tenant: key.tenant.clone(),
        scopes: key.scopes.clone(),
        created_at: now,
        expires_at: key.expires_at,
        last_used_at: None,
        revoked_at: None,
        rate_limit: key.rate_limit,
    })
}

/// A tenant's settings kept as JSON in a column of its row.
#[derive(Debug, Clone, Copy)]
enum Setting {
    RateLimit,
    Quota,
}

impl Setting {
    fn column(self) -> &'static str {
        match self {
            Setting::RateLimit => "rate_limit",
            Setting::Quota => "quota",
        }
    }
}

fn no_such_tenant(tenant: &str) -> StoreError {
    StoreError::rejected(
        ErrorCode::NotFound,
        format!("tenant {tenant:?} does not exist"),
    )
}

/// Sets (or, with `None`, clears) one of a tenant's settings, inside a write.
fn set_setting<T: serde::Serialize>(
    tx: &Transaction<'_>,
    tenant: &str,
    setting: Setting,
    value: Option<&T>,
) -> Result<()> {
    let json = value.map(|v| serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned()));
    let changed = tx.execute(
        &format!(
            "UPDATE tenants SET {} = ?1 WHERE name = ?2",
            setting.column()
        ),
        (json, tenant),
    )?;
    if changed == 0 {
        return Err(no_such_tenant(tenant));
    }
    Ok(())
}

/// One of a tenant's settings; `None` when it has none.
fn setting<T: serde::de::DeserializeOwned>(
    c: &Connection,
    tenant: &str,
    setting: Setting,
) -> Result<Option<T>> {
    let json: Option<Option<String>> = c
        .query_row(
            &format!("SELECT {} FROM tenants WHERE name = ?1", setting.column()),
            [tenant],
            |r| r.get(0),
        )
        .optional()?;
    match json {
        None => Err(no_such_tenant(tenant)),
        Some(json) => Ok(optional_json(json)?),
    }
}

/// Sets (or, with `None`, clears) a tenant's gateway limits, inside a write.
pub fn set_tenant_rate_limit(
    tx: &Transaction<'_>,
    tenant: &str,
    limit: Option<&RateLimit>,
) -> Result<()> {
    set_setting(tx, tenant, Setting::RateLimit, limit)
}

/// Sets (or, with `None`, clears) a tenant's quota, inside a write.
pub fn set_tenant_quota(tx: &Transaction<'_>, tenant: &str, quota: Option<&Quota>) -> Result<()> {
    set_setting(tx, tenant, Setting::Quota, quota)
}

/// Revokes a key of `tenant` (and of `owner`, when given), inside a write.
pub fn revoke_key(
    tx: &Transaction<'_>,
    tenant: &str,
    owner: Option<&str>,
    id: &str,
) -> Result<ApiKey> {
    let changed = tx.execute(
        "UPDATE api_keys SET revoked_at = ?1
         WHERE id = ?2 AND tenant = ?3 AND (?4 IS NULL OR username = ?4) AND revoked_at IS NULL",
        (timestamp(Utc::now()), id, tenant, owner),
    )?;
    if changed == 0 {
        return Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("no active API key {id:?} that you may revoke"),
        ));
    }
    Ok(tx.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE id = ?1"),
        [id],
        api_key,
    )?)
}

impl Store {
    /// Whether the installation has been bootstrapped (any user exists).
    pub fn has_users(&self) -> Result<bool> {
        self.read(|c| Ok(c.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))?))
    }

    /// Whether a tenant exists.
    pub fn tenant_exists(&self, name: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)",
                [name],
                |r| r.get(0),
            )?)
        })
    }

    /// Every tenant, by name.
    pub fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, created_at FROM tenants ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok(Tenant {
                    name: r.get(0)?,
                    created_at: parse_time(&r.get::<_, String>(1)?)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// A tenant's quota (`{}` when it has none).
    pub fn tenant_quota(&self, tenant: &str) -> Result<Quota> {
        Ok(self
            .read(|c| setting(c, tenant, Setting::Quota))?
            .unwrap_or_default())
    }

    /// Every tenant's quota, by tenant (tenants without one left out).
    pub fn all_quotas(&self) -> Result<std::collections::HashMap<String, Quota>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT name, quota FROM tenants WHERE quota IS NOT NULL")?;
            let mut rows = stmt.query([])?;
            let mut quotas = std::collections::HashMap::new();
            while let Some(row) = rows.next()? {
                if let Some(quota) = optional_json(row.get(1)?)? {
                    quotas.insert(row.get(0)?, quota);
                }
            }
            Ok(quotas)
        })
    }

    /// A tenant's gateway limits.
    pub fn tenant_rate_limit(&self, tenant: &str) -> Result<Option<RateLimit>> {
        self.read(|c| setting(c, tenant, Setting::RateLimit))
    }

    /// A user's password hash and roles, for login.
    pub fn user_credential(&self, username: &str) -> Result<Option<UserCredential>> {
        self.read(|c| {
            let hash: Option<String> = c
                .query_row(
                    "SELECT password_hash FROM users WHERE username = ?1",
                    [username],
                    |r| r.get(0),
                )
                .optional()?;
            hash.map(|password_hash| {
                Ok(UserCredential {
                    password_hash,
                    roles: memberships(c, username)?,
                })
            })
            .transpose()
        })
    }

    /// A user's current role in a tenant.
    pub fn role_of(&self, username: &str, tenant: &str) -> Result<Option<Role>> {
        self.read(|c| {
            let role: Option<String> = c
                .query_row(
                    "SELECT role FROM memberships WHERE username = ?1 AND tenant = ?2",
                    [username, tenant],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(role.map(role_of).transpose()?)
        })
    }

    /// The users with a role in `tenant`.
    pub fn list_users(&self, tenant: &str) -> Result<Vec<User>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT u.username, u.created_at FROM users u JOIN memberships m ON m.username = u.username
                 WHERE m.tenant = ?1 ORDER BY u.username",
            )?;
            let rows: Vec<(String, String)> =
                stmt.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(username, created)| {
                    Ok(User { roles: memberships(c, &username)?, username, created_at: parse_time(&created)? })
                })
                .collect()
        })
    }

    /// Finds a key by the hash of its secret, with its owner's current role.
    pub fn key_by_secret_hash(&self, secret_hash: &str) -> Result<Option<KeyCredential>> {
        self.read(|c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {KEY_COLUMNS}, m.role, t.rate_limit, t.quota FROM api_keys k
                     JOIN tenants t ON t.name = k.tenant
                     LEFT JOIN memberships m ON m.username = k.username AND m.tenant = k.tenant
                     WHERE k.secret_hash = ?1"
                ),
                [secret_hash],
                |r| {
                    let role: Option<String> = r.get(10)?;
                    Ok(KeyCredential {
                        key: api_key(r)?,
                        role: role.map(role_of).transpose()?,
                        tenant_rate_limit: optional_json(r.get(11)?)?,
                        tenant_quota: optional_json(r.get(12)?)?.unwrap_or_default(),
                    })
                },
            )
            .optional()?)
        })
    }

    /// Records that a key was used, at most once a minute per key so that
    /// reads do not turn into a write each.
    pub fn touch_key(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
        let cutoff = timestamp(now - chrono::Duration::minutes(1));
        let stale: bool = self.read(|c| {
            Ok(c.query_row(
                "SELECT last_used_at IS NULL OR last_used_at < ?2 FROM api_keys WHERE id = ?1",
                [id, &cutoff],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
        })?;
        if stale {
            self.bookkeeping(|tx| {
                tx.execute(
                    "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
                    (timestamp(now), id),
                )?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Keys of `tenant`, of `owner` only when given.
    pub fn list_keys(&self, tenant: &str, owner: Option<&str>) -> Result<Vec<ApiKey>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys k WHERE tenant = ?1 AND (?2 IS NULL OR username = ?2)
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map((tenant, owner), api_key)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// An installation setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    /// Sets a setting unless it is already set; returns the value in force.
    pub fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        self.bookkeeping(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
                (key, value),
            )?;
            Ok(
                tx.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                    r.get(0)
                })?,
            )
        })
    }
}
