//! The rollout step by step: spec validation with field paths, conditions,
//! and the machine's every transition (weights, timed and open pauses,
//! analysis passing, failing, inconclusive, manual pause, resume, promote,
//! abort, and the default guard).

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;

fn spec(steps: serde_json::Value) -> RolloutSpec {
    serde_json::from_value(json!({ "steps": steps })).unwrap()
}

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::seconds(seconds)
}

fn errors(s: &RolloutSpec) -> Vec<String> {
    s.ready()
        .unwrap_err()
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

#[test]
fn conditions_read_result_baseline_and_numbers() {
    let c = Condition::parse("result < 0.05").unwrap();
    assert_eq!(c.holds(0.01, None), Some(true));
    assert_eq!(c.holds(0.05, None), Some(false));
    let c = Condition::parse("result <= baseline * 1.5 || result < 0.2").unwrap();
    assert_eq!(
        c.holds(0.1, Some(0.0)),
        Some(true),
        "the second alternative"
    );
    assert_eq!(c.holds(0.3, Some(0.2)), Some(true));
    assert_eq!(c.holds(0.4, Some(0.2)), Some(false));
    assert_eq!(
        c.holds(0.4, None),
        None,
        "a missing baseline cannot be read"
    );
    let c = Condition::parse("result > 0 && result >= 2").unwrap();
    assert_eq!(c.holds(1.0, None), Some(false));
    assert_eq!(c.holds(2.0, None), Some(true));
    let c = Condition::parse("3 * 1 > result").unwrap();
    assert_eq!(c.holds(2.0, None), Some(true));
}

#[test]
fn a_condition_that_does_not_parse_says_why() {
    for (text, words) in [
        ("", "empty"),
        ("result <", "ends too early"),
        ("result = 1", "unexpected '='"),
        ("latency < 1", "unknown name \"latency\""),
        ("result < 1 and result > 0", "expected && or ||"),
        ("1 < 2", "must read result"),
        ("result < 1..2", "is not a number"),
        ("result * < 1", "not a number"),
    ] {
        let e = Condition::parse(text).unwrap_err().to_string();
        assert!(e.contains(words), "{text:?}: {e}");
    }
}

#[test]
fn a_bad_rollout_names_every_field_that_is_wrong() {
    let bad = spec(json!([
        {"setWeight": 50},
        {"setWeight": 20},
        {"setWeight": 120},
        {"pause": {"duration": "-5s"}},
        {"pause": {"duration": "soon"}},
        {"setWeight": 10, "pause": {}},
        {},
        {"analysis": {"metrics": [
            {"name": "errors", "interval": "-10s", "successCondition": "result <", "provider": {"gateway": {"metric": "errorRatio"}}},
            {"name": "slow", "failureCondition": "result > 1", "provider": {"gateway": {"metric": "gpuTemperature"}}},
            {"name": "none", "count": 0, "provider": {"gateway": {"metric": "latencyP95"}}},
        ]}},
    ]));
    assert_eq!(
        errors(&bad),
        [
            "spec.rollout.steps[1].setWeight: weights only go up during a rollout: 20 comes after 50 (abort rolls back)",
            "spec.rollout.steps[2].setWeight: a weight is 0 to 100, got 120",
            "spec.rollout.steps[3].pause.duration: duration \"-5s\" must not be negative",
            "spec.rollout.steps[4].pause.duration: duration \"soon\" is not a number with a unit (ms, s, m or h), like \"300s\" or \"5m\"",
            "spec.rollout.steps[5]: a step is exactly one of setWeight, pause and analysis; this one has 2",
            "spec.rollout.steps[6]: a step is exactly one of setWeight, pause and analysis; this one has 0",
            "spec.rollout.steps[7].analysis.metrics[0].interval: duration \"-10s\" must not be negative",
            "spec.rollout.steps[7].analysis.metrics[0].successCondition: \"result <\" does not parse: a comparison ends too early",
            "spec.rollout.steps[7].analysis.metrics[1].provider.gateway.metric: unknown metric \"gpuTemperature\"; the gateway measures errorRatio, latencyP95, latencyP50, latencyP99, requestRate",
            "spec.rollout.steps[7].analysis.metrics[2].count: count must be 1 to 64, got 0",
            "spec.rollout.steps[7].analysis.metrics[2]: a metric needs a successCondition, a failureCondition or both",
        ]
    );
    assert_eq!(
        errors(&spec(json!([]))),
        ["spec.rollout.steps: a rollout needs at least one step"]
    );
}

fn canary_steps() -> Vec<ReadyStep> {
    spec(json!([
        {"setWeight": 10},
        {"analysis": {"metrics": [{
            "name": "errors", "interval": "10s", "count": 2,
            "failureCondition": "result > 0.05 || result > baseline * 3",
            "provider": {"gateway": {"metric": "errorRatio"}},
        }]}},
        {"setWeight": 50},
        {"pause": {"duration": "60s"}},
        {"pause": {}},
    ]))
    .ready()
    .unwrap()
}

fn measure(value: f64, baseline: f64) -> Event {
    Event::Measured {
        metric: "errors".into(),
        value: Some(value),
        baseline: Some(baseline),
    }
}

#[test]
fn a_healthy_canary_goes_10_then_50_then_waits_for_a_promote_and_becomes_stable() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    assert_eq!(r.on(&steps, Event::Tick, t(0)), [Effect::SetWeight(10)]);
    assert_eq!(r.step, 1);
    assert_eq!(r.phase, Phase::Progressing);
    // Nothing is measured before the first interval is over.
    assert_eq!(r.on(&steps, Event::Tick, t(5)), []);
    let effects = r.on(&steps, Event::Tick, t(10));
    assert!(matches!(&effects[..], [Effect::Measure(m)] if m.name == "errors"));
    assert_eq!(r.on(&steps, measure(0.01, 0.01), t(10)), []);
    assert_eq!(
        r.on(&steps, Event::Tick, t(15)),
        [],
        "the second is due at 20 s"
    );
    assert_eq!(r.on(&steps, Event::Tick, t(20)).len(), 1);
    // The second passing measurement ends the analysis: on to 50%, then the timed pause.
    assert_eq!(
        r.on(&steps, measure(0.0, 0.01), t(20)),
        [Effect::SetWeight(50)]
    );
    assert_eq!(r.step, 3);
    assert_eq!(r.phase, Phase::Paused);
    assert_eq!(r.on(&steps, Event::Tick, t(79)), []);
    assert_eq!(r.phase, Phase::Paused);
    // The pause ends; the open pause waits for a user.
    assert_eq!(r.on(&steps, Event::Tick, t(80)), []);
    assert_eq!(r.step, 4);
    assert_eq!(r.phase, Phase::Paused);
    assert_eq!(r.message, "waiting for a promote or a resume");
    assert_eq!(r.on(&steps, Event::Tick, t(500)), []);
    assert_eq!(
        r.on(&steps, Event::Resume, t(501)),
        [Effect::SetWeight(100), Effect::MarkStable]
    );
    assert_eq!(r.phase, Phase::Healthy);
    assert_eq!(r.message, "version 2 is stable");
    // Nothing moves a finished rollout.
    assert_eq!(r.on(&steps, Event::Abort, t(502)), []);
    assert_eq!(r.phase, Phase::Healthy);
}

#[test]
fn a_failing_measurement_aborts_with_the_number_that_failed_it() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    r.on(&steps, Event::Tick, t(10));
    assert_eq!(
        r.on(&steps, measure(0.2, 0.01), t(10)),
        [Effect::SetWeight(0)]
    );
    assert_eq!(r.phase, Phase::Degraded);
    assert_eq!(r.weight, 0);
    assert_eq!(
        r.message,
        "metric errors failed at step 1: 0.2 (stable: 0.01), 1 failed of 0 allowed"
    );
    assert_eq!(
        r.analysis[0].measurements[0].phase,
        MeasurementPhase::Failed
    );
}

#[test]
fn the_baseline_catches_a_canary_three_times_worse_than_stable() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    r.on(&steps, Event::Tick, t(10));
    // Under the absolute 5%, but over three times the stable version's ratio.
    assert_eq!(
        r.on(&steps, measure(0.04, 0.01), t(10)),
        [Effect::SetWeight(0)]
    );
    assert_eq!(r.phase, Phase::Degraded);
}

#[test]
fn no_data_is_inconclusive_and_pauses_until_a_resume_measures_again() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    r.on(&steps, Event::Tick, t(10));
    let none = Event::Measured {
        metric: "errors".into(),
        value: None,
        baseline: None,
    };
    assert_eq!(r.on(&steps, none, t(10)), []);
    assert_eq!(r.phase, Phase::Paused);
    assert!(r.message.contains("inconclusive"), "{}", r.message);
    assert_eq!(
        r.on(&steps, Event::Tick, t(60)),
        [],
        "it does not pass by itself"
    );
    assert_eq!(r.weight, 10);
    // Resumed, the analysis starts over from the resume.
    assert_eq!(r.on(&steps, Event::Resume, t(100)), []);
    assert_eq!(r.phase, Phase::Progressing);
    assert!(r.analysis.iter().all(|a| a.step != 1));
    assert_eq!(r.on(&steps, Event::Tick, t(105)), []);
    assert_eq!(r.on(&steps, Event::Tick, t(110)).len(), 1);
}

#[test]
fn a_manual_pause_holds_through_ticks_and_measurements_until_resumed() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    assert_eq!(r.on(&steps, Event::Pause, t(1)), []);
    assert!(r.paused_by_user);
    assert_eq!(r.on(&steps, Event::Tick, t(30)), []);
    assert_eq!(
        r.on(&steps, measure(0.5, 0.0), t(30)),
        [],
        "ignored while paused"
    );
    assert_eq!(r.phase, Phase::Paused);
    // It survives a restart: the state is data.
    let text = serde_json::to_string(&r).unwrap();
    let mut r: Rollout = serde_json::from_str(&text).unwrap();
    assert!(r.paused_by_user);
    r.on(&steps, Event::Resume, t(40));
    assert_eq!(r.phase, Phase::Progressing);
    // The analysis measures afresh from the resume: its first interval ends at 50 s.
    assert_eq!(r.on(&steps, Event::Tick, t(45)), []);
    assert_eq!(r.on(&steps, Event::Tick, t(50)).len(), 1);
}

#[test]
fn promote_and_abort_work_mid_step() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    assert_eq!(
        r.on(&steps, Event::Promote, t(3)),
        [Effect::SetWeight(100), Effect::MarkStable]
    );
    assert_eq!(r.phase, Phase::Healthy);
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    assert_eq!(r.on(&steps, Event::Abort, t(3)), [Effect::SetWeight(0)]);
    assert_eq!(r.phase, Phase::Degraded);
    assert_eq!(r.message, "aborted by a user");
}

#[test]
fn a_rollout_without_analysis_is_guarded_by_the_default_error_ratio() {
    let steps =
        spec(json!([{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 100}]))
            .ready()
            .unwrap();
    assert_eq!(steps.len(), 4);
    let ReadyStep::Analysis(guard) = &steps[1] else {
        panic!("no guard after the canary weight: {steps:?}");
    };
    assert_eq!(guard[0], ReadyMetric::default_guard());
    let mut r = Rollout::start("1", "2", t(0));
    assert_eq!(r.on(&steps, Event::Tick, t(0)), [Effect::SetWeight(20)]);
    assert_eq!(r.on(&steps, Event::Tick, t(10)).len(), 1);
    let bad = Event::Measured {
        metric: "error-ratio".into(),
        value: Some(0.06),
        baseline: Some(0.0),
    };
    assert_eq!(r.on(&steps, bad, t(10)), [Effect::SetWeight(0)]);
    assert_eq!(r.phase, Phase::Degraded);
    // At 5% exactly it passes; the last weight finishes the rollout.
    let mut r = Rollout::start("1", "2", t(0));
    r.on(&steps, Event::Tick, t(0));
    r.on(&steps, Event::Tick, t(10));
    let fine = Event::Measured {
        metric: "error-ratio".into(),
        value: Some(0.05),
        baseline: None,
    };
    assert_eq!(r.on(&steps, fine, t(10)), []);
    assert_eq!(r.phase, Phase::Paused);
    assert_eq!(
        r.on(&steps, Event::Tick, t(40)),
        [Effect::SetWeight(100), Effect::MarkStable]
    );
}

#[test]
fn the_next_due_time_is_the_next_measurement_or_the_end_of_a_pause() {
    let steps = canary_steps();
    let mut r = Rollout::start("1", "2", t(0));
    assert_eq!(r.next_due(&steps), Some(t(0)));
    r.on(&steps, Event::Tick, t(0));
    assert_eq!(r.next_due(&steps), Some(t(10)));
    r.on(&steps, Event::Tick, t(10));
    r.on(&steps, measure(0.0, 0.0), t(11));
    assert_eq!(
        r.next_due(&steps),
        Some(t(20)),
        "k intervals after the step began"
    );
    r.on(&steps, Event::Tick, t(20));
    r.on(&steps, measure(0.0, 0.0), t(21));
    assert_eq!(r.next_due(&steps), Some(t(81)), "the pause from 21 s");
    r.on(&steps, Event::Tick, t(81));
    assert_eq!(r.next_due(&steps), None, "an open pause waits for a user");
    r.on(&steps, Event::Pause, t(82));
    assert_eq!(r.next_due(&steps), None);
}

#[test]
fn a_measurement_reads_the_intervals_within_the_metric_window() {
    use crate::rollout::measure::{measure as read, window};
    use crate::traffic::IntervalCounts;
    let mut busy = IntervalCounts::default();
    for _ in 0..17 {
        busy.record(200, 0.02);
    }
    busy.record(503, 0.02);
    busy.record(200, 0.9);
    busy.record(200, 0.9);
    let quiet = IntervalCounts::default();
    let points = vec![busy.point(t(10)), busy.point(t(20)), quiet.point(t(30))];
    let last_20 = window(&points, t(30), std::time::Duration::from_secs(20));
    assert_eq!(last_20.len(), 2);
    assert_eq!(read(GatewayMetric::ErrorRatio, &last_20, 10), Some(0.05));
    // The window is the busy interval ending at 20 s and the quiet one ending at 30 s.
    assert_eq!(read(GatewayMetric::RequestRate, &last_20, 10), Some(1.0));
    assert!(read(GatewayMetric::LatencyP95, &last_20, 10).unwrap() >= 0.5);
    // Only the quiet interval: no data, not zero.
    let last_10 = window(&points, t(30), std::time::Duration::from_secs(10));
    assert_eq!(read(GatewayMetric::ErrorRatio, &last_10, 10), None);
    assert_eq!(read(GatewayMetric::LatencyP95, &[], 10), None);
}

#[test]
fn a_manifest_with_a_bad_rollout_is_refused_with_its_paths() {
    use crate::service::ModelServiceManifest;
    let manifest = json!({
        "apiVersion": "autoglm.io/v1alpha1", "kind": "ModelService", "metadata": {"name": "chat"},
        "spec": {"model": "m", "versions": [{"version": "1", "weight": 100}],
                 "rollout": {"steps": [{"setWeight": 101}, {"analysis": {"metrics": [
                     {"name": "e", "failureCondition": "result >", "provider": {"gateway": {"metric": "errorRatio"}}}]}}]}},
    });
    let errors = ModelServiceManifest::from_value(manifest).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.rollout.steps[0].setWeight",
            "spec.rollout.steps[1].analysis.metrics[0].failureCondition"
        ]
    );
}
