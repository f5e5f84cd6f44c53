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
