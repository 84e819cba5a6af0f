//! The task rules step by step: priorities, timeouts, backoff, state
//! transitions and the judgment of a platform's status against a change.

use super::*;
use crate::service::{Condition, ModelServiceStatus};

#[test]
fn moving_traffic_and_deleting_outrank_scaling_which_outranks_deploying() {
    assert!(TaskKind::Rollback.priority() < TaskKind::TrafficSplit.priority());
    assert!(TaskKind::Rollback.priority() < TaskKind::Deploy.priority());
    assert!(TaskKind::TrafficSplit.priority() < TaskKind::Scale.priority());
    assert!(TaskKind::Delete.priority() < TaskKind::Restart.priority());
    assert!(TaskKind::Scale.priority() < TaskKind::Deploy.priority());
    assert_eq!(TaskKind::Deploy.priority(), TaskKind::Update.priority());
}

#[test]
fn kinds_and_states_read_back_what_they_write() {
    for k in TaskKind::ALL {
        assert_eq!(TaskKind::parse(k.as_str()), Some(*k));
        assert_eq!(
            serde_json::to_value(k).unwrap(),
            serde_json::json!(k.as_str())
        );
    }
    for s in TaskState::ALL {
        assert_eq!(TaskState::parse(s.as_str()), Some(*s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::json!(s.as_str())
        );
    }
    assert_eq!(TaskKind::parse("Deploy"), None);
    assert_eq!(TaskState::parse("done"), None);
}

#[test]
fn a_kind_that_loads_models_gets_longer_than_one_that_moves_weights() {
    assert!(TaskKind::Deploy.timeout() > TaskKind::TrafficSplit.timeout());
    assert!(TaskKind::TrafficSplit.timeout() >= Duration::from_secs(60));
}

#[test]
fn only_the_transitions_of_the_life_cycle_are_allowed() {
    use TaskState::*;
    assert!(Pending.may_become(Running));
    assert!(Pending.may_become(Cancelled));
    assert!(!Pending.may_become(Succeeded));
    assert!(Running.may_become(Pending));
    assert!(Running.may_become(Succeeded));
    assert!(Running.may_become(Failed));
    assert!(Running.may_become(Cancelled));
    for done in [Succeeded, Failed, Cancelled] {
        assert!(done.is_final());
        for next in TaskState::ALL {
            assert!(!done.may_become(*next), "{done:?} -> {next:?}");
        }
    }
    assert!(!Pending.is_final() && !Running.is_final());
}

#[test]
fn backoff_doubles_from_a_second_up_to_a_minute_with_half_of_it_jittered() {
    // No jitter: half of the exponential ceiling.
    assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(2, 0.0), Duration::from_secs(1));
    assert_eq!(backoff(3, 0.0), Duration::from_secs(2));
    // Full jitter: the ceiling itself.
    assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
    // Capped, however many attempts.
    assert_eq!(backoff(7, 1.0), BACKOFF_CAP);
    assert_eq!(backoff(u32::MAX, 1.0), BACKOFF_CAP);
    assert_eq!(backoff(40, 0.0), BACKOFF_CAP / 2);
    // Jitter out of range is clamped, never beyond the ceiling.
    assert_eq!(backoff(2, 7.0), Duration::from_secs(2));
    let a = backoff(5, 0.1);
    let b = backoff(5, 0.9);
    assert!(a < b, "different draws spread the retries: {a:?} {b:?}");
}

fn status(ready: u32, desired: u32, generation: i64, progressing: &str) -> ModelServiceStatus {
    let ready_condition = if ready >= desired {
        Condition::new(
            "Ready",
            ConditionStatus::True,
            "AllReplicasReady",
            String::new(),
        )
    } else {
        Condition::new(
            "Ready",
            ConditionStatus::False,
            "ReplicasNotReady",
            String::new(),
        )
    };
    ModelServiceStatus {
        desired_replicas: desired,
        ready_replicas: ready,
        conditions: vec![
            ready_condition,
            Condition::new(
                "Progressing",
                ConditionStatus::True,
                progressing,
                String::new(),
            ),
        ],
        observed_generation: Some(generation),
        ..ModelServiceStatus::default()
    }
}

fn change(generation: i64, restarts: i64) -> ServiceChange {
    ServiceChange {
        generation: Some(generation),
        restarts,
        ..ServiceChange::default()
    }
}

#[test]
fn a_change_is_done_once_its_generation_is_rolled_out_and_ready() {
    assert_eq!(
        judge(&change(2, 0), &status(2, 2, 2, "RolloutComplete")),
        Rollout::Done
    );
    // A later generation also carries this change.
    assert_eq!(
        judge(&change(2, 0), &status(2, 2, 3, "RolloutComplete")),
        Rollout::Done
    );
}

#[test]
fn an_older_generation_ready_is_not_this_change_done() {
    let Rollout::Working(p) = judge(&change(3, 0), &status(2, 2, 2, "RolloutComplete")) else {
        panic!("done before the platform saw the change");
    };
    assert_eq!(p.percent, 0);
    assert!(p.message.contains("take the change up"), "{}", p.message);
}

#[test]
fn a_restart_waits_for_the_platform_to_see_its_count() {
    let mut s = status(2, 2, 1, "RolloutComplete");
    s.observed_restarts = Some(0);
    assert!(matches!(judge(&change(1, 1), &s), Rollout::Working(_)));
    s.observed_restarts = Some(1);
    assert_eq!(judge(&change(1, 1), &s), Rollout::Done);
    // A platform that does not report restarts is judged by the rest.
    s.observed_restarts = None;
    assert_eq!(judge(&change(1, 1), &s), Rollout::Done);
}

#[test]
fn progress_is_the_share_of_ready_replicas_and_never_100_while_rolling() {
    let Rollout::Working(p) = judge(&change(1, 0), &status(1, 4, 1, "RollingOut")) else {
        panic!("not done");
    };
    assert_eq!(p.percent, 25);
    assert_eq!(p.message, "rolling out: 1 of 4 replicas ready");
    let Rollout::Working(p) = judge(&change(1, 0), &status(4, 4, 1, "RollingOut")) else {
        panic!("rolling is not done even with every replica ready");
    };
    assert_eq!(p.percent, 99);
}

#[test]
fn a_refusal_fails_the_change_with_the_platforms_reason() {
    let mut s = status(0, 2, 1, "RolloutComplete");
    s.conditions[0] = Condition::new(
        "Ready",
        ConditionStatus::False,
        "NeedsKubernetes",
        "image runtimes need Kubernetes".into(),
    );
    let Rollout::Refused(e) = judge(&change(1, 0), &s) else {
        panic!("a refusal is not work in progress");
    };
    assert_eq!(e.code, "refused");
    assert_eq!(e.message, "NeedsKubernetes: image runtimes need Kubernetes");
    assert!(!e.retryable);
}

#[test]
fn scaled_to_zero_is_done() {
    let mut s = status(0, 0, 1, "RolloutComplete");
    s.conditions[0] = Condition::new(
        "Ready",
        ConditionStatus::True,
        "ScaledToZero",
        String::new(),
    );
    assert_eq!(judge(&change(1, 0), &s), Rollout::Done);
}

#[test]
fn a_change_is_named_by_what_it_changed() {
    use crate::service::VersionWeight;
    let spec: ModelServiceSpec = serde_json::from_value(serde_json::json!({
        "model": "m",
        "versions": [{"version": "1", "weight": 90}, {"version": "2", "weight": 10}],
        "replicas": 2,
    }))
    .unwrap();
    assert_eq!(kind_of_change(None, Some(&spec)), TaskKind::Deploy);
    assert_eq!(kind_of_change(Some(&spec), None), TaskKind::Delete);
    // Labels only: the spec is the same, the platform still gets the change.
    assert_eq!(kind_of_change(Some(&spec), Some(&spec)), TaskKind::Update);

    let mut split = spec.clone();
    split.versions[0].weight = 50;
    split.versions[1].weight = 50;
    assert_eq!(
        kind_of_change(Some(&spec), Some(&split)),
        TaskKind::TrafficSplit
    );

    let mut scaled = spec.clone();
    scaled.replicas = Some(4);
    assert_eq!(kind_of_change(Some(&spec), Some(&scaled)), TaskKind::Scale);

    // A new version is an update, even with the same number of versions.
    let mut swapped = spec.clone();
    swapped.versions[1] = VersionWeight {
        version: "3".into(),
        weight: 10,
    };
    assert_eq!(
        kind_of_change(Some(&spec), Some(&swapped)),
        TaskKind::Update
    );
    // Weights and replicas at once: an update.
    let mut both = split.clone();
    both.replicas = Some(4);
    assert_eq!(kind_of_change(Some(&spec), Some(&both)), TaskKind::Update);
}
