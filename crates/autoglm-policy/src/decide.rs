//! Judging one write by every policy that applies to it.

use serde::Serialize;
use serde_json::Value;

use crate::compile::{self, CompiledPolicy};
use crate::input::Review;
use crate::spec::Mode;

/// One thing a policy found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The policy's name.
    pub policy: String,
    /// The rule that found it (`deny`, `violation`, `warn`), or `error`
    /// when the policy could not be evaluated.
    pub rule: String,
    /// Its message.
    pub message: String,
    /// A Gatekeeper violation's `details`, when it has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The policy's mode.
    pub mode: Mode,
}

/// Every policy's findings about one write, sorted by what they do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Findings of enforced policies: the write is refused.
    pub denials: Vec<Finding>,
    /// Findings that go back as warnings.
    pub warnings: Vec<Finding>,
    /// Findings of dry-run policies: recorded only.
    pub dry_run: Vec<Finding>,
    /// How many policies were asked.
    pub evaluated: usize,
}

impl Decision {
    /// Whether the write may go through.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }
}

/// Asks each of `policies` that applies to the write's kind about it. A
/// policy that cannot be evaluated (its time limit, a builtin's error)
/// counts as a finding of rule `error`: an enforced policy then refuses,
/// so a broken policy fails closed.
pub fn decide<'a>(
    policies: impl IntoIterator<Item = &'a CompiledPolicy>,
    review: &Review,
) -> Decision {
    let mut decision = Decision::default();
    // Converted once: each policy's input differs only in its parameters.
    let input = regorus::Value::from(review.input(&Value::Null));
    for policy in policies {
        if !policy.spec.applies_to(review.kind) {
            continue;
        }
        decision.evaluated += 1;
        let mode = policy.spec.mode;
        let finding = |rule: &str, message: String, details: Option<Value>| Finding {
            policy: policy.name.clone(),
            rule: rule.to_owned(),
            message,
            details,
            mode,
        };
        let input = compile::with_parameters(&input, &policy.spec.parameters);
        let found = match policy.findings(input) {
            Ok(found) => found
                .into_iter()
                .flat_map(|(rule, elements)| elements.into_iter().map(move |e| (rule, e)))
                .map(|(rule, element)| finding(rule, message_of(&element), details_of(&element)))
                .collect(),
            Err(e) => vec![finding(
                "error",
                format!("could not be evaluated: {e}"),
                None,
            )],
        };
        for finding in found {
            match (mode, finding.rule.as_str()) {
                (Mode::Enforce, "warn") | (Mode::Warn, _) => decision.warnings.push(finding),
                (Mode::Enforce, _) => decision.denials.push(finding),
                (Mode::DryRun, _) => decision.dry_run.push(finding),
            }
        }
    }
    decision
}

/// A finding's message: the string itself, a Gatekeeper violation's `msg`,
/// or the element as compact JSON.
fn message_of(element: &Value) -> String {
    match element {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("msg") {
            Some(Value::String(msg)) => msg.clone(),
            _ => element.to_string(),
        },
        other => other.to_string(),
    }
}

fn details_of(element: &Value) -> Option<Value> {
    element.get("details").cloned()
}
