//! MLflow's tracking API: unchanged MLflow clients logging into labd.
//!
//! The client test runs `tests/mlflow/scenario.py` (the real `mlflow` client from PyPI, named by
//! `LABD_MLFLOW_PYTHON`) against labd, checks what it reads back and what labd's own API shows, that it all
//! survives kill -9, and, when `LABD_MLFLOW_SERVER_PYTHON` names a Python with the full `mlflow` package, runs the
//! same scenario against a real `mlflow server` (SQLite store, proxied artifacts) and requires the same answers.
//! Without the Pythons these tests say so and pass, unless `LABD_REQUIRE_MLFLOW=1` (scripts/test.sh sets it and
//! installs both). The HTTP-level test needs nothing beyond labd.

use labd_e2e::{Daemon, free_port, repo_root, request_path};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var("LABD_REQUIRE_MLFLOW").is_ok_and(|v| v == "1")
}

/// The Python named by `var`, if it imports `mlflow`.
fn python(var: &str) -> Option<PathBuf> {
    let Some(p) = std::env::var_os(var).map(PathBuf::from) else {
        assert!(!required(), "LABD_REQUIRE_MLFLOW=1 but {var} is not set");
        eprintln!("skipped: set {var} to a Python with mlflow (tests/mlflow/*requirements.txt)");
        return None;
    };
    let ok = Command::new(&p)
        .args(["-c", "import mlflow"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} cannot import mlflow", p.display());
    Some(p)
}

/// Runs the scenario against `uri`; the document it wrote.
fn scenario(python: &Path, uri: &str, dir: &Path, token: Option<&str>) -> Value {
    let out = dir.join(format!("scenario-{}.json", free_port()));
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("tests/mlflow/scenario.py"))
        .arg(&out)
        .current_dir(dir)
        .env("MLFLOW_TRACKING_URI", uri)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env_remove("MLFLOW_TRACKING_TOKEN");
    if let Some(t) = token {
        cmd.env("MLFLOW_TRACKING_TOKEN", t);
    }
    let o = cmd.output().expect("python");
    assert!(
        o.status.success(),
        "scenario against {uri} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).expect("scenario output")).expect("json")
}

/// What two servers must agree on: ids out; MLflow's SQL store's ±1.797e308 for ±infinity (it clamps;
/// labd keeps the infinity) read as the infinity, and its 0.0 for −0.0 (it loses the sign; labd keeps it, as
/// the test asserts of labd's answers before comparing).
fn comparable(mut doc: Value) -> Value {
    if let Value::Object(m) = &mut doc {
        m.remove("run_id");
        m.remove("logger_run_id");
    }
    let text = serde_json::to_string(&doc).expect("json");
    let text = text
        .replace("\"-1.7976931348623157e+308\"", "\"-inf\"")
        .replace("\"1.7976931348623157e+308\"", "\"inf\"")
        .replace("\"-0.0\"", "\"0.0\"");
    serde_json::from_str(&text).expect("json")
}

/// A real `mlflow server` on a free port, killed on drop.
struct MlflowServer {
    child: Child,
    uri: String,
}

impl MlflowServer {
    fn start(python: &Path, dir: &Path) -> MlflowServer {
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).expect("log"),
            ))
            .spawn()
            .expect("mlflow server");
        let uri = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || request_path(&uri, "GET", "/health", None, None).0 != 200
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "mlflow server did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        MlflowServer { child, uri }
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_unchanged_mlflow_client_logs_into_labd_as_into_an_mlflow_server() {
    let Some(py) = python("LABD_MLFLOW_PYTHON") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let doc = scenario(&py, &d.addr, tmp.path(), None);

    // What the client reads back.
    assert_eq!(
        doc["errors"],
        json!({
            "bad_key": "INVALID_PARAMETER_VALUE",
            "deleted_run": "INVALID_PARAMETER_VALUE",
            "duplicate_experiment": "RESOURCE_ALREADY_EXISTS",
            "missing_tag": "RESOURCE_DOES_NOT_EXIST",
            "no_experiment": "RESOURCE_DOES_NOT_EXIST",
            "no_run": "RESOURCE_DOES_NOT_EXIST",
            "or_filter": "INVALID_PARAMETER_VALUE",
            "param_changed": "INVALID_PARAMETER_VALUE",
            "param_same": null,
            "too_many_params": "INVALID_PARAMETER_VALUE",
        })
    );
    assert_eq!(
        doc["history_loss"],
        json!([
            [0, "1.0"],
            [1, "0.5"],
            [2, "0.3333333333333333"],
            [3, "0.25"],
            [4, "0.2"],
            [4, "0.125"]
        ])
    );
    assert_eq!(doc["history_batch"].as_array().map(Vec::len), Some(1000));
    assert_eq!(
        doc["history_batch"][3],
        json!([3, 1_700_000_000_003i64, "0.30000000000000004"])
    );
    assert_eq!(
        doc["history_dup"],
        json!([
            [0, 1_700_000_000_000i64, "1.0"],
            [0, 1_700_000_000_000i64, "2.0"],
            [1, 1_700_000_000_001i64, "3.0"]
        ]),
        "a point sent twice is kept once, as MLflow keeps it"
    );
    assert_eq!(doc["search"], json!(["parent"]));
    assert_eq!(doc["search_status"], json!(["failing"]));
    assert_eq!(doc["paged"], doc["search_order"]);
    assert_eq!(
        doc["active_runs"],
        json!([
            "child",
            "ended-by-hand",
            "failing",
            "killed-renamed",
            "parent"
        ])
    );
    assert_eq!(doc["artifact_text"], "hello world\n");
    assert_eq!(doc["artifacts_texts"], json!([["texts/hello.txt", 12]]));
    let parent = doc["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "parent"))
        .expect("parent run")
        .clone();
    assert_eq!(parent["status"], "FINISHED");
    assert_eq!(
        parent["metrics"],
        json!({"acc": "0.5", "batch_m": "99.9", "dup": "3.0", "inf_metric": "inf", "loss": "0.125", "nan_metric": "nan",
               "neg_zero": "-0.0", "ninf": "-inf", "third": "0.3333333333333333", "tiny": "5e-324",
               "train/loss": "0.75"})
    );
    assert_eq!(
        parent["params"]["beta"], "0.9000",
        "parameters come back as the text logged"
    );
    assert_eq!(
        parent["inputs"],
        json!([["data", "d1", ["train"]], ["data", "d2", ["test"]]])
    );
    assert_eq!(
        doc["lifecycle_deleted"],
        json!({
            "experiment": "deleted",
            "runs": [["deleted-before", "deleted"], ["kept", "deleted"]],
            "active_runs": [],
            "active_experiments": ["Default", "lightning_logs", "scenario"],
            "log_to_run": "INVALID_PARAMETER_VALUE",
            "new_run": "INVALID_PARAMETER_VALUE",
            "tag": "INVALID_PARAMETER_VALUE",
            "delete_again": "RESOURCE_DOES_NOT_EXIST",
        }),
        "an experiment's deletion takes its runs along"
    );
    assert_eq!(
        doc["lifecycle_restored"]["runs"],
        json!([["deleted-before", "active"], ["kept", "active"]]),
        "and its restoring brings every run back, as MLflow's store does"
    );
    assert_eq!(
        doc["lifecycle_final"],
        json!({"name": "lifecycle-renamed", "tags": [["k", "v"]], "old_name": null,
               "runs": [["deleted-before", "active"], ["kept", "active"]]})
    );
    assert_eq!(
        doc["long_values"],
        json!([7000, 9000]),
        "long parameter and tag values are taken and kept whole"
    );
    assert_eq!(doc["bulk_runs"]["one_bound"], "INVALID_PARAMETER_VALUE");
    assert_eq!(
        doc["bulk_runs"]["all"].as_array().map(|m| m
            .iter()
            .map(|m| (m[0].clone(), m[1].clone()))
            .collect::<Vec<_>>()),
        Some(
            [
                ("every", 0),
                ("every", 13),
                ("every", 26),
                ("every", 50),
                ("third", 0),
                ("third", 27),
                ("third", 54),
                ("third", 99)
            ]
            .map(|(r, s)| (json!(r), json!(s)))
            .to_vec()
        ),
        "each run sampled on its own, its last point kept: {}",
        doc["bulk_runs"]["all"]
    );
    assert_eq!(
        doc["artifacts_ui_list"],
        json!([{"path": "texts/hello.txt", "is_dir": false, "file_size": 12}])
    );
    assert_eq!(
        doc["artifacts_ui_store"],
        json!({"files": [{"path": "config.json", "is_dir": false, "file_size": 12}]})
    );
    assert_eq!(doc["artifact_ui_download"], "just text");

    // What labd's own API shows of the same runs.
    let id = doc["run_id"].as_str().expect("run id").to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["name"], "parent");
    assert_eq!(show["status"], "completed");
    assert_eq!(show["config"]["lr"], 0.01);
    assert_eq!(show["config"]["optimizer"], "adam");
    assert_eq!(show["metrics"]["loss"]["points"], 6);
    let hello = show["artifacts"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|a| {
                a["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("texts/hello.txt"))
            })
        })
        .expect("hello.txt recorded");
    assert_eq!(
        hello["sha256"],
        "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
    );
    let (_, nan) = d.get(&format!("/experiments/{id}/metrics/nan_metric"));
    assert_eq!(nan["points"][0]["repr"], "NaN");
    let logger = d.labctl_json(&["show", doc["logger_run_id"].as_str().expect("logger run")]);
    assert_eq!(logger["metrics"]["train_loss"]["points"], 20);
    assert_eq!(logger["config"]["hidden"], 128);
    assert_eq!(
        d.ls().len(),
        12,
        "every run the script made, deleted ones too"
    );
    assert_eq!(logger["project"], "2");
    let in_project = d.labctl_json(&["ls", "--where", "project == \"2\""]);
    assert_eq!(
        in_project
            .as_array()
            .map(|r| r.iter().map(|r| r["name"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("logger-run")]),
        "the MLflow experiment is the runs' project: {in_project}"
    );

    // Every answer was durable when the client had it.
    let run_get = |d: &Daemon| {
        request_path(
            &d.addr,
            "GET",
            &format!("/api/2.0/mlflow/runs/get?run_id={id}"),
            None,
            None,
        )
    };
    let before = run_get(&d);
    let history = |d: &Daemon| {
        request_path(
            &d.addr,
            "GET",
            &format!("/api/2.0/mlflow/metrics/get-history?run_id={id}&metric_key=batch_m"),
            None,
            None,
        )
    };
    let history_before = history(&d);
    d.kill9();
    d.restart();
    assert_eq!(run_get(&d), before);
    assert_eq!(history(&d), history_before);
    // And views rebuilt from the log alone give the same answers.
    let report = d.labctl_json(&["replay"]);
    assert!(report.is_object(), "{report}");
    assert_eq!(run_get(&d), before);
    assert_eq!(history(&d), history_before);

    // The same script against a real MLflow server records the same.
    let Some(server_py) = python("LABD_MLFLOW_SERVER_PYTHON") else {
        return;
    };
    let server_dir = tmp.path().join("mlflow-server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = MlflowServer::start(&server_py, &server_dir);
    let mut reference = scenario(&py, &server.uri, &server_dir, None);
    // The one difference on purpose: MLflow cuts long values (with a warning), labd keeps them whole.
    assert_eq!(reference["long_values"], json!([6000, 8000]));
    let mut doc = doc;
    for d in [&mut doc, &mut reference] {
        d.as_object_mut().map(|m| m.remove("long_values"));
    }
    let (ours, theirs) = (comparable(doc), comparable(reference));
    let differ: Vec<String> = ours
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| theirs.get(k.as_str()) != Some(*v))
        .map(|(k, v)| format!("{k}:\n  labd:   {v}\n  mlflow: {}", theirs[k.as_str()]))
        .collect();
    assert!(
        differ.is_empty(),
        "labd and MLflow differ:\n{}",
        differ.join("\n")
    );
    assert_eq!(ours, theirs);
}

/// A labd with a token: the MLflow client logs with `MLFLOW_TRACKING_TOKEN`, and without it gets MLflow's
/// `UNAUTHENTICATED`.
#[test]
fn mlflow_writes_obey_the_token_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_env(
        &tmp.path().join("data"),
        &tmp.path().join("inbox"),
        &[],
        &[("LABD_TOKEN", "s3cret")],
    );
    let body = json!({"name": "guarded"});
    let (status, err) = request_path(
        &d.addr,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(&body),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(err["error_code"], "UNAUTHENTICATED");
    let (status, ok) = request_path(
        &d.addr,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(&body),
        Some("s3cret"),
    );
    assert_eq!((status, &ok), (200, &json!({"experiment_id": "1"})));
    let (status, _) = request_path(
        &d.addr,
        "GET",
        "/api/2.0/mlflow/experiments/get?experiment_id=1",
        None,
        None,
    );
    assert_eq!(status, 200, "reads on loopback need no token");
    let Some(py) = python("LABD_MLFLOW_PYTHON") else {
        return;
    };
    let script = "import mlflow\nmlflow.set_experiment('guarded')\nwith mlflow.start_run():\n    mlflow.log_metric('m', 1.0)\n";
    let run = |token: Option<&str>| {
        let mut c = Command::new(&py);
        c.args(["-c", script])
            .env("MLFLOW_TRACKING_URI", &d.addr)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env_remove("MLFLOW_TRACKING_TOKEN");
        if let Some(t) = token {
            c.env("MLFLOW_TRACKING_TOKEN", t);
        }
        c.output().expect("python")
    };
    let refused = run(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("UNAUTHENTICATED"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let logged = run(Some("s3cret"));
    assert!(
        logged.status.success(),
        "{}",
        String::from_utf8_lossy(&logged.stderr)
    );
}

/// MLflow's shapes and limits at the HTTP level: errors in MLflow's form, log-batch limits, NaN and
/// infinities as protobuf strings, numbers given as text, the sampled bulk history, logged models refused.
#[test]
fn the_mlflow_api_answers_in_mlflows_shapes_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let call = |method: &str, path: &str, body: Option<Value>| {
        request_path(
            &d.addr,
            method,
            &format!("/api/2.0/mlflow/{path}"),
            body.as_ref(),
            None,
        )
    };
    let (s, e) = call("GET", "experiments/get-by-name?experiment_name=nope", None);
    assert_eq!(
        (s, e["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (s, e) = call("GET", "experiments/get?experiment_id=0", None);
    assert_eq!(
        (s, e["experiment"]["name"].as_str()),
        (200, Some("Default"))
    );
    let (s, run) = call(
        "POST",
        "runs/create",
        Some(json!({"experiment_id": "0", "start_time": "1700000000000", "run_name": "r.1"})),
    );
    assert_eq!(s, 200, "{run}");
    let id = run["run"]["info"]["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "MLflow's run id characters: {id}"
    );
    assert_eq!(run["run"]["info"]["start_time"], 1_700_000_000_000i64);
    assert_eq!(run["run"]["info"]["status"], "RUNNING");
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": i, "timestamp": 1, "step": i}))
        .collect();
    let (s, e) = call(
        "POST",
        "runs/log-batch",
        Some(json!({"run_id": id, "metrics": metrics})),
    );
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 1000 metrics"),
        "{e}"
    );
    let (s, _) = call(
        "POST",
        "runs/log-batch",
        Some(json!({"run_id": id, "metrics": [
            {"key": "v", "value": "NaN", "timestamp": "1700000000001", "step": "1"},
            {"key": "v", "value": "Infinity", "timestamp": 1700000000002i64, "step": 2},
            {"key": "v", "value": "-Infinity", "timestamp": 1700000000003i64, "step": 3},
            {"key": "v", "value": 0.1, "timestamp": 1700000000004i64, "step": 4},
        ]})),
    );
    assert_eq!(s, 200);
    let (s, h) = call(
        "GET",
        &format!("metrics/get-history?run_id={id}&metric_key=v&max_results=3"),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(
        h["metrics"],
        json!([
            {"key": "v", "value": "NaN", "timestamp": 1700000000001i64, "step": 1},
            {"key": "v", "value": "Infinity", "timestamp": 1700000000002i64, "step": 2},
            {"key": "v", "value": "-Infinity", "timestamp": 1700000000003i64, "step": 3},
        ])
    );
    let token = h["next_page_token"].as_str().expect("more").to_string();
    let (_, h) = call(
        "GET",
        &format!("metrics/get-history?run_id={id}&metric_key=v&max_results=3&page_token={token}"),
        None,
    );
    assert_eq!(h["metrics"][0]["value"], 0.1);
    assert!(h.get("next_page_token").is_none());
    // The same call sent again (a client's retry) records nothing more.
    let again = json!({"run_id": id, "metrics": [
        {"key": "v", "value": 0.1, "timestamp": 1700000000004i64, "step": 4}
    ]});
    assert_eq!(call("POST", "runs/log-batch", Some(again)).0, 200);
    let (_, all) = call(
        "GET",
        &format!("metrics/get-history?run_id={id}&metric_key=v"),
        None,
    );
    assert_eq!(all["metrics"].as_array().map(Vec::len), Some(4), "{all}");
    let (s, e) = call(
        "POST",
        "runs/log-metric",
        Some(json!({"run_id": id, "key": "v", "timestamp": 1})),
    );
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'value'"),
        "{e}"
    );
    let (s, e) = call(
        "POST",
        "runs/log-parameter",
        Some(json!({"run_id": id, "key": "p", "value": "x".repeat(6001)})),
    );
    assert_eq!(s, 200, "a long value is taken whole, not refused: {e}");
    let (_, got) = call("GET", &format!("runs/get?run_id={id}"), None);
    let kept = got["run"]["data"]["params"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["key"] == "p"))
        .and_then(|p| p["value"].as_str())
        .map(str::len);
    assert_eq!(kept, Some(6001), "{got}");
    let ids = (0..3)
        .map(|i| {
            let (_, r) = call("POST", "runs/create", Some(json!({"experiment_id": "0"})));
            let rid = r["run"]["info"]["run_id"].as_str().expect("id").to_string();
            let metrics: Vec<Value> = (0..100)
                .map(|s| json!({"key": "loss", "value": s * (i + 1), "timestamp": 5, "step": s}))
                .collect();
            assert_eq!(
                call(
                    "POST",
                    "runs/log-batch",
                    Some(json!({"run_id": rid, "metrics": metrics}))
                )
                .0,
                200
            );
            rid
        })
        .collect::<Vec<_>>();
    let (s, bulk) = request_path(
        &d.addr,
        "GET",
        &format!(
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={}&run_ids={}&metric_key=loss&max_results=5",
            ids[0], ids[1]
        ),
        None,
        None,
    );
    assert_eq!(s, 200, "{bulk}");
    let points = bulk["metrics"].as_array().expect("metrics");
    assert_eq!(
        points.len(),
        10,
        "five sampled steps for each of two runs: {bulk}"
    );
    assert!(points.iter().any(|p| p["step"] == 99
        && p["run_id"] == ids[1].as_str()
        && p["value"].as_f64() == Some(198.0)));
    // Artifacts: an upload larger than the JSON body limit streams to disk and comes back whole; a path that
    // leaves the run's folder is refused.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let big: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let url = |rest: &str| {
        format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/0/{id}/artifacts/{rest}",
            d.addr
        )
    };
    let put = agent
        .put(&url("model/weights.bin"))
        .send(&big[..])
        .expect("upload");
    assert_eq!(put.status().as_u16(), 200);
    let mut got = agent
        .get(&url("model/weights.bin"))
        .call()
        .expect("download");
    let back = got
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("body");
    assert!(back == big, "the 20 MiB artifact comes back bit for bit");
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["artifacts"][0]["size"], 20u64 << 20);
    assert_eq!(
        show["artifacts"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    let escape = agent
        .put(&url("%2e%2e/%2e%2e/escape.txt"))
        .send(&b"x"[..])
        .expect("put");
    assert_eq!(escape.status().as_u16(), 400);
    assert!(
        !tmp.path()
            .join("data/mlflow-artifacts/0/escape.txt")
            .exists()
    );
    let (s, e) = call(
        "POST",
        "logged-models",
        Some(json!({"experiment_id": "0", "name": "m"})),
    );
    assert_eq!(
        (s, e["error_code"].as_str()),
        (501, Some("NOT_IMPLEMENTED"))
    );
    for (method, path) in [
        ("DELETE", "logged-models/m-1"),
        ("POST", "logged-models/m-1/tags"),
        ("PATCH", "logged-models/m-1/tags"),
    ] {
        let (s, e) = call(method, path, Some(json!({"model_id": "m-1"})));
        assert_eq!(
            (s, e["error_code"].as_str()),
            (501, Some("NOT_IMPLEMENTED")),
            "{method} {path}: {e}"
        );
    }
    let (s, e) = call(
        "POST",
        "logged-models/search",
        Some(json!({"experiment_ids": []})),
    );
    assert_eq!((s, e), (200, json!({})));
    let (s, e) = call("GET", "no/such/endpoint", None);
    assert_eq!(
        (s, e["error_code"].as_str()),
        (404, Some("ENDPOINT_NOT_FOUND"))
    );
    let (s, e) = request_path(&d.addr, "POST", "/api/2.0/mlflow/runs/search", None, None);
    assert_eq!(s, 200, "an empty search is every run of no experiment: {e}");
    let (s, r) = call(
        "POST",
        "runs/search",
        Some(json!({"experiment_ids": ["0"], "filter": "metrics.loss > 150", "max_results": 10})),
    );
    assert_eq!(s, 200);
    let mut found: Vec<&str> = r["runs"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["info"]["run_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let mut want = [ids[1].as_str(), ids[2].as_str()];
    want.sort();
    assert_eq!(found, want, "the runs whose latest loss is 198 and 297");
}

/// What is refused before a handler runs (a body over labd's limit, a wrong method, an unknown path) and the
/// tracking side's artifact list come back in MLflow's shape on MLflow's paths, under both prefixes.
#[test]
fn refusals_before_a_handler_are_in_mlflows_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_env(
        &tmp.path().join("data"),
        &tmp.path().join("inbox"),
        &[],
        &[("LABD_MAX_BODY_BYTES", "4096")],
    );
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        let point = json!({"key": "k", "value": 1, "timestamp": 1, "step": 1});
        let big = json!({"run_id": "r", "metrics": vec![point; 200]});
        let (s, e) = request_path(
            &d.addr,
            "POST",
            &format!("{prefix}/runs/log-batch"),
            Some(&big),
            None,
        );
        assert_eq!(
            (s, e["error_code"].as_str()),
            (413, Some("INVALID_PARAMETER_VALUE")),
            "{e}"
        );
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("LABD_MAX_BODY_BYTES")),
            "{e}"
        );
        let (s, e) = request_path(&d.addr, "GET", &format!("{prefix}/runs/create"), None, None);
        assert_eq!(
            (s, e["error_code"].as_str()),
            (405, Some("BAD_REQUEST")),
            "{e}"
        );
        let (s, e) = request_path(&d.addr, "GET", &format!("{prefix}/no/such"), None, None);
        assert_eq!(
            (s, e["error_code"].as_str()),
            (404, Some("ENDPOINT_NOT_FOUND")),
            "{e}"
        );
        let (s, e) = request_path(
            &d.addr,
            "GET",
            &format!("{prefix}/artifacts/list?run_id=nope"),
            None,
            None,
        );
        assert_eq!(
            (s, e["error_code"].as_str()),
            (404, Some("RESOURCE_DOES_NOT_EXIST")),
            "{e}"
        );
    }
    // labd's own paths keep labd's shape.
    let (s, e) = request_path(
        &d.addr,
        "POST",
        "/api/v1/experiments",
        Some(&json!({"pad": "x".repeat(5000)})),
        None,
    );
    assert_eq!(s, 413);
    assert!(
        e.get("error_code").is_none() && e["error"].is_string(),
        "{e}"
    );
}
