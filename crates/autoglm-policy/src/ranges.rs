//! `numbers.range` and `numbers.range_step`, bounded. One call builds its
//! whole array in a single step of the interpreter, so the execution timer
//! cannot stop it: `numbers.range(1, 1e9)` would allocate gigabytes and run
//! for seconds. These take their place (extensions are looked up before
//! builtins) with OPA's results, and refuse a range of more than
//! [`MAX_RANGE`] numbers: the policy's evaluation fails, and an enforced
//! policy refuses the write.

use anyhow::{Result, bail};
use regorus::Value;

/// The most numbers one range may hold.
pub const MAX_RANGE: u64 = 100_000;

/// An integer argument; `None` for any other value (the expression is then
/// undefined, as OPA's builtins are without strict builtin errors).
fn integer(value: &Value) -> Option<i64> {
    let number = value.as_number().ok()?;
    number.is_integer().then(|| number.as_i64()).flatten()
}

/// `from`, `from ± step`, … up to `to` (inclusive when it lands on it).
fn stepped(name: &str, from: i64, to: i64, step: i64) -> Result<Value> {
    // In i128: the span of two i64s and a step's multiples overflow an i64.
    let (from, to, step) = (i128::from(from), i128::from(to), i128::from(step));
    let count = (to - from).abs() / step + 1;
    if count > i128::from(MAX_RANGE) {
        bail!(
            "{name} from {from} to {to} would make {count} numbers; autoglm allows at most {MAX_RANGE}"
        );
    }
    let step = if to >= from { step } else { -step };
    // Every element lies between `from` and `to`, so each fits an i64.
    let values: Vec<Value> = (0..count)
        .map(|i| Value::from(i64::try_from(from + i * step).unwrap_or_default()))
        .collect();
    Ok(Value::from(values))
}

/// Registers both on `engine`.
pub(crate) fn add_bounded_ranges(engine: &mut regorus::Engine) {
    let range = |args: Vec<Value>| -> Result<Value> {
        match (integer(&args[0]), integer(&args[1])) {
            (Some(from), Some(to)) => stepped("numbers.range", from, to, 1),
            _ => Ok(Value::Undefined),
        }
    };
    let range_step = |args: Vec<Value>| -> Result<Value> {
        match (integer(&args[0]), integer(&args[1]), integer(&args[2])) {
            (Some(from), Some(to), Some(step)) if step > 0 => {
                stepped("numbers.range_step", from, to, step)
            }
            _ => Ok(Value::Undefined),
        }
    };
    // Each name is added once, to a fresh engine: neither can be taken.
    let _ = engine.add_extension("numbers.range".to_owned(), 2, Box::new(range));
    let _ = engine.add_extension("numbers.range_step".to_owned(), 3, Box::new(range_step));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(query: &str) -> Result<regorus::Value> {
        let mut engine = regorus::Engine::new();
        add_bounded_ranges(&mut engine);
        engine.add_policy("p.rego".into(), "package p\n".into())?;
        let results = engine.eval_query(query.to_owned(), false)?;
        Ok(results.result[0].expressions[0].value.clone())
    }

    fn numbers(query: &str) -> Vec<i64> {
        eval(query)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| integer(v).unwrap())
            .collect()
    }

    #[test]
    fn ranges_count_up_or_down_as_opa_does() {
        assert_eq!(numbers("numbers.range(1, 4)"), [1, 2, 3, 4]);
        assert_eq!(numbers("numbers.range(2, -1)"), [2, 1, 0, -1]);
        assert_eq!(numbers("numbers.range(3, 3)"), [3]);
        assert_eq!(numbers("numbers.range_step(0, 10, 4)"), [0, 4, 8]);
        assert_eq!(numbers("numbers.range_step(10, 0, 5)"), [10, 5, 0]);
    }

    #[test]
    fn the_widest_ranges_are_refused_without_overflowing() {
        for query in [
            "numbers.range(-9223372036854775808, 9223372036854775807)",
            "numbers.range_step(-9223372036854775808, 9223372036854775807, 1)",
        ] {
            let error = eval(query).unwrap_err().to_string();
            assert!(error.contains("autoglm allows at most"), "{query}: {error}");
        }
        assert_eq!(
            numbers(
                "numbers.range_step(-9223372036854775808, 9223372036854775807, 9223372036854775807)"
            ),
            [i64::MIN, -1, i64::MAX - 1]
        );
    }

    #[test]
    fn a_huge_range_is_refused_at_once() {
        let started = std::time::Instant::now();
        let error = eval("numbers.range(1, 100000000)").unwrap_err().to_string();
        assert!(error.contains("would make 100000000 numbers"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert_eq!(
            eval("count(numbers.range(1, 100000))").unwrap(),
            Value::from(100_000_i64)
        );
    }
}
