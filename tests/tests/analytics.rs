//! Varying hyperparameters and grouped multi-seed summaries, as a researcher asks for them.

use labd_e2e::{Daemon, repo_root};
use serde_json::Value;

#[test]
fn varying_keys_and_a_summary_across_seeds_of_the_example_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("labd.toml");
    std::fs::write(&config, "[reductions]\n\"*/loss\" = \"min\"\n").unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &repo_root().join("examples/runs"),
        &["--config", config.to_str().unwrap()],
    );
    d.wait_for("the example runs", 5, |d| d.ls().len() == 7);
    let sweep = "tag == \"sweep-lr\"";

    let v = d.labctl_json(&["varying", "--where", sweep]);
    assert_eq!(v["runs"], 6);
    let keys: Vec<&str> = v["varying"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["optim.lr"]);
    assert_eq!(
        v["varying"][0]["values"],
        serde_json::json!([0.001, 0.01, 0.1])
    );
    let noise: Vec<&str> = v["noise"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(noise, ["seed"]);
    assert_eq!(v["constant"]["optim.name"], "adam");
    let text = String::from_utf8(d.labctl(&["varying", "--where", sweep]).stdout).unwrap();
    assert!(
        text.contains("optim.lr") && text.contains("0.001, 0.01, 0.1"),
        "{text}"
    );

    // The summary's figures agree with the runs' own last values.
    let groups = d.labctl_json(&[
        "summary", "--metric", "val/acc", "--reduce", "last", "--where", sweep,
    ]);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for g in groups {
        assert_eq!(g["count"], 2);
        let lasts: Vec<f64> = g["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                d.labctl_json(&["show", id.as_str().unwrap()])["metrics"]["val/acc"]["last"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let mean = (lasts[0] + lasts[1]) / 2.0;
        let std = ((lasts[0] - mean).powi(2) + (lasts[1] - mean).powi(2)).sqrt();
        assert!((g["mean"].as_f64().unwrap() - mean).abs() < 1e-12, "{g}");
        assert!((g["std"].as_f64().unwrap() - std).abs() < 1e-12, "{g}");
        assert!(
            (g["ci95_high"].as_f64().unwrap() - (mean + 12.706 * std / 2f64.sqrt())).abs() < 1e-9,
            "{g}"
        );
        for key in ["sem", "ci95_low", "median", "min", "max"] {
            assert!(g[key].is_number(), "{key} in {g}");
        }
    }
    let lrs: Vec<&Value> = groups.iter().map(|g| &g["optim.lr"]).collect();
    assert_eq!(
        lrs,
        [
            &serde_json::json!(0.001),
            &serde_json::json!(0.01),
            &serde_json::json!(0.1)
        ]
    );

    // CSV and the table; explicit keys; clear errors.
    let csv = String::from_utf8(
        d.labctl(&[
            "summary", "--metric", "val/acc", "--where", sweep, "--format", "csv",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        csv.starts_with("optim.lr,count,mean,std,sem,ci95_low,ci95_high,median,min,max,runs\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
    let sorted = d.labctl_json(&[
        "summary", "--metric", "val/acc", "--where", sweep, "--sort", "mean", "--desc",
    ]);
    let means: Vec<f64> = sorted
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["mean"].as_f64().unwrap())
        .collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");
    let bad = d.labctl(&["summary", "--metric", "val/acc", "--sort", "vibes"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot sort by"));
    let parquet = tmp.path().join("summary.parquet");
    let out = d.labctl(&[
        "summary",
        "--metric",
        "val/acc",
        "--where",
        sweep,
        "--format",
        "parquet",
        "--out",
        parquet.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&parquet).unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let by_seed = d.labctl_json(&[
        "summary",
        "--metric",
        "train/loss",
        "--reduce",
        "min",
        "--by",
        "seed",
        "--where",
        sweep,
    ]);
    assert_eq!(by_seed.as_array().unwrap().len(), 2);
    let all = d.labctl_json(&[
        "summary",
        "--metric",
        "train/loss",
        "--reduce",
        "last",
        "--by",
        "",
    ]);
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        all[0]["count"], 6,
        "the diverged run's NaN loss is left out"
    );
    let bad = d.labctl(&["summary", "--metric", "val/nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("val/acc"),
        "names the metrics there are"
    );
    let bad = d.labctl(&[
        "summary",
        "--metric",
        "val/acc",
        "--reduce",
        "median_of_means",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown reduction"));

    // Several metrics as columns; the configured default reduction of `*/loss` is min.
    let (status, wide) = d.get(
        "/analytics/summary?metric=val/acc&also=val/loss,train/loss%3Dlast&where=tag%20%3D%3D%20%22sweep-lr%22",
    );
    assert_eq!(status, 200, "{wide}");
    assert_eq!(wide["reduce"], "last");
    assert_eq!(
        wide["also"],
        serde_json::json!(["val/loss=min", "train/loss=last"])
    );
    for g in wide["groups"].as_array().unwrap() {
        let runs: Vec<&str> = g["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let best: Vec<f64> = runs
            .iter()
            .map(|id| {
                d.labctl_json(&["show", id])["metrics"]["val/loss"]["min"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let mean = best.iter().sum::<f64>() / best.len() as f64;
        let column = &g["also"]["val/loss=min"];
        assert_eq!(column["count"], runs.len());
        assert!(
            (column["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{column}"
        );
    }
    let (_, by_default) = d.get("/analytics/summary?metric=train/loss&by=");
    assert_eq!(by_default["reduce"], "min", "from [reductions]");
    let table = String::from_utf8(
        d.labctl(&[
            "summary", "--metric", "val/acc", "--where", sweep, "--also", "val/loss",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        table.lines().nth(1).unwrap().contains("val/loss=min"),
        "{table}"
    );
    assert!(table.contains(" ±"), "{table}");
    let csv = String::from_utf8(
        d.labctl(&[
            "summary",
            "--metric",
            "val/acc",
            "--where",
            sweep,
            "--also",
            "val/loss=min",
            "--format",
            "csv",
        ])
        .stdout,
    )
    .unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",runs,val/loss=min.count,val/loss=min.mean,val/loss=min.std,val/loss=min.sem,val/loss=min.ci95_low,val/loss=min.ci95_high,val/loss=min.median,val/loss=min.min,val/loss=min.max"), "{csv}");
}

/// Writes one run of a sweep: `steps` lists the steps logged in order (a restart repeats some).
fn sweep_run(
    dir: &std::path::Path,
    name: &str,
    lr: f64,
    seed: u64,
    steps: &[i64],
    final_loss: f64,
    status: &str,
) {
    use std::fmt::Write;
    let mut text = format!(
        "{{\"kind\":\"run\",\"name\":\"{name}\",\"config\":{{\"optim\":{{\"lr\":{lr}}},\"seed\":{seed},\"epochs\":5,\"output_dir\":\"/out/{name}\"}}}}\n"
    );
    for (i, s) in steps.iter().enumerate() {
        let loss = if i + 1 == steps.len() {
            final_loss
        } else {
            2.0 - *s as f64 * 0.01 - lr
        };
        let loss = if loss.is_nan() {
            "NaN".to_string()
        } else {
            loss.to_string()
        };
        let _ = writeln!(
            text,
            "{{\"kind\":\"metrics\",\"split\":\"val\",\"step\":{s},\"epoch\":{},\"values\":{{\"loss\":{loss}}}}}",
            s / 10
        );
    }
    let _ = writeln!(text, "{{\"kind\":\"status\",\"status\":\"{status}\"}}");
    std::fs::write(dir.join(format!("{name}.jsonl")), text).unwrap();
}

#[test]
fn crashed_and_preempted_runs_are_flagged_and_can_be_left_out_of_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let full: Vec<i64> = (0..50).collect();
    let crashed: Vec<i64> = (0..21).collect();
    let preempted: Vec<i64> = (0..31).chain(20..50).collect();
    let gappy: Vec<i64> = (0..20).chain(30..50).collect();
    sweep_run(&inbox, "a0", 0.1, 0, &full, 1.0, "completed");
    sweep_run(&inbox, "a1", 0.1, 1, &full, 1.2, "completed");
    sweep_run(&inbox, "a2", 0.1, 2, &full, f64::NAN, "completed");
    sweep_run(&inbox, "b0", 0.01, 0, &full, 0.5, "completed");
    sweep_run(&inbox, "b1", 0.01, 1, &full, 0.7, "completed");
    sweep_run(&inbox, "b2", 0.01, 2, &crashed, 1.9, "failed");
    sweep_run(&inbox, "b3", 0.01, 3, &preempted, 0.6, "completed");
    sweep_run(&inbox, "b4", 0.01, 4, &gappy, 0.65, "completed");
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("eight runs", 5, |d| {
        d.ls().len() == 8 && d.ls().iter().all(|r| r["status"] != "running")
    });

    let incomplete = d.labctl_json(&["incomplete"]);
    let flagged: Vec<(String, String)> = incomplete
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        p["kind"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut flagged_sorted = flagged.clone();
    flagged_sorted.sort();
    assert_eq!(
        flagged_sorted,
        [
            ("b2".to_string(), "short".to_string()),
            ("b3".into(), "restarted".into()),
            ("b4".into(), "gaps".into())
        ],
        "{incomplete}"
    );
    let with_steps = d.labctl_json(&[
        "incomplete",
        "--expect-steps",
        "100",
        "--where",
        "name == \"a0\"",
    ]);
    assert_eq!(with_steps[0]["problems"][0]["kind"], "short");

    // Everything: b has 5 finite values, a has 2 (the NaN run is left out).
    let all = d.labctl_json(&["summary", "--metric", "val/loss"]);
    let counts: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        [5, 2],
        "groups by optim.lr ascending: 0.01 then 0.1"
    );
    let complete = d.labctl_json(&["summary", "--metric", "val/loss", "--complete-only"]);
    let g = &complete[0];
    assert_eq!(g["count"], 2, "b2, b3, b4 left out: {g}");
    assert!((g["mean"].as_f64().unwrap() - 0.6).abs() < 1e-12);

    // Reductions over whole curves. At step 20 (loss = 2 - 0.01 * step - lr, the last point of a run holds its
    // final loss): lr 0.1 -> 1.7 three times; lr 0.01 -> 1.79 (b0, b1, b3 after its restart), 1.9 (b2 crashed
    // there), 1.80 (b4 has no step 20: its step 19 counts).
    let at = d.labctl_json(&["summary", "--metric", "val/loss", "--reduce", "at_step:20"]);
    let means: Vec<f64> = at
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["mean"].as_f64().unwrap())
        .collect();
    assert!(
        (means[0] - (1.79 * 3.0 + 1.9 + 1.80) / 5.0).abs() < 1e-9,
        "{at}"
    );
    assert!((means[1] - 1.7).abs() < 1e-9, "{at}");
    let last2 = d.labctl_json(&[
        "summary",
        "--metric",
        "val/loss",
        "--reduce",
        "mean_last:2",
        "--where",
        "name == \"a0\"",
    ]);
    assert!(
        (last2[0]["mean"].as_f64().unwrap() - (1.0 + (2.0 - 0.48 - 0.1)) / 2.0).abs() < 1e-9,
        "{last2}"
    );
    let auc = d.labctl_json(&[
        "summary",
        "--metric",
        "val/loss",
        "--reduce",
        "auc",
        "--where",
        "name == \"b0\"",
    ]);
    let expected: f64 = (0..49)
        .map(|s| {
            let y = |s: i64| {
                if s == 49 {
                    0.5
                } else {
                    2.0 - s as f64 * 0.01 - 0.01
                }
            };
            (y(s) + y(s + 1)) / 2.0
        })
        .sum();
    assert!(
        (auc[0]["mean"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{auc}"
    );
}

#[test]
fn curves_of_runs_and_of_groups_survive_a_restart_from_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        &tmp.path().join("data"),
        &repo_root().join("examples/runs"),
        &[],
    );
    d.wait_for("the example runs", 5, |d| d.ls().len() == 7);
    let sweep = "tag == \"sweep-lr\"";
    let ids: Vec<String> = d
        .labctl_json(&["runs", "--where", sweep])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    let one = d.labctl_json(&["curve", &ids[0], "--metric", "val/loss"]);
    let pts = one["runs"][0]["points"].as_array().unwrap();
    assert_eq!(pts.len(), 5);
    assert_eq!(
        pts.iter()
            .map(|p| p[0].as_f64().unwrap())
            .collect::<Vec<_>>(),
        [9.0, 19.0, 29.0, 39.0, 49.0]
    );
    let page = d.labctl_json(&["metric", &ids[0], "val/loss"]);
    assert_eq!(
        pts[4][1], page["points"][4]["value"],
        "the curve store agrees with the log"
    );
    let by_epoch = d.labctl_json(&["curve", &ids[0], "--metric", "val/loss", "--x", "epoch"]);
    assert_eq!(by_epoch["runs"][0]["points"][4][0], 4.0);
    let thin = d.labctl_json(&["curve", &ids[0], "--metric", "train/loss", "--points", "20"]);
    assert!(thin["runs"][0]["points"].as_array().unwrap().len() <= 20);
    assert_eq!(thin["runs"][0]["total"], 50);

    let grouped = d.labctl_json(&[
        "curve",
        "--metric",
        "train/loss",
        "--where",
        sweep,
        "--group",
    ]);
    assert_eq!(grouped["by"], serde_json::json!(["optim.lr"]));
    let groups = grouped["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for g in groups {
        let runs: Vec<&str> = g["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(runs.len(), 2);
        let first: Vec<f64> = runs
            .iter()
            .map(|id| {
                d.labctl_json(&["metric", id, "train/loss", "--limit", "1"])["points"][0]["value"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let p0 = &g["points"][0];
        assert_eq!(p0["x"], 0.0);
        assert_eq!(p0["n"], 2);
        assert!(
            (p0["mean"].as_f64().unwrap() - (first[0] + first[1]) / 2.0).abs() < 1e-12,
            "{p0}"
        );
        assert_eq!(p0["min"].as_f64().unwrap(), first[0].min(first[1]));
    }

    // After a clean restart the curve store is loaded from its checkpoint: warm at once, the same answers.
    let url = format!(
        "/analytics/curves?metric=train/loss&where={}&group=varying",
        "tag%20%3D%3D%20%22sweep-lr%22"
    );
    assert!(d.stop().success());
    d.restart();
    let (code, body) = d.get(&url);
    assert_eq!(code, 200, "no warm-up after a clean stop: {body}");
    let again = d.labctl_json(&[
        "curve",
        "--metric",
        "train/loss",
        "--where",
        sweep,
        "--group",
    ]);
    assert_eq!(again, grouped);
    // After kill -9 the store starts from its last checkpoint and reads the rest of the log.
    d.kill9();
    d.restart();
    d.wait_for("the curve store", 10, |d| d.get(&url).0 == 200);
    let again = d.labctl_json(&[
        "curve",
        "--metric",
        "train/loss",
        "--where",
        sweep,
        "--group",
    ]);
    assert_eq!(again, grouped);
    let bad = d.labctl(&["curve", "--metric", "train/loss", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn tables_show_configured_display_names() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("labd.toml");
    std::fs::write(&config, "[display.names]\n\"optim.lr\" = \"LR\"\n\"val/acc\" = \"Val. accuracy\"\n[display.values.\"optim.lr\"]\n\"0.1\" = \"high\"\n").unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &repo_root().join("examples/runs"),
        &["--config", config.to_str().unwrap()],
    );
    d.wait_for("the example runs", 5, |d| d.ls().len() == 7);
    let out = d.labctl(&[
        "summary",
        "--metric",
        "val/acc",
        "--where",
        "tag == \"sweep-lr\"",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().nth(1).unwrap();
    assert!(header.starts_with("LR "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("high ")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("0.001 ")),
        "unmapped values show as themselves: {text}"
    );
    let json = d.labctl_json(&[
        "summary",
        "--metric",
        "val/acc",
        "--where",
        "tag == \"sweep-lr\"",
    ]);
    assert_eq!(json[2]["optim.lr"], 0.1, "JSON keeps the real values");
    assert_eq!(json[2]["display"]["optim.lr"], "high");
    // The runs table (the web view's) names its columns and shows values the same way.
    let (code, t) = d.get("/table?where=tag%20%3D%3D%20%22sweep-lr%22&metrics=val/acc");
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["names"]["optim.lr"], "LR", "{t}");
    assert_eq!(t["names"]["val/acc"], "Val. accuracy", "{t}");
    let high = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["params"]["optim.lr"] == 0.1)
        .all(|r| r["shown"]["optim.lr"] == "high");
    assert!(high, "{t}");
    // Curve legends: the grouping key's name, its values shown, the metric's name.
    let (code, c) = d
        .get("/analytics/curves?metric=val/acc&group=optim.lr&where=tag%20%3D%3D%20%22sweep-lr%22");
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["names"]["optim.lr"], "LR", "{c}");
    assert_eq!(c["names"]["val/acc"], "Val. accuracy", "{c}");
    let groups = c["groups"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["optim.lr"] == 0.1 && g["shown"]["optim.lr"] == "high"),
        "{c}"
    );
    // labctl compare names the keys and remaps the values; JSON keeps the real ones beside.
    let ids: Vec<String> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut args = vec!["compare"];
    args.extend(ids.iter().map(String::as_str));
    let out = d.labctl(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    let lr = text
        .lines()
        .find(|l| l.contains("LR (optim.lr)"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lr.contains("high"), "{text}");
    let json = d.labctl_json(&args);
    let row = json["sections"]["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "optim.lr")
        .unwrap()
        .clone();
    assert_eq!(row["name"], "LR");
    let highs = row["shown"]
        .as_array()
        .unwrap()
        .iter()
        .zip(row["values"].as_array().unwrap())
        .filter(|(shown, v)| **v == 0.1 && **shown == "high")
        .count();
    assert!(highs >= 1, "{row}");
}

#[test]
fn analytics_can_be_asked_as_of_a_past_point() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    let full: Vec<i64> = (0..10).collect();
    sweep_run(&inbox, "a0", 0.1, 0, &full, 1.0, "completed");
    sweep_run(&inbox, "a1", 0.1, 1, &full, 1.2, "completed");
    d.wait_for("two runs", 5, |d| {
        d.ls().len() == 2 && d.total_points() == 20
    });
    let (_, health) = d.get("/health");
    let then = health["last_seq"].as_u64().unwrap().to_string();
    sweep_run(&inbox, "b0", 0.01, 0, &full, 0.5, "completed");
    d.wait_for("three runs", 5, |d| d.ls().len() == 3);

    let now = d.labctl_json(&["varying"]);
    assert_eq!(now["runs"], 3);
    assert_eq!(now["varying"][0]["key"], "optim.lr");
    let past = d.labctl_json(&["varying", "--as-of", &then]);
    assert_eq!(past["runs"], 2);
    assert!(
        past["varying"].as_array().unwrap().is_empty(),
        "only one learning rate back then: {past}"
    );
    let s = d.labctl_json(&[
        "summary", "--metric", "val/loss", "--by", "", "--as-of", &then,
    ]);
    assert_eq!(s[0]["count"], 2);
    assert!((s[0]["mean"].as_f64().unwrap() - 1.1).abs() < 1e-12);
    let c = d.labctl_json(&["curve", "--metric", "val/loss", "--group", "--as-of", &then]);
    assert_eq!(c["groups"][0]["runs"].as_array().unwrap().len(), 2);
    let csv = String::from_utf8(d.labctl(&["points", "--as-of", &then]).stdout).unwrap();
    assert_eq!(csv.lines().count(), 1 + 20);
    let bad = d.labctl(&["varying", "--as-of", "last week"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

/// The experiment manager's and the analysis tools' final summaries (seeds 001 and 004) are analytics like
/// curves: ranked, filtered, aggregated over seeds and tabled by hyperparameter.
#[test]
fn final_summaries_rank_filter_and_aggregate_like_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let f1 = |lr: f64, seed: u32| if lr > 5e-4 { 0.80 } else { 0.70 } + f64::from(seed) / 100.0;
    for lr in [1e-3, 1e-4] {
        for seed in 1..=3u32 {
            let text = format!(
                "{{\"kind\":\"run\",\"name\":\"bert-{lr}-{seed}\",\"config\":{{\"lr\":{lr},\"seed\":{seed}}}}}\n\
                 {{\"kind\":\"metrics\",\"split\":\"train\",\"step\":1,\"values\":{{\"loss\":0.5}}}}\n\
                 {{\"kind\":\"summary\",\"group\":\"final\",\"values\":{{\"test_f1\":{},\"test_accuracy\":0.9}}}}\n\
                 {{\"kind\":\"summary\",\"group\":\"bias\",\"values\":{{\"gmb\":{{\"subgroup\":{}}}}}}}\n\
                 {{\"kind\":\"status\",\"status\":\"completed\"}}\n",
                f1(lr, seed),
                f64::from(seed) / 10.0
            );
            std::fs::write(inbox.join(format!("run-{lr}-{seed}.jsonl")), text).unwrap();
        }
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("six runs", 10, |d| d.ls().len() == 6);

    // Aggregated over seeds, grouped by the key that varies (lr).
    let groups = d.labctl_json(&["summary", "--metric", "final.test_f1"]);
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let mut means: Vec<f64> = groups.iter().map(|g| g["mean"].as_f64().unwrap()).collect();
    means.sort_by(f64::total_cmp);
    assert!(
        (means[0] - 0.72).abs() < 1e-12 && (means[1] - 0.82).abs() < 1e-12,
        "{means:?}"
    );
    assert!(groups.iter().all(|g| g["count"] == 3));
    // Nested keys, and the experiment manager's file name for the group.
    let bias = d.labctl_json(&[
        "summary",
        "--metric",
        "bias_metrics.gmb.subgroup",
        "--by",
        "seed",
    ]);
    assert_eq!(bias.as_array().unwrap().len(), 3, "{bias}");

    // Filtered, by the summary's path or as a metric.
    for filter in [
        "summary.final.test_f1 > 0.75",
        "metric.final.test_f1 > 0.75",
    ] {
        let runs = d.labctl_json(&["ls", "--where", filter]);
        assert_eq!(runs.as_array().unwrap().len(), 3, "{filter}: {runs}");
    }

    // Ranked in the runs table, and offered as a column.
    let (code, t) = d.get("/table?metrics=final.test_f1&sort=metric:final.test_f1&desc=true");
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["rows"][0]["metrics"]["final.test_f1"], f1(1e-3, 3));
    assert_eq!(t["rows"][5]["metrics"]["final.test_f1"], f1(1e-4, 1));
    assert!(
        t["all_metrics"]
            .as_array()
            .unwrap()
            .contains(&Value::from("final.test_accuracy")),
        "{t}"
    );

    // A key no run has: the answer lists the summaries' numbers too.
    let (code, e) = d.get("/analytics/summary?metric=final.nope");
    assert_eq!(code, 404);
    assert!(
        e["error"].as_str().unwrap().contains("final.test_f1"),
        "{e}"
    );
}

/// The sweep system's belief evolution (seed 003): how often runs' self-reports mention "trust", per
/// corruption rate, and how that moves over the cycles.
#[test]
fn mentions_of_a_keyword_per_parameter_value_and_over_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for (i, rate) in [0.0, 0.5, 0.9].iter().enumerate() {
        let mut text = format!(
            "{{\"kind\":\"run\",\"name\":\"agent-{i}\",\"config\":{{\"interventions\":[{{\"parameters\":{{\"corruption_rate\":{rate}}}}}]}}}}\n"
        );
        for cycle in 0..10 {
            // Past the first half of the run, runs with corruption say "trust" in every report.
            let says = if *rate > 0.0 && cycle >= 5 {
                "I can no longer TRUST my memory"
            } else {
                "all systems nominal"
            };
            text.push_str(&format!(
                "{{\"kind\":\"message\",\"text\":\"{says}\",\"cycle\":{cycle}}}\n"
            ));
        }
        std::fs::write(inbox.join(format!("agent-{i}.jsonl")), text).unwrap();
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("three runs", 10, |d| d.ls().len() == 3);
    let key = "interventions.0.parameters.corruption_rate";
    let a = d.labctl_json(&["mentions", "trust", "--by", key, "--buckets", "2"]);
    let groups = a["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{a}");
    assert_eq!(groups[0]["key"], 0.0);
    assert_eq!(groups[0]["rate"], 0.0);
    for g in &groups[1..] {
        assert_eq!(
            (g["messages"].as_u64(), g["matches"].as_u64()),
            (Some(10), Some(5)),
            "{g}"
        );
        assert_eq!(g["trend"][0]["rate"], 0.0, "{g}");
        assert_eq!(g["trend"][1]["rate"], 1.0, "{g}");
        assert_eq!(g["change"], 1.0, "{g}");
    }
    // A regular expression, and the table people read.
    let r = d.labctl_json(&["mentions", "no longer \\w+", "--regex", "--by", key]);
    assert_eq!(r["groups"][2]["matches"], 5, "{r}");
    let text = String::from_utf8(d.labctl(&["mentions", "trust", "--by", key]).stdout).unwrap();
    assert!(text.contains("RATE") && text.contains("50.0%"), "{text}");
    // A bad expression is named.
    let (code, e) = d.get("/analytics/messages?pattern=(&regex=true");
    assert_eq!(code, 400, "{e}");
}

/// Metric globs (the analysis tools' `val/*`): in filters, summaries and curve queries.
#[test]
fn metric_globs_in_filters_summaries_and_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for (i, acc) in [0.95, 0.5].iter().enumerate() {
        std::fs::write(
            inbox.join(format!("r{i}.jsonl")),
            format!(
                "{{\"kind\":\"run\",\"name\":\"r{i}\",\"config\":{{\"lr\":0.{}}}}}\n\
                 {{\"kind\":\"metrics\",\"split\":\"train\",\"step\":1,\"values\":{{\"loss\":2.0}}}}\n\
                 {{\"kind\":\"metrics\",\"split\":\"val\",\"step\":1,\"values\":{{\"acc\":{acc},\"loss\":0.3}}}}\n\
                 {{\"kind\":\"metrics\",\"split\":\"val\",\"step\":2,\"values\":{{\"acc\":{acc},\"loss\":0.2}}}}\n",
                i + 1
            ),
        )
        .unwrap();
    }
    let d = Daemon::start(&tmp.path().join("data"), &inbox, &[]);
    d.wait_for("two runs", 10, |d| d.ls().len() == 2);
    // Any val metric above 0.9: only the first run.
    let runs = d.labctl_json(&["ls", "--where", "metric.val/* > 0.9"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    // No train metric below 1: none.
    let runs = d.labctl_json(&["ls", "--where", "metric.train/* < 1"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "{runs}");
    // A summary over val/*: the first matching metric, and the others as columns.
    let (code, s) = d.get("/analytics/summary?metric=val/*&by=lr");
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["metric"], "val/acc", "{s}");
    assert!(s.to_string().contains("val/loss"), "{s}");
    // Curves: one per run and matching metric, each named.
    let (code, c) = d.get("/analytics/curves?metric=val/*");
    assert_eq!(code, 200, "{c}");
    let mut named: Vec<String> = c["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(named, ["val/acc", "val/acc", "val/loss", "val/loss"]);
    let (code, _) = d.get("/analytics/curves?metric=val/*&group=lr");
    assert_eq!(code, 400);
}
