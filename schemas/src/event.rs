//! The facts of the event log. The enum is closed and versioned: every stored event carries
//! [`EVENT_FORMAT_VERSION`] as it was when written, and old records must keep decoding (see the stored samples
//! under `schemas/samples/` and their test). Add fields only with `#[serde(default)]`; add kinds only at the end.

use crate::ids::ExperimentId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The format version written into every new event.
pub const EVENT_FORMAT_VERSION: u16 = 1;

/// One fact, as stored in the log. Its sequence number is its key in the log, not a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Format version this event was written with.
    pub v: u16,
    /// When the fact entered labd (Unix microseconds); `--as-of TIME` replays by this.
    pub time: i64,
    /// Where the fact came from.
    pub source: Source,
    /// The fact.
    pub kind: EventKind,
}

impl Event {
    /// A new event of the current format version.
    pub fn new(time: i64, source: Source, kind: EventKind) -> Self {
        Event {
            v: EVENT_FORMAT_VERSION,
            time,
            source,
            kind,
        }
    }

    /// The experiment this event is about, if any.
    pub fn experiment(&self) -> Option<&ExperimentId> {
        self.kind.experiment()
    }
}

/// Where a fact came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Source {
    /// Lines `first_line..=last_line` (1-based) of a watched or ingested file.
    File {
        path: String,
        first_line: u64,
        last_line: u64,
    },
    /// A request to the HTTP API.
    Http { request: String },
    /// The daemon itself.
    Daemon,
}

/// Status of a run. `stale` is never stored: the registry derives it from silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// A final status ends the run; only `running` does not.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(RunStatus::Running),
            "completed" => Ok(RunStatus::Completed),
            "failed" => Ok(RunStatus::Failed),
            "interrupted" => Ok(RunStatus::Interrupted),
            other => Err(format!(
                "unknown status {other:?} (expected running, completed, failed or interrupted)"
            )),
        }
    }
}

/// Every kind of fact labd records. Closed: an unknown tag fails to decode rather than being guessed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ExperimentCreated(ExperimentCreated),
    MetricsLogged(MetricsLogged),
    MessageLogged(MessageLogged),
    SummaryRecorded(SummaryRecorded),
    ArtifactRecorded(ArtifactRecorded),
    StatusChanged(StatusChanged),
    FileIngested(FileIngested),
    IngestError(IngestError),
    SweepCreated(Box<crate::sweep::SweepCreated>),
    SweepChanged(crate::sweep::SweepChanged),
    TrialChanged(crate::sweep::TrialChanged),
    BenchStarted(Box<crate::bench::BenchStarted>),
    BenchMeasured(crate::bench::BenchMeasured),
    BenchChanged(crate::bench::BenchChanged),
}

impl EventKind {
    /// The experiment this fact is about, if any.
    pub fn experiment(&self) -> Option<&ExperimentId> {
        match self {
            EventKind::ExperimentCreated(e) => Some(&e.exp),
            EventKind::MetricsLogged(e) => Some(&e.exp),
            EventKind::MessageLogged(e) => Some(&e.exp),
            EventKind::SummaryRecorded(e) => Some(&e.exp),
            EventKind::ArtifactRecorded(e) => Some(&e.exp),
            EventKind::StatusChanged(e) => Some(&e.exp),
            EventKind::FileIngested(_)
            | EventKind::IngestError(_)
            | EventKind::SweepCreated(_)
            | EventKind::SweepChanged(_)
            | EventKind::TrialChanged(_)
            | EventKind::BenchStarted(_)
            | EventKind::BenchMeasured(_)
            | EventKind::BenchChanged(_) => None,
        }
    }

    /// The kind's tag, as in the stored encoding and the API.
    pub fn tag(&self) -> &'static str {
        match self {
            EventKind::ExperimentCreated(_) => "experiment_created",
            EventKind::MetricsLogged(_) => "metrics_logged",
            EventKind::MessageLogged(_) => "message_logged",
            EventKind::SummaryRecorded(_) => "summary_recorded",
            EventKind::ArtifactRecorded(_) => "artifact_recorded",
            EventKind::StatusChanged(_) => "status_changed",
            EventKind::FileIngested(_) => "file_ingested",
            EventKind::IngestError(_) => "ingest_error",
            EventKind::SweepCreated(_) => "sweep_created",
            EventKind::SweepChanged(_) => "sweep_changed",
            EventKind::TrialChanged(_) => "trial_changed",
            EventKind::BenchStarted(_) => "bench_started",
            EventKind::BenchMeasured(_) => "bench_measured",
            EventKind::BenchChanged(_) => "bench_changed",
        }
    }

    /// Metric points this fact carries (one per value).
    pub fn points(&self) -> usize {
        match self {
            EventKind::MetricsLogged(m) => m.values.len(),
            _ => 0,
        }
    }
}

/// A run began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentCreated {
    pub exp: ExperimentId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The nested configuration as given.
    pub config: Value,
    /// sha256 (hex) of the canonical config (keys sorted, compact JSON).
    pub config_hash: String,
    pub host: String,
    /// When the run started (Unix microseconds).
    pub started: i64,
    /// Fields of the `run` line labd does not know, kept as given.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// One row of metric values at one position on the x-axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLogged {
    pub exp: ExperimentId,
    #[serde(default)]
    pub split: Option<String>,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub epoch: Option<f64>,
    /// Wall time of the row (Unix seconds), when the writer gave one.
    #[serde(default)]
    pub wall_time: Option<f64>,
    /// Custom x-axes, e.g. `tokens`.
    #[serde(default, with = "crate::floats::map")]
    pub x: BTreeMap<String, f64>,
    /// Metric name → value. NaN and ±inf are kept as given (in JSON: `"NaN"`, `"Infinity"`, `"-Infinity"`);
    /// `null` values are left out.
    #[serde(with = "crate::floats::map")]
    pub values: BTreeMap<String, f64>,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A log message of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageLogged {
    pub exp: ExperimentId,
    pub level: String,
    pub text: String,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A named group of values (final/test metrics, bias metrics, ...): any nested JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecorded {
    pub exp: ExperimentId,
    pub group: String,
    pub values: Value,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A file the run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecorded {
    pub exp: ExperimentId,
    pub role: String,
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The run's status changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub exp: ExperimentId,
    pub status: RunStatus,
    #[serde(default)]
    pub notes: Option<String>,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Bytes `from..to` of a file were read (the checkpoint that makes ingestion exactly-once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileIngested {
    pub path: String,
    pub from: u64,
    pub to: u64,
    /// Complete lines read in this batch.
    pub lines: u64,
    /// Set when the file was found replaced or truncated and reading restarted at 0.
    #[serde(default)]
    pub restarted: Option<String>,
}

/// How bad an ingest problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Data was kept, but something was odd (file replaced, unknown status, ...).
    Warning,
    /// A line or file could not be used.
    Error,
}

/// A line or file that could not be ingested as it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IngestError {
    pub path: String,
    /// 1-based line, when the problem is one line.
    #[serde(default)]
    pub line: Option<u64>,
    pub severity: Severity,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One event of every kind, as written by format version 1. `samples/events-v1.msgpack` holds them
    /// encoded as the log stores them (msgpack with named fields); it must never change, and must keep decoding.
    fn samples_v1() -> Vec<Event> {
        let exp = ExperimentId("20241216_143052_baseline_a1b2c3d4".into());
        let file = Source::File {
            path: "/var/lib/labd/inbox/baseline.jsonl".into(),
            first_line: 1,
            last_line: 1,
        };
        let mut extra = Map::new();
        extra.insert("git".into(), json!("abc123"));
        vec![
            Event::new(
                1_734_359_452_000_000,
                file.clone(),
                EventKind::ExperimentCreated(ExperimentCreated {
                    exp: exp.clone(),
                    name: "baseline".into(),
                    description: Some("distilbert baseline".into()),
                    tags: vec!["bert".into()],
                    config: json!({"optim": {"lr": 0.001}, "layers": [64, 64], "seed": 1}),
                    config_hash: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
                        .into(),
                    host: "gpu01".into(),
                    started: 1_734_359_452_000_000,
                    extra: extra.clone(),
                }),
            ),
            Event::new(
                1_734_359_453_000_000,
                file.clone(),
                EventKind::MetricsLogged(MetricsLogged {
                    exp: exp.clone(),
                    split: Some("train".into()),
                    step: Some(120),
                    epoch: Some(1.0),
                    wall_time: Some(1_734_359_453.25),
                    x: [("tokens".to_string(), 61440.0)].into(),
                    values: [
                        ("loss".to_string(), 0.52),
                        ("acc".to_string(), 0.81),
                        ("gn".to_string(), f64::INFINITY),
                    ]
                    .into(),
                    extra: Map::new(),
                }),
            ),
            Event::new(
                1_734_359_454_000_000,
                Source::Http {
                    request: "POST /api/v1/experiments/x/messages".into(),
                },
                EventKind::MessageLogged(MessageLogged {
                    exp: exp.clone(),
                    level: "info".into(),
                    text: "epoch 1 done".into(),
                    extra: Map::new(),
                }),
            ),
            Event::new(
                1_734_359_455_000_000,
                file.clone(),
                EventKind::SummaryRecorded(SummaryRecorded {
                    exp: exp.clone(),
                    group: "final".into(),
                    values: json!({"test_acc": 0.91, "bias": {"gmb": [0.1, 0.2]}}),
                    extra: Map::new(),
                }),
            ),
            Event::new(
                1_734_359_456_000_000,
                file.clone(),
                EventKind::ArtifactRecorded(ArtifactRecorded {
                    exp: exp.clone(),
                    role: "checkpoint".into(),
                    path: "checkpoints/best".into(),
                    size: Some(1024),
                    sha256: Some("00".repeat(32)),
                    extra: Map::new(),
                }),
            ),
            Event::new(
                1_734_359_457_000_000,
                Source::Daemon,
                EventKind::StatusChanged(StatusChanged {
                    exp,
                    status: RunStatus::Completed,
                    notes: Some("done".into()),
                    extra,
                }),
            ),
            Event::new(
                1_734_359_458_000_000,
                file,
                EventKind::FileIngested(FileIngested {
                    path: "/var/lib/labd/inbox/baseline.jsonl".into(),
                    from: 0,
                    to: 4096,
                    lines: 42,
                    restarted: Some("file replaced or truncated".into()),
                }),
            ),
            Event::new(
                1_734_359_459_000_000,
                Source::Daemon,
                EventKind::IngestError(IngestError {
                    path: "/var/lib/labd/inbox/bad.jsonl".into(),
                    line: Some(7),
                    severity: Severity::Error,
                    reason: "not a JSON object".into(),
                }),
            ),
        ]
    }

    /// Every kind must have a sample: adding a kind without one fails to compile here.
    fn has_sample(kind: &EventKind) -> usize {
        match kind {
            EventKind::ExperimentCreated(_) => 0,
            EventKind::MetricsLogged(_) => 1,
            EventKind::MessageLogged(_) => 2,
            EventKind::SummaryRecorded(_) => 3,
            EventKind::ArtifactRecorded(_) => 4,
            EventKind::StatusChanged(_) => 5,
            EventKind::FileIngested(_) => 6,
            EventKind::IngestError(_) => 7,
            EventKind::SweepCreated(_) => 8,
            EventKind::SweepChanged(_) => 9,
            EventKind::TrialChanged(_) => 10,
            EventKind::BenchStarted(_) => 11,
            EventKind::BenchMeasured(_) => 12,
            EventKind::BenchChanged(_) => 13,
        }
    }

    /// The sweep kinds, added to format version 1 later (old logs simply have none).
    fn samples_v1_sweeps() -> Vec<Event> {
        use crate::sweep::*;
        let spec: SweepSpec = serde_json::from_value(json!({
            "sweep_id": "lr-sweep",
            "base_config": {"optim": {"lr": 0.1}, "seed": 0},
            "sweep": {"optim.lr": [0.1, 0.01], "wd": {"log_uniform": [1e-5, 1e-2]}},
            "strategy": "random", "trials": 2, "seed": 7, "repeats": 2,
            "command": "python train.py --config {config}",
            "workdir": "/home/me/proj", "parallel": 2, "timeout": 600, "max_retries": 1,
            "tags": ["lr"], "resources": {"cpus": 2, "ram": "4G", "gpus": 1, "gpu_memory": "8G"}
        }))
        .expect("sample spec");
        let trial = TrialPlan {
            id: "t_0123456789".into(),
            params: [
                ("optim.lr".to_string(), json!(0.01)),
                ("seed".to_string(), json!(1)),
            ]
            .into(),
            repeat: 1,
            config: json!({"optim": {"lr": 0.01}, "seed": 1}),
        };
        let changed = |attempt, state| {
            Event::new(
                1_734_359_470_000_000,
                Source::Daemon,
                EventKind::TrialChanged(TrialChanged {
                    sweep: "lr-sweep".into(),
                    trial: "t_0123456789".into(),
                    attempt,
                    state,
                }),
            )
        };
        vec![
            Event::new(
                1_734_359_460_000_000,
                Source::Http {
                    request: "POST /api/v1/sweeps".into(),
                },
                EventKind::SweepCreated(Box::new(SweepCreated {
                    sweep: "lr-sweep".into(),
                    spec,
                    trials: vec![trial],
                    dir: "/var/lib/labd/sweeps/lr-sweep".into(),
                })),
            ),
            Event::new(
                1_734_359_461_000_000,
                Source::Daemon,
                EventKind::SweepChanged(SweepChanged {
                    sweep: "lr-sweep".into(),
                    state: SweepState::Running,
                    reason: Some("submitted".into()),
                }),
            ),
            changed(1, TrialState::Scheduled),
            changed(
                1,
                TrialState::Started {
                    pid: 4242,
                    start_ticks: 99,
                    gpus: vec![0],
                    run_log: "/var/lib/labd/sweeps/lr-sweep/t_0123456789/run.jsonl".into(),
                },
            ),
            changed(
                1,
                TrialState::Heartbeat {
                    usage: Usage {
                        cpu: 1.5,
                        rss: 1 << 30,
                        processes: 2,
                        host_cpu: 0.5,
                        host_ram_used: 8 << 30,
                        host_ram_total: 16 << 30,
                        gpus: vec![GpuUsage {
                            index: 0,
                            util: 0.9,
                            memory_used: 4 << 30,
                            memory_total: 80 << 30,
                        }],
                    },
                },
            ),
            changed(1, TrialState::TimedOut { secs: 600.0 }),
            changed(
                1,
                TrialState::Retrying {
                    reason: "timed out".into(),
                },
            ),
            changed(
                2,
                TrialState::StartFailed {
                    reason: "no such file".into(),
                },
            ),
            changed(
                2,
                TrialState::Exited {
                    code: Some(0),
                    signal: None,
                    secs: 12.5,
                    recovered: true,
                    oom_kills: 0,
                },
            ),
            changed(2, TrialState::Cancelled),
            changed(
                2,
                TrialState::Interrupted {
                    reason: "labd restarted".into(),
                },
            ),
        ]
    }

    /// The benchmark kinds, added to format version 1 later.
    fn samples_v1_bench() -> Vec<Event> {
        use crate::bench::*;
        let mut build = Map::new();
        build.insert("labd".into(), json!("0.1.0"));
        build.insert("device".into(), json!("cpu"));
        vec![
            Event::new(
                1_734_359_480_000_000,
                Source::Http {
                    request: "POST /api/v1/benchmarks".into(),
                },
                EventKind::BenchStarted(Box::new(BenchStarted {
                    bench: "cmr-20241216-a1b2".into(),
                    suite: "cmr".into(),
                    name: "default".into(),
                    config: json!({"model": {"layers": 4}, "cmr": {"hook_layers": [1, 2]}}),
                    build,
                    host: "gpu01".into(),
                    planned: Some(42),
                    started: 1_734_359_480_000_000,
                    runner: Some("labd".into()),
                })),
            ),
            Event::new(
                1_734_359_481_000_000,
                Source::File {
                    path: "/var/lib/labd/benchmarks/cmr-20241216-a1b2/events.jsonl".into(),
                    first_line: 2,
                    last_line: 2,
                },
                EventKind::BenchMeasured(BenchMeasured {
                    bench: "cmr-20241216-a1b2".into(),
                    analysis: "overhead".into(),
                    params: json!({"sequence_length": 512, "batch_size": 1})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    values: [
                        ("baseline_time".to_string(), 0.0123),
                        ("full_cmr_time".to_string(), 0.0141),
                        ("hit_rate".to_string(), f64::NAN),
                    ]
                    .into(),
                    samples: [("baseline_time".to_string(), vec![0.0122, 0.0124])].into(),
                }),
            ),
            Event::new(
                1_734_359_482_000_000,
                Source::Daemon,
                EventKind::BenchChanged(BenchChanged {
                    bench: "cmr-20241216-a1b2".into(),
                    status: BenchStatus::Completed,
                    message: Some("42 measurements".into()),
                }),
            ),
        ]
    }

    const SAMPLES_V1_BENCH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/events-v1-bench.msgpack"
    );

    #[test]
    fn stored_bench_samples_keep_decoding() {
        let samples = samples_v1_bench();
        if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
            && !std::path::Path::new(SAMPLES_V1_BENCH).exists()
        {
            std::fs::write(SAMPLES_V1_BENCH, rmp_serde::to_vec_named(&samples).unwrap()).unwrap();
        }
        let bytes = std::fs::read(SAMPLES_V1_BENCH)
            .expect("samples/events-v1-bench.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
        let decoded: Vec<Event> =
            rmp_serde::from_slice(&bytes).expect("stored bench events must keep decoding");
        let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
        assert_eq!(kinds, [11, 12, 13]);
        // NaN never equals itself: compare the encodings instead.
        assert_eq!(
            rmp_serde::to_vec_named(&decoded).unwrap(),
            rmp_serde::to_vec_named(&samples).unwrap()
        );
    }

    const SAMPLES_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/events-v1.msgpack");
    const SAMPLES_V1_SWEEPS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/events-v1-sweeps.msgpack"
    );

    #[test]
    fn stored_sweep_samples_keep_decoding() {
        let samples = samples_v1_sweeps();
        if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
            && !std::path::Path::new(SAMPLES_V1_SWEEPS).exists()
        {
            std::fs::write(
                SAMPLES_V1_SWEEPS,
                rmp_serde::to_vec_named(&samples).unwrap(),
            )
            .unwrap();
        }
        let bytes = std::fs::read(SAMPLES_V1_SWEEPS)
            .expect("samples/events-v1-sweeps.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
        let decoded: Vec<Event> =
            rmp_serde::from_slice(&bytes).expect("stored sweep events must keep decoding");
        let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
        assert_eq!(&kinds[..3], [8, 9, 10]);
        assert_eq!(decoded, samples);
    }

    #[test]
    fn stored_samples_of_every_kind_keep_decoding() {
        let samples = samples_v1();
        if std::env::var_os("LABD_WRITE_SAMPLES").is_some() {
            std::fs::write(SAMPLES_V1, rmp_serde::to_vec_named(&samples).unwrap()).unwrap();
        }
        let bytes = std::fs::read(SAMPLES_V1)
            .expect("samples/events-v1.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
        let decoded: Vec<Event> =
            rmp_serde::from_slice(&bytes).expect("version 1 events must keep decoding");
        let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
        assert_eq!(kinds, (0..8).collect::<Vec<_>>());
        assert!(decoded.iter().all(|e| e.v == 1));
        assert_eq!(decoded, samples);
    }

    #[test]
    fn an_unknown_kind_is_rejected_not_guessed() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Future {
            TeleportLogged { exp: String },
        }
        let bytes = rmp_serde::to_vec_named(&Event::new(
            1,
            Source::Daemon,
            EventKind::MessageLogged(MessageLogged {
                exp: ExperimentId("e".into()),
                level: "info".into(),
                text: "x".into(),
                extra: Map::new(),
            }),
        ))
        .unwrap();
        assert!(rmp_serde::from_slice::<Event>(&bytes).is_ok());
        #[derive(Serialize)]
        struct Other {
            v: u16,
            time: i64,
            source: Source,
            kind: Future,
        }
        let other = rmp_serde::to_vec_named(&Other {
            v: 2,
            time: 1,
            source: Source::Daemon,
            kind: Future::TeleportLogged { exp: "e".into() },
        })
        .unwrap();
        assert!(rmp_serde::from_slice::<Event>(&other).is_err());
    }
}
