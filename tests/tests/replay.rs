//! Replay rebuilds views identical to the incrementally built ones, online and offline, and as of a past point.

use labd_e2e::{Daemon, bin, write_run};
use serde_json::Value;

fn details(d: &Daemon) -> Vec<Value> {
    d.ls()
        .iter()
        .map(|r| {
            let (status, v) = d.get(&format!("/experiments/{}", r["id"].as_str().unwrap()));
            assert_eq!(status, 200);
            v
        })
        .collect()
}

#[test]
fn replay_gives_identical_views_and_as_of_shows_the_past() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut d = Daemon::start(&data, &inbox, &[]);
    write_run(&inbox.join("a.jsonl"), "a", 30, true);
    d.wait_for("a", 5, |d| d.total_points() == 60);
    let (_, health) = d.get("/health");
    assert_eq!(health["points"], 60, "{health}");
    let seq_after_a = health["last_seq"].as_u64().unwrap();
    std::fs::write(
        inbox.join("bad.jsonl"),
        "{\"kind\":\"run\",\"name\":\"b\"}\noops\n",
    )
    .unwrap();
    write_run(&inbox.join("c.jsonl"), "c", 10, false);
    d.wait_for("b and c", 5, |d| {
        d.ls().len() == 3 && d.total_points() == 80
    });
    let (_, p) = d.post(
        "/experiments",
        &serde_json::json!({"name": "pushed", "config": {"k": 1}}),
    );
    let pushed = p["id"].as_str().unwrap().to_string();
    let (s, _) = d.post(
        &format!("/experiments/{pushed}/metrics"),
        &serde_json::json!([{"step": 1, "values": {"m": 1.0}}, {"step": 2, "values": {"m": 2.0}}]),
    );
    assert_eq!(s, 201);

    let before = details(&d);
    let errors_before = d.labctl_json(&["errors"]);
    let report = d.labctl_json(&["replay"]);
    assert_eq!(report["live"], true);
    assert_eq!(report["points"], 82);
    let after = details(&d);
    // last_activity etc. are facts of the log, so everything must match exactly.
    assert_eq!(before, after);
    assert_eq!(errors_before, d.labctl_json(&["errors"]));

    // As of the point where only `a` existed.
    let past = d.labctl_json(&["replay", "--as-of", &seq_after_a.to_string()]);
    assert_eq!(past["live"], false);
    let names: Vec<&str> = past["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{past}");
    assert!(names[0].contains("_a_"));
    assert_eq!(d.ls().len(), 4, "the live views are untouched");
    let (s, e) = d.post("/replay", &serde_json::json!({"as_of": "last tuesday"}));
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("RFC 3339"), "{e}");

    // Offline, on the stopped daemon's data directory.
    assert!(d.stop().success());
    let out = std::process::Command::new(bin("labd"))
        .args(["replay", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(offline["points"], 82);
    let asof = std::process::Command::new(bin("labd"))
        .args([
            "replay",
            "--json",
            "--as-of",
            "2000-01-01T00:00:00Z",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let asof: Value = serde_json::from_slice(&asof.stdout).unwrap();
    assert_eq!(asof["events"], 0);
    d.restart();
    assert_eq!(
        details(&d),
        after,
        "views after offline replay and restart are the same"
    );
}

/// The curve store's chunk files in `data`.
fn chunk_files(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("curves-") && name.ends_with(".chunks")
        })
        .collect();
    files.sort();
    files
}

/// The curve store keeps its closed chunks in one file beside the log: every point comes back bit for bit
/// after a restart, a live replay (whose new file replaces the old once saved) and kill -9 (chunks written
/// after the last checkpoint are cut off and written again from the log).
#[test]
fn curve_chunks_on_disk_survive_restart_replay_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut d = Daemon::start(&data, &inbox, &[]);
    write_run(&inbox.join("long.jsonl"), "long", 1000, true);
    d.wait_for("long", 10, |d| d.total_points() == 2000);
    let id_of = |d: &Daemon, name: &str| {
        d.ls()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let curve = |d: &Daemon, id: &str| {
        let url = format!("/analytics/curves?metric=train/loss&points=0&ids={id}");
        d.wait_for("the curve store", 10, |d| d.get(&url).0 == 200);
        let (_, body) = d.get(&url);
        let points = body["runs"][0]["points"].as_array().unwrap().clone();
        points
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap().to_bits()))
            .collect::<Vec<_>>()
    };
    let long = id_of(&d, "long");
    let expected: Vec<(f64, u64)> = (0..1000)
        .map(|s| (s as f64, (1.0 / (s as f64 + 1.0)).to_bits()))
        .collect();
    assert_eq!(curve(&d, &long), expected);
    assert_eq!(chunk_files(&data).len(), 1);

    assert!(d.stop().success());
    let before = chunk_files(&data);
    assert_eq!(before.len(), 1);
    assert!(
        std::fs::metadata(&before[0]).unwrap().len() > 0,
        "chunks written out"
    );
    d.restart();
    assert_eq!(
        curve(&d, &long),
        expected,
        "loaded from the checkpoint and its file"
    );

    let report = d.labctl_json(&["replay"]);
    assert_eq!(report["live"], true);
    assert_eq!(curve(&d, &long), expected, "rebuilt by the replay");
    assert!(d.stop().success());
    let after = chunk_files(&data);
    assert_eq!(
        after.len(),
        1,
        "the replaced store's file is gone: {after:?}"
    );
    assert_ne!(after, before);
    d.restart();
    assert_eq!(curve(&d, &long), expected);

    // More points, then kill -9: whatever the last checkpoint saved, every point is there after.
    write_run(&inbox.join("more.jsonl"), "more", 700, false);
    d.wait_for("more", 10, |d| d.total_points() == 3400);
    d.kill9();
    d.restart();
    let more = id_of(&d, "more");
    let expected_more: Vec<(f64, u64)> = (0..700)
        .map(|s| (s as f64, (1.0 / (s as f64 + 1.0)).to_bits()))
        .collect();
    assert_eq!(curve(&d, &more), expected_more);
    assert_eq!(curve(&d, &long), expected);
    assert_eq!(chunk_files(&data).len(), 1);
}
