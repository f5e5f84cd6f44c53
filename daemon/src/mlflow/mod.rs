//! MLflow's tracking REST API on labd's listener, so that unchanged MLflow clients (`MLFLOW_TRACKING_URI` set to
//! labd) log into labd: every call becomes labd events, appended durably through the same writer as ingest
//! before the client gets its 200, and answered from the views (an MLflow experiment is a labd project, an
//! MLflow run a labd run, its id labd's).
//!
//! - [`request`]: a call's fields from its JSON body or query string, as MLflow's server reads them; errors in
//!   MLflow's shape (`{"error_code", "message"}` with MLflow's statuses).
//! - [`wire`]: experiments, runs and metrics in MLflow's JSON (NaN and infinities as strings).
//! - [`validate`]: MLflow's limits and key rules.
//! - [`experiments`], [`runs`], [`history`]: the endpoints.
//! - [`search`]: MLflow's filter grammar and `order_by` for runs and experiments.
//! - [`artifacts`]: the proxied `mlflow-artifacts` store (files under the data directory, each recorded as an
//!   artifact with its size and sha256).
//!
//! Served under `/api/2.0/mlflow/` and `/ajax-api/2.0/mlflow/` (the UI's prefix), artifacts under
//! `/api/2.0/mlflow-artifacts/` and `/ajax-api/2.0/mlflow-artifacts/`.

pub mod artifacts;
pub mod experiments;
pub mod history;
pub mod request;
pub mod runs;
pub mod search;
pub mod validate;
pub mod wire;

use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use labd_log::writer::Batch;
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use request::{Fields, MlError};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// Appends `events` (one batch: all or none) and waits until they are durable and in the views.
async fn append(s: &AppState, events: Vec<Event>) -> Result<(), MlError> {
    if events.is_empty() {
        return Ok(());
    }
    s.appender
        .append_async(Batch {
            events,
            cursors: vec![],
            positions: Vec::new(),
        })
        .await?;
    Ok(())
}

/// A new event of the call `f`.
fn event(f: &Fields, kind: EventKind) -> Event {
    Event::new(
        now_micros(),
        Source::Http {
            request: f.request.clone(),
        },
        kind,
    )
}

/// Prefixes the tracking API is served under.
const PREFIXES: [&str; 2] = ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"];

/// Prefixes the proxied artifact store is served under.
const ARTIFACT_PREFIXES: [&str; 2] = [
    "/api/2.0/mlflow-artifacts",
    "/ajax-api/2.0/mlflow-artifacts",
];

/// Turns `f` (the call's state and fields to its JSON answer) into a route for `method`.
fn endpoint<F, Fut>(method: Method, f: F) -> MethodRouter<Arc<AppState>>
where
    F: Fn(Arc<AppState>, Fields) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, MlError>> + Send + 'static,
{
    let filter =
        axum::routing::MethodFilter::try_from(method).unwrap_or(axum::routing::MethodFilter::POST);
    on(
        filter,
        move |State(s): State<Arc<AppState>>, method: Method, uri: Uri, body: Bytes| {
            let f = f.clone();
            async move {
                match Fields::parse(&method, &uri, &body) {
                    Ok(fields) => match f(s, fields).await {
                        Ok(v) => axum::Json(v).into_response(),
                        Err(e) => e.into_response(),
                    },
                    Err(e) => e.into_response(),
                }
            }
        },
    )
}

/// The tracking API's routes (both prefixes), the artifact store's and MLflow 3's server-info.
pub fn router() -> Router<Arc<AppState>> {
    use Method as M;
    let mut tracking = Router::new()
        .route(
            "/experiments/create",
            endpoint(M::POST, experiments::create),
        )
        .route("/experiments/get", endpoint(M::GET, experiments::get))
        .route(
            "/experiments/get-by-name",
            endpoint(M::GET, experiments::get_by_name),
        )
        .route(
            "/experiments/search",
            endpoint(M::POST, experiments::search).merge(endpoint(M::GET, experiments::search)),
        )
        .route(
            "/experiments/update",
            endpoint(M::POST, experiments::update),
        )
        .route(
            "/experiments/delete",
            endpoint(M::POST, experiments::delete),
        )
        .route(
            "/experiments/restore",
            endpoint(M::POST, experiments::restore),
        )
        .route(
            "/experiments/set-experiment-tag",
            endpoint(M::POST, experiments::set_tag),
        )
        .route(
            "/experiments/delete-experiment-tag",
            endpoint(M::POST, experiments::delete_tag),
        )
        .route("/runs/create", endpoint(M::POST, runs::create))
        .route("/runs/get", endpoint(M::GET, runs::get))
        .route("/runs/update", endpoint(M::POST, runs::update))
        .route("/runs/delete", endpoint(M::POST, runs::delete))
        .route("/runs/restore", endpoint(M::POST, runs::restore))
        .route("/runs/search", endpoint(M::POST, runs::search))
        .route("/runs/log-metric", endpoint(M::POST, runs::log_metric))
        .route("/runs/log-parameter", endpoint(M::POST, runs::log_param))
        .route("/runs/log-batch", endpoint(M::POST, runs::log_batch))
        .route("/runs/set-tag", endpoint(M::POST, runs::set_tag))
        .route("/runs/delete-tag", endpoint(M::POST, runs::delete_tag))
        .route("/runs/log-inputs", endpoint(M::POST, runs::log_inputs))
        .route("/runs/log-model", endpoint(M::POST, runs::log_model))
        .route("/runs/outputs", endpoint(M::POST, runs::outputs))
        .route("/artifacts/list", endpoint(M::GET, artifacts::list_run))
        .route("/metrics/get-history", endpoint(M::GET, history::get))
        .route(
            "/metrics/get-history-bulk-interval",
            endpoint(M::GET, history::bulk_interval),
        )
        .route(
            "/logged-models/search",
            endpoint(M::POST, runs::search_models),
        )
        .route("/logged-models", endpoint(M::POST, runs::create_model))
        .route(
            "/logged-models/{id}",
            endpoint(M::GET, runs::get_model)
                .merge(endpoint(M::PATCH, runs::create_model))
                .merge(endpoint(M::DELETE, runs::create_model)),
        )
        .route(
            "/logged-models/{id}/{*rest}",
            endpoint(M::POST, runs::create_model)
                .merge(endpoint(M::PATCH, runs::create_model))
                .merge(endpoint(M::DELETE, runs::create_model)),
        )
        .fallback(|uri: Uri| async move {
            MlError::new(
                axum::http::StatusCode::NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
                format!("labd does not serve {} of MLflow's API", uri.path()),
            )
        });
    tracking = tracking.layer(axum::middleware::from_fn(mlflow_shaped));
    let mut app = Router::new();
    for p in PREFIXES {
        app = app.nest(p, tracking.clone());
    }
    for p in ARTIFACT_PREFIXES {
        app = app.nest(p, artifacts::router());
    }
    app.route(
        "/api/3.0/mlflow/server-info",
        axum::routing::get(server_info),
    )
}

/// Errors that axum gives before a handler runs (a wrong method, a body over the limit or not JSON) in MLflow's
/// shape, their text as the message.
async fn mlflow_shaped(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{StatusCode as S, header};
    let r = next.run(req).await;
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if r.status().is_success() || json {
        return r;
    }
    let status = r.status();
    let code = match status {
        S::METHOD_NOT_ALLOWED => "BAD_REQUEST",
        S::NOT_FOUND => "ENDPOINT_NOT_FOUND",
        s if s.is_server_error() => "INTERNAL_ERROR",
        _ => "INVALID_PARAMETER_VALUE",
    };
    let text = axum::body::to_bytes(r.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        (S::METHOD_NOT_ALLOWED, _) => "this endpoint does not take that method".to_string(),
        (_, true) => status.to_string(),
        (_, false) => text,
    };
    MlError::new(status, code, message).into_response()
}

/// `GET /api/3.0/mlflow/server-info`: what the artifact client may use (plain uploads and downloads only).
async fn server_info() -> axum::Json<Value> {
    axum::Json(serde_json::json!({
        "store_type": "labd",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}
