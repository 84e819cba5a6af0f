//! The operator's admission webhook against the test plane's real
//! kube-apiserver: the console (`--platform kubernetes`) keeps the tenant's
//! policies in its namespace, `autoglm operator --webhook-addr …` serves the
//! ValidatingAdmissionWebhook over TLS with a self-signed CA it writes into
//! the configuration, and `kubectl apply` of a ModelService that a default
//! policy refuses is refused with the console's own words, while a
//! compliant one goes through both. The tenant's namespace also carries its
//! quota as a ResourceQuota, container defaults and a network policy.
//!
//! Its own test binary: the webhook configuration is cluster-wide, so no
//! other test shares this control plane.
#![allow(clippy::unwrap_used)]

mod cluster;
mod common;

use std::time::Duration;

use cluster::{ControlPlane, Operator, free_port};
use common::Console;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TENANT: &str = "default";

/// A ModelService manifest (JSON is YAML, so kubectl takes it too).
fn manifest(name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService",
           "metadata": {"name": name, "namespace": TENANT, "labels": labels}, "spec": spec})
}

fn compliant_labels() -> Value {
    json!({"team": "nlp", "cost-center": "cc-1", "environment": "prod"})
}

fn compliant_spec() -> Value {
    json!({"model": "echo", "versions": [{"version": "1", "weight": 100}], "replicas": 1,
           "resources": {"cpu": "1", "memory": "1Gi"}})
}

/// One violation per default policy: (policy, service, labels, spec, what it says).
fn violations() -> Vec<(&'static str, &'static str, Value, Value, &'static str)> {
    let labels = compliant_labels();
    let spec = compliant_spec();
    let with = |patch: Value| {
        let mut s = spec.clone();
        for (k, v) in patch.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    vec![
        (
            "resource-limits",
            "no-memory",
            labels.clone(),
            with(json!({"resources": {"cpu": "1"}})),
            "service no-memory must set spec.resources.memory",
        ),
        (
            "required-labels",
            "no-cost-center",
            json!({"team": "nlp", "environment": "prod"}),
            spec.clone(),
            "service no-cost-center must have the label cost-center",
        ),
        (
            "image-registries",
            "foreign-image",
            labels.clone(),
            with(json!({"runtime": {"image": {"image": "docker.io/evil/server:1", "port": 8000}}})),
            "image docker.io/evil/server:1 of service foreign-image is not from an allowed registry (ghcr.io/acme)",
        ),
        (
            "gpu-quota",
            "many-gpus",
            labels.clone(),
            with(json!({"resources": {"cpu": "1", "memory": "1Gi", "gpu": 3}})),
            "service many-gpus may hold 3 GPUs and the tenant's other services 0: over the tenant's quota of 2 (2 left)",
        ),
        (
            "dev-replicas",
            "big-dev",
            json!({"team": "nlp", "cost-center": "cc-1", "environment": "dev"}),
            with(json!({"replicas": 3})),
            "service big-dev is in dev, where a version may have at most 2 replicas; it asks for 3",
        ),
        (
            "prod-traffic",
            "early-canary",
            labels.clone(),
            with(
                json!({"versions": [{"version": "1", "weight": 40}, {"version": "2", "weight": 60}]}),
            ),
            "version 2 of prod service early-canary is in stage staging and may take at most 50% of the traffic, not 60%",
        ),
    ]
}

/// `kubectl apply` of `manifest`: (accepted, stderr).
fn kubectl_apply(plane: &ControlPlane, manifest: &Value, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["apply", "-f", "-"];
    args.extend(extra);
    let output = plane.kubectl_with(&args, &manifest.to_string());
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn set_stage(console: &Console, http: &reqwest::Client, version: u32, stage: &str) {
    let resp = http
        .put(console.api(&format!("/api/v1/models/echo/versions/{version}/stage")))
        .bearer_auth(&console.token)
        .header("x-autoglm-timestamp", chrono::Utc::now().timestamp())
        .header(
            "x-autoglm-nonce",
            format!("admission-test-stage-{version}-{stage}"),
        )
        .json(&json!({"stage": stage}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_apply_is_judged_by_the_webhook_as_the_console_judges() {
    let plane = ControlPlane::with_crd();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let console = Console::start(
        &home.path().join("home"),
        &["--platform", "kubernetes", "--kubeconfig", &kubeconfig],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    common::register_model(&console, &http, "echo", 2, files.path()).await;
    set_stage(&console, &http, 1, "staging").await;
    set_stage(&console, &http, 1, "production").await;
    set_stage(&console, &http, 2, "staging").await;

    // Every default policy, enforced, with the parameters of this tenant;
    // a dry-run policy that finds something in every service, and a warning.
    let library = console
        .call(
            &http,
            reqwest::Method::GET,
            "/api/v1/policies/library",
            None,
        )
        .await
        .1;
    let parameters = json!({
        "resource-limits": {}, "required-labels": {"labels": ["team", "cost-center"]},
        "image-registries": {"registries": ["ghcr.io/acme"]}, "gpu-quota": {"maxGpus": 2},
        "dev-replicas": {"maxReplicas": 2}, "prod-traffic": {},
    });
    for entry in library.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let body =
            json!({"rego": entry["rego"], "mode": "enforce", "parameters": parameters[name]});
        let (s, b) = console
            .call(
                &http,
                reqwest::Method::PUT,
                &format!("/api/v1/policies/{name}"),
                Some(body),
            )
            .await;
        assert!(s.is_success(), "{name}: {b}");
    }
    for (name, mode, message) in [
        ("noted", "dryrun", "every service is noted"),
        ("reminder", "warn", "remember the on-call rota"),
    ] {
        let rego = format!("package {name}\ndeny contains \"{message}\" if {{ true }}");
        let (s, b) = console
            .call(
                &http,
                reqwest::Method::PUT,
                &format!("/api/v1/policies/{name}"),
                Some(json!({"rego": rego, "mode": mode})),
            )
            .await;
        assert!(s.is_success(), "{name}: {b}");
    }

    // The console keeps them, with the stages, in the tenant's namespace.
    plane.wait_until("the policies ConfigMap", Duration::from_secs(60), || {
        let out = plane.kubectl_with(
            &[
                "get",
                "configmap",
                "policies-default",
                "-n",
                "autoglm-system",
                "-o",
                "json",
            ],
            "",
        );
        let Ok(map) = serde_json::from_slice::<Value>(&out.stdout) else {
            return false;
        };
        let policies: Value =
            serde_json::from_str(map["data"]["policies.json"].as_str().unwrap_or("[]")).unwrap();
        let stages: Value =
            serde_json::from_str(map["data"]["versionStages.json"].as_str().unwrap_or("{}"))
                .unwrap();
        policies.as_array().unwrap().len() == 8 && stages["echo"]["2"] == "staging"
    });

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("https://127.0.0.1:{port}/validate");
    let _operator = Operator::start(
        plane,
        TENANT,
        &["--webhook-addr", &addr, "--webhook-url", &url],
    );
    plane.wait_until("the webhook configuration", Duration::from_secs(60), || {
        plane
            .kubectl_with(
                &["get", "validatingwebhookconfiguration", "autoglm-policies"],
                "",
            )
            .status
            .success()
    });
    let config = plane.get_json(&["validatingwebhookconfiguration", "autoglm-policies"]);
    let hook = &config["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["clientConfig"]["url"], url.as_str());
    assert!(hook["clientConfig"]["caBundle"].as_str().unwrap().len() > 100);
    // The CA is shared through a Secret, so every replica serves the same.
    plane.kubectl(&["get", "secret", "autoglm-webhook-tls", "-n", TENANT]);

    // Until the webhook has read the policies, a server-side dry run goes
    // through (and writes nothing).
    let (policy, name, labels, spec, _) = &violations()[0];
    let probe = manifest(name, labels.clone(), spec.clone());
    plane.wait_until(
        &format!("the webhook refusing by {policy}"),
        Duration::from_secs(60),
        || {
            let (accepted, stderr) = kubectl_apply(plane, &probe, &["--dry-run=server"]);
            !accepted && stderr.contains(&format!("denied the request: policy {policy}"))
        },
    );

    for (policy, name, labels, spec, says) in violations() {
        let service = manifest(name, labels, spec);
        let (s, problem) = console
            .call(
                &http,
                reqwest::Method::POST,
                "/api/v1/services",
                Some(service.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{policy}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert_eq!(detail, format!("policy {policy} (deny): {says}"));

        let (accepted, stderr) = kubectl_apply(plane, &service, &[]);
        assert!(!accepted, "{policy}: kubectl apply went through");
        assert!(
            stderr.contains(&format!(
                "admission webhook \"policies.autoglm.io\" denied the request: {detail}"
            )),
            "{policy}: {stderr}"
        );
        let got = plane.kubectl_with(&["get", "modelservice", name, "-n", TENANT], "");
        assert!(!got.status.success(), "{policy}: {name} was created");
    }

    // A compliant service goes through both, with the warning (and the
    // dry-run finding only in the console's audit).
    let good = manifest("good", compliant_labels(), compliant_spec());
    let resp = http
        .post(console.api("/api/v1/services"))
        .bearer_auth(&console.token)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let warning = resp.headers()["warning"].to_str().unwrap().to_owned();
    assert_eq!(
        warning,
        "299 - \"policy reminder: remember the on-call rota\""
    );
    let by_kubectl = manifest("good-kubectl", compliant_labels(), compliant_spec());
    let (accepted, stderr) = kubectl_apply(plane, &by_kubectl, &[]);
    assert!(accepted, "{stderr}");
    assert!(
        stderr.contains("Warning: policy reminder: remember the on-call rota"),
        "{stderr}"
    );
    // The console's own write reached the cluster through the webhook too.
    plane.wait_until(
        "the console's service in the cluster",
        Duration::from_secs(60),
        || {
            plane
                .kubectl_with(&["get", "modelservice", "good", "-n", TENANT], "")
                .status
                .success()
        },
    );

    // An update that breaks a policy is refused; one that only touches
    // what policies do not see (an annotation) is not judged again.
    let mut worse = by_kubectl.clone();
    worse["spec"]["replicas"] = json!(5);
    worse["metadata"]["labels"]["environment"] = json!("dev");
    let (accepted, stderr) = kubectl_apply(plane, &worse, &[]);
    assert!(!accepted);
    assert!(stderr.contains("policy dev-replicas (deny)"), "{stderr}");

    // `kubectl scale` is judged too: the scale subresource is no way around.
    let dev_labels = json!({"team": "nlp", "cost-center": "cc-1", "environment": "dev"});
    let small_dev = manifest("small-dev", dev_labels, compliant_spec());
    let (accepted, stderr) = kubectl_apply(plane, &small_dev, &[]);
    assert!(accepted, "{stderr}");
    let scaled = plane.kubectl_with(
        &[
            "scale",
            "modelservice",
            "small-dev",
            "-n",
            TENANT,
            "--replicas=5",
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&scaled.stderr);
    assert!(!scaled.status.success(), "kubectl scale went through");
    assert!(
        stderr.contains("policy dev-replicas (deny): service small-dev is in dev, where a version may have at most 2 replicas; it asks for 5"),
        "{stderr}"
    );
    plane.kubectl(&[
        "scale",
        "modelservice",
        "small-dev",
        "-n",
        TENANT,
        "--replicas=2",
    ]);

    // The tenant cannot open its namespace by deleting the policies' copy:
    // without it every write there is refused, until the console applies
    // it again (at the next change of a policy, or within five minutes).
    plane.kubectl(&[
        "delete",
        "configmap",
        "policies-default",
        "-n",
        "autoglm-system",
    ]);
    // (A new service: kubectl sends nothing for an unchanged one.)
    let fresh = manifest("fresh", compliant_labels(), compliant_spec());
    plane.wait_until(
        "writes refused without the copy",
        Duration::from_secs(60),
        || {
            let (accepted, stderr) = kubectl_apply(plane, &fresh, &["--dry-run=server"]);
            !accepted && stderr.contains("the policies of tenant default are not known here yet")
        },
    );
    // A policy that freezes good-kubectl brings the copy back with it.
    let frozen = "package frozen\ndeny contains \"good-kubectl is frozen\" if { input.name == \"good-kubectl\" }";
    let (s, b) = console
        .call(
            &http,
            reqwest::Method::PUT,
            "/api/v1/policies/frozen",
            Some(json!({"rego": frozen})),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let mut respec = by_kubectl.clone();
    respec["spec"]["resources"] = json!({"cpu": "2", "memory": "1Gi"});
    plane.wait_until(
        "the frozen policy at the webhook",
        Duration::from_secs(60),
        || {
            let (accepted, stderr) = kubectl_apply(plane, &respec, &["--dry-run=server"]);
            !accepted && stderr.contains("policy frozen (deny): good-kubectl is frozen")
        },
    );
    // What policies do not see (an annotation) is not judged again: the
    // frozen service may still be annotated, and so be deleted.
    plane.kubectl(&[
        "annotate",
        "modelservice",
        "good-kubectl",
        "-n",
        TENANT,
        "note=kept",
    ]);
    let (s, _) = console
        .call(
            &http,
            reqwest::Method::DELETE,
            "/api/v1/policies/frozen",
            None,
        )
        .await;
    assert!(s.is_success());

    // The tenant's namespace holds its quota as a ResourceQuota, container
    // defaults, and the network policy that admits only autoglm's pods.
    let (s, b) = console
        .call(
            &http,
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{TENANT}/quota"),
            Some(json!({"cpu": "8", "memory": "32Gi", "gpus": 2, "replicas": 10, "tokens_per_day": 1000})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    plane.wait_until("the ResourceQuota", Duration::from_secs(60), || {
        let out = plane.kubectl_with(
            &[
                "get",
                "resourcequota",
                "autoglm-quota",
                "-n",
                TENANT,
                "-o",
                "json",
            ],
            "",
        );
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|q| {
            q["spec"]["hard"]
                == json!({"requests.cpu": "8", "requests.memory": "32Gi",
                          "requests.nvidia.com/gpu": "2", "pods": "10"})
        })
    });
    let limits = plane.get_json(&["limitrange", "autoglm-defaults", "-n", TENANT]);
    assert_eq!(
        limits["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "100m", "memory": "128Mi"})
    );
    let isolation = plane.get_json(&["networkpolicy", "autoglm-isolation", "-n", TENANT]);
    assert_eq!(isolation["spec"]["policyTypes"], json!(["Ingress"]));
    // Only the model servers: not every pod that runs in the namespace.
    assert_eq!(
        isolation["spec"]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/managed-by": "autoglm", "app.kubernetes.io/component": "model-server"})
    );
    assert_eq!(
        isolation["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"],
        json!(["gateway", "operator"])
    );
    let (_, quota) = console
        .call(&http, reqwest::Method::GET, "/api/v1/quota", None)
        .await;
    assert_eq!(quota["quota"]["gpus"], 2);
    // A pod over the quota is refused by the API server, and the console
    // says so in the service's status, naming the quota.
    // good, good-kubectl and small-dev's two.
    plane.wait_until("the services' four pods", Duration::from_secs(60), || {
        plane.get_json(&["pods", "-n", TENANT])["items"]
            .as_array()
            .is_some_and(|pods| pods.len() == 4)
    });
    let (s, b) = console
        .call(
            &http,
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{TENANT}/quota"),
            Some(json!({"replicas": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    plane.wait_until("pods limited to 5", Duration::from_secs(60), || {
        let q = plane.get_json(&["resourcequota", "autoglm-quota", "-n", TENANT]);
        q["status"]["hard"]["pods"] == "5"
    });
    let mut crowded = manifest("crowded", compliant_labels(), compliant_spec());
    crowded["spec"]["replicas"] = json!(2);
    let (s, b) = console
        .call(
            &http,
            reqwest::Method::POST,
            "/api/v1/services",
            Some(crowded),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let failure = loop {
        let (_, service) = console
            .call(
                &http,
                reqwest::Method::GET,
                "/api/v1/services/crowded",
                None,
            )
            .await;
        let found = service["status"]["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "ReplicaFailure" && c["reason"] == "QuotaExceeded")
                .cloned()
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no quota refusal: {service}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.starts_with("version 1: ")
            && message.contains("exceeded quota: autoglm-quota")
            && message.contains("limited: pods=5"),
        "{message}"
    );
    // Lifting the quota removes the ResourceQuota.
    let (s, _) = console
        .call(
            &http,
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{TENANT}/quota"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    plane.wait_until("the ResourceQuota gone", Duration::from_secs(60), || {
        !plane
            .kubectl_with(&["get", "resourcequota", "autoglm-quota", "-n", TENANT], "")
            .status
            .success()
    });
}
