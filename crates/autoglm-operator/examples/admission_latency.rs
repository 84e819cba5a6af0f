//! The latency the admission webhook adds to a ModelService write, for
//! `bench/webhook.sh`: N server-side dry-run creates of one service
//! against a real kube-apiserver without the webhook, then the same with
//! the webhook served in this process (self-signed, `failurePolicy: Fail`)
//! judging them by the policies of the `policies-NAMESPACE` ConfigMap
//! (kept, for the benchmark, in the namespace itself). Prints the percentiles of both, in milliseconds.
//!
//!   admission_latency KUBECONFIG NAMESPACE SERVICE_JSON N PORT
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use autoglm_operator::{Certificate, Endpoint, WebhookSettings};
use autoglm_render::ModelServiceObject;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};

const DRY_RUN: PostParams = PostParams {
    dry_run: true,
    field_manager: None,
};

/// `n` dry-run creates, each timed, sorted.
async fn creates(api: &Api<DynamicObject>, service: &DynamicObject, n: usize) -> Vec<f64> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        api.create(&DRY_RUN, service).await.unwrap();
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    took
}

fn at(took: &[f64], q: f64) -> f64 {
    took[((took.len() as f64 * q) as usize).min(took.len() - 1)]
}

fn summary(took: &[f64]) -> String {
    format!(
        "p50_ms={:.3} p90_ms={:.3} p99_ms={:.3}",
        at(took, 0.5),
        at(took, 0.9),
        at(took, 0.99)
    )
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kubeconfig, namespace, service, n, port] = &args[..] else {
        panic!("usage: admission_latency KUBECONFIG NAMESPACE SERVICE_JSON N PORT");
    };
    let n: usize = n.parse().unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    // Dynamic, so that apiVersion and kind travel with the object.
    let service: DynamicObject =
        serde_json::from_str(&std::fs::read_to_string(service).unwrap()).unwrap();
    let resource = ApiResource::erase::<ModelServiceObject>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);

    creates(&api, &service, n / 10).await;
    let without = creates(&api, &service, n).await;
    println!("without webhook: {}", summary(&without));

    let settings = WebhookSettings {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        endpoint: Endpoint::Url(format!("https://127.0.0.1:{port}/validate")),
        certificate: Certificate::SelfSigned {
            namespace: namespace.clone(),
        },
        failure_policy: "Fail".into(),
        timeout_seconds: autoglm_operator::DEFAULT_TIMEOUT_SECONDS,
        namespaces: vec![namespace.clone()],
        policies_namespace: namespace.clone(),
        trusted_users: Vec::new(),
    };
    tokio::spawn(autoglm_operator::serve_webhook(client.clone(), settings));
    // Judging has begun once a service without a required label is refused
    // (the API server reads webhook configurations from its own watch).
    let mut unlabelled = service.clone();
    if let Some(labels) = unlabelled.metadata.labels.as_mut() {
        labels.remove("team");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.create(&DRY_RUN, &unlabelled).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the webhook never judged a write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    creates(&api, &service, n / 10).await;
    let with = creates(&api, &service, n).await;
    println!("with webhook: {}", summary(&with));
    println!(
        "added: p50_ms={:.3} p99_ms={:.3}",
        at(&with, 0.5) - at(&without, 0.5),
        at(&with, 0.99) - at(&without, 0.99)
    );
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client);
    configurations
        .delete(autoglm_operator::CONFIGURATION, &Default::default())
        .await
        .unwrap();
}
