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

/// The body of `POST /federation/republish`.
#[derive(serde::Deserialize)]
pub struct Republish {
    /// The first sequence number of this log to publish again.
    from: u64,
}

/// `POST /api/v1/federation/republish {"from": N}`: publish this log again from event N (for a stream that lost
/// acknowledged events: a single nats-server without `sync_interval: always` after a power loss, a stream
/// deleted and made again). A hub skips what it has already, so nothing is applied twice.
pub async fn republish(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<Republish>, JsonRejection>,
) -> Result<Json<Value>> {
    let Json(req) = body?;
    let publishes = s
        .config
        .federation
        .as_ref()
        .is_some_and(|f| f.role.publishes());
    if !publishes {
        return Err(Error(
            StatusCode::CONFLICT,
            "this labd publishes nothing: [federation] with role \"host\" or \"both\" is not configured".into(),
        ));
    }
    let key = crate::mailbox::PUBLISHED;
    let was = s.log.position(key).map_err(Error::internal)?;
    let published = was.unwrap_or(0);
    if req.from == 0 || req.from > published + 1 {
        return Err(Error::bad(format!(
            "from {}: events 1..={published} are published; give a sequence number from 1 to {}",
            req.from,
            published + 1
        )));
    }
    s.appender
        .append_async(labd_log::writer::Batch {
            events: Vec::new(),
            cursors: Vec::new(),
            positions: vec![labd_log::writer::PositionMove {
                key: key.into(),
                expected: was,
                to: req.from - 1,
            }],
        })
        .await
        .map_err(|e| Error(StatusCode::CONFLICT, format!("{e} (try again)")))?;
    tracing::info!(
        "federation: publishing again from event {} (requested over HTTP)",
        req.from
    );
    Ok(Json(
        json!({"from": req.from, "published_before": published}),
    ))
}
