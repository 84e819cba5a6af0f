//! The config center's tables: environments, immutable key versions under one
//! revision sequence, the current version of each key, snapshots and change
//! requests. A delete is a version too (a tombstone), so history survives it.

use autoglm_core::config::{
    ChangeAction, ChangeRequest, ConfigFormat, ConfigVersion, CreateEnvironment,
    DEFAULT_ENVIRONMENT, DEFAULT_ENVIRONMENTS, Environment, PlannedChange, Snapshot, SnapshotItem,
    config_map_name, data_key, md5_hex,
};
use autoglm_core::error::{ErrorCode, FieldError};
use chrono::Utc;
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Transaction;
use crate::{Result, StoreError, json, parse_json, parse_time, timestamp};

/// Where a key lives.
#[derive(Debug, Clone, Copy)]
pub struct KeyPath<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// The group.
    pub group: &'a str,
    /// The key.
    pub key: &'a str,
}

impl std::fmt::Display for KeyPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.environment, self.group, self.key)
    }
}

/// What a publish expects of the key's current state (optimistic concurrency).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// The current md5 must be this (empty: the key must not exist).
    pub md5: Option<String>,
    /// The current version must be this (0: the key must not exist).
    pub version: Option<u64>,
}

/// A version with the tenant it belongs to, for the watch hub's start.
#[derive(Debug, Clone)]
pub struct TenantVersion {
    /// The tenant.
    pub tenant: String,
    /// The version (without content).
    pub version: ConfigVersion,
}

fn bad_value(what: String) -> r2d2_sqlite::rusqlite::Error {
    r2d2_sqlite::rusqlite::Error::FromSqlConversionFailure(
        0,
        r2d2_sqlite::rusqlite::types::Type::Text,
        what.into(),
    )
}

const VERSION_COLUMNS: &str = "v.environment, v.grp, v.key, v.version, v.format, v.content, \
    v.md5, v.author, v.message, v.created_at, v.deleted, v.revision";

fn version_row(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<ConfigVersion> {
    let format: String = r.get(4)?;
    Ok(ConfigVersion {
        environment: r.get(0)?,
        group: r.get(1)?,
        key: r.get(2)?,
        version: r.get::<_, i64>(3)? as u64,
        format: ConfigFormat::parse(&format)
            .ok_or_else(|| bad_value(format!("unknown format {format:?}")))?,
        content: r.get(5)?,
        md5: r.get(6)?,
        author: r.get(7)?,
        message: r.get(8)?,
        created_at: parse_time(&r.get::<_, String>(9)?)?,
        deleted: r.get(10)?,
        revision: r.get::<_, i64>(11)? as u64,
    })
}

fn environment_row(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Environment> {
    Ok(Environment {
        name: r.get(0)?,
        description: r.get(1)?,
        protected: r.get(2)?,
        default: r.get(3)?,
        keys: r.get::<_, i64>(4)? as u64,
        created_by: r.get(5)?,
        created_at: parse_time(&r.get::<_, String>(6)?)?,
    })
}

const ENVIRONMENT_SELECT: &str = "SELECT e.name, e.description, e.protected, e.is_default, \
    (SELECT count(*) FROM config_keys k JOIN config_versions v ON v.revision = k.revision \
     WHERE k.tenant = e.tenant AND k.environment = e.name AND v.deleted = 0), \
    e.created_by, e.created_at FROM config_environments e";

/// A tenant's environments, by name.
pub fn environments(conn: &Connection, tenant: &str) -> Result<Vec<Environment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{ENVIRONMENT_SELECT} WHERE e.tenant = ?1 ORDER BY e.name"
    ))?;
    let rows = stmt.query_map([tenant], environment_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every environment of every tenant, as (tenant, environment).
pub fn all_environments(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT tenant, name FROM config_environments ORDER BY tenant, name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One environment with its live key count, or `not_found` naming the ones there are.
pub fn environment(conn: &Connection, tenant: &str, name: &str) -> Result<Environment> {
    find_environment(conn, tenant, name, ENVIRONMENT_SELECT)
}

/// One environment without counting its keys (`keys` is 0): the check every
/// write and watch makes, which must not grow with the environment.
pub fn existing_environment(conn: &Connection, tenant: &str, name: &str) -> Result<Environment> {
    find_environment(conn, tenant, name, ENVIRONMENT_SELECT_UNCOUNTED)
}

const ENVIRONMENT_SELECT_UNCOUNTED: &str = "SELECT e.name, e.description, e.protected, \
    e.is_default, 0, e.created_by, e.created_at FROM config_environments e";

fn find_environment(
    conn: &Connection,
    tenant: &str,
    name: &str,
    select: &str,
) -> Result<Environment> {
    let found = conn
        .prepare_cached(&format!("{select} WHERE e.tenant = ?1 AND e.name = ?2"))?
        .query_row([tenant, name], environment_row)
        .optional()?;
    match found {
        Some(env) => Ok(env),
        None => {
            let names: Vec<String> = all_environments(conn)?
                .into_iter()
                .filter(|(t, _)| t == tenant)
                .map(|(_, e)| e)
                .collect();
            Err(StoreError::rejected(
                ErrorCode::NotFound,
                format!(
                    "environment {name:?} does not exist; the tenant has {}",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The environment the empty or `public` Nacos namespace means.
pub fn default_environment(conn: &Connection, tenant: &str) -> Result<String> {
    Ok(conn
        .prepare_cached(
            "SELECT name FROM config_environments WHERE tenant = ?1 AND is_default = 1",
        )?
        .query_row([tenant], |r| r.get(0))
        .optional()?
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned()))
}

/// Creates the environments every tenant starts with.
pub fn seed_environments(tx: &Transaction<'_>, tenant: &str) -> Result<()> {
    let now = timestamp(Utc::now());
    for (name, description, protected) in DEFAULT_ENVIRONMENTS {
        tx.execute(
            "INSERT INTO config_environments \
             (tenant, name, description, protected, is_default, created_by, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'system', ?6)",
            params![
                tenant,
                name,
                description,
                protected,
                name == DEFAULT_ENVIRONMENT,
                now
            ],
        )?;
    }
    Ok(())
}

/// Adds an environment.
pub fn create_environment(
    tx: &Transaction<'_>,
    tenant: &str,
    create: &CreateEnvironment,
    actor: &str,
) -> Result<Environment> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO config_environments \
         (tenant, name, description, protected, is_default, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
        params![
            tenant,
            create.name,
            create.description,
            create.protected,
            actor,
            timestamp(Utc::now())
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!("environment {:?} already exists", create.name),
        ));
    }
    environment(tx, tenant, &create.name)
}

/// The key's newest version (a tombstone when it was deleted), if it ever existed.
pub fn current(conn: &Connection, at: KeyPath<'_>) -> Result<Option<ConfigVersion>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM config_keys k \
             JOIN config_versions v ON v.revision = k.revision \
             WHERE k.tenant = ?1 AND k.environment = ?2 AND k.grp = ?3 AND k.key = ?4"
        ))?
        .query_row([at.tenant, at.environment, at.group, at.key], version_row)
        .optional()?)
}

/// The key's live value, or `not_found`.
pub fn live(conn: &Connection, at: KeyPath<'_>) -> Result<ConfigVersion> {
    existing_environment(conn, at.tenant, at.environment)?;
    match current(conn, at)? {
        Some(v) if !v.deleted => Ok(v),
        Some(v) => Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("{at} was deleted at version {}", v.version),
        )),
        None => Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("{at} does not exist"),
        )),
    }
}

/// The live keys of an environment (of one group when given), by group and key.
pub fn live_keys(
    conn: &Connection,
    tenant: &str,
    environment_name: &str,
    group: Option<&str>,
) -> Result<Vec<ConfigVersion>> {
    existing_environment(conn, tenant, environment_name)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM config_keys k \
         JOIN config_versions v ON v.revision = k.revision \
         WHERE k.tenant = ?1 AND k.environment = ?2 AND (?3 IS NULL OR k.grp = ?3) \
           AND v.deleted = 0 ORDER BY k.grp, k.key"
    ))?;
    let rows = stmt.query_map(params![tenant, environment_name, group], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every version of a key, newest first, or `not_found` when it never existed.
pub fn history(conn: &Connection, at: KeyPath<'_>) -> Result<Vec<ConfigVersion>> {
    existing_environment(conn, at.tenant, at.environment)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v \
         WHERE v.tenant = ?1 AND v.environment = ?2 AND v.grp = ?3 AND v.key = ?4 \
         ORDER BY v.version DESC"
    ))?;
    let rows: Vec<ConfigVersion> = stmt
        .query_map([at.tenant, at.environment, at.group, at.key], version_row)?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("{at} does not exist"),
        ));
    }
    Ok(rows)
}

/// One version of a key.
pub fn version(conn: &Connection, at: KeyPath<'_>, version: u64) -> Result<ConfigVersion> {
    conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v \
         WHERE v.tenant = ?1 AND v.environment = ?2 AND v.grp = ?3 AND v.key = ?4 AND v.version = ?5"
    ))?
    .query_row(
        params![at.tenant, at.environment, at.group, at.key, version as i64],
        version_row,
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("{at} has no version {version}"),
        )
    })
}

/// The versions of a tenant's keys after `revision`, oldest first, at most
/// `limit` (of one environment when given): what a watcher that saw
/// `revision` has missed.
pub fn versions_after(
    conn: &Connection,
    tenant: &str,
    environment_name: Option<&str>,
    revision: u64,
    limit: u64,
) -> Result<Vec<ConfigVersion>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM config_versions v \
         WHERE v.tenant = ?1 AND (?2 IS NULL OR v.environment = ?2) AND v.revision > ?3 \
         ORDER BY v.revision LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![tenant, environment_name, revision as i64, limit as i64],
        version_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every key's newest version in the installation, without content, with
/// the highest revision: where the watch hub starts.
pub fn all_current(conn: &Connection) -> Result<(Vec<TenantVersion>, u64)> {
    let mut stmt = conn.prepare(
        "SELECT k.tenant, v.environment, v.grp, v.key, v.version, v.format, '', v.md5, v.author, \
         v.message, v.created_at, v.deleted, v.revision FROM config_keys k \
         JOIN config_versions v ON v.revision = k.revision",
    )?;
    let rows = stmt.query_map([], |r| {
        let tenant: String = r.get(0)?;
        // The columns after the tenant are the version's, in order.
        let format: String = r.get(5)?;
        Ok(TenantVersion {
            tenant,
            version: ConfigVersion {
                environment: r.get(1)?,
                group: r.get(2)?,
                key: r.get(3)?,
                version: r.get::<_, i64>(4)? as u64,
                format: ConfigFormat::parse(&format)
                    .ok_or_else(|| bad_value(format!("unknown format {format:?}")))?,
                content: String::new(),
                md5: r.get(7)?,
                author: r.get(8)?,
                message: r.get(9)?,
                created_at: parse_time(&r.get::<_, String>(10)?)?,
                deleted: r.get(11)?,
                revision: r.get::<_, i64>(12)? as u64,
            },
        })
    })?;
    let versions: Vec<TenantVersion> = rows.collect::<Result<_, _>>()?;
    let revision: i64 = conn.query_row(
        "SELECT coalesce(max(revision), 0) FROM config_versions",
        [],
        |r| r.get(0),
    )?;
    Ok((versions, revision as u64))
}

fn check_expect(at: KeyPath<'_>, now: Option<&ConfigVersion>, expect: &Expect) -> Result<()> {
    let live = now.filter(|v| !v.deleted);
    let (md5, version) = live.map_or(("", 0), |v| (v.md5.as_str(), v.version));
    let stale = expect
        .md5
        .as_deref()
        .is_some_and(|want| !want.eq_ignore_ascii_case(md5))
        || expect.version.is_some_and(|want| want != version);
    if stale {
        let is = match live {
            Some(v) => format!("is at version {} (md5 {})", v.version, v.md5),
            None => "does not exist".to_owned(),
        };
        return Err(StoreError::rejected(
            ErrorCode::GenerationMismatch,
            format!("{at} {is}, not the base the request names; read it again and retry"),
        ));
    }
    Ok(())
}

/// Refuses a new key whose ConfigMap data key (`GROUP.KEY`, `:` as `_`)
/// another live key of the environment already has: on Kubernetes one
/// would hide the other in `autoglm-config-ENV`.
fn check_data_key_free(tx: &Transaction<'_>, at: KeyPath<'_>) -> Result<()> {
    let wanted = data_key(at.group, at.key);
    // Names only, compared through `data_key` itself: one definition of the mapping.
    let mut stmt = tx.prepare_cached(
        "SELECT k.grp, k.key FROM config_keys k JOIN config_versions v ON v.revision = k.revision \
         WHERE k.tenant = ?1 AND k.environment = ?2 AND v.deleted = 0",
    )?;
    let holders = stmt
        .query_map(params![at.tenant, at.environment], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?;
    match holders.iter().find(|(group, key)| {
        (group.as_str(), key.as_str()) != (at.group, at.key) && data_key(group, key) == wanted
    }) {
        None => Ok(()),
        Some((group, key)) => Err(StoreError::Invalid(vec![FieldError::new(
            "key",
            format!(
                "{at} and the existing key {}/{group}/{key} would both be {wanted:?} in ConfigMap {}; rename one",
                at.environment,
                config_map_name(at.environment)
            ),
        )])),
    }
}

fn insert_version(
    tx: &Transaction<'_>,
    at: KeyPath<'_>,
    previous: Option<&ConfigVersion>,
    format: ConfigFormat,
    content: Option<&str>,
    author: &str,
    message: &str,
) -> Result<ConfigVersion> {
    // No content: a tombstone.
    let deleted = content.is_none();
    if let Some(content) = content {
        crate::config_refs::check_readers(tx, at, format, content)?;
        if previous.is_none_or(|p| p.deleted) {
            check_data_key_free(tx, at)?;
        }
    }
    let content = content.unwrap_or_default();
    let version = previous.map_or(1, |v| v.version + 1);
    let md5 = if deleted {
        String::new()
    } else {
        md5_hex(content)
    };
    let now = Utc::now();
    tx.execute(
        "INSERT INTO config_versions (tenant, environment, grp, key, version, format, content, \
         md5, author, message, created_at, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            at.tenant,
            at.environment,
            at.group,
            at.key,
            version as i64,
            format.as_str(),
            content,
            md5,
            author,
            message,
            timestamp(now),
            deleted
        ],
    )?;
    let revision = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO config_keys (tenant, environment, grp, key, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant, environment, grp, key) DO UPDATE SET revision = excluded.revision",
        params![at.tenant, at.environment, at.group, at.key, revision],
    )?;
    Ok(ConfigVersion {
        environment: at.environment.to_owned(),
        group: at.group.to_owned(),
        key: at.key.to_owned(),
        version,
        format,
        content: if deleted {
            String::new()
        } else {
            content.to_owned()
        },
        md5,
        author: author.to_owned(),
        message: message.to_owned(),
        created_at: now,
        deleted,
        revision: revision as u64,
    })
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The key's current version after it.
    pub version: ConfigVersion,
    /// Whether it made a new version (not when the content and format were already these).
    pub changed: bool,
}

/// Answered as the version it leaves the key at.
impl serde::Serialize for Published {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.version.serialize(serializer)
    }
}

/// Publishes content as the key's next version, unless the key already holds
/// exactly it. Content is checked by the caller.
pub fn publish(
    tx: &Transaction<'_>,
    at: KeyPath<'_>,
    format: ConfigFormat,
    content: &str,
    expect: &Expect,
    author: &str,
    message: &str,
) -> Result<Published> {
    existing_environment(tx, at.tenant, at.environment)?;
    let now = current(tx, at)?;
    check_expect(at, now.as_ref(), expect)?;
    if let Some(v) = now
        .as_ref()
        .filter(|v| !v.deleted && v.format == format && v.content == content)
    {
        return Ok(Published {
            version: v.clone(),
            changed: false,
        });
    }
    let version = insert_version(tx, at, now.as_ref(), format, Some(content), author, message)?;
    Ok(Published {
        version,
        changed: true,
    })
}

/// Deletes a key: a tombstone version, so the history stays.
pub fn delete(
    tx: &Transaction<'_>,
    at: KeyPath<'_>,
    expect: &Expect,
    author: &str,
    message: &str,
) -> Result<ConfigVersion> {
    let now = live(tx, at)?;
    check_expect(at, Some(&now), expect)?;
    insert_version(tx, at, Some(&now), now.format, None, author, message)
}

/// Applies planned changes to an environment, each only if the key is still
/// as it was planned against; one stale key refuses them all (the caller's
/// transaction rolls back). Returns the new versions.
pub fn apply_changes(
    tx: &Transaction<'_>,
    tenant: &str,
    environment_name: &str,
    changes: &[PlannedChange],
    author: &str,
    message: &str,
) -> Result<Vec<ConfigVersion>> {
    existing_environment(tx, tenant, environment_name)?;
    let mut versions = Vec::with_capacity(changes.len());
    for change in changes {
        let at = KeyPath {
            tenant,
            environment: environment_name,
            group: &change.group,
            key: &change.key,
        };
        let now = current(tx, at)?;
        check_expect(
            at,
            now.as_ref(),
            &Expect {
                md5: Some(change.base_md5.clone()),
                version: Some(change.base_version),
            },
        )?;
        let content = (change.action != ChangeAction::Delete).then_some(change.content.as_str());
        versions.push(insert_version(
            tx,
            at,
            now.as_ref(),
            change.format,
            content,
            author,
            message,
        )?);
    }
    Ok(versions)
}

/// Takes a snapshot of the environment's live keys.
pub fn create_snapshot(
    tx: &Transaction<'_>,
    tenant: &str,
    environment_name: &str,
    name: &str,
    description: &str,
    actor: &str,
) -> Result<Snapshot> {
    existing_environment(tx, tenant, environment_name)?;
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO config_snapshots \
         (tenant, environment, name, description, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            tenant,
            environment_name,
            name,
            description,
            actor,
            timestamp(Utc::now())
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!("environment {environment_name} already has a snapshot {name:?}"),
        ));
    }
    tx.execute(
        "INSERT INTO config_snapshot_items (tenant, environment, snapshot, revision) \
         SELECT k.tenant, k.environment, ?3, k.revision FROM config_keys k \
         JOIN config_versions v ON v.revision = k.revision \
         WHERE k.tenant = ?1 AND k.environment = ?2 AND v.deleted = 0",
        params![tenant, environment_name, name],
    )?;
    snapshot(tx, tenant, environment_name, name)
}

/// A snapshot with its items.
pub fn snapshot(
    conn: &Connection,
    tenant: &str,
    environment_name: &str,
    name: &str,
) -> Result<Snapshot> {
    let head = conn
        .prepare_cached(
            "SELECT description, created_by, created_at FROM config_snapshots \
             WHERE tenant = ?1 AND environment = ?2 AND name = ?3",
        )?
        .query_row([tenant, environment_name, name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                parse_time(&r.get::<_, String>(2)?)?,
            ))
        })
        .optional()?
        .ok_or_else(|| {
            StoreError::rejected(
                ErrorCode::NotFound,
                format!("environment {environment_name} has no snapshot {name:?}"),
            )
        })?;
    let mut stmt = conn.prepare_cached(
        "SELECT v.grp, v.key, v.version, v.md5 FROM config_snapshot_items i \
         JOIN config_versions v ON v.revision = i.revision \
         WHERE i.tenant = ?1 AND i.environment = ?2 AND i.snapshot = ?3 ORDER BY v.grp, v.key",
    )?;
    let items = stmt
        .query_map([tenant, environment_name, name], |r| {
            Ok(SnapshotItem {
                group: r.get(0)?,
                key: r.get(1)?,
                version: r.get::<_, i64>(2)? as u64,
                md5: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Snapshot {
        environment: environment_name.to_owned(),
        name: name.to_owned(),
        description: head.0,
        created_by: head.1,
        created_at: head.2,
        items,
    })
}

/// The environment's snapshots, newest first.
pub fn snapshots(conn: &Connection, tenant: &str, environment_name: &str) -> Result<Vec<Snapshot>> {
    existing_environment(conn, tenant, environment_name)?;
    let names: Vec<String> = conn
        .prepare_cached(
            "SELECT name FROM config_snapshots WHERE tenant = ?1 AND environment = ?2 \
             ORDER BY created_at DESC, name",
        )?
        .query_map([tenant, environment_name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .iter()
        .map(|name| snapshot(conn, tenant, environment_name, name))
        .collect()
}

/// The versions a snapshot holds, with content: what a restore brings back.
pub fn snapshot_versions(
    conn: &Connection,
    tenant: &str,
    environment_name: &str,
    name: &str,
) -> Result<Vec<ConfigVersion>> {
    snapshot(conn, tenant, environment_name, name)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM config_snapshot_items i \
         JOIN config_versions v ON v.revision = i.revision \
         WHERE i.tenant = ?1 AND i.environment = ?2 AND i.snapshot = ?3 ORDER BY v.grp, v.key"
    ))?;
    let rows = stmt.query_map([tenant, environment_name, name], version_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const REQUEST_COLUMNS: &str = "id, environment, source, message, changes, state, requested_by, \
    requested_at, decided_by, decided_at, reason";

fn request_row(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<ChangeRequest> {
    let decided_at: Option<String> = r.get(9)?;
    Ok(ChangeRequest {
        id: r.get::<_, i64>(0)? as u64,
        environment: r.get(1)?,
        from: r.get(2)?,
        message: r.get(3)?,
        changes: parse_json(&r.get::<_, String>(4)?)?,
        state: r.get(5)?,
        requested_by: r.get(6)?,
        requested_at: parse_time(&r.get::<_, String>(7)?)?,
        decided_by: r.get(8)?,
        decided_at: decided_at.as_deref().map(parse_time).transpose()?,
        reason: r.get(10)?,
    })
}

/// Files a change request for approval.
pub fn create_request(
    tx: &Transaction<'_>,
    tenant: &str,
    environment_name: &str,
    from: Option<&str>,
    changes: &[PlannedChange],
    message: &str,
    actor: &str,
) -> Result<ChangeRequest> {
    existing_environment(tx, tenant, environment_name)?;
    tx.execute(
        "INSERT INTO config_requests (tenant, environment, source, message, changes, state, \
         requested_by, requested_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
        params![
            tenant,
            environment_name,
            from,
            message,
            json(&changes)?,
            actor,
            timestamp(Utc::now())
        ],
    )?;
    request(tx, tenant, tx.last_insert_rowid() as u64)
}

/// One change request of the tenant.
pub fn request(conn: &Connection, tenant: &str, id: u64) -> Result<ChangeRequest> {
    conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM config_requests WHERE tenant = ?1 AND id = ?2"
    ))?
    .query_row(params![tenant, id as i64], request_row)
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("change request {id} does not exist"),
        )
    })
}

/// The tenant's change requests, newest first, of one state when given.
pub fn requests(
    conn: &Connection,
    tenant: &str,
    state: Option<&str>,
) -> Result<Vec<ChangeRequest>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM config_requests \
         WHERE tenant = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY id DESC LIMIT 500"
    ))?;
    let rows = stmt.query_map(params![tenant, state], request_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records a decision on a pending request (the caller applies an approved one
/// in the same transaction).
pub fn decide_request(
    tx: &Transaction<'_>,
    tenant: &str,
    id: u64,
    state: &str,
    actor: &str,
    reason: &str,
) -> Result<ChangeRequest> {
    let now = request(tx, tenant, id)?;
    if now.state != "pending" {
        return Err(StoreError::rejected(
            ErrorCode::InvalidTransition,
            format!("change request {id} is already {}", now.state),
        ));
    }
    if now.requested_by == actor {
        return Err(StoreError::rejected(
            ErrorCode::Forbidden,
            format!("change request {id} was filed by {actor}; a second user must decide it"),
        ));
    }
    tx.execute(
        "UPDATE config_requests SET state = ?3, decided_by = ?4, decided_at = ?5, reason = ?6 \
         WHERE tenant = ?1 AND id = ?2",
        params![
            tenant,
            id as i64,
            state,
            actor,
            timestamp(Utc::now()),
            reason
        ],
    )?;
    request(tx, tenant, id)
}
