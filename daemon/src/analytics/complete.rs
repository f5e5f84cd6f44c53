//! Completeness: runs whose curves stop short of the expected length (from the config's `epochs`, or given),
//! have gaps, or restart (steps going backwards, as after preemption). Read from the registry's per-metric
//! step tracking, so it costs nothing per point at query time.

use super::params::flatten;
use crate::views::registry::Record;
use serde::Serialize;
use serde_json::Value;

/// What to expect of a run's curves; without a given length, `epochs` (or `num_epochs`, `max_epochs`,
/// `n_epochs`, anywhere in the config) sets the expected number of epochs.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub steps: Option<i64>,
    pub epochs: Option<f64>,
    /// Only this metric (else every metric of the run).
    pub metric: Option<String>,
}

/// One problem with one curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub metric: String,
    /// `short`, `gaps` or `restarted`.
    pub kind: &'static str,
    pub detail: String,
}

/// The expected number of epochs from the config, if it says.
pub fn config_epochs(config: &Value) -> Option<f64> {
    flatten(config).into_iter().find_map(|(k, v)| {
        let last = k.rsplit('.').next().unwrap_or(&k);
        matches!(last, "epochs" | "num_epochs" | "max_epochs" | "n_epochs")
            .then(|| v.as_f64())
            .flatten()
    })
}

/// The problems of one run's curves (empty when complete).
pub fn check(r: &Record, expect: &Expect) -> Vec<Problem> {
    let epochs = expect.epochs.or_else(|| config_epochs(&r.config));
    let mut out = Vec::new();
    for (key, m) in &r.metrics {
        if expect.metric.as_ref().is_some_and(|want| want != key) {
            continue;
        }
        let mut push = |kind, detail: String| {
            out.push(Problem {
                metric: key.clone(),
                kind,
                detail,
            })
        };
        if let (Some(want), Some(max)) = (expect.steps, m.max_step) {
            let stride = m.stride.unwrap_or(1);
            if max + stride < want {
                push("short", format!("reaches step {max} of an expected {want}"));
            }
        }
        if let (Some(want), Some(last)) = (epochs, m.last_epoch) {
            // Epochs counted from 0 end at `want - 1`; from 1, at `want`.
            if last + 1.0 < want {
                push(
                    "short",
                    format!("reaches epoch {last} of an expected {want}"),
                );
            }
        }
        if m.gaps > 0 {
            push(
                "gaps",
                format!(
                    "{} jumps over the usual stride of {}",
                    m.gaps,
                    m.stride.unwrap_or(1)
                ),
            );
        }
        if m.restarts > 0 {
            push(
                "restarted",
                format!(
                    "steps went backwards {} times (a restart, as after preemption)",
                    m.restarts
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::api::MetricStats;
    use serde_json::json;

    fn record(config: Value, metrics: Vec<(&str, MetricStats)>) -> Record {
        let mut r: Record = serde_json::from_value(json!({
            "id": "r", "name": "r", "description": null, "tags": [], "config": config, "config_hash": "h",
            "host": "h", "started": 0, "status": "running", "status_notes": null, "ended": null,
            "last_activity": 0, "sources": [], "summaries": {}, "artifacts": [], "messages": 0, "metrics": {},
            "extra": {}, "ranges": []
        }))
        .unwrap();
        r.metrics = metrics
            .into_iter()
            .map(|(k, m)| (k.to_string(), m))
            .collect();
        r
    }

    #[test]
    fn short_gappy_and_restarted_curves_are_flagged() {
        let full = MetricStats {
            max_step: Some(990),
            stride: Some(10),
            last_epoch: Some(4.0),
            ..Default::default()
        };
        let short = MetricStats {
            max_step: Some(400),
            stride: Some(10),
            last_epoch: Some(2.0),
            ..Default::default()
        };
        let broken = MetricStats {
            max_step: Some(990),
            stride: Some(10),
            gaps: 2,
            restarts: 1,
            last_epoch: Some(4.0),
            ..Default::default()
        };
        let r = record(
            json!({"trainer": {"epochs": 5}}),
            vec![("train/loss", full.clone())],
        );
        assert!(
            check(
                &r,
                &Expect {
                    steps: Some(1000),
                    ..Default::default()
                }
            )
            .is_empty(),
            "step 990 with stride 10 ends 1000 steps"
        );
        let r = record(
            json!({"trainer": {"epochs": 5}}),
            vec![("train/loss", short)],
        );
        let p = check(
            &r,
            &Expect {
                steps: Some(1000),
                ..Default::default()
            },
        );
        assert_eq!(
            p.iter().map(|p| p.kind).collect::<Vec<_>>(),
            ["short", "short"],
            "{p:?}"
        );
        assert!(p[1].detail.contains("epoch 2"));
        let r = record(json!({}), vec![("train/loss", broken), ("val/acc", full)]);
        let p = check(&r, &Expect::default());
        assert_eq!(
            p.iter().map(|p| p.kind).collect::<Vec<_>>(),
            ["gaps", "restarted"]
        );
        assert!(
            check(
                &r,
                &Expect {
                    metric: Some("val/acc".into()),
                    ..Default::default()
                }
            )
            .is_empty()
        );
    }
}
