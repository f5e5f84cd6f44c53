//! The proxied artifact store (`mlflow-artifacts:` URIs): `PUT`, `GET` and list under
//! `/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>`. Files live under
//! `<data_dir>/mlflow-artifacts/` at that path; an upload is streamed to a temporary file (hashed on the way),
//! synced, renamed into place, and recorded as the run's artifact (`artifact_recorded`, role `mlflow`, with
//! its size and sha256) before the client gets its 200.

use super::request::{MlError, MlResult};
use super::{append, wire};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use labd_schemas::event::ArtifactRecorded;
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, ExperimentId, Source};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// The artifact routes (nested under `/api/2.0/mlflow-artifacts`).
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/artifacts", get(list)).route(
        "/artifacts/{*path}",
        get(download).put(upload).delete(remove),
    )
}

/// Where the artifact store keeps its files.
fn root(s: &AppState) -> PathBuf {
    s.config.data_dir.join("mlflow-artifacts")
}

/// The parts of a path below the store's root, each a plain name (no `..`, `.`, or empty part).
fn parts(path: &str) -> MlResult<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts
        .iter()
        .any(|p| *p == "." || *p == ".." || p.contains('\\') || p.contains('\0'))
    {
        return Err(MlError::invalid(format!(
            "Invalid artifact path '{path}': it must not leave the run's artifact folder"
        )));
    }
    Ok(parts)
}

/// The run and the path inside its artifacts of `<experiment>/<run>/artifacts/<path>`.
fn run_file<'a>(s: &AppState, parts: &[&'a str]) -> MlResult<(wire::RunDoc, Vec<&'a str>)> {
    let [project, run, "artifacts", rest @ ..] = parts else {
        return Err(MlError::invalid(format!(
            "labd keeps run artifacts at <experiment id>/<run id>/artifacts/<path>, not at '{}'",
            parts.join("/")
        )));
    };
    let doc = super::runs::find(s, run)?;
    if doc.project != *project {
        return Err(MlError::invalid(format!(
            "run {run} belongs to experiment {}, not {project}",
            doc.project
        )));
    }
    Ok((doc, rest.to_vec()))
}

fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> MlError {
    MlError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        format!("{what} {}: {e}", path.display()),
    )
}

async fn upload(State(s): State<Arc<AppState>>, Path(path): Path<String>, body: Body) -> Response {
    match store(&s, &path, body).await {
        Ok(()) => axum::Json(json!({})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn store(s: &AppState, path: &str, body: Body) -> MlResult<()> {
    let parts = parts(path)?;
    let (doc, rest) = run_file(s, &parts)?;
    if rest.is_empty() {
        return Err(MlError::invalid(
            "an upload names a file below the run's artifacts",
        ));
    }
    if doc.deleted {
        return Err(MlError::invalid(format!(
            "The run {} must be in the 'active' state. Current state is deleted.",
            doc.id
        )));
    }
    let file = root(s).join(parts.join("/"));
    let dir = file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| root(s));
    let made = made_dirs(&root(s), &dir)
        .await
        .map_err(|e| io("cannot create", &dir, e))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = dir.join(format!(".{name}.labd-part-{}", now_micros()));
    let written = write(&part, body).await;
    let (size, sha) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&part, &file)
        .await
        .map_err(|e| io("cannot move the upload to", &file, e))?;
    // The file's folder holds its name; each folder this upload made is named in the one above it.
    let mut synced = vec![dir.clone()];
    synced.extend(
        made.iter()
            .filter_map(|d| d.parent().map(std::path::Path::to_path_buf)),
    );
    tokio::task::spawn_blocking(move || {
        synced.iter().try_for_each(|d| {
            std::fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| (d.clone(), e))
        })
    })
    .await
    .map_err(|e| MlError::invalid(e.to_string()))?
    .map_err(|(d, e)| io("cannot sync", &d, e))?;
    let mut extra = Map::new();
    extra.insert("mlflow_path".into(), Value::String(rest.join("/")));
    let event = Event::new(
        now_micros(),
        Source::Http {
            request: format!("PUT /api/2.0/mlflow-artifacts/artifacts/{path}"),
        },
        EventKind::ArtifactRecorded(ArtifactRecorded {
            exp: ExperimentId(doc.id.clone()),
            role: "mlflow".into(),
            path: file.to_string_lossy().into_owned(),
            size: Some(size),
            sha256: Some(sha),
            extra,
        }),
    );
    append(s, vec![event]).await
}

/// Makes folder `dir` (below `root`, which is made too) and those above it that are missing; the folders it
/// made, deepest first.
async fn made_dirs(root: &std::path::Path, dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !tokio::fs::try_exists(at).await? {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) if at != root => at = p,
            _ => break,
        }
    }
    tokio::fs::create_dir_all(dir).await?;
    Ok(missing)
}

/// Streams `body` into a new file at `part`, synced; its size and sha256.
async fn write(part: &std::path::Path, body: Body) -> MlResult<(u64, String)> {
    let mut out = tokio::fs::File::create(part)
        .await
        .map_err(|e| io("cannot create", part, e))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            MlError::invalid(format!("the upload was cut off after {size} bytes: {e}"))
        })?;
        hash.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .map_err(|e| io("cannot write", part, e))?;
    }
    out.sync_all()
        .await
        .map_err(|e| io("cannot sync", part, e))?;
    Ok((size, format!("{:x}", hash.finalize())))
}

async fn download(State(s): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    let file = match parts(&path) {
        Ok(p) => root(&s).join(p.join("/")),
        Err(e) => return e.into_response(),
    };
    match tokio::fs::File::open(&file).await {
        Ok(f) if f.metadata().await.is_ok_and(|m| m.is_file()) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from_stream(tokio_util::io::ReaderStream::new(f)),
        )
            .into_response(),
        _ => MlError::not_found(format!("No such artifact: '{path}'")).into_response(),
    }
}

/// A folder's entries (name, size for a file, `None` for a folder) by name; none for a file or nothing.
async fn entries(dir: &std::path::Path) -> Vec<(String, Option<u64>)> {
    let Ok(mut read) = tokio::fs::read_dir(dir).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(Some(e)) = read.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".labd-part-") {
            continue;
        }
        let Ok(meta) = e.metadata().await else {
            continue;
        };
        out.push((name, (!meta.is_dir()).then_some(meta.len())));
    }
    out.sort();
    out
}

/// MLflow's `FileInfo` of an entry at `path`.
fn file_info(path: String, size: Option<u64>) -> Value {
    match size {
        None => json!({"path": path, "is_dir": true}),
        Some(n) => json!({"path": path, "is_dir": false, "file_size": n}),
    }
}

/// `GET artifacts?path=`: the entries of a folder (names relative to it); `{}` for a file or nothing.
async fn list(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = q.get("path").cloned().unwrap_or_default();
    let dir = match parts(&path) {
        Ok(p) => root(&s).join(p.join("/")),
        Err(e) => return e.into_response(),
    };
    let files: Vec<Value> = entries(&dir)
        .await
        .into_iter()
        .map(|(name, size)| file_info(name, size))
        .collect();
    let body = if files.is_empty() {
        json!({})
    } else {
        json!({ "files": files })
    };
    axum::Json(body).into_response()
}

/// `GET /api/2.0/mlflow/artifacts/list?run_id=&path=` (the tracking side's list, which MLflow's UI reads): the
/// run's `root_uri` and the entries at `path` below it, named from the run's artifact root.
pub async fn list_run(s: Arc<AppState>, f: super::request::Fields) -> MlResult<Value> {
    let doc = super::runs::find(&s, &f.run_id()?)?;
    let path = f.opt_str("path")?.unwrap_or_default();
    let below = parts(&path)?;
    let mut out = json!({ "root_uri": doc.artifact_uri });
    if let Some(at) = doc.artifact_uri.strip_prefix("mlflow-artifacts:/") {
        let dir = root(&s).join(at).join(below.join("/"));
        let files: Vec<Value> = entries(&dir)
            .await
            .into_iter()
            .map(|(name, size)| {
                let rel = below
                    .iter()
                    .copied()
                    .chain([name.as_str()])
                    .collect::<Vec<_>>();
                file_info(rel.join("/"), size)
            })
            .collect();
        if !files.is_empty() {
            out["files"] = json!(files);
        }
    }
    Ok(out)
}

async fn remove(Path(path): Path<String>) -> Response {
    MlError::unsupported(format!(
        "labd keeps every artifact a run recorded (its record is append-only); '{path}' stays"
    ))
    .into_response()
}
