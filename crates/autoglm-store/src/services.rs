//! Model services: their desired state (labels, annotations, spec and its
//! generation) and restart requests; and the references that keep the
//! registry from deleting or archiving what a service serves.
//!
//! **Architecture Invariant:** a model a service names, and every version a
//! service lists, exist and are not archived; the checks run in the write
//! transaction, on both sides (service writes, registry deletes and stage
//! changes), so no interleaving breaks it.

use std::collections::BTreeMap;

use autoglm_core::error::{ErrorCode, FieldError};
use autoglm_core::rollout::{Phase as RolloutPhase, Rollout};
use autoglm_core::service::{
    API_VERSION, KIND, ModelServiceManifest, ModelServiceSpec, ObjectMeta, RESTARTED_AT_ANNOTATION,
    ScaleError, StoredService, VersionWeight,
};
use autoglm_core::stage::Stage;
use chrono::Utc;
use r2d2_sqlite::rusqlite::{self, types::Value};
use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use crate::Transaction;
use crate::{
    Result, Store, StoreError, json, parse_json, parse_time, push_label_filters, push_name_page,
    timestamp,
};

/// Which services to list.
#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    /// The tenant.
    pub tenant: String,
    /// Only services of this model.
    pub model: Option<String>,
    /// Only services carrying every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Only names after this one (the page token).
    pub after: Option<String>,
    /// At most this many.
    pub limit: i64,
}

const COLUMNS: &str = "tenant, name, labels, annotations, spec, generation, restarts, restarted_at, created_at, updated_at, rollout";

fn service(r: &Row<'_>) -> rusqlite::Result<StoredService> {
    let text = |i| -> rusqlite::Result<String> { r.get(i) };
    let restarted_at = r
        .get::<_, Option<String>>(7)?
        .as_deref()
        .map(parse_time)
        .transpose()?;
    let mut annotations: BTreeMap<String, String> = parse_json(&text(3)?)?;
    if let Some(at) = restarted_at {
        annotations.insert(RESTARTED_AT_ANNOTATION.to_owned(), timestamp(at));
    }
    Ok(StoredService {
        manifest: ModelServiceManifest {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: ObjectMeta {
                name: r.get(1)?,
                namespace: Some(r.get(0)?),
                labels: parse_json(&text(2)?)?,
                annotations,
                generation: Some(r.get(5)?),
                creation_timestamp: Some(parse_time(&text(8)?)?),
            },
            spec: parse_json(&text(4)?)?,
            status: None,
        },
        restarts: r.get(6)?,
        restarted_at,
        updated_at: parse_time(&text(9)?)?,
        rollout: r
            .get::<_, Option<String>>(10)?
            .as_deref()
            .map(parse_json::<Rollout>)
            .transpose()?
            .map(|r| r.summary()),
    })
}

pub(crate) fn get(conn: &Connection, tenant: &str, name: &str) -> Result<StoredService> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM services WHERE tenant = ?1 AND name = ?2"),
        [tenant, name],
        service,
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::rejected(
            ErrorCode::NotFound,
            format!("service {name:?} does not exist"),
        )
    })
}

/// The annotations a user may set: the restart annotation is the server's.
fn user_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut own = annotations.clone();
    own.remove(RESTARTED_AT_ANNOTATION);
    own
}

/// Checks that the spec's model exists in the tenant and that each listed
/// version exists and is not archived, naming the field of each miss.
fn check_references(conn: &Connection, tenant: &str, spec: &ModelServiceSpec) -> Result<()> {
    let model = &spec.model;
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM models WHERE tenant = ?1 AND name = ?2)",
        [tenant, model],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(StoreError::Invalid(vec![FieldError::new(
            "spec.model",
            format!("model {model:?} does not exist in the registry; register it first"),
        )]));
    }
    crate::config_refs::check_reference(conn, tenant, spec)?;
    let mut stmt = conn.prepare_cached(
        "SELECT version, stage FROM model_versions WHERE tenant = ?1 AND model = ?2 ORDER BY version",
    )?;
    let known: Vec<(i64, String)> = stmt
        .query_map([tenant, model], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut errors = Vec::new();
    for (i, wanted) in spec.versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].version");
        match known.iter().find(|(v, _)| v.to_string() == wanted.version) {
            None => errors.push(FieldError::new(
                path,
                format!(
                    "model {model:?} has no version {:?}; {}",
                    wanted.version,
                    known_versions(&known)
                ),
            )),
            Some((v, stage)) if stage == Stage::Archived.as_str() => errors.push(FieldError::new(
                path,
                format!(
                    "version {v} of model {model:?} is archived; archived versions are not served"
                ),
            )),
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// `its versions are 1, 2, 4`, the newest ten at most.
fn known_versions(known: &[(i64, String)]) -> String {
    const SHOWN: usize = 10;
    if known.is_empty() {
        return "it has no versions yet".to_owned();
    }
    let mut numbers: Vec<String> = known
        .iter()
        .rev()
        .take(SHOWN)
        .map(|(v, _)| v.to_string())
        .collect();
    numbers.reverse();
    let more = if known.len() > SHOWN { "…, " } else { "" };
    format!("its versions are {more}{}", numbers.join(", "))
}

/// Creates a service at generation 1, inside a write.
pub fn create_service(
    tx: &Transaction<'_>,
    tenant: &str,
    manifest: &ModelServiceManifest,
) -> Result<StoredService> {
    let name = &manifest.metadata.name;
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM services WHERE tenant = ?1 AND name = ?2)",
        [tenant, name],
        |r| r.get(0),
    )?;
    if exists {
        return Err(StoreError::rejected(
            ErrorCode::AlreadyExists,
            format!(
                "service {name:?} already exists; change it with PUT /api/v1/services/{name} (autoglm apply does)"
            ),
        ));
    }
    check_references(tx, tenant, &manifest.spec)?;
    let now = timestamp(Utc::now());
    tx.execute(
        "INSERT INTO services (tenant, name, model, labels, annotations, spec, generation, restarts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 0, ?7, ?7)",
        params_from_iter([
            Value::Text(tenant.to_owned()),
            Value::Text(name.clone()),
            Value::Text(manifest.spec.model.clone()),
            Value::Text(json(&manifest.metadata.labels)?),
            Value::Text(json(&user_annotations(&manifest.metadata.annotations))?),
            Value::Text(json(&manifest.spec)?),
            Value::Text(now),
        ]),
    )?;
    get(tx, tenant, name)
}

/// Writes labels, annotations and spec over `current`; the generation goes
/// up only when the spec changed, and nothing is written when nothing did.
fn save(
    tx: &Transaction<'_>,
    tenant: &str,
    current: &StoredService,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &ModelServiceSpec,
) -> Result<StoredService> {
    let annotations = user_annotations(annotations);
    let spec_changed = current.manifest.spec != *spec;
    if !spec_changed
        && current.manifest.metadata.labels == *labels
        && user_annotations(&current.manifest.metadata.annotations) == annotations
    {
        return Ok(current.clone());
    }
    tx.execute(
        "UPDATE services SET model = ?1, labels = ?2, annotations = ?3, spec = ?4,
             generation = generation + ?5, updated_at = ?6
         WHERE tenant = ?7 AND name = ?8",
        params_from_iter([
            Value::Text(spec.model.clone()),
            Value::Text(json(labels)?),
            Value::Text(json(&annotations)?),
            Value::Text(json(spec)?),
            Value::Integer(i64::from(spec_changed)),
            Value::Text(timestamp(Utc::now())),
            Value::Text(tenant.to_owned()),
            Value::Text(current.name().to_owned()),
        ]),
    )?;
    get(tx, tenant, current.name())
}

/// Replaces a service's labels, annotations and spec, inside a write. When
/// `manifest` names a generation, the update applies only at that generation.
pub fn update_service(
    tx: &Transaction<'_>,
    tenant: &str,
    manifest: &ModelServiceManifest,
) -> Result<StoredService> {
    let name = &manifest.metadata.name;
    let current = get(tx, tenant, name)?;
    if let Some(expected) = manifest.metadata.generation
        && expected != current.generation()
    {
        return Err(StoreError::rejected(
            ErrorCode::GenerationMismatch,
            format!(
                "service {name:?} is at generation {}, not {expected}: it changed since it was read; \
                 read it again and reapply the change, or leave metadata.generation out",
                current.generation()
            ),
        ));
    }
    check_references(tx, tenant, &manifest.spec)?;
    let (spec, started) = rollout_of_update(tx, tenant, &current, &manifest.spec)?;
    let saved = save(
        tx,
        tenant,
        &current,
        &manifest.metadata.labels,
        &manifest.metadata.annotations,
        &spec,
    )?;
    if let Some(rollout) = started {
        write_rollout(tx, tenant, name, &rollout)?;
    }
    Ok(saved)
}

/// What an update does to a rollout: a new single version replacing the
/// single stable one, under a spec with `rollout`, starts one (the canary
/// joins at weight 0; the rollout moves it). While one runs, the spec may
/// change but its versions stay as the rollout set them: an update naming
/// the canary alone leaves them, any other split is refused.
fn rollout_of_update(
    tx: &Transaction<'_>,
    tenant: &str,
    current: &StoredService,
    wanted: &ModelServiceSpec,
) -> Result<(ModelServiceSpec, Option<Rollout>)> {
    let running = rollout(tx, tenant, current.name())?.filter(|r| !r.is_final());
    let single = |spec: &ModelServiceSpec| match spec.versions.as_slice() {
        [only] if only.weight == 100 => Some(only.version.clone()),
        _ => None,
    };
    if let Some(r) = running {
        if single(wanted).as_deref() != Some(r.canary.as_str()) {
            return Err(StoreError::rejected(
                ErrorCode::InvalidTransition,
                format!(
                    "service {:?} is rolling out version {} (phase {:?}, weight {}); promote or abort the rollout before changing its versions",
                    current.name(),
                    r.canary,
                    r.phase,
                    r.weight
                ),
            ));
        }
        let spec = ModelServiceSpec {
            versions: current.manifest.spec.versions.clone(),
            ..wanted.clone()
        };
        return Ok((spec, None));
    }
    let (Some(_), Some(stable), Some(canary)) = (
        wanted.rollout.as_ref(),
        single(&current.manifest.spec),
        single(wanted),
    ) else {
        return Ok((wanted.clone(), None));
    };
    if stable == canary {
        return Ok((wanted.clone(), None));
    }
    let spec = ModelServiceSpec {
        versions: vec![
            VersionWeight {
                version: stable.clone(),
                weight: 100,
            },
            VersionWeight {
                version: canary.clone(),
                weight: 0,
            },
        ],
        ..wanted.clone()
    };
    Ok((spec, Some(Rollout::start(&stable, &canary, Utc::now()))))
}

/// A service's rollout state, if one ever ran.
pub fn rollout(conn: &Connection, tenant: &str, name: &str) -> Result<Option<Rollout>> {
    let text: Option<Option<String>> = conn
        .query_row(
            "SELECT rollout FROM services WHERE tenant = ?1 AND name = ?2",
            [tenant, name],
            |r| r.get(0),
        )
        .optional()?;
    let Some(text) = text else {
        return Err(StoreError::rejected(
            ErrorCode::NotFound,
            format!("service {name:?} does not exist"),
        ));
    };
    text.as_deref()
        .map(|t| parse_json(t).map_err(StoreError::from))
        .transpose()
}

fn write_rollout(tx: &Transaction<'_>, tenant: &str, name: &str, rollout: &Rollout) -> Result<()> {
    tx.execute(
        "UPDATE services SET rollout = ?1 WHERE tenant = ?2 AND name = ?3",
        (json(rollout)?, tenant, name),
    )?;
    Ok(())
}

/// Saves a rollout's new state inside a write, with the split it asks for
/// in spec.versions (a new generation when the split moved): stable and
/// canary by the rollout's weight while it runs, the canary alone once it
/// is healthy, the stable version alone once it is aborted.
pub fn save_rollout(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    rollout: &Rollout,
) -> Result<StoredService> {
    let current = get(tx, tenant, name)?;
    let spec = ModelServiceSpec {
        versions: rollout.split(),
        ..current.manifest.spec.clone()
    };
    let metadata = &current.manifest.metadata;
    let saved = save(
        tx,
        tenant,
        &current,
        &metadata.labels,
        &metadata.annotations,
        &spec,
    )?;
    write_rollout(tx, tenant, name, rollout)?;
    let promote = spec
        .rollout
        .as_ref()
        .is_some_and(|r| r.promote_to_production);
    if rollout.phase == RolloutPhase::Healthy
        && promote
        && let Ok(version) = rollout.canary.parse::<i64>()
    {
        let change = autoglm_core::registry::SetStage {
            stage: autoglm_core::stage::Stage::Production,
            archive_others: false,
        };
        match crate::registry::set_stage(tx, tenant, &spec.model, version, &change) {
            // Already in production: nothing to move.
            Ok(_) | Err(StoreError::Rejected(ErrorCode::InvalidTransition, _)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(saved)
}

/// Sets a fixed replica count, inside a write; refused for autoscaled services.
pub fn scale_service(
    tx: &Transaction<'_>,
    tenant: &str,
    name: &str,
    replicas: u32,
) -> Result<StoredService> {
    let current = get(tx, tenant, name)?;
    let spec = current
        .manifest
        .spec
        .scaled(replicas)
        .map_err(|e| match e {
            ScaleError::Autoscaled { .. } => StoreError::rejected(
                ErrorCode::InvalidTransition,
                format!("service {name:?} cannot be scaled by hand: {e}"),
            ),
            ScaleError::TooMany(_) => {
                StoreError::Invalid(vec![FieldError::new("replicas", e.to_string())])
            }
        })?;
    let metadata = &current.manifest.metadata;
    save(
        tx,
        tenant,
        &current,
        &metadata.labels,
        &metadata.annotations,
        &spec,
    )
}

/// Asks for every replica to be replaced, inside a write: the restart count
/// goes up; the spec and its generation stay.
pub fn restart_service(tx: &Transaction<'_>, tenant: &str, name: &str) -> Result<StoredService> {
    get(tx, tenant, name)?;
    tx.execute(
        "UPDATE services SET restarts = restarts + 1, restarted_at = ?1, updated_at = ?1
         WHERE tenant = ?2 AND name = ?3",
        (timestamp(Utc::now()), tenant, name),
    )?;
    get(tx, tenant, name)
}

/// A service, or `None` when there is none of that name, inside a write.
pub fn find_service(conn: &Connection, tenant: &str, name: &str) -> Result<Option<StoredService>> {
    match get(conn, tenant, name) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a service, inside a write.
/// Every service of `tenant` but `name`: what a quota counts beside it.
pub fn other_services(conn: &Connection, tenant: &str, name: &str) -> Result<Vec<StoredService>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM services WHERE tenant = ?1 AND name != ?2"
    ))?;
    let rows = stmt.query_map((tenant, name), service)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete_service(tx: &Transaction<'_>, tenant: &str, name: &str) -> Result<()> {
    get(tx, tenant, name)?;
    tx.execute(
        "DELETE FROM services WHERE tenant = ?1 AND name = ?2",
        [tenant, name],
    )?;
    Ok(())
}

/// `service "a"` or `services "a", "b"`.
fn naming(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let noun = if names.len() == 1 {
        "service"
    } else {
        "services"
    };
    format!("{noun} {}", quoted.join(", "))
}

/// Refuses, inside a write, to remove a model a service serves.
pub(crate) fn refuse_model_served(conn: &Connection, tenant: &str, model: &str) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM services WHERE tenant = ?1 AND model = ?2 ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([tenant, model], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if names.is_empty() {
        return Ok(());
    }
    Err(StoreError::rejected(
        ErrorCode::InUse,
        format!(
            "model {model:?} is served by {}; delete the service or point it at another model first",
            naming(&names)
        ),
    ))
}

/// Refuses, inside a write, to delete or archive (`doing`) a version a
/// service lists, whatever its weight: a weight of 0 still runs replicas.
pub(crate) fn refuse_version_served(
    conn: &Connection,
    tenant: &str,
    model: &str,
    version: i64,
    doing: &str,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, json_extract(v.value, '$.weight') FROM services s, json_each(s.spec, '$.versions') v
         WHERE s.tenant = ?1 AND s.model = ?2 AND json_extract(v.value, '$.version') = ?3
         ORDER BY s.name",
    )?;
    let users: Vec<(String, i64)> = stmt
        .query_map((tenant, model, version.to_string()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let names: Vec<String> = users.iter().map(|(n, _)| n.clone()).collect();
    let (weight, whose) = match users.as_slice() {
        [] => return Ok(()),
        [(_, weight)] => (format!(" (weight {weight})"), "its"),
        _ => (String::new(), "their"),
    };
    Err(StoreError::rejected(
        ErrorCode::InUse,
        format!(
            "version {version} of {model:?} is served by {}{weight}; remove it from {whose} spec.versions before {doing} it",
            naming(&names)
        ),
    ))
}

impl Store {
    /// A service's rollout state, if one ever ran.
    pub fn service_rollout(&self, tenant: &str, name: &str) -> Result<Option<Rollout>> {
        self.read(|c| rollout(c, tenant, name))
    }

    /// One service.
    pub fn service(&self, tenant: &str, name: &str) -> Result<StoredService> {
        self.read(|c| get(c, tenant, name))
    }

    /// Every service of every tenant, as (tenant, name), in that order.
    pub fn all_service_names(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT tenant, name FROM services ORDER BY tenant, name")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// A page of services, by name.
    pub fn list_services(&self, filter: &ServiceFilter) -> Result<Vec<StoredService>> {
        self.read(|c| {
            let mut sql = format!("SELECT {COLUMNS} FROM services WHERE tenant = ?1");
            let mut args = vec![Value::Text(filter.tenant.clone())];
            if let Some(model) = &filter.model {
                args.push(Value::Text(model.clone()));
                sql.push_str(&format!(" AND model = ?{}", args.len()));
            }
            push_label_filters(&mut sql, &mut args, "labels", &filter.labels);
            push_name_page(
                &mut sql,
                &mut args,
                "name",
                filter.after.as_deref(),
                filter.limit,
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), service)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
