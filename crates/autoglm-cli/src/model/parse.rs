//! The `KEY=VALUE` syntax of `--label` and `--param`, read after clap so
//! that a bad item is a local error (exit code 2) in the CLI's own words.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::client::ClientError;

/// Why a `--label` or `--param` item was refused. The messages are part of
/// the CLI's output, which scripts and tests match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyValueError {
    /// The item has no `=`.
    #[error("invalid --{flag} {item:?}: expected KEY=VALUE")]
    MissingEquals {
        /// The flag's name without dashes: `label` or `param`.
        flag: &'static str,
        /// The item as given.
        item: String,
    },
    /// Nothing but blanks before the `=`.
    #[error("invalid --{flag} {item:?}: the key is empty")]
    EmptyKey {
        /// The flag's name without dashes: `label` or `param`.
        flag: &'static str,
        /// The item as given.
        item: String,
    },
    /// Two items with one key: which one was meant is not ours to guess.
    #[error("--{flag} {key:?} is given twice")]
    Duplicate {
        /// The flag's name without dashes: `label` or `param`.
        flag: &'static str,
        /// The key, trimmed.
        key: String,
    },
}

impl From<KeyValueError> for ClientError {
    fn from(error: KeyValueError) -> ClientError {
        ClientError::Local(error.to_string())
    }
}

/// Parses `KEY=VALUE`. The key must not be empty; the value may be.
pub fn parse_label(item: &str) -> Result<(String, String), KeyValueError> {
    let (key, value) = split("label", item)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses repeated `--label KEY=VALUE`; a key given twice is an error.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, KeyValueError> {
    let mut labels = BTreeMap::new();
    for item in items {
        let (key, value) = parse_label(item)?;
        if labels.insert(key.clone(), value).is_some() {
            return Err(KeyValueError::Duplicate { flag: "label", key });
        }
    }
    Ok(labels)
}

/// Parses `KEY=VALUE` where VALUE is JSON when it parses (`0.001`, `true`,
/// `[1,2]`, `"4"`), else the string itself.
pub fn parse_param(item: &str) -> Result<(String, Value), KeyValueError> {
    let (key, raw) = split("param", item)?;
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// Parses repeated `--param KEY=VALUE`; a key given twice is an error.
pub fn parse_params(items: &[String]) -> Result<Map<String, Value>, KeyValueError> {
    let mut params = Map::new();
    for item in items {
        let (key, value) = parse_param(item)?;
        if params.insert(key.clone(), value).is_some() {
            return Err(KeyValueError::Duplicate { flag: "param", key });
        }
    }
    Ok(params)
}

/// The trimmed key and the untouched value: a value's blanks may be meant.
fn split<'a>(flag: &'static str, item: &'a str) -> Result<(&'a str, &'a str), KeyValueError> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| KeyValueError::MissingEquals {
            flag,
            item: item.to_owned(),
        })?;
    let key = key.trim();
    if key.is_empty() {
        return Err(KeyValueError::EmptyKey {
            flag,
            item: item.to_owned(),
        });
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_reject_bad_syntax() {
        assert_eq!(
            parse_label("team=nlp").expect("ok"),
            ("team".to_owned(), "nlp".to_owned())
        );
        assert_eq!(
            parse_label("expr=a=b").expect("ok"),
            ("expr".to_owned(), "a=b".to_owned())
        );
        assert_eq!(
            parse_label("empty=").expect("ok"),
            ("empty".to_owned(), String::new())
        );
        assert_eq!(
            parse_label(" team =nlp ").expect("ok"),
            ("team".to_owned(), "nlp ".to_owned())
        );
        assert!(parse_label("=nlp").is_err());
        assert!(parse_label("").is_err());

        let labels = parse_labels(&["team=nlp".to_owned(), "tier=gold".to_owned()]).expect("ok");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["tier"], "gold");
        assert!(parse_labels(&["a=1".to_owned(), "a=2".to_owned()]).is_err());
    }

    #[test]
    fn params_are_json_when_they_parse() {
        let params = parse_params(&[
            "lr=0.001".to_owned(),
            "quant=q4_k_m".to_owned(),
            "ctx=4096".to_owned(),
            "chat=true".to_owned(),
            "layers=[1,2]".to_owned(),
            "quoted=\"7\"".to_owned(),
            "blank=".to_owned(),
        ])
        .expect("ok");
        assert_eq!(params["lr"], serde_json::json!(0.001));
        assert_eq!(params["quant"], serde_json::json!("q4_k_m"));
        assert_eq!(params["ctx"], serde_json::json!(4096));
        assert_eq!(params["chat"], serde_json::json!(true));
        assert_eq!(params["layers"], serde_json::json!([1, 2]));
        assert_eq!(params["quoted"], serde_json::json!("7"));
        assert_eq!(params["blank"], serde_json::json!(""));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_params(&["a=1".to_owned(), "a=2".to_owned()]).is_err());
    }

    #[test]
    fn messages_are_the_clis_contract() {
        let message = |result: Result<(), KeyValueError>| result.expect_err("refused").to_string();
        assert_eq!(
            message(parse_label("team").map(drop)),
            "invalid --label \"team\": expected KEY=VALUE"
        );
        assert_eq!(
            message(parse_label(" =nlp").map(drop)),
            "invalid --label \" =nlp\": the key is empty"
        );
        assert_eq!(
            message(parse_labels(&["a=1".to_owned(), " a =2".to_owned()]).map(drop)),
            "--label \"a\" is given twice"
        );
        assert_eq!(
            message(parse_param("lr").map(drop)),
            "invalid --param \"lr\": expected KEY=VALUE"
        );
        assert_eq!(
            message(parse_param("=0.1").map(drop)),
            "invalid --param \"=0.1\": the key is empty"
        );
        assert_eq!(
            message(parse_params(&["lr=1".to_owned(), "lr=2".to_owned()]).map(drop)),
            "--param \"lr\" is given twice"
        );
        assert_eq!(
            message(parse_label("a\"\tb").map(drop)),
            "invalid --label \"a\\\"\\tb\": expected KEY=VALUE",
            "quoted as Rust's Debug quotes"
        );
    }

    #[test]
    fn refused_items_are_local_errors() {
        let error = ClientError::from(parse_label("team").expect_err("refused"));
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "invalid --label \"team\": expected KEY=VALUE"
        );
    }
}
