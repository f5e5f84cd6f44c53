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
    for _ in 0..3 {
        // Kill as soon as ingestion has moved on since the last start (fixed sleeps miss it on a busy machine).
        let before = d.total_points();
        let t = std::time::Instant::now();
        while d.total_points() == before && t.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
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

/// A tiny deterministic generator (the seed is printed, so a failing run can be repeated).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Fixtures of every format, dropped in one per cycle while labd runs.
const FORMATS: [(&str, &str); 7] = [
    ("drgen", "drgen"),
    ("huggingface", "hf"),
    ("tensorboard/logs", "tb"),
    ("lightning/lightning_logs", "lightning"),
    ("mlflow/mlruns", "mlruns"),
    ("mlflow/sqlite", "mlflowdb"),
    ("expmgr", "expmgr"),
];

fn sweep_status(d: &Daemon) -> serde_json::Value {
    d.labctl_json(&["sweep", "status", "loop"])
}

fn starts(dir: &std::path::Path, trial: &str) -> usize {
    std::fs::read_to_string(dir.join(trial).join("starts"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// kill -9 at random moments (during start-up, scans, catch-up, checkpoints, trials), `LABD_CRASH_CYCLES`
/// times (default 8; `scripts/crash-loop.sh` runs 100), while a corpus of every format grows and a sweep runs.
/// After every restart: no point seen before the kill is lost, no completed trial starts again, and the live
/// views equal a replay of the whole log. At the end every run equals what a single clean import of the same
/// files gives, point for point.
#[test]
fn crash_loop_loses_nothing_counts_nothing_twice_and_reruns_no_completed_trial() {
    use std::collections::HashMap;
    use std::io::Write;
    let cycles: usize = std::env::var("LABD_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("LABD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash loop: {cycles} cycles, LABD_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&inbox).unwrap();
    let base = tmp.path().join("base.json");
    // Trials of about a second, enough of them to keep the sweep running through most cycles.
    std::fs::write(
        &base,
        r#"{"epochs": 2, "steps_per_epoch": 4, "sleep": 0.1, "seed": 0}"#,
    )
    .unwrap();
    let mut d = Daemon::start(
        &data,
        &inbox,
        &["--sweep-heartbeat", "0.3", "--checkpoint-every", "0.5"],
    );
    let train = labd_e2e::repo_root().join("sweeps/examples/train.py");
    let lrs: Vec<String> = (0..12 + cycles / 2)
        .map(|i| format!("{:.6}", 0.1 / (i as f64 + 1.0)))
        .collect();
    let mut args = vec![
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
    ];
    args.extend(lrs.iter().map(String::as_str));
    let cmd = format!(
        "echo started >> {{trial_dir}}/starts; python3 {} {{config}}",
        train.display()
    );
    args.extend(["--command", &cmd, "--parallel", "2", "--id", "loop"]);
    d.labctl_json(&args);
    let sweep_dir = std::path::PathBuf::from(sweep_status(&d)["dir"].as_str().unwrap());

    // Run logs that keep growing across the cycles.
    let growing: Vec<_> = (0..3)
        .map(|i| {
            let path = inbox.join(format!("growing/g{i}.jsonl"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            writeln!(
                f,
                r#"{{"kind":"run","name":"growing{i}","config":{{"i":{i}}}}}"#
            )
            .unwrap();
            f
        })
        .collect();
    let mut growing = growing;
    let mut step = 0u64;

    // What was seen before each kill: points per run, and the trials completed then with their starts.
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut completed: HashMap<String, usize> = HashMap::new();
    let mut nowait_kills = 0;
    for cycle in 0..cycles {
        // Grow the corpus while labd runs: a fixture of the next format, and more steps of the run logs.
        let (rel, name) = FORMATS[cycle % FORMATS.len()];
        labd_e2e::copy_fixture(rel, &inbox.join(format!("c{cycle:03}_{name}")));
        for _ in 0..(50 + rng.below(400)) {
            for f in &mut growing {
                writeln!(
                    f,
                    r#"{{"kind":"metrics","step":{step},"values":{{"loss":{}}}}}"#,
                    1.0 / (step as f64 + 1.0)
                )
                .unwrap();
            }
            step += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.below(1200)));
        // Remember what labd shows now: committed, so it must survive the kill.
        for r in d.ls() {
            seen.insert(
                r["id"].as_str().unwrap().to_string(),
                r["points"].as_u64().unwrap(),
            );
        }
        for t in sweep_status(&d)["trials"].as_array().unwrap() {
            if t["status"] == "completed" {
                let id = t["id"].as_str().unwrap().to_string();
                let n = starts(&sweep_dir, &id);
                completed.entry(id).or_insert(n);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        d.kill9();
        // Now and then, kill it again while it starts (loading views, catching up, first scan).
        if rng.below(4) == 0 {
            d.restart_nowait();
            std::thread::sleep(std::time::Duration::from_millis(rng.below(400)));
            d.kill9();
            nowait_kills += 1;
        }
        d.restart();
        // Nothing committed was lost.
        let now: HashMap<String, u64> = d
            .ls()
            .into_iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["points"].as_u64().unwrap(),
                )
            })
            .collect();
        for (id, p) in &seen {
            let after = now.get(id).copied();
            assert!(
                after.is_some_and(|a| a >= *p),
                "cycle {cycle} (seed {seed}): run {id} had {p} points before the kill, {after:?} after"
            );
        }
        // No completed trial started again.
        for (id, n) in &completed {
            assert_eq!(
                starts(&sweep_dir, id),
                *n,
                "cycle {cycle} (seed {seed}): trial {id} had completed and started again"
            );
        }
        // The live views (checkpoint + catch-up) equal a replay of the whole log.
        let verify = d.labctl(&["replay", "--verify", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&verify.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&verify.stderr)));
        assert_eq!(
            report["differing"],
            serde_json::json!([]),
            "cycle {cycle} (seed {seed}): views differ from a replay: {report}"
        );
    }
    for f in &mut growing {
        writeln!(f, r#"{{"kind":"status","status":"completed"}}"#).unwrap();
    }
    drop(growing);
    d.wait_for("the sweep to finish", 300, |d| {
        sweep_status(d)["state"] == "finished"
    });
    let s = sweep_status(&d);
    assert_eq!(s["progress"]["completed"], lrs.len(), "{s}");
    d.wait_for("every file read", 120, |d| {
        let (_, state) = d.get("/ingest");
        let (_, health) = d.get("/health");
        state["lag_bytes"] == 0 && health["last_seq"] == health["log_seq"]
    });

    // The reference: one clean import of the same files.
    let reference = tmp.path().join("reference");
    let out = std::process::Command::new(labd_e2e::bin("labd"))
        .args(["--once", "--data-dir"])
        .arg(&reference)
        .arg("--watch")
        .arg(&inbox)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = Daemon::start(&reference, &empty, &[]);
    let by_name = |rows: Vec<serde_json::Value>| {
        let mut m: HashMap<String, Vec<(u64, String)>> = HashMap::new();
        for row in rows {
            m.entry(row["name"].as_str().unwrap().to_string())
                .or_default()
                .push((
                    row["points"].as_u64().unwrap(),
                    row["status"].as_str().unwrap().to_string(),
                ));
        }
        for v in m.values_mut() {
            v.sort();
        }
        m
    };
    let expected = by_name(r.ls());
    let got = by_name(d.ls());
    assert!(!expected.is_empty());
    for (name, runs) in &expected {
        assert_eq!(got.get(name), Some(runs), "run {name} (seed {seed})");
    }
    // The other runs are the sweep's trials' attempts. Each trial exited 0 exactly once, and its run (the
    // last attempt's) is complete. An attempt that labd's restart killed may have logged "completed" just
    // before: its run keeps what the script logged, but the attempt did not exit and counts as interrupted.
    let rows: HashMap<String, serde_json::Value> = d
        .ls()
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    let trials = sweep_status(&d)["trials"].as_array().unwrap().clone();
    assert_eq!(trials.len(), lrs.len());
    for t in &trials {
        let id = t["id"].as_str().unwrap();
        let exits_ok = (1..=t["attempts"].as_u64().unwrap())
            .filter(|a| {
                std::fs::read_to_string(sweep_dir.join(id).join(format!("attempt-{a}/exit_code")))
                    .is_ok_and(|c| c.trim() == "0")
            })
            .count();
        assert_eq!(
            exits_ok, 1,
            "trial {id} exited 0 {exits_ok} times (seed {seed}): {t}"
        );
        let run = &rows[t["experiment_id"].as_str().unwrap()];
        assert_eq!(
            run["status"], "completed",
            "trial {id} (seed {seed}): {run}"
        );
        assert_eq!(run["points"], 10, "trial {id} (seed {seed}): {run}");
    }
    let trial_runs = got.len() - expected.len();
    assert!(trial_runs >= lrs.len(), "{got:?}");
    eprintln!(
        "crash loop: {cycles} kills (+{nowait_kills} during start-up) survived; {} runs, {} points, {} trials",
        got.len(),
        d.total_points(),
        lrs.len()
    );
}
