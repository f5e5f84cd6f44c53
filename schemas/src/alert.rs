//! Alerts: rules over runs' curves, runs, trials and sweeps, and the facts of their firing. A rule comes from the
//! configuration file or the API; either way it enters the log (`alert_rule_set`), so what fired when is a
//! function of the log, like every view.

use crate::ids::ExperimentId;
use serde::{Deserialize, Serialize};

/// What a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A metric's value is NaN or ±infinity.
    Nan,
    /// A metric's value is above `above` or below `below`.
    Threshold,
    /// A metric has been above `factor` × its running minimum for `points` points in a row.
    Divergence,
    /// A running run has logged nothing for `after` seconds.
    Stall,
    /// A run ended `failed`, or a trial failed (or timed out) with no retry left.
    Failed,
    /// A sweep ended: finished, failed or cancelled.
    SweepFinished,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Nan => "nan",
            AlertKind::Threshold => "threshold",
            AlertKind::Divergence => "divergence",
            AlertKind::Stall => "stall",
            AlertKind::Failed => "failed",
            AlertKind::SweepFinished => "sweep_finished",
        }
    }

    /// Whether the rule looks at a metric's points (and so needs `metric`).
    pub fn on_points(self) -> bool {
        matches!(
            self,
            AlertKind::Nan | AlertKind::Threshold | AlertKind::Divergence
        )
    }

    pub const NAMES: &'static str = "nan, threshold, divergence, stall, failed or sweep_finished";
}

impl std::str::FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "nan" => AlertKind::Nan,
            "threshold" => AlertKind::Threshold,
            "divergence" => AlertKind::Divergence,
            "stall" => AlertKind::Stall,
            "failed" => AlertKind::Failed,
            "sweep_finished" => AlertKind::SweepFinished,
            other => {
                return Err(format!(
                    "unknown alert kind {other:?} (expected {})",
                    AlertKind::NAMES
                ));
            }
        })
    }
}

/// A rule, as written in `[[alerts.rules]]` of the configuration file or posted to `/api/v1/alerts/rules`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique; setting a rule of the same name replaces it.
    pub name: String,
    #[schemars(with = "String")]
    pub kind: AlertKind,
    /// The metrics it watches: a name or a `*`/`?` glob (`nan`, `threshold`, `divergence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `threshold`: fires when a value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// `threshold`: fires when a value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// `divergence`: how far above its running minimum a metric may go (`2.0`: twice the minimum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// `divergence`: for how many points in a row (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<u32>,
    /// `stall`: seconds without a new point or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<f64>,
    /// Only runs whose id or name matches this glob (rules about runs and their metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
    /// Only sweeps whose id matches this glob (rules about trials and sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweeps: Option<String>,
    /// The sinks it goes to, by name (`journal`, or a webhook's or command's name); default: every sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<String>>,
    /// At most this many firings a minute go to each webhook and command (the rest are recorded as held back);
    /// default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
}

/// Firings a rule sends to a webhook or command per minute when it says nothing.
pub const DEFAULT_MAX_PER_MINUTE: u32 = 10;

impl AlertRule {
    /// A rule's problems, naming the field at fault.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() || name.len() > 200 || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(format!(
                "name: {name:?} must be 1 to 200 characters, without '/' or control characters"
            ));
        }
        let at = |field: &str, why: &str| Err(format!("rule {name:?}: {field}: {why}"));
        let kind = self.kind;
        if kind.on_points() {
            match &self.metric {
                None => return at("metric", "required (a metric name or glob)"),
                Some(m) if m.is_empty() => return at("metric", "must not be empty"),
                Some(_) => {}
            }
        } else if self.metric.is_some() {
            return at("metric", &format!("a {} rule has none", kind.as_str()));
        }
        let only = |field: &str, given: bool, for_kind: AlertKind| {
            if given && kind != for_kind {
                Err(format!(
                    "rule {name:?}: {field}: only for {} rules",
                    for_kind.as_str()
                ))
            } else {
                Ok(())
            }
        };
        only("above", self.above.is_some(), AlertKind::Threshold)?;
        only("below", self.below.is_some(), AlertKind::Threshold)?;
        only("factor", self.factor.is_some(), AlertKind::Divergence)?;
        only("points", self.points.is_some(), AlertKind::Divergence)?;
        only("after", self.after.is_some(), AlertKind::Stall)?;
        for (field, v) in [("above", self.above), ("below", self.below)] {
            if v.is_some_and(f64::is_nan) {
                return at(field, "must be a number");
            }
        }
        match kind {
            AlertKind::Threshold if self.above.is_none() && self.below.is_none() => {
                return at("above", "a threshold rule needs `above`, `below` or both");
            }
            AlertKind::Divergence => match self.factor {
                Some(f) if f.is_finite() && f >= 1.0 => {}
                Some(f) => return at("factor", &format!("{f} must be a number of at least 1")),
                None => return at("factor", "required (e.g. 2.0: twice the running minimum)"),
            },
            AlertKind::Stall => match self.after {
                Some(s) if s.is_finite() && s > 0.0 => {}
                Some(s) => {
                    return at(
                        "after",
                        &format!("{s} must be a positive number of seconds"),
                    );
                }
                None => return at("after", "required (seconds without a new point)"),
            },
            _ => {}
        }
        if self.points == Some(0) {
            return at("points", "must be at least 1");
        }
        if self.runs.is_some() && matches!(kind, AlertKind::SweepFinished) {
            return at(
                "runs",
                "a sweep_finished rule is about sweeps; use `sweeps`",
            );
        }
        if self.sweeps.is_some() && kind != AlertKind::Failed && kind != AlertKind::SweepFinished {
            return at("sweeps", "only for failed and sweep_finished rules");
        }
        if self.max_per_minute == Some(0) {
            return at("max_per_minute", "must be at least 1");
        }
        if let Some(sinks) = &self.sinks
            && let Some(bad) = sinks.iter().find(|s| s.is_empty())
        {
            return at("sinks", &format!("{bad:?} is not a sink name"));
        }
        Ok(())
    }

    /// Whether the rule is about the run with this id and name.
    pub fn selects_run(&self, id: &str, name: &str) -> bool {
        self.runs
            .as_deref()
            .is_none_or(|g| crate::glob::glob_match(g, id) || crate::glob::glob_match(g, name))
    }

    /// Whether the rule is about this sweep (and its trials).
    pub fn selects_sweep(&self, id: &str) -> bool {
        self.sweeps
            .as_deref()
            .is_none_or(|g| crate::glob::glob_match(g, id))
    }

    /// Whether a firing of this rule goes to the sink of this name.
    pub fn sends_to(&self, sink: &str) -> bool {
        self.sinks
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == sink))
    }
}

/// Where a rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleFrom {
    /// `[[alerts.rules]]` of the configuration file (set again, or removed, when the file changes).
    Config,
    /// `POST /api/v1/alerts/rules` (`labctl alerts add`).
    Api,
}

impl RuleFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleFrom::Config => "config",
            RuleFrom::Api => "api",
        }
    }
}

/// A rule was set (added, or replaced by one of the same name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleSet {
    pub rule: AlertRule,
    pub from: RuleFrom,
}

/// A rule was removed; its open episodes end with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRuleRemoved {
    pub name: String,
    pub from: RuleFrom,
}

/// What an alert is about: a run (and one of its metrics), a sweep's trial, or a sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ExperimentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = &self.run {
            parts.push(format!("run {r}"));
        }
        if let Some(m) = &self.metric {
            parts.push(format!("metric {m}"));
        }
        if let Some(s) = &self.sweep {
            parts.push(format!("sweep {s}"));
        }
        if let Some(t) = &self.trial {
            parts.push(format!("trial {t}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// An alert fired: a rule's condition began to hold for its subject (an episode began; it fires again only
/// after the condition has ended).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertFired {
    pub rule: String,
    pub kind: AlertKind,
    pub subject: Subject,
    /// The step of the point that met the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// Its value (NaN and ±inf kept).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::floats::opt"
    )]
    pub value: Option<f64>,
    /// The sequence number of the event that met the condition (none for a stall: silence has no event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<u64>,
    /// What happened, in words.
    pub message: String,
}

/// How a firing fared at a sink (a webhook or a command; the journal takes every firing at once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertDelivered {
    /// The sequence number of the `alert_fired` event.
    pub firing: u64,
    pub sink: String,
    pub outcome: Delivery,
    /// Tries made.
    pub attempts: u32,
    /// The last error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The end of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The webhook answered 2xx, the command exited 0.
    Delivered,
    /// Every try failed.
    Failed,
    /// Not sent: the rule's `max_per_minute` was reached.
    HeldBack,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
            Delivery::HeldBack => "held_back",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<AlertRule, String> {
        let r: AlertRule = serde_json::from_value(json).map_err(|e| e.to_string())?;
        r.check().map(|_| r)
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        use serde_json::json;
        assert!(rule(json!({"name": "nan", "kind": "nan", "metric": "loss*"})).is_ok());
        assert!(
            rule(json!({"name": "t", "kind": "threshold", "metric": "loss", "above": 10.0}))
                .is_ok()
        );
        let e = rule(json!({"name": "t", "kind": "threshold", "metric": "loss"})).unwrap_err();
        assert!(e.contains("above"), "{e}");
        let e = rule(json!({"name": "n", "kind": "nan"})).unwrap_err();
        assert!(e.contains("metric: required"), "{e}");
        let e = rule(json!({"name": "d", "kind": "divergence", "metric": "l", "factor": 0.5}))
            .unwrap_err();
        assert!(e.contains("factor"), "{e}");
        let e = rule(json!({"name": "s", "kind": "stall"})).unwrap_err();
        assert!(e.contains("after: required"), "{e}");
        let e = rule(json!({"name": "s", "kind": "stall", "after": 60, "above": 1.0})).unwrap_err();
        assert!(e.contains("above: only for threshold"), "{e}");
        let e = rule(json!({"name": "f", "kind": "failed", "metric": "loss"})).unwrap_err();
        assert!(e.contains("metric: a failed rule has none"), "{e}");
        let e = rule(json!({"name": "x", "kind": "nan", "metric": "l", "colour": 1})).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = rule(json!({"name": "a/b", "kind": "failed"})).unwrap_err();
        assert!(e.contains("name"), "{e}");
        let e = rule(json!({"name": "w", "kind": "whatever"})).unwrap_err();
        assert!(e.contains("whatever"), "{e}");
    }

    #[test]
    fn scopes_and_sinks() {
        let r: AlertRule = serde_json::from_value(serde_json::json!({
            "name": "r", "kind": "failed", "runs": "bert-*", "sinks": ["journal"]
        }))
        .unwrap();
        assert!(r.selects_run("20260101_x", "bert-large"));
        assert!(!r.selects_run("20260101_x", "gpt"));
        assert!(r.sends_to("journal") && !r.sends_to("hook"));
        assert!(r.selects_sweep("any"));
    }

    #[test]
    fn a_firing_keeps_a_nan_value_in_json_and_msgpack() {
        let f = AlertFired {
            rule: "nan".into(),
            kind: AlertKind::Nan,
            subject: Subject {
                run: Some(ExperimentId("r".into())),
                metric: Some("loss".into()),
                ..Default::default()
            },
            step: Some(3),
            value: Some(f64::NAN),
            trigger: Some(12),
            message: "loss is NaN".into(),
        };
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""value":"NaN""#), "{text}");
        let back: AlertFired = serde_json::from_str(&text).unwrap();
        assert!(back.value.unwrap().is_nan());
        let bin = rmp_serde::to_vec_named(&f).unwrap();
        let back: AlertFired = rmp_serde::from_slice(&bin).unwrap();
        assert!(back.value.unwrap().is_nan());
    }
}
