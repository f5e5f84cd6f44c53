//! Upgrades: a data directory written by an earlier labd opens with this one. The fixtures in
//! `tests/fixtures/upgrade/` were written by earlier builds (`scripts/make-upgrade-fixture.sh COMMIT NAME`): every
//! format of their day ingested, a bad line, a sweep run to the end. Their events must keep decoding, their
//! views rebuild when the layout changed, and the answers match what the earlier labd gave.

use labd_e2e::{Daemon, repo_root};
use serde_json::Value;
use std::collections::BTreeMap;

/// What stays the same across versions about each experiment: name → (points, metric count).
fn summary(rows: &[Value]) -> BTreeMap<String, (u64, u64)> {
    rows.iter()
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r["id"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                (
                    r["points"].as_u64().unwrap(),
                    r["metrics"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn check_fixture(name: &str) {
    let fixture = repo_root().join("tests/fixtures/upgrade").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(fixture.join("labd.redb"), data.join("labd.redb")).unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(fixture.join(f)).unwrap()).unwrap()
    };
    let then_rows = read("experiments.json");
    let then_sweep = read("sweep.json");

    let mut d = Daemon::start(&data, &inbox, &["--sweep-heartbeat", "0.3"]);
    assert!(
        d.log().contains("rebuilding the views from the log"),
        "an older checkpoint layout is rebuilt: {}",
        d.log()
    );
    // The same experiments, with the same points, as the earlier labd answered.
    d.wait_for("views ready", 20, |d| {
        d.get("/health").1["last_seq"] == d.get("/health").1["log_seq"]
    });
    let rows = d.ls();
    assert_eq!(
        summary(&rows),
        summary(then_rows.as_array().unwrap()),
        "experiments differ from what the earlier labd answered"
    );
    // Every stored event decodes (a replay reads them all) and the live views equal the replay.
    let verify = d.labctl_json(&["replay", "--verify"]);
    assert_eq!(verify["differing"], serde_json::json!([]), "{verify}");
    assert!(verify["events"].as_u64().unwrap() > 0, "{verify}");

    // The finished sweep is remembered as it was and none of its trials runs again.
    let sweep = d.labctl_json(&["sweep", "status", "upgrade"]);
    assert_eq!(sweep["state"], then_sweep["state"], "{sweep}");
    let states = |s: &Value| -> Vec<(String, String)> {
        s["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(states(&sweep), states(&then_sweep));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(d.ls().len(), rows.len(), "no trial ran again");

    // Ingest files (ingest errors included) are still known, so nothing is read twice.
    let (_, ingest) = d.get("/ingest");
    let text = ingest.to_string();
    assert!(text.contains("bad-lines.jsonl"), "{text}");

    // New events append after the old ones, and the upgraded log restarts from its new checkpoint.
    let write = labd_e2e::write_run(&inbox.join("new.jsonl"), "after-upgrade", 100, true);
    d.wait_for("a new run ingested", 20, |d| d.ls().len() == rows.len() + 1);
    let total = d.total_points();
    assert_eq!(
        total,
        then_rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["points"].as_u64().unwrap())
            .sum::<u64>()
            + write
    );
    d.stop();
    d.restart();
    let log = d.log();
    assert_eq!(
        log.matches("rebuilding the views from the log").count(),
        1,
        "the second start uses the new checkpoint: {log}"
    );
    assert_eq!(d.total_points(), total);
}

/// Written by labd at 78b3ce7 (views checkpoint layout 3, before benchmarks).
#[test]
fn a_data_directory_of_checkpoint_layout_3_opens_and_rebuilds() {
    check_fixture("v3-78b3ce7");
}
