//! Alert rules, silences, incidents and their timelines, notifications (a
//! dead letter is a notification that ran out of attempts), and playbook
//! runs. The evaluator writes through `Store::system_write` as
//! `system:alerts`; users through `Store::write` with their own audit.

use std::collections::BTreeMap;

use autoglm_core::alert::{
    AlertRule, Incident, IncidentState, Notification, Silence, SilenceSpec, TimelineEntry,
    TimelineKind,
};
use autoglm_core::error::{ErrorCode, FieldError};
use chrono::{DateTime, Utc};
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::Transaction;
use crate::{Result, Store, StoreError, json, parse_json, parse_time, services, timestamp};

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRule {
    /// Its tenant.
    #[serde(skip)]
    pub tenant: String,
    /// The rule as written.
    #[serde(flatten)]
    pub rule: AlertRule,
    /// Who wrote it last.
    pub created_by: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn stored_rule(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<StoredRule> {
    Ok(StoredRule {
        tenant: r.get(0)?,
        rule: parse_json(&r.get::<_, String>(1)?)?,
        created_by: r.get(2)?,
        created_at: parse_time(&r.get::<_, String>(3)?)?,
        updated_at: parse_time(&r.get::<_, String>(4)?)?,
    })
}

const RULE_COLUMNS: &str = "tenant, spec, created_by, created_at, updated_at";

/// Creates or replaces rule `rule.name`, inside a write; its service, when
/// it names one, must exist. Returns the rule and whether it is new.
pub fn put_rule(
    tx: &Transaction<'_>,
    tenant: &str,
    rule: &AlertRule,
    actor: &str,
) -> Result<(StoredRule, bool)> {
    if let Some(service) = &rule.service
        && services::find_service(tx, tenant, service)?.is_none()
    {
        return Err(StoreError::Invalid(vec![FieldError::new(
            "service",
            format!("service {service:?} does not exist in this tenant"),
        )]));
    }
    let now = timestamp(Utc::now());
    let spec = json(rule)?;
    let changed = tx.execute(
        "UPDATE alert_rules SET spec = ?1, created_by = ?2, updated_at = ?3 WHERE tenant = ?4 AND name = ?5",
        (&spec, actor, &now, tenant, &rule.name),
    )?;
    if changed == 0 {
        tx.execute(
            "INSERT INTO alert_rules (tenant, name, spec, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            (tenant, &rule.name, &spec, actor, &now),
        )?;
    }
    Ok((get_rule(tx, tenant, &rule.name)?, changed == 0))
}

fn get_rule(conn: &Connection, tenant: &str, name: &str) -> Result<StoredRule> {
    conn.query_row(
        &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE tenant = ?1 AND name = ?2"),
        (tenant, name),
        stored_rule,
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("alert rule {name:?} does not exist"),
        )
    })
}

/// Whether rule `name` exists.
pub fn rule_exists(conn: &Connection, tenant: &str, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM alert_rules WHERE tenant = ?1 AND name = ?2",
            (tenant, name),
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Deletes rule `name`, inside a write; its incidents stay.
pub fn delete_rule(tx: &Transaction<'_>, tenant: &str, name: &str) -> Result<()> {
    get_rule(tx, tenant, name)?;
    tx.execute(
        "DELETE FROM alert_rules WHERE tenant = ?1 AND name = ?2",
        (tenant, name),
    )?;
    Ok(())
}

fn silence(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<(String, Silence)> {
    Ok((
        r.get(0)?,
        Silence {
            id: r.get(1)?,
            matchers: parse_json(&r.get::<_, String>(2)?)?,
            starts_at: parse_time(&r.get::<_, String>(3)?)?,
            ends_at: parse_time(&r.get::<_, String>(4)?)?,
            comment: r.get(5)?,
            created_by: r.get(6)?,
        },
    ))
}

const SILENCE_COLUMNS: &str = "tenant, id, matchers, starts_at, ends_at, comment, created_by";

/// Stores a silence, inside a write (checked by the caller).
pub fn insert_silence(
    tx: &Transaction<'_>,
    tenant: &str,
    spec: &SilenceSpec,
    actor: &str,
) -> Result<Silence> {
    let now = Utc::now();
    let matchers = json(&spec.matchers)?;
    tx.execute(
        "INSERT INTO silences (tenant, matchers, starts_at, ends_at, comment, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (
            tenant,
            &matchers,
            timestamp(spec.starts_at.unwrap_or(now)),
            timestamp(spec.ends_at),
            &spec.comment,
            actor,
        ),
    )?;
    let id = tx.last_insert_rowid();
    Ok(get_silence(tx, tenant, id)?.1)
}

fn get_silence(conn: &Connection, tenant: &str, id: i64) -> Result<(String, Silence)> {
    conn.query_row(
        &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE tenant = ?1 AND id = ?2"),
        (tenant, id),
        silence,
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(ErrorCode::NotFound, format!("silence {id} does not exist"))
    })
}

/// Ends silence `id` now, inside a write (an expired one stays as it was).
pub fn expire_silence(tx: &Transaction<'_>, tenant: &str, id: i64) -> Result<Silence> {
    let (_, current) = get_silence(tx, tenant, id)?;
    let now = Utc::now();
    if current.ends_at > now {
        tx.execute(
            "UPDATE silences SET ends_at = ?1 WHERE id = ?2",
            (timestamp(now.max(current.starts_at)), id),
        )?;
    }
    Ok(get_silence(tx, tenant, id)?.1)
}

/// An incident to open.
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// The rule (`alertname`).
    pub rule: String,
    /// The service.
    pub service: String,
    /// The version, or "".
    pub version: String,
    /// Its severity.
    pub severity: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The alert's identity.
    pub fingerprint: String,
    /// `autoglm` or `alertmanager`.
    pub source: String,
    /// When it fired.
    pub opened_at: DateTime<Utc>,
}

/// Opens an incident for a firing alert with its `fired` entry, inside a
/// write; an alert that already has one not resolved keeps it (`false`).
pub fn open_incident(
    tx: &Transaction<'_>,
    tenant: &str,
    new: &NewIncident,
    message: &str,
) -> Result<(i64, bool)> {
    if let Some(id) = live_incident(tx, tenant, &new.fingerprint)? {
        return Ok((id, false));
    }
    let labels = json(&new.labels)?;
    tx.execute(
        "INSERT INTO incidents (tenant, rule, service, version, severity, labels, fingerprint, source, state, opened_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open', ?9)",
        (
            tenant,
            &new.rule,
            &new.service,
            &new.version,
            &new.severity,
            &labels,
            &new.fingerprint,
            &new.source,
            timestamp(new.opened_at),
        ),
    )?;
    let id = tx.last_insert_rowid();
    add_event(
        tx,
        id,
        &TimelineEntry {
            at: new.opened_at,
            kind: TimelineKind::Fired,
            message: message.to_owned(),
            actor: "system:alerts".to_owned(),
            task_id: None,
        },
    )?;
    Ok((id, true))
}

/// The incident of the alert `fingerprint` that is not resolved.
pub fn live_incident(conn: &Connection, tenant: &str, fingerprint: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM incidents WHERE tenant = ?1 AND fingerprint = ?2 AND state != 'resolved'",
            (tenant, fingerprint),
            |r| r.get(0),
        )
        .optional()?)
}

/// Adds `entry` to incident `id`'s timeline, inside a write; a timeline
/// reads in the order of its entries' times (a playbook's end is recorded
/// when the evaluator sees it, at the time its task ended).
pub fn add_event(tx: &Transaction<'_>, id: i64, entry: &TimelineEntry) -> Result<()> {
    tx.execute(
        "INSERT INTO incident_events (incident_id, at, kind, message, actor, task_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (
            id,
            timestamp(entry.at),
            entry.kind.as_str(),
            &entry.message,
            &entry.actor,
            entry.task_id,
        ),
    )?;
    Ok(())
}

/// Acknowledges incident `id`, inside a write; only an open one.
pub fn acknowledge_incident(
    tx: &Transaction<'_>,
    tenant: &str,
    id: i64,
    actor: &str,
) -> Result<Incident> {
    let incident = get_incident(tx, Some(tenant), id)?;
    if incident.state != IncidentState::Open {
        return Err(StoreError::rejected(
            ErrorCode::InvalidTransition,
            format!("incident {id} is {}, not open", incident.state.as_str()),
        ));
    }
    let now = Utc::now();
    tx.execute(
        "UPDATE incidents SET state = 'acknowledged', acknowledged_at = ?1, acknowledged_by = ?2 WHERE id = ?3",
        (timestamp(now), actor, id),
    )?;
    add_event(
        tx,
        id,
        &TimelineEntry {
            at: now,
            kind: TimelineKind::Acknowledged,
            message: format!("acknowledged by {actor}"),
            actor: actor.to_owned(),
            task_id: None,
        },
    )?;
    get_incident(tx, Some(tenant), id)
}

/// Resolves incident `id` at `at`, inside a write; a resolved one is refused.
pub fn resolve_incident(
    tx: &Transaction<'_>,
    tenant: &str,
    id: i64,
    at: DateTime<Utc>,
    actor: &str,
    message: &str,
) -> Result<Incident> {
    let incident = get_incident(tx, Some(tenant), id)?;
    if incident.state == IncidentState::Resolved {
        return Err(StoreError::rejected(
            ErrorCode::InvalidTransition,
            format!("incident {id} is already resolved"),
        ));
    }
    tx.execute(
        "UPDATE incidents SET state = 'resolved', resolved_at = ?1 WHERE id = ?2",
        (timestamp(at), id),
    )?;
    add_event(
        tx,
        id,
        &TimelineEntry {
            at,
            kind: TimelineKind::Resolved,
            message: message.to_owned(),
            actor: actor.to_owned(),
            task_id: None,
        },
    )?;
    get_incident(tx, Some(tenant), id)
}

const INCIDENT_COLUMNS: &str = "id, rule, service, version, severity, labels, source, state, \
    opened_at, acknowledged_at, acknowledged_by, resolved_at, tenant";

fn incident_row(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Incident> {
    let state: String = r.get(7)?;
    let opened_at = parse_time(&r.get::<_, String>(8)?)?;
    let time = |i: usize| -> r2d2_sqlite::rusqlite::Result<Option<DateTime<Utc>>> {
        r.get::<_, Option<String>>(i)?
            .as_deref()
            .map(parse_time)
            .transpose()
    };
    let resolved_at = time(11)?;
    Ok(Incident {
        id: r.get(0)?,
        rule: r.get(1)?,
        service: r.get(2)?,
        version: r.get(3)?,
        severity: r.get(4)?,
        labels: parse_json(&r.get::<_, String>(5)?)?,
        source: r.get(6)?,
        state: IncidentState::parse(&state).unwrap_or(IncidentState::Open),
        opened_at,
        acknowledged_at: time(9)?,
        acknowledged_by: r.get(10)?,
        resolved_at,
        seconds_to_resolve: resolved_at
            .map(|at| (at - opened_at).num_milliseconds() as f64 / 1000.0),
        timeline: Vec::new(),
    })
}

fn timeline(conn: &Connection, id: i64) -> Result<Vec<TimelineEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, kind, message, actor, task_id FROM incident_events WHERE incident_id = ?1 ORDER BY at, id",
    )?;
    let rows = stmt.query_map([id], |r| {
        let kind: String = r.get(1)?;
        Ok(TimelineEntry {
            at: parse_time(&r.get::<_, String>(0)?)?,
            kind: parse_json(&format!("{kind:?}"))?,
            message: r.get(2)?,
            actor: r.get(3)?,
            task_id: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Incident `id` with its timeline; `tenant` `None` reads any tenant's.
pub fn get_incident(conn: &Connection, tenant: Option<&str>, id: i64) -> Result<Incident> {
    let mut incident = conn
        .query_row(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)"),
            (id, tenant),
            incident_row,
        )
        .optional()?
        .ok_or_else(|| {
            StoreError::rejected(ErrorCode::NotFound, format!("incident {id} does not exist"))
        })?;
    incident.timeline = timeline(conn, id)?;
    Ok(incident)
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// The tenant.
    pub tenant: String,
    /// Only in this state.
    pub state: Option<IncidentState>,
    /// Only of this service.
    pub service: Option<String>,
    /// Only of this rule.
    pub rule: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

const NOTIFICATION_COLUMNS: &str =
    "id, tenant, incident_id, url, payload, state, attempts, last_error, created_at";

fn notification(r: &Row<'_>) -> r2d2_sqlite::rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        tenant: r.get(1)?,
        incident_id: r.get(2)?,
        url: r.get(3)?,
        payload: r.get(4)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        created_at: parse_time(&r.get::<_, String>(8)?)?,
    })
}

/// Queues a notification, inside a write: delivered after the commit, so a
/// crash between cannot lose it.
pub fn enqueue_notification(
    tx: &Transaction<'_>,
    tenant: &str,
    incident_id: Option<i64>,
    url: &str,
    payload: &str,
) -> Result<i64> {
    let now = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO notifications (tenant, incident_id, url, payload, state, next_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5, ?5)",
        (tenant, incident_id, url, payload, &now),
    )?;
    Ok(tx.last_insert_rowid())
}

/// Records a playbook run for its cooldown and hourly limit, inside the
/// write that starts it.
pub fn record_playbook_run(
    tx: &Transaction<'_>,
    tenant: &str,
    rule: &str,
    service: &str,
    step: &str,
    task_id: Option<i64>,
    incident_id: Option<i64>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO playbook_runs (tenant, rule, service, step, task_id, incident_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        (
            tenant,
            rule,
            service,
            step,
            task_id,
            incident_id,
            timestamp(Utc::now()),
        ),
    )?;
    Ok(())
}

/// When the playbook of `rule` last ran for `service` since `since`, newest first.
pub fn playbook_runs_since(
    conn: &Connection,
    tenant: &str,
    rule: &str,
    service: &str,
    since: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at FROM playbook_runs WHERE tenant = ?1 AND rule = ?2 AND service = ?3 AND at > ?4 ORDER BY at DESC",
    )?;
    let rows = stmt.query_map((tenant, rule, service, timestamp(since)), |r| {
        parse_time(&r.get::<_, String>(0)?)
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// What changes whenever a rule is created, replaced or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesStamp {
    count: i64,
    last_update: Option<String>,
}

impl Store {
    /// The rules table's stamp: a reader that kept it knows, with one cheap
    /// query, whether the rules it read are still the rules.
    pub fn alert_rules_stamp(&self) -> Result<RulesStamp> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*), max(updated_at) FROM alert_rules",
                [],
                |r| {
                    Ok(RulesStamp {
                        count: r.get(0)?,
                        last_update: r.get(1)?,
                    })
                },
            )?)
        })
    }

    /// Every rule, of `tenant` or (with `None`) of all tenants, by name.
    pub fn alert_rules(&self, tenant: Option<&str>) -> Result<Vec<StoredRule>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RULE_COLUMNS} FROM alert_rules WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, name"
            ))?;
            let rows = stmt.query_map([tenant], stored_rule)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Rule `name`.
    pub fn alert_rule(&self, tenant: &str, name: &str) -> Result<StoredRule> {
        self.read(|c| get_rule(c, tenant, name))
    }

    /// Silences not yet over at `now` (with the expired ones too when
    /// `expired`), of `tenant` or all tenants, newest first.
    pub fn silences(
        &self,
        tenant: Option<&str>,
        now: DateTime<Utc>,
        expired: bool,
    ) -> Result<Vec<(String, Silence)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE (?1 IS NULL OR tenant = ?1) AND (?2 OR ends_at > ?3) ORDER BY id DESC LIMIT 1000"
            ))?;
            let rows = stmt.query_map((tenant, expired, timestamp(now)), silence)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Incidents, newest first, without their timelines.
    pub fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = ?1
                 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR service = ?3) AND (?4 IS NULL OR rule = ?4)
                 ORDER BY id DESC LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                (
                    &filter.tenant,
                    filter.state.map(IncidentState::as_str),
                    &filter.service,
                    &filter.rule,
                    filter.limit,
                ),
                incident_row,
            )?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Incident `id` with its timeline.
    pub fn incident(&self, tenant: Option<&str>, id: i64) -> Result<Incident> {
        self.read(|c| get_incident(c, tenant, id))
    }

    /// Incidents not resolved, of every tenant, with their tenants.
    pub fn live_incidents(&self) -> Result<Vec<(String, Incident)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' ORDER BY id"
            ))?;
            let rows = stmt.query_map([], |r| Ok((r.get(12)?, incident_row(r)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// (incident, task) of each playbook step whose end is not yet on its
    /// incident's timeline.
    pub fn unfinished_playbooks(&self) -> Result<Vec<(i64, i64)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT s.incident_id, s.task_id FROM incident_events s
                 WHERE s.kind = 'playbookStarted' AND s.task_id IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM incident_events f WHERE f.incident_id = s.incident_id
                     AND f.kind = 'playbookFinished' AND f.task_id = s.task_id)
                 ORDER BY s.id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Notifications due at `now`, oldest first.
    pub fn due_notifications(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Notification>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE state = 'pending' AND next_at <= ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map((timestamp(now), limit), notification)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// The tenant's notifications in `state` (all without), newest first.
    pub fn notifications(&self, tenant: &str, state: Option<&str>) -> Result<Vec<Notification>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant = ?1 AND (?2 IS NULL OR state = ?2) ORDER BY id DESC LIMIT 500"
            ))?;
            let rows = stmt.query_map((tenant, state), notification)?;
            Ok(rows.collect::<std::result::Result<_, _>>()?)
        })
    }

    /// Records an attempt at notification `id`: delivered, retried at
    /// `retry_at`, or (without one) dead; the incident's timeline says so
    /// when it is over. Bookkeeping of the notifier, not a user's change.
    pub fn notification_attempted(
        &self,
        id: i64,
        error: Option<&str>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.bookkeeping(|tx| {
            let now = Utc::now();
            let state = match (error, retry_at) {
                (None, _) => "delivered",
                (Some(_), Some(_)) => "pending",
                (Some(_), None) => "dead",
            };
            tx.execute(
                "UPDATE notifications SET state = ?1, attempts = attempts + 1, last_error = ?2,
                 next_at = ?3, updated_at = ?4 WHERE id = ?5",
                (
                    state,
                    error,
                    timestamp(retry_at.unwrap_or(now)),
                    timestamp(now),
                    id,
                ),
            )?;
            let (incident, url, attempts): (Option<i64>, String, u32) = tx.query_row(
                "SELECT incident_id, url, attempts FROM notifications WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if let Some(incident) = incident
                && state != "pending"
            {
                let (kind, message) = match error {
                    None => (TimelineKind::Notified, format!("{url} took the notification")),
                    Some(e) => (
                        TimelineKind::NotificationFailed,
                        format!("{url} failed {attempts} times, the last with: {e}; kept as a dead letter"),
                    ),
                };
                add_event(
                    tx,
                    incident,
                    &TimelineEntry {
                        at: now,
                        kind,
                        message,
                        actor: "system:alerts".to_owned(),
                        task_id: None,
                    },
                )?;
            }
            Ok(())
        })
    }
}
