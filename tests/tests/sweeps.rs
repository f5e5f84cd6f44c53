//! Sweeps run by the real daemon with real child processes: the example training script writes its run log and
//! exits as its config says (a code, failures on early attempts, sleeping past a timeout).

use labd_e2e::sweeps::{
    run_file, setup, sleeper_alive, status, train, trial_stderr, trials, two_objective_script,
    wait_state,
};
use labd_e2e::{Daemon, repo_root};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn a_grid_with_repeats_runs_every_trial_once_and_links_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, base) = setup(tmp.path());
    let cmd = format!(
        "echo started >> {{trial_dir}}/starts; python3 {} {{config}}",
        train()
    );
    let out = d.labctl(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "0.01",
        "--repeats",
        "2",
        "--command",
        &cmd,
        "--parallel",
        "2",
        "--id",
        "grid",
        "--tag",
        "g",
        "--wait",
        "--cpus",
        "1",
        "--ram",
        "64M",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("grid finished: 4/4 done"));
    let s = status(&d, "grid");
    assert_eq!(s["state"], "finished");
    assert_eq!(s["spec"]["resources"]["ram"], 64 << 20);
    let ts = trials(&s);
    assert_eq!(ts.len(), 4);
    for t in ts {
        for key in [
            "id",
            "params",
            "status",
            "attempts",
            "exit_code",
            "experiment_id",
        ] {
            assert!(t.get(key).is_some(), "trial has {key}: {t}");
        }
        assert_eq!(t["status"], "completed");
        assert_eq!(t["attempts"], 1);
        assert_eq!(t["exit_code"], 0);
        let dir = Path::new(s["dir"].as_str().unwrap()).join(t["id"].as_str().unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join("starts"))
                .unwrap()
                .lines()
                .count(),
            1
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["optim"]["lr"], t["params"]["optim.lr"]);
        assert_eq!(config["seed"], t["params"]["seed"]);
    }
    // The trials' runs flow into the registry with the sweep's tags and their config.
    let exp = ts[0]["experiment_id"].as_str().unwrap().to_string();
    d.wait_for("the trial's run", 10, |d| {
        d.labctl_json(&["show", &exp])["status"] == "completed"
    });
    let run = d.labctl_json(&["show", &exp]);
    assert_eq!(run["config"]["optim"]["lr"], ts[0]["params"]["optim.lr"]);
    let tags: Vec<&str> = run["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"g") && tags.contains(&"sweep:grid"),
        "{tags:?}"
    );
    d.wait_for("every trial's points", 10, |d| {
        d.labctl_json(&[
            "summary",
            "--metric",
            "val/acc",
            "--where",
            "tag == \"sweep:grid\"",
        ])
        .as_array()
        .is_some_and(|g| g.len() == 2 && g.iter().all(|g| g["count"] == 2))
    });

    // Analysis: the best configuration by its mean over the two seeds, a table per parameter, thresholds.
    let a = d.labctl_json(&[
        "sweep",
        "analyze",
        "grid",
        "--metric",
        "val/acc",
        "--threshold",
        "0.01",
    ]);
    assert_eq!(a["goal"], "max");
    assert_eq!(a["trials_used"], 4);
    assert_eq!(
        a["best"]["params"]["optim.lr"], 0.01,
        "train.py learns best near lr = 0.01"
    );
    assert_eq!(a["best"]["count"], 2);
    let rows = a["params"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        a["params"][0]["thresholds"].as_array().unwrap().len(),
        1,
        "{a}"
    );
    assert_eq!(a["plot"][0]["x"], serde_json::json!([0.01, 0.1]));
    let md = String::from_utf8(
        d.labctl(&[
            "sweep",
            "analyze",
            "grid",
            "--metric",
            "train/loss",
            "--reduce",
            "min",
            "--report",
            "md",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        md.contains("## Best configuration") && md.contains("| optim.lr | n | mean"),
        "{md}"
    );
    assert!(md.contains("lower is better"));
    let bad = d.labctl(&[
        "sweep", "analyze", "grid", "--metric", "val/acc", "--param", "wd",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a parameter of sweep grid"));

    // Submitted again with one more value: the completed trials are kept, only the new ones run.
    let again = d.labctl_json(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "optim.lr",
        "0.1",
        "0.01",
        "0.001",
        "--repeats",
        "2",
        "--command",
        &cmd,
        "--id",
        "grid",
    ]);
    assert_eq!(
        (again["kept"].as_u64(), again["scheduled"].as_u64()),
        (Some(4), Some(2))
    );
    let s = wait_state(&d, "grid", "finished", 30);
    assert_eq!(trials(&s).len(), 6);
    assert!(
        trials(&s)
            .iter()
            .all(|t| t["attempts"] == 1 && t["status"] == "completed")
    );
    // Every state change is an event: planned, scheduled, started, heartbeats with usage, exited.
    let page = d.get("/events?limit=100000").1;
    let kinds: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"]["kind"])
        .collect();
    let states: std::collections::BTreeSet<&str> = kinds
        .iter()
        .filter_map(|k| k["trial_changed"]["state"].as_str())
        .collect();
    for st in ["scheduled", "started", "exited"] {
        assert!(states.contains(st), "{st} in {states:?}");
    }
    assert!(kinds.iter().any(|k| k["sweep_created"].is_object()));
}

#[test]
fn fast_trials_each_run_exactly_once() {
    // Trials that end before their start is even committed must not be started again.
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    let values: Vec<String> = (0..60).map(|i| i.to_string()).collect();
    let mut args = vec![
        "sweep",
        "run",
        "--command",
        "echo x >> {trial_dir}/starts",
        "--parallel",
        "4",
        "--id",
        "fast",
        "--param",
        "i",
    ];
    args.extend(values.iter().map(String::as_str));
    d.labctl_json(&args);
    let s = wait_state(&d, "fast", "finished", 60);
    assert_eq!(s["progress"]["completed"], 60, "{s}");
    let dir = Path::new(s["dir"].as_str().unwrap());
    for t in trials(&s) {
        assert_eq!(t["attempts"], 1, "{t}");
        let starts =
            std::fs::read_to_string(dir.join(t["id"].as_str().unwrap()).join("starts")).unwrap();
        assert_eq!(
            starts.lines().count(),
            1,
            "{} ran {} times",
            t["id"],
            starts.lines().count()
        );
    }
}

#[test]
fn failures_are_retried_timeouts_kill_the_whole_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, base) = setup(tmp.path());
    // fail_attempts 1: the first attempt fails, the retry succeeds; exit_code 3: fails every time.
    let cmd = format!("python3 {} {{config}}", train());
    d.labctl_json(&[
        "sweep",
        "run",
        "--base",
        base.to_str().unwrap(),
        "--param",
        "fail_attempts",
        "0",
        "1",
        "--param",
        "exit_code",
        "0",
        "3",
        "--command",
        &cmd,
        "--retries",
        "1",
        "--id",
        "retry",
    ]);
    let s = wait_state(&d, "retry", "finished", 60);
    let by = |fa: i64, code: i64| -> Value {
        trials(&s)
            .iter()
            .find(|t| t["params"]["fail_attempts"] == fa && t["params"]["exit_code"] == code)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (by(0, 0)["status"].clone(), by(0, 0)["attempts"].clone()),
        ("completed".into(), 1.into())
    );
    assert_eq!(
        (by(1, 0)["status"].clone(), by(1, 0)["attempts"].clone()),
        ("completed".into(), 2.into())
    );
    assert_eq!(
        (by(0, 3)["status"].clone(), by(0, 3)["attempts"].clone()),
        ("failed".into(), 2.into())
    );
    assert_eq!(by(0, 3)["exit_code"], 3);
    let out = d.labctl(&["sweep", "status", "retry"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 failed") && text.contains("completed"),
        "{text}"
    );

    // A trial that forks a sleeper and outlives its timeout: the whole process group goes.
    let marker = "31.4159";
    let cmd = format!("sleep {marker} & sleep {marker}");
    d.labctl_json(&[
        "sweep",
        "run",
        "--param",
        "x",
        "1",
        "--command",
        &cmd,
        "--timeout",
        "1",
        "--id",
        "slow",
    ]);
    let s = wait_state(&d, "slow", "finished", 30);
    assert_eq!(trials(&s)[0]["status"], "timed_out");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !sleeper_alive(marker),
        "the trial's background process was killed with its group"
    );
}

/// Runaway trials fail alone: one that allocates without end hits its memory limit, one that forks hundreds
/// of processes is killed with its whole group at its timeout (and, run by a user other than root, cannot
/// fork past its process limit); labd stays healthy and the next sweep runs.
#[test]
fn runaway_trials_fail_alone_and_labd_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    let eat = "import sys\nx = []\nwhile True:\n    x.append(bytearray(32 << 20))\n";
    std::fs::write(tmp.path().join("eat.py"), eat).unwrap();
    let (s, v) = d.post(
        "/sweeps",
        &serde_json::json!({"spec": {
            "sweep_id": "eater",
            "sweep": {"x": [1]},
            "command": format!("python3 {}", tmp.path().join("eat.py").display()),
            "limits": {"memory": "256M"},
            "timeout": 60,
        }}),
    );
    assert_eq!(s, 200, "{v}");
    let s = wait_state(&d, "eater", "finished", 60);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "failed", "{t}");
    let stderr = trial_stderr(&s, t);
    assert!(stderr.contains("MemoryError"), "{stderr}");
    // The trial ran as the OOM killer's first choice.
    let marker = "16.1803";
    let (s, v) = d.post(
        "/sweeps",
        &serde_json::json!({"spec": {
            "sweep_id": "forker",
            "sweep": {"x": [1]},
            "command": format!("cat /proc/self/oom_score_adj > {}/oom; for i in $(seq 300); do sleep {marker} & done; wait", tmp.path().display()),
            "limits": {"processes": 100},
            "timeout": 2,
        }}),
    );
    assert_eq!(s, 200, "{v}");
    let s = wait_state(&d, "forker", "finished", 60);
    assert!(
        ["timed_out", "failed"].contains(&trials(&s)[0]["status"].as_str().unwrap()),
        "{s}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !sleeper_alive(marker),
        "every forked process went with the group"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("oom"))
            .unwrap()
            .trim(),
        "500"
    );
    assert_eq!(d.get("/health").1["status"], "ok");
    // labd goes on: a plain sweep runs.
    let (s, _) = d.post(
        "/sweeps",
        &serde_json::json!({"spec": {"sweep_id": "after", "sweep": {"x": [1]}, "command": "true"}}),
    );
    assert_eq!(s, 200);
    let s = wait_state(&d, "after", "finished", 30);
    assert_eq!(trials(&s)[0]["status"], "completed");
}

#[test]
fn trials_with_limits_get_a_cgroup_where_labd_may_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    d.wait_for("the cgroup decision in the log", 20, |d| {
        d.log().contains("cgroup")
    });
    if !d.log().contains("trials with limits get their own cgroup") {
        assert!(
            std::env::var("LABD_REQUIRE_CGROUPS").is_err(),
            "no cgroups for trials and LABD_REQUIRE_CGROUPS is set: {}",
            d.log()
        );
        eprintln!("skipped: labd may not make cgroups here (needs root or a delegated cgroup)");
        return;
    }
    // Shared memory escapes RLIMIT_DATA, not the cgroup: the kernel kills the trial at 256 MiB.
    let eat = "import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 4096):\n    m[i] = 1\nprint('touched 1 GiB')\n";
    std::fs::write(tmp.path().join("shm.py"), eat).unwrap();
    let (s, v) = d.post(
        "/sweeps",
        &serde_json::json!({"spec": {
            "sweep_id": "shm",
            "sweep": {"x": [1]},
            "command": format!("python3 {}", tmp.path().join("shm.py").display()),
            "limits": {"memory": "256M"},
            "timeout": 60,
        }}),
    );
    assert_eq!(s, 200, "{v}");
    let s = wait_state(&d, "shm", "finished", 60);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "failed", "{t}");
    assert!(
        t["reason"].as_str().unwrap().contains("out of memory"),
        "{t}"
    );
    // The process count is the trial's own, exact: forks past it fail at once (no timeout needed).
    let marker = "27.1828";
    let (s, v) = d.post(
        "/sweeps",
        &serde_json::json!({"spec": {
            "sweep_id": "forks",
            "sweep": {"x": [1]},
            "command": format!("for i in $(seq 300); do sleep {marker} & done; wait"),
            "limits": {"processes": 50},
            "timeout": 30,
        }}),
    );
    assert_eq!(s, 200, "{v}");
    let s = wait_state(&d, "forks", "finished", 30);
    let t = &trials(&s)[0];
    assert_eq!(t["status"], "failed", "{t}");
    let stderr = trial_stderr(&s, t);
    assert!(stderr.to_lowercase().contains("fork"), "{stderr}");
    // What the trial left running went with its group.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !sleeper_alive(marker),
        "leftovers were killed with the group"
    );
    assert_eq!(d.get("/health").1["status"], "ok");
}

#[test]
fn dry_runs_plan_random_sweeps_deterministically_and_bad_sweeps_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    let file = tmp.path().join("rand.yaml");
    std::fs::write(
        &file,
        "sweep:\n  optim.lr: {log_uniform: [1.0e-5, 1.0e-1]}\n  width: {int: [32, 256]}\n  act: [relu, gelu]\nstrategy: random\ntrials: 8\nseed: 42\nrepeats: 2\ncommand: echo {param:act}\n",
    )
    .unwrap();
    let a = d.labctl_json(&[
        "sweep",
        "run",
        file.to_str().unwrap(),
        "--dry-run",
        "--id",
        "r1",
    ]);
    let b = d.labctl_json(&[
        "sweep",
        "run",
        file.to_str().unwrap(),
        "--dry-run",
        "--id",
        "r1",
    ]);
    assert_eq!(a["trials"], b["trials"]);
    assert_eq!(a["total"], 16);
    // Quasi-random points: as seeded, in range, and from `--strategy` on the command line too.
    let q = d.labctl_json(&[
        "sweep",
        "run",
        file.to_str().unwrap(),
        "--dry-run",
        "--id",
        "q1",
        "--strategy",
        "quasi_random",
    ]);
    assert_eq!(q["total"], 16);
    assert_ne!(q["trials"], a["trials"]);
    let planned = q["trials"].as_array().unwrap();
    assert!(
        planned.iter().all(|t| {
            let w = t["params"]["width"].as_i64().unwrap_or(0);
            let lr = t["params"]["optim.lr"].as_f64().unwrap_or(0.0);
            (32..=256).contains(&w) && (1e-5..=1e-1).contains(&lr)
        }),
        "{q}"
    );
    assert!(
        d.labctl_json(&["sweep", "ls"])
            .as_array()
            .unwrap()
            .is_empty(),
        "a dry run records nothing"
    );
    let bad = d.labctl(&[
        "sweep",
        "run",
        "--param",
        "lr",
        "1",
        "--command",
        "run {confg}",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown placeholder {confg}"));
    let bad = d.labctl(&[
        "sweep",
        "run",
        "--param",
        "lr",
        "1",
        "--command",
        "x",
        "--id",
        "../etc",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sweep_id"));
    // A random sweep runs like a grid: the drawn values reach the trials' configs.
    let drawn = d.labctl_json(&[
        "sweep",
        "run",
        "--strategy",
        "random",
        "--trials",
        "3",
        "--seed",
        "5",
        "--param",
        "act",
        "relu",
        "gelu",
        "--command",
        "test -f {config}",
        "--id",
        "rnd",
    ]);
    assert_eq!(drawn["total"].as_u64().map(|n| n <= 3), Some(true));
    let s = wait_state(&d, "rnd", "finished", 30);
    for t in trials(&s) {
        assert_eq!(t["status"], "completed");
        assert_eq!(t["config"]["act"], t["params"]["act"]);
    }
    // The example sweep files stay valid.
    for name in ["lr.yaml", "random.yaml", "slurm.yaml"] {
        let f = repo_root().join("sweeps/examples").join(name);
        let plan = d.labctl_json(&["sweep", "run", f.to_str().unwrap(), "--dry-run"]);
        assert!(plan["total"].as_u64() >= Some(9), "{name}: {plan}");
    }
    let missing = d.labctl(&["sweep", "status", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// `--parallel auto` as the sweep system computed it (seed 003): 70 % of the RAM over a trial's memory; here a
/// trial asks for 60 % of the RAM, so one runs at a time, and `sweep status` says why.
#[test]
fn parallel_auto_is_seventy_percent_of_ram_over_a_trials_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    let total_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let ram = format!("{}K", total_kib * 6 / 10);
    d.labctl_json(&[
        "sweep",
        "run",
        "--command",
        "date +%s.%N > {trial_dir}/start; sleep 0.3; date +%s.%N > {trial_dir}/end",
        "--parallel",
        "auto",
        "--ram",
        &ram,
        "--cpus",
        "0.1",
        "--id",
        "auto",
        "--param",
        "i",
        "1",
        "2",
        "3",
    ]);
    let s = wait_state(&d, "auto", "finished", 60);
    assert_eq!(s["progress"]["completed"], 3, "{s}");
    assert_eq!(s["parallel_budget"]["parallel"], 1, "{s}");
    let why = s["parallel_budget"]["why"].as_str().unwrap();
    assert!(
        why.contains("70 % of") && why.contains("a trial = 1"),
        "{why}"
    );
    let text = String::from_utf8(d.labctl(&["sweep", "status", "auto"]).stdout).unwrap();
    assert!(text.contains("parallel: auto → 1 (70 % of"), "{text}");
    // One at a time: no trial started before the one before it ended.
    let dir = Path::new(s["dir"].as_str().unwrap());
    let mut spans: Vec<(f64, f64)> = trials(&s)
        .iter()
        .map(|t| {
            let read = |f: &str| -> f64 {
                std::fs::read_to_string(dir.join(t["id"].as_str().unwrap()).join(f))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            };
            (read("start"), read("end"))
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "trials overlapped: {spans:?}");
    }
}

/// The sweep system's file and command line (seed 003): its keys (`jetson_optimized`, `sweep_params`,
/// `timeout_seconds`), `--config` and `--plot`; its files in the sweep's folder as trials end; `analyze
/// --output --plot --viz-script`; and its keys labd does otherwise named.
#[test]
fn the_sweep_systems_file_flags_and_output_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, base) = setup(tmp.path());
    let file = tmp.path().join("memory_corruption_sweep.yaml");
    std::fs::write(
        &file,
        format!(
            "name: memory_corruption\nbase_config: {}\nsweep_params:\n  interventions.0.parameters.corruption_rate: [0.0, 0.5]\n  optim.lr: [0.1, 0.01]\nparallel_jobs: 2\njetson_optimized: true\nresume: true\ntimeout_seconds: 120\ntags: [memory_corruption]\ncommand: python3 {} {{config}}\nsweep_id: corruption\n",
            base.display(),
            labd_e2e::sweeps::train()
        ),
    )
    .unwrap();
    let out = d.labctl(&["sweep", "run", "--config", file.to_str().unwrap(), "--plot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_state(&d, "corruption", "finished", 120);
    assert_eq!(s["progress"]["completed"], 4, "{s}");
    assert_eq!(s["spec"]["jetson"], true);
    let dir = Path::new(s["dir"].as_str().unwrap()).to_path_buf();
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    // The files follow the sweep: wait for the last trial's result to be written.
    d.wait_for("the sweep's files", 30, |_| {
        read("completed_experiments.json")
            .as_array()
            .is_some_and(|a| a.len() == 4)
    });
    assert_eq!(read("sweep_config.json")["total_experiments"], 4);
    let results = read("sweep_results.json");
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        assert_eq!(r["status"], "completed", "{r}");
        assert!(r["experiment_id"].is_string(), "{r}");
        assert!(r["metrics"]["train/loss"].is_number(), "{r}");
        assert!(
            r["params"]["interventions.0.parameters.corruption_rate"].is_number(),
            "{r}"
        );
    }
    assert_eq!(
        read("plot_data.json")["points"].as_array().unwrap().len(),
        4
    );
    let configs = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("exp") && n.ends_with("_config.json")
        })
        .count();
    assert_eq!(configs, 4);

    // analyze_sweep.py's --output, --plot and --viz-script.
    let report = tmp.path().join("report.txt");
    let plot = tmp.path().join("plot.json");
    let script = tmp.path().join("viz.sh");
    let seen = tmp.path().join("viz-saw");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > {}\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = d.labctl(&[
        "sweep",
        "analyze",
        "corruption",
        "--metric",
        "train/loss",
        "--output",
        report.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--viz-script",
        script.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("corruption")
    );
    assert!(plot.is_file());
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        plot.to_str().unwrap()
    );

    // analyze_sweep.py <id> with no metric: the trials' primary metric.
    let out = d.labctl(&["report", "corruption"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // The trainer logs train/loss and val/acc: the validation metric is the primary one.
    assert!(text.starts_with("# Sweep corruption: val/acc"), "{text}");

    // Keys labd does otherwise are named, with what to do.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "sweep:\n  lr: [1]\ncommand: 'true'\noutput_dir: logs/sweeps\n",
    )
    .unwrap();
    let out = d.labctl(&["sweep", "run", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("output_dir") && err.contains("data folder"),
        "{err}"
    );
}

/// The example script's base config for the TPE tests: six steps of 50 ms a trial.
const TPE_BASE: &str =
    r#"{"optim": {"lr": 0.01}, "epochs": 2, "steps_per_epoch": 3, "seed": 0, "sleep": 0.05}"#;
/// The base config of the ASHA tests: 18 steps of 100 ms a trial (rungs at steps 2, 6 and 18).
const ASHA_BASE: &str =
    r#"{"optim": {"lr": 0.01}, "epochs": 3, "steps_per_epoch": 6, "seed": 0, "sleep": 0.1}"#;

/// A TPE sweep chooses each trial from the results before it (the example script's loss falls fastest at
/// lr = 0.01: the model's choices come closer to it than the random start), and a labd killed mid-sweep
/// resumes it with the same choices.
#[test]
fn a_tpe_sweep_chooses_from_the_results_and_a_restart_keeps_its_choices() {
    // Each trial takes a third of a second (six steps of 50 ms), so the kill comes mid-sweep.
    let base = TPE_BASE;
    let yaml = "sweep:\n  optim.lr: {log_uniform: [1.0e-4, 1.0]}\nstrategy: tpe\ntrials: 13\nseed: 5\nparallel: 1\nobjective: {metric: train/loss, direction: minimize}\ncommand: python3 {train} {config}\n";
    let run_sweep = |kill_after: Option<usize>| -> Vec<f64> {
        let (_tmp, _d, s) = run_to_end(yaml, base, "tpe", kill_after);
        let all = trials(&s);
        assert_eq!(all.len(), 13, "{s}");
        assert!(all.iter().all(|t| t["status"] == "completed"), "{s}");
        all.iter()
            .map(|t| t["params"]["optim.lr"].as_f64().unwrap())
            .collect()
    };
    let straight = run_sweep(None);
    let distance = |lr: &f64| (lr.log10() + 2.0).abs();
    let random: f64 = straight[..10].iter().map(distance).sum::<f64>() / 10.0;
    let model: f64 = straight[10..].iter().map(distance).sum::<f64>() / 3.0;
    assert!(
        model < random,
        "the model's choices ({model:.2} decades from 0.01 on average) beat the random start ({random:.2}): {straight:?}"
    );
    let resumed = run_sweep(Some(5));
    assert_eq!(resumed, straight, "the same choices after kill -9");
}

/// A parallel TPE sweep with `constant_liar`: trials still running count as the worst results when the next
/// is chosen, and each choice says so; the sweep runs its trials three at a time to the end.
#[test]
fn a_parallel_tpe_sweep_counts_running_trials_as_the_worst() {
    let base = TPE_BASE;
    let yaml = "sweep:\n  optim.lr: {log_uniform: [1.0e-4, 1.0]}\nstrategy: tpe\ntrials: 14\nseed: 3\nparallel: 3\nconstant_liar: true\nobjective: {metric: train/loss, direction: minimize}\ncommand: python3 {train} {config}\n";
    let (_tmp, d, s) = run_to_end(yaml, base, "liar", None);
    let all = trials(&s);
    assert_eq!(all.len(), 14, "{s}");
    assert!(all.iter().all(|t| t["status"] == "completed"), "{s}");
    let reasons = trial_reasons(&d);
    assert_eq!(reasons.len(), 14);
    let lied = reasons
        .iter()
        .filter(|r| r.contains("counted as the worst (constant liar)"))
        .count();
    assert!(lied >= 3, "choices made beside running trials: {reasons:?}");
}

/// An ASHA sweep over nine learning rates (rungs at steps 2, 6 and 18 of 18; the example script's loss falls
/// fastest at lr = 0.01) stops trials at the rungs as their curves come in: some are pruned, with the rule and
/// the values that decided it, their process groups ended before their last step, and the best rate runs to
/// the end; the sweep finishes sooner than the same grid without the pruner, with less trial time (here about
/// 70 % of it: the first trials at each rung pass it while too few have reached it to compare).
#[test]
fn an_asha_sweep_prunes_trials_from_their_curves() {
    let base = ASHA_BASE;
    let grid = "sweep:\n  optim.lr: [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]\nparallel: 3\nobjective: {metric: train/loss}\ncommand: python3 {train} {config}\n";
    let yaml = grid.replace(
        "command:",
        "pruner: {rule: asha, min_resource: 2, reduction_factor: 3}\ncommand:",
    );
    let started = Instant::now();
    let (_tmp, d, s) = run_to_end(&yaml, base, "asha", None);
    let asha_wall = started.elapsed();
    let started = Instant::now();
    let (_tmp2, _d2, full) = run_to_end(grid, base, "grid", None);
    let full_wall = started.elapsed();
    // Each trial's time from its start to its end (a pruned trial's end is its pruning).
    let trial_secs = |s: &Value| -> f64 {
        trials(s)
            .iter()
            .filter_map(|t| Some((t["ended"].as_i64()? - t["started"].as_i64()?) as f64 / 1e6))
            .sum()
    };
    let (asha_secs, full_secs) = (trial_secs(&s), trial_secs(&full));
    eprintln!(
        "ASHA: {asha_wall:.1?} wall, {asha_secs:.1} trial-seconds; full grid: {full_wall:.1?}, {full_secs:.1}"
    );
    assert!(
        trials(&full).iter().all(|t| t["status"] == "completed"),
        "{full}"
    );
    assert!(
        asha_secs < full_secs * 0.85,
        "ASHA spent {asha_secs:.1} trial-seconds, the full grid {full_secs:.1}"
    );
    assert!(
        asha_wall < full_wall,
        "ASHA took {asha_wall:?}, the full grid {full_wall:?}"
    );
    let all = trials(&s);
    let pruned: Vec<&Value> = all.iter().filter(|t| t["status"] == "pruned").collect();
    assert!(!pruned.is_empty(), "some trials were pruned: {s}");
    assert!(
        pruned.iter().all(|t| t["reason"]
            .as_str()
            .is_some_and(|r| r.contains("pruned by asha at rung"))),
        "{s}"
    );
    let best = all
        .iter()
        .find(|t| t["params"]["optim.lr"] == 0.01)
        .expect("lr 0.01");
    assert_eq!(best["status"], "completed", "{s}");
    for t in &pruned {
        let id = t["experiment"]
            .as_str()
            .or_else(|| t["experiment_id"].as_str());
        if let Some(id) = id {
            let show = d.labctl_json(&["show", id]);
            let points = show["metrics"]["train/loss"]["points"]
                .as_u64()
                .unwrap_or(0);
            assert!(
                points < 18,
                "a pruned trial stopped before its last step: {points}"
            );
        }
    }
}

/// Pruning decisions survive a crash: the same ASHA sweep, one trial at a time, run straight through and with
/// labd killed (-9) mid-sweep, prunes the same trials at the same rungs (the rungs are rebuilt from the log).
#[test]
fn asha_decisions_are_the_same_after_kill_9() {
    let base = ASHA_BASE;
    let yaml = "sweep:\n  optim.lr: [0.3, 0.01, 1.0, 0.001, 0.1, 0.03, 0.0001]\nparallel: 1\nobjective: {metric: train/loss}\npruner: {rule: asha, min_resource: 2, reduction_factor: 3}\ncommand: python3 {train} {config}\n";
    let run_sweep = |kill_after: Option<usize>| -> Vec<(String, String)> {
        let (_tmp, _d, s) = run_to_end(yaml, base, "asha", kill_after);
        trials(&s)
            .iter()
            .map(|t| {
                (
                    t["status"].as_str().unwrap_or_default().to_string(),
                    t["reason"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let straight = run_sweep(None);
    assert!(straight.iter().any(|(s, _)| s == "pruned"), "{straight:?}");
    let resumed = run_sweep(Some(3));
    assert_eq!(resumed, straight);
}

/// Runs the sweep file `yaml` (`{train}` names the example script) with base config `base` as sweep `id` on a
/// fresh labd until it finishes. With `kill_after`, labd is killed (-9) once that many trials have ended
/// (completed or pruned), while the sweep still runs, and started again. Answers the folder, the daemon and
/// the finished sweep's status.
fn run_to_end(
    yaml: &str,
    base: &str,
    id: &str,
    kill_after: Option<usize>,
) -> (tempfile::TempDir, labd_e2e::Daemon, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (mut d, _) = setup(tmp.path());
    let file = tmp.path().join(format!("{id}.yaml"));
    std::fs::write(&file, yaml.replace("{train}", &train())).unwrap();
    run_file(&d, &file, &["--base", base, "--id", id]);
    if let Some(n) = kill_after {
        let ended = |d: &labd_e2e::Daemon| {
            trials(&status(d, id))
                .iter()
                .filter(|t| t["status"] == "completed" || t["status"] == "pruned")
                .count()
        };
        d.wait_for("trials to end", 120, |d| ended(d) >= n);
        let at_kill = status(&d, id);
        d.kill9();
        assert_eq!(
            at_kill["state"], "running",
            "the sweep was still running when killed"
        );
        d.restart();
    }
    let s = wait_state(&d, id, "finished", 240);
    (tmp, d, s)
}

/// A sweep with two objectives that pull apart (a wider model: lower loss, higher cost; `bad: 1` is worse in
/// both): its analysis shows the Pareto front, the three narrow-to-wide configurations without the handicap, in
/// the first objective's order; the same front is asked for over the query on a sweep without objectives, and
/// the report has its table.
#[test]
fn a_two_objective_sweep_shows_its_pareto_front() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, _) = setup(tmp.path());
    let script = two_objective_script(tmp.path());
    let yaml = format!(
        "sweep:\n  width: [1, 2, 4]\n  bad: [0, 1]\nparallel: 3\nobjectives:\n  - {{metric: loss, direction: minimize}}\n  - {{metric: cost, direction: minimize}}\ncommand: python3 {}\n",
        script.display()
    );
    let file = tmp.path().join("two.yaml");
    std::fs::write(&file, &yaml).unwrap();
    run_file(&d, &file, &["--base", "{}", "--id", "two"]);
    wait_state(&d, "two", "finished", 60);
    d.wait_for("every trial's run to complete", 20, |d| {
        d.ls().iter().filter(|r| r["status"] == "completed").count() == 6
    });
    let front_of = |a: &Value| -> Vec<(i64, i64, bool)> {
        a["pareto"]["points"]
            .as_array()
            .unwrap_or_else(|| panic!("no pareto in {a}"))
            .iter()
            .map(|p| {
                (
                    p["params"]["width"].as_i64().unwrap(),
                    p["params"]["bad"].as_i64().unwrap(),
                    p["front"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let a = d.labctl_json(&["sweep", "analyze", "two"]);
    assert_eq!(a["pareto"]["on_front"], 3, "{a}");
    let points = front_of(&a);
    // The front first, by loss (wide to narrow), then the dominated ones.
    assert_eq!(
        &points[..3],
        &[(4, 0, true), (2, 0, true), (1, 0, true)],
        "{points:?}"
    );
    assert!(points[3..].iter().all(|p| p.1 == 1 && !p.2), "{points:?}");
    assert_eq!(
        a["pareto"]["points"][0]["values"],
        serde_json::json!([0.25, 4.0])
    );
    // Over the query (here the same two, the second now maximized: every configuration is then a trade-off
    // except those beaten by a handicapped one of the same width).
    let q = d.labctl_json(&[
        "sweep",
        "analyze",
        "two",
        "--objectives",
        "loss:min,cost:max",
    ]);
    assert_eq!(q["pareto"]["objectives"][1]["direction"], "maximize");
    let on: Vec<(i64, i64, bool)> = front_of(&q).into_iter().filter(|p| p.2).collect();
    assert!(
        on.contains(&(4, 1, true)) && on.contains(&(4, 0, true)),
        "{on:?}"
    );
    let bad = d.labctl(&["sweep", "analyze", "two", "--objectives", "loss:sideways"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use min or max"));
    // The Markdown report has the front's table.
    let report = d.labctl(&["sweep", "analyze", "two"]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("## Pareto front") && text.contains("3 of 6 configurations"),
        "{text}"
    );
}

/// An NSGA-II sweep over two objectives that pull apart: generation 0 at random, each later one bred from
/// the elite of those before it (every trial of the generation before settled first); the choices are the same
/// when labd is killed (-9) mid-sweep and resumes, and the analysis shows the front.
#[test]
fn an_nsga2_sweep_breeds_generations_and_a_restart_keeps_its_choices() {
    let scripts = tempfile::tempdir().unwrap();
    let script = two_objective_script(scripts.path());
    let yaml = format!(
        "sweep:\n  width: {{choice: [1, 2, 4, 8, 16]}}\n  bad: {{choice: [0, 1]}}\nstrategy: nsga2\npopulation: 4\ntrials: 12\nseed: 4\nparallel: 2\nobjectives:\n  - {{metric: loss}}\n  - {{metric: cost}}\ncommand: python3 {}\n",
        script.display()
    );
    let run_sweep = |kill_after: Option<usize>| -> (Vec<String>, Vec<String>, Value) {
        let (_tmp, d, s) = run_to_end(&yaml, "{}", "nsga", kill_after);
        let all = trials(&s);
        assert_eq!(all.len(), 12, "{s}");
        assert!(all.iter().all(|t| t["status"] == "completed"), "{s}");
        let params = all.iter().map(|t| t["params"].to_string()).collect();
        let reasons = trial_reasons(&d);
        let a = d.labctl_json(&["sweep", "analyze", "nsga"]);
        (params, reasons, a)
    };
    let (straight, reasons, analysis) = run_sweep(None);
    assert_eq!(reasons.len(), 12, "{reasons:?}");
    for (n, r) in reasons.iter().enumerate() {
        let generation = n / 4;
        assert!(
            r.starts_with(&format!("nsga2: generation {generation}, ")),
            "{n}: {r}"
        );
        assert_eq!(r.contains("at random"), generation == 0, "{n}: {r}");
    }
    assert!(reasons[4].contains("elite of 4"), "{}", reasons[4]);
    assert!(
        analysis["pareto"]["on_front"].as_u64().unwrap() >= 1,
        "{analysis}"
    );
    let (resumed, _, _) = run_sweep(Some(5));
    assert_eq!(resumed, straight, "the same choices after kill -9");
}

/// Why each trial of the daemon's log was chosen (`trial_added`'s reason), in order.
fn trial_reasons(d: &Daemon) -> Vec<String> {
    let (_, events) = d.get("/events?from=1&limit=100000");
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"]["kind"]["trial_added"]["reason"].as_str())
        .map(str::to_string)
        .collect()
}
