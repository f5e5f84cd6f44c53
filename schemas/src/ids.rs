//! Experiment ids: `YYYYMMDD_HHMMSS_<name>_<hash8>`, sortable by time and naming their configuration, as the
//! experiment manager made them (its names keep their underscores: `20241216_143052_my_exp_a1b2c3d4`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of one experiment (one run). Built by the daemon from the run's start time, its name and the first
/// eight hex digits of its config hash; a `-N` suffix tells apart runs that would otherwise collide.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct ExperimentId(pub String);

/// The clock an id's time is read on: UTC (the default), or the host's local time as the experiment manager
/// wrote it (`id_time = "local"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdClock {
    #[default]
    Utc,
    Local,
}

impl std::str::FromStr for IdClock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "utc" | "UTC" => Ok(IdClock::Utc),
            "local" => Ok(IdClock::Local),
            other => Err(format!("{other:?}: expected \"utc\" or \"local\"")),
        }
    }
}

impl ExperimentId {
    /// Builds the id from its parts, its time in UTC; `name` is reduced to `[A-Za-z0-9._-]` so the id is safe in
    /// paths and URLs.
    pub fn new(started_micros: i64, name: &str, config_hash: &str) -> Self {
        Self::new_on(IdClock::Utc, started_micros, name, config_hash)
    }

    /// Like [`ExperimentId::new`], its time read on `clock`.
    pub fn new_on(clock: IdClock, started_micros: i64, name: &str, config_hash: &str) -> Self {
        let utc = chrono::DateTime::from_timestamp_micros(started_micros).unwrap_or_default();
        let when = match clock {
            IdClock::Utc => utc.format("%Y%m%d_%H%M%S").to_string(),
            IdClock::Local => utc
                .with_timezone(&chrono::Local)
                .format("%Y%m%d_%H%M%S")
                .to_string(),
        };
        let hash8: String = config_hash.chars().take(8).collect();
        ExperimentId(format!("{when}_{}_{hash8}", sanitize_name(name)))
    }

    /// The same id with a disambiguating suffix (`-2`, `-3`, ...).
    pub fn with_suffix(&self, n: u32) -> Self {
        ExperimentId(format!("{}-{n}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps letters, digits, `.`, `-` and `_`; everything else becomes `-`; empty names become `run`.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "run".to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_reads_time_name_hash() {
        // 2024-12-16T14:30:52Z
        let id = ExperimentId::new(1_734_359_452_000_000, "baseline", "a1b2c3d4e5f6");
        assert_eq!(id.as_str(), "20241216_143052_baseline_a1b2c3d4");
        assert_eq!(
            id.with_suffix(2).as_str(),
            "20241216_143052_baseline_a1b2c3d4-2"
        );
    }

    #[test]
    fn names_are_made_path_safe_and_keep_their_underscores() {
        assert_eq!(sanitize_name("my run/1"), "my-run-1");
        assert_eq!(sanitize_name(""), "run");
        let id = ExperimentId::new(1_734_359_452_000_000, "my_exp", "a1b2c3d4e5f6");
        assert_eq!(id.as_str(), "20241216_143052_my_exp_a1b2c3d4");
    }

    #[test]
    fn the_time_can_be_local() {
        let t = 1_734_359_452_000_000;
        let local = chrono::DateTime::from_timestamp_micros(t)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y%m%d_%H%M%S")
            .to_string();
        assert_eq!(
            ExperimentId::new_on(IdClock::Local, t, "x", "00").as_str(),
            format!("{local}_x_00")
        );
        assert_eq!("local".parse::<IdClock>(), Ok(IdClock::Local));
        assert!("gmt".parse::<IdClock>().is_err());
    }
}
