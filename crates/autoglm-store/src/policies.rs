//! Policies as code: each tenant's policies and the global ones (under
//! [`GLOBAL`]), every version kept. The Rego
//! and its settings are stored as the JSON the API took (`autoglm-policy`'s
//! `PolicySpec`); this crate only keeps them.

use chrono::Utc;
use r2d2_sqlite::rusqlite::{OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use crate::{Result, Store, StoreError, Transaction, timestamp};
use autoglm_core::error::ErrorCode;

/// The tenant column of the policies that judge every tenant: no tenant's
/// name is empty.
pub const GLOBAL: &str = "";

/// One version of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPolicy {
    /// Its name.
    pub name: String,
    /// 1, 2, …: one per change.
    pub version: i64,
    /// The spec; `None` for the version that deleted it.
    pub spec: Option<Value>,
    /// When this version was written.
    pub created_at: String,
    /// Who wrote it (an audit actor).
    pub created_by: String,
    /// `tenant`, or `global` for a policy that judges every tenant.
    pub scope: &'static str,
}

const COLUMNS: &str = "name, version, spec, created_at, created_by, tenant";

fn stored(row: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<StoredPolicy> {
    let spec: Option<String> = row.get(2)?;
    Ok(StoredPolicy {
        name: row.get(0)?,
        version: row.get(1)?,
        spec: spec.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: row.get(3)?,
        created_by: row.get(4)?,
        scope: scope_of(&row.get::<_, String>(5)?),
    })
}

fn scope_of(tenant: &str) -> &'static str {
    if tenant == GLOBAL { "global" } else { "tenant" }
}

/// The last version of a policy, a deletion included.
fn latest(
    conn: &r2d2_sqlite::rusqlite::Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<StoredPolicy>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM policies WHERE tenant = ?1 AND name = ?2
                 ORDER BY version DESC LIMIT 1"
            ),
            (tenant, name),
            stored,
        )
        .optional()?)
}

/// Appends the version after `latest` (a deletion without `spec`).
fn append_version(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    latest: Option<&StoredPolicy>,
    spec: Option<&Value>,
    actor: &str,
) -> Result<StoredPolicy> {
    let version = latest.map_or(1, |p| p.version + 1);
    let created_at = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO policies (tenant, name, version, spec, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (
            tenant,
            name,
            version,
            spec.map(Value::to_string),
            &created_at,
            actor,
        ),
    )?;
    Ok(StoredPolicy {
        name: name.to_owned(),
        version,
        spec: spec.cloned(),
        created_at,
        created_by: actor.to_owned(),
        scope: scope_of(tenant),
    })
}

/// Writes a new version of the policy `name` of `tenant` (its first when it
/// does not exist or was deleted); `None` when `spec` equals the current
/// version's, which then stays.
pub fn put_policy(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    spec: &Value,
    actor: &str,
) -> Result<Option<StoredPolicy>> {
    let latest = latest(tx, tenant, name)?;
    if latest.as_ref().and_then(|p| p.spec.as_ref()) == Some(spec) {
        return Ok(None);
    }
    append_version(tx, tenant, name, latest.as_ref(), Some(spec), actor).map(Some)
}

/// Deletes the policy: a last version without a spec.
pub fn delete_policy(tx: &Transaction<'_>, tenant: &str, name: &str, actor: &str) -> Result<()> {
    match latest(tx, tenant, name)? {
        Some(current) if current.spec.is_some() => {
            append_version(tx, tenant, name, Some(&current), None, actor).map(drop)
        }
        _ => Err(not_found(name)),
    }
}

fn not_found(name: &str) -> StoreError {
    StoreError::rejected(ErrorCode::NotFound, format!("policy {name} not found"))
}

/// The current version of a policy: the last, unless it deleted it.
pub fn current_policy(
    conn: &r2d2_sqlite::rusqlite::Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<StoredPolicy>> {
    Ok(latest(conn, tenant, name)?.filter(|p| p.spec.is_some()))
}

impl Store {
    /// The current policies of `tenant` (or, with [`GLOBAL`], the global
    /// ones), by name.
    pub fn list_policies(&self, tenant: &str) -> Result<Vec<StoredPolicy>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM policies p WHERE tenant = ?1
                 AND version = (SELECT MAX(version) FROM policies q
                                WHERE q.tenant = p.tenant AND q.name = p.name)
                 AND spec IS NOT NULL
                 ORDER BY name"
            ))?;
            let rows = stmt.query_map([tenant], stored)?;
            Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The policies that judge `tenant`'s writes with their stored specs,
    /// in the order they judge: the global ones first, named `global/NAME`
    /// (a tenant's own may share a name), then the tenant's own.
    pub fn judging_policies(&self, tenant: &str) -> Result<Vec<(String, Value)>> {
        let global = self.list_policies(GLOBAL)?;
        let own = self.list_policies(tenant)?;
        Ok(global
            .into_iter()
            .map(|p| (format!("global/{}", p.name), p.spec))
            .chain(own.into_iter().map(|p| (p.name, p.spec)))
            .filter_map(|(name, spec)| Some((name, spec?)))
            .collect())
    }

    /// The stage of every version of each of `tenant`'s models, by model
    /// and version number.
    pub fn all_version_stages(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Map<String, Value>>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT model, version, stage FROM model_versions WHERE tenant = ?1",
            )?;
            let mut stages = std::collections::BTreeMap::<String, serde_json::Map<_, _>>::new();
            let mut rows = stmt.query([tenant])?;
            while let Some(row) = rows.next()? {
                stages.entry(row.get(0)?).or_default().insert(
                    row.get::<_, i64>(1)?.to_string(),
                    Value::String(row.get(2)?),
                );
            }
            Ok(stages)
        })
    }

    /// The current version of one policy.
    pub fn policy(&self, tenant: &str, name: &str) -> Result<StoredPolicy> {
        self.read(|c| current_policy(c, tenant, name))?
            .ok_or_else(|| not_found(name))
    }

    /// Every version of one policy, newest first (deletions included).
    pub fn policy_history(&self, tenant: &str, name: &str) -> Result<Vec<StoredPolicy>> {
        let history = self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM policies WHERE tenant = ?1 AND name = ?2
                 ORDER BY version DESC"
            ))?;
            let rows = stmt.query_map([tenant, name], stored)?;
            Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?)
        })?;
        if history.is_empty() {
            return Err(not_found(name));
        }
        Ok(history)
    }
}

/// The stage of each version of `model` in `tenant`, by version number, for
/// a policy's `input.context.versionStages`.
pub fn version_stages(
    conn: &r2d2_sqlite::rusqlite::Connection,
    tenant: &str,
    model: &str,
) -> Result<serde_json::Map<String, Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, stage FROM model_versions WHERE tenant = ?1 AND model = ?2",
    )?;
    let rows = stmt.query_map((tenant, model), |r| {
        Ok((r.get::<_, i64>(0)?.to_string(), Value::String(r.get(1)?)))
    })?;
    Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<_>>()?)
}
