//! `autoglm policy test`: the `test_` rules of a set of Rego files, run as
//! `opa test` runs them.
//!
//! Every rule whose name starts with `test_` is a test. It passes when it is
//! `true`; it fails when it is undefined or anything else; it is an error
//! when evaluating it fails. Rules named `todo_` are skipped, as OPA does.

use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use crate::compile::{self, PolicyError};
use crate::spec::Syntax;

/// How long one test may run (longer than a decision's limit: tests may
/// build large inputs).
const TEST_LIMIT: Duration = Duration::from_secs(10);

/// What became of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// It was true.
    Pass,
    /// It was undefined or not true.
    Fail,
    /// Its evaluation failed.
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// `data.<package>.<rule>`.
    pub name: String,
    /// The file that declares it.
    pub file: String,
    /// Pass, fail or error.
    pub outcome: TestOutcome,
    /// How long it took.
    pub duration: Duration,
}

/// Every test's result, in the order the files and rules came.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    /// One per test.
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// Whether every test passed (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.outcome == TestOutcome::Pass)
    }
}

/// Loads every `(file, source)` and the `data` document into one engine,
/// as `opa test` loads a directory, and runs each file's tests. A file that does not parse is an
/// error naming it, before any test runs.
pub fn run_tests(
    files: &[(String, String)],
    syntax: Syntax,
    data: Option<serde_json::Value>,
) -> Result<TestReport, (String, PolicyError)> {
    let mut engine = compile::engine(syntax);
    if let Some(data) = data {
        engine.add_data(regorus::Value::from(data)).map_err(|e| {
            (
                "data".to_owned(),
                PolicyError::Syntax {
                    line: None,
                    column: None,
                    message: e.to_string(),
                },
            )
        })?;
    }
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: TEST_LIMIT,
        check_interval: std::num::NonZeroU32::MIN,
    });
    let mut tests = Vec::new();
    for (file, source) in files {
        let package =
            compile::add_source(&mut engine, file, source).map_err(|e| (file.clone(), e))?;
        for rule in test_rules(source) {
            let name = format!("{package}.{rule}");
            if !tests.iter().any(|(n, _): &(String, String)| *n == name) {
                tests.push((name, file.clone()));
            }
        }
    }
    let mut report = TestReport::default();
    for (name, file) in tests {
        let started = Instant::now();
        let outcome = match engine.eval_rule(name.clone()) {
            Ok(regorus::Value::Bool(true)) => TestOutcome::Pass,
            Ok(_) => TestOutcome::Fail,
            Err(e) => TestOutcome::Error(e.to_string()),
        };
        report.results.push(TestResult {
            name,
            file,
            outcome,
            duration: started.elapsed(),
        });
    }
    Ok(report)
}

/// Names of the rules declared at the start of a line with a `test_` name.
fn test_rules(source: &str) -> Vec<String> {
    let mut rules: Vec<String> = Vec::new();
    for line in source.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !rules.contains(&name) {
            rules.push(name);
        }
    }
    rules
}
