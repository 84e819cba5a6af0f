//! Replay protection for commands that act on running services.
//!
//! Such a command carries `X-Autoglm-Timestamp` (Unix seconds) and
//! `X-Autoglm-Nonce` (16 to 128 URL-safe characters). The console accepts it
//! only inside a window around its own clock and only once per nonce; the
//! nonce is remembered for twice the window, so a captured request can never
//! be sent again.

use chrono::{DateTime, Utc};

/// Header carrying the command's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-autoglm-timestamp";
/// Header carrying the command's single-use nonce.
pub const NONCE_HEADER: &str = "x-autoglm-nonce";
/// How far a command's clock may differ from the console's.
pub const WINDOW_SECONDS: i64 = 300;

/// Why a command's freshness headers were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// A header is absent or unreadable.
    Malformed(String),
    /// The timestamp is outside the window.
    Stale(String),
}

/// Checks both headers' syntax and the timestamp's freshness against `now`.
pub fn check_command(
    now: DateTime<Utc>,
    timestamp: Option<&str>,
    nonce: Option<&str>,
) -> Result<String, ReplayError> {
    let timestamp = timestamp
        .ok_or_else(|| ReplayError::Malformed(format!("header {TIMESTAMP_HEADER} is required")))?;
    let seconds: i64 = timestamp.parse().map_err(|_| {
        ReplayError::Malformed(format!(
            "header {TIMESTAMP_HEADER} must be Unix seconds, got {timestamp:?}"
        ))
    })?;
    let nonce = nonce
        .ok_or_else(|| ReplayError::Malformed(format!("header {NONCE_HEADER} is required")))?;
    if !(16..=128).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ReplayError::Malformed(format!(
            "header {NONCE_HEADER} must be 16 to 128 characters of [A-Za-z0-9_-]"
        )));
    }
    let skew = now.timestamp().saturating_sub(seconds);
    if skew.abs() > WINDOW_SECONDS {
        return Err(ReplayError::Stale(format!(
            "timestamp is {skew} s from the console's clock; the window is ±{WINDOW_SECONDS} s"
        )));
    }
    Ok(nonce.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef";

    #[test]
    fn fresh_command_passes() {
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        assert_eq!(
            check_command(now, Some(&ts), Some(NONCE)),
            Ok(NONCE.to_owned())
        );
    }

    #[test]
    fn stale_missing_or_malformed_are_refused() {
        let now = Utc::now();
        let old = (now.timestamp() - WINDOW_SECONDS - 1).to_string();
        let future = (now.timestamp() + WINDOW_SECONDS + 1).to_string();
        assert!(matches!(
            check_command(now, Some(&old), Some(NONCE)),
            Err(ReplayError::Stale(_))
        ));
        assert!(matches!(
            check_command(now, Some(&future), Some(NONCE)),
            Err(ReplayError::Stale(_))
        ));
        assert!(matches!(
            check_command(now, None, Some(NONCE)),
            Err(ReplayError::Malformed(_))
        ));
        let ts = now.timestamp().to_string();
        assert!(matches!(
            check_command(now, Some(&ts), None),
            Err(ReplayError::Malformed(_))
        ));
        assert!(matches!(
            check_command(now, Some("yesterday"), Some(NONCE)),
            Err(ReplayError::Malformed(_))
        ));
        assert!(matches!(
            check_command(now, Some(&ts), Some("short")),
            Err(ReplayError::Malformed(_))
        ));
        assert!(matches!(
            check_command(now, Some(&ts), Some("0123456789abcdef/")),
            Err(ReplayError::Malformed(_))
        ));
    }
}
