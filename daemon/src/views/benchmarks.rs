//! The benchmarks view: every benchmark (run by labd or dropped in as benchmark lines) with its configuration,
//! build, status and measurements in the order they were recorded. Reports and comparisons are computed from it
//! (`analytics::bench`).

use labd_log::Seq;
use labd_schemas::bench::BenchStatus;
use labd_schemas::{Event, EventKind, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub seq: Seq,
    pub analysis: String,
    pub params: Map<String, Value>,
    #[serde(with = "labd_schemas::floats::map")]
    pub values: BTreeMap<String, f64>,
    pub samples: BTreeMap<String, Vec<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bench {
    pub id: String,
    pub suite: String,
    pub name: String,
    pub config: Value,
    pub build: Map<String, Value>,
    pub host: String,
    pub planned: Option<u64>,
    /// Unix microseconds.
    pub started: i64,
    pub ended: Option<i64>,
    pub runner: Option<String>,
    pub status: BenchStatus,
    pub message: Option<String>,
    pub measurements: Vec<Measurement>,
    /// Files (or `http`, `labd`) its facts came from.
    pub sources: Vec<String>,
    /// On a hub, for another host's benchmark: that host.
    #[serde(default)]
    pub origin: Option<String>,
    /// Its id on that host, when it has another one here.
    #[serde(default)]
    pub origin_id: Option<String>,
}

impl Bench {
    /// The runner's measurements (labd's own `utilization` samples left out), for progress against `planned`.
    pub fn measured(&self) -> usize {
        self.measurements
            .iter()
            .filter(|m| m.analysis != "utilization")
            .count()
    }

    fn new(id: &str, time: i64) -> Bench {
        Bench {
            id: id.to_string(),
            suite: "cmr".into(),
            name: id.to_string(),
            config: Value::Null,
            build: Map::new(),
            host: String::new(),
            planned: None,
            started: time,
            ended: None,
            runner: None,
            status: BenchStatus::Running,
            message: None,
            measurements: Vec::new(),
            sources: Vec::new(),
            origin: None,
            origin_id: None,
        }
    }

    /// The measurements of one analysis.
    pub fn of<'a>(&'a self, analysis: &'a str) -> impl Iterator<Item = &'a Measurement> + 'a {
        self.measurements
            .iter()
            .filter(move |m| m.analysis == analysis)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Benchmarks {
    pub benches: BTreeMap<String, Bench>,
}

impl Benchmarks {
    pub fn apply(&mut self, seq: Seq, event: &Event) {
        let id = match &event.kind {
            EventKind::BenchStarted(b) => &b.bench,
            EventKind::BenchMeasured(m) => &m.bench,
            EventKind::BenchChanged(c) => &c.bench,
            _ => return,
        };
        let bench = self
            .benches
            .entry(id.clone())
            .or_insert_with(|| Bench::new(id, event.time));
        if let Some(o) = &event.origin {
            bench.origin = Some(o.host.clone());
            if o.id.is_some() {
                bench.origin_id = o.id.clone();
            }
        }
        let src = match &event.source {
            Source::File { path, .. } => path.as_str(),
            Source::Http { .. } => "http",
            Source::Daemon => "labd",
        };
        if !bench.sources.iter().any(|s| s == src) {
            bench.sources.push(src.to_string());
        }
        match &event.kind {
            EventKind::BenchStarted(b) => {
                bench.suite = b.suite.clone();
                bench.name = b.name.clone();
                bench.config = b.config.clone();
                bench.build = b.build.clone();
                bench.host = event
                    .origin
                    .as_ref()
                    .map_or_else(|| b.host.clone(), |o| o.host.clone());
                bench.planned = b.planned;
                bench.started = b.started;
                bench.runner = b.runner.clone();
            }
            EventKind::BenchMeasured(m) => bench.measurements.push(Measurement {
                seq,
                analysis: m.analysis.clone(),
                params: m.params.clone(),
                values: m.values.clone(),
                samples: m.samples.clone(),
            }),
            // A final status stays final: a late `running` from a dropped file does not reopen it.
            EventKind::BenchChanged(c) if c.status.is_final() || !bench.status.is_final() => {
                bench.status = c.status;
                bench.message = c.message.clone();
                bench.ended = c.status.is_final().then_some(event.time);
            }
            _ => {}
        }
    }

    /// Benchmarks that labd itself was running (for recovery after a restart).
    pub fn running_by_labd(&self) -> impl Iterator<Item = &Bench> {
        self.benches.values().filter(|b| {
            b.status == BenchStatus::Running
                && b.runner.as_deref() == Some("labd")
                && b.origin.is_none()
        })
    }
}
