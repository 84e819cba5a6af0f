//! The reconciler's loop against a real store and local platform, stepped
//! phase by phase through [`crate::breakpoint`]: what a fault injected
//! between two phases leaves behind. Services run no replicas (`replicas:
//! 0`), so the platform holds them without starting a process.

use std::sync::Arc;

use autoglm_artifacts::ArtifactStore;
use autoglm_contract::{Demand, ServicePlatform};
use autoglm_core::artifact::ArtifactFormat;
use autoglm_core::audit::AuditEvent;
use autoglm_core::registry::{VersionSource, VersionSpec};
use autoglm_core::service::{API_VERSION, KIND, ModelServiceManifest};
use autoglm_platform::LocalPlatform;
use autoglm_store::{
    Mutation, NewVersion, Store, StoreError, StoredResponse, Transaction, registry, services,
    tenancy,
};

use crate::breakpoint::Phase;
type Handle = autoglm_breakpoints::Handle<Phase>;
use crate::{Reconciler, Trigger, platform_name};

const TENANT: &str = "default";

/// A store holding model `m` version 1 and the service `chat` serving it,
/// and a reconciler over it whose loop reports to `breakpoints`.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    platform: Arc<LocalPlatform>,
    demand: Arc<Demand>,
    reconciler: Arc<Reconciler>,
    breakpoints: Handle,
}

fn write<T>(store: &Store, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> T {
    let audit = AuditEvent {
        time: "2025-01-01T00:00:00.000000Z".into(),
        actor: "user:test".into(),
        tenant: TENANT.into(),
        action: "test".into(),
        target: String::new(),
        request_id: "r".into(),
        outcome: String::new(),
    };
    let mutation = Mutation {
        audit,
        idempotency: None,
    };
    let respond = |_: &T| StoredResponse {
        status: 200,
        body: Vec::new(),
    };
    store.write(mutation, |tx, _| f(tx), respond).unwrap()
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
        let artifacts = ArtifactStore::open(&dir.path().join("artifacts")).unwrap();
        write(&store, |tx| {
            tenancy::create_tenant(tx, TENANT)?;
            registry::create_model(tx, TENANT, "m", None, &Default::default())?;
            let version = NewVersion {
                spec: VersionSpec::default(),
                digest: "sha256:0".into(),
                size: 0,
                format: ArtifactFormat::Other,
                files: Vec::new(),
                source: VersionSource::Path,
                storage_dir: "m-1".into(),
                created_by: "user:test".into(),
            };
            registry::insert_version(tx, TENANT, "m", &version)?;
            let manifest = ModelServiceManifest::from_value(serde_json::json!({
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": "chat"},
                "spec": {"model": "m", "versions": [{"version": "1", "weight": 100}], "replicas": 0},
            }))
            .unwrap();
            services::create_service(tx, TENANT, &manifest)
        });
        let platform = Arc::new(
            LocalPlatform::start(dir.path().join("replicas"), Default::default()).unwrap(),
        );
        let demand = Arc::new(Demand::default());
        let reconciler = Reconciler::start(
            store.clone(),
            artifacts,
            platform.clone(),
            demand.clone(),
            crate::Launcher {
                program: "autoglm".into(),
                env: Vec::new(),
                config_dir: dir.path().join("config"),
            },
            None,
        );
        let breakpoints = reconciler.breakpoints.attach();
        Fixture {
            _dir: dir,
            store,
            platform,
            demand,
            reconciler,
            breakpoints,
        }
    }

    fn scheduled(&self, name: &str) -> bool {
        self.reconciler
            .scheduled
            .lock()
            .contains_key(&platform_name(TENANT, name))
    }
}

fn changed(name: &str) -> Phase {
    Phase::Woken(Trigger::Changed {
        tenant: TENANT.into(),
        name: name.into(),
    })
}

#[tokio::test]
async fn a_service_deleted_between_the_read_and_the_apply_ends_removed() {
    let mut f = Fixture::start();
    f.reconciler.changed(TENANT, "chat");
    f.breakpoints.hold_at(changed("chat")).await.release();
    // The loop has read chat and not applied it yet: delete it now, as the
    // console does (a committed write, then `changed`).
    let held = f.breakpoints.hold_at(Phase::BeforeApply).await;
    write(&f.store, |tx| services::delete_service(tx, TENANT, "chat"));
    f.reconciler.changed(TENANT, "chat");
    held.release();

    // The apply goes ahead with what was read: the platform runs chat...
    let held = f.breakpoints.hold_at(Phase::AfterApply).await;
    assert!(f.scheduled("chat"), "the stale read was not applied");
    held.release();
    // ...until the delete's own change removes it.
    f.breakpoints.hold_at(changed("chat")).await.release();
    let _held = f.breakpoints.hold_at(Phase::AfterApply).await;
    assert!(
        !f.scheduled("chat"),
        "the reconciler still runs a deleted service"
    );
    assert!(f.platform.view(&platform_name(TENANT, "chat")).is_none());
}

#[tokio::test]
async fn a_waiting_request_wakes_the_loop() {
    let mut f = Fixture::start();
    f.reconciler.changed(TENANT, "chat");
    f.breakpoints.hold_at(changed("chat")).await.release();
    let held = f.breakpoints.hold_at(Phase::AfterApply).await;
    assert!(f.scheduled("chat"));
    let version = f.demand.of(&platform_name(TENANT, "chat"), "1");
    let _waiting = f.demand.wait(&version, 1).unwrap();
    held.release();
    f.breakpoints
        .hold_at(Phase::Woken(Trigger::DemandWoken))
        .await
        .release();
}
