//! `POST /api/v1/validate?name=FILE`: checks a file of any format labd reads, with the same sources ingestion
//! uses, and records nothing: which format it is, the runs and points it holds, and every problem with its line.

use super::{Error, Result};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use labd_schemas::{EventKind, ExperimentId};
use labd_sources::{Context, Format, Runs};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
pub struct ValidateQuery {
    /// The file's name (its format is judged by it, and by the first bytes).
    name: String,
}

/// Checks `bytes` as a finished file named `name`.
pub fn check(name: &str, bytes: &[u8], host: &str) -> std::result::Result<Value, String> {
    // The name may keep a few folders (`mlruns/1/<run>/metrics/loss`): some formats are known by them.
    let rel: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    let file = *rel
        .last()
        .ok_or_else(|| format!("{name:?} names no file"))?;
    let path = format!("/validate/{}", rel.join("/"));
    let format = Format::detect(std::path::Path::new(&path))
        .ok_or_else(|| {
            format!("labd reads no file named {file:?} (run logs *.jsonl/*.ndjson, json_out.jsonl, trainer_state.json, *tfevents*, metrics.csv)")
        })?
        .sniff(bytes);
    let mut problems = Vec::new();
    let mut data = bytes;
    if !format.binary()
        && let Some(at) = memchr::memchr(0, bytes)
    {
        problems.push(json!({"line": null, "problem": format!("binary file (NUL byte at byte {at}); labd reads the complete lines before it and skips the rest")}));
        data = &bytes[..memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1)];
    }
    let mut ids = |id: ExperimentId| id;
    let mut runs = Runs::default();
    let mut ctx = Context {
        path: &path,
        default_name: file.split('.').next().unwrap_or(file),
        host,
        now: labd_schemas::time::now_micros(),
        max_line: 1 << 20,
        take_unterminated: true,
        ids: &mut ids,
        id_clock: Default::default(),
        runs: &mut runs,
        sidecars: &[],
    };
    let mut cursor = labd_log::FileCursor::default();
    let out = labd_sources::read(format, &mut cursor, data, &mut ctx);
    let mut created = 0;
    for e in &out.events {
        match &e.kind {
            EventKind::ExperimentCreated(_) => created += 1,
            EventKind::IngestError(i) => {
                problems.push(json!({"line": i.line, "problem": i.reason}));
            }
            _ => {}
        }
    }
    if out.consumed < data.len() as u64 && cursor.dead.is_none() {
        problems.push(json!({"line": null, "problem": format!(
            "the last {} bytes are cut short (a half-written line or record); labd waits for the rest",
            data.len() as u64 - out.consumed
        )}));
    }
    Ok(json!({
        "format": format.name(),
        "runs": created,
        "points": out.points,
        "problems": problems,
    }))
}

/// The endpoint: the body is the file.
pub async fn validate(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<ValidateQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let host = s.config.host.clone();
    let answer = tokio::task::spawn_blocking(move || check(&q.name, &body, &host))
        .await
        .map_err(Error::internal)?
        .map_err(Error::bad)?;
    Ok(Json(answer))
}
