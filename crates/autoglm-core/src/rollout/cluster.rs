//! Rollouts the operator drives on Kubernetes, in Argo Rollouts' manner:
//! the ModelService's spec names the version the user wants (all traffic on
//! it), and the status remembers the stable version and the rollout's
//! state; when the wanted version differs from the stable one and the spec
//! has `rollout`, the operator walks the split from one to the other by the
//! same state machine as the local platform, rendering the split the state
//! asks for instead of the spec's.

use chrono::{DateTime, Utc};

use super::machine::{Event, Rollout};
use crate::service::ModelServiceSpec;

/// What a reconcile does about a service's rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Course {
    /// Render the spec as it is.
    Plain {
        /// The version it sends all traffic to, if it sends it to one.
        stable: Option<String>,
        /// The last rollout, kept for the status while it is the one that
        /// brought the wanted version in.
        last: Option<Rollout>,
    },
    /// Drive this rollout (new, or carried on from the status).
    Drive(Rollout),
}

/// The annotation by which a user commands a rollout the operator drives,
/// as `autoglm rollout ACTION` does the console's: `ACTION@ID`, where ACTION
/// is `pause`, `resume`, `promote` or `abort`, and each new value is one
/// command (`kubectl annotate ... autoglm.io/rollout-command=promote@$(date +%s) --overwrite`).
pub const COMMAND_ANNOTATION: &str = "autoglm.io/rollout-command";

/// The event a command annotation's value asks for.
pub fn parse_command(value: &str) -> Result<Event, String> {
    let action = value.split_once('@').map_or(value, |(action, _)| action);
    match action.trim() {
        "pause" => Ok(Event::Pause),
        "resume" => Ok(Event::Resume),
        "promote" => Ok(Event::Promote),
        "abort" => Ok(Event::Abort),
        other => Err(format!(
            "{COMMAND_ANNOTATION}: {other:?} is not a rollout command: pause, resume, promote or abort (ACTION@ID)"
        )),
    }
}

/// The version `spec` sends all traffic to, when it names one at 100%.
pub fn sole_version(spec: &ModelServiceSpec) -> Option<&str> {
    match spec.versions.as_slice() {
        [only] if only.weight == 100 => Some(only.version.as_str()),
        _ => None,
    }
}

/// The course for `spec`, given the stable version and rollout state the
/// status holds.
pub fn course(
    spec: &ModelServiceSpec,
    stable: Option<&str>,
    state: Option<&Rollout>,
    now: DateTime<Utc>,
) -> Course {
    let wanted = sole_version(spec);
    match (spec.rollout.is_some(), wanted, stable) {
        (true, Some(wanted), Some(stable)) if wanted != stable => match state {
            Some(r) if r.canary == wanted && r.stable == stable => Course::Drive(r.clone()),
            _ => Course::Drive(Rollout::start(stable, wanted, now)),
        },
        _ => Course::Plain {
            stable: wanted.map(str::to_owned),
            last: state.filter(|r| wanted == Some(r.canary.as_str())).cloned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::Phase;
    use crate::service::VersionWeight;

    fn spec(versions: &[(&str, u32)], rollout: bool) -> ModelServiceSpec {
        let versions: Vec<_> = versions
            .iter()
            .map(|(v, w)| serde_json::json!({"version": v, "weight": w}))
            .collect();
        let mut spec = serde_json::json!({"model": "m", "versions": versions});
        if rollout {
            spec["rollout"] = serde_json::json!({"steps": [{"setWeight": 50}]});
        }
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn commands_are_an_action_and_an_id() {
        assert_eq!(parse_command("promote@1733540000"), Ok(Event::Promote));
        assert_eq!(parse_command("abort"), Ok(Event::Abort));
        assert_eq!(parse_command("pause@a@b"), Ok(Event::Pause));
        assert_eq!(parse_command("resume@"), Ok(Event::Resume));
        let refused = parse_command("dance@2").unwrap_err();
        assert!(
            refused.contains("\"dance\" is not a rollout command"),
            "{refused}"
        );
    }

    #[test]
    fn a_new_wanted_version_starts_a_rollout_from_the_stable_one() {
        let now = Utc::now();
        let Course::Drive(r) = course(&spec(&[("2", 100)], true), Some("1"), None, now) else {
            panic!("no rollout");
        };
        assert_eq!(
            (r.stable.as_str(), r.canary.as_str(), r.weight),
            ("1", "2", 0)
        );
        assert_eq!(
            r.split(),
            [
                VersionWeight {
                    version: "1".into(),
                    weight: 100
                },
                VersionWeight {
                    version: "2".into(),
                    weight: 0
                }
            ]
        );
        // Carried on while the status holds it...
        let mut moved = r.clone();
        moved.weight = 50;
        assert_eq!(
            course(&spec(&[("2", 100)], true), Some("1"), Some(&moved), now),
            Course::Drive(moved.clone())
        );
        // ...and started afresh for yet another version.
        let Course::Drive(other) = course(&spec(&[("3", 100)], true), Some("1"), Some(&moved), now)
        else {
            panic!("no rollout");
        };
        assert_eq!((other.canary.as_str(), other.weight), ("3", 0));
    }

    #[test]
    fn first_deploys_splits_and_services_without_rollout_render_as_they_are() {
        let now = Utc::now();
        let plain = |c: Course| matches!(c, Course::Plain { .. });
        assert!(plain(course(&spec(&[("1", 100)], true), None, None, now)));
        assert!(plain(course(
            &spec(&[("2", 100)], false),
            Some("1"),
            None,
            now
        )));
        assert!(plain(course(
            &spec(&[("1", 90), ("2", 10)], true),
            Some("1"),
            None,
            now
        )));
        assert_eq!(
            course(&spec(&[("1", 100)], true), Some("1"), None, now),
            Course::Plain {
                stable: Some("1".into()),
                last: None
            }
        );
    }

    #[test]
    fn an_ended_rollout_stays_in_the_status_until_the_spec_moves_on() {
        let now = Utc::now();
        let mut done = Rollout::start("1", "2", now);
        done.phase = Phase::Healthy;
        // Healthy: version 2 is stable now, the rollout shown as it ended.
        assert_eq!(
            course(&spec(&[("2", 100)], true), Some("2"), Some(&done), now),
            Course::Plain {
                stable: Some("2".into()),
                last: Some(done.clone())
            }
        );
        // Degraded: version 1 stays stable and the rollout keeps its split.
        let mut aborted = Rollout::start("1", "2", now);
        aborted.phase = Phase::Degraded;
        let Course::Drive(r) = course(&spec(&[("2", 100)], true), Some("1"), Some(&aborted), now)
        else {
            panic!("the aborted rollout is dropped");
        };
        assert_eq!(
            r.split(),
            [VersionWeight {
                version: "1".into(),
                weight: 100
            }]
        );
        // A later version leaves it behind.
        assert_eq!(
            course(&spec(&[("1", 100)], true), Some("1"), Some(&aborted), now),
            Course::Plain {
                stable: Some("1".into()),
                last: None
            }
        );
    }
}
