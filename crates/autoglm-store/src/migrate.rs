//! Versioned migrations: one SQL file per schema version, applied in order,
//! each in its own transaction, the applied version kept in `user_version`.

use r2d2_sqlite::rusqlite::Connection;

use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_services.sql"),
    include_str!("../migrations/0003_gateway.sql"),
    include_str!("../migrations/0004_tasks.sql"),
    include_str!("../migrations/0005_rollouts.sql"),
    include_str!("../migrations/0006_evaluations.sql"),
    include_str!("../migrations/0007_alerts.sql"),
    include_str!("../migrations/0008_config.sql"),
    include_str!("../migrations/0009_policies.sql"),
    include_str!("../migrations/0010_quotas.sql"),
    include_str!("../migrations/0011_filters.sql"),
];

/// Schema versions before and after opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationState {
    /// The version found on disk.
    pub found: i64,
    /// The version now (the latest this build knows).
    pub current: i64,
}

/// Brings the schema up to date.
pub fn run(conn: &mut Connection) -> Result<MigrationState> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied migration");
    }
    Ok(MigrationState {
        found,
        current: known,
    })
}
