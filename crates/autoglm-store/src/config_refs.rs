//! Services and the config keys they reference (`spec.configRef`): the
//! version a service's replicas should read, and the services a commit of a
//! key must roll.

use autoglm_core::config::ConfigVersion;
use autoglm_core::error::FieldError;
use autoglm_core::service::ConfigRef;
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
/// naming the field), as a service's model must exist before it is served.
pub fn check_reference(conn: &Connection, tenant: &str, r: &ConfigRef) -> Result<()> {
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
    if referenced(conn, tenant, r)?.is_none() {
        return Err(refused(format!(
            "config key {at} does not exist (or was deleted); publish it first"
        )));
    }
    Ok(())
}

/// The tenant's services whose `configRef` is `environment`/`group`/`key`.
pub fn referrers(
    conn: &Connection,
    tenant: &str,
    environment: &str,
    group: &str,
    key: &str,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, json_extract(spec, '$.configRef') FROM services \
         WHERE tenant = ?1 AND json_extract(spec, '$.configRef.key') = ?2 ORDER BY name",
    )?;
    let rows = stmt
        .query_map([tenant, key], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<r2d2_sqlite::rusqlite::Result<Vec<_>>>()?;
    let mut names = Vec::new();
    for (name, reference) in rows {
        let reference: ConfigRef = parse_json(&reference)?;
        if reference.refers_to(environment, group, key) {
            names.push(name);
        }
    }
    Ok(names)
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
