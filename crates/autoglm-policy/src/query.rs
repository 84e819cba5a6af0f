//! `autoglm policy eval`: a query over Rego files, data and input, answered
//! in `opa eval --format=json`'s layout (`{"result": [{"expressions": …,
//! "bindings": …}]}`, `{}` when the query is undefined).

use serde_json::Value;

use crate::compile::{self, PolicyError};
use crate::spec::Syntax;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A file does not parse.
    #[error("{file}: {error}")]
    Policy {
        /// The file.
        file: String,
        /// Why.
        error: PolicyError,
    },
    /// The data document was refused, or the query failed.
    #[error("{0}")]
    Eval(String),
}

/// Evaluates `query` over `files` (each `(name, source)`), `data` and
/// `input`, under the same limits as a decision.
pub fn eval_query(
    files: &[(String, String)],
    syntax: Syntax,
    data: Option<Value>,
    input: Option<Value>,
    query: &str,
) -> Result<Value, QueryError> {
    let mut engine = compile::engine(syntax);
    for (file, source) in files {
        compile::add_source(&mut engine, file, source).map_err(|error| QueryError::Policy {
            file: file.clone(),
            error,
        })?;
    }
    if let Some(data) = data {
        engine
            .add_data(regorus::Value::from(data))
            .map_err(|e| QueryError::Eval(e.to_string()))?;
    }
    if let Some(input) = input {
        engine.set_input(regorus::Value::from(input));
    }
    let results = engine
        .eval_query(query.to_owned(), false)
        .map_err(|e| QueryError::Eval(e.to_string()))?;
    serde_json::to_value(&results).map_err(|e| QueryError::Eval(e.to_string()))
}
