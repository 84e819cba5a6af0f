//! Evaluations of model versions. One enters with its `evaluate` task in
//! one write ([`insert_evaluation`]); what it measured is that task's
//! result, read back with the task's state, so the two cannot disagree.

use autoglm_core::error::ErrorCode;
use autoglm_core::evaluation::{Evaluation, EvaluationResult, RequestKind};
use autoglm_core::task::{ServiceChange, TaskKind, TaskState};
use chrono::Utc;
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row};

use crate::Transaction;
use crate::tasks::{self, NewTask};
use crate::{Result, Store, StoreError, parse_json, registry, services, timestamp};

/// An evaluation to start.
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    /// The model.
    pub model: String,
    /// The version to evaluate.
    pub version: i64,
    /// The service whose replicas of the version answer.
    pub service: String,
    /// What every line asks.
    pub kind: RequestKind,
    /// Lines in the dataset.
    pub samples: usize,
    /// Of them, labelled.
    pub labelled: usize,
    /// Requests in flight at once.
    pub concurrency: u32,
    /// The JSONL text, as sent.
    pub dataset: String,
}

const COLUMNS: &str = "e.id, e.model, e.version, e.service, e.kind, e.samples, e.labelled, \
    e.concurrency, e.task_id, t.state, t.result, t.error, e.created_by, e.created_at";

fn evaluation(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Evaluation> {
    let kind: String = r.get(4)?;
    let state: String = r.get(9)?;
    let result: Option<String> = r.get(10)?;
    let error: Option<String> = r.get(11)?;
    let conversion = |what: String| {
        r2d2_sqlite::rusqlite::Error::FromSqlConversionFailure(
            0,
            r2d2_sqlite::rusqlite::types::Type::Text,
            what.into(),
        )
    };
    // The task's result carries the measurements under `evaluation`.
    let result = result
        .as_deref()
        .map(parse_json::<serde_json::Value>)
        .transpose()?
        .and_then(|v| serde_json::from_value::<EvaluationResult>(v["evaluation"].clone()).ok());
    Ok(Evaluation {
        id: r.get(0)?,
        model: r.get(1)?,
        version: r.get(2)?,
        service: r.get(3)?,
        kind: serde_json::from_value(serde_json::Value::String(kind.clone()))
            .map_err(|_| conversion(format!("unknown request kind {kind}")))?,
        samples: r.get(5)?,
        labelled: r.get(6)?,
        concurrency: r.get(7)?,
        task: r.get(8)?,
        state: TaskState::parse(&state).ok_or_else(|| conversion(format!("state {state}")))?,
        result,
        error: error.as_deref().map(parse_json).transpose()?,
        created_by: r.get(12)?,
        created_at: r.get(13)?,
    })
}

fn get(conn: &Connection, tenant: &str, id: i64) -> Result<Evaluation> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM evaluations e JOIN tasks t ON t.id = e.task_id
             WHERE e.tenant = ?1 AND e.id = ?2"
        ),
        (tenant, id),
        evaluation,
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("evaluation {id} does not exist"),
        )
    })
}

/// Records `new` and queues its task, inside a write: the version must
/// exist, and the service must exist and serve it. Returns the evaluation
/// and its task.
pub fn insert_evaluation(
    tx: &Transaction<'_>,
    tenant: &str,
    new: &NewEvaluation,
    created_by: &str,
    request_id: &str,
) -> Result<(Evaluation, autoglm_core::task::Task)> {
    registry::get_version(tx, tenant, &new.model, new.version)?;
    let service = services::find_service(tx, tenant, &new.service)?.ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("service {:?} does not exist", new.service),
        )
    })?;
    let spec = &service.manifest.spec;
    let version = new.version.to_string();
    if spec.model != new.model || !spec.versions.iter().any(|v| v.version == version) {
        let serves: Vec<&str> = spec.versions.iter().map(|v| v.version.as_str()).collect();
        return Err(StoreError::rejected(
            ErrorCode::InvalidBody,
            format!(
                "service: {:?} serves model {} version {}, not version {} of model {}; deploy the version first (a weight of 0 will do)",
                new.service,
                spec.model,
                serves.join(", "),
                new.version,
                new.model
            ),
        ));
    }
    let now = timestamp(Utc::now());
    let kind = serde_json::to_value(new.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    tx.execute(
        "INSERT INTO evaluations (tenant, model, version, service, kind, samples, labelled,
             concurrency, dataset, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        r2d2_sqlite::rusqlite::params![
            tenant,
            new.model,
            new.version,
            new.service,
            kind,
            new.samples as i64,
            new.labelled as i64,
            new.concurrency,
            new.dataset,
            created_by,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    let task = tasks::enqueue(
        tx,
        &NewTask {
            tenant: tenant.to_owned(),
            kind: TaskKind::Evaluate,
            target: format!("evaluations/{id}"),
            change: ServiceChange::default(),
            created_by: created_by.to_owned(),
            request_id: request_id.to_owned(),
        },
    )?;
    tx.execute(
        "UPDATE evaluations SET task_id = ?1 WHERE id = ?2",
        (task.id, id),
    )?;
    Ok((get(tx, tenant, id)?, task))
}

impl Store {
    /// One evaluation.
    pub fn evaluation(&self, tenant: &str, id: i64) -> Result<Evaluation> {
        self.read(|c| get(c, tenant, id))
    }

    /// One evaluation with its dataset's text.
    pub fn evaluation_dataset(&self, tenant: &str, id: i64) -> Result<(Evaluation, String)> {
        self.read(|c| {
            let found = get(c, tenant, id)?;
            let text: String =
                c.query_row("SELECT dataset FROM evaluations WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            Ok((found, text))
        })
    }

    /// The evaluations of a version, newest first (at most `limit`); the
    /// version must exist.
    pub fn evaluations_of(
        &self,
        tenant: &str,
        model: &str,
        version: i64,
        limit: usize,
    ) -> Result<Vec<Evaluation>> {
        self.read(|c| {
            registry::get_version(c, tenant, model, version)?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM evaluations e JOIN tasks t ON t.id = e.task_id
                 WHERE e.tenant = ?1 AND e.model = ?2 AND e.version = ?3
                 ORDER BY e.id DESC LIMIT ?4"
            ))?;
            let found = stmt
                .query_map(
                    r2d2_sqlite::rusqlite::params![tenant, model, version, limit as i64],
                    evaluation,
                )?
                .collect::<std::result::Result<_, _>>()?;
            Ok(found)
        })
    }
}
