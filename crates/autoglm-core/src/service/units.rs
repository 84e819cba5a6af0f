//! Parsers for the two unit-bearing strings of a spec: durations ("300s",
//! "5m") and Kubernetes resource quantities ("500m", "4Gi").
//!
//! Both stay strings on the wire, as in Kubernetes, so a spec reads back the
//! way it was written; these functions give their values and say precisely
//! why a string is refused.

use std::time::Duration;

/// Parses a duration: whole numbers with units `ms`, `s`, `m`, `h`, one or
/// several in a row as in Go ("1h30m"). Fractions, signs and spaces are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &str = "ms, s, m or h";
    if s.is_empty() {
        return Err(format!(
            "duration must not be empty; write a number with a unit ({UNITS}), like \"300s\""
        ));
    }
    if s.starts_with('-') {
        return Err(format!("duration {s:?} must not be negative"));
    }
    if s.contains('.') {
        return Err(format!(
            "duration {s:?} must use whole numbers; write \"90m\" rather than \"1.5h\""
        ));
    }
    let mut millis: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "duration {s:?} is not a number with a unit ({UNITS}), like \"300s\" or \"5m\""
            ));
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
                return Err(format!(
                    "duration {s:?} needs a unit ({UNITS}), like \"{number}s\""
                ));
            }
            other => {
                return Err(format!(
                    "duration {s:?} has unknown unit {other:?}; use {UNITS}"
                ));
            }
        };
        let too_long = || format!("duration {s:?} is too long");
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
pub fn parse_quantity(s: &str) -> Result<f64, String> {
    let unsigned = s.strip_prefix('+').unwrap_or(s);
    if unsigned.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return Err("must start with a number".to_owned());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| "must start with a number".to_owned())?;
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
                .ok_or_else(|| format!("has a bad exponent {exp:?}"))?;
            10_f64.powi(power)
        }
        other => {
            return Err(format!(
                "has unknown suffix {other:?}; use Ki, Mi, Gi, Ti, m, k, M, G or T"
            ));
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
        let err = |s: &str| parse_duration(s).err().unwrap_or_default();
        assert!(err("").contains("must not be empty"));
        assert_eq!(err("-5s"), "duration \"-5s\" must not be negative");
        assert!(err("300").contains("needs a unit"), "{}", err("300"));
        assert!(err("1.5h").contains("whole numbers"));
        assert!(err("5d").contains("unknown unit \"d\""));
        assert!(err("5 m").contains("unknown unit \" m\""));
        assert!(err("abc").contains("is not a number with a unit"));
        assert!(err(" 5s").contains("is not a number with a unit"));
        assert!(err("99999999999999999999h").contains("too long"));
        assert!(err("18446744073709551615h").contains("too long"));
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
}
