//! A policy's Rego parsed once, with its limits, ready to evaluate.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use parking_lot::Mutex;
use regorus::utils::limits::{ExecutionTimerConfig, PolicyLengthConfig};
use serde::Serialize;
use serde_json::Value;

use crate::spec::{PolicySpec, Syntax};

/// The largest Rego source a policy may have.
pub const MAX_REGO_BYTES: usize = 64 * 1024;
/// How long one evaluation of one policy may run before it is stopped.
pub const EVALUATION_LIMIT: Duration = Duration::from_millis(100);
/// Longest line and most lines of a source (regorus refuses beyond them).
const MAX_COLUMNS: u32 = 1_000;
const MAX_LINES: usize = 5_000;

/// The rules whose findings count, in the order they are reported.
pub(crate) const FINDING_RULES: [&str; 3] = ["deny", "violation", "warn"];

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum PolicyError {
    /// The source is over [`MAX_REGO_BYTES`].
    #[error("the Rego source is {bytes} bytes; a policy may have at most {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The most allowed.
        limit: usize,
    },
    /// The source does not parse (or breaks a length limit), at a place when
    /// regorus names one.
    #[error("{}", syntax_text(*line, *column, message))]
    Syntax {
        /// 1-based line.
        line: Option<u32>,
        /// 1-based column.
        column: Option<u32>,
        /// What the parser expected.
        message: String,
    },
    /// It parses but declares nothing that could find a problem.
    #[error("the policy declares no deny, violation or warn rule, so it could never find anything")]
    NoRules,
    /// `parameters` is not an object.
    #[error("parameters must be a JSON object (it becomes input.parameters)")]
    Parameters,
    /// `kinds` is empty.
    #[error("kinds must name at least one kind of resource")]
    NoKinds,
}

fn syntax_text(line: Option<u32>, column: Option<u32>, message: &str) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {message}"),
        _ => message.to_owned(),
    }
}

/// A policy ready to evaluate. The engine is behind a lock because an
/// evaluation sets its input; evaluations of one policy take turns.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Its name.
    pub name: String,
    /// What it was compiled from.
    pub spec: PolicySpec,
    /// `data.<package>`, where its rules are.
    pub package: String,
    /// Which of [`FINDING_RULES`] it declares.
    pub(crate) rules: Vec<&'static str>,
    pub(crate) engine: Mutex<regorus::Engine>,
}

/// The file name a policy's source has in messages and coverage.
pub(crate) fn file_of(name: &str) -> String {
    format!("{name}.rego")
}

/// An engine with autoglm's limits, for the given Rego syntax.
pub(crate) fn engine(syntax: Syntax) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(syntax == Syntax::V0);
    engine.set_policy_length_config(PolicyLengthConfig {
        max_col: NonZeroU32::new(MAX_COLUMNS).unwrap_or(NonZeroU32::MIN),
        max_file_bytes: NonZeroUsize::new(MAX_REGO_BYTES).unwrap_or(NonZeroUsize::MIN),
        max_lines: NonZeroUsize::new(MAX_LINES).unwrap_or(NonZeroUsize::MIN),
    });
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: EVALUATION_LIMIT,
        // Reading the clock at every step of the interpreter was a tenth of
        // a decision's time; every 64th bounds a loop as well.
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    });
    // As OPA does without --strict-builtin-errors: a builtin given a value of
    // the wrong type leaves its expression undefined instead of failing.
    engine.set_strict_builtin_errors(false);
    crate::ranges::add_bounded_ranges(&mut engine);
    if syntax == Syntax::V0 {
        // OPA keeps the builtins that Rego v1 dropped for v0 modules, and
        // Gatekeeper's library still calls this one; regorus lacks it.
        let re_match = |args: Vec<regorus::Value>| -> anyhow::Result<regorus::Value> {
            let pattern = args[0].as_string()?;
            let value = args[1].as_string()?;
            Ok(regorus::Value::Bool(
                regex::Regex::new(pattern)?.is_match(value),
            ))
        };
        let _ = engine.add_extension("re_match".to_owned(), 2, Box::new(re_match));
    }
    engine
}

/// Parses `source` into `engine` as `file`, turning regorus' error into a
/// [`PolicyError::Syntax`] with its place.
pub(crate) fn add_source(
    engine: &mut regorus::Engine,
    file: &str,
    source: &str,
) -> Result<String, PolicyError> {
    if source.len() > MAX_REGO_BYTES {
        return Err(PolicyError::TooLarge {
            bytes: source.len(),
            limit: MAX_REGO_BYTES,
        });
    }
    engine
        .add_policy(file.to_owned(), source.to_owned())
        .map_err(|e| syntax_error(&e.to_string()))
}

/// Reads regorus' "--> file:LINE:COL … error: MESSAGE" layout.
fn syntax_error(text: &str) -> PolicyError {
    let place = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .and_then(|at| {
            let mut parts = at.rsplitn(3, ':');
            let column = parts.next()?.trim().parse().ok()?;
            let line = parts.next()?.trim().parse().ok()?;
            Some((line, column))
        });
    let message = text
        .lines()
        .rev()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned();
    PolicyError::Syntax {
        line: place.map(|p| p.0),
        column: place.map(|p| p.1),
        message,
    }
}

/// Compiles the policy `name`: parses its Rego under the limits and checks
/// that it can find something.
pub fn compile(name: &str, spec: &PolicySpec) -> Result<CompiledPolicy, PolicyError> {
    if !spec.parameters.is_object() {
        return Err(PolicyError::Parameters);
    }
    if spec.kinds.is_empty() {
        return Err(PolicyError::NoKinds);
    }
    let mut engine = engine(spec.syntax);
    let file = file_of(name);
    let package = add_source(&mut engine, &file, &spec.rego)?;
    let rules: Vec<&'static str> = FINDING_RULES
        .into_iter()
        .filter(|rule| {
            engine
                .has_declared_rule_rooted_at(&file, rule)
                .unwrap_or(false)
        })
        .collect();
    if rules.is_empty() {
        return Err(PolicyError::NoRules);
    }
    Ok(CompiledPolicy {
        name: name.to_owned(),
        spec: spec.clone(),
        package,
        rules,
        engine: Mutex::new(engine),
    })
}

impl CompiledPolicy {
    /// Evaluates each of its finding rules against `input`: the elements of
    /// each set that is not empty, or why the evaluation failed.
    pub(crate) fn findings(
        &self,
        input: regorus::Value,
    ) -> Result<Vec<(&'static str, Vec<Value>)>, String> {
        let mut engine = self.engine.lock();
        engine.set_input(input);
        let mut found = Vec::new();
        for rule in &self.rules {
            let value = engine
                .eval_rule(format!("{}.{rule}", self.package))
                .map_err(|e| e.to_string())?;
            let elements = elements(&value)?;
            if !elements.is_empty() {
                found.push((*rule, elements));
            }
        }
        Ok(found)
    }
}

/// `input` (converted once for every policy of a decision) with this
/// policy's `parameters`: only the top-level object is copied.
pub(crate) fn with_parameters(input: &regorus::Value, parameters: &Value) -> regorus::Value {
    let mut input = input.clone();
    if let Ok(object) = input.as_object_mut() {
        object.insert(
            regorus::Value::from("parameters"),
            regorus::Value::from(parameters.clone()),
        );
    }
    input
}

/// The elements of a rule's value: a set or array of findings; undefined
/// (no element) or `false` is nothing; a single other value is one finding.
fn elements(value: &regorus::Value) -> Result<Vec<Value>, String> {
    if *value == regorus::Value::Undefined {
        return Ok(Vec::new());
    }
    let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    Ok(match json {
        Value::Array(items) => items,
        Value::Null | Value::Bool(false) => Vec::new(),
        other => vec![other],
    })
}
