//! Why a policy decided as it did: for each of its rules, whether it fired,
//! what it found, which lines of the source ran and which input paths those
//! lines read.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::compile::{self, CompiledPolicy};
use crate::input::Review;
use crate::spec::Mode;

/// One rule's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FiredRule {
    /// `deny`, `violation` or `warn`.
    pub rule: String,
    /// Whether it found anything.
    pub fired: bool,
    /// The elements it found, as JSON.
    pub findings: Vec<serde_json::Value>,
    /// Lines of the source evaluated for it (1-based).
    pub lines: Vec<u32>,
    /// The `input…` references on those lines.
    pub input_paths: Vec<String>,
}

/// A policy's explanation of one write.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The policy.
    pub policy: String,
    /// Its mode.
    pub mode: Mode,
    /// Each finding rule it declares.
    pub rules: Vec<FiredRule>,
    /// Why it could not be evaluated, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Evaluates `policy` on `review` again with coverage on (in an engine of
/// its own, so that the policy's shared one is left as it was).
pub fn explain(policy: &CompiledPolicy, review: &Review) -> Explanation {
    let mut explanation = Explanation {
        policy: policy.name.clone(),
        mode: policy.spec.mode,
        rules: Vec::new(),
        error: None,
    };
    let file = compile::file_of(&policy.name);
    let mut engine = compile::engine(policy.spec.syntax);
    if let Err(e) = compile::add_source(&mut engine, &file, &policy.spec.rego) {
        explanation.error = Some(e.to_string());
        return explanation;
    }
    engine.set_enable_coverage(true);
    engine.set_input(regorus::Value::from(review.input(&policy.spec.parameters)));
    let source: Vec<&str> = policy.spec.rego.lines().collect();
    for rule in &policy.rules {
        engine.clear_coverage_data();
        let value = match engine.eval_rule(format!("{}.{rule}", policy.package)) {
            Ok(value) => value,
            Err(e) => {
                explanation.error = Some(e.to_string());
                return explanation;
            }
        };
        let findings = match serde_json::to_value(&value) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let lines: Vec<u32> = engine
            .get_coverage_report()
            .map(|report| {
                report
                    .files
                    .into_iter()
                    .filter(|f| f.path == file)
                    .flat_map(|f| f.covered)
                    .collect()
            })
            .unwrap_or_default();
        let input_paths: BTreeSet<String> = lines
            .iter()
            .filter_map(|line| source.get((*line as usize).checked_sub(1)?))
            .flat_map(|text| input_paths(text))
            .collect();
        explanation.rules.push(FiredRule {
            rule: (*rule).to_owned(),
            fired: !findings.is_empty(),
            findings,
            lines,
            input_paths: input_paths.into_iter().collect(),
        });
    }
    explanation
}

/// The `input.a.b[c]` references in one line of Rego (comments skipped).
fn input_paths(line: &str) -> Vec<String> {
    let code = line.split('#').next().unwrap_or_default();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("input") {
        let start = at + found;
        let mut end = start + "input".len();
        at = end;
        if (start > 0 && is_ident(bytes[start - 1]))
            || bytes.get(end).copied().is_some_and(is_ident)
        {
            continue;
        }
        loop {
            match bytes.get(end) {
                Some(b'.') if bytes.get(end + 1).copied().is_some_and(is_ident) => {
                    end += 1;
                    while bytes.get(end).copied().is_some_and(is_ident) {
                        end += 1;
                    }
                }
                Some(b'[') => match code[end..].find(']') {
                    Some(close) => end += close + 1,
                    None => break,
                },
                _ => break,
            }
        }
        at = end;
        paths.push(code[start..end].to_owned());
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::input_paths;

    #[test]
    fn input_references_are_read_off_a_line() {
        assert_eq!(
            input_paths(
                r#"  some label in input.review.object.metadata.labels[k]; x := input.parameters.max # input.not"#
            ),
            [
                "input.review.object.metadata.labels[k]",
                "input.parameters.max"
            ]
        );
        assert_eq!(input_paths("my_input.x := inputs"), Vec::<String>::new());
        assert_eq!(input_paths("input"), ["input"]);
    }
}
