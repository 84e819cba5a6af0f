//! Parsers for the two unit-bearing strings of a spec: durations ("300s",
//! "5m") and Kubernetes resource quantities ("500m", "4Gi").
//!
//! Both stay strings on the wire, as in Kubernetes, so a spec reads back the
//! way it was written; these functions give their values and say precisely
//! why a string is refused.

use std::time::Duration;

use thiserror::Error;

/// The duration units, as the messages list them.
const UNITS: &str = "ms, s, m or h";

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("duration must not be empty; write a number with a unit ({UNITS}), like \"300s\"")]
    Empty,
    /// The string starts with `-`.
    #[error("duration {input:?} must not be negative")]
    Negative {
        /// The string given.
        input: String,
    },
    /// The string holds a `.`.
    #[error("duration {input:?} must use whole numbers; write \"90m\" rather than \"1.5h\"")]
    Fraction {
        /// The string given.
        input: String,
    },
    /// A part does not start with a digit.
    #[error("duration {input:?} is not a number with a unit ({UNITS}), like \"300s\" or \"5m\"")]
    NotANumber {
        /// The string given.
        input: String,
    },
    /// A number has no unit after it.
    #[error("duration {input:?} needs a unit ({UNITS}), like \"{number}s\"")]
    MissingUnit {
        /// The string given.
        input: String,
        /// The number without a unit.
        number: String,
    },
    /// A unit other than `ms`, `s`, `m` or `h`.
    #[error("duration {input:?} has unknown unit {unit:?}; use {UNITS}")]
    UnknownUnit {
        /// The string given.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// The total does not fit in 64 bits of milliseconds.
    #[error("duration {input:?} is too long")]
    TooLong {
        /// The string given.
        input: String,
    },
}

/// Why a quantity string was refused. The messages are the end of a sentence
/// the caller starts with the field and its value: `cpu "x" must start with a number`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The quantity starts with `-`.
    #[error("must not be negative")]
    Negative,
    /// There is no number before the suffix, or it is not one.
    #[error("must start with a number")]
    NotANumber,
    /// An `e<n>` suffix whose exponent is not an integer up to 18 either way.
    #[error("has a bad exponent {exponent:?}")]
    BadExponent {
        /// The suffix, `e` included.
        exponent: String,
    },
    /// A suffix Kubernetes does not know.
    #[error("has unknown suffix {suffix:?}; use Ki, Mi, Gi, Ti, m, k, M, G or T")]
    UnknownSuffix {
        /// The suffix found.
        suffix: String,
    },
}

/// Parses a duration: whole numbers with units `ms`, `s`, `m`, `h`, one or
/// several in a row as in Go ("1h30m"). Fractions, signs and spaces are refused.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let input = || s.to_owned();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative { input: input() });
    }
    if s.contains('.') {
        return Err(DurationError::Fraction { input: input() });
    }
    let mut millis: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotANumber { input: input() });
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => {
                return Err(DurationError::MissingUnit {
                    input: input(),
                    number: number.to_owned(),
                });
            }
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input(),
                    unit: other.to_owned(),
                });
            }
        };
        let too_long = || DurationError::TooLong { input: input() };
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .ok_or_else(too_long)?;
        millis = millis.checked_add(part).ok_or_else(too_long)?;
        rest = next;
    }
    Ok(Duration::from_millis(millis))
}

/// Parses a Kubernetes quantity (`<number><suffix>`, suffix one of `Ki Mi Gi
/// Ti Pi Ei`, `m k M G T P E`, `e<n>`, or none) into its value in base units
/// (cores, bytes). Negative quantities are refused: no resource is negative.
pub fn parse_quantity(s: &str) -> Result<f64, QuantityError> {
    let unsigned = s.strip_prefix('+').unwrap_or(s);
    if unsigned.starts_with('-') {
        return Err(QuantityError::Negative);
    }
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return Err(QuantityError::NotANumber);
    }
    let value: f64 = number.parse().map_err(|_| QuantityError::NotANumber)?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024_f64,
        "Mi" => 1024_f64.powi(2),
        "Gi" => 1024_f64.powi(3),
        "Ti" => 1024_f64.powi(4),
        "Pi" => 1024_f64.powi(5),
        "Ei" => 1024_f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            // The exponent is an integer; beyond 18 no resource makes sense.
            let power = exp[1..]
                .parse::<i32>()
                .ok()
                .filter(|p| p.abs() <= 18)
                .ok_or_else(|| QuantityError::BadExponent {
                    exponent: exp.to_owned(),
                })?;
            10_f64.powi(power)
        }
        other => {
            return Err(QuantityError::UnknownSuffix {
                suffix: other.to_owned(),
            });
        }
    };
    Ok(value * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let ok = |s: &str| parse_duration(s).ok();
        assert_eq!(ok("300s"), Some(Duration::from_secs(300)));
        assert_eq!(ok("5m"), Some(Duration::from_secs(300)));
        assert_eq!(ok("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(ok("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(ok("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(ok("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn durations_refused_with_reasons() {
        let err = |s: &str| {
            parse_duration(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err(""),
            "duration must not be empty; write a number with a unit (ms, s, m or h), like \"300s\""
        );
        assert_eq!(err("-5s"), "duration \"-5s\" must not be negative");
        assert_eq!(
            err("300"),
            "duration \"300\" needs a unit (ms, s, m or h), like \"300s\""
        );
        assert_eq!(
            err("1.5h"),
            "duration \"1.5h\" must use whole numbers; write \"90m\" rather than \"1.5h\""
        );
        assert_eq!(
            err("5d"),
            "duration \"5d\" has unknown unit \"d\"; use ms, s, m or h"
        );
        assert!(matches!(
            parse_duration("5 m"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == " m"
        ));
        assert_eq!(
            err("abc"),
            "duration \"abc\" is not a number with a unit (ms, s, m or h), like \"300s\" or \"5m\""
        );
        assert!(matches!(
            parse_duration(" 5s"),
            Err(DurationError::NotANumber { .. })
        ));
        assert_eq!(
            err("99999999999999999999h"),
            "duration \"99999999999999999999h\" is too long"
        );
        assert!(matches!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLong { .. })
        ));
    }

    #[test]
    fn quantities_in_kubernetes_syntax() {
        let v = |s: &str| parse_quantity(s).ok();
        assert_eq!(v("500m"), Some(0.5));
        assert_eq!(v("2"), Some(2.0));
        assert_eq!(v("1.5"), Some(1.5));
        assert_eq!(v("4Gi"), Some(4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(v("512Mi"), Some(512.0 * 1024.0 * 1024.0));
        assert_eq!(v("1G"), Some(1e9));
        assert_eq!(v("1e3"), Some(1e3));
        assert_eq!(v("+1k"), Some(1e3));
        assert_eq!(v(".5"), Some(0.5));
        for bad in [
            "", "-1", "4GB", "2 cores", "Gi", "1.2.3", "1e", "1e99", "abc", " 2",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantities_refused_with_reasons() {
        let err = |s: &str| {
            parse_quantity(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(parse_quantity("-1"), Err(QuantityError::Negative));
        assert_eq!(err("-1"), "must not be negative");
        assert_eq!(parse_quantity("Gi"), Err(QuantityError::NotANumber));
        assert_eq!(parse_quantity("1.2.3"), Err(QuantityError::NotANumber));
        assert_eq!(err("abc"), "must start with a number");
        assert_eq!(err("1e99"), "has a bad exponent \"e99\"");
        assert_eq!(
            err("4GB"),
            "has unknown suffix \"GB\"; use Ki, Mi, Gi, Ti, m, k, M, G or T"
        );
    }
}
