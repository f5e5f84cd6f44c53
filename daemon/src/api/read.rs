//! Read endpoints: views and the log, never a write.

use super::{Error, Result};
use crate::state::AppState;
use crate::views::registry::metric_key;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use labd_schemas::EventKind;
use labd_schemas::api::{
    ErrorRecord, EventPage, EventRecord, Experiment, ExperimentRow, FileState, Health, IngestState,
    MetricPage, Point, ShownStatus,
};
use labd_schemas::time::{micros_to_rfc3339, now_micros};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;

pub async fn health(State(s): State<Arc<AppState>>) -> Json<Health> {
    let log_seq = s.log.last_seq().unwrap_or(0);
    let v = s.views();
    let problem = s.log.problem();
    Json(Health {
        status: if problem.is_some() { "degraded" } else { "ok" }.into(),
        problem,
        version: env!("CARGO_PKG_VERSION").into(),
        log_seq,
        last_seq: v.applied,
        experiments: v.registry.experiments.len(),
        points: v.points,
        uptime_s: s.started.elapsed().as_secs_f64(),
        federation: s
            .federation
            .as_ref()
            .and_then(|f| f.health(&s.log, now_micros()).ok()),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    tag: Option<String>,
    /// Substring of the name (or `*`/`?` glob).
    name: Option<String>,
    /// A filter expression (see `filter.rs`): `optim.lr < 1e-3 and tag == "bert"`.
    #[serde(rename = "where")]
    filter: Option<String>,
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<ExperimentRow>>> {
    let Query(q) = q?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<ShownStatus>)
        .transpose()
        .map_err(Error::bad)?;
    let filter = q
        .filter
        .as_deref()
        .map(str::parse::<crate::filter::Filter>)
        .transpose()
        .map_err(|e| Error::bad(e.to_string()))?;
    let now = now_micros();
    let stale = s.config.stale_after.as_micros() as i64;
    let clock = crate::filter::Clock {
        now,
        stale_after: stale,
    };
    let v = s.views();
    let rows = v
        .registry
        .experiments
        .values()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, clock)))
        .filter(|r| q.tag.as_ref().is_none_or(|t| r.tags.contains(t)))
        .filter(|r| q.name.as_ref().is_none_or(|n| name_matches(n, &r.name)))
        .map(|r| r.row(now, stale))
        .filter(|row| status.is_none_or(|st| row.status == st))
        .collect();
    Ok(Json(rows))
}

/// `*` and `?` glob when the pattern has them, else a substring match.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        crate::filter::glob_match(pattern, name)
    } else {
        name.contains(pattern)
    }
}

pub async fn show(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Experiment>> {
    let v = s.views();
    let r = v
        .registry
        .get(&id)
        .ok_or_else(|| Error::not_found(format!("no experiment {id:?}")))?;
    Ok(Json(r.detail(
        now_micros(),
        s.config.stale_after.as_micros() as i64,
    )))
}

/// `GET /api/v1/display`: the display names of keys and values (`[display]` of the configuration), for clients
/// that lay out tables themselves (`labctl compare`).
pub async fn display(State(s): State<Arc<AppState>>) -> Json<crate::analytics::display::Display> {
    Json(s.config.display.clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// Comma-separated experiment ids.
    ids: String,
}

/// `GET /api/v1/compare?ids=a,b,...`: several experiments in one answer, with their configs' flattened keys and
/// the keys whose values differ between them (the web view's comparison; at most 1,000 runs).
pub async fn compare(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>> {
    let Query(q) = q?;
    let ids: Vec<&str> = q
        .ids
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > 1000 {
        return Err(Error::bad(
            "ids: give 1 to 1,000 comma-separated experiment ids",
        ));
    }
    let now = now_micros();
    let stale = s.config.stale_after.as_micros() as i64;
    let v = s.views();
    let mut runs = Vec::with_capacity(ids.len());
    let mut flats = Vec::with_capacity(ids.len());
    for id in &ids {
        let r = v
            .registry
            .get(id)
            .ok_or_else(|| Error::not_found(format!("no experiment {id:?}")))?;
        flats.push(crate::analytics::params::flatten(&r.config));
        runs.push(r.detail(now, stale));
    }
    let keys: std::collections::BTreeSet<&String> = flats.iter().flat_map(|f| f.keys()).collect();
    let differing: Vec<&String> = keys
        .iter()
        .copied()
        .filter(|k| flats.iter().any(|f| f.get(*k) != flats[0].get(*k)))
        .collect();
    Ok(Json(serde_json::json!({
        "runs": runs, "keys": keys, "differing": differing,
        "configs": flats,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// The newest this many (default 200, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/v1/experiments/{id}/messages?limit=`: the run's log messages, oldest first, read from the log
/// ranges that hold its events.
pub async fn messages(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: std::result::Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    let ranges = {
        let v = s.views();
        let r = v
            .registry
            .get(&id)
            .ok_or_else(|| Error::not_found(format!("no experiment {id:?}")))?;
        r.ranges.clone()
    };
    let log = s.log.clone();
    let out = tokio::task::spawn_blocking(move || -> std::result::Result<_, labd_log::LogError> {
        let mut found = std::collections::VecDeque::new();
        let mut total = 0u64;
        for (a, b) in ranges {
            log.scan(a, b, |seq, e| {
                if let labd_schemas::EventKind::MessageLogged(m) = &e.kind
                    && m.exp.as_str() == id
                {
                    total += 1;
                    found.push_back(serde_json::json!({
                        "seq": seq, "time": labd_schemas::time::micros_to_rfc3339(e.time),
                        "level": m.level, "text": m.text,
                    }));
                    if found.len() > limit {
                        found.pop_front();
                    }
                }
                true
            })?;
        }
        Ok(serde_json::json!({"total": total, "messages": found}))
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

/// Points of one metric, in log order, paged.
pub async fn points(
    State(s): State<Arc<AppState>>,
    Path((id, key)): Path<(String, String)>,
    q: std::result::Result<Query<PageQuery>, QueryRejection>,
) -> Result<axum::response::Response> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100_000).min(1_000_000);
    let (exp, ranges, total, window) = {
        let v = s.views();
        let r = v
            .registry
            .get(&id)
            .ok_or_else(|| Error::not_found(format!("no experiment {id:?}")))?;
        let stats = r.metrics.get(&key).ok_or_else(|| {
            let known: Vec<&str> = r.metrics.keys().map(String::as_str).collect();
            Error::not_found(format!(
                "experiment {id} has no metric {key:?}; it has {known:?}"
            ))
        })?;
        // The curve store holds the same points with the same bits; when it is caught up with the registry
        // the page is copied from its columns (under the read lock only for the copy) instead of read from the log.
        let window = v
            .curves_ready()
            .then(|| v.curves.series(&r.id, &key))
            .flatten()
            .and_then(|series| series.window(q.offset as usize, limit as usize));
        (r.id.clone(), r.ranges.clone(), stats.points, window)
    };
    if let Some(w) = window {
        let body = page_json(&exp, &key, total, q.offset, &w);
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response());
    }
    let log = s.log.clone();
    let want = key.clone();
    let exp2 = exp.clone();
    let points = tokio::task::spawn_blocking(
        move || -> std::result::Result<Vec<Point>, labd_log::LogError> {
            let mut out = Vec::new();
            let mut skipped = 0u64;
            let mut buf = String::new();
            for (from, to) in ranges {
                let mut full = false;
                log.scan(from, to, |_, e| {
                    let EventKind::MetricsLogged(m) = e.kind else {
                        return true;
                    };
                    if m.exp != exp2 {
                        return true;
                    }
                    for (name, v) in &m.values {
                        metric_key(m.split.as_deref(), name, &mut buf);
                        if buf != want {
                            continue;
                        }
                        if skipped < q.offset {
                            skipped += 1;
                            continue;
                        }
                        out.push(Point::new(
                            m.step,
                            m.epoch,
                            m.wall_time,
                            m.x.clone().into(),
                            *v,
                        ));
                        if out.len() as u64 >= limit {
                            full = true;
                            return false;
                        }
                    }
                    true
                })?;
                if full {
                    break;
                }
            }
            Ok(out)
        },
    )
    .await
    .map_err(Error::internal)??;
    Ok(Json(MetricPage {
        experiment: exp,
        metric: key,
        total,
        offset: q.offset,
        points,
    })
    .into_response())
}

/// A [`MetricPage`] of `w` as JSON, written straight from its columns: the same bytes serde_json writes for
/// the page built point by point (floats by zmij, as serde_json writes them; NaN and infinities as `null` with their `repr`), at a few
/// nanoseconds a number instead of a struct a point.
pub fn page_json(
    exp: &labd_schemas::ExperimentId,
    metric: &str,
    total: u64,
    offset: u64,
    w: &crate::views::curves::Window,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + w.value.len() * 72);
    let text = |out: &mut Vec<u8>, s: &str| {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    };
    let mut zmij = zmij::Buffer::new();
    let mut itoa = itoa::Buffer::new();
    let mut float = |out: &mut Vec<u8>, v: Option<f64>| match v {
        Some(v) if v.is_finite() => out.extend_from_slice(zmij.format_finite(v).as_bytes()),
        _ => out.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b"{\"experiment\":");
    text(&mut out, exp.as_str());
    out.extend_from_slice(b",\"metric\":");
    text(&mut out, metric);
    out.extend_from_slice(b",\"total\":");
    out.extend_from_slice(itoa.format(total).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(itoa.format(offset).as_bytes());
    out.extend_from_slice(b",\"points\":[");
    let axis = |c: &Option<Vec<f64>>, i: usize| c.as_ref().map(|c| c[i]).filter(|v| !v.is_nan());
    for i in 0..w.value.len() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"step\":");
        match w.step[i] {
            Some(s) => out.extend_from_slice(itoa.format(s).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"epoch\":");
        float(&mut out, axis(&w.epoch, i));
        out.extend_from_slice(b",\"wall_time\":");
        float(&mut out, axis(&w.wall, i));
        out.extend_from_slice(b",\"value\":");
        let v = w.value[i];
        float(&mut out, Some(v));
        if !v.is_finite() {
            out.extend_from_slice(if v.is_nan() {
                b",\"repr\":\"NaN\"" as &[u8]
            } else if v > 0.0 {
                b",\"repr\":\"Infinity\""
            } else {
                b",\"repr\":\"-Infinity\""
            });
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    from: u64,
    to: Option<u64>,
    limit: Option<usize>,
}

pub async fn events(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventPage>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let log = s.log.clone();
    let page = tokio::task::spawn_blocking(
        move || -> std::result::Result<EventPage, labd_log::LogError> {
            let last = log.last_seq()?;
            let to = q.to.unwrap_or(last).min(last);
            let events = log.read(q.from.max(1), to, limit)?;
            let next = events.last().map(|(s, _)| *s + 1).filter(|n| *n <= to);
            Ok(EventPage {
                events: events
                    .into_iter()
                    .map(|(seq, event)| EventRecord { seq, event })
                    .collect(),
                next,
            })
        },
    )
    .await
    .map_err(Error::internal)??;
    Ok(Json(page))
}

#[derive(Deserialize)]
pub struct TailQuery {
    /// First sequence number to send; default: only what comes next.
    from: Option<u64>,
    /// Only events of these kinds (comma-separated tags, e.g. `alert_fired,status_changed`).
    kind: Option<String>,
}

/// Server-sent events: every committed event from `from` on, as it is committed.
pub async fn tail(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<TailQuery>, QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let Query(q) = q?;
    let mut seq_rx = s.views.applied();
    let start = q
        .from
        .unwrap_or_else(|| *seq_rx.borrow_and_update() + 1)
        .max(1);
    let log = s.log.clone();
    let stopping = s.stopping.clone();
    let kinds: Option<Arc<Vec<String>>> = q
        .kind
        .as_deref()
        .map(|k| Arc::new(k.split(',').map(|t| t.trim().to_string()).collect()));
    let state = (start, seq_rx, log, stopping);
    let stream = futures_util::stream::unfold(state, move |(next, mut rx, log, mut stopping)| {
        let kinds = kinds.clone();
        async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                let last = *rx.borrow_and_update();
                if last >= next {
                    let log2 = log.clone();
                    let batch = tokio::task::spawn_blocking(move || log2.read(next, last, 1000))
                        .await
                        .ok()?
                        .ok()?;
                    let upto = batch.last().map(|(s, _)| *s + 1).unwrap_or(next);
                    let items: Vec<std::result::Result<SseEvent, Infallible>> = batch
                        .into_iter()
                        .filter(|(_, e)| {
                            kinds
                                .as_ref()
                                .is_none_or(|k| k.iter().any(|t| t == e.kind.tag()))
                        })
                        .map(|(seq, event)| {
                            let data = serde_json::to_string(&EventRecord { seq, event })
                                .unwrap_or_default();
                            Ok(SseEvent::default().id(seq.to_string()).data(data))
                        })
                        .collect();
                    return Some((futures_util::stream::iter(items), (upto, rx, log, stopping)));
                }
                // Wait for news, or end the stream when the daemon stops (so shutdown need not wait for clients).
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    _ = stopping.changed() => return None,
                }
            }
        }
    });
    use futures_util::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}

pub async fn ingest_state(State(s): State<Arc<AppState>>) -> Result<Json<IngestState>> {
    let log = s.log.clone();
    let cursors = tokio::task::spawn_blocking(move || log.cursors())
        .await
        .map_err(Error::internal)??;
    let (errors, totals) = {
        let v = s.views();
        (v.ingest.errors_total, v.ingest.files.clone())
    };
    let mut files = Vec::with_capacity(cursors.len());
    let mut lag_bytes = 0;
    // Runs that span files keep their state among the cursors; they are not files.
    for (path, c) in cursors
        .into_iter()
        .filter(|(k, _)| !k.starts_with(labd_sources::RUN_PREFIX))
    {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(c.size);
        let lag = if c.dead.is_some() {
            0
        } else {
            size.saturating_sub(c.offset)
        };
        lag_bytes += lag;
        files.push(FileState {
            errors: totals.get(&path).map_or(c.errors, |t| t.errors),
            path,
            offset: c.offset,
            size,
            lag,
            lines: c.line,
            dead: c.dead,
            updated: micros_to_rfc3339(c.updated),
        });
    }
    Ok(Json(IngestState {
        watched: s
            .config
            .watch
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        files,
        errors,
        lag_bytes,
    }))
}

#[derive(Deserialize)]
pub struct ErrorsQuery {
    limit: Option<usize>,
    /// Only problems of files whose path contains this.
    path: Option<String>,
}

pub async fn errors(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<ErrorsQuery>, QueryRejection>,
) -> Result<Json<Vec<ErrorRecord>>> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100);
    let v = s.views();
    let mut out: Vec<ErrorRecord> = v
        .ingest
        .recent
        .iter()
        .rev()
        .filter(|(_, _, e)| q.path.as_ref().is_none_or(|p| e.path.contains(p.as_str())))
        .take(limit)
        .map(|(seq, time, e)| ErrorRecord {
            seq: *seq,
            time: micros_to_rfc3339(*time),
            path: e.path.clone(),
            line: e.line,
            severity: e.severity,
            reason: e.reason.clone(),
        })
        .collect();
    out.reverse();
    Ok(Json(out))
}

pub async fn job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> Result<Json<crate::jobs::JobState>> {
    s.jobs
        .get(id)
        .map(Json)
        .ok_or_else(|| Error::not_found(format!("no job {id}")))
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn names_match_by_substring_or_glob() {
        assert!(name_matches("base", "baseline"));
        assert!(name_matches("b*e", "baseline"));
        assert!(!name_matches("b*x", "baseline"));
        assert!(name_matches("?aseline", "baseline"));
        assert!(name_matches("*line", "baseline"));
        assert!(!name_matches(
            "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            &"a".repeat(5000)
        ));
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;
    use crate::views::curves::Window;

    /// The page written from columns is the page serde_json writes, byte for byte.
    #[test]
    fn a_page_from_columns_is_the_serde_page() {
        let w = Window {
            step: vec![Some(0), None, Some(-3), Some(i64::MAX), Some(4)],
            value: vec![0.683147, f64::NAN, f64::INFINITY, -0.0, 1e-300],
            epoch: Some(vec![0.0, f64::NAN, 0.5, 1e21, 3.0]),
            wall: None,
        };
        let exp = labd_schemas::ExperimentId("run \"quoted\" é".into());
        let serde = serde_json::to_vec(&MetricPage {
            experiment: exp.clone(),
            metric: "val/loss".into(),
            total: 7,
            offset: 2,
            points: w.points(),
        })
        .unwrap();
        let ours = page_json(&exp, "val/loss", 7, 2, &w);
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(serde).unwrap()
        );
    }

    proptest::proptest! {
        /// Any values, axes and steps: the same bytes as serde_json.
        #[test]
        fn any_page_is_the_serde_page(
            rows in proptest::collection::vec(
                (proptest::option::of(proptest::num::i64::ANY), proptest::num::f64::ANY,
                 proptest::num::f64::ANY, proptest::num::f64::ANY),
                0..20,
            )
        ) {
            let w = Window {
                step: rows.iter().map(|r| r.0).collect(),
                value: rows.iter().map(|r| r.1).collect(),
                epoch: Some(rows.iter().map(|r| r.2).collect()),
                wall: Some(rows.iter().map(|r| r.3).collect()),
            };
            let exp = labd_schemas::ExperimentId("e".into());
            let serde = serde_json::to_vec(&MetricPage {
                experiment: exp.clone(),
                metric: "m".into(),
                total: rows.len() as u64,
                offset: 0,
                points: w.points(),
            })
            .unwrap();
            proptest::prop_assert_eq!(page_json(&exp, "m", rows.len() as u64, 0, &w), serde);
        }
    }
}
