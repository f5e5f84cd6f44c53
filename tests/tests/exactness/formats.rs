//! One case written in every format labd ingests, as the library that writes that format would, and what each
//! must give back.

use crate::generate::Case;
use crate::python::{py, py_json, py_yaml};
use crate::tensorboard;
use labd_e2e::Daemon;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// A point as it must come back: value, epoch, wall time and custom axes, bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct Want {
    pub value: u64,
    pub epoch: Option<u64>,
    pub wall: Option<u64>,
    pub tokens: Option<u64>,
}

fn want(value: f64, epoch: Option<f64>, wall: Option<f64>, tokens: Option<f64>) -> Want {
    Want {
        value: value.to_bits(),
        epoch: epoch.map(f64::to_bits),
        wall: wall.map(f64::to_bits),
        tokens: tokens.map(f64::to_bits),
    }
}

/// A run written by a case: its name, each metric's points, its config and a summary as they must come back
/// (where the format has them).
pub struct Expected {
    pub name: String,
    pub metrics: BTreeMap<String, Vec<Want>>,
    pub config: Option<Value>,
    pub summary: Option<(String, Value)>,
}

impl Expected {
    fn new(name: String, key: &str, points: Vec<Want>) -> Expected {
        Expected {
            name,
            metrics: BTreeMap::from([(key.to_string(), points)]),
            config: None,
            summary: None,
        }
    }

    fn config(mut self, config: Value) -> Expected {
        self.config = Some(config);
        self
    }
}

fn f(x: f64) -> Value {
    Value::from(x)
}

/// Writes `data` to `path` whole: into a hidden file beside it, then renamed into place.
fn put(path: &Path, data: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::write(&tmp, data).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The config every format that has one carries (each format writes it its own way).
fn config_of(c: &Case) -> Value {
    json!({"seed": c.int, "wide": c.wide, "lr": c.float, "layers": [c.int, 3, -0.0]})
}

/// The config of the formats whose parameters are flat text or YAML.
fn flat_config(c: &Case) -> Value {
    json!({"seed": c.int, "wide": c.wide, "lr": c.float})
}

fn summary_of(c: &Case) -> Value {
    json!({"f1": c.values[0], "nested": {"all": c.values, "count": c.int}})
}

/// Points with every axis the run log has.
fn all_axes(c: &Case) -> Vec<Want> {
    (0..c.values.len())
        .map(|i| {
            want(
                c.values[i],
                Some(c.epochs[i]),
                Some(c.walls[i]),
                Some(c.tokens[i]),
            )
        })
        .collect()
}

/// Writes `c` in every format into `inbox` (names carry `n`), and answers what must come back.
pub fn write_case(d: &Daemon, inbox: &Path, n: usize, c: &Case) -> Vec<Expected> {
    vec![
        runlog(inbox, n, c),
        push(d, n, c),
        drgen(inbox, n, c),
        trainer_state(inbox, n, c),
        lightning(inbox, n, c),
        mlflow_files(inbox, n, c),
        mlflow_sqlite(inbox, n, c),
        experiment_manager(inbox, n, c),
        tensorboard_events(inbox, n, c),
    ]
}

/// The labd run log, as Python's json.dumps writes it.
fn runlog(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("runlog{n}");
    let mut text = py_json(&json!({"kind": "run", "name": name, "config": config_of(c)})) + "\n";
    for i in 0..c.values.len() {
        text += &py_json(&json!({"kind": "metrics", "split": "train", "step": i,
            "epoch": f(c.epochs[i]), "time": f(c.walls[i]), "x": {"tokens": f(c.tokens[i])},
            "values": {"loss": f(c.values[i])}}));
        text.push('\n');
    }
    text += &py_json(&json!({"kind": "summary", "group": "final", "values": summary_of(c)}));
    text += "\n{\"kind\": \"status\", \"status\": \"completed\"}\n";
    put(&inbox.join(format!("runlog/{name}.jsonl")), text);
    let mut e = Expected::new(name, "train/loss", all_axes(c)).config(config_of(c));
    e.summary = Some(("final".into(), summary_of(c)));
    e
}

/// Pushed over HTTP (serde_json's own float printing on the way in).
fn push(d: &Daemon, n: usize, c: &Case) -> Expected {
    let name = format!("push{n}");
    let (status, created) = d.post(
        "/experiments",
        &json!({"name": name, "config": config_of(c)}),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let rows: Vec<Value> = (0..c.values.len())
        .map(|i| {
            json!({"split": "train", "step": i, "epoch": f(c.epochs[i]), "time": f(c.walls[i]),
                "x": {"tokens": f(c.tokens[i])}, "values": {"loss": f(c.values[i])}})
        })
        .collect();
    let (status, answer) = d.post(
        &format!("/experiments/{id}/metrics"),
        &json!({ "rows": rows }),
    );
    assert_eq!(status, 201, "{answer}");
    Expected::new(name, "train/loss", all_axes(c)).config(config_of(c))
}

/// dr_gen's one-run-per-line form (points at epochs 0, 1, ...).
fn drgen(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("drgen{n}");
    let line = py_json(&json!({"run_id": name, "hyperparameters": config_of(c),
        "metrics": {"train/loss": c.values}}));
    put(&inbox.join(format!("drgen{n}/results.jsonl")), line + "\n");
    let points = (0..c.values.len())
        .map(|i| want(c.values[i], Some(i as f64), None, None))
        .collect();
    Expected::new(name, "train/loss", points).config(config_of(c))
}

/// The Hugging Face Trainer's trainer_state.json (its trial_params are the config).
fn trainer_state(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("hf{n}");
    let len = c.values.len();
    let history: Vec<Value> = (0..len)
        .map(|i| json!({"loss": f(c.values[i]), "epoch": f(c.epochs[i]), "step": i + 1}))
        .collect();
    let state = json!({"log_history": history, "max_steps": len, "trial_params": config_of(c)});
    put(
        &inbox.join(format!("hf/{name}/trainer_state.json")),
        py_json(&state),
    );
    let mut config = config_of(c);
    config["max_steps"] = json!(len);
    let points = (0..len)
        .map(|i| want(c.values[i], Some(c.epochs[i]), None, None))
        .collect();
    Expected::new(name, "train/loss", points).config(config)
}

/// Lightning's CSVLogger: metrics.csv (Python's csv module writes str(float)) and hparams.yaml (PyYAML).
fn lightning(inbox: &Path, n: usize, c: &Case) -> Expected {
    let dir = inbox.join(format!("lightning{n}/version_0"));
    let yaml = format!(
        "lr: {}\nseed: {}\nwide: {}\n",
        py_yaml(c.float),
        c.int,
        c.wide
    );
    put(&dir.join("hparams.yaml"), yaml);
    let mut csv = String::from("epoch,step,train_loss\n");
    for i in 0..c.values.len() {
        csv += &format!("{},{i},{}\n", py(c.epochs[i]), py(c.values[i]));
    }
    put(&dir.join("metrics.csv"), csv);
    let points = (0..c.values.len())
        .map(|i| want(c.values[i], Some(c.epochs[i]), None, None))
        .collect();
    Expected::new(format!("lightning{n}-version_0"), "train/loss", points).config(flat_config(c))
}

/// MLflow's metric timestamps (ms) as labd's wall times (s).
fn mlflow_wall(i: usize) -> f64 {
    (1_700_000_000_000i64 + i as i64) as f64 / 1000.0
}

/// MLflow's parameters, as it stores them: text.
fn mlflow_params(c: &Case) -> [(&'static str, String); 3] {
    [
        ("seed", c.int.to_string()),
        ("wide", c.wide.to_string()),
        ("lr", py(c.float)),
    ]
}

/// MLflow's file store: params as text, metric lines "timestamp value step".
fn mlflow_files(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("mlflow{n}");
    let run = inbox.join(format!("mlflow{n}/mlruns/1/run{n:08}"));
    for (k, v) in mlflow_params(c) {
        put(&run.join("params").join(k), v);
    }
    let mut lines = String::new();
    for (i, v) in c.values.iter().enumerate() {
        lines += &format!("{} {} {i}\n", 1_700_000_000_000u64 + i as u64, py(*v));
    }
    put(&run.join("metrics/loss"), lines);
    put(
        &inbox.join(format!("mlflow{n}/mlruns/1/meta.yaml")),
        "experiment_id: '1'\nlifecycle_stage: active\nname: exact\n",
    );
    put(
        &run.join("meta.yaml"),
        format!(
            "experiment_id: '1'\nlifecycle_stage: active\nrun_id: run{n:08}\nrun_name: {name}\n\
             start_time: 1700000000000\nend_time: 1700000100000\nstatus: 3\nuser_id: test\n"
        ),
    );
    let points = (0..c.values.len())
        .map(|i| want(c.values[i], None, Some(mlflow_wall(i)), None))
        .collect();
    Expected::new(name, "loss", points).config(flat_config(c))
}

/// MLflow's SQLite store: metric values are REAL (8-byte doubles), written through SQLite.
fn mlflow_sqlite(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("mlflowdb{n}");
    let tmp = inbox.join(format!(".mlflowdb{n}.db"));
    let db = rusqlite::Connection::open(&tmp).expect("sqlite");
    db.execute_batch(
        "CREATE TABLE experiments (experiment_id INTEGER, name TEXT);
         CREATE TABLE runs (run_uuid TEXT, name TEXT, experiment_id INTEGER, status TEXT,
             start_time INTEGER, end_time INTEGER, lifecycle_stage TEXT);
         CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT);
         CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT);
         CREATE TABLE metrics (key TEXT, value REAL, timestamp INTEGER, step INTEGER,
             is_nan BOOLEAN, run_uuid TEXT);
         INSERT INTO experiments VALUES (1, 'exact');",
    )
    .expect("schema");
    let uuid = format!("db{n:030}");
    db.execute(
        "INSERT INTO runs VALUES (?1, ?2, 1, 'FINISHED', 1700000000000, 1700000100000, 'active')",
        rusqlite::params![uuid, name],
    )
    .expect("run");
    for (k, v) in mlflow_params(c) {
        db.execute(
            "INSERT INTO params VALUES (?1, ?2, ?3)",
            rusqlite::params![k, v, uuid],
        )
        .expect("param");
    }
    for (i, v) in c.values.iter().enumerate() {
        db.execute(
            "INSERT INTO metrics VALUES ('loss', ?1, ?2, ?3, 0, ?4)",
            rusqlite::params![v, 1_700_000_000_000i64 + i as i64, i as i64, uuid],
        )
        .expect("metric");
    }
    // What SQLite holds is what MLflow itself reads back: it stores -0.0 in a REAL column as 0.
    let stored: Vec<f64> = db
        .prepare("SELECT value FROM metrics ORDER BY step")
        .and_then(|mut q| {
            q.query_map([], |r| r.get::<_, f64>(0))?
                .collect::<Result<_, _>>()
        })
        .expect("values");
    drop(db);
    let dir = inbox.join(format!("mlflowdb{n}"));
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::rename(&tmp, dir.join("mlflow.db")).expect("rename");
    let points = stored
        .iter()
        .enumerate()
        .map(|(i, v)| want(*v, None, Some(mlflow_wall(i)), None))
        .collect();
    Expected::new(name, "loss", points).config(flat_config(c))
}

/// The experiment manager's folders: config.json, training_history.json, final_summary.json, the registry.
fn experiment_manager(inbox: &Path, n: usize, c: &Case) -> Expected {
    let id = format!("20241216_143052_em{n}_a1b2c3d4");
    let dir = inbox.join(format!("expmgr{n}"));
    put(&dir.join(&id).join("config.json"), py_json(&config_of(c)));
    put(
        &dir.join(&id).join("metrics/training_history.json"),
        py_json(&json!({ "train_loss": c.values })),
    );
    put(
        &dir.join(&id).join("metrics/final_summary.json"),
        py_json(&summary_of(c)),
    );
    let registry = json!({"experiments": [{"experiment_id": id, "timestamp": "2024-12-16T14:30:52",
        "status": "completed", "custom_name": format!("expmgr{n}"), "config": config_of(c),
        "directory": format!("./experiments/{id}")}]});
    put(&dir.join("experiment_registry.json"), py_json(&registry));
    let points = (0..c.values.len())
        .map(|i| want(c.values[i], Some(i as f64), None, None))
        .collect();
    let mut e = Expected::new(format!("expmgr{n}"), "train/loss", points).config(config_of(c));
    e.summary = Some(("final".into(), summary_of(c)));
    e
}

/// TensorBoard: simple_value (f32, widened exactly) and a DT_DOUBLE scalar tensor, each record at its wall time.
fn tensorboard_events(inbox: &Path, n: usize, c: &Case) -> Expected {
    let name = format!("tb{n}");
    let wall = |i: usize| c.walls[i].max(1.0);
    let mut bytes = Vec::new();
    for i in 0..c.values.len() {
        bytes.extend(tensorboard::record(
            i as i64,
            wall(i),
            c.singles[i],
            c.values[i],
        ));
    }
    put(
        &inbox.join(format!(
            "tb/{name}/events.out.tfevents.1700000000.host.{n}.0"
        )),
        bytes,
    );
    let singles = (0..c.values.len())
        .map(|i| want(f64::from(c.singles[i]), None, Some(wall(i)), None))
        .collect();
    let doubles = (0..c.values.len())
        .map(|i| want(c.values[i], None, Some(wall(i)), None))
        .collect();
    let mut e = Expected::new(name, "train/loss", singles);
    e.metrics.insert("train/exact".into(), doubles);
    e
}
