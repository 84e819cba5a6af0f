//! Models and versions.

use std::collections::BTreeMap;

use autoglm_core::artifact::{ArtifactFile, ArtifactFormat};
use autoglm_core::error::ErrorCode;
use autoglm_core::registry::{
    Model, ModelVersion, SetStage, UpdateModel, VersionSource, VersionSpec,
};
use autoglm_core::stage::{Stage, check_transition};
use chrono::Utc;
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};

use crate::Transaction;
use crate::{
    Result, Store, StoreError, json, parse_json, parse_time, push_label_filters, push_name_page,
    services, timestamp,
};

/// Which models to list.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter {
    /// The tenant.
    pub tenant: String,
    /// Only names containing this.
    pub name_contains: Option<String>,
    /// Only models carrying every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Only models with a version in this stage.
    pub stage: Option<Stage>,
    /// Only names after this one (the page token).
    pub after: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// A version to insert; its number is assigned by the store.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Metadata and lineage.
    pub spec: VersionSpec,
    /// `sha256:...`.
    pub digest: String,
    /// Total bytes.
    pub size: u64,
    /// Main format.
    pub format: ArtifactFormat,
    /// The files.
    pub files: Vec<ArtifactFile>,
    /// How they arrived.
    pub source: VersionSource,
    /// Where the files are, relative to the artifact root.
    pub storage_dir: String,
    /// Who is creating it.
    pub created_by: String,
}

/// A version with where its files are kept.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// The version.
    pub version: ModelVersion,
    /// Its folder, relative to the artifact root.
    pub storage_dir: String,
}

const MODEL_COLUMNS: &str = "m.name, m.tenant, m.description, m.labels, m.created_at, m.updated_at,
    (SELECT count(*) FROM model_versions v WHERE v.tenant = m.tenant AND v.model = m.name),
    (SELECT max(version) FROM model_versions v WHERE v.tenant = m.tenant AND v.model = m.name)";

fn model(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Model> {
    Ok(Model {
        name: r.get(0)?,
        tenant: r.get(1)?,
        description: r.get(2)?,
        labels: parse_json(&r.get::<_, String>(3)?)?,
        created_at: parse_time(&r.get::<_, String>(4)?)?,
        updated_at: parse_time(&r.get::<_, String>(5)?)?,
        version_count: r.get(6)?,
        latest_version: r.get(7)?,
    })
}

const VERSION_COLUMNS: &str =
    "model, version, digest, size, format, files, spec, stage, source, created_by,
    created_at, stage_changed_at, storage_dir";

fn version(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<StoredVersion> {
    let text = |i| -> r2d2_sqlite::rusqlite::Result<String> { r.get(i) };
    let quoted = |s: String| format!("{s:?}");
    Ok(StoredVersion {
        version: ModelVersion {
            model: r.get(0)?,
            version: r.get(1)?,
            digest: r.get(2)?,
            size: r.get::<_, i64>(3)? as u64,
            format: parse_json(&quoted(text(4)?))?,
            files: parse_json(&text(5)?)?,
            spec: parse_json(&text(6)?)?,
            stage: parse_json(&quoted(text(7)?))?,
            source: parse_json(&quoted(text(8)?))?,
            created_by: r.get(9)?,
            created_at: parse_time(&text(10)?)?,
            stage_changed_at: parse_time(&text(11)?)?,
        },
        storage_dir: r.get(12)?,
    })
}

fn not_found_model(name: &str) -> StoreError {
    StoreError::rejected(
        ErrorCode::NotFound,
        format!("model {name:?} does not exist"),
    )
}

fn not_found_version(name: &str, v: i64) -> StoreError {
    StoreError::rejected(
        ErrorCode::NotFound,
        format!("model {name:?} has no version {v}"),
    )
}

/// One model, inside a write or a read.
pub fn get_model(conn: &Connection, tenant: &str, name: &str) -> Result<Model> {
    conn.prepare_cached(&format!(
        "SELECT {MODEL_COLUMNS} FROM models m WHERE tenant = ?1 AND name = ?2"
    ))?
    .query_row([tenant, name], model)
    .optional()?
    .ok_or_else(|| not_found_model(name))
}

/// A version of `name` in `tenant`, read through `conn` (a write's transaction).
pub fn get_version(conn: &Connection, tenant: &str, name: &str, v: i64) -> Result<StoredVersion> {
    conn.query_row(
        &format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE tenant = ?1 AND model = ?2 AND version = ?3"),
        (tenant, name, v),
        version,
    )
    .optional()?
    .ok_or_else(|| not_found_version(name, v))
}

/// Creates a model, inside a write.
pub fn create_model(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    description: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Result<Model> {
    let now = timestamp(Utc::now());
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO models (tenant, name, description, labels, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute((tenant, name, description, json(labels)?, &now))?;
    if inserted == 0 {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!("model {name:?} already exists"),
        ));
    }
    get_model(tx, tenant, name)
}

/// Replaces the fields present in `update`, inside a write.
pub fn update_model(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    update: &UpdateModel,
) -> Result<Model> {
    let current = get_model(tx, tenant, name)?;
    let description = update
        .description
        .as_deref()
        .or(current.description.as_deref());
    let labels = update.labels.as_ref().unwrap_or(&current.labels);
    tx.execute(
        "UPDATE models SET description = ?1, labels = ?2, updated_at = ?3 WHERE tenant = ?4 AND name = ?5",
        (description, json(labels)?, timestamp(Utc::now()), tenant, name),
    )?;
    get_model(tx, tenant, name)
}

fn refuse_in_use(name: &str, stage: Stage, version: i64) -> Result<()> {
    if stage.in_use() {
        return Err(StoreError::rejected(
            ErrorCode::InUse,
            format!(
                "version {version} of {name:?} is in stage {}; archive it first",
                stage.as_str()
            ),
        ));
    }
    Ok(())
}

/// Deletes a model and its versions, inside a write; returns the folders to remove.
pub fn delete_model(tx: &Transaction<'_>, tenant: &str, name: &str) -> Result<Vec<String>> {
    get_model(tx, tenant, name)?;
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions WHERE tenant = ?1 AND model = ?2"
    ))?;
    let versions: Vec<StoredVersion> = stmt
        .query_map([tenant, name], version)?
        .collect::<Result<_, _>>()?;
    for v in &versions {
        refuse_in_use(name, v.version.stage, v.version.version)?;
    }
    services::refuse_model_served(tx, tenant, name)?;
    tx.execute(
        "DELETE FROM models WHERE tenant = ?1 AND name = ?2",
        [tenant, name],
    )?;
    Ok(versions.into_iter().map(|v| v.storage_dir).collect())
}

/// Assigns the next version number and inserts the version, inside a write.
pub fn insert_version(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    new: &NewVersion,
) -> Result<ModelVersion> {
    let number: i64 = tx
        .query_row(
            "SELECT next_version FROM models WHERE tenant = ?1 AND name = ?2",
            [tenant, name],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| not_found_model(name))?;
    if let Some(parent) = new.spec.parent {
        get_version(tx, tenant, name, parent).map_err(|_| {
            StoreError::rejected(
                ErrorCode::InvalidBody,
                format!("parent version {parent} of {name:?} does not exist"),
            )
        })?;
    }
    let now = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO model_versions (tenant, model, version, digest, size, format, files, spec, stage, source,
             storage_dir, created_by, created_at, stage_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'none', ?9, ?10, ?11, ?12, ?12)",
        params_from_iter([
            Value::Text(tenant.to_owned()),
            Value::Text(name.to_owned()),
            Value::Integer(number),
            Value::Text(new.digest.clone()),
            Value::Integer(new.size as i64),
            Value::Text(json(&new.format)?.trim_matches('"').to_owned()),
            Value::Text(json(&new.files)?),
            Value::Text(json(&new.spec)?),
            Value::Text(new.source.as_str().to_owned()),
            Value::Text(new.storage_dir.clone()),
            Value::Text(new.created_by.clone()),
            Value::Text(now),
        ]),
    )?;
    tx.execute(
        "UPDATE models SET next_version = ?1, updated_at = updated_at WHERE tenant = ?2 AND name = ?3",
        (number + 1, tenant, name),
    )?;
    Ok(get_version(tx, tenant, name, number)?.version)
}

/// Moves a version to another stage, inside a write.
pub fn set_stage(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    v: i64,
    change: &SetStage,
) -> Result<ModelVersion> {
    let current = get_version(tx, tenant, name, v)?.version;
    check_transition(current.stage, change.stage)
        .map_err(|why| StoreError::rejected(ErrorCode::InvalidTransition, why.to_string()))?;
    if change.stage == Stage::Archived {
        services::refuse_version_served(tx, tenant, name, v, "archiving")?;
    }
    let now = timestamp(Utc::now());
    if change.stage == Stage::Production && change.archive_others {
        let mut stmt = tx.prepare_cached(
            "SELECT version FROM model_versions
             WHERE tenant = ?1 AND model = ?2 AND stage = 'production' AND version != ?3",
        )?;
        let others: Vec<i64> = stmt
            .query_map((tenant, name, v), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for other in others {
            services::refuse_version_served(tx, tenant, name, other, "archiving")?;
        }
        tx.execute(
            "UPDATE model_versions SET stage = 'archived', stage_changed_at = ?1
             WHERE tenant = ?2 AND model = ?3 AND stage = 'production' AND version != ?4",
            (&now, tenant, name, v),
        )?;
    }
    tx.execute(
        "UPDATE model_versions SET stage = ?1, stage_changed_at = ?2 WHERE tenant = ?3 AND model = ?4 AND version = ?5",
        (change.stage.as_str(), &now, tenant, name, v),
    )?;
    Ok(get_version(tx, tenant, name, v)?.version)
}

/// Deletes a version not in use, inside a write; returns its folder.
pub fn delete_version(tx: &Transaction<'_>, tenant: &str, name: &str, v: i64) -> Result<String> {
    let current = get_version(tx, tenant, name, v)?;
    refuse_in_use(name, current.version.stage, v)?;
    services::refuse_version_served(tx, tenant, name, v, "deleting")?;
    tx.execute(
        "DELETE FROM model_versions WHERE tenant = ?1 AND model = ?2 AND version = ?3",
        (tenant, name, v),
    )?;
    Ok(current.storage_dir)
}

impl Store {
    /// One model.
    pub fn model(&self, tenant: &str, name: &str) -> Result<Model> {
        self.read(|c| get_model(c, tenant, name))
    }

    /// A page of models, by name.
    pub fn list_models(&self, filter: &ModelFilter) -> Result<Vec<Model>> {
        self.read(|c| {
            let mut sql = format!("SELECT {MODEL_COLUMNS} FROM models m WHERE m.tenant = ?1");
            let mut args = vec![Value::Text(filter.tenant.clone())];
            if let Some(q) = &filter.name_contains {
                args.push(Value::Text(q.clone()));
                sql.push_str(&format!(" AND instr(m.name, ?{}) > 0", args.len()));
            }
            push_label_filters(&mut sql, &mut args, "m.labels", &filter.labels);
            if let Some(stage) = filter.stage {
                args.push(Value::Text(stage.as_str().to_owned()));
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM model_versions v WHERE v.tenant = m.tenant AND v.model = m.name AND v.stage = ?{})",
                    args.len()
                ));
            }
            push_name_page(&mut sql, &mut args, "m.name", filter.after.as_deref(), filter.limit);
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), model)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// One version, with its folder.
    pub fn version(&self, tenant: &str, name: &str, v: i64) -> Result<StoredVersion> {
        self.read(|c| get_version(c, tenant, name, v))
    }

    /// A page of a model's versions, newest first, below `before` when given.
    pub fn list_versions(
        &self,
        tenant: &str,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ModelVersion>> {
        self.read(|c| {
            get_model(c, tenant, name)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM model_versions WHERE tenant = ?1 AND model = ?2
                 AND (?3 IS NULL OR version < ?3) ORDER BY version DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map((tenant, name, before, limit), version)?;
            Ok(rows
                .map(|r| r.map(|s| s.version))
                .collect::<Result<_, _>>()?)
        })
    }

    /// Every version folder the database refers to, to sweep orphans left by a crash.
    pub fn storage_dirs(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT storage_dir FROM model_versions")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}
