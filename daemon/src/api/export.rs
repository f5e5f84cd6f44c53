//! Streaming export of the long table of metric points (run, metric, step, epoch, wall_time, value) as CSV,
//! Parquet or JSON. The table is never held whole: runs are copied out of the curve store a batch at a time
//! (the views' lock is held only while copying), encoded with Polars' batched writers, and sent as the client
//! reads, so a slow client holds back only its own export and memory stays at one batch.

use super::{Error, Result};
use crate::filter::{Clock, Filter};
use crate::state::AppState;
use crate::views::Views;
use crate::views::chunk::NO_STEP;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use labd_schemas::ExperimentId;
use labd_schemas::time::now_micros;
use polars::prelude::*;
use serde::Deserialize;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Rows per encoded batch (a Parquet row group).
const BATCH_ROWS: usize = 128 * 1024;
/// Bytes buffered before a chunk goes to the client.
const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
pub struct PointsQuery {
    /// Answer as of a past sequence number or RFC 3339 time (replayed from the log).
    as_of: Option<String>,
    /// Metric keys, comma-separated (else every metric of the selected runs).
    metric: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    /// `csv` (default), `parquet` or `json`.
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    "csv".into()
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Parquet,
    Json,
}

/// The views an export reads: the live ones (locked per batch) or views replayed as of a past point.
enum Source {
    Live(Arc<AppState>),
    Past(Box<Views>),
}

impl Source {
    fn read<R>(&self, f: impl FnOnce(&Views) -> R) -> R {
        match self {
            Source::Live(s) => f(&s.views()),
            Source::Past(v) => f(v),
        }
    }
}

/// `GET /api/v1/analytics/points?metric=&where=&format=csv|parquet|json&as_of=`: the long table of the selected
/// runs' points, streamed.
pub async fn points(
    State(s): State<Arc<AppState>>,
    q: std::result::Result<Query<PointsQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = q?;
    let format = match q.format.as_str() {
        "csv" => Format::Csv,
        "parquet" => Format::Parquet,
        "json" => Format::Json,
        other => {
            return Err(Error::bad(format!(
                "unknown format {other:?}: use csv, parquet or json"
            )));
        }
    };
    let filter: Option<Filter> = q
        .filter
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: crate::filter::FilterError| Error::bad(e.to_string()))?;
    let clock = Clock {
        now: now_micros(),
        stale_after: s.config.stale_after.as_micros() as i64,
    };
    let wanted: Option<Vec<String>> = q
        .metric
        .as_deref()
        .map(|m| m.split(',').map(str::trim).map(String::from).collect());
    // Everything that can be refused is checked before the first byte: a bad `as_of`, a cold curve store.
    let (source, ids) =
        tokio::task::spawn_blocking(move || -> Result<(Source, Vec<ExperimentId>)> {
            let source = match q.as_of.as_deref() {
                None => Source::Live(s),
                Some(point) => crate::replay::views_as_of(&s.log, point)
                    .map(|v| Source::Past(Box::new(v)))
                    .map_err(|e| match e {
                        crate::replay::ReplayError::AsOf(_) => Error::bad(e.to_string()),
                        other => Error::internal(other),
                    })?,
            };
            let ids = source.read(|v| {
                if !v.curves_ready() {
                    return Err(Error(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "the curve store is warming up after start; try again in a moment".into(),
                    ));
                }
                Ok(v.registry
                    .experiments
                    .values()
                    .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, clock)))
                    .map(|r| r.id.clone())
                    .collect())
            })?;
            Ok((source, ids))
        })
        .await
        .map_err(Error::internal)??;

    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        let started = std::time::Instant::now();
        match export(&source, &ids, wanted.as_deref(), format, &mut sink) {
            Ok(rows) => tracing::debug!(
                rows,
                runs = ids.len(),
                secs = started.elapsed().as_secs_f64(),
                "points exported"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!("points export: the client went away")
            }
            Err(e) => {
                tracing::warn!("points export failed: {e}");
                // The client sees the body end in an error rather than a silently short table.
                let _ = sink.tx.blocking_send(Err(e));
            }
        }
    });
    let content_type = match format {
        Format::Parquet => "application/vnd.apache.parquet",
        Format::Json => "application/json",
        Format::Csv => "text/csv",
    };
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// A `Write` that sends what it is given to the client in chunks; it blocks while the client is behind.
struct Sink {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Sink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// One batch of rows, as columns.
#[derive(Default)]
struct Rows {
    run: Vec<String>,
    metric: Vec<String>,
    step: Vec<Option<i64>>,
    epoch: Vec<Option<f64>>,
    wall: Vec<Option<f64>>,
    value: Vec<f64>,
}

impl Rows {
    fn len(&self) -> usize {
        self.value.len()
    }

    /// Copies one run's points (of the wanted metrics) out of the views.
    fn add_run(&mut self, v: &Views, id: &ExperimentId, wanted: Option<&[String]>) {
        let opt = |x: f64| (!x.is_nan()).then_some(x);
        for (key, s) in v.curves.run(id) {
            if wanted.is_some_and(|w| !w.contains(key)) {
                continue;
            }
            let c = s.columns();
            let axis = |col: &Option<Vec<f64>>, i: usize| col.as_ref().and_then(|c| opt(c[i]));
            for i in 0..c.len() {
                self.run.push(id.to_string());
                self.metric.push(key.clone());
                self.step.push((c.step[i] != NO_STEP).then_some(c.step[i]));
                self.epoch.push(axis(&c.epoch, i));
                self.wall.push(axis(&c.wall, i));
                self.value.push(c.value[i]);
            }
        }
    }

    fn frame(&mut self) -> PolarsResult<DataFrame> {
        let t = std::mem::take(self);
        DataFrame::new_infer_height(vec![
            Column::new("run".into(), t.run),
            Column::new("metric".into(), t.metric),
            Column::new("step".into(), t.step),
            Column::new("epoch".into(), t.epoch),
            Column::new("wall_time".into(), t.wall),
            Column::new("value".into(), t.value),
        ])
    }

    /// Rows as JSON objects, comma-separated; non-finite values as null with their spelling in `repr`.
    fn write_json(&mut self, out: &mut impl Write, first: &mut bool) -> std::io::Result<()> {
        let t = std::mem::take(self);
        for i in 0..t.value.len() {
            let v = t.value[i];
            let mut row = serde_json::json!({
                "run": t.run[i], "metric": t.metric[i], "step": t.step[i],
                "epoch": t.epoch[i], "wall_time": t.wall[i],
                "value": v.is_finite().then_some(v),
            });
            if let Some(text) = labd_schemas::floats::spell(v) {
                row["repr"] = text.into();
            }
            if !std::mem::take(first) {
                out.write_all(b",\n")?;
            }
            serde_json::to_writer(&mut *out, &row)?;
        }
        Ok(())
    }
}

fn schema() -> Schema {
    Schema::from_iter([
        Field::new("run".into(), DataType::String),
        Field::new("metric".into(), DataType::String),
        Field::new("step".into(), DataType::Int64),
        Field::new("epoch".into(), DataType::Float64),
        Field::new("wall_time".into(), DataType::Float64),
        Field::new("value".into(), DataType::Float64),
    ])
}

/// Writes the export of `ids` to `sink`; answers the number of rows.
fn export(
    source: &Source,
    ids: &[ExperimentId],
    wanted: Option<&[String]>,
    format: Format,
    sink: &mut Sink,
) -> std::io::Result<u64> {
    let polars_io = |e: PolarsError| match e {
        PolarsError::IO { error, .. } => std::io::Error::new(error.kind(), error.to_string()),
        other => std::io::Error::other(other.to_string()),
    };
    let mut rows = Rows::default();
    let mut total = 0u64;
    // Fills `rows` from the next runs until a batch is full; answers false when no run is left.
    let mut next = ids.iter();
    let mut fill = |rows: &mut Rows| -> bool {
        let mut any = false;
        while rows.len() < BATCH_ROWS {
            let Some(id) = next.next() else { break };
            any = true;
            source.read(|v| rows.add_run(v, id, wanted));
        }
        any
    };
    match format {
        Format::Csv => {
            let mut w = CsvWriter::new(&mut *sink)
                .batched(&schema())
                .map_err(polars_io)?;
            while fill(&mut rows) {
                total += rows.len() as u64;
                w.write_batch(&rows.frame().map_err(polars_io)?)
                    .map_err(polars_io)?;
            }
            w.finish().map_err(polars_io)?;
        }
        Format::Parquet => {
            let mut w = ParquetWriter::new(&mut *sink)
                .batched(&schema())
                .map_err(polars_io)?;
            while fill(&mut rows) {
                if rows.len() == 0 {
                    continue;
                }
                total += rows.len() as u64;
                w.write_batch(&rows.frame().map_err(polars_io)?)
                    .map_err(polars_io)?;
            }
            w.finish().map_err(polars_io)?;
        }
        Format::Json => {
            sink.write_all(b"[")?;
            let mut first = true;
            while fill(&mut rows) {
                total += rows.len() as u64;
                rows.write_json(sink, &mut first)?;
            }
            sink.write_all(b"]\n")?;
        }
    }
    sink.flush()?;
    Ok(total)
}
