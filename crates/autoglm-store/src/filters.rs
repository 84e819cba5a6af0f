//! Gateway filters: each tenant's uploaded proxy-wasm modules (the bytes
//! and what the console learned checking them), and its filter chain. The
//! modules are checked by the console (`autoglm-filters`) before they are
//! kept; this crate only keeps them.

use chrono::Utc;
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row};

use crate::{Result, StoreError, Transaction, json, parse_json, parse_time, timestamp};
use autoglm_core::error::ErrorCode;
use autoglm_core::filter::{Filter, FilterRef};

/// A module to keep, with what checking it told.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    pub module: &'a [u8],
    /// SHA-256, hex.
    pub digest: &'a str,
    pub abi: &'a str,
    /// Who uploads it (an audit actor).
    pub by: &'a str,
}

const COLUMNS: &str = "name, digest, size, abi, uploaded_by, created_at, updated_at";

fn filter(row: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Filter> {
    Ok(Filter {
        name: row.get(0)?,
        digest: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        abi: row.get(3)?,
        uploaded_by: row.get(4)?,
        created_at: parse_time(&row.get::<_, String>(5)?)?,
        updated_at: parse_time(&row.get::<_, String>(6)?)?,
        attached_to: Vec::new(),
    })
}

/// Keeps `upload` as filter `name` of `tenant`, replacing its module when
/// it has one; whether it is new.
pub fn put(tx: &Transaction<'_>, tenant: &str, name: &str, upload: Upload<'_>) -> Result<bool> {
    let now = timestamp(Utc::now());
    let replaced = tx.execute(
        "UPDATE filters SET module = ?3, digest = ?4, size = ?5, abi = ?6, uploaded_by = ?7, updated_at = ?8
         WHERE tenant = ?1 AND name = ?2",
        (tenant, name, upload.module, upload.digest, upload.module.len() as i64, upload.abi, upload.by, &now),
    )?;
    if replaced == 0 {
        tx.execute(
            "INSERT INTO filters (tenant, name, module, digest, size, abi, uploaded_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            (tenant, name, upload.module, upload.digest, upload.module.len() as i64, upload.abi, upload.by, &now),
        )?;
    }
    Ok(replaced == 0)
}

/// Filter `name` of `tenant`, without its module.
pub fn get(conn: &Connection, tenant: &str, name: &str) -> Result<Option<Filter>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM filters WHERE tenant = ?1 AND name = ?2"),
            (tenant, name),
            filter,
        )
        .optional()?)
}

/// Filter `name` of `tenant`, or a not-found error naming it.
pub fn require(conn: &Connection, tenant: &str, name: &str) -> Result<Filter> {
    get(conn, tenant, name)?.ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("no filter {name:?} in tenant {tenant:?}"),
        )
    })
}

/// The module's bytes of filter `name` of `tenant`.
pub fn module(conn: &Connection, tenant: &str, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT module FROM filters WHERE tenant = ?1 AND name = ?2",
            (tenant, name),
            |r| r.get(0),
        )
        .optional()?)
}

/// Every filter of `tenant`, by name, without modules.
pub fn list(conn: &Connection, tenant: &str) -> Result<Vec<Filter>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM filters WHERE tenant = ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([tenant], filter)?;
    Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<_>>()?)
}

/// Every filter of every tenant: `(tenant, name, digest)`.
pub fn digests(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut stmt =
        conn.prepare("SELECT tenant, name, digest FROM filters ORDER BY tenant, name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<_>>()?)
}

/// Deletes filter `name` of `tenant`; whether it was there.
pub fn delete(tx: &Transaction<'_>, tenant: &str, name: &str) -> Result<bool> {
    Ok(tx.execute(
        "DELETE FROM filters WHERE tenant = ?1 AND name = ?2",
        (tenant, name),
    )? > 0)
}

/// The filter chain of `tenant` (empty when it has none).
pub fn chain(conn: &Connection, tenant: &str) -> Result<Vec<FilterRef>> {
    Ok(conn
        .query_row(
            "SELECT chain FROM filter_chains WHERE tenant = ?1",
            [tenant],
            |r| parse_json(&r.get::<_, String>(0)?),
        )
        .optional()?
        .unwrap_or_default())
}

/// Every tenant's filter chain that is not empty.
pub fn chains(conn: &Connection) -> Result<Vec<(String, Vec<FilterRef>)>> {
    let mut stmt = conn.prepare("SELECT tenant, chain FROM filter_chains ORDER BY tenant")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, parse_json(&r.get::<_, String>(1)?)?))
    })?;
    Ok(rows.collect::<r2d2_sqlite::rusqlite::Result<_>>()?)
}

/// Sets the filter chain of `tenant`; an empty one removes it.
pub fn set_chain(tx: &Transaction<'_>, tenant: &str, chain: &[FilterRef]) -> Result<()> {
    if chain.is_empty() {
        tx.execute("DELETE FROM filter_chains WHERE tenant = ?1", [tenant])?;
        return Ok(());
    }
    tx.execute(
        "INSERT INTO filter_chains (tenant, chain, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant) DO UPDATE SET chain = excluded.chain, updated_at = excluded.updated_at",
        (tenant, json(&chain)?, timestamp(Utc::now())),
    )?;
    Ok(())
}

/// Every attachment of filter `name` in `tenant`: where (`tenant`, its
/// chain, or `service/NAME`, a service's `spec.filters`) and as what.
pub fn attachments(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Vec<(String, FilterRef)>> {
    let mut found: Vec<(String, FilterRef)> = chain(conn, tenant)?
        .into_iter()
        .filter(|f| f.name == name)
        .map(|f| ("tenant".to_owned(), f))
        .collect();
    let mut stmt =
        conn.prepare("SELECT name, spec FROM services WHERE tenant = ?1 ORDER BY name")?;
    let rows = stmt.query_map([tenant], |r| {
        let spec: autoglm_core::service::ModelServiceSpec = parse_json(&r.get::<_, String>(1)?)?;
        Ok((r.get::<_, String>(0)?, spec.filters))
    })?;
    for row in rows {
        let (service, filters) = row?;
        found.extend(
            filters
                .into_iter()
                .filter(|f| f.name == name)
                .map(|f| (format!("service/{service}"), f)),
        );
    }
    Ok(found)
}

/// Where filter `name` of `tenant` is attached (see [`attachments`]).
pub fn attached_to(conn: &Connection, tenant: &str, name: &str) -> Result<Vec<String>> {
    Ok(attachments(conn, tenant, name)?
        .into_iter()
        .map(|(at, _)| at)
        .collect())
}
