//! The event model's tests: samples of every kind keep decoding, JSON and msgpack round trips.

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
            EventKind::ExperimentCreated(Box::new(ExperimentCreated {
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
                project: None,
            })),
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
                held: None,
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
        EventKind::ProjectCreated(_) => 14,
        EventKind::ProjectChanged(_) => 15,
        EventKind::RunChanged(_) => 16,
        EventKind::TrialAdded(_) => 17,
        EventKind::AlertRuleSet(_) => 18,
        EventKind::AlertRuleRemoved(_) => 19,
        EventKind::AlertFired(_) => 20,
        EventKind::AlertDelivered(_) => 21,
    }
}

/// The alert kinds, added to format version 1 later: a rule set and removed, firings (a NaN point, a stall),
/// deliveries of each outcome.
fn samples_v1_alerts() -> Vec<Event> {
    use crate::alert::*;
    let rule = AlertRule {
        name: "loss-nan".into(),
        kind: AlertKind::Nan,
        metric: Some("loss*".into()),
        above: None,
        below: None,
        factor: None,
        points: None,
        after: None,
        runs: Some("bert-*".into()),
        sweeps: None,
        sinks: Some(vec!["journal".into(), "ops".into()]),
        max_per_minute: Some(5),
    };
    let at = |kind| Event::new(1_796_580_000_000_000, Source::Daemon, kind);
    vec![
        at(EventKind::AlertRuleSet(Box::new(AlertRuleSet {
            rule,
            from: RuleFrom::Api,
        }))),
        at(EventKind::AlertFired(Box::new(AlertFired {
            rule: "loss-nan".into(),
            kind: AlertKind::Nan,
            subject: Subject {
                run: Some(ExperimentId("20261206_190000_bert-a_0a1b2c3d".into())),
                metric: Some("loss".into()),
                sweep: None,
                trial: None,
            },
            step: Some(120),
            value: Some(f64::INFINITY),
            trigger: Some(4711),
            message: "loss is inf at step 120".into(),
        }))),
        at(EventKind::AlertDelivered(AlertDelivered {
            firing: 4712,
            sink: "ops".into(),
            outcome: Delivery::Delivered,
            attempts: 2,
            error: None,
        })),
        at(EventKind::AlertDelivered(AlertDelivered {
            firing: 4712,
            sink: "pager".into(),
            outcome: Delivery::Failed,
            attempts: 5,
            error: Some("HTTP 503".into()),
        })),
        at(EventKind::AlertDelivered(AlertDelivered {
            firing: 4712,
            sink: "cmd".into(),
            outcome: Delivery::HeldBack,
            attempts: 0,
            error: None,
        })),
        at(EventKind::AlertFired(Box::new(AlertFired {
            rule: "silent".into(),
            kind: AlertKind::Stall,
            subject: Subject {
                run: Some(ExperimentId("r".into())),
                ..Default::default()
            },
            step: None,
            value: None,
            trigger: None,
            message: "no new point for 600 s".into(),
        }))),
        at(EventKind::AlertRuleRemoved(AlertRuleRemoved {
            name: "loss-nan".into(),
            from: RuleFrom::Config,
        })),
    ]
}

const SAMPLES_V1_ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/events-v1-alerts.msgpack"
);

#[test]
fn stored_alert_samples_keep_decoding() {
    let samples = samples_v1_alerts();
    if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
        && !std::path::Path::new(SAMPLES_V1_ALERTS).exists()
    {
        std::fs::write(
            SAMPLES_V1_ALERTS,
            rmp_serde::to_vec_named(&samples).unwrap(),
        )
        .unwrap();
    }
    let bytes = std::fs::read(SAMPLES_V1_ALERTS)
        .expect("samples/events-v1-alerts.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
    let decoded: Vec<Event> =
        rmp_serde::from_slice(&bytes).expect("stored alert events must keep decoding");
    let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
    assert_eq!(kinds, [18, 20, 21, 21, 21, 20, 19]);
    assert_eq!(decoded, samples);
}

/// The choice of a model-based sweep, added to format version 1 later.
fn samples_v1_trial_added() -> Vec<Event> {
    use crate::sweep::*;
    vec![Event::new(
        1_796_580_000_000_000,
        Source::Daemon,
        EventKind::TrialAdded(Box::new(TrialAdded {
            sweep: "tpe-sweep".into(),
            trial: TrialPlan {
                id: "t_0a1b2c3d4e5f".into(),
                params: [("optim.lr".to_string(), json!(0.0123))].into(),
                repeat: 0,
                config: json!({"optim": {"lr": 0.0123}}),
            },
            number: 11,
            reason: "tpe: from 11 results, the best 2 as the good ones".into(),
        })),
    )]
}

const SAMPLES_V1_TRIAL_ADDED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/events-v1-trial-added.msgpack"
);

#[test]
fn stored_trial_added_samples_keep_decoding() {
    let samples = samples_v1_trial_added();
    if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
        && !std::path::Path::new(SAMPLES_V1_TRIAL_ADDED).exists()
    {
        std::fs::write(
            SAMPLES_V1_TRIAL_ADDED,
            rmp_serde::to_vec_named(&samples).unwrap(),
        )
        .unwrap();
    }
    let bytes = std::fs::read(SAMPLES_V1_TRIAL_ADDED)
        .expect("samples/events-v1-trial-added.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
    let decoded: Vec<Event> =
        rmp_serde::from_slice(&bytes).expect("stored trial_added events must keep decoding");
    let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
    assert_eq!(kinds, [17]);
    assert_eq!(decoded, samples);
}

/// The project kinds (MLflow's experiments and the later changes of its runs), added to format version 1
/// later, and a run created in a project.
fn samples_v1_projects() -> Vec<Event> {
    let http = |path: &str| Source::Http {
        request: format!("POST /api/2.0/mlflow/{path}"),
    };
    let exp = ExperimentId("20261206_164605_parent_44136fa3".into());
    let mut extra = Map::new();
    extra.insert("source_format".into(), json!("mlflow-api"));
    extra.insert("mlflow_user".into(), json!("ana"));
    vec![
        Event::new(
            1_796_571_605_000_000,
            http("experiments/create"),
            EventKind::ProjectCreated(ProjectCreated {
                project: "1".into(),
                name: "scenario".into(),
                tags: [("team".to_string(), "vision".to_string())].into(),
                artifact_location: Some("/data/art".into()),
                extra: Map::new(),
            }),
        ),
        Event::new(
            1_796_571_606_000_000,
            http("experiments/update"),
            EventKind::ProjectChanged(ProjectChanged {
                project: "1".into(),
                name: Some("renamed".into()),
                deleted: Some(true),
                set_tags: [("owner".to_string(), "ana".to_string())].into(),
                removed_tags: vec!["team".into()],
            }),
        ),
        Event::new(
            1_796_571_607_000_000,
            http("runs/log-batch"),
            EventKind::RunChanged(RunChanged {
                exp: exp.clone(),
                name: Some("parent-2".into()),
                params: [("lr".to_string(), "0.0100".to_string())].into(),
                set_tags: [("mlflow.runName".to_string(), "parent-2".to_string())].into(),
                removed_tags: vec!["note".into()],
                deleted: Some(false),
                inputs: vec![json!({"dataset": {"name": "d", "digest": "1"}, "tags": []})],
            }),
        ),
        Event::new(
            1_796_571_604_000_000,
            http("runs/create"),
            EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                exp,
                name: "parent".into(),
                description: None,
                tags: vec!["team=vision".into()],
                config: json!({}),
                config_hash: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                    .into(),
                host: "gpu01".into(),
                started: 1_796_571_604_000_000,
                extra,
                project: Some("1".into()),
            })),
        ),
    ]
}

const SAMPLES_V1_PROJECTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/events-v1-projects.msgpack"
);

#[test]
fn stored_project_samples_keep_decoding() {
    let samples = samples_v1_projects();
    if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
        && !std::path::Path::new(SAMPLES_V1_PROJECTS).exists()
    {
        std::fs::write(
            SAMPLES_V1_PROJECTS,
            rmp_serde::to_vec_named(&samples).unwrap(),
        )
        .unwrap();
    }
    let bytes = std::fs::read(SAMPLES_V1_PROJECTS)
        .expect("samples/events-v1-projects.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
    let decoded: Vec<Event> =
        rmp_serde::from_slice(&bytes).expect("stored project events must keep decoding");
    let kinds: Vec<usize> = decoded.iter().map(|e| has_sample(&e.kind)).collect();
    assert_eq!(kinds, [14, 15, 16, 0]);
    assert_eq!(decoded, samples);
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
            EventKind::TrialChanged(Box::new(TrialChanged {
                sweep: "lr-sweep".into(),
                trial: "t_0123456789".into(),
                attempt,
                state,
            })),
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

/// The Slurm executor's facts (added to format version 1 later): a Slurm sweep, every Slurm trial state, a
/// paused and a failed sweep.
fn samples_v1_slurm() -> Vec<Event> {
    use crate::sweep::*;
    let spec: SweepSpec = serde_json::from_value(json!({
        "sweep_id": "cluster-lr",
        "sweep": {"optim.lr": [0.1, 0.01]},
        "command": "python train.py {config}",
        "executor": "slurm",
        "slurm": {"partition": "gpu", "gres": "gpu:1", "time": "1:00:00", "pack": 2,
                  "array_parallelism": 4, "extra_args": ["--exclusive"]},
    }))
    .expect("a Slurm spec");
    let at = |n: i64| 1_734_359_500_000_000 + n;
    let changed = |n: i64, attempt: u32, state: TrialState| {
        Event::new(
            at(n),
            Source::Daemon,
            EventKind::TrialChanged(Box::new(TrialChanged {
                sweep: "cluster-lr".into(),
                trial: "t_0001".into(),
                attempt,
                state,
            })),
        )
    };
    let sweep = |n: i64, state: SweepState, reason: &str| {
        Event::new(
            at(n),
            Source::Daemon,
            EventKind::SweepChanged(SweepChanged {
                sweep: "cluster-lr".into(),
                state,
                reason: Some(reason.into()),
            }),
        )
    };
    vec![
        Event::new(
            at(0),
            Source::Daemon,
            EventKind::SweepCreated(Box::new(SweepCreated {
                sweep: "cluster-lr".into(),
                spec,
                trials: Vec::new(),
                dir: "/shared/labd/sweeps/cluster-lr".into(),
            })),
        ),
        changed(
            1,
            1,
            TrialState::Submitting {
                batch: "cluster-lr-1734359500000001".into(),
            },
        ),
        changed(
            2,
            1,
            TrialState::Submitted {
                job: "4242".into(),
                task: 3,
            },
        ),
        changed(
            3,
            1,
            TrialState::SlurmStarted {
                job: "4242".into(),
                task: 3,
                node: "gpu07".into(),
                gpus: vec!["0".into()],
                run_log: "/shared/labd/sweeps/cluster-lr/t_0001/attempt-1/run.jsonl".into(),
            },
        ),
        changed(
            4,
            1,
            TrialState::SlurmEnded {
                job: "4242".into(),
                task: 3,
                slurm_state: "PREEMPTED".into(),
                code: None,
                signal: Some(15),
                secs: Some(61.0),
                max_rss: Some(1 << 30),
                cpu_secs: Some(58.5),
            },
        ),
        changed(
            5,
            1,
            TrialState::Requeued {
                reason: "Slurm: PREEMPTED (job 4242, task 3)".into(),
            },
        ),
        sweep(6, SweepState::Paused, "paused"),
        sweep(
            7,
            SweepState::Failed,
            "sbatch refused the job: Invalid partition name specified",
        ),
    ]
}

const SAMPLES_V1_SLURM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/samples/events-v1-slurm.msgpack"
);

#[test]
fn stored_slurm_samples_keep_decoding() {
    let samples = samples_v1_slurm();
    if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
        && !std::path::Path::new(SAMPLES_V1_SLURM).exists()
    {
        std::fs::write(SAMPLES_V1_SLURM, rmp_serde::to_vec_named(&samples).unwrap()).unwrap();
    }
    let bytes = std::fs::read(SAMPLES_V1_SLURM)
        .expect("samples/events-v1-slurm.msgpack (LABD_WRITE_SAMPLES=1 writes it once)");
    let decoded: Vec<Event> =
        rmp_serde::from_slice(&bytes).expect("stored Slurm events must keep decoding");
    assert_eq!(decoded, samples);
}

#[test]
fn an_event_from_another_host_keeps_its_origin_and_local_ones_carry_none() {
    let local = Event::new(
        7,
        Source::Daemon,
        EventKind::MessageLogged(MessageLogged {
            exp: ExperimentId("e".into()),
            level: "info".into(),
            text: "x".into(),
            extra: Map::new(),
        }),
    );
    let bytes = rmp_serde::to_vec_named(&local).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains("origin"),
        "no bytes spent on local events"
    );
    let mut remote = local.clone();
    remote.origin = Some(Box::new(Origin {
        host: "gpu7".into(),
        seq: 1234,
        id: Some("20241216_143052_baseline_a1b2c3d4".into()),
    }));
    let back: Event = rmp_serde::from_slice(&rmp_serde::to_vec_named(&remote).unwrap()).unwrap();
    assert_eq!(back, remote);
    let json: Event = serde_json::from_value(serde_json::to_value(&remote).unwrap()).unwrap();
    assert_eq!(json.origin.unwrap().host, "gpu7");
}

/// Events are moved from source to batch to writer: every kind larger than a metrics row is boxed, so an event
/// stays a metrics row's size (344 bytes before, 240 now).
#[test]
fn an_event_is_no_larger_than_a_metrics_row_needs() {
    use std::mem::size_of;
    assert!(size_of::<EventKind>() <= size_of::<MetricsLogged>() + 8);
    assert!(size_of::<Event>() <= 240, "{}", size_of::<Event>());
}
