//! The alert evaluator's cost per round, as `bench/alerts.sh` runs it: 1,000
//! rules (10 per service, every metric) over 100 services of two versions,
//! each with an hour of traffic history, stepped through `Series::round`;
//! and the rules each round starts from, out of a real SQLite file: read
//! and checked after the table changed, one stamp query when it did not.
//!
//! Usage: round_bench [ROUNDS]; prints one JSON object (milliseconds).

use std::time::Instant;

use autoglm_alerts::Rules;
use autoglm_alerts::round::{Series, ServiceSample, VersionSample};
use autoglm_core::alert::{AlertRule, ReadyRule};
use autoglm_core::audit::AuditEvent;
use autoglm_core::traffic::{KEPT_INTERVALS, TrafficPoint};
use autoglm_store::{Mutation, Store, StoredResponse, alerts};
use chrono::{Duration, Utc};
use serde_json::json;

const SERVICES: usize = 100;
const RULES_PER_SERVICE: usize = 10;

fn history(now: chrono::DateTime<Utc>, errors: u64) -> Vec<TrafficPoint> {
    (0..KEPT_INTERVALS as i64)
        .rev()
        .map(|i| TrafficPoint {
            at: now - Duration::seconds(10 * i),
            requests: 100,
            errors,
            requests_per_second: 10.0,
            error_ratio: errors as f64 / 100.0,
            p50_seconds: Some(0.02),
            p95_seconds: Some(0.08),
            p99_seconds: Some(0.2),
        })
        .collect()
}

fn rule(n: usize, service: Option<String>) -> AlertRule {
    let metrics = [
        "errorRatio",
        "requestRate",
        "latencyP50",
        "latencyP95",
        "latencyP99",
        "replicasUnavailable",
        "queueLength",
    ];
    serde_json::from_value(json!({
        "name": format!("rule-{n}"),
        "service": service,
        "metric": metrics[n % metrics.len()],
        "condition": "result > baseline * 2 || result > 0.5",
        "window": "30s",
        "for": "10s",
        "labels": {"team": "bench"},
        "receivers": [{"webhook": {"url": "http://127.0.0.1:9/hook"}}],
        "playbook": {"steps": [{"rollback": {}}]}
    }))
    .expect("a bench rule")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let now = Utc::now();
    let services: Vec<ServiceSample> = (0..SERVICES)
        .map(|s| ServiceSample {
            tenant: "default".into(),
            service: format!("svc-{s}"),
            versions: vec![
                VersionSample {
                    version: "1".into(),
                    weight: 90,
                    traffic: history(now, 1),
                    replicas_unavailable: Some(0),
                    queue_length: Some(0),
                },
                VersionSample {
                    version: "2".into(),
                    weight: 10,
                    traffic: history(now, s as u64 % 3),
                    replicas_unavailable: Some(0),
                    queue_length: Some(0),
                },
            ],
        })
        .collect();
    let rules: Vec<(String, ReadyRule)> = (0..SERVICES * RULES_PER_SERVICE)
        .map(|n| {
            (
                "default".to_owned(),
                rule(n, Some(format!("svc-{}", n / RULES_PER_SERVICE)))
                    .ready()
                    .expect("checks"),
            )
        })
        .collect();
    let mut series = Series::default();
    let mut round_ms = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let at = now + Duration::milliseconds(i as i64 * 1000);
        let started = Instant::now();
        let changes = series.round(&rules, &services, &[], at);
        round_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(changes);
    }
    round_ms.sort_by(f64::total_cmp);

    // The stored rules, read and checked as every round does.
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Store::open(&dir.path().join("bench.db")).expect("a store");
    for n in 0..SERVICES * RULES_PER_SERVICE {
        let audit = AuditEvent {
            time: autoglm_store::timestamp(Utc::now()),
            actor: "user:bench".into(),
            tenant: "default".into(),
            action: "bench".into(),
            target: String::new(),
            request_id: "bench".into(),
            outcome: String::new(),
        };
        store
            .write(
                Mutation {
                    audit,
                    idempotency: None,
                },
                |tx, _| alerts::put_rule(tx, "default", &rule(n, None), "user:bench"),
                |_| StoredResponse {
                    status: 200,
                    body: Vec::new(),
                },
            )
            .expect("a rule");
    }
    // Read and checked when the table changed; otherwise one stamp query.
    let mut read_ms = Vec::new();
    let mut unchanged_ms = Vec::new();
    for _ in 0..rounds.min(100) {
        let mut rules = Rules::default();
        let started = Instant::now();
        let read = rules.refresh(&store).expect("the rules").len();
        read_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(read, SERVICES * RULES_PER_SERVICE);
        let started = Instant::now();
        let again = rules.refresh(&store).expect("the rules").len();
        unchanged_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(again, read);
    }
    read_ms.sort_by(f64::total_cmp);
    unchanged_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "rules": SERVICES * RULES_PER_SERVICE,
            "services": SERVICES,
            "series": SERVICES * RULES_PER_SERVICE * 2,
            "round_ms": {"p50": percentile(&round_ms, 0.5), "p99": percentile(&round_ms, 0.99)},
            "rules_changed_ms": {"p50": percentile(&read_ms, 0.5), "p99": percentile(&read_ms, 0.99)},
            "rules_unchanged_ms": {"p50": percentile(&unchanged_ms, 0.5), "p99": percentile(&unchanged_ms, 0.99)},
        })
    );
}
