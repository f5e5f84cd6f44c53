//! Push mode: the facts of the run log, posted over HTTP, checked with the same parser as files and appended
//! through the same writer. A batch is all-or-nothing: any bad row rejects it with the row and the reason.

use super::{Error, Result};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use labd_log::writer::Batch;
use labd_schemas::api::Pushed;
use labd_schemas::runlog::{RunLogLine, from_object};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, ExperimentId, Source};
use labd_sources::Context;
use labd_sources::runlog::{create_experiment, fact};
use serde_json::Value;
use std::sync::Arc;

type Body = std::result::Result<Json<Value>, JsonRejection>;

/// Parses a body holding one object, an array of objects, or `{"rows": [...]}`, as lines of `kind`.
fn lines(body: Value, kind: &str) -> Result<Vec<RunLogLine>> {
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut m) if m.len() == 1 && m.get("rows").is_some_and(Value::is_array) => {
            match m.remove("rows") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(Error::bad(format!(
                "expected a JSON object or an array of objects, got {other}"
            )));
        }
    };
    let many = items.len() > 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = if many {
                format!("row {i}: ")
            } else {
                String::new()
            };
            let Value::Object(mut obj) = item else {
                return Err(Error::bad(format!("{at}expected a JSON object")));
            };
            match obj.get("kind") {
                None => {
                    obj.insert("kind".into(), Value::String(kind.into()));
                }
                Some(Value::String(k)) if k == kind => {}
                Some(other) => {
                    return Err(Error::bad(format!(
                        "{at}\"kind\" is {other}, but this endpoint takes {kind:?}"
                    )));
                }
            }
            let parsed = from_object(obj).map_err(|e| Error::bad(format!("{at}{e}")))?;
            if let Some(p) = parsed.problems.first() {
                return Err(Error::bad(format!("{at}{p}")));
            }
            Ok(parsed.line)
        })
        .collect()
}

fn http_source(uri: &Uri) -> Source {
    Source::Http {
        request: format!("POST {}", uri.path()),
    }
}

async fn append(
    s: &AppState,
    id: ExperimentId,
    events: Vec<Event>,
) -> Result<(StatusCode, Json<Pushed>)> {
    let n = events.len() as u64;
    let c = s
        .appender
        .append_async(Batch {
            events,
            cursors: vec![],
            positions: Vec::new(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Pushed {
            id,
            seq: c.last,
            events: n,
        }),
    ))
}

/// `POST /api/v1/experiments`: a `run` line's fields; answers the new id.
pub async fn create(
    State(s): State<Arc<AppState>>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    let Json(body) = body?;
    if body.is_array() {
        return Err(Error::bad("expected one JSON object describing the run"));
    }
    let Some(RunLogLine::Run(run)) = lines(body, "run")?.pop() else {
        return Err(Error::bad("expected one JSON object describing the run"));
    };
    let (id, event) = {
        let ids = s.ids.clone();
        let mut unique = |id| ids.unique(id);
        let mut ctx = Context {
            path: "http",
            default_name: "run",
            host: &s.config.host,
            now: now_micros(),
            max_line: usize::MAX,
            take_unterminated: true,
            ids: &mut unique,
            id_clock: s.config.ingest.id_clock,
            runs: &mut labd_sources::Runs::default(),
            sidecars: &[],
        };
        create_experiment(run, &mut ctx, http_source(&uri))
    };
    append(&s, id, vec![event]).await
}

async fn facts(
    s: Arc<AppState>,
    id: String,
    uri: Uri,
    body: Body,
    kind: &str,
) -> Result<(StatusCode, Json<Pushed>)> {
    let Json(body) = body?;
    let exp = {
        let v = s.views();
        let r = v
            .registry
            .get(&id)
            .ok_or_else(|| Error::not_found(format!("no experiment {id:?}")))?;
        if r.foreign {
            return Err(Error(
                StatusCode::CONFLICT,
                format!(
                    "experiment {id} was recorded on host {}: log to that host's labd (this one holds it through the federation)",
                    r.host
                ),
            ));
        }
        r.id.clone()
    };
    let now = now_micros();
    let events: Vec<Event> = lines(body, kind)?
        .into_iter()
        .filter_map(|line| fact(exp.clone(), line))
        .map(|k| Event::new(now, http_source(&uri), k))
        .collect();
    if events.is_empty() {
        return Err(Error::bad("nothing to record: the body holds no rows"));
    }
    append(&s, exp, events).await
}

/// `POST /api/v1/experiments/{id}/metrics`: one metrics row or many.
pub async fn metrics(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    facts(s, id, uri, body, "metrics").await
}

pub async fn messages(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    facts(s, id, uri, body, "message").await
}

pub async fn summary(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    facts(s, id, uri, body, "summary").await
}

pub async fn artifact(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    facts(s, id, uri, body, "artifact").await
}

pub async fn status(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    body: Body,
) -> Result<(StatusCode, Json<Pushed>)> {
    facts(s, id, uri, body, "status").await
}
