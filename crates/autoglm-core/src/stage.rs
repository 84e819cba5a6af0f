//! Lifecycle stages of a model version and the rules for moving between them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where a model version stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Registered, not yet promoted.
    None,
    /// Being evaluated before production.
    Staging,
    /// Serving production traffic.
    Production,
    /// Retired; kept for lineage and audit, never served.
    Archived,
}

impl Stage {
    /// The lower-case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "none",
            Stage::Staging => "staging",
            Stage::Production => "production",
            Stage::Archived => "archived",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Stage> {
        match s {
            "none" => Some(Stage::None),
            "staging" => Some(Stage::Staging),
            "production" => Some(Stage::Production),
            "archived" => Some(Stage::Archived),
            _ => None,
        }
    }

    /// A version in staging or production may be serving; it cannot be deleted.
    pub fn in_use(self) -> bool {
        matches!(self, Stage::Staging | Stage::Production)
    }
}

/// Why a stage change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TransitionError {
    /// The version is already in the stage asked for.
    #[error("version is already in stage {}", .0.as_str())]
    AlreadyInStage(Stage),
    /// The change asked for `none`.
    #[error("a version cannot return to stage none")]
    BackToNone,
    /// An archived version was sent straight to production.
    #[error("an archived version must go through staging before production")]
    ArchivedToProduction,
}

/// Checks a stage change. An archived version must be restaged through
/// `staging` before it serves production again, and nothing moves back to `none`:
/// once a version has been promoted its history matters.
pub fn check_transition(from: Stage, to: Stage) -> Result<(), TransitionError> {
    match (from, to) {
        (a, b) if a == b => Err(TransitionError::AlreadyInStage(a)),
        (_, Stage::None) => Err(TransitionError::BackToNone),
        (Stage::Archived, Stage::Production) => Err(TransitionError::ArchivedToProduction),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_moves_are_allowed() {
        assert!(check_transition(Stage::None, Stage::Staging).is_ok());
        assert!(check_transition(Stage::None, Stage::Production).is_ok());
        assert!(check_transition(Stage::Staging, Stage::Production).is_ok());
        assert!(check_transition(Stage::Production, Stage::Archived).is_ok());
        assert!(check_transition(Stage::Archived, Stage::Staging).is_ok());
    }

    #[test]
    fn backwards_and_no_op_moves_are_refused() {
        assert_eq!(
            check_transition(Stage::Staging, Stage::None),
            Err(TransitionError::BackToNone)
        );
        assert_eq!(
            check_transition(Stage::Archived, Stage::Production),
            Err(TransitionError::ArchivedToProduction)
        );
        assert_eq!(
            check_transition(Stage::Production, Stage::Production),
            Err(TransitionError::AlreadyInStage(Stage::Production))
        );
    }

    #[test]
    fn refusals_read_as_before() {
        let message = |from, to| check_transition(from, to).err().map(|e| e.to_string());
        assert_eq!(
            message(Stage::Production, Stage::Production).as_deref(),
            Some("version is already in stage production")
        );
        assert_eq!(
            message(Stage::Staging, Stage::None).as_deref(),
            Some("a version cannot return to stage none")
        );
        assert_eq!(
            message(Stage::Archived, Stage::Production).as_deref(),
            Some("an archived version must go through staging before production")
        );
    }

    #[test]
    fn wire_names_round_trip() {
        for s in [
            Stage::None,
            Stage::Staging,
            Stage::Production,
            Stage::Archived,
        ] {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("Production"), None);
    }
}
