//! An analysis metric's `successCondition` and `failureCondition`: a small
//! expression over the canary's measurement (`result`) and the stable
//! version's (`baseline`), as Argo Rollouts writes them
//! (`result < 0.05`, `result <= baseline * 1.5 || result < 0.2`).
//!
//! Grammar: `or := and ("||" and)*`, `and := cmp ("&&" cmp)*`,
//! `cmp := value op value`, `op := < <= > >= == !=`,
//! `value := term ("*" number)?`, `term := result | baseline | number`.

use std::fmt;

/// What a side of a comparison reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Term {
    Result,
    Baseline,
    Number(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    term: Term,
    factor: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A parsed condition: alternatives (`||`) of conjunctions (`&&`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    any: Vec<Vec<(Value, Op, Value)>>,
}

/// Why a condition did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn tokens(input: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["<=", ">=", "==", "!=", "&&", "||"].contains(&two.as_str()) {
                out.push(two);
                i += 2;
            } else if ['<', '>', '*'].contains(&c) {
                out.push(c.to_string());
                i += 1;
            } else {
                return Err(ParseError(format!("unexpected {c:?}")));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn number(token: &str) -> Result<f64, ParseError> {
        token
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| ParseError(format!("{token:?} is not a number")))
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let token = self
            .next()
            .ok_or_else(|| ParseError("a comparison ends too early".to_owned()))?;
        let term = match token.as_str() {
            "result" => Term::Result,
            "baseline" => Term::Baseline,
            t if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                Term::Number(Parser::number(t)?)
            }
            other => {
                return Err(ParseError(format!(
                    "unknown name {other:?}; a condition reads result, baseline and numbers"
                )));
            }
        };
        let mut factor = 1.0;
        if self.peek() == Some("*") {
            self.next();
            let n = self
                .next()
                .ok_or_else(|| ParseError("* needs a number after it".to_owned()))?;
            factor = Parser::number(&n)?;
        }
        Ok(Value { term, factor })
    }

    fn comparison(&mut self) -> Result<(Value, Op, Value), ParseError> {
        let left = self.value()?;
        let op = match self.next().as_deref() {
            Some("<") => Op::Lt,
            Some("<=") => Op::Le,
            Some(">") => Op::Gt,
            Some(">=") => Op::Ge,
            Some("==") => Op::Eq,
            Some("!=") => Op::Ne,
            Some(other) => {
                return Err(ParseError(format!(
                    "expected a comparison (<, <=, >, >=, ==, !=), found {other:?}"
                )));
            }
            None => return Err(ParseError("a comparison needs an operator".to_owned())),
        };
        let right = self.value()?;
        if left.term != Term::Result && right.term != Term::Result {
            return Err(ParseError("each comparison must read result".to_owned()));
        }
        Ok((left, op, right))
    }
}

impl Condition {
    /// Parses `input`, or says what is wrong with it.
    pub fn parse(input: &str) -> Result<Condition, ParseError> {
        let mut p = Parser {
            tokens: tokens(input)?,
            at: 0,
        };
        if p.tokens.is_empty() {
            return Err(ParseError("the condition is empty".to_owned()));
        }
        let mut any = vec![vec![p.comparison()?]];
        while let Some(joint) = p.next() {
            match joint.as_str() {
                "&&" => {
                    let cmp = p.comparison()?;
                    if let Some(all) = any.last_mut() {
                        all.push(cmp);
                    }
                }
                "||" => any.push(vec![p.comparison()?]),
                other => {
                    return Err(ParseError(format!(
                        "expected && or || between comparisons, found {other:?}"
                    )));
                }
            }
        }
        Ok(Condition { any })
    }

    /// Whether the condition holds of `result` (the canary's measurement)
    /// against `baseline` (the stable version's); `None` when it reads a
    /// baseline there is none of.
    pub fn holds(&self, result: f64, baseline: Option<f64>) -> Option<bool> {
        let read = |v: &Value| -> Option<f64> {
            let base = match v.term {
                Term::Result => result,
                Term::Baseline => baseline?,
                Term::Number(n) => n,
            };
            Some(base * v.factor)
        };
        let mut any = false;
        for all in &self.any {
            let mut every = true;
            for (l, op, r) in all {
                let (l, r) = (read(l)?, read(r)?);
                let ok = match op {
                    Op::Lt => l < r,
                    Op::Le => l <= r,
                    Op::Gt => l > r,
                    Op::Ge => l >= r,
                    Op::Eq => l == r,
                    Op::Ne => l != r,
                };
                every &= ok;
            }
            any |= every;
        }
        Some(any)
    }
}
