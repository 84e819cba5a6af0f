//! The audit log table: appending chained records, filtering, verifying.

use autoglm_core::audit::{
    AuditEvent, AuditRecord, ChainVerification, ChainVerifier, GENESIS_HASH, chain_hash,
};
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};

use crate::Transaction;
use crate::{Result, Store};

/// Which records to list; all fields narrow the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's records.
    pub tenant: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only targets starting with this.
    pub target_prefix: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only records at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only records before this RFC 3339 time.
    pub until: Option<String>,
    /// Only records with a sequence number below this (paging backwards).
    pub before_seq: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

pub(crate) fn append(tx: &Transaction<'_>, event: &AuditEvent) -> Result<()> {
    let last: Option<(i64, String)> = tx
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = last.map_or((1, GENESIS_HASH.to_owned()), |(s, h)| (s + 1, h));
    let hash = chain_hash(&prev, seq, event);
    tx.prepare_cached(
        "INSERT INTO audit_log (seq, time, actor, tenant, action, target, request_id, outcome, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute((
            seq,
            &event.time,
            &event.actor,
            &event.tenant,
            &event.action,
            &event.target,
            &event.request_id,
            &event.outcome,
            &prev,
            &hash,
        ),
    )?;
    Ok(())
}

fn record(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: r.get(0)?,
        event: AuditEvent {
            time: r.get(1)?,
            actor: r.get(2)?,
            tenant: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            request_id: r.get(6)?,
            outcome: r.get(7)?,
        },
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

const COLUMNS: &str =
    "seq, time, actor, tenant, action, target, request_id, outcome, prev_hash, hash";

fn list(conn: &Connection, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut eq = |column: &str, value: &Option<String>, op: &str| {
        if let Some(v) = value {
            args.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} {op} ?{}", args.len()));
        }
    };
    eq("tenant", &filter.tenant, "=");
    eq("actor", &filter.actor, "=");
    eq("action", &filter.action, "=");
    eq("outcome", &filter.outcome, "=");
    eq("time", &filter.since, ">=");
    eq("time", &filter.until, "<");
    if let Some(prefix) = &filter.target_prefix {
        args.push(Value::Text(prefix.clone()));
        sql.push_str(&format!(
            " AND substr(target, 1, length(?{n})) = ?{n}",
            n = args.len()
        ));
    }
    if let Some(seq) = filter.before_seq {
        args.push(Value::Integer(seq));
        sql.push_str(&format!(" AND seq < ?{}", args.len()));
    }
    args.push(Value::Integer(filter.limit));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Store {
    /// Lists audit records, newest first.
    pub fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        self.read(|conn| list(conn, filter))
    }

    /// Walks the whole chain from the first record.
    pub fn audit_verify(&self) -> Result<ChainVerification> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            let mut verifier = ChainVerifier::default();
            while let Some(row) = rows.next()? {
                verifier.push(&record(row)?);
            }
            Ok(verifier.finish())
        })
    }
}
