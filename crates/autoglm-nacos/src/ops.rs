//! What every Nacos protocol does, once: who the caller is (an autoglm
//! session or API key from `accessToken` / `Authorization`), which
//! environment a namespace means, and reading, publishing and removing a
//! key through the same checked, audited path as the console, with the watch
//! hub told inside the commit.

use std::sync::Arc;

use autoglm_auth::Principal;
use autoglm_console::AppState;
use autoglm_core::audit::AuditEvent;
use autoglm_core::config::{ConfigFormat, ConfigVersion, check_key_name, check_publish};
use autoglm_core::error::ErrorCode;
use autoglm_core::rbac::Permission;
use autoglm_store::config::{self as stored, Expect, KeyPath};
use autoglm_store::{Mutation, StoreError, StoredResponse, timestamp};

/// Why a Nacos call failed, in the words Nacos clients expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 403: no or bad credentials, or not allowed.
    Denied(String),
    /// 400: a parameter is missing or wrong.
    Invalid(String),
    /// 404: no such key.
    NotFound,
    /// 409: a compare-and-set publish lost.
    Conflict(String),
    /// 500.
    Internal(String),
}

impl Failure {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Denied(m)
            | Failure::Invalid(m)
            | Failure::Conflict(m)
            | Failure::Internal(m) => m,
            Failure::NotFound => "config data not exist",
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match &e {
            StoreError::Rejected(ErrorCode::NotFound, _) => Failure::Invalid(e.to_string()),
            StoreError::Rejected(ErrorCode::Forbidden, m) => Failure::Denied(m.clone()),
            StoreError::Rejected(ErrorCode::GenerationMismatch, m) => Failure::Conflict(m.clone()),
            StoreError::Rejected(_, m) => Failure::Invalid(m.clone()),
            StoreError::Invalid(_) => Failure::Invalid(e.to_string()),
            // A policy refused the publish: the console's words.
            StoreError::Denied(violations) => Failure::Denied(
                autoglm_core::error::Problem::policy_violations(violations.clone())
                    .detail
                    .unwrap_or_default(),
            ),
            _ => Failure::Internal(e.to_string()),
        }
    }
}

/// Resolves a token to its principal, or refuses.
pub async fn authenticate(state: &AppState, token: Option<String>) -> Result<Principal, Failure> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Failure::Denied(
            "no accessToken: log in (/nacos/v1/auth/login) with an autoglm user and password, \
             or any user name and an autoglm API key as the password"
                .to_owned(),
        ));
    };
    let (store, sessions) = (state.store.clone(), state.sessions.clone());
    tokio::task::spawn_blocking(move || {
        autoglm_auth::authenticate(&store, &sessions, &token, chrono::Utc::now())
    })
    .await
    .map_err(|e| Failure::Internal(e.to_string()))?
    .map_err(|e| Failure::Denied(e.to_string()))
}

/// A key as a Nacos client names it.
#[derive(Debug, Clone)]
pub struct NacosKey {
    /// The namespace as sent (`""` and `public` are the default environment).
    pub namespace: String,
    /// The group (`DEFAULT_GROUP` when blank).
    pub group: String,
    /// The key.
    pub data_id: String,
}

impl NacosKey {
    /// Checks the names as Nacos does (letters, digits and `_-.:`).
    pub fn new(
        namespace: Option<String>,
        group: Option<String>,
        data_id: Option<String>,
    ) -> Result<NacosKey, Failure> {
        let data_id = data_id.filter(|d| !d.trim().is_empty()).ok_or_else(|| {
            Failure::Invalid("Required request parameter 'dataId' is not present".to_owned())
        })?;
        let group = group
            .filter(|g| !g.trim().is_empty())
            .unwrap_or_else(|| autoglm_core::config::DEFAULT_GROUP.to_owned());
        check_key_name("key", &data_id)
            .map_err(|e| Failure::Invalid(format!("invalid dataId : {data_id} ({e})")))?;
        check_key_name("group", &group)
            .map_err(|e| Failure::Invalid(format!("invalid group : {group} ({e})")))?;
        Ok(NacosKey {
            namespace: namespace.unwrap_or_default(),
            group,
            data_id,
        })
    }
}

/// The environment a namespace means in `tenant`: its default one for
/// `""`, `public` or `null`, else the environment of that name.
fn environment(
    conn: &autoglm_store::Connection,
    tenant: &str,
    namespace: &str,
) -> Result<String, StoreError> {
    if namespace.is_empty()
        || namespace.eq_ignore_ascii_case("public")
        || namespace.eq_ignore_ascii_case("null")
    {
        return stored::default_environment(conn, tenant);
    }
    stored::existing_environment(conn, tenant, namespace).map(|e| e.name).map_err(|e| {
        StoreError::rejected(ErrorCode::InvalidQuery, format!("invalid tenant: namespace {namespace:?} is not an environment of tenant {tenant}; {e}"))
    })
}

/// Reads a key's live version (`None` when absent or deleted).
pub async fn query(
    state: &AppState,
    who: &Principal,
    key: &NacosKey,
) -> Result<Option<ConfigVersion>, Failure> {
    who.require(Permission::ConfigRead)
        .map_err(|e| Failure::Denied(e.to_string()))?;
    let (tenant, key) = (who.grant.tenant.clone(), key.clone());
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        store.read(|c| {
            let env = environment(c, &tenant, &key.namespace)?;
            let at = KeyPath {
                tenant: &tenant,
                environment: &env,
                group: &key.group,
                key: &key.data_id,
            };
            Ok(stored::current(c, at)?.filter(|v| !v.deleted))
        })
    })
    .await
    .map_err(|e| Failure::Internal(e.to_string()))?
    .map_err(Failure::from)
}

/// The environment a namespace means for this caller (for watches).
pub async fn environment_of(
    state: &AppState,
    who: &Principal,
    namespace: &str,
) -> Result<String, Failure> {
    let (tenant, namespace) = (who.grant.tenant.clone(), namespace.to_owned());
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.read(|c| environment(c, &tenant, &namespace)))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?
        .map_err(Failure::from)
}

/// What to write.
#[derive(Debug, Clone)]
pub enum Change {
    /// Publish this content (`type` as Nacos names it; the key's extension
    /// when blank or unknown), only over this md5 when given (CAS).
    Publish {
        content: String,
        kind: Option<String>,
        cas_md5: Option<String>,
    },
    /// Remove the key (a success when it is already absent, as in Nacos).
    Remove,
}

/// Writes a change as `who`, audited as the console's own writes are; a
/// refusal is audited with its outcome.
pub async fn write(
    state: &AppState,
    who: &Principal,
    key: &NacosKey,
    change: Change,
    request_id: &str,
) -> Result<(), Failure> {
    let action = match change {
        Change::Publish { .. } => "config.keys.publish",
        Change::Remove => "config.keys.delete",
    };
    let event = AuditEvent {
        time: timestamp(chrono::Utc::now()),
        actor: who.actor.clone(),
        tenant: who.grant.tenant.clone(),
        action: action.to_owned(),
        target: format!("config/{}/{}/{}", key.namespace, key.group, key.data_id),
        request_id: request_id.to_owned(),
        outcome: String::new(),
    };
    let result = write_checked(state, who, key, change, event.clone()).await;
    if let Err(failure) = &result {
        let outcome = match failure {
            Failure::Denied(_) => "forbidden",
            Failure::Invalid(_) => "invalid_body",
            Failure::NotFound => "not_found",
            Failure::Conflict(_) => "generation_mismatch",
            Failure::Internal(_) => "internal",
        };
        let store = state.store.clone();
        let refused = AuditEvent {
            outcome: outcome.to_owned(),
            ..event
        };
        let _ = tokio::task::spawn_blocking(move || store.audit_only(&refused)).await;
    }
    result
}

async fn write_checked(
    state: &AppState,
    who: &Principal,
    key: &NacosKey,
    change: Change,
    audit: AuditEvent,
) -> Result<(), Failure> {
    who.require(Permission::ConfigWrite)
        .map_err(|e| Failure::Denied(e.to_string()))?;
    if let Change::Publish { content, kind, .. } = &change {
        if content.trim().is_empty() {
            return Err(Failure::Invalid("content is blank : ".to_owned()));
        }
        let format = format_of(kind.as_deref(), &key.data_id);
        check_publish(&key.group, &key.data_id, format, content).map_err(|errors| {
            Failure::Invalid(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    }
    let protected_ok = who.require(Permission::ConfigProtected).is_ok();
    let judged = autoglm_console::policies::Judged::of(state, who)
        .await
        .map_err(|e| Failure::Internal(e.detail))?;
    let (tenant, key, hub) = (who.grant.tenant.clone(), key.clone(), state.config.clone());
    let store: Arc<autoglm_store::Store> = state.store.clone();
    let notify_tenant = tenant.clone();
    tokio::task::spawn_blocking(move || {
        store.write_then(
            Mutation {
                audit,
                idempotency: None,
            },
            |tx, audit| {
                let env = environment(tx, &tenant, &key.namespace)?;
                audit.target = format!("config/{env}/{}/{}", key.group, key.data_id);
                autoglm_console::api::config::writable(tx, &tenant, &env, protected_ok)?;
                let at = KeyPath {
                    tenant: &tenant,
                    environment: &env,
                    group: &key.group,
                    key: &key.data_id,
                };
                match change {
                    Change::Publish {
                        content,
                        kind,
                        cas_md5,
                    } => {
                        let format = format_of(kind.as_deref(), &key.data_id);
                        let expect = Expect {
                            md5: cas_md5.filter(|m| !m.is_empty()),
                            version: None,
                        };
                        let published = stored::publish(
                            tx,
                            at,
                            format,
                            &content,
                            &expect,
                            &audit.actor,
                            "published by a Nacos client",
                        )?;
                        // Judged as a publish through the console's API is.
                        if published.changed {
                            judged.configs(tx, &tenant, &[&published.version], audit)?;
                        }
                        Ok(published.changed.then_some(published.version))
                    }
                    Change::Remove => match stored::current(tx, at)? {
                        Some(v) if !v.deleted => Ok(Some(stored::delete(
                            tx,
                            at,
                            &Expect::default(),
                            &audit.actor,
                            "removed by a Nacos client",
                        )?)),
                        _ => Ok(None),
                    },
                }
            },
            |_| StoredResponse {
                status: 200,
                body: Vec::new(),
            },
            |version| {
                if let Some(v) = version {
                    hub.committed(&notify_tenant, &[v.change()]);
                }
            },
        )
    })
    .await
    .map_err(|e| Failure::Internal(e.to_string()))?
    .map(drop)
    .map_err(Failure::from)
}

/// The format of a Nacos `type` (`yml` and `txt` too), else of the key's extension.
pub fn format_of(kind: Option<&str>, data_id: &str) -> ConfigFormat {
    kind.and_then(ConfigFormat::parse)
        .unwrap_or_else(|| ConfigFormat::of_key(data_id))
}
