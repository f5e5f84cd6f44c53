//! Sweeps on a real Slurm cluster (one node on loopback, from Debian's slurm-wlm and munge; see
//! `scripts/slurm-cluster.sh`): trials run as array jobs with the same events, views and resume as local ones.
//! Each test starts its own cluster and labd beside it.

use labd_e2e::Daemon;
use labd_e2e::slurm::Cluster;
use labd_e2e::sweeps::{run_file, status, train, trials, wait_state};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// A cluster and a labd that uses it, in `tmp`; `None` where Slurm is not installed (and not required).
fn setup(tmp: &Path) -> Option<(Cluster, Daemon)> {
    let cluster = Cluster::start(&tmp.join("cluster"))?;
    let (k, v) = cluster.env();
    let d = Daemon::start_with_env(&tmp.join("data"), &tmp.join("inbox"), &[], &[(k, &v)]);
    Some((cluster, d))
}

/// Writes a sweep file and submits it; answers the sweep's id.
fn submit(d: &Daemon, tmp: &Path, name: &str, yaml: &str) -> String {
    let file = tmp.join(format!("{name}.yaml"));
    let base = labd_e2e::repo_root().join("sweeps/examples/base.json");
    std::fs::write(
        &file,
        format!(
            "sweep_id: {name}\nbase_config: {}\ncommand: python3 {} {{config}}\n{yaml}",
            base.display(),
            train()
        ),
    )
    .unwrap();
    run_file(d, &file, &[]);
    name.to_string()
}

/// The (job, task) of every attempt of every trial.
fn attempts(s: &Value) -> Vec<(String, u64)> {
    trials(s)
        .iter()
        .flat_map(|t| t["jobs"].as_array().cloned().unwrap_or_default())
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_string(),
                j["task"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_grid_on_slurm_completes_and_analyzes_like_the_same_sweep_run_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    let grid = "sweep:\n  optim.lr: [0.1, 0.01, 0.001]\nrepeats: 4\nparallel: 4\n";
    let on_slurm = submit(
        &d,
        tmp.path(),
        "grid-slurm",
        &format!(
            "{grid}executor: slurm\nslurm:\n  partition: debug\n  cpus_per_task: 1\n  mem: 128M\n"
        ),
    );
    let here = submit(&d, tmp.path(), "grid-local", grid);
    let s = wait_state(&d, &on_slurm, "finished", 120);
    wait_state(&d, &here, "finished", 120);
    let ts = trials(&s);
    assert_eq!(ts.len(), 12);
    for t in ts {
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempts"], 1);
        let jobs = t["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{t}");
        assert_eq!(jobs[0]["node"], "localhost");
        assert_eq!(jobs[0]["state"], "COMPLETED");
        let run = t["experiment_id"].as_str().expect("the trial's run");
        let shown = d.labctl_json(&["show", run]);
        assert_eq!(
            shown["metrics"]["train/loss"]["points"], 15,
            "every metric ingested"
        );
        assert_eq!(shown["config"]["optim"]["lr"], t["params"]["optim.lr"]);
    }
    // One array job for the twelve trials, each task run once.
    let jobs: BTreeSet<String> = attempts(&s).into_iter().map(|(j, _)| j).collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(cluster.finished().len(), 12);
    // The analysis is the same table wherever the trials ran.
    let table = |id: &str| {
        let a = d.labctl_json(&["sweep", "analyze", id, "--metric", "train/loss"]);
        let configs: Vec<String> = a["configs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| format!("{} {} {} {}", c["params"], c["count"], c["mean"], c["std"]))
            .collect();
        (configs, a["params"].clone(), a["best"]["params"].clone())
    };
    let (a, b) = (table(&on_slurm), table(&here));
    assert_eq!(a.0.len(), 3, "{a:?}");
    assert_eq!(
        a, b,
        "the same configurations, figures, parameter tables and best"
    );
}

#[test]
fn a_failure_is_retried_and_a_trial_past_its_time_is_timed_out() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_cluster, d)) = setup(tmp.path()) else {
        return;
    };
    let retried = submit(
        &d,
        tmp.path(),
        "retried",
        "sweep:\n  fail_attempts: [1]\nmax_retries: 1\nexecutor: slurm\n",
    );
    let late = submit(
        &d,
        tmp.path(),
        "late",
        "sweep:\n  sleep: [30]\nmax_retries: 0\nexecutor: slurm\nslurm:\n  time: \"0:05\"\n",
    );
    let s = wait_state(&d, &retried, "finished", 120);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["failures"], 1);
    let jobs = attempts(&s);
    assert_eq!(jobs.len(), 2, "each attempt its own job: {jobs:?}");
    assert_ne!(jobs[0].0, jobs[1].0);
    assert_eq!(
        t["jobs"][0]["state"], "FAILED",
        "the array task fails with its trial"
    );
    let s = wait_state(&d, &late, "finished", 180);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "timed_out", "{t}");
    assert_eq!(t["jobs"][0]["state"], "TIMEOUT");
    assert_eq!(t["attempts"], 1, "no retry left");
}

#[test]
fn kill9_mid_sweep_then_restart_submits_no_job_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, mut d)) = setup(tmp.path()) else {
        return;
    };
    let id = submit(
        &d,
        tmp.path(),
        "crash",
        "sweep:\n  optim.lr: [0.1, 0.01, 0.001, 0.0001]\n  sleep: [0.2]\nrepeats: 2\nparallel: 3\nexecutor: slurm\n",
    );
    // Killed once the jobs are in Slurm's hands and some run.
    d.wait_for("a trial running on the cluster", 60, |d| {
        trials(&status(d, &id))
            .iter()
            .any(|t| t["status"] == "running")
    });
    d.kill9();
    std::thread::sleep(std::time::Duration::from_secs(2));
    d.restart();
    let s = wait_state(&d, &id, "finished", 180);
    for t in trials(&s) {
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempts"], 1, "nothing submitted twice: {t}");
        assert!(t["experiment_id"].is_string());
    }
    let jobs: BTreeSet<String> = attempts(&s).into_iter().map(|(j, _)| j).collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(cluster.finished().len(), 8, "each task ran once");
}

#[test]
fn scancel_from_outside_and_labctl_cancel_show_as_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    let outside = submit(
        &d,
        tmp.path(),
        "outside",
        "sweep:\n  sleep: [20]\nexecutor: slurm\n",
    );
    d.wait_for("the trial running", 60, |d| {
        trials(&status(d, &outside))[0]["status"] == "running"
    });
    let job = attempts(&status(&d, &outside))[0].0.clone();
    cluster.run("scancel", &[&job]);
    let s = wait_state(&d, &outside, "finished", 60);
    assert_eq!(trials(&s)[0]["status"], "cancelled");
    assert_eq!(trials(&s)[0]["jobs"][0]["state"], "CANCELLED");

    let stopped = submit(
        &d,
        tmp.path(),
        "stopped",
        "sweep:\n  sleep: [20]\nrepeats: 2\nexecutor: slurm\n",
    );
    d.wait_for("both running", 60, |d| {
        trials(&status(d, &stopped))
            .iter()
            .all(|t| t["status"] == "running")
    });
    let out = d.labctl(&["sweep", "cancel", &stopped]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_for("the trials cancelled", 60, |d| {
        trials(&status(d, &stopped))
            .iter()
            .all(|t| t["status"] == "cancelled")
    });
    assert_eq!(status(&d, &stopped)["state"], "cancelled");
    let queue = cluster.run("squeue", &["-h", "-o", "%i %T"]);
    assert!(
        !queue.contains("RUNNING"),
        "scancel ended the jobs: {queue}"
    );
}

#[test]
fn a_trial_on_a_failed_node_runs_again_without_spending_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    // 15 steps of 0.4 s; no retries: only a lost node's run may run again.
    let id = submit(
        &d,
        tmp.path(),
        "lost",
        "sweep:\n  sleep: [0.4]\nmax_retries: 0\nexecutor: slurm\n",
    );
    d.wait_for("the trial running", 60, |d| {
        trials(&status(d, &id))[0]["status"] == "running"
    });
    // The node goes down under the job: Slurm ends it as NODE_FAIL.
    cluster.run(
        "scontrol",
        &[
            "update",
            "nodename=localhost",
            "state=down",
            "reason=labd-test",
        ],
    );
    d.wait_for("the first attempt lost", 60, |d| {
        trials(&status(d, &id))[0]["jobs"][0]["state"] == "NODE_FAIL"
    });
    // The node's slurmd is still there: it registers again and the node returns (ReturnToService=2).
    let s = wait_state(&d, &id, "finished", 120);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["attempts"], 2, "{t}");
    assert_eq!(
        t["failures"], 0,
        "a lost node is no failure of the trial: {t}"
    );
    let jobs = t["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{t}");
    assert_ne!(
        jobs[0]["job"], jobs[1]["job"],
        "submitted again as a new job"
    );
    assert_eq!(jobs[1]["state"], "COMPLETED");
    assert!(
        t["experiment_id"].is_string(),
        "the second attempt's run linked"
    );
}

#[test]
fn a_bad_partition_fails_the_sweep_with_slurms_message_and_no_sbatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_cluster, d)) = setup(tmp.path()) else {
        return;
    };
    let id = submit(
        &d,
        tmp.path(),
        "bad",
        "sweep:\n  optim.lr: [0.1, 0.01]\nexecutor: slurm\nslurm:\n  partition: nosuch\n",
    );
    let s = wait_state(&d, &id, "failed", 60);
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Invalid partition") || reason.contains("invalid partition"),
        "Slurm's own message: {reason}"
    );
    for t in trials(&s) {
        assert_eq!(t["status"], "failed");
    }
    assert_eq!(d.get("/health").1["status"], "ok", "labd goes on");

    // A labd whose sbatch is nowhere refuses a Slurm sweep and says how to configure it.
    let config = tmp.path().join("labd.toml");
    std::fs::write(&config, "[slurm]\nsbatch = \"/nonexistent/sbatch\"\n").unwrap();
    let other = Daemon::start(
        &tmp.path().join("data2"),
        &tmp.path().join("inbox2"),
        &["--config", config.to_str().unwrap()],
    );
    let (code, answer) = other.post(
        "/sweeps",
        &serde_json::json!({"spec": {"sweep": {"x": [1]}, "command": "true", "executor": "slurm"}}),
    );
    assert_eq!(code, 400, "{answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("/nonexistent/sbatch") && message.contains("[slurm]"),
        "{message}"
    );
}

#[test]
fn labd_killed_right_after_sbatch_finds_its_job_by_name_instead_of_submitting_again() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(&tmp.path().join("cluster")) else {
        return;
    };
    // An sbatch that submits, then kills labd (its parent) before labd can record the job, the first time.
    let marker = tmp.path().join("killed");
    let wrapper = tmp.path().join("sbatch");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nout=$(sbatch \"$@\"); code=$?\necho \"$out\"\nif [ ! -e {m} ]; then touch {m}; kill -9 $PPID; fi\nexit $code\n",
            m = marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = tmp.path().join("labd.toml");
    std::fs::write(
        &config,
        format!("[slurm]\nsbatch = \"{}\"\npoll = 0.5\n", wrapper.display()),
    )
    .unwrap();
    let (k, v) = cluster.env();
    let mut d = Daemon::start_with_env(
        &tmp.path().join("data"),
        &tmp.path().join("inbox"),
        &["--config", config.to_str().unwrap()],
        &[(k, &v)],
    );
    let file = tmp.path().join("gap.yaml");
    let base = labd_e2e::repo_root().join("sweeps/examples/base.json");
    std::fs::write(
        &file,
        format!(
            "sweep_id: gap\nbase_config: {}\ncommand: python3 {} {{config}}\nsweep:\n  optim.lr: [0.1, 0.01, 0.001]\nexecutor: slurm\n",
            base.display(),
            train()
        ),
    )
    .unwrap();
    let out = d.labctl(&["sweep", "run", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() || d.alive() {
        assert!(
            std::time::Instant::now() < deadline,
            "sbatch did not kill labd"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    d.kill9(); // reaps it
    d.restart();
    let s = wait_state(&d, "gap", "finished", 120);
    for t in trials(&s) {
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempts"], 1, "{t}");
    }
    let jobs: BTreeSet<String> = attempts(&s).into_iter().map(|(j, _)| j).collect();
    assert_eq!(
        jobs.len(),
        1,
        "the job found by its name, none submitted again: {jobs:?}"
    );
    assert_eq!(cluster.finished().len(), 3);
}

#[test]
fn packed_trials_share_array_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    // Two trials a task, as `pack` says; then three, as many as fit in a 60G GPU at 20G each.
    for (name, spec, tasks) in [
        ("packed", "slurm:\n  pack: 2\n", [2, 2, 2].as_slice()),
        (
            "shared",
            "resources:\n  gpu_memory: 20G\nslurm:\n  node_gpu_memory: 60G\n",
            [3, 3].as_slice(),
        ),
    ] {
        let body =
            format!("sweep:\n  optim.lr: [0.1, 0.01, 0.001]\nrepeats: 2\nexecutor: slurm\n{spec}");
        let id = submit(&d, tmp.path(), name, &body);
        let s = wait_state(&d, &id, "finished", 120);
        let mut per_task: std::collections::BTreeMap<u64, usize> = Default::default();
        for (_, task) in attempts(&s) {
            *per_task.entry(task).or_default() += 1;
        }
        assert_eq!(
            per_task.values().copied().collect::<Vec<_>>(),
            tasks,
            "{name}: {per_task:?}"
        );
        for t in trials(&s) {
            assert_eq!(t["status"], "completed", "{t}");
            assert!(t["experiment_id"].is_string());
        }
    }
    assert_eq!(
        cluster.finished().len(),
        5,
        "three array tasks of two trials, two of three"
    );
}

#[test]
fn an_unreachable_controller_keeps_trials_pending_and_labd_ingesting() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    cluster.controller(false);
    let id = submit(
        &d,
        tmp.path(),
        "patient",
        "sweep:\n  optim.lr: [0.1, 0.01]\nexecutor: slurm\n",
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let s = status(&d, &id);
    for t in trials(&s) {
        assert_eq!(t["status"], "queued", "waits for the controller: {t}");
    }
    // labd goes on: a run dropped meanwhile is read.
    let points = labd_e2e::write_run(
        &tmp.path().join("inbox/meanwhile.jsonl"),
        "meanwhile",
        10,
        true,
    );
    d.wait_for("the dropped run", 20, |d| {
        d.ls()
            .iter()
            .any(|r| r["name"] == "meanwhile" && r["points"] == points)
    });
    assert_eq!(d.get("/health").1["status"], "ok");
    cluster.controller(true);
    let s = wait_state(&d, &id, "finished", 180);
    for t in trials(&s) {
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempts"], 1);
    }
    let jobs: BTreeSet<String> = attempts(&s).into_iter().map(|(j, _)| j).collect();
    assert_eq!(
        jobs.len(),
        1,
        "submitted once the controller was back: {jobs:?}"
    );
}

/// A TPE sweep with an ASHA pruner on Slurm: each trial is chosen from the results before it and submitted as
/// it is chosen; trials the pruner stops have their array task cancelled (one trial a task) before their
/// last step, and are recorded as pruned, not as cancelled by Slurm.
#[test]
fn tpe_and_asha_on_slurm() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((cluster, d)) = setup(tmp.path()) else {
        return;
    };
    let file = tmp.path().join("tpe.yaml");
    std::fs::write(
        &file,
        format!(
            "sweep_id: tpe-slurm\nbase_config: {{optim: {{lr: 0.01}}, epochs: 3, steps_per_epoch: 6, seed: 0, sleep: 0.3}}\n\
             command: python3 {} {{config}}\n\
             sweep:\n  optim.lr: {{log_uniform: [1.0e-4, 1.0]}}\nstrategy: tpe\ntrials: 8\nseed: 2\nparallel: 2\n\
             objective: {{metric: train/loss}}\npruner: {{rule: asha, min_resource: 2, reduction_factor: 3, max_resource: 18}}\n\
             executor: slurm\nslurm:\n  partition: debug\n  cpus_per_task: 1\n  mem: 128M\n",
            train()
        ),
    )
    .unwrap();
    run_file(&d, &file, &[]);
    let s = wait_state(&d, "tpe-slurm", "finished", 180);
    let ts = trials(&s);
    assert_eq!(ts.len(), 8, "every trial chosen: {s}");
    for t in ts {
        assert!(t["status"] == "completed" || t["status"] == "pruned", "{t}");
        assert!(
            !t["jobs"].as_array().unwrap().is_empty(),
            "ran on Slurm: {t}"
        );
    }
    let pruned: Vec<&Value> = ts.iter().filter(|t| t["status"] == "pruned").collect();
    assert!(!pruned.is_empty(), "ASHA stopped some trials: {s}");
    for t in &pruned {
        assert!(
            t["reason"].as_str().unwrap().contains("pruned by asha"),
            "{t}"
        );
        let run = t["experiment_id"].as_str().expect("the pruned trial's run");
        let shown = d.labctl_json(&["show", run]);
        let points = shown["metrics"]["train/loss"]["points"].as_u64().unwrap();
        assert!(points < 18, "stopped before its last step: {points}");
    }
    // Each trial one array task; those of pruned trials were cancelled.
    let tasks = attempts(&s);
    assert_eq!(tasks.len(), 8, "{tasks:?}");
    d.wait_for("Slurm to account for the cancelled tasks", 30, |_| {
        cluster
            .finished()
            .iter()
            .filter(|l| l.contains("CANCELLED"))
            .count()
            >= pruned.len()
    });
}
