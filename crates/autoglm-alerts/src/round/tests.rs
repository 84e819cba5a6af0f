//! A round step by step: a version's error ratio pending for its `for`,
//! firing, resolving without data; a condition against the baseline; a
//! silence; a rule on every service; series of deleted rules resolving.

use std::collections::BTreeMap;

use autoglm_core::alert::{AlertRule, Matcher, ReadyRule, Silence, Transition};
use autoglm_core::traffic::TrafficPoint;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::*;

fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn rule(value: serde_json::Value) -> (String, ReadyRule) {
    let rule: AlertRule = serde_json::from_value(value).unwrap();
    ("t".to_owned(), rule.ready().unwrap())
}

/// Closed intervals ending at 10, 20, ... up to `until`, each with
/// `requests` and `errors`.
fn points(until: i64, requests: u64, errors: u64) -> Vec<TrafficPoint> {
    (1..=until / 10)
        .map(|i| TrafficPoint {
            at: at(i * 10),
            requests,
            errors,
            requests_per_second: requests as f64 / 10.0,
            error_ratio: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50_seconds: (requests > 0).then_some(0.01),
            p95_seconds: (requests > 0).then_some(0.02),
            p99_seconds: (requests > 0).then_some(0.03),
        })
        .collect()
}

fn service(name: &str, versions: Vec<(&str, u32, Vec<TrafficPoint>)>) -> ServiceSample {
    ServiceSample {
        tenant: "t".to_owned(),
        service: name.to_owned(),
        versions: versions
            .into_iter()
            .map(|(version, weight, traffic)| VersionSample {
                version: version.to_owned(),
                weight,
                traffic,
                replicas_unavailable: Some(0),
                queue_length: None,
            })
            .collect(),
    }
}

fn transitions(changes: &[Change]) -> Vec<(String, Transition)> {
    changes
        .iter()
        .map(|c| (format!("{}/{}", c.key.service, c.key.version), c.transition))
        .collect()
}

#[test]
fn a_failing_version_is_pending_for_its_for_then_fires_then_resolves_without_traffic() {
    let rules = [rule(
        json!({"name": "errors", "service": "chat", "metric": "errorRatio",
        "condition": "result > 0.1", "for": "10s"}),
    )];
    let mut series = Series::default();
    let healthy = |until| {
        service(
            "chat",
            vec![
                ("1", 70, points(until, 70, 0)),
                ("2", 30, points(until, 30, 0)),
            ],
        )
    };
    assert!(series.round(&rules, &[healthy(20)], &[], at(21)).is_empty());
    let failing = |until| {
        service(
            "chat",
            vec![
                ("1", 70, points(until, 70, 0)),
                ("2", 30, points(until, 30, 9)),
            ],
        )
    };
    let changes = series.round(&rules, &[failing(30)], &[], at(31));
    assert_eq!(
        transitions(&changes),
        [("chat/2".to_owned(), Transition::Pending)]
    );
    assert_eq!(series.active(&[], at(31))[0].1.state, "pending");
    assert_eq!(
        series.next_due(),
        Some(at(41)),
        "due when its `for` is over"
    );
    // A late close (the newest interval 10.5 s old) is still read, not no data.
    assert!(
        series
            .round(
                &rules,
                &[failing(30)],
                &[],
                at(40) + chrono::Duration::milliseconds(500)
            )
            .is_empty()
    );
    let changes = series.round(&rules, &[failing(40)], &[], at(41));
    assert_eq!(
        transitions(&changes),
        [("chat/2".to_owned(), Transition::Fired)]
    );
    assert_eq!(changes[0].value, Some(0.3));
    assert_eq!(changes[0].labels["alertname"], "errors");
    assert_eq!(changes[0].labels["severity"], "warning");
    assert_eq!(changes[0].fired_at, at(41), "fired when `for` was over");
    assert_eq!(series.next_due(), None, "nothing pending");
    // Moved off: its next interval has no requests, which is no data.
    let mut moved = failing(40);
    moved.versions[1]
        .traffic
        .extend(points(50, 0, 0).into_iter().skip(4));
    let changes = series.round(&rules, &[moved], &[], at(51));
    assert_eq!(
        transitions(&changes),
        [("chat/2".to_owned(), Transition::Resolved)]
    );
    assert!(series.active(&[], at(51)).is_empty());
}

#[test]
fn a_condition_against_the_baseline_reads_the_other_version_with_the_most_traffic() {
    let rules = [rule(
        json!({"name": "slow", "metric": "latencyP95", "condition": "result > baseline * 2"}),
    )];
    let mut series = Series::default();
    let mut chat = service(
        "chat",
        vec![
            ("1", 90, points(10, 10, 0)),
            ("2", 10, points(10, 10, 0)),
            ("3", 0, points(10, 10, 0)),
        ],
    );
    chat.versions[1].traffic[0].p95_seconds = Some(0.05);
    chat.versions[2].traffic[0].p95_seconds = Some(0.5);
    let changes = series.round(&rules, &[chat], &[], at(11));
    // 2 and 3 are both slower than twice version 1's 0.02 s; 1 is judged against 2.
    assert_eq!(
        transitions(&changes),
        [
            ("chat/2".to_owned(), Transition::Fired),
            ("chat/3".to_owned(), Transition::Fired)
        ]
    );
}

#[test]
fn a_rule_without_a_service_watches_every_service_of_its_tenant_only() {
    let rules = [rule(
        json!({"name": "down", "metric": "replicasUnavailable", "condition": "result >= 1"}),
    )];
    let mut down = service("a", vec![("1", 100, vec![])]);
    down.versions[0].replicas_unavailable = Some(1);
    let mut elsewhere = down.clone();
    elsewhere.tenant = "other".to_owned();
    elsewhere.service = "b".to_owned();
    let up = service("c", vec![("1", 100, vec![])]);
    let mut series = Series::default();
    let changes = series.round(&rules, &[down, elsewhere, up], &[], at(0));
    assert_eq!(
        transitions(&changes),
        [("a/1".to_owned(), Transition::Fired)]
    );
}

#[test]
fn a_silenced_alert_still_fires_and_says_which_silence_holds_it() {
    let rules = [rule(
        json!({"name": "down", "metric": "replicasUnavailable", "condition": "result >= 1"}),
    )];
    let mut down = service("a", vec![("1", 100, vec![])]);
    down.versions[0].replicas_unavailable = Some(2);
    let silence = Silence {
        id: 7,
        matchers: vec![Matcher {
            name: "service".into(),
            value: "a".into(),
            is_equal: true,
        }],
        starts_at: at(-10),
        ends_at: at(100),
        comment: String::new(),
        created_by: "u".into(),
    };
    let silences = [
        ("t".to_owned(), silence.clone()),
        ("other".to_owned(), Silence { id: 8, ..silence }),
    ];
    let mut series = Series::default();
    let changes = series.round(&rules, &[down], &silences, at(0));
    assert_eq!(changes[0].transition, Transition::Fired);
    assert_eq!(changes[0].silenced_by, Some(7));
    assert_eq!(series.active(&silences, at(0))[0].1.silenced_by, Some(7));
    assert_eq!(
        series.active(&silences, at(200))[0].1.silenced_by,
        None,
        "over"
    );
}

#[test]
fn the_series_of_a_deleted_rule_or_service_resolve() {
    let rules = [rule(
        json!({"name": "down", "metric": "replicasUnavailable", "condition": "result >= 1"}),
    )];
    let mut down = service("a", vec![("1", 100, vec![])]);
    down.versions[0].replicas_unavailable = Some(1);
    let mut series = Series::default();
    series.round(&rules, &[down.clone()], &[], at(0));
    let changes = series.round(&[], &[down], &[], at(1));
    assert_eq!(
        transitions(&changes),
        [("a/1".to_owned(), Transition::Resolved)]
    );
    // One left open by an earlier run resolves at the first round that does not see it hold.
    series.resume_firing(
        SeriesKey {
            tenant: "t".into(),
            rule: "down".into(),
            service: "a".into(),
            version: "1".into(),
        },
        at(0),
        BTreeMap::new(),
    );
    let up = service("a", vec![("1", 100, vec![])]);
    let changes = series.round(&rules, &[up], &[], at(2));
    assert_eq!(
        transitions(&changes),
        [("a/1".to_owned(), Transition::Resolved)]
    );
}
