//! The config center's routes (`/api/v1/config/...`), added to the table.

use axum::http::Method;
use axum::routing::{get, post};

use super::table::{Builder, route, schema};
use super::{Access, RequestBody, ResponseBody, RouteSpec};
use crate::api::config::changes::{Applied, Decided};
use crate::api::config::{self, changes, keys, watch};
use autoglm_core::config::{
    ChangeRequest, ConfigChange, ConfigDiff, ConfigVersion, CreateEnvironment, CreateSnapshot,
    Decide, Environment, Promote, PromotionPlan, PublishConfig, RequestChange, RollbackConfig,
    Snapshot, ValidateConfig, Validation, Watch, WatchAnswer,
};
use autoglm_core::rbac::Permission;
use autoglm_core::registry::Page;

/// A publish carries content up to 1 MiB, which JSON escaping can grow.
const PUBLISH_LIMIT: usize = 4 * 1024 * 1024;

const KEY: &str = "/api/v1/config/environments/{env}/keys/{group}/{key}";

/// Adds every config center route.
pub(super) fn add(b: &mut Builder) {
    use Access::Permission as P;
    use Permission::{ConfigProtected, ConfigRead, ConfigWrite};
    use RequestBody::{Json as In, None as NoBody};
    use ResponseBody::{EventStream, Json as Out, NoContent};

    b.add(
        route(Method::GET, "/api/v1/config/environments", "config.environments.list",
            "List the tenant's environments (dev, test, staging, prod and added ones) with their live key counts",
            P(ConfigRead), NoBody, Out(200, schema::<Page<Environment>>)),
        get(config::environments),
    );
    b.add(
        route(Method::POST, "/api/v1/config/environments", "config.environments.create",
            "Add an environment; protected ones take writes only from config:protected holders or approved change requests",
            P(ConfigProtected), In(schema::<CreateEnvironment>), Out(201, schema::<Environment>)),
        post(config::create_environment),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/environments/{env}",
            "config.environments.get",
            "Read an environment",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<Environment>),
        ),
        get(config::environment),
    );
    b.add(
        RouteSpec {
            query: &[("group", "Only this group")],
            ..route(Method::GET, "/api/v1/config/environments/{env}/keys", "config.keys.list",
                "List the environment's live keys by group and key, each its current version with content",
                P(ConfigRead), NoBody, Out(200, schema::<Page<ConfigVersion>>))
        },
        get(keys::list),
    );
    b.add(
        route(
            Method::GET,
            KEY,
            "config.keys.get",
            "Read a key's current version",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<ConfigVersion>),
        ),
        get(keys::get),
    );
    b.add(
        RouteSpec {
            body_limit: PUBLISH_LIMIT,
            ..route(Method::PUT, KEY, "config.keys.publish",
                "Publish a key's next version: content checked against its format (from the key's extension when not named), at most 1 MiB; baseMd5 or baseVersion refuse a stale write with 409. 201 for a new key, 200 otherwise; the same content again makes no version",
                P(ConfigWrite), In(schema::<PublishConfig>), Out(200, schema::<ConfigVersion>))
        },
        axum::routing::put(keys::publish),
    );
    b.add(
        RouteSpec {
            query: &[
                ("base_md5", "Delete only if the key's md5 is this"),
                ("message", "Why"),
            ],
            ..route(
                Method::DELETE,
                KEY,
                "config.keys.delete",
                "Delete a key: a tombstone version, the history stays",
                P(ConfigWrite),
                NoBody,
                NoContent,
            )
        },
        axum::routing::delete(keys::delete),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/environments/{env}/keys/{group}/{key}/versions",
            "config.keys.history",
            "List every version of a key, newest first (deletes too)",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<Page<ConfigVersion>>),
        ),
        get(keys::history),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/environments/{env}/keys/{group}/{key}/versions/{version}",
            "config.keys.version",
            "Read one version of a key",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<ConfigVersion>),
        ),
        get(keys::version),
    );
    b.add(
        RouteSpec {
            query: &[
                (
                    "from",
                    "The older version (default: the one before `to`; 0 is empty)",
                ),
                ("to", "The newer version (default: the current one)"),
            ],
            ..route(
                Method::GET,
                "/api/v1/config/environments/{env}/keys/{group}/{key}/diff",
                "config.keys.diff",
                "The unified diff between two versions of a key",
                P(ConfigRead),
                NoBody,
                Out(200, schema::<ConfigDiff>),
            )
        },
        get(keys::diff),
    );
    b.add(
        route(
            Method::POST,
            "/api/v1/config/environments/{env}/keys/{group}/{key}/rollback",
            "config.keys.rollback",
            "Publish an earlier version's content again as a new version",
            P(ConfigWrite),
            In(schema::<RollbackConfig>),
            Out(200, schema::<ConfigVersion>),
        ),
        post(keys::rollback),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/environments/{env}/snapshots",
            "config.snapshots.list",
            "List the environment's snapshots, newest first, with the key versions each holds",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<Page<Snapshot>>),
        ),
        get(changes::snapshots),
    );
    b.add(
        route(
            Method::POST,
            "/api/v1/config/environments/{env}/snapshots",
            "config.snapshots.create",
            "Take a named, immutable snapshot of the environment's live key versions",
            P(ConfigWrite),
            In(schema::<CreateSnapshot>),
            Out(201, schema::<Snapshot>),
        ),
        post(changes::create_snapshot),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/environments/{env}/snapshots/{name}",
            "config.snapshots.get",
            "Read a snapshot",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<Snapshot>),
        ),
        get(changes::snapshot),
    );
    b.add(
        route(Method::POST, "/api/v1/config/environments/{env}/snapshots/{name}/restore",
            "config.snapshots.restore",
            "Make the environment hold exactly the snapshot's keys again, byte for byte, as one change (keys made since are deleted)",
            P(ConfigWrite), NoBody, Out(200, schema::<Applied>)),
        post(changes::restore),
    );
    b.add(
        route(Method::POST, "/api/v1/config/promotions/preview", "config.promotions.preview",
            "What promoting one environment into another would change, key by key with diffs; writes nothing",
            P(ConfigRead), In(schema::<Promote>), Out(200, schema::<PromotionPlan>)),
        post(changes::preview),
    );
    b.add(
        route(Method::POST, "/api/v1/config/promotions", "config.promotions.apply",
            "Promote: make the target hold the source's keys (optionally only some, optionally pruning), as one change, all or nothing",
            P(ConfigWrite), In(schema::<Promote>), Out(200, schema::<Applied>)),
        post(changes::promote),
    );
    b.add(
        route(Method::POST, "/api/v1/config/environments/{env}/requests", "config.requests.create",
            "Request a change of an environment (a promotion into it, or publishes and deletes), frozen now with its diffs, for a second user to approve",
            P(ConfigWrite), In(schema::<RequestChange>), Out(201, schema::<ChangeRequest>)),
        post(changes::request),
    );
    b.add(
        RouteSpec {
            query: &[("state", "pending, approved or rejected")],
            ..route(
                Method::GET,
                "/api/v1/config/requests",
                "config.requests.list",
                "List change requests, newest first",
                P(ConfigRead),
                NoBody,
                Out(200, schema::<Page<ChangeRequest>>),
            )
        },
        get(changes::requests),
    );
    b.add(
        route(
            Method::GET,
            "/api/v1/config/requests/{id}",
            "config.requests.get",
            "Read a change request with its frozen changes",
            P(ConfigRead),
            NoBody,
            Out(200, schema::<ChangeRequest>),
        ),
        get(changes::get_request),
    );
    b.add(
        route(Method::POST, "/api/v1/config/requests/{id}/approve", "config.requests.approve",
            "Approve another user's change request: its frozen changes land as one change, or none with 409 when a key moved since",
            P(ConfigProtected), In(schema::<Decide>), Out(200, schema::<Decided>)),
        post(changes::approve),
    );
    b.add(
        route(
            Method::POST,
            "/api/v1/config/requests/{id}/reject",
            "config.requests.reject",
            "Reject another user's change request",
            P(ConfigProtected),
            In(schema::<Decide>),
            Out(200, schema::<Decided>),
        ),
        post(changes::reject),
    );
    b.add(
        RouteSpec {
            body_limit: PUBLISH_LIMIT,
            ..route(Method::POST, "/api/v1/config/validate", "config.validate",
                "Check content against its format as a publish would (line and column of the first error); stores nothing",
                P(ConfigRead), In(schema::<ValidateConfig>), Out(200, schema::<Validation>))
        },
        post(keys::validate),
    );
    b.add(
        route(Method::POST, "/api/v1/config/watch", "config.watch",
            "Long-poll: answers as soon as one of the keys has an md5 other than the one sent (empty: none held), or with no changes after timeoutMs (at most 30000)",
            P(ConfigRead), In(schema::<Watch>), Out(200, schema::<WatchAnswer>)),
        post(watch::watch),
    );
    b.add(
        RouteSpec {
            query: &[
                ("group", "Only this group"),
                ("key", "Only this key"),
                ("since", "Start after this revision (default: now; Last-Event-ID wins)"),
            ],
            ..route(Method::GET, "/api/v1/config/environments/{env}/events", "config.events",
                "Server-sent events: every change of the environment's keys as it commits (event `change`, id its revision); reconnect with Last-Event-ID to miss nothing",
                P(ConfigRead), NoBody, EventStream(schema::<ConfigChange>))
        },
        get(watch::events),
    );
}
