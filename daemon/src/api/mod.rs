//! The HTTP API (axum, JSON, under `/api/v1`): reads views and the log, and appends pushed facts through the
//! writer. No redb access of its own beyond the log's read methods.
//!
//! - [`read`]: health, experiments, metric points, events, the SSE tail, ingest state, jobs.
//! - [`push`]: create runs and log metrics, messages, summaries, artifacts and status over HTTP.
//! - [`admin`]: ingest a path, replay.
//! - [`analytics`]: varying hyperparameters and grouped summaries.
//! - [`alerts`]: alert firings and rules.
//! - [`benchmarks`]: start CMR benchmarks; their reports, summary CSV, datasets, comparisons.

pub mod admin;
pub mod alerts;
pub mod analytics;
pub mod benchmarks;
pub mod export;
pub mod push;
pub mod read;
pub mod server;
pub mod submit;
pub mod sweeps;
pub mod table;
pub mod validate;

use crate::state::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use labd_schemas::api::ApiError;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../schemas/openapi.json");

/// An error answer: a status and a message that says what is wrong.
#[derive(Debug)]
pub struct Error(pub StatusCode, pub String);

impl Error {
    pub fn bad(msg: impl Into<String>) -> Self {
        Error(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error(StatusCode::NOT_FOUND, msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        Error(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error(r.status(), r.body_text())
    }
}

impl From<labd_log::LogError> for Error {
    fn from(e: labd_log::LogError) -> Self {
        match e {
            labd_log::LogError::DiskFull(msg) => Error(StatusCode::INSUFFICIENT_STORAGE, msg),
            e if e.is_io() => Error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            e => Error::internal(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The router with every route, the body limit and the token check.
pub fn router(shared: Arc<AppState>) -> Router {
    let limit = shared.config.max_body_bytes;
    Router::new()
        .route("/api/v1/health", get(read::health))
        .route("/api/v1/display", get(read::display))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/experiments", get(read::list).post(push::create))
        .route("/api/v1/experiments/{id}", get(read::show))
        .route("/api/v1/experiments/{id}/metrics", post(push::metrics))
        .route("/api/v1/experiments/{id}/metrics/{*key}", get(read::points))
        .route(
            "/api/v1/experiments/{id}/messages",
            get(read::messages).post(push::messages),
        )
        .route("/api/v1/table", get(table::table))
        .route("/api/v1/compare", get(read::compare))
        .route("/api/v1/experiments/{id}/summaries", post(push::summary))
        .route("/api/v1/experiments/{id}/artifacts", post(push::artifact))
        .route("/api/v1/experiments/{id}/status", post(push::status))
        .route("/api/v1/events", get(read::events))
        .route("/api/v1/events/tail", get(read::tail))
        .route(
            "/api/v1/ingest",
            get(read::ingest_state).post(admin::ingest),
        )
        .route("/api/v1/ingest/errors", get(read::errors))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/rules", get(alerts::rules).post(alerts::set))
        .route(
            "/api/v1/alerts/rules/{name}",
            axum::routing::delete(alerts::remove),
        )
        .route("/api/v1/replay", post(admin::replay))
        .route("/api/v1/federation/republish", post(admin::republish))
        .route("/api/v1/jobs/{id}", get(read::job))
        .route("/api/v1/analytics/varying", get(analytics::varying))
        .route("/api/v1/analytics/summary", get(analytics::summary))
        .route("/api/v1/analytics/incomplete", get(analytics::incomplete))
        .route("/api/v1/analytics/messages", get(analytics::messages))
        .route("/api/v1/analytics/runs", get(analytics::runs_table))
        .route("/api/v1/analytics/curves", get(analytics::curves))
        .route("/api/v1/analytics/points", get(export::points))
        .route("/api/v1/validate", post(validate::validate))
        .route("/api/v1/sweeps", get(sweeps::list).post(submit::submit))
        .route("/api/v1/sweeps/{id}", get(sweeps::show))
        .route("/api/v1/sweeps/{id}/cancel", post(sweeps::cancel))
        .route("/api/v1/sweeps/{id}/pause", post(sweeps::pause))
        .route("/api/v1/sweeps/{id}/resume", post(sweeps::resume))
        .route("/api/v1/sweeps/{id}/analysis", get(sweeps::analysis))
        .route(
            "/api/v1/benchmarks",
            get(benchmarks::list).post(benchmarks::submit),
        )
        .route("/api/v1/benchmarks/{id}", get(benchmarks::show))
        .route("/api/v1/benchmarks/{id}/report", get(benchmarks::report))
        .route(
            "/api/v1/benchmarks/{id}/summary.csv",
            get(benchmarks::summary_csv),
        )
        .route("/api/v1/benchmarks/{id}/raw.csv", get(benchmarks::raw_csv))
        .route(
            "/api/v1/benchmarks/{id}/charts/{chart}",
            get(benchmarks::chart),
        )
        .route(
            "/api/v1/benchmarks/{id}/datasets",
            get(benchmarks::datasets),
        )
        .route("/api/v1/benchmarks/{id}/compare", get(benchmarks::compare))
        .route("/api/v1/benchmarks/{id}/cancel", post(benchmarks::cancel))
        .merge(crate::mlflow::router())
        .fallback(|| async { Error::not_found("no such endpoint; see GET /api/v1/openapi.json") })
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .layer(middleware::from_fn_with_state(shared.clone(), time_limit))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            announced_size,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = server::Limits {
        client_timeout: shared.config.client_timeout,
        max_connections: shared.config.max_connections,
    };
    let app = crate::web::router().merge(router(shared));
    server::serve(listener, app, limits, shutdown).await
}

/// Answers 408 when a request (reading its body included) takes longer than `request_timeout`; the event
/// tail, which streams for as long as the client listens, is exempt.
async fn time_limit(State(shared): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The event tail streams for as long as the client listens; artifact transfers take as long as their size.
    if req.uri().path() == "/api/v1/events/tail" || is_artifact_transfer(&req) {
        return next.run(req).await;
    }
    let limit = shared.config.request_timeout;
    let path = req.uri().path().to_string();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => refusal(
            &path,
            StatusCode::REQUEST_TIMEOUT,
            "TEMPORARILY_UNAVAILABLE",
            format!("the request took longer than {limit:?} (LABD_REQUEST_TIMEOUT)"),
        ),
    }
}

/// An upload or download of the MLflow artifact store (streamed, any size).
fn is_artifact_transfer(req: &Request) -> bool {
    req.uri()
        .path()
        .starts_with("/api/2.0/mlflow-artifacts/artifacts/")
        || req
            .uri()
            .path()
            .starts_with("/ajax-api/2.0/mlflow-artifacts/artifacts/")
}

/// A refusal of a request for `path`: in MLflow's shape (with `mlflow_code`) on MLflow's paths, in labd's
/// elsewhere.
fn refusal(path: &str, status: StatusCode, mlflow_code: &'static str, msg: String) -> Response {
    if is_mlflow(path) {
        crate::mlflow::request::MlError::new(status, mlflow_code, msg).into_response()
    } else {
        Error(status, msg).into_response()
    }
}

/// A path of MLflow's API, whose clients read errors in MLflow's shape.
fn is_mlflow(path: &str) -> bool {
    ["/api/2.0/", "/ajax-api/2.0/", "/api/3.0/"]
        .iter()
        .any(|p| path.starts_with(p))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Off loopback every request needs the token; on loopback, changes need it when one is set.
async fn auth(State(shared): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = shared.config.token.as_ref().map(|t| t.as_str()) else {
        return next.run(req).await;
    };
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !shared.config.loopback() || changes {
        let path = req.uri().path().to_string();
        let refuse = |msg: &str| {
            let msg = if is_mlflow(&path) {
                format!("{msg} (MLflow clients send it from MLFLOW_TRACKING_TOKEN)")
            } else {
                msg.to_string()
            };
            refusal(&path, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", msg)
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => {}
            Some(_) => return refuse("wrong bearer token"),
            None => {
                return refuse(
                    "this request needs `Authorization: Bearer <token>` (the daemon's LABD_TOKEN)",
                );
            }
        }
    }
    next.run(req).await
}

/// Refuses a body whose announced length is over the limit before reading any of it (chunked bodies are
/// cut off by `DefaultBodyLimit` while being read).
async fn announced_size(State(shared): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = shared.config.max_body_bytes;
    if is_artifact_transfer(&req) {
        return next.run(req).await;
    }
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced.filter(|n| *n > limit as u64) {
        return refusal(
            req.uri().path(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_PARAMETER_VALUE",
            format!(
                "request body of {n} bytes is over the limit of {limit} bytes (LABD_MAX_BODY_BYTES); send smaller batches"
            ),
        );
    }
    next.run(req).await
}

/// Compares the SHA-256 digests of the two in constant time, so that neither the position of the first
/// difference nor the token's length shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_by_content_only() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret2"));
        assert!(!super::constant_time_eq(b"", b"x"));
    }

    /// Every route of the router is in the OpenAPI document, and the document names no route the router lacks.
    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let source = include_str!("mod.rs");
        let start = source.find("pub fn router").expect("router");
        let end = source.find("pub async fn serve").expect("serve");
        let mut routes: Vec<String> = source[start..end]
            .split('"')
            .filter(|piece| piece.starts_with("/api/v1/"))
            .map(|p| p.replace("{*key}", "{key}"))
            .collect();
        routes.sort();
        routes.dedup();
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        let mut documented: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        documented.sort();
        assert_eq!(routes, documented);
    }
}
