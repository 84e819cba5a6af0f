//! The console and the gateway on Kubernetes, against a real control plane
//! of their own: `autoglm console --platform kubernetes` writes every service
//! write as a ModelService in the tenant's namespace and answers with the
//! status the operator wrote; a spec the API server refuses is reported in
//! words; `autoglm gateway` routes by the EndpointSlices of each version's
//! Service, and a 90/10 split holds per version.
#![allow(clippy::unwrap_used)]

mod cluster;
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{ControlPlane, Operator, Process, free_port, host_ip};
use common::Console;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openai_upstream.py"
);

/// The admin's tenant, and so the namespace its services land in.
const TENANT: &str = "default";

/// Task `id` once it is final (long-polled, at most a minute).
async fn task_once_final(env: &Env, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, task) = env
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/tasks/{id}?wait=10s"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{task}");
        if ["succeeded", "failed", "cancelled"].contains(&task["state"].as_str().unwrap()) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id} still {task}");
    }
}

struct Env {
    console: Console,
    http: reqwest::Client,
    files: tempfile::TempDir,
}

impl Env {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.console.call(&self.http, method, path, body).await
    }

    async fn service(&self, name: &str) -> Value {
        let (s, b) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/services/{name}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    async fn wait_for(&self, what: &str, name: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let b = self.service(name).await;
            if done(&b) {
                return b;
            }
            assert!(Instant::now() < deadline, "{what} within 60 s: {b}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn manifest(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
           "metadata": {"name": name}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_runs_services_on_kubernetes_and_the_gateway_splits_by_endpoint_slices() {
    let plane = ControlPlane::with_crd();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let env = Env {
        console: Console::start(
            &home.path().join("home"),
            &["--platform", "kubernetes", "--kubeconfig", &kubeconfig],
        ),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        files: tempfile::tempdir().unwrap(),
    };
    common::register_model(&env.console, &env.http, "echo", 2, env.files.path()).await;

    // A service written through the console lands in the tenant's namespace.
    let split = json!({"model": "echo", "versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}], "replicas": 1});
    let (s, b) = env
        .call(
            reqwest::Method::POST,
            "/api/v1/services",
            Some(manifest("echo", split)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let deploy = b["id"].as_i64().unwrap();
    plane.wait_until(
        "ModelService echo in the cluster",
        Duration::from_secs(30),
        || {
            plane
                .kubectl_with(&["get", "ms", "echo", "-n", TENANT], "")
                .status
                .success()
        },
    );
    let object = plane.get_json(&["ms", "echo", "-n", TENANT]);

    // Each config environment is a ConfigMap in the tenant's namespace,
    // following publishes and deletes.
    let key = "/api/v1/config/environments/staging/keys/DEFAULT_GROUP/app.yaml";
    let configmap_data = || {
        let out = plane.kubectl_with(
            &[
                "get",
                "configmap",
                "autoglm-config-staging",
                "-n",
                TENANT,
                "-o",
                "json",
            ],
            "",
        );
        serde_json::from_slice::<Value>(&out.stdout).map_or(Value::Null, |v| v["data"].clone())
    };
    let (s, b) = env
        .call(
            reqwest::Method::PUT,
            key,
            Some(json!({"content": "a: 1\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    plane.wait_until(
        "the ConfigMap holding app.yaml",
        Duration::from_secs(30),
        || configmap_data()["DEFAULT_GROUP.app.yaml"] == "a: 1\n",
    );
    let labels = plane.get_json(&["configmap", "autoglm-config-staging", "-n", TENANT])["metadata"]
        ["labels"]
        .clone();
    assert_eq!(
        labels["autoglm.io/config-environment"], "staging",
        "{labels}"
    );
    let (s, b) = env
        .call(
            reqwest::Method::PUT,
            key,
            Some(json!({"content": "a: 2\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    plane.wait_until("the ConfigMap updated", Duration::from_secs(30), || {
        configmap_data()["DEFAULT_GROUP.app.yaml"] == "a: 2\n"
    });
    let (s, b) = env.call(reqwest::Method::DELETE, key, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    plane.wait_until(
        "the key gone from the ConfigMap",
        Duration::from_secs(30),
        || {
            let data = configmap_data();
            data.is_null() || data.get("DEFAULT_GROUP.app.yaml").is_none()
        },
    );
    assert_eq!(object["spec"]["versions"][1]["weight"], 10);
    assert_eq!(
        object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "autoglm-console"
    );

    // The operator's status is what the console answers with.
    let operator = Operator::start(plane, TENANT, &[]);
    let answered = env
        .wait_for("Ready from the operator", "echo", |b| {
            b["status"]["readyReplicas"] == 2
                && b["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .await;
    assert_eq!(answered["status"]["url"], "http://echo.default.svc/v1");
    // The deploy task ended when the operator reported the rollout done.
    let task = task_once_final(&env, deploy).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["result"]["status"]["observedGeneration"], 1, "{task}");

    // Scale and delete through the console reach the cluster.
    let (s, b) = env
        .call(
            reqwest::Method::POST,
            "/api/v1/services/echo/scale",
            Some(json!({"replicas": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let scale = b["id"].as_i64().unwrap();
    plane.wait_until("replicas 3 in the cluster", Duration::from_secs(30), || {
        plane.get_json(&["ms", "echo", "-n", TENANT])["spec"]["replicas"] == 3
    });
    env.wait_for("6 ready after scaling", "echo", |b| {
        b["status"]["readyReplicas"] == 6
    })
    .await;
    let task = task_once_final(&env, scale).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["result"]["status"]["readyReplicas"], 6, "{task}");

    // A configRef (runtime settings, as the service runs the built-in
    // runtime): the pods mount the environment's ConfigMap, and each
    // publish of the key rolls them through the md5 on their template.
    let referenced = "/api/v1/config/environments/staging/keys/DEFAULT_GROUP/echo.yaml";
    let (s, first) = env
        .call(
            reqwest::Method::PUT,
            referenced,
            Some(json!({"content": "sampling: {max_tokens: 16}\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let with_config = json!({"model": "echo", "versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}],
        "replicas": 3, "configRef": {"environment": "staging", "key": "echo.yaml"}});
    let (s, b) = env
        .call(
            reqwest::Method::PUT,
            "/api/v1/services/echo",
            Some(manifest("echo", with_config)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let template =
        || plane.get_json(&["deployment", "echo-1", "-n", TENANT])["spec"]["template"].clone();
    plane.wait_until(
        "pods carrying the key's md5",
        Duration::from_secs(30),
        || template()["metadata"]["annotations"]["autoglm.io/config-md5"] == first["md5"],
    );
    let volume = template()["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .cloned()
        .expect("the config volume");
    assert_eq!(
        volume["configMap"]["name"], "autoglm-config-staging",
        "{volume}"
    );
    let (s, second) = env
        .call(
            reqwest::Method::PUT,
            referenced,
            Some(json!({"content": "sampling: {max_tokens: 32}\n"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    assert_ne!(first["md5"], second["md5"]);
    plane.wait_until(
        "pods rolled to the new md5",
        Duration::from_secs(30),
        || template()["metadata"]["annotations"]["autoglm.io/config-md5"] == second["md5"],
    );

    // A spec the console accepts but Kubernetes does not (a command runtime)
    // is reported in the API server's words, not retried for ever.
    let command = json!({"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
                         "runtime": {"command": {"command": ["python3", UPSTREAM, "{port}", "{version}", "{name}"]}}});
    let (s, b) = env
        .call(
            reqwest::Method::POST,
            "/api/v1/services",
            Some(manifest("local-only", command)),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let refused_task = b["id"].as_i64().unwrap();
    let refused = env
        .wait_for("the refusal reported", "local-only", |b| {
            b["status"]["conditions"][0]["reason"] == "KubernetesRefused"
        })
        .await;
    let why = refused["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap();
    assert!(why.contains("command"), "{why}");
    let task = task_once_final(&env, refused_task).await;
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "refused", "{task}");
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("KubernetesRefused: "),
        "{task}"
    );

    // The gateway: real upstreams behind hand-made EndpointSlices of the
    // versions' Services (kwok's pods have no network), 90/10 must hold.
    drop(operator);
    plane.kubectl(&["delete", "service", "echo-1", "echo-2", "-n", TENANT]);
    let ip = host_ip();
    let _upstreams =
        ["1", "2"].map(|version| cluster::upstream(plane, &ip, TENANT, "echo", version, false));
    let gateway_port = free_port();
    let _gateway = Process(
        Command::new(cluster::BIN)
            .args(["gateway", "--home"])
            .arg(home.path().join("home"))
            .args([
                "--addr",
                &format!("127.0.0.1:{gateway_port}"),
                "--kubeconfig",
                &kubeconfig,
            ])
            // A version without endpoints answers 503 after a second instead of holding long.
            .args(["--hold-timeout", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let chat = |model: &str| {
        env.http
            .post(format!(
                "http://127.0.0.1:{gateway_port}/v1/chat/completions"
            ))
            .bearer_auth(&env.console.token)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = chat("echo").send().await
            && r.status() == StatusCode::OK
            && r.headers().contains_key("x-autoglm-version")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never routed to echo"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answers: Vec<(String, Value)> = futures_util::stream::iter(0..2000)
        .map(|_| {
            let request = chat("echo");
            async move {
                let r = request.send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let version = r.headers()["x-autoglm-version"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                (version, r.json().await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (version, body) in answers {
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("v{version}"),
            "the answer came from the version the gateway named"
        );
        *counts.entry(version).or_default() += 1;
    }
    let share = counts.get("2").copied().unwrap_or(0) as f64 / 2000.0;
    assert!(
        (share - 0.10).abs() <= 0.03,
        "version 2 got {share:.3} of 2000: {counts:?}"
    );

    // Pinning still works, and a version whose endpoints go away stops
    // getting traffic once its slice says so.
    let pinned = chat("echo:2").send().await.unwrap();
    assert_eq!(pinned.headers()["x-autoglm-version"], "2");
    plane.kubectl(&["delete", "endpointslice", "echo-2-test", "-n", TENANT]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = chat("echo:2").send().await.unwrap();
        if r.status() != StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "version 2 kept getting traffic without endpoints"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleting through the console removes the ModelService.
    let (s, b) = env
        .call(reqwest::Method::DELETE, "/api/v1/services/local-only", None)
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = env
        .call(reqwest::Method::DELETE, "/api/v1/services/echo", None)
        .await;
    assert!(s.is_success(), "{s} {b}");
    // (No operator runs now, so its finalizer holds the object: it is marked for deletion.)
    plane.wait_until("echo marked for deletion", Duration::from_secs(30), || {
        let out = plane.kubectl_with(&["get", "ms", "echo", "-n", TENANT, "-o", "json"], "");
        !out.status.success()
            || serde_json::from_slice::<Value>(&out.stdout).unwrap()["metadata"]["deletionTimestamp"].is_string()
    });
}
