//! Logs that other tools write, dropped into a watched folder, flow into the same registry and analytics.

use labd_e2e::{Daemon, copy_fixture};
use serde_json::Value;

fn find<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["name"] == name)
}

#[test]
fn dr_gen_logs_in_both_forms_become_runs_with_epochs_per_split() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    // The per-run form, written as training goes: config first, then one line per split per epoch.
    let run = inbox.join("resnet_lr0.1_s0/json_out.jsonl");
    std::fs::create_dir_all(run.parent().unwrap()).unwrap();
    let mut text = String::from(
        "{\"type\":\"dict_config\",\"value\":{\"optim\":{\"lr\":0.1},\"model\":{\"name\":\"resnet18\"},\"seed\":0}}\n{\"type\":\"str\",\"value\":\"Loaded dataset\"}\n",
    );
    for (e, loss) in [2.0, 1.5].iter().enumerate() {
        text.push_str(&format!(
            "{{\"title\":\"agg_train\",\"data_name\":\"train\",\"agg_stats\":{{\"loss\":{loss},\"acc\":{}}}}}\n{{\"title\":\"agg_val\",\"data_name\":\"val\",\"agg_stats\":{{\"loss\":{},\"acc\":{}}}}}\n",
            0.3 + e as f64 * 0.2,
            loss + 0.1,
            0.25 + e as f64 * 0.2
        ));
    }
    std::fs::write(&run, &text).unwrap();
    d.wait_for("the dr_gen run", 10, |d| {
        find(&d.ls(), "resnet_lr0.1_s0").is_some_and(|r| r["points"] == 8)
    });
    let id = find(&d.ls(), "resnet_lr0.1_s0").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["optim"]["lr"], 0.1);
    assert_eq!(show["status"], "running");
    assert_eq!(show["metrics"]["val/acc"]["last"], 0.45);
    assert_eq!(
        show["metrics"]["train/loss"]["last_epoch"], 1.0,
        "{}",
        show["metrics"]
    );
    // More epochs arrive; the epoch count goes on across reads; the training time ends the run.
    let more = "{\"title\":\"agg_train\",\"data_name\":\"train\",\"agg_stats\":{\"loss\":1.0,\"acc\":0.8}}\n{\"type\":\"str\",\"value\":\"Training time 0:01:23\"}\n";
    let mut f = std::fs::OpenOptions::new().append(true).open(&run).unwrap();
    std::io::Write::write_all(&mut f, more.as_bytes()).unwrap();
    d.wait_for("the run to end", 10, |d| {
        find(&d.ls(), "resnet_lr0.1_s0").is_some_and(|r| r["status"] == "completed")
    });
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["metrics"]["train/loss"]["last_epoch"], 2.0);
    assert_eq!(
        show["summaries"]["timing"]["training_time_s"], 83.0,
        "{}",
        show["summaries"]
    );

    // The one-run-per-line form: every line a whole run.
    std::fs::write(
        inbox.join("results.jsonl"),
        "{\"run_id\":\"a\",\"hyperparameters\":{\"lr\":0.1,\"seed\":0},\"metrics\":{\"train/loss\":[3,2,1],\"val/acc\":[0.2,0.4,0.6]},\"metadata\":{\"gpu\":\"a100\"}}\n\
         {\"run_id\":\"b\",\"hyperparameters\":{\"lr\":0.1,\"seed\":1},\"metrics\":{\"train/loss\":[3,2,1.2],\"val/acc\":[0.2,0.4,0.5]}}\n\
         {\"run_id\":\"c\",\"hyperparameters\":{\"lr\":0.01,\"seed\":0},\"metrics\":{\"train/loss\":[3,2.5,2],\"val/acc\":[0.1,0.2,0.3]}}\n",
    )
    .unwrap();
    d.wait_for("the three imported runs", 10, |d| {
        ["a", "b", "c"]
            .iter()
            .all(|n| find(&d.ls(), n).is_some_and(|r| r["status"] == "completed"))
    });
    let groups = d.labctl_json(&[
        "summary",
        "--metric",
        "val/acc",
        "--where",
        "name in [\"a\", \"b\", \"c\"]",
        "--by",
        "lr",
    ]);
    let g = groups.as_array().unwrap();
    assert_eq!(g.len(), 2, "{groups}");
    assert_eq!(g[1]["lr"], 0.1);
    assert_eq!(g[1]["count"], 2);
    assert!((g[1]["mean"].as_f64().unwrap() - 0.55).abs() < 1e-12);
}

/// A `trainer_state.json` as the Trainer writes it, with its `log_history` up to `upto` (train every 5
/// steps, eval every 10, the final summary at 20).
fn trainer_state(upto: i64) -> String {
    let mut history = Vec::new();
    for step in (5..=upto).step_by(5) {
        history.push(format!(
            "{{\"epoch\": {}, \"grad_norm\": 1.5, \"learning_rate\": 5e-05, \"loss\": {}, \"step\": {step}}}",
            step as f64 / 10.0,
            3.0 - step as f64 / 10.0
        ));
        if step % 10 == 0 {
            history.push(format!(
                "{{\"epoch\": {}, \"eval_accuracy\": {}, \"eval_loss\": {}, \"eval_runtime\": 0.5, \"step\": {step}}}",
                step as f64 / 10.0,
                0.5 + step as f64 / 100.0,
                2.0 - step as f64 / 20.0
            ));
        }
    }
    if upto >= 20 {
        history.push(
            "{\"epoch\": 2.0, \"step\": 20, \"train_loss\": 2.1, \"train_runtime\": 12.5}".into(),
        );
    }
    format!(
        "{{\n  \"epoch\": {},\n  \"global_step\": {upto},\n  \"log_history\": [\n    {}\n  ],\n  \"logging_steps\": 5,\n  \"max_steps\": 20,\n  \"num_train_epochs\": 2,\n  \"train_batch_size\": 8\n}}\n",
        upto as f64 / 10.0,
        history.join(",\n    ")
    )
}

#[test]
fn trainer_states_rewritten_at_each_checkpoint_are_one_run_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let out = inbox.join("bert-sst2");
    let mut d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    std::fs::create_dir_all(out.join("checkpoint-10")).unwrap();
    std::fs::write(
        out.join("checkpoint-10/trainer_state.json"),
        trainer_state(10),
    )
    .unwrap();
    d.wait_for("the first checkpoint", 10, |d| {
        find(&d.ls(), "bert-sst2").is_some_and(|r| r["points"] == 2 * 3 + 3)
    });
    // A half-written copy waits; the whole one adds only what is new.
    std::fs::create_dir_all(out.join("checkpoint-20")).unwrap();
    let full = trainer_state(20);
    std::fs::write(
        out.join("checkpoint-20/trainer_state.json"),
        &full[..full.len() / 2],
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    std::fs::write(out.join("checkpoint-20/trainer_state.json"), &full).unwrap();
    // The Trainer's last copy, in the output folder, repeats everything.
    std::fs::write(out.join("trainer_state.json"), &full).unwrap();
    d.wait_for("the run to complete", 10, |d| {
        find(&d.ls(), "bert-sst2").is_some_and(|r| r["status"] == "completed")
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let rows = d.ls();
    assert_eq!(
        rows.iter().filter(|r| r["name"] == "bert-sst2").count(),
        1,
        "one run"
    );
    let run = find(&rows, "bert-sst2").unwrap();
    // 4 train entries × 3 values + 2 eval entries × 3 values, each once.
    assert_eq!(run["points"], 4 * 3 + 2 * 3, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["max_steps"], 20);
    assert_eq!(show["metrics"]["eval/accuracy"]["last"], 0.7);
    assert_eq!(show["metrics"]["train/loss"]["points"], 4);
    assert_eq!(show["summaries"]["train"]["train_runtime"], 12.5);
    // After a restart nothing is read again.
    d.kill9();
    d.restart();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(find(&d.ls(), "bert-sst2").unwrap()["points"], 18);
    // A broken copy is reported once it is quiet, and nothing else breaks.
    std::fs::create_dir_all(out.join("checkpoint-30")).unwrap();
    std::fs::write(
        out.join("checkpoint-30/trainer_state.json"),
        "{\"log_history\": [",
    )
    .unwrap();
    d.wait_for("the broken copy to be reported", 15, |d| {
        String::from_utf8_lossy(&d.labctl(&["errors"]).stdout)
            .contains("not a whole trainer_state.json")
    });
}

/// Copies a fixture folder (files written by the real libraries, `tests/fixtures/formats/`) to `to`.
#[test]
fn tensorboard_folders_written_by_tensorboard_are_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("tensorboard", &inbox.join("tb"));
    d.wait_for("both runs", 10, |d| {
        let rows = d.ls();
        find(&rows, "run_a").is_some_and(|r| r["points"] == 40 && r["status"] == "completed")
            && find(&rows, "run_b").is_some_and(|r| r["points"] == 40)
    });
    let rows = d.ls();
    assert_eq!(
        rows.iter().filter(|r| r["name"] == "run_a").count(),
        1,
        "two files, one run"
    );
    let id = find(&rows, "run_a").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["lr"], 0.01);
    assert_eq!(show["config"]["optimizer"], "adam");
    assert_eq!(show["metrics"]["train/loss"]["last"], 2.0 - 0.0625 * 19.0);
    assert_eq!(show["metrics"]["val/acc"]["max_step"], 19);
    let points = d.labctl_json(&["metric", &id, "train/loss", "--limit", "1", "--offset", "5"]);
    assert_eq!(points["points"][0]["value"], 1.6875);
    // The broken copies: the damaged one is reported and left, the others never stop anything.
    d.wait_for("the damaged file to be reported", 10, |d| {
        String::from_utf8_lossy(&d.labctl(&["errors"]).stdout).contains("checksum fails")
    });
    let rows = d.ls();
    let broken = find(&rows, "broken").expect("the broken folder's readable records are a run");
    assert!(broken["points"].as_u64().unwrap() >= 2 * 3);
}

#[test]
fn fixtures_of_the_trainer_and_dr_gen_import_as_their_libraries_wrote_them() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("huggingface", &inbox.join("bert-run"));
    copy_fixture("drgen", &inbox.join("drgen"));
    d.wait_for("the Trainer's run to complete", 10, |d| {
        find(&d.ls(), "bert-run").is_some_and(|r| r["status"] == "completed")
    });
    let rows = d.ls();
    assert_eq!(rows.iter().filter(|r| r["name"] == "bert-run").count(), 1);
    let id = find(&rows, "bert-run").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["metrics"]["eval/loss"]["last"], 0.4);
    assert_eq!(
        show["metrics"]["eval/loss"]["points"], 4,
        "each eval entry once"
    );
    assert_eq!(show["summaries"]["train"]["train_runtime"], 12.3456);
    d.wait_for("the dr_gen runs", 10, |d| {
        let rows = d.ls();
        find(&rows, "run1").is_some_and(|r| r["status"] == "completed")
            && ["r1", "r2", "r3"].iter().all(|n| find(&rows, n).is_some())
    });
    let id = find(&d.ls(), "run1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["metrics"]["train/loss"]["last"], 0.7);
    assert_eq!(show["summaries"]["timing"]["training_time_s"], 83.0);
}

#[test]
fn lightning_csv_logs_are_runs_with_their_hparams_and_rewrites_add_only_new_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("lightning/lightning_logs", &inbox.join("lightning_logs"));
    d.wait_for("both versions", 10, |d| {
        let rows = d.ls();
        find(&rows, "lightning_logs-version_0").is_some()
            && find(&rows, "lightning_logs-version_1").is_some()
    });
    let id = find(&d.ls(), "lightning_logs-version_0").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["batch_size"], 32);
    assert_eq!(show["config"]["seed"], 0);
    assert_eq!(show["metrics"]["val/acc"]["points"], 3);
    assert_eq!(show["metrics"]["train/loss"]["points"], 12);
    // Lightning rewrites the file under a wider header when a metric appears: only new rows are added.
    let v1 = inbox.join("lightning_logs/version_1/metrics.csv");
    let before = std::fs::read(&v1).unwrap();
    let id1 = find(&d.ls(), "lightning_logs-version_1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let points = d.labctl_json(&["show", &id1])["metrics"]["train/loss"]["points"].clone();
    let text = String::from_utf8(before).unwrap();
    let wider = text.replacen(
        "epoch,step,train_acc,",
        "epoch,step,grad_norm,train_acc,",
        1,
    );
    let wider: String = wider
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                format!("{},{}\n", &l[..l.find(',').unwrap()], {
                    let rest = &l[l.find(',').unwrap() + 1..];
                    let (step, tail) = rest.split_once(',').unwrap();
                    format!("{step},,{tail}")
                })
            }
        })
        .collect::<String>()
        + "3,16,1.5,0.7,0.2,,\n";
    std::fs::write(&v1, wider).unwrap();
    d.wait_for("the new row", 10, |d| {
        d.labctl_json(&["show", &id1])["metrics"]["grad_norm"]["points"] == 1
    });
    let show = d.labctl_json(&["show", &id1]);
    assert_eq!(
        show["metrics"]["train/loss"]["points"].as_u64(),
        points.as_u64().map(|p| p + 1),
        "old rows not read again"
    );
}

#[test]
fn validate_checks_every_format_with_labds_own_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &tmp.path().join("inbox"), &[]);
    let fixtures = labd_e2e::repo_root().join("tests/fixtures/formats");
    let run = |rel: &str| -> (Option<i32>, Value) {
        let f = fixtures.join(rel);
        let out = d.labctl(&["validate", f.to_str().unwrap(), "--json"]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or_default(),
        )
    };
    let (code, v) = run("tensorboard/logs/run_b/events.out.tfevents.1700100000.fixturehost.4242.2");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["points"], 40);
    let (code, v) = run("tensorboard/broken/events.out.tfevents.corrupt_crc");
    assert_eq!(code, Some(1));
    assert!(v["problems"].to_string().contains("checksum fails"), "{v}");
    let (code, v) = run("huggingface/broken/trainer_state.json");
    assert_eq!(code, Some(1));
    assert!(
        v["problems"]
            .to_string()
            .contains("not a whole trainer_state.json"),
        "{v}"
    );
    let (code, v) = run("lightning/broken/metrics.csv");
    assert_eq!(code, Some(1));
    assert!(v["problems"].to_string().contains("oops"), "{v}");
    let (code, v) =
        run("mlflow/mlruns/143683837611387251/5c6e433715ba4bdd977219d30e7a269f/metrics/loss");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        (v["format"].as_str(), v["points"].as_u64()),
        (Some("mlflow_metric"), Some(10))
    );
    let (code, v) = run("drgen/run1/json_out.jsonl");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["runs"], 1);
    let other = tmp.path().join("notes.txt");
    std::fs::write(&other, "hello").unwrap();
    let out = d.labctl(&["validate", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("labd reads no file named"));
}

#[test]
fn a_folders_format_can_be_fixed_in_the_config_and_for_one_off_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let fixed = tmp.path().join("labd-logs");
    std::fs::create_dir_all(&fixed).unwrap();
    // Named like dr_gen's log, but this folder holds labd run logs.
    std::fs::write(
        fixed.join("json_out.jsonl"),
        "{\"kind\":\"run\",\"name\":\"native\"}\n{\"kind\":\"metrics\",\"step\":1,\"values\":{\"loss\":1.0}}\n",
    )
    .unwrap();
    // `--watch PATH=FORMAT` (in the TOML file: `{ path = "...", format = "labd" }`).
    let fixed_arg = format!("{}=labd", fixed.display());
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &["--watch", &fixed_arg]);
    d.wait_for("the run log read as one", 10, |d| {
        find(&d.ls(), "native").is_some_and(|r| r["points"] == 1)
    });

    // A one-off import of an old folder, read as Lightning logs whatever the files are called.
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(
        old.join("train_log.csv"),
        "epoch,step,train_loss\n0,0,2.0\n0,1,1.5\n",
    )
    .unwrap();
    let out = d.labctl(&["ingest", old.to_str().unwrap(), "--format", "lightning"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = d.ls();
    let old_run = rows
        .iter()
        .find(|r| r["name"].as_str().is_some_and(|n| n.ends_with("-old")))
        .expect("the old folder's run");
    assert_eq!(old_run["points"], 2);
    let bad = d.labctl(&["ingest", old.to_str().unwrap(), "--format", "excel"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown format \"excel\""));
}

#[test]
fn mlflows_file_store_written_by_mlflow_is_runs_with_params_status_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("mlflow/mlruns", &inbox.join("mlruns"));
    d.wait_for("both MLflow runs", 10, |d| {
        let rows = d.ls();
        find(&rows, "run-finished").is_some_and(|r| r["status"] == "completed" && r["points"] == 20)
            && find(&rows, "run-failed")
                .is_some_and(|r| r["status"] == "failed" && r["points"] == 20)
    });
    let id = find(&d.ls(), "run-finished").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["lr"], 0.01, "params as numbers");
    assert_eq!(
        show["ended"], "2023-11-17T05:46:51.000000Z",
        "MLflow's end time"
    );
    assert_eq!(show["config"]["batch_size"], 32);
    assert_eq!(show["metrics"]["loss"]["last"], 0.325);
    assert_eq!(show["metrics"]["acc"]["last"], 0.86);
    let page = d.labctl_json(&["metric", &id, "loss", "--offset", "5", "--limit", "1"]);
    assert_eq!(page["points"][0]["value"], 0.625);
    // MLflow appends a point: it is picked up, once.
    let run_dir = std::fs::read_dir(inbox.join("mlruns/143683837611387251"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.join("meta.yaml").exists()
                && std::fs::read_to_string(p.join("meta.yaml"))
                    .unwrap()
                    .contains("run-finished")
        })
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run_dir.join("metrics/loss"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"1700200099000 0.3 10\n").unwrap();
    d.wait_for("the new point", 10, |d| {
        find(&d.ls(), "run-finished").is_some_and(|r| r["points"] == 21)
    });
}

#[test]
fn mlflows_sqlite_store_written_by_mlflow_is_runs_and_later_points_are_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    std::fs::create_dir_all(inbox.join("tracking")).unwrap();
    let db = inbox.join("tracking/mlflow.db");
    std::fs::copy(
        labd_e2e::repo_root().join("tests/fixtures/formats/mlflow/sqlite/mlflow.db"),
        &db,
    )
    .unwrap();
    d.wait_for("both runs of the store", 10, |d| {
        let rows = d.ls();
        find(&rows, "run-finished").is_some_and(|r| r["status"] == "completed" && r["points"] == 20)
            && find(&rows, "run-failed")
                .is_some_and(|r| r["status"] == "failed" && r["points"] == 20)
    });
    let id = find(&d.ls(), "run-finished").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let show = d.labctl_json(&["show", &id]);
    assert_eq!(show["config"]["batch_size"], 32);
    assert_eq!(show["metrics"]["acc"]["last"], 0.86);
    // MLflow logs one more point (written here with Python's sqlite3, as the tracking server would).
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); \
         u = c.execute(\"select run_uuid from runs where name='run-finished'\").fetchone()[0]; \
         c.execute(\"insert into metrics (key, value, timestamp, run_uuid, step, is_nan) values ('loss', 0.3, 1700200099000, ?, 10, 0)\", (u,)); \
         c.commit()",
        db.display().to_string()
    );
    let ok = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(ok.success());
    d.wait_for("the new point, once", 10, |d| {
        find(&d.ls(), "run-finished").is_some_and(|r| r["points"] == 21)
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(find(&d.ls(), "run-finished").unwrap()["points"], 21);
    assert_eq!(find(&d.ls(), "run-failed").unwrap()["points"], 20);
}

#[test]
fn the_experiment_managers_folders_import_with_their_ids_statuses_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("expmgr/experiments", &inbox.join("experiments"));
    d.wait_for("both experiments", 10, |d| {
        let rows = d.ls();
        find(&rows, "baseline_model")
            .is_some_and(|r| r["status"] == "completed" && r["points"] == 9)
            && find(&rows, "multi_layer_test")
                .is_some_and(|r| r["status"] == "failed" && r["points"] == 6)
    });
    let show = d.labctl_json(&["show", "20241216_143052_baseline_a1b2c3d4"]);
    assert_eq!(
        show["id"], "20241216_143052_baseline_a1b2c3d4",
        "the predecessor's id kept"
    );
    assert_eq!(show["config"]["optim"]["lr"], 2e-5);
    assert_eq!(show["metrics"]["val/accuracy"]["last"], 0.83);
    assert_eq!(show["metrics"]["train/loss"]["points"], 3);
    assert_eq!(show["summaries"]["final"]["test_f1"], 0.79);
    assert_eq!(show["summaries"]["bias"]["gmb_bpsn_auc"], 0.81);
    assert_eq!(show["summaries"]["xai"]["sufficiency"], 0.12);
    assert!(
        show["artifacts"].to_string().contains("best_model"),
        "{}",
        show["artifacts"]
    );
    assert_eq!(
        show["ended"], "2024-12-16T15:45:30.000000Z",
        "its own end time"
    );
    let failed = d.labctl_json(&["show", "20241217_091500_multilayer_0badc0de"]);
    assert_eq!(
        failed["status_notes"], "CUDA out of memory at epoch 2",
        "{failed}"
    );
    // The manager is run again for the failed experiment: one more epoch, then completed.
    let dir = inbox.join("experiments/20241217_091500_multilayer_0badc0de");
    std::fs::write(
        dir.join("metrics/training_history.json"),
        r#"{"train_loss": [0.69, 0.45, 0.33], "val_loss": [0.62, 0.48, 0.46], "val_accuracy": [0.71, 0.8, 0.82]}"#,
    )
    .unwrap();
    let registry = inbox.join("experiments/experiment_registry.json");
    let text = std::fs::read_to_string(&registry)
        .unwrap()
        .replace("\"failed\"", "\"completed\"");
    std::fs::write(&registry, text).unwrap();
    d.wait_for("the rerun", 10, |d| {
        let r = d.labctl_json(&["show", "20241217_091500_multilayer_0badc0de"]);
        r["status"] == "completed" && r["metrics"]["train/loss"]["points"] == 3
    });
    assert_eq!(d.ls().len(), 2, "the same two runs");
}

#[test]
fn the_same_run_imported_twice_is_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    copy_fixture("mlflow/mlruns", &inbox.join("first/mlruns"));
    copy_fixture("expmgr/experiments", &inbox.join("first/experiments"));
    copy_fixture("tensorboard/logs", &inbox.join("first/tb"));
    d.wait_for("the runs", 10, |d| d.ls().len() == 6);
    // A backup copy of the same stores, imported later.
    let copy = tmp.path().join("backup");
    copy_fixture("mlflow/mlruns", &copy.join("mlruns"));
    copy_fixture("expmgr/experiments", &copy.join("experiments"));
    copy_fixture("tensorboard/logs", &copy.join("tb"));
    let out = d.labctl(&["ingest", copy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = d.ls();
    assert_eq!(rows.len(), 6, "recognised, not duplicated: {rows:?}");
    assert_eq!(
        find(&rows, "run-finished").unwrap()["points"],
        20,
        "points not doubled"
    );
    assert_eq!(find(&rows, "run_a").unwrap()["points"], 40);
    assert_eq!(find(&rows, "run_b").unwrap()["points"], 40);
}
