//! `GET /api/v1/table`: the experiments table the web view pages through: runs a filter selects, with the
//! hyperparameters that vary among them as columns and chosen metrics' last values, sorted and paged on the
//! server so that 10,000 runs cost the browser one page.

use super::{Error, Result};
use crate::analytics::params::{flatten, order, variation};
use crate::filter::{Clock, Filter};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use labd_schemas::time::now_micros;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many hyperparameter columns (the first by key order).
const MAX_PARAMS: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    #[serde(rename = "where")]
    filter: Option<String>,
    /// `name`, `status`, `started`, `ended`, `id`, `param:<key>` or `metric:<key>`; default: newest first.
    sort: Option<String>,
    #[serde(default)]
    desc: bool,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    /// Comma-separated metric keys whose last values to show; default: the three most common.
    metrics: Option<String>,
}

fn cmp_opt(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => order(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

pub async fn table(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<TableQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(str::parse::<Filter>)
        .transpose()
        .map_err(|e| Error::bad(e.to_string()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let stale = s.config.stale_after.as_micros() as i64;
    let now = now_micros();
    let clock = Clock {
        now,
        stale_after: stale,
    };
    let noise = s.config.noise.clone();
    let display = s.config.display.clone();
    let answer = tokio::task::spawn_blocking(move || -> Result<Value> {
        let v = s.views();
        let runs: Vec<_> = v
            .registry
            .experiments
            .values()
            .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, clock)))
            .collect();
        let flat: Vec<BTreeMap<String, Value>> = runs.iter().map(|r| flatten(&r.config)).collect();
        let params: Vec<String> = variation(&flat, &noise)
            .varying
            .into_iter()
            .map(|k| k.key)
            .take(MAX_PARAMS)
            .collect();
        // Every metric of the selected runs, most common first (for pickers).
        let all_metrics: Vec<String> = {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &runs {
                for k in r.metrics.keys() {
                    *count.entry(k.as_str()).or_default() += 1;
                }
            }
            let mut common: Vec<(&str, usize)> = count.into_iter().collect();
            common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let mut all: Vec<String> = common.into_iter().map(|(k, _)| k.to_string()).collect();
            // Then the numbers of the final summaries (`final.test_f1`), which sort and show like metrics.
            let mut summaries: Vec<String> = runs.iter().flat_map(|r| r.summary_keys()).collect();
            summaries.sort();
            summaries.dedup();
            summaries.retain(|k| !all.contains(k));
            all.extend(summaries);
            all
        };
        let metrics: Vec<String> = match q.metrics.as_deref().filter(|m| !m.trim().is_empty()) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect(),
            None => all_metrics.iter().take(3).cloned().collect(),
        };
        let mut order_idx: Vec<usize> = (0..runs.len()).collect();
        let sort = q.sort.as_deref().unwrap_or("");
        let last = |i: usize, key: &str| -> Option<Value> { runs[i].value(key).map(|x| json!(x)) };
        let flat_ref = &flat;
        type By<'a> = Box<dyn Fn(&usize, &usize) -> Ordering + 'a>;
        let by: By = if let Some(key) = sort.strip_prefix("param:") {
            let key = key.to_string();
            Box::new(move |a: &usize, b: &usize| cmp_opt(flat_ref[*a].get(&key), flat_ref[*b].get(&key)))
        } else if let Some(key) = sort.strip_prefix("metric:") {
            let key = key.to_string();
            Box::new(move |a: &usize, b: &usize| cmp_opt(last(*a, &key).as_ref(), last(*b, &key).as_ref()))
        } else {
            match sort {
                "name" => Box::new(|a: &usize, b: &usize| runs[*a].name.cmp(&runs[*b].name)),
                "id" => Box::new(|a: &usize, b: &usize| runs[*a].id.cmp(&runs[*b].id)),
                "status" => Box::new(|a: &usize, b: &usize| {
                    runs[*a]
                        .shown_status(now, stale)
                        .as_str()
                        .cmp(runs[*b].shown_status(now, stale).as_str())
                }),
                "ended" => Box::new(|a: &usize, b: &usize| runs[*a].ended.cmp(&runs[*b].ended)),
                "" | "started" => Box::new(|a: &usize, b: &usize| runs[*a].started.cmp(&runs[*b].started)),
                other => {
                    return Err(Error::bad(format!(
                        "sort {other:?}: use name, status, started, ended, id, param:<key> or metric:<key>"
                    )));
                }
            }
        };
        // Default: newest first.
        let desc = if sort.is_empty() { true } else { q.desc };
        order_idx.sort_by(|a, b| {
            let o = by(a, b).then_with(|| runs[*a].id.cmp(&runs[*b].id));
            if desc { o.reverse() } else { o }
        });
        let total = order_idx.len();
        let rows: Vec<Value> = order_idx
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .map(|i| {
                let r = runs[i];
                let p: Map<String, Value> = params
                    .iter()
                    .filter_map(|k| flat[i].get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                let m: Map<String, Value> = metrics
                    .iter()
                    .map(|k| (k.clone(), last(i, k).unwrap_or(Value::Null)))
                    .collect();
                // Values shown under another text (`[display.values]`), where one is configured.
                let shown: Map<String, Value> = p
                    .iter()
                    .filter(|(k, _)| display.values.contains_key(*k))
                    .map(|(k, v)| (k.clone(), Value::String(display.value(k, v))))
                    .collect();
                json!({
                    "id": r.id, "name": r.name, "status": r.shown_status(now, stale), "tags": r.tags,
                    "started": r.started, "ended": r.ended, "points": r.points(),
                    "params": p, "metrics": m, "shown": shown,
                })
            })
            .collect();
        // Column names as configured (`[display.names]`); without one, the key itself.
        let names: Map<String, Value> = params
            .iter()
            .chain(metrics.iter())
            .map(|k| {
                let shown = display.names.get(k).cloned().unwrap_or_else(|| k.clone());
                (k.clone(), Value::String(shown))
            })
            .collect();
        Ok(json!({
            "total": total, "offset": q.offset, "limit": limit,
            "params": params, "metrics": metrics, "all_metrics": all_metrics, "rows": rows,
            "names": names,
        }))
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(answer))
}
