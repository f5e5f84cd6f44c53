//! Sweeps across crashes, cancels and restarts of the real daemon: after kill -9 a resumed sweep runs nothing
//! twice that had completed; a cancel stops running trials and a resume runs the rest; stopping labd
//! interrupts running trials, which run again on the next start.

use labd_e2e::sweeps::{setup, sleeper_alive, status, train, trials, wait_state};
use std::path::Path;
use std::time::Duration;

#[test]
fn kill9_mid_sweep_then_resume_runs_nothing_twice_that_had_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut d, base) = setup(tmp.path());
    // Each trial takes about a second (6 steps × 0.15 s); four run two at a time.
    let cmd = format!(
        "echo started >> {{trial_dir}}/starts; python3 {} {{config}}",
        train()
    );
    d.labctl_json(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "0.01",
        "0.001",
        "0.0001",
        "--param",
        "sleep",
        "0.15",
        "--command",
        &cmd,
        "--parallel",
        "2",
        "--id",
        "crash",
    ]);
    d.wait_for("the first trial to complete", 30, |d| {
        status(d, "crash")["progress"]["completed"].as_u64() >= Some(1)
    });
    let before = status(&d, "crash");
    let done_before: Vec<String> = trials(&before)
        .iter()
        .filter(|t| t["status"] == "completed")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    d.kill9();
    d.restart();
    let s = wait_state(&d, "crash", "finished", 60);
    assert_eq!(s["progress"]["completed"], 4, "{s}");
    let dir = Path::new(s["dir"].as_str().unwrap());
    for t in trials(&s) {
        let id = t["id"].as_str().unwrap();
        let starts = std::fs::read_to_string(dir.join(id).join("starts"))
            .unwrap()
            .lines()
            .count();
        if done_before.iter().any(|d| d == id) {
            assert_eq!(
                starts, 1,
                "{id} had completed before the crash: it must not run again"
            );
            assert_eq!(t["attempts"], 1);
        }
    }
    // The trials running at the crash either ended while labd was down (recorded from their exit file) or
    // were still running at the restart (their group killed, run again).
    let log = d.log();
    if done_before.len() < 4 {
        assert!(
            log.contains("outlived labd") || log.contains("ended while labd was down"),
            "{log}"
        );
    }
}

#[test]
fn cancel_stops_running_trials_and_resume_runs_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, base) = setup(tmp.path());
    let cmd = format!("python3 {} {{config}}", train());
    d.labctl_json(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "0.01",
        "0.001",
        "--param",
        "sleep",
        "0.3",
        "--command",
        &cmd,
        "--parallel",
        "1",
        "--id",
        "cancel",
    ]);
    d.wait_for("a running trial", 20, |d| {
        status(d, "cancel")["progress"]["running"] == 1
    });
    let out = d.labctl_json(&["sweep", "cancel", "cancel"]);
    assert_eq!(out["stopping"], 1);
    let s = wait_state(&d, "cancel", "cancelled", 5);
    d.wait_for("the running trial to stop", 10, |d| {
        status(d, "cancel")["progress"]["running"] == 0
    });
    let s2 = status(&d, "cancel");
    assert_eq!(s2["progress"]["cancelled"], 1, "{s2}");
    assert_eq!(s["progress"]["completed"], 0);
    let again = d.labctl(&["sweep", "cancel", "cancel"]);
    assert_eq!(again.status.code(), Some(2), "cancelling twice is refused");
    let r = d.labctl_json(&["sweep", "resume", "cancel"]);
    assert_eq!(r["requeued"], 1);
    let s = wait_state(&d, "cancel", "finished", 60);
    assert_eq!(s["progress"]["completed"], 3, "{s}");
    // Trials that ran long enough were sampled: their process tree's CPU and memory.
    assert!(
        trials(&s).iter().any(|t| t["peak_rss"].as_u64() > Some(0)),
        "heartbeats recorded usage: {s}"
    );
}

#[test]
fn stopping_labd_interrupts_running_trials_which_run_again_on_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut d, base) = setup(tmp.path());
    let marker = "27.1828";
    // The first attempt sleeps long (and holds a marked sleeper); later attempts finish at once.
    let cmd = format!(
        "if [ \"$LABD_ATTEMPT\" = 1 ]; then sleep {marker} & sleep {marker}; fi; python3 {} {{config}}",
        train()
    );
    d.labctl_json(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "--command",
        &cmd,
        "--id",
        "stop",
    ]);
    d.wait_for("the trial to run", 20, |d| {
        status(d, "stop")["progress"]["running"] == 1
    });
    let t = std::time::Instant::now();
    assert!(
        d.stop().success(),
        "labd exits cleanly with a trial running"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "and promptly");
    assert!(
        !sleeper_alive(marker),
        "the trial's whole group was stopped"
    );
    d.restart();
    let s = wait_state(&d, "stop", "finished", 60);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "completed", "{s}");
    assert_eq!(t["attempts"], 2, "interrupted once, then run again");
}

#[test]
fn pause_stops_new_trials_and_resume_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, base) = setup(tmp.path());
    let cmd = format!("python3 {} {{config}}", train());
    let out = d.labctl(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "0.01",
        "0.001",
        "--param",
        "sleep",
        "0.1",
        "--command",
        &cmd,
        "--parallel",
        "1",
        "--id",
        "paused",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for("the first trial running", 30, |d| {
        status(d, "paused")["progress"]["running"] == 1
    });
    let out = d.labctl(&["sweep", "pause", "paused"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&d, "paused")["state"], "paused");
    d.wait_for("the running trial to end", 30, |d| {
        status(d, "paused")["progress"]["running"] == 0
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let s = status(&d, "paused");
    assert_eq!(
        s["progress"]["completed"], 1,
        "the running one finished: {}",
        s["progress"]
    );
    assert_eq!(
        s["progress"]["running"], 0,
        "no new trial started while paused"
    );
    let out = d.labctl(&["sweep", "resume", "paused"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_state(&d, "paused", "finished", 60);
    assert!(trials(&s).iter().all(|t| t["status"] == "completed"));
}
