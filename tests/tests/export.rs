//! The long table of metric points exported as CSV, Parquet and JSON, streamed in batches, with files that
//! appear only when whole.

use labd_e2e::{Daemon, repo_root};
use serde_json::Value;

#[test]
fn the_long_table_of_points_exports_as_csv_parquet_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &repo_root().join("examples/runs"),
        &[],
    );
    d.wait_for("the example runs", 5, |d| d.ls().len() == 7);
    let out = d.labctl(&[
        "points",
        "--metric",
        "val/acc,val/loss",
        "--where",
        "tag == \"sweep-lr\"",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("run,metric,step,epoch,wall_time,value"));
    assert_eq!(lines.count(), 6 * 2 * 5, "6 runs x 2 metrics x 5 points");
    let file = tmp.path().join("points.parquet");
    let out = d.labctl(&[
        "points",
        "--format",
        "parquet",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "a Parquet file"
    );
    let rows: Value = serde_json::from_slice(
        &d.labctl(&[
            "points",
            "--format",
            "json",
            "--where",
            "name == \"diverged\"",
        ])
        .stdout,
    )
    .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["repr"], "NaN");
    assert!(rows[1]["value"].is_null());
    let bad = d.labctl(&["points", "--format", "xlsx"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown format"));
}

#[test]
fn big_exports_stream_in_batches_and_files_appear_only_when_whole() {
    // 3 runs x 2 metrics x 30,000 steps = 180,000 rows: more than one batch (a Parquet row group) of 131,072.
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let mut total = 0;
    for i in 0..3 {
        total += labd_e2e::write_run(
            &inbox.join(format!("r{i}.jsonl")),
            &format!("r{i}"),
            30_000,
            true,
        );
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("the runs", 20, |d| d.total_points() == total);
    let file = tmp.path().join("out/points.csv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = d.labctl(&["points", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        total + 1,
        "every point once, one header"
    );
    assert_eq!(csv.matches("run,metric").count(), 1);
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["points.csv"], "no partial file left behind");
    let rows: Value = serde_json::from_slice(
        &d.labctl(&["points", "--format", "json", "--metric", "train/acc"])
            .stdout,
    )
    .unwrap();
    assert_eq!(rows.as_array().unwrap().len() as u64, total / 2);
    // A refused export leaves no file.
    let bad = d.labctl(&[
        "points",
        "--where",
        "nope ==",
        "--out",
        file.with_file_name("bad.csv").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!file.with_file_name("bad.csv").exists());
    assert!(!file.with_file_name(".bad.csv.partial").exists());
}

/// The experiment manager's export (seed 001): one folder per experiment in its layout and the registry beside
/// them; a fresh labd reading that folder holds the same experiments, every value bit for bit.
#[test]
fn the_experiment_managers_layout_round_trips_through_a_fresh_labd() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(inbox.join("ckpt")).unwrap();
    std::fs::write(inbox.join("ckpt/best_model.pt"), b"weights of run 0").unwrap();
    for i in 0..3usize {
        let mut text = format!(
            "{{\"kind\":\"run\",\"name\":\"my_exp_{i}\",\"description\":\"lr test {i}\",\"tags\":[\"bert\"],\"time\":\"2024-12-16T14:30:5{i}.123456Z\",\"config\":{{\"optim\":{{\"lr\":{}}},\"seed\":{i}}}}}\n",
            [1e-3, 2e-5, 0.1][i]
        );
        for step in 0..7 {
            // Values as Python writes computed doubles, a NaN among them.
            let v = 1.0 / (3.0 + f64::from(step) * 0.7 + i as f64);
            let val = if step == 3 && i == 1 {
                "NaN".to_string()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            text.push_str(&format!(
                "{{\"kind\":\"metrics\",\"split\":\"train\",\"step\":{step},\"values\":{{\"loss\":{val}}}}}\n"
            ));
            if step % 3 == 0 {
                text.push_str(&format!(
                    "{{\"kind\":\"metrics\",\"split\":\"val\",\"step\":{step},\"values\":{{\"f1\":{}}}}}\n",
                    serde_json::to_string(&(0.5 + v / 7.0)).unwrap()
                ));
            }
        }
        text.push_str(&format!(
            "{{\"kind\":\"summary\",\"group\":\"final\",\"values\":{{\"test_f1\":0.8{i},\"test_accuracy\":0.9}}}}\n\
             {{\"kind\":\"summary\",\"group\":\"bias\",\"values\":{{\"gmb\":{{\"subgroup\":0.{i}}}}}}}\n\
             {{\"kind\":\"summary\",\"group\":\"xai\",\"values\":{{\"comprehensiveness\":0.4}}}}\n"
        ));
        if i == 0 {
            text.push_str(
                "{\"kind\":\"artifact\",\"role\":\"checkpoint\",\"path\":\"ckpt/best_model.pt\"}\n",
            );
        }
        text.push_str(if i == 2 {
            "{\"kind\":\"status\",\"status\":\"failed\",\"notes\":\"diverged\"}\n"
        } else {
            "{\"kind\":\"status\",\"status\":\"completed\",\"notes\":\"Best F1 so far\"}\n"
        });
        std::fs::write(inbox.join(format!("run{i}.jsonl")), text).unwrap();
    }
    let a = Daemon::start(&tmp.path().join("a"), &inbox, &[]);
    a.wait_for("three runs", 10, |d| d.ls().len() == 3);
    let out = tmp.path().join("experiments");
    let o = a.labctl(&[
        "export",
        "--layout",
        "manager",
        "--to",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let registry: Value =
        serde_json::from_slice(&std::fs::read(out.join("experiment_registry.json")).unwrap())
            .unwrap();
    assert_eq!(registry["experiments"].as_array().unwrap().len(), 3);
    let ids: Vec<String> = a
        .ls()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        for f in [
            "config.json",
            "metrics/training_history.json",
            "metrics/final_summary.json",
            "metrics/bias_metrics.json",
            "metrics/xai_metrics.json",
        ] {
            assert!(out.join(id).join(f).is_file(), "{id}/{f}");
        }
    }
    let with_ckpt = ids.iter().find(|id| id.contains("my_exp_0")).unwrap();
    assert_eq!(
        std::fs::read(out.join(with_ckpt).join("checkpoints/best_model.pt")).unwrap(),
        b"weights of run 0"
    );

    // A fresh labd reads the folder: the same experiments.
    let b = Daemon::start(&tmp.path().join("b"), &out, &[]);
    b.wait_for("three runs", 20, |d| d.ls().len() == 3);
    for id in &ids {
        let (_, x) = a.get(&format!("/experiments/{id}"));
        let (code, y) = b.get(&format!("/experiments/{id}"));
        assert_eq!(code, 200, "{id} on the fresh labd: {y}");
        for k in [
            "id",
            "name",
            "description",
            "tags",
            "config",
            "status",
            "status_notes",
            "summaries",
            "started",
        ] {
            assert_eq!(x[k], y[k], "{id}: {k}");
        }
        let keys: Vec<&String> = x["metrics"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            y["metrics"].as_object().unwrap().keys().collect::<Vec<_>>(),
            "{id}"
        );
        for key in keys {
            let values = |d: &Daemon| -> Vec<(Value, Value)> {
                d.get(&format!("/experiments/{id}/metrics/{key}")).1["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p["value"].clone(), p["repr"].clone()))
                    .collect()
            };
            assert_eq!(values(&a), values(&b), "{id} {key}");
        }
    }
    let (_, y) = b.get(&format!("/experiments/{with_ckpt}"));
    assert!(
        y["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["role"] == "checkpoint"
                && a["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("checkpoints/best_model.pt")),
        "{y}"
    );
}

/// The wide runs table (the analysis tools' pasted tables): a column per config key, per metric's last value and
/// per summary number, as CSV and as Parquet with integers kept integers and doubles exact.
#[test]
fn the_wide_runs_table_has_a_column_per_key_metric_and_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let lrs = [0.1, 3e-5];
    for (i, lr) in lrs.iter().enumerate() {
        std::fs::write(
            inbox.join(format!("r{i}.jsonl")),
            format!(
                "{{\"kind\":\"run\",\"name\":\"r{i}\",\"config\":{{\"optim\":{{\"lr\":{lr},\"name\":\"adam\"}},\"seed\":{i},\"layers\":[64,64]}}}}\n\
                 {{\"kind\":\"metrics\",\"split\":\"val\",\"step\":1,\"values\":{{\"acc\":0.{i}1}}}}\n\
                 {{\"kind\":\"summary\",\"group\":\"final\",\"values\":{{\"test_f1\":0.8{i}}}}}\n"
            ),
        )
        .unwrap();
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("two runs", 10, |d| d.ls().len() == 2);
    let out = d.labctl(&["table"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "id",
        "optim.lr",
        "optim.name",
        "seed",
        "layers.0",
        "metric.val/acc",
        "summary.final.test_f1",
    ] {
        assert!(
            header.split(',').any(|c| c.trim_matches('"') == col),
            "{col} in {header}"
        );
    }
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let file = tmp.path().join("runs.parquet");
    let out = d.labctl(&[
        "table",
        "--format",
        "parquet",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(&file).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 2);
    assert_eq!(df.column("seed").unwrap().dtype(), &DataType::Int64);
    let mut got: Vec<f64> = df
        .column("optim.lr")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    got.sort_by(f64::total_cmp);
    assert_eq!(got, vec![3e-5, 0.1]);
    assert_eq!(
        df.column("summary.final.test_f1").unwrap().dtype(),
        &DataType::Float64
    );
}
