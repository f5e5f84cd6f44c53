//! The filter expression language over runs: `optim.lr < 1e-3 and status == "completed"`,
//! `tag in ["a", "b"] or not exists summary.final.test_acc`, `name ~ "^bert-"`, `name like "mlp-*"`.
//!
//! ```text
//! expr  := and ("or" and)*            and := not ("and" not)*          not := "not" not | atom
//! atom  := "(" expr ")" | "exists" field | field op value | field ["not"] "in" "[" value, ... "]"
//!        | field "~" "regex" | field "like" "glob"
//! op    := == | = | != | < | <= | > | >=          value := number | "string" | 'string' | true | false | null
//! ```
//! Fields: `id`, `name`, `status` (`stale` included), `host`, `description`, `config_hash`, `tag` (true when any
//! tag matches), `started`, `ended`, `last_activity` (times: compare with RFC 3339 text, a date `YYYY-MM-DD`
//! or Unix seconds), `params.<path>` (or the bare path: `optim.lr`, `layers.0.units`), `summary.<group>.<path>`,
//! `metric.<key>` (last value; also `metric_min.`, `metric_max.`, `metric_points.`). Metric keys may hold `/`
//! (`metric.val/acc`); a field with other characters is written in backquotes. A field a run lacks makes every
//! comparison false (`exists` tells); `== null` is true for a missing or null value.

mod eval;
mod parse;

pub use eval::{Clock, walk};

use labd_schemas::number::Num;

/// A bad expression: where (0-based character column) and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("filter expression, column {col}: {message}\n  {expr}\n  {caret}^", col = .column + 1, caret = " ".repeat(*.column))]
pub struct FilterError {
    pub column: usize,
    pub message: String,
    pub expr: String,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Exists(Field),
    Compare(Field, Op, Lit),
    In(Field, Vec<Lit>),
    Regex(Field, Pattern),
    Like(Field, String),
}

/// A compiled regular expression (compared by its text).
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Integers written without a point or exponent stay integers; compared by exact value.
    Num(Num),
    Str(String),
    Bool(bool),
    Null,
}

/// What a field names.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Id,
    Name,
    Status,
    Host,
    Project,
    Description,
    ConfigHash,
    Tag,
    Started,
    Ended,
    LastActivity,
    Param(Vec<String>),
    Summary(String, Vec<String>),
    Metric(MetricStat, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricStat {
    Last,
    Min,
    Max,
    Points,
}

impl Field {
    fn from_path(path: &str) -> Field {
        let split = |rest: &str| rest.split('.').map(str::to_string).collect::<Vec<_>>();
        match path {
            "id" => Field::Id,
            "name" => Field::Name,
            "status" => Field::Status,
            "host" => Field::Host,
            "project" => Field::Project,
            "description" => Field::Description,
            "config_hash" => Field::ConfigHash,
            "tag" | "tags" => Field::Tag,
            "started" => Field::Started,
            "ended" => Field::Ended,
            "last_activity" => Field::LastActivity,
            _ => {
                if let Some(rest) = path.strip_prefix("params.") {
                    Field::Param(split(rest))
                } else if let Some(rest) = path.strip_prefix("summary.") {
                    let mut parts = rest.splitn(2, '.');
                    let group = parts.next().unwrap_or_default().to_string();
                    Field::Summary(group, parts.next().map(split).unwrap_or_default())
                } else if let Some(key) = path.strip_prefix("metric.") {
                    Field::Metric(MetricStat::Last, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_min.") {
                    Field::Metric(MetricStat::Min, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_max.") {
                    Field::Metric(MetricStat::Max, key.to_string())
                } else if let Some(key) = path.strip_prefix("metric_points.") {
                    Field::Metric(MetricStat::Points, key.to_string())
                } else {
                    Field::Param(split(path))
                }
            }
        }
    }
}

pub use labd_schemas::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::registry::Record;
    use labd_schemas::api::MetricStats;
    use labd_schemas::{ExperimentId, RunStatus};
    use serde_json::Value;
    use serde_json::json;

    fn run(name: &str, config: Value, tags: &[&str], status: RunStatus) -> Record {
        Record {
            id: ExperimentId(format!("20250101_000000_{name}_00000000")),
            name: name.into(),
            description: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            config,
            config_hash: "h".into(),
            host: "gpu01".into(),
            started: 1_735_689_600_000_000, // 2025-01-01T00:00:00Z
            status,
            status_notes: None,
            ended: None,
            last_activity: 1_735_689_600_000_000,
            sources: vec![],
            summaries: [(
                "final".to_string(),
                json!({"test_acc": 0.91, "bias": {"gmb": 0.2}}),
            )]
            .into(),
            artifacts: vec![],
            messages: 0,
            metrics: [(
                "val/acc".to_string(),
                MetricStats {
                    points: 10,
                    last: Some(0.8),
                    min: Some(0.1),
                    max: Some(0.85),
                    ..Default::default()
                },
            )]
            .into(),
            extra: Default::default(),
            ranges: vec![],
            origin_id: None,
            foreign: false,
            project: None,
        }
    }

    fn m(expr: &str, r: &Record) -> bool {
        let clock = Clock {
            now: r.last_activity + 1,
            stale_after: 600_000_000,
        };
        expr.parse::<Filter>()
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(r, clock)
    }

    #[test]
    fn params_summaries_metrics_tags_status_and_times() {
        let r = run(
            "bert-base",
            json!({"optim": {"lr": 0.0005, "name": "adam"}, "layers": [{"units": 64}], "seed": 3, "flag": true, "init": null}),
            &["nlp", "bert"],
            RunStatus::Completed,
        );
        assert!(m("optim.lr < 1e-3", &r));
        assert!(m("params.optim.lr <= 5e-4 and optim.lr >= 0.0005", &r));
        assert!(!m("optim.lr > 1e-3", &r));
        assert!(m("layers.0.units == 64", &r));
        assert!(m("optim.name = \"adam\" and flag == true", &r));
        assert!(m("init == null", &r));
        assert!(!m("exists init", &r));
        assert!(m("missing == null and not exists missing", &r));
        assert!(
            !m("missing != 1", &r),
            "a missing field makes comparisons false"
        );
        assert!(m(
            "summary.final.test_acc > 0.9 and summary.final.bias.gmb < 0.3",
            &r
        ));
        assert!(m(
            "metric.val/acc >= 0.8 and metric_max.val/acc == 0.85 and metric_points.val/acc == 10",
            &r
        ));
        assert!(m(
            "tag == \"bert\" and tag in [\"x\", \"nlp\"] and not tag == \"cv\"",
            &r
        ));
        assert!(m(
            "status == 'completed' and status in ['completed', 'failed']",
            &r
        ));
        assert!(m("seed not in [1, 2]", &r));
        assert!(m(
            "name ~ \"^bert-\" and name like \"bert*\" and not name like \"gpt*\"",
            &r
        ));
        assert!(m(
            "started >= \"2025-01-01\" and started < \"2025-01-01T00:00:01Z\" and started > 1700000000",
            &r
        ));
        assert!(!m("exists ended", &r));
        assert!(m(
            "(optim.lr > 1 or seed == 3) and not (host != \"gpu01\")",
            &r
        ));
        assert!(m(
            "`optim.name` == \"adam\" or params.optim.name == \"adam\"",
            &r
        ));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let r = run("a", json!({"x": 1}), &[], RunStatus::Running);
        assert!(m("x == 2 and x == 2 or x == 1", &r));
        assert!(!m("x == 2 and (x == 2 or x == 1)", &r));
        assert!(m("not x == 2 and x == 1", &r));
    }

    #[test]
    fn silence_is_visible_as_status_stale() {
        let r = run("a", json!({}), &[], RunStatus::Running);
        let f: Filter = "status == \"stale\"".parse().unwrap();
        assert!(f.matches(
            &r,
            Clock {
                now: r.last_activity + 10,
                stale_after: 5
            }
        ));
        assert!(!f.matches(
            &r,
            Clock {
                now: r.last_activity + 1,
                stale_after: 5
            }
        ));
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("optim.lr <", 10, "expected a value"),
            ("optim.lr < 1e-3 and", 19, "expected a field"),
            ("(a == 1", 7, "expected `)`"),
            ("a == 1 b == 2", 7, "missing `and`/`or`"),
            ("a ! 1", 2, "expected `!=`"),
            ("name ~ \"(\"", 7, "bad regular expression"),
            ("a == \"open", 5, "unterminated"),
            ("a in 1", 5, "expected `[`"),
            ("a == adam", 5, "quote text"),
            ("", 0, "empty expression"),
            ("a", 1, "expected a comparison"),
        ];
        for (expr, column, want) in cases {
            let err = expr.parse::<Filter>().unwrap_err();
            assert_eq!(err.column, column, "{expr}: {err}");
            assert!(err.message.contains(want), "{expr}: {err}");
        }
        let shown = "optim.lr <".parse::<Filter>().unwrap_err().to_string();
        assert!(
            shown.contains("column 11") && shown.ends_with("          ^"),
            "{shown}"
        );
    }

    #[test]
    fn glob_is_linear_and_whole_string() {
        assert!(glob_match("b*e", "baseline"));
        assert!(!glob_match("b*x", "baseline"));
        assert!(glob_match("?aseline", "baseline"));
        assert!(!glob_match("base", "baseline"));
        assert!(!glob_match(
            "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            &"a".repeat(5000)
        ));
    }
}
