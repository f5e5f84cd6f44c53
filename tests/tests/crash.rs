//! kill -9 at any moment loses nothing committed and duplicates nothing on restart.

use labd_e2e::{Daemon, write_run};

#[test]
fn kill_9_during_ingestion_then_restart_counts_every_point_once() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&inbox).unwrap();
    // Enough data that ingestion is under way when the kill lands.
    let mut expected = 0;
    let files = 300;
    for i in 0..files {
        expected += write_run(
            &inbox.join(format!("g{}/run{i:04}.jsonl", i % 7)),
            &format!("run{i}"),
            2000,
            i % 2 == 0,
        );
    }
    let mut d = Daemon::start(&data, &inbox, &[]);
    let mut seen = Vec::new();
    for round in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(150 + 100 * round));
        d.kill9();
        d.restart();
        seen.push(d.total_points());
    }
    assert!(
        seen.iter().any(|&p| p > 0 && p < expected),
        "a kill should land in the middle of ingestion (points seen after restarts: {seen:?} of {expected})"
    );
    d.wait_for("every file ingested and applied to the views", 120, |d| {
        let (_, state) = d.get("/ingest");
        let (_, health) = d.get("/health");
        state["lag_bytes"] == 0
            && state["files"].as_array().is_some_and(|f| f.len() == files)
            && health["last_seq"] == health["log_seq"]
    });
    let rows = d.ls();
    assert_eq!(rows.len(), files, "one experiment per file, none twice");
    assert_eq!(d.total_points(), expected, "every point exactly once");
    for r in &rows {
        assert_eq!(r["points"], 4000, "{r}");
    }
    let completed = rows.iter().filter(|r| r["status"] == "completed").count();
    assert_eq!(completed, files / 2);
    // A graceful stop exits 0 and a restart keeps the same state.
    assert!(d.stop().success());
    d.restart();
    assert_eq!(d.total_points(), expected);
}
