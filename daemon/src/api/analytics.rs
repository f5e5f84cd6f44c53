//! Analytics endpoints: varying hyperparameters and grouped summaries over the runs a filter selects.

use super::{Error, Result};
use crate::analytics::complete::{Expect, Problem, check};
use crate::analytics::params::{Variation, flatten, variation};
use crate::analytics::summary::{AnalyticsError, By, Reduce, Summary, summarize};
use crate::daemon::Shared;
use crate::filter::{Clock, Filter};
use crate::views::registry::Record;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use labd_schemas::time::now_micros;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

impl From<AnalyticsError> for Error {
    fn from(e: AnalyticsError) -> Self {
        match e {
            AnalyticsError::BadRequest(m) => Error::bad(m),
            other => Error::internal(other),
        }
    }
}

fn parse_filter(expr: Option<&str>) -> Result<Option<Filter>> {
    expr.map(str::parse::<Filter>)
        .transpose()
        .map_err(|e| Error::bad(e.to_string()))
}

/// The runs a filter selects, in id order.
fn select<'a>(
    records: impl Iterator<Item = &'a Record>,
    filter: Option<&Filter>,
    clock: Clock,
) -> Vec<&'a Record> {
    records
        .filter(|r| filter.is_none_or(|f| f.matches(r, clock)))
        .collect()
}

#[derive(Deserialize)]
pub struct VaryingQuery {
    #[serde(rename = "where")]
    filter: Option<String>,
}

#[derive(Serialize)]
pub struct VaryingAnswer {
    pub runs: usize,
    #[serde(flatten)]
    pub variation: Variation,
}

/// `GET /api/v1/analytics/varying?where=`: which hyperparameters vary across the selected runs.
pub async fn varying(
    State(s): State<Arc<Shared>>,
    q: std::result::Result<Query<VaryingQuery>, QueryRejection>,
) -> Result<Json<VaryingAnswer>> {
    let Query(q) = q?;
    let filter = parse_filter(q.filter.as_deref())?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let answer = tokio::task::spawn_blocking(move || {
        let v = s.views();
        let runs = select(v.registry.experiments.values(), filter.as_ref(), clock);
        let flat: Vec<_> = runs.iter().map(|r| flatten(&r.config)).collect();
        VaryingAnswer {
            runs: runs.len(),
            variation: variation(&flat, &s.config.noise),
        }
    })
    .await
    .map_err(Error::internal)?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    metric: String,
    #[serde(default = "default_reduce")]
    reduce: String,
    /// `varying` (default) or comma-separated dot keys; empty for one group of all runs.
    by: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Leave out runs whose curve of this metric is incomplete (short, gaps, restarted).
    #[serde(default)]
    complete_only: bool,
    expect_steps: Option<i64>,
    expect_epochs: Option<f64>,
}

fn default_reduce() -> String {
    "last".into()
}

/// `GET /api/v1/analytics/summary?metric=&reduce=&by=&where=`.
pub async fn summary(
    State(s): State<Arc<Shared>>,
    q: std::result::Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<Summary>> {
    let Query(q) = q?;
    let filter = parse_filter(q.filter.as_deref())?;
    let reduce: Reduce = q.reduce.parse()?;
    let by = match q.by.as_deref().map(str::trim) {
        None | Some("varying") => By::Varying,
        Some(keys) => By::Keys(
            keys.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect(),
        ),
    };
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let answer = tokio::task::spawn_blocking(move || {
        let v = s.views();
        let mut runs = select(v.registry.experiments.values(), filter.as_ref(), clock);
        if q.complete_only {
            let expect = Expect {
                steps: q.expect_steps,
                epochs: q.expect_epochs,
                metric: Some(q.metric.clone()),
            };
            runs.retain(|r| check(r, &expect).is_empty());
        }
        if !runs.iter().any(|r| r.metrics.contains_key(&q.metric)) {
            let mut known: Vec<&String> = runs.iter().flat_map(|r| r.metrics.keys()).collect();
            known.sort();
            known.dedup();
            return Err(Error::not_found(format!(
                "no selected run has metric {:?}; metrics of the selected runs: {known:?}",
                q.metric
            )));
        }
        summarize(&runs, &q.metric, reduce, &by, &s.config.noise).map_err(Error::from)
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct IncompleteQuery {
    #[serde(rename = "where")]
    filter: Option<String>,
    metric: Option<String>,
    expect_steps: Option<i64>,
    expect_epochs: Option<f64>,
}

/// A run with incomplete curves.
#[derive(Serialize)]
pub struct Incomplete {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub problems: Vec<Problem>,
}

/// `GET /api/v1/analytics/incomplete?where=&metric=&expect_steps=&expect_epochs=`: runs whose curves stop short
/// of the expected length, have gaps, or restart.
pub async fn incomplete(
    State(s): State<Arc<Shared>>,
    q: std::result::Result<Query<IncompleteQuery>, QueryRejection>,
) -> Result<Json<Vec<Incomplete>>> {
    let Query(q) = q?;
    let filter = parse_filter(q.filter.as_deref())?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let expect = Expect {
        steps: q.expect_steps,
        epochs: q.expect_epochs,
        metric: q.metric,
    };
    let v = s.views();
    let out = select(v.registry.experiments.values(), filter.as_ref(), clock)
        .into_iter()
        .filter_map(|r| {
            let problems = check(r, &expect);
            (!problems.is_empty()).then(|| Incomplete {
                id: r.id.to_string(),
                name: r.name.clone(),
                status: r.shown_status(clock.now, clock.stale_after).as_str(),
                problems,
            })
        })
        .collect();
    Ok(Json(out))
}
