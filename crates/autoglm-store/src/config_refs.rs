//! Services and the config keys they reference (`spec.configRef`): the
//! version a service's replicas should read, the services a commit of a
//! key must roll, and the check that a built-in runtime can read the key
//! (its runtime settings), made on both sides: when a service comes to
//! reference a key, and when a referenced key gets new content.

use autoglm_core::config::settings::RuntimeSettings;
use autoglm_core::config::{ConfigFormat, ConfigVersion};
use autoglm_core::error::FieldError;
use autoglm_core::service::{ConfigRef, ModelServiceSpec, RuntimeSpec};
use r2d2_sqlite::rusqlite::Connection;

use crate::config::{self, KeyPath};
use crate::{Result, StoreError, parse_json};

fn path<'a>(tenant: &'a str, r: &'a ConfigRef) -> KeyPath<'a> {
    KeyPath {
        tenant,
        environment: r.environment(),
        group: r.group(),
        key: &r.key,
    }
}

/// The live version `r` points at; `None` when the key is absent or deleted.
pub fn referenced(conn: &Connection, tenant: &str, r: &ConfigRef) -> Result<Option<ConfigVersion>> {
    Ok(config::current(conn, path(tenant, r))?.filter(|v| !v.deleted))
}

/// Refuses a `configRef` whose environment or key does not exist (422,
/// naming the field), as a service's model must exist before it is served,
/// and one whose content a built-in runtime cannot take as its settings.
pub fn check_reference(conn: &Connection, tenant: &str, spec: &ModelServiceSpec) -> Result<()> {
    let Some(r) = &spec.config_ref else {
        return Ok(());
    };
    let at = path(tenant, r);
    let refused =
        |message: String| StoreError::Invalid(vec![FieldError::new("spec.configRef", message)]);
    match config::existing_environment(conn, tenant, at.environment) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            return Err(refused(format!(
                "config environment {:?} does not exist",
                at.environment
            )));
        }
        Err(e) => return Err(e),
    }
    let Some(live) = referenced(conn, tenant, r)? else {
        return Err(refused(format!(
            "config key {at} does not exist (or was deleted); publish it first"
        )));
    };
    if !matches!(spec.runtime, RuntimeSpec::Builtin(_)) {
        return Ok(());
    }
    runtime_settings(live.format, &live.content, |e| {
        FieldError::new(
            "spec.configRef",
            format!(
                "config key {at} is not runtime settings for the built-in runtime: {}: {}",
                e.path, e.message
            ),
        )
    })
}

/// Refuses content a built-in runtime could not take as its settings, each
/// wrong field as `refusal` words it.
fn runtime_settings(
    format: ConfigFormat,
    content: &str,
    refusal: impl Fn(FieldError) -> FieldError,
) -> Result<()> {
    RuntimeSettings::parse(format, content)
        .map(drop)
        .map_err(|wrong| StoreError::Invalid(wrong.into_iter().map(refusal).collect()))
}

/// Refuses new content of a key that a service on the built-in runtime
/// reads, when that runtime could not take it as its settings: the replicas
/// it would roll to would not start.
pub fn check_readers(
    conn: &Connection,
    at: KeyPath<'_>,
    format: ConfigFormat,
    content: &str,
) -> Result<()> {
    let readers = referring(conn, at.tenant, at.environment, at.group, at.key)?;
    let Some((name, _)) = readers
        .iter()
        .find(|(_, spec)| matches!(spec.runtime, RuntimeSpec::Builtin(_)))
    else {
        return Ok(());
    };
    runtime_settings(format, content, |e| {
        FieldError::new(
            format!("content.{}", e.path),
            format!(
                "{} (service {name:?} reads this key as its built-in runtime's settings)",
                e.message
            ),
        )
    })
}

/// The tenant's services whose `configRef` is `environment`/`group`/`key`.
pub fn referrers(
    conn: &Connection,
    tenant: &str,
    environment: &str,
    group: &str,
    key: &str,
) -> Result<Vec<String>> {
    Ok(referring(conn, tenant, environment, group, key)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The tenant's services whose `configRef` is `environment`/`group`/`key`, with their specs.
fn referring(
    conn: &Connection,
    tenant: &str,
    environment: &str,
    group: &str,
    key: &str,
) -> Result<Vec<(String, ModelServiceSpec)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, spec FROM services \
         WHERE tenant = ?1 AND json_extract(spec, '$.configRef.key') = ?2 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([tenant, key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?;
    let mut found = Vec::new();
    for (name, spec) in rows {
        let spec: ModelServiceSpec = parse_json(&spec)?;
        if spec
            .config_ref
            .as_ref()
            .is_some_and(|r| r.refers_to(environment, group, key))
        {
            found.push((name, spec));
        }
    }
    Ok(found)
}

/// Every service, of every tenant, that references a config key.
pub fn all_referrers(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tenant, name FROM services WHERE json_extract(spec, '$.configRef') IS NOT NULL \
         ORDER BY tenant, name",
    )?;
    Ok(stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<r2d2_sqlite::rusqlite::Result<_>>()?)
}
