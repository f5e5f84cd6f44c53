//! Timestamps in the run log: an RFC 3339 string or Unix seconds (integer or fractional).

use serde::{Deserialize, Serialize};

/// A time as written by a user; normalized to Unix microseconds by [`TimeValue::to_micros`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum TimeValue {
    /// Seconds since the Unix epoch.
    Seconds(f64),
    /// RFC 3339, e.g. `2024-12-16T14:30:52Z`.
    Rfc3339(String),
}

impl TimeValue {
    /// Unix microseconds, or a message saying what is wrong with the value.
    pub fn to_micros(&self) -> Result<i64, String> {
        match self {
            TimeValue::Seconds(s) => seconds_to_micros(*s),
            TimeValue::Rfc3339(text) => parse_rfc3339_micros(text),
        }
    }

    /// Unix seconds, exactly as written when the time was given in seconds (a point's wall time keeps every
    /// bit Python's `time.time()` gave it); RFC 3339 text to the microsecond.
    pub fn to_seconds(&self) -> Result<f64, String> {
        match self {
            TimeValue::Seconds(s) => seconds_to_micros(*s).map(|_| *s),
            TimeValue::Rfc3339(text) => parse_rfc3339_micros(text).map(|us| us as f64 / 1e6),
        }
    }
}

/// Unix seconds to microseconds, rejecting NaN and times outside years 1970..=9999.
pub fn seconds_to_micros(s: f64) -> Result<i64, String> {
    if !s.is_finite() || !(0.0..=253_402_300_799.0).contains(&s) {
        return Err(format!("time {s} is not a Unix time in seconds"));
    }
    Ok((s * 1e6).round() as i64)
}

/// RFC 3339 text to Unix microseconds.
pub fn parse_rfc3339_micros(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("time {text:?} is not RFC 3339: {e}"))
}

/// Unix microseconds as RFC 3339 text (UTC, microsecond precision).
pub fn micros_to_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Now, in Unix microseconds.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_agree() {
        let a = TimeValue::Seconds(1_734_359_452.5).to_micros().unwrap();
        let b = TimeValue::Rfc3339("2024-12-16T14:30:52.5Z".into())
            .to_micros()
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(micros_to_rfc3339(a), "2024-12-16T14:30:52.500000Z");
    }

    #[test]
    fn seconds_are_kept_as_written() {
        let t = 1_733_459_200.123_456_7_f64;
        assert_eq!(
            TimeValue::Seconds(t).to_seconds().unwrap().to_bits(),
            t.to_bits()
        );
        assert_eq!(
            TimeValue::Rfc3339("2024-12-16T14:30:52.5Z".into())
                .to_seconds()
                .unwrap(),
            1_734_359_452.5
        );
    }

    #[test]
    fn bad_times_say_why() {
        assert!(TimeValue::Seconds(f64::NAN).to_micros().is_err());
        let err = TimeValue::Rfc3339("yesterday".into())
            .to_micros()
            .unwrap_err();
        assert!(err.contains("yesterday"), "{err}");
    }
}
