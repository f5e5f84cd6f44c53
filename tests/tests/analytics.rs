//! Varying hyperparameters and grouped multi-seed summaries, as a researcher asks for them.

use labd_e2e::{Daemon, repo_root};
use serde_json::Value;

#[test]
fn varying_keys_and_a_summary_across_seeds_of_the_example_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &tmp.path().join("data"),
        &repo_root().join("examples/runs"),
        &[],
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
    let all = d.labctl_json(&["summary", "--metric", "train/loss", "--by", ""]);
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
}
