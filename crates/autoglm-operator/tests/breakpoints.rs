//! The operator in this process, its reconcile held between two steps by
//! the breakpoints of the `test-hooks` feature, against a real control plane
//! from `scripts/k8s.sh` (the one crates/autoglm/tests/kubernetes.rs uses:
//! the first build compiles Kubernetes for many minutes, later ones reuse
//! the cache): a fault injected while a reconcile is held, and what the
//! operator converges to after it.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use autoglm_core::service::ConditionStatus;
use autoglm_operator::{Breakpoints, Settings, Step};
use autoglm_render::{ModelServiceObject, RenderOptions, custom_resource_definition};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The control plane of this test process, started on first use. It lives
/// in a static, never dropped: the script's watchdog, which stops it once
/// the process is gone, reads the pids in its folder.
struct ControlPlane {
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// Runs `scripts/k8s.sh`; a failure panics (its stderr, shown, says what is
/// missing and how to get it).
fn script(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/k8s.sh"))
        .args(args)
        .env("AUTOGLM_K8S_OWNER_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/k8s.sh {} failed ({})",
        args.join(" "),
        output.status
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl ControlPlane {
    fn shared() -> &'static ControlPlane {
        static PLANE: OnceLock<ControlPlane> = OnceLock::new();
        PLANE.get_or_init(|| {
            script(&["build"]);
            let dir = tempfile::tempdir().unwrap();
            let kubeconfig = PathBuf::from(script(&["start", dir.path().to_str().unwrap()]));
            ControlPlane {
                _dir: dir,
                kubeconfig,
            }
        })
    }

    async fn client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 60 s"))
}

fn ready(ms: Option<&ModelServiceObject>) -> bool {
    ms.is_some_and(|ms| {
        ms.status.as_ref().is_some_and(|s| {
            s.observed_generation == ms.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        })
    })
}

#[tokio::test]
async fn a_child_deleted_under_a_held_reconcile_is_applied_again() {
    // The workspace enables more than one rustls provider; the binary picks
    // ring at start, and so does this test.
    let _ = rustls::crypto::ring::default_provider().install_default();
    const NS: &str = "breakpoints";
    let plane = ControlPlane::shared();
    let client = plane.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds
        .create(&PostParams::default(), &custom_resource_definition())
        .await
        .unwrap();
    within(
        "the CRD established",
        await_condition(crds, &crd.name_any(), conditions::is_crd_established()),
    )
    .await
    .unwrap();
    let namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    let (breakpoints, mut steps) = Breakpoints::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let settings = Settings {
        namespaces: vec![NS.to_owned()],
        render: RenderOptions::default(),
        lease: None,
        metrics_addr: None,
        instance: "breakpoints-test".to_owned(),
        resync: Duration::from_secs(300),
        prometheus: None,
    };
    let operator = tokio::spawn(autoglm_operator::run_with_breakpoints(
        client.clone(),
        settings,
        async move {
            let _ = stopped.await;
        },
        breakpoints,
    ));
    let services: Api<ModelServiceObject> = Api::namespaced(client.clone(), NS);
    services
        .patch(
            "chat",
            &PatchParams::apply("breakpoints-test"),
            &Patch::Apply(json!({
                "apiVersion": "autoglm.io/v1alpha1",
                "kind": "ModelService",
                "metadata": {"name": "chat", "namespace": NS},
                "spec": {"model": "smollm2", "versions": [{"version": "1", "weight": 100}], "replicas": 1},
            })),
        )
        .await
        .unwrap();

    // The reconcile has applied chat's children and not written its status:
    // someone deletes the Deployment it just applied.
    let held = steps.hold_at("breakpoints/chat", Step::BeforeStatus).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let applied = deployments.get("chat-1").await.unwrap();
    deployments
        .delete("chat-1", &DeleteParams::background())
        .await
        .unwrap();
    held.release();
    // The held reconcile ends with what it had seen; the delete brings another.
    steps
        .hold_at("breakpoints/chat", Step::Finished)
        .await
        .release();
    drop(steps);

    let deleted = applied.uid();
    within(
        "chat-1 applied again",
        await_condition(deployments, "chat-1", move |d: Option<&Deployment>| {
            d.is_some_and(|d| d.uid() != deleted)
        }),
    )
    .await
    .unwrap();
    within(
        "chat Ready at its generation",
        await_condition(services, "chat", ready),
    )
    .await
    .unwrap();
    stop.send(()).unwrap();
    within("the operator stopped", operator)
        .await
        .unwrap()
        .unwrap();
}
