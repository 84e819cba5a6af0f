//! The alert rules' checks, a series' states step by step, silences,
//! MTTR and the notification payload.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::alert::notify::{fingerprint, zero_time};

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn rule(value: serde_json::Value) -> AlertRule {
    serde_json::from_value(value).unwrap()
}

fn paths(value: serde_json::Value) -> Vec<String> {
    rule(value)
        .ready()
        .unwrap_err()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

#[test]
fn a_rule_gets_its_defaults_and_parsed_condition() {
    let ready =
        rule(json!({"name": "errors", "metric": "errorRatio", "condition": "result > 0.1"}))
            .ready()
            .unwrap();
    assert_eq!(ready.window, Duration::from_secs(10));
    assert_eq!(ready.for_duration, Duration::ZERO);
    assert_eq!(ready.severity, Severity::Warning);
    assert_eq!(ready.service, None);
    assert_eq!(ready.condition.holds(0.3, None), Some(true));
    assert_eq!(ready.condition.holds(0.05, None), Some(false));
    let full = rule(json!({"name": "slow", "service": "chat", "metric": "latencyP99",
        "condition": "result > baseline * 2", "window": "30s", "for": "1m", "severity": "critical",
        "labels": {"team": "a"}, "receivers": [{"webhook": {"url": "https://hooks.example/x"}}],
        "playbook": {"steps": [{"restart": {}}, {"scaleOut": {"by": 1, "max": 4}}], "cooldown": "30s", "maxPerHour": 3}}))
    .ready()
    .unwrap();
    assert_eq!(
        full.metric,
        AlertMetric::Traffic(crate::rollout::GatewayMetric::LatencyP99)
    );
    assert_eq!(full.for_duration, Duration::from_secs(60));
    let playbook = full.playbook.unwrap();
    assert_eq!(playbook.cooldown, Duration::from_secs(30));
    assert_eq!(playbook.max_per_hour, 3);
    assert_eq!(playbook.steps[1], PlaybookStep::ScaleOut { by: 1, max: 4 });
}

#[test]
fn every_wrong_field_is_named_by_its_path() {
    assert_eq!(
        paths(
            json!({"name": "Bad Name", "metric": "cpu", "condition": "result >", "for": "-5s",
            "window": "15s", "receivers": [{"webhook": {"url": "ftp://x"}}],
            "playbook": {"steps": [{"scaleOut": {"by": 0, "max": 1000}}, {"webhook": {"url": "nope"}}], "maxPerHour": 0}})
        ),
        vec![
            "name",
            "metric",
            "condition",
            "window",
            "for",
            "receivers[0].webhook.url",
            "playbook.steps[0].scaleOut.by",
            "playbook.steps[0].scaleOut.max",
            "playbook.steps[1].webhook.url",
            "playbook.maxPerHour",
        ]
    );
    assert_eq!(
        paths(
            json!({"name": "x", "metric": "errorRatio", "condition": "result > 1", "playbook": {"steps": []},
            "labels": {"1bad": "v"}})
        ),
        vec!["labels.1bad", "playbook.steps"]
    );
    let unknown: Result<AlertRule, _> = serde_json::from_value(
        json!({"name": "x", "metric": "errorRatio", "condition": "result > 1", "expr": "up"}),
    );
    assert!(unknown.unwrap_err().to_string().contains("expr"));
}

#[test]
fn a_series_is_pending_for_its_for_then_fires_then_resolves_without_data() {
    let for_10s = Duration::from_secs(10);
    let mut s = SeriesState::default();
    assert_eq!(s.step(Some(false), for_10s, at(0)), None);
    assert_eq!(
        s.step(Some(true), for_10s, at(2)),
        Some(Transition::Pending)
    );
    assert_eq!(s.step(Some(true), for_10s, at(10)), None, "8 s is not 10");
    assert_eq!(s.step(Some(true), for_10s, at(12)), Some(Transition::Fired));
    assert_eq!(
        s,
        SeriesState::Firing {
            since: at(2),
            fired_at: at(12)
        }
    );
    assert_eq!(s.step(Some(true), for_10s, at(14)), None, "fires once");
    assert_eq!(
        s.step(None, for_10s, at(16)),
        Some(Transition::Resolved),
        "no data resolves"
    );
    assert_eq!(s, SeriesState::Inactive);
}

#[test]
fn a_condition_that_stops_holding_while_pending_clears_and_starts_over() {
    let for_10s = Duration::from_secs(10);
    let mut s = SeriesState::default();
    s.step(Some(true), for_10s, at(0));
    assert_eq!(
        s.step(Some(false), for_10s, at(5)),
        Some(Transition::Cleared)
    );
    assert_eq!(
        s.step(Some(true), for_10s, at(6)),
        Some(Transition::Pending)
    );
    assert_eq!(
        s.step(Some(true), for_10s, at(12)),
        None,
        "counted from 6 again"
    );
    assert_eq!(s.step(Some(true), for_10s, at(16)), Some(Transition::Fired));
    let mut now = SeriesState::default();
    assert_eq!(
        now.step(Some(true), Duration::ZERO, at(0)),
        Some(Transition::Fired),
        "for 0s fires at once"
    );
}

#[test]
fn silences_match_every_matcher_within_their_span() {
    let silence = Silence {
        id: 1,
        matchers: vec![
            Matcher {
                name: "service".into(),
                value: "chat".into(),
                is_equal: true,
            },
            Matcher {
                name: "severity".into(),
                value: "info".into(),
                is_equal: false,
            },
        ],
        starts_at: at(0),
        ends_at: at(100),
        comment: String::new(),
        created_by: "admin".into(),
    };
    let labels = |service: &str, severity: &str| {
        BTreeMap::from([
            ("service".to_owned(), service.to_owned()),
            ("severity".to_owned(), severity.to_owned()),
        ])
    };
    assert!(silence.silences(&labels("chat", "critical"), at(50)));
    assert!(
        !silence.silences(&labels("chat", "info"), at(50)),
        "not-equal matcher"
    );
    assert!(!silence.silences(&labels("embed", "critical"), at(50)));
    assert!(
        !silence.silences(&labels("chat", "critical"), at(100)),
        "ended"
    );
    assert_eq!(silence.state(at(-1)), "pending");
    assert_eq!(silence.state(at(100)), "expired");
    let spec = SilenceSpec {
        matchers: vec![],
        starts_at: None,
        ends_at: at(-5),
        comment: String::new(),
    };
    let errors: Vec<String> = spec
        .check(at(0))
        .unwrap_err()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(errors, vec!["matchers", "endsAt"]);
}

#[test]
fn mttr_is_the_mean_over_resolved_incidents_per_service_and_rule() {
    let incident = |service: &str, rule: &str, seconds: Option<f64>| Incident {
        id: 0,
        rule: rule.into(),
        service: service.into(),
        version: "1".into(),
        severity: "critical".into(),
        labels: BTreeMap::new(),
        source: "autoglm".into(),
        state: if seconds.is_some() {
            IncidentState::Resolved
        } else {
            IncidentState::Open
        },
        opened_at: at(0),
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        seconds_to_resolve: seconds,
        timeline: vec![],
    };
    let rows = mttr(&[
        incident("chat", "errors", Some(10.0)),
        incident("chat", "errors", Some(30.0)),
        incident("chat", "errors", None),
        incident("chat", "slow", Some(5.0)),
        incident("embed", "errors", None),
    ]);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (
            rows[0].incidents,
            rows[0].resolved,
            rows[0].mean_seconds,
            rows[0].max_seconds
        ),
        (3, 2, Some(20.0), Some(30.0))
    );
    assert_eq!(rows[1].rule, "slow");
    assert_eq!(
        (rows[2].service.as_str(), rows[2].mean_seconds),
        ("embed", None)
    );
}

#[test]
fn the_payload_is_alertmanagers_version_4() {
    let labels = BTreeMap::from([
        ("alertname".to_owned(), "errors".to_owned()),
        ("service".to_owned(), "chat".to_owned()),
    ]);
    let alert = AlertmanagerAlert {
        status: "firing".into(),
        labels: labels.clone(),
        annotations: BTreeMap::new(),
        starts_at: at(0),
        ends_at: zero_time(),
        generator_url: "http://console/ui/alerts".into(),
        fingerprint: fingerprint(&labels),
    };
    let payload = serde_json::to_value(AlertmanagerPayload::single(
        "webhook",
        "http://console",
        alert,
    ))
    .unwrap();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["groupLabels"], json!({"alertname": "errors"}));
    assert_eq!(payload["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        payload["alerts"][0]["generatorURL"],
        "http://console/ui/alerts"
    );
    assert_eq!(payload["externalURL"], "http://console");
    assert_eq!(fingerprint(&labels).len(), 16);
    // What an Alertmanager sends parses back, its extra fields ignored.
    let back: AlertmanagerPayload = serde_json::from_value(payload).unwrap();
    assert_eq!(back.alerts[0].labels["service"], "chat");
    assert_eq!(retry_delay(1), Duration::from_secs(1));
    assert_eq!(retry_delay(3), Duration::from_secs(4));
    assert_eq!(retry_delay(30), Duration::from_secs(60));
}
