//! Experiment ids: `YYYYMMDD_HHMMSS_<name>_<hash8>`, sortable by time and naming their configuration.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of one experiment (one run). Built by the daemon from the run's start time, its name and the first
/// eight hex digits of its config hash; a `-N` suffix tells apart runs that would otherwise collide.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct ExperimentId(pub String);

impl ExperimentId {
    /// Builds the id from its parts; `name` is reduced to `[A-Za-z0-9._-]` so the id is safe in paths and URLs.
    pub fn new(started_micros: i64, name: &str, config_hash: &str) -> Self {
        let when = chrono::DateTime::from_timestamp_micros(started_micros)
            .unwrap_or_default()
            .format("%Y%m%d_%H%M%S");
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

/// Keeps letters, digits, `.`, `-`; everything else becomes `-`; empty names become `run`.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
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
    fn names_are_made_path_safe() {
        assert_eq!(sanitize_name("my run/1"), "my-run-1");
        assert_eq!(sanitize_name(""), "run");
    }
}
