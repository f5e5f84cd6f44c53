//! Analytics endpoints: varying hyperparameters and grouped summaries over the runs a filter selects.

use super::{Error, Result};
use crate::analytics::AnalyticsError;
use crate::analytics::complete::{Expect, Problem, check};
use crate::analytics::params::{Variation, flatten, variation};
use crate::analytics::reduce::{Measure, Reduce};
use crate::analytics::summary::{By, add_columns, summarize};
use crate::filter::{Clock, Filter};
use crate::state::AppState;
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

/// The views a query reads: the live ones, or fresh ones built as of a past point.
enum ViewsRef<'a> {
    Live(std::sync::RwLockReadGuard<'a, crate::views::Views>),
    Past(Box<crate::views::Views>),
}

impl std::ops::Deref for ViewsRef<'_> {
    type Target = crate::views::Views;
    fn deref(&self) -> &crate::views::Views {
        match self {
            ViewsRef::Live(g) => g,
            ViewsRef::Past(v) => v,
        }
    }
}

/// The live views, or (with `as_of`, a sequence number or RFC 3339 time) the views as they were then, replayed
/// from the log. Blocking: call from `spawn_blocking`.
fn views_for<'a>(s: &'a AppState, as_of: Option<&str>) -> Result<ViewsRef<'a>> {
    match as_of {
        None => Ok(ViewsRef::Live(s.views())),
        Some(point) => crate::replay::views_as_of(&s.log, point)
            .map(|v| ViewsRef::Past(Box::new(v)))
            .map_err(|e| match e {
                crate::replay::ReplayError::AsOf(_) => Error::bad(e.to_string()),
                other => Error::internal(other),
            }),
    }
}

/// A table as Parquet or CSV bytes, for downloads.
fn write_table(df: &mut polars::prelude::DataFrame, parquet: bool) -> Result<Vec<u8>> {
    use polars::prelude::{CsvWriter, ParquetWriter, SerWriter};
    let mut out = Vec::new();
    if parquet {
        ParquetWriter::new(&mut out)
            .finish(df)
            .map_err(Error::internal)?;
    } else {
        CsvWriter::new(&mut out)
            .finish(df)
            .map_err(Error::internal)?;
    }
    Ok(out)
}

/// A table written by [`write_table`] as an answer, with its content type.
fn table_response(bytes: Vec<u8>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let content_type = if bytes.starts_with(b"PAR1") {
        "application/vnd.apache.parquet"
    } else {
        "text/csv"
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response()
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
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
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
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<VaryingQuery>, QueryRejection>,
) -> Result<Json<VaryingAnswer>> {
    let Query(q) = q?;
    let filter = parse_filter(q.filter.as_deref())?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let answer = tokio::task::spawn_blocking(move || -> Result<VaryingAnswer> {
        let v = views_for(&s, q.as_of.as_deref())?;
        let runs = select(v.registry.experiments.values(), filter.as_ref(), clock);
        let flat: Vec<_> = runs.iter().map(|r| flatten(&r.config)).collect();
        Ok(VaryingAnswer {
            runs: runs.len(),
            variation: variation(&flat, &s.config.noise),
        })
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
    metric: String,
    /// The reduction; without it, the metric's default (`[reductions]`, else `last`).
    reduce: Option<String>,
    /// Further columns, comma-separated `METRIC=REDUCE` (or `METRIC` for its default reduction).
    also: Option<String>,
    /// `varying` (default) or comma-separated dot keys; empty for one group of all runs.
    by: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Leave out runs whose curve of this metric is incomplete (short, gaps, restarted).
    #[serde(default)]
    complete_only: bool,
    /// Sort the groups by a figure (`mean`, `count`, ...) or a grouping key.
    sort: Option<String>,
    #[serde(default)]
    desc: bool,
    /// `json` (default), `csv` or `parquet`.
    format: Option<String>,
    expect_steps: Option<i64>,
    expect_epochs: Option<f64>,
}

/// `GET /api/v1/analytics/summary?metric=&reduce=&by=&where=`.
pub async fn summary(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = q?;
    let format = q.format.clone().unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "parquet") {
        return Err(Error::bad(format!(
            "unknown format {format:?}: use json, csv or parquet"
        )));
    }
    let filter = parse_filter(q.filter.as_deref())?;
    let reduce: Reduce = match q.reduce.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => r.parse()?,
        _ => s.config.reductions.of(&q.metric),
    };
    let measures = q
        .also
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|m| !m.trim().is_empty())
        .map(|m| Measure::parse(m, &s.config.reductions))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let explicit_reduce = q.reduce.as_deref().is_some_and(|r| !r.trim().is_empty());
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
        let v = views_for(&s, q.as_of.as_deref())?;
        let mut runs = select(v.registry.experiments.values(), filter.as_ref(), clock);
        let mut q = q;
        let (mut reduce, mut measures) = (reduce, measures);
        // A glob (`val/*`): every matching metric, the first as the summary's, the others as columns.
        if q.metric.contains(['*', '?']) {
            let mut matched: Vec<String> = runs
                .iter()
                .flat_map(|r| r.metrics.keys())
                .filter(|k| crate::filter::glob_match(&q.metric, k))
                .cloned()
                .collect();
            matched.sort();
            matched.dedup();
            let Some((first, rest)) = matched.split_first() else {
                return Err(Error::not_found(format!(
                    "no metric of the selected runs matches {:?}",
                    q.metric
                )));
            };
            let of = |k: &str| {
                if explicit_reduce {
                    reduce.clone()
                } else {
                    s.config.reductions.of(k)
                }
            };
            let extra: Vec<Measure> = rest
                .iter()
                .map(|k| Measure {
                    metric: k.clone(),
                    reduce: of(k),
                })
                .collect();
            reduce = of(first);
            measures.splice(0..0, extra);
            q.metric = first.clone();
        }
        let curves_needed =
            reduce.needs_curves() || measures.iter().any(|m| m.reduce.needs_curves());
        if q.complete_only {
            let expect = Expect {
                steps: q.expect_steps,
                epochs: q.expect_epochs,
                metric: Some(q.metric.clone()),
            };
            runs.retain(|r| check(r, &expect).is_empty());
        }
        if !runs.iter().any(|r| r.has_value(&q.metric)) {
            let mut known: Vec<String> = runs.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
            known.sort();
            known.dedup();
            let mut summaries: Vec<String> = runs.iter().flat_map(|r| r.summary_keys()).collect();
            summaries.sort();
            summaries.dedup();
            return Err(Error::not_found(format!(
                "no selected run has metric or summary value {:?}; metrics of the selected runs: {known:?}; summary values: {summaries:?}",
                q.metric
            )));
        }
        let curves = if curves_needed {
            if !v.curves_ready() {
                return Err(Error(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "this reduction needs the curve store, which is warming up after start; try again in a moment".into(),
                ));
            }
            Some(&v.curves)
        } else {
            None
        };
        let mut summary = summarize(&runs, &q.metric, reduce, &by, &s.config.noise, curves)
            .map(|summary| crate::analytics::table::with_display(summary, &s.config.display))?;
        add_columns(&mut summary, &runs, &measures, &s.config.noise, curves)?;
        if let Some(key) = &q.sort {
            crate::analytics::table::sort_groups(&mut summary, key, q.desc)?;
        }
        Ok(summary)
    })
    .await
    .map_err(Error::internal)??;
    if format == "json" {
        return Ok(Json(answer).into_response());
    }
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let mut df = crate::analytics::table::frame(&answer).map_err(Error::internal)?;
        write_table(&mut df, format == "parquet")
    })
    .await
    .map_err(Error::internal)??;
    Ok(table_response(bytes))
}

#[derive(Deserialize)]
pub struct IncompleteQuery {
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
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
    State(s): State<Arc<AppState>>,
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
    let as_of = q.as_of;
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<Incomplete>> {
        let v = views_for(&s, as_of.as_deref())?;
        Ok(
            select(v.registry.experiments.values(), filter.as_ref(), clock)
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
                .collect(),
        )
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct CurvesQuery {
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
    metric: String,
    /// `step` (default), `epoch`, `wall_time`, `index` or a custom axis.
    #[serde(default = "default_axis")]
    x: String,
    /// Comma-separated run ids (else the runs `where` selects that have the metric).
    ids: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Group the runs (`varying` or comma-separated keys) and answer each group's mean and band.
    group: Option<String>,
    /// At most this many points per curve, shape kept (0: every point).
    #[serde(default = "default_points")]
    points: usize,
    /// Only points with x at least this (a zoomed view asks for its range at full resolution).
    from: Option<f64>,
    /// Only points with x at most this.
    to: Option<f64>,
}

fn default_axis() -> String {
    "step".into()
}

fn default_points() -> usize {
    500
}

/// One run's curve: `[x, y]` pairs (y null where not finite).
#[derive(Serialize)]
pub struct RunCurve {
    pub id: String,
    pub name: String,
    /// The curve's metric, when the query named several with a glob (`val/*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Points before downsampling.
    pub total: usize,
    pub points: Vec<(f64, Option<f64>)>,
}

/// One group's curve.
#[derive(Serialize)]
pub struct GroupCurve {
    #[serde(flatten)]
    pub keys: std::collections::BTreeMap<String, serde_json::Value>,
    pub runs: Vec<String>,
    /// The keys' values as tables show them (`[display.values]`, else the value itself).
    pub shown: std::collections::BTreeMap<String, String>,
    pub points: Vec<crate::analytics::band::BandPoint>,
}

#[derive(Serialize)]
pub struct CurvesAnswer {
    pub metric: String,
    pub x: String,
    /// Grouping keys (group mode).
    pub by: Vec<String>,
    pub runs: Vec<RunCurve>,
    pub groups: Vec<GroupCurve>,
    /// Legend names of the metrics and grouping keys (`[display.names]`; a key without one: its last dot
    /// segment; a metric without one: itself).
    pub names: std::collections::BTreeMap<String, String>,
}

/// `GET /api/v1/analytics/curves?metric=&x=&ids=&where=&group=&points=&from=&to=`: curves of runs or of groups of runs,
/// on a chosen x-axis, downsampled keeping each bucket's first, last, lowest and highest point.
pub async fn curves(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<CurvesQuery>, QueryRejection>,
) -> Result<Json<CurvesAnswer>> {
    use crate::views::curves::{Axis, downsample};
    let Query(q) = q?;
    let axis: Axis = q.x.parse().map_err(Error::bad)?;
    let filter = parse_filter(q.filter.as_deref())?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let answer = tokio::task::spawn_blocking(move || -> Result<CurvesAnswer> {
        let v = views_for(&s, q.as_of.as_deref())?;
        if !v.curves_ready() {
            return Err(Error(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the curve store is warming up after start ({} of {} events); try again in a moment",
                    v.curves.applied, v.applied
                ),
            ));
        }
        let runs: Vec<&Record> = match &q.ids {
            Some(ids) => ids
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(|id| v.registry.get(id).ok_or_else(|| Error::not_found(format!("no experiment {id:?}"))))
                .collect::<Result<_>>()?,
            None => select(v.registry.experiments.values(), filter.as_ref(), clock)
                .into_iter()
                .filter(|r| r.metrics.keys().any(|k| crate::filter::glob_match(&q.metric, k)))
                .collect(),
        };
        // A glob (`val/*`) names every matching metric: one curve per run and metric.
        let glob = q.metric.contains(['*', '?']);
        if glob && q.group.is_some() {
            return Err(Error::bad(format!(
                "a group's curve is of one metric; {:?} is a glob: name one metric",
                q.metric
            )));
        }
        let (from, to) = (q.from.unwrap_or(f64::NEG_INFINITY), q.to.unwrap_or(f64::INFINITY));
        let pairs_of_metric = |r: &Record, metric: &str| {
            let mut p = v.curves.series(&r.id, metric).map(|s| s.pairs(&axis)).unwrap_or_default();
            if from > f64::NEG_INFINITY || to < f64::INFINITY {
                p.retain(|(x, _)| *x >= from && *x <= to);
            }
            p
        };
        let pairs_of = |r: &Record| pairs_of_metric(r, &q.metric);
        let thin = |p: Vec<(f64, f64)>| if q.points == 0 { p } else { downsample(&p, q.points) };
        let display = &s.config.display;
        let metric_name = |m: &str| display.names.get(m).cloned().unwrap_or_else(|| m.to_string());
        let mut answer = CurvesAnswer {
            metric: q.metric.clone(),
            x: q.x.clone(),
            by: Vec::new(),
            runs: Vec::new(),
            groups: Vec::new(),
            names: [(q.metric.clone(), metric_name(&q.metric))].into(),
        };
        match q.group.as_deref() {
            None => {
                for r in runs {
                    let metrics: Vec<&String> = if glob {
                        r.metrics.keys().filter(|k| crate::filter::glob_match(&q.metric, k)).collect()
                    } else {
                        vec![&q.metric]
                    };
                    for m in metrics {
                        let pairs = pairs_of_metric(r, m);
                        let total = pairs.len();
                        let points = thin(pairs).into_iter().map(|(x, y)| (x, y.is_finite().then_some(y))).collect();
                        let metric = glob.then(|| m.clone());
                        answer.names.entry(m.clone()).or_insert_with(|| metric_name(m));
                        answer.runs.push(RunCurve { id: r.id.to_string(), name: r.name.clone(), metric, total, points });
                    }
                }
            }
            Some(group) => {
                let flat: Vec<_> = runs.iter().map(|r| flatten(&r.config)).collect();
                let keys: Vec<String> = if group == "varying" || group.is_empty() {
                    variation(&flat, &s.config.noise).varying.into_iter().map(|k| k.key).collect()
                } else {
                    group.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect()
                };
                let mut groups: Vec<(Vec<serde_json::Value>, Vec<usize>)> = Vec::new();
                for (i, f) in flat.iter().enumerate() {
                    let values: Vec<serde_json::Value> = keys.iter().map(|k| f.get(k).cloned().unwrap_or_default()).collect();
                    match groups.iter_mut().find(|(v, _)| *v == values) {
                        Some((_, members)) => members.push(i),
                        None => groups.push((values, vec![i])),
                    }
                }
                groups.sort_by(|a, b| {
                    a.0.iter().zip(&b.0).map(|(x, y)| crate::analytics::params::order(x, y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
                });
                for (values, members) in groups {
                    let pairs: Vec<(f64, f64)> = members.iter().flat_map(|&i| pairs_of(runs[i])).collect();
                    let band = crate::analytics::band::band(&pairs).map_err(Error::internal)?;
                    let kept = thin(band.iter().map(|b| (b.x, b.mean)).collect());
                    let mut kept_x = kept.iter().map(|p| p.0).peekable();
                    let points = band
                        .into_iter()
                        .filter(|b| {
                            while kept_x.peek().is_some_and(|x| *x < b.x) {
                                kept_x.next();
                            }
                            kept_x.peek() == Some(&b.x)
                        })
                        .collect();
                    let shown = keys.iter().zip(&values).map(|(k, v)| (k.clone(), display.value(k, v))).collect();
                    answer.groups.push(GroupCurve {
                        keys: keys.iter().cloned().zip(values).collect(),
                        shown,
                        runs: members.iter().map(|&i| runs[i].id.to_string()).collect(),
                        points,
                    });
                }
                answer.names.extend(keys.iter().map(|k| (k.clone(), display.name(k))));
                answer.by = keys;
            }
        }
        Ok(answer)
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    /// A keyword (case-insensitive), or with `regex=true` a regular expression.
    pattern: String,
    #[serde(default)]
    regex: bool,
    /// The dot key to group runs by (default: one group of all).
    by: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Parts of the run the trend is counted in (default 10).
    buckets: Option<usize>,
    /// Only messages of this level (`info`, `warning`, ...).
    level: Option<String>,
}

/// `GET /api/v1/analytics/messages?pattern=&regex=&by=&where=&buckets=&level=`: how often the selected runs'
/// messages mention a keyword, per value of a hyperparameter, and the trend over the runs.
pub async fn messages(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>> {
    use crate::analytics::messages::{Pattern, RunMessages, analyze, position};
    let Query(q) = q?;
    let pattern = Pattern::new(&q.pattern, q.regex)?;
    let filter = parse_filter(q.filter.as_deref())?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let answer = tokio::task::spawn_blocking(move || -> Result<serde_json::Value> {
        // The runs, their key and where their events are; then their messages, read from the log.
        // Each run's id, its key's value, and the sequence ranges of its events.
        type Selected = (String, serde_json::Value, Vec<(u64, u64)>);
        let selected: Vec<Selected> = {
            let v = s.views();
            select(v.registry.experiments.values(), filter.as_ref(), clock)
                .into_iter()
                .map(|r| {
                    let key = q
                        .by
                        .as_ref()
                        .and_then(|k| flatten(&r.config).remove(k))
                        .unwrap_or(serde_json::Value::Null);
                    (r.id.0.clone(), key, r.ranges.clone())
                })
                .collect()
        };
        let mut runs = Vec::with_capacity(selected.len());
        for (id, key, ranges) in selected {
            let mut said = Vec::new();
            for (a, b) in ranges {
                s.log
                    .scan(a, b, |_, e| {
                        if let labd_schemas::EventKind::MessageLogged(m) = &e.kind
                            && m.exp.0 == id
                            && q.level.as_ref().is_none_or(|l| *l == m.level)
                        {
                            said.push((position(&m.extra), pattern.matches(&m.text)));
                        }
                        true
                    })
                    .map_err(Error::internal)?;
            }
            runs.push(RunMessages {
                id,
                key,
                messages: said,
            });
        }
        let groups = analyze(&runs, q.buckets.unwrap_or(10));
        Ok(serde_json::json!({
            "pattern": q.pattern, "regex": q.regex, "by": q.by, "runs": runs.len(),
            "per_run": runs.iter().map(|r| {
                let matches = r.messages.iter().filter(|m| m.1).count();
                serde_json::json!({"id": r.id, "key": r.key, "messages": r.messages.len(), "matches": matches})
            }).collect::<Vec<_>>(),
            "groups": groups,
        }))
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct RunsTableQuery {
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// `csv` (default) or `parquet`.
    format: Option<String>,
}

/// `GET /api/v1/analytics/runs?where=&format=csv|parquet`: the wide runs table, one column per config key,
/// metric (last value) and summary number.
pub async fn runs_table(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<RunsTableQuery>, QueryRejection>,
) -> Result<axum::response::Response> {
    let Query(q) = q?;
    let format = q.format.clone().unwrap_or_else(|| "csv".into());
    if !matches!(format.as_str(), "csv" | "parquet") {
        return Err(Error::bad(format!(
            "unknown format {format:?}: use csv or parquet"
        )));
    }
    let filter = parse_filter(q.filter.as_deref())?;
    let now = now_micros();
    let stale = s.config.stale_after.as_micros() as i64;
    let clock = Clock {
        now,
        stale_after: stale,
    };
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let v = views_for(&s, q.as_of.as_deref())?;
        let runs = select(v.registry.experiments.values(), filter.as_ref(), clock);
        let mut df = crate::analytics::wide::frame(&runs, now, stale).map_err(Error::internal)?;
        write_table(&mut df, format == "parquet")
    })
    .await
    .map_err(Error::internal)??;
    Ok(table_response(bytes))
}
