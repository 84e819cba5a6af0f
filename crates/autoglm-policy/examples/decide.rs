//! The cost of judging one deploy by 20 policies, for `bench/policy.sh`:
//! the six default policies with varied parameters, 20 in all, judging a
//! ModelService create, timed one decision at a time. It also writes each
//! policy and its input document to OUT_DIR, for `opa bench` to time the
//! same evaluations as the anchor.
//!
//!   cargo run --release -p autoglm-policy --example decide -- OUT_DIR [ITERATIONS]
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use autoglm_policy::{
    Caller, Kind, Mode, NamedPolicy, Operation, PolicySpec, Review, Syntax, TenantPolicies,
    compile, decide, library,
};
use serde_json::{Value, json};

/// Parameters for the `i`th copy of a library policy, so that no two of
/// the 20 are the same.
fn parameters(name: &str, i: usize) -> Value {
    match name {
        "required-labels" => {
            json!({"labels": ["team", "cost-center", format!("label-{i}")], "patterns": {"cost-center": "^cc-[0-9]{4}$"}})
        }
        "image-registries" => json!({"registries": [format!("ghcr.io/team-{i}"), "ghcr.io/acme"]}),
        "gpu-quota" => json!({"maxGpus": 8 + i}),
        "dev-replicas" => json!({"maxReplicas": 2 + i}),
        _ => json!({}),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().expect("usage: decide OUT_DIR [ITERATIONS]"));
    let iterations: usize = args.next().map_or(20_000, |n| n.parse().unwrap());
    std::fs::create_dir_all(&out).unwrap();

    let library = library();
    let policies: Vec<_> = (0..20)
        .map(|i| {
            let entry = &library[i % library.len()];
            let spec = PolicySpec {
                rego: entry.rego.to_owned(),
                mode: Mode::Enforce,
                syntax: Syntax::V1,
                parameters: parameters(entry.name, i),
                kinds: vec![Kind::ModelService],
                description: String::new(),
            };
            compile(&format!("p{i:02}"), &spec).unwrap()
        })
        .collect();
    let review = Review {
        kind: Kind::ModelService,
        operation: Operation::Create,
        resource: json!({
            "apiVersion": "autoglm.io/v1alpha1",
            "kind": "ModelService",
            "metadata": {"name": "chat", "namespace": "acme",
                         "labels": {"team": "nlp", "cost-center": "cc-1001", "environment": "prod"}},
            "spec": {
                "model": "glm",
                "versions": [{"version": "3", "weight": 90}, {"version": "4", "weight": 10}],
                "runtime": {"image": {"image": "ghcr.io/acme/vllm:0.6", "port": 8000}},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetInFlight": 8},
                "resources": {"cpu": "4", "memory": "16Gi", "gpu": 1},
            },
        }),
        old_resource: None,
        caller: Caller {
            actor: "user:alice".into(),
            username: "alice".into(),
            role: "developer".into(),
        },
        tenant: "acme".into(),
        context: json!({"versionStages": {"3": "production", "4": "staging"}, "tenantGpus": 2}),
    };
    for (i, policy) in policies.iter().enumerate() {
        std::fs::write(out.join(format!("{i:02}.rego")), &policy.spec.rego).unwrap();
        let input = review.input(&policy.spec.parameters);
        std::fs::write(out.join(format!("{i:02}.json")), input.to_string()).unwrap();
        std::fs::write(
            out.join(format!("{i:02}.query")),
            format!("{}.deny", policy.package),
        )
        .unwrap();
    }

    // The same 20 as the ConfigMap the console keeps in a tenant's
    // namespace, and the service, for bench/webhook.sh.
    let tenant = TenantPolicies {
        policies: policies
            .iter()
            .map(|p| NamedPolicy {
                name: p.name.clone(),
                spec: p.spec.clone(),
            })
            .collect(),
        version_stages: [(
            "glm".to_owned(),
            review.context["versionStages"].as_object().unwrap().clone(),
        )]
        .into(),
    };
    std::fs::write(
        out.join("configmap-data.json"),
        serde_json::to_string(&tenant.to_data()).unwrap(),
    )
    .unwrap();
    // With every label the 20 ask for, so that the webhook allows it.
    let mut service = review.resource.clone();
    for i in 0..20 {
        service["metadata"]["labels"][format!("label-{i}")] = json!("x");
    }
    std::fs::write(out.join("service.json"), service.to_string()).unwrap();

    for _ in 0..iterations / 10 {
        decide(&policies, &review);
    }
    let mut took = Vec::with_capacity(iterations);
    let mut denials = 0;
    for _ in 0..iterations {
        let started = Instant::now();
        let decision = decide(&policies, &review);
        took.push(started.elapsed().as_nanos() as f64 / 1000.0);
        denials = decision.denials.len();
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    let mean = took.iter().sum::<f64>() / took.len() as f64;
    println!(
        "decisions={iterations} policies={} denials={denials} p50_us={:.1} p99_us={:.1} mean_us={:.1}",
        policies.len(),
        at(0.5),
        at(0.99),
        mean
    );
}
