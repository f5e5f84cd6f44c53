//! Long operations started over HTTP; each answers a job id to follow at `GET /api/v1/jobs/{id}`.

use super::{Error, Result};
use crate::ingest::pump::IngestMsg;
use crate::replay;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use labd_schemas::api::{IngestRequest, ReplayRequest};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

/// `POST /api/v1/ingest {"path": ...}`: read a file or folder on this host now.
pub async fn ingest(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<IngestRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let Json(req) = body?;
    let path = PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(Error::bad(format!(
            "path {:?} must be absolute (it is read by the daemon)",
            req.path
        )));
    }
    // One file, one name: resolve symlinks and `..` as the watched folders are.
    let path = std::fs::canonicalize(&path)
        .map_err(|e| Error::not_found(format!("{} on the daemon's host: {e}", path.display())))?;
    let format = match req.format.as_deref() {
        None | Some("auto") => None,
        Some(name) => Some(labd_sources::Format::from_user(name).ok_or_else(|| {
            Error::bad(format!(
                "unknown format {name:?}: use {}",
                labd_sources::Format::USER_NAMES
            ))
        })?),
    };
    let job = s.jobs.start("ingest");
    let id = job.id();
    s.ingest
        .send(IngestMsg::Path(path, job, format))
        .map_err(|_| Error::internal("the ingest thread has stopped"))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))))
}

/// `POST /api/v1/replay {"as_of": null | SEQ | RFC3339, "verify": false}`.
pub async fn replay(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let Json(req) = body?;
    if let Some(a) = &req.as_of {
        a.parse::<replay::AsOf>()
            .map_err(|e| Error::bad(e.to_string()))?;
    }
    let job = s.jobs.start_exclusive("replay").map_err(|running| {
        Error(
            StatusCode::CONFLICT,
            format!("a replay is running (job {running}); wait for it to finish"),
        )
    })?;
    let id = job.id();
    if req.verify && req.as_of.is_some() {
        return Err(Error::bad(
            "`verify` compares the live views with a replay of the whole log; it takes no `as_of`",
        ));
    }
    tokio::task::spawn_blocking(move || {
        let result = if req.verify {
            replay::verify(&s.log, s.views.lock(), Some(&job))
        } else {
            replay::replay(
                &s.log,
                s.views.lock(),
                req.as_of.as_deref(),
                s.config.stale_after,
                Some(&job),
            )
        };
        job.finish(
            result
                .map(|r| serde_json::to_value(r).unwrap_or_default())
                .map_err(|e| e.to_string()),
        );
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))))
}
