//! The only crate of autoglm that speaks SQL.
//!
//! SQLite in WAL mode. One writer connection behind a mutex serialises writes
//! (SQLite allows one writer anyway, and waiting on a mutex is cheaper than on
//! `SQLITE_BUSY`); readers come from a pool and see committed snapshots.
//! Group commit: writes that arrive together run as savepoints of one
//! transaction ([`batch`]), committed without a sync, and every write function
//! returns only after a sync of the WAL that followed its commit, shared by
//! the commits that waited together ([`durable`]): a write the console
//! acknowledged is on disk and survives `kill -9` or a power cut.
//!
//! **Architecture Invariant:** every change goes through [`Store::write`], which
//! appends the audit record, and the idempotency record when there is one, in
//! the same transaction as the change.

mod access;
pub mod alerts;
mod audit;
mod batch;
pub mod changes;
pub mod config;
pub mod config_refs;
mod durable;
mod error;
pub mod evaluations;
pub mod filters;
mod idempotency;
mod migrate;
pub mod policies;
pub mod registry;
pub mod services;
pub mod tasks;
pub mod tenancy;
pub mod usage;

use std::path::Path;

use autoglm_core::audit::AuditEvent;
use r2d2_sqlite::SqliteConnectionManager;
use r2d2_sqlite::rusqlite;
use r2d2_sqlite::rusqlite::types::Value;

pub use audit::AuditFilter;
pub use evaluations::NewEvaluation;
// Defined in autoglm-core so that platforms can take it without the store.
pub use autoglm_core::service::StoredService;
/// The transaction type write closures receive.
pub use batch::Transaction;
pub use durable::SyncCounts;
pub use error::StoreError;
pub use idempotency::{IdempotencyKey, StoredResponse};
pub use migrate::MigrationState;
/// The connection type read closures receive.
pub use r2d2_sqlite::rusqlite::Connection;
pub use registry::{ModelFilter, NewVersion, StoredVersion};
pub use services::ServiceFilter;
pub use tasks::{NewTask, TaskFilter};
pub use tenancy::{KeyCredential, NewApiKey, UserCredential};
pub use usage::{USAGE_ROWS, UsageDelta, UsageFilter, day_and_month_start};

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 5000;";
/// The writer's own: its commits are made durable by [`durable::Durability`]
/// (in WAL mode, `NORMAL` still syncs the WAL before each checkpoint).
const WRITER_PRAGMAS: &str = "PRAGMA synchronous = NORMAL;";

/// Handle to the database; cheap to share behind an `Arc`.
pub struct Store {
    writer: batch::Writer,
    durability: durable::Durability,
    readers: r2d2::Pool<SqliteConnectionManager>,
    migrations: MigrationState,
    writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("migrations", &self.migrations)
            .finish()
    }
}

/// Sizes of the reader pool, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Open reader connections.
    pub connections: u32,
    /// Of which idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// What the write closure may change about the audit record of its mutation.
#[derive(Debug)]
pub struct Mutation {
    /// The audit record; `outcome` is set to `success` on commit.
    pub audit: AuditEvent,
    /// Record the response for replay under this key.
    pub idempotency: Option<IdempotencyKey>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let mut writer = Connection::open(path)?;
        writer.execute_batch(PRAGMAS)?;
        let migrations = migrate::run(&mut writer)?;
        writer.execute_batch(WRITER_PRAGMAS)?;
        // Room for every statement a write runs, so none is parsed twice.
        writer.set_prepared_statement_cache_capacity(128);
        let durability = durable::Durability::open(path)?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| c.execute_batch(PRAGMAS));
        let readers = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .build(manager)
            .map_err(StoreError::Pool)?;
        Ok(Store {
            writer: batch::Writer::new(writer),
            durability,
            readers,
            migrations,
            writes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Which migrations ran.
    pub fn migrations(&self) -> MigrationState {
        self.migrations
    }

    /// Commits and the WAL syncs that made them durable.
    pub fn sync_counts(&self) -> SyncCounts {
        self.durability.counts()
    }

    /// The reader pool's sizes.
    pub fn pool_state(&self) -> PoolState {
        let state = self.readers.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.readers.max_size(),
        }
    }

    /// Runs `f` on a pooled reader connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.get().map_err(StoreError::Pool)?;
        f(&conn)
    }

    /// Runs `f` in a write transaction, then appends the audit record (and
    /// the idempotency record when given) in the same transaction.
    /// `respond` turns the result into the response stored for idempotent
    /// replay. Returns once the commit is on disk; writes arriving together
    /// share the transaction and the sync, each in its own savepoint.
    pub fn write<T>(
        &self,
        mutation: Mutation,
        f: impl FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T>,
        respond: impl FnOnce(&T) -> StoredResponse,
    ) -> Result<T> {
        let value = self.writer.run(
            &self.durability,
            |tx| audited(tx, mutation, f, respond),
            None::<fn(&T)>,
        )?;
        self.count_write();
        Ok(value)
    }

    /// Like [`Store::write`], and calls `committed` once the commit is on
    /// disk, still holding the writer: what it publishes (the config center's
    /// changes to watchers) goes out in commit order and never before the
    /// change is durable. The price is that such a write ends its batch and
    /// waits for the sync holding the writer.
    pub fn write_then<T>(
        &self,
        mutation: Mutation,
        f: impl FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T>,
        respond: impl FnOnce(&T) -> StoredResponse,
        committed: impl FnOnce(&T),
    ) -> Result<T> {
        let value = self.writer.run(
            &self.durability,
            |tx| audited(tx, mutation, f, respond),
            Some(committed),
        )?;
        self.count_write();
        Ok(value)
    }

    fn count_write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many audited writes this handle has committed: caches of what
    /// writes change (credentials, roles, limits) compare it to know they
    /// are stale without asking the database.
    pub fn write_count(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Raised by every commit that changed API keys, users, roles or tenants
    /// (their limits), once the change is visible to readers: caches of
    /// resolved credentials compare it to know they are stale, and stay
    /// valid through every other write.
    pub fn access_version(&self) -> u64 {
        self.writer.version_of(access::Watched::Access)
    }

    /// Raised by every commit that changed a policy, once readers can see
    /// it: the console's compiled policies compare it.
    pub fn policy_version(&self) -> u64 {
        self.writer.version_of(access::Watched::Policies)
    }

    /// Raised by every commit that changed a tenant, its quotas, a policy
    /// or a version's stage, once readers can see it: the cluster driver
    /// compares it to know that the tenants' namespaces need applying.
    pub fn tenancy_version(&self) -> u64 {
        self.writer.version_of(access::Watched::Tenancy)
    }

    /// Raised by every commit that changed a filter or a tenant's filter
    /// chain, once readers can see it: the gateway compares it to know
    /// that its filters need loading.
    pub fn filters_version(&self) -> u64 {
        self.writer.version_of(access::Watched::Filters)
    }

    /// Appends an audit record on its own: for requests that failed and so changed nothing.
    pub fn audit_only(&self, event: &AuditEvent) -> Result<()> {
        self.writer.run(
            &self.durability,
            |tx| audit::append(tx, event),
            None::<fn(&())>,
        )
    }

    /// Runs `f` in a write transaction; when it returns a value with an
    /// audit record (a change the system made on its own, such as a task's
    /// state), the record is appended before the commit. `None` changes
    /// nothing and audits nothing.
    pub fn system_write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<Option<(T, AuditEvent)>>,
    ) -> Result<Option<T>> {
        let value = self.writer.run(
            &self.durability,
            |tx| {
                let Some((value, mut event)) = f(tx)? else {
                    return Ok(None);
                };
                event.outcome = "success".to_owned();
                audit::append(tx, &event)?;
                Ok(Some(value))
            },
            None::<fn(&Option<T>)>,
        )?;
        if value.is_some() {
            self.count_write();
        }
        Ok(value)
    }

    /// Runs `f` in a write transaction without an audit record: for
    /// bookkeeping that is not a user's change (key last-used times, bootstrap).
    pub fn bookkeeping<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.writer.run(&self.durability, f, None::<fn(&T)>)
    }
}

/// Appends one more audit record inside a write's transaction: what was
/// decided about the change beside it (a policy decision), committed or
/// rolled back with it.
pub fn append_audit(tx: &Transaction<'_>, event: &AuditEvent) -> Result<()> {
    audit::append(tx, event)
}

/// The part of [`Store::write`] that runs in the transaction: the change,
/// its audit record and its idempotency record.
fn audited<T>(
    tx: &Transaction<'_>,
    mut mutation: Mutation,
    f: impl FnOnce(&Transaction<'_>, &mut AuditEvent) -> Result<T>,
    respond: impl FnOnce(&T) -> StoredResponse,
) -> Result<T> {
    let value = f(tx, &mut mutation.audit)?;
    mutation.audit.outcome = "success".to_owned();
    audit::append(tx, &mutation.audit)?;
    if let Some(key) = &mutation.idempotency {
        idempotency::record(tx, key, &respond(&value))?;
    }
    Ok(value)
}

/// Formats a time the way every table stores it: RFC 3339, microseconds, `Z`.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

/// A value as the JSON text a column stores.
fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::rejected(autoglm_core::error::ErrorCode::Internal, e.to_string()))
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Appends to a list query one condition per label (`column` holds the
/// labels as a JSON object), binding keys and values as parameters.
fn push_label_filters(
    sql: &mut String,
    args: &mut Vec<Value>,
    column: &str,
    labels: &[(String, String)],
) {
    for (key, value) in labels {
        args.push(Value::Text(format!("$.\"{key}\"")));
        args.push(Value::Text(value.clone()));
        sql.push_str(&format!(
            " AND json_extract({column}, ?{}) = ?{}",
            args.len() - 1,
            args.len()
        ));
    }
}

/// Ends a list query with keyset paging by `column`: names after the page
/// token, in order, at most `limit`.
fn push_name_page(
    sql: &mut String,
    args: &mut Vec<Value>,
    column: &str,
    after: Option<&str>,
    limit: i64,
) {
    if let Some(after) = after {
        args.push(Value::Text(after.to_owned()));
        sql.push_str(&format!(" AND {column} > ?{}", args.len()));
    }
    args.push(Value::Integer(limit));
    sql.push_str(&format!(" ORDER BY {column} LIMIT ?{}", args.len()));
}
