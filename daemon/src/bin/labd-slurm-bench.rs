//! `labd-slurm-bench`: what the Slurm executor costs (issue #17), on a real one-node cluster
//! (`scripts/slurm-cluster.sh`, which needs Debian's slurm-wlm and munge):
//! - submission: a sweep of N trials (`true`) with `executor: slurm`, held in the queue (`--hold`), from the
//!   submission to every trial recorded with its job and array task (each trial's folder, config, script, the
//!   batch's task list and job script, one `sbatch --array`, the durable events), per trial;
//! - polling: labd's own poll of the N trials in flight (one `squeue --json`, the comparison with the sweeps view),
//!   as it logs it, and `squeue --json --states=all` alone; and parsing an `squeue` answer that lists N tasks
//!   one by one (what a running array gives), in process.
//!
//! `cargo build --release -p labd -p labctl && target/release/labd-slurm-bench [--trials N]`

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let mut trials = 1000usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--trials" => trials = it.next().context("--trials needs a value")?.parse()?,
            other => bail!("unknown flag {other}; flags: --trials"),
        }
    }
    let exe = std::env::current_exe()?;
    let (labd, labctl) = (exe.with_file_name("labd"), exe.with_file_name("labctl"));
    for b in [&labd, &labctl] {
        if !b.exists() {
            bail!(
                "{} not found: cargo build --release -p labd -p labctl",
                b.display()
            );
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-cluster.sh");
    let dir = std::env::temp_dir().join("labd-slurm-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cluster = dir.join("cluster");
    let up = Command::new(&script).arg("start").arg(&cluster).output()?;
    if !up.status.success() {
        bail!(
            "the Slurm cluster did not start: {}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
    let conf = cluster.join("slurm.conf");
    let result = measure(&labd, &labctl, &dir, &conf, trials);
    let _ = Command::new(&script).arg("stop").arg(&cluster).output();
    result
}

fn measure(labd: &Path, labctl: &Path, dir: &Path, conf: &Path, trials: usize) -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let log = dir.join("labd.log");
    let mut daemon = Command::new(labd)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--watch")
        .arg(dir.join("inbox"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("SLURM_CONF", conf)
        .env("RUST_LOG", "info,labd::sweeps::slurm=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = (|| -> Result<()> {
        let ctl = |args: &[&str]| -> Result<String> {
            let out = Command::new(labctl)
                .args(args)
                .env("LABD_ADDR", &addr)
                .output()?;
            if !out.status.success() {
                bail!("labctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ctl(&["status"]).is_err() {
            if Instant::now() > deadline {
                bail!("labd did not answer; log in {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let values: Vec<String> = (0..trials).map(|i| i.to_string()).collect();
        let file = dir.join("bench.yaml");
        std::fs::write(
            &file,
            format!(
                "sweep_id: bench\nsweep:\n  i: [{}]\ncommand: \"true\"\nexecutor: slurm\nslurm:\n  extra_args: [\"--hold\"]\n",
                values.join(", ")
            ),
        )?;
        let t = Instant::now();
        ctl(&["sweep", "run", file.to_str().unwrap_or_default()])?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let s: serde_json::Value =
                serde_json::from_str(&ctl(&["sweep", "status", "bench", "--json"])?)?;
            let recorded = s["trials"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter(|t| t["jobs"].as_array().is_some_and(|j| !j.is_empty()))
                        .count()
                })
                .unwrap_or(0);
            if recorded == trials {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {recorded} of {trials} trials submitted; log in {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let submitted = t.elapsed().as_secs_f64();
        println!(
            "submission: {trials} trials as one array job in {submitted:.2}s = {:.2} ms per trial (sbatch itself: {})",
            submitted * 1e3 / trials as f64,
            sbatch_time(&log).unwrap_or_else(|| "?".into())
        );
        // labd polls every 2 s: let it poll a few times with the N trials held in flight.
        std::thread::sleep(Duration::from_secs(9));
        let polls = poll_times(&log, trials);
        if let Some(m) = median(polls.iter().map(|p| p.0).collect()) {
            println!(
                "labd's poll of {trials} trials in flight: {m:.1} ms (median of {}; squeue inside it {:.1} ms)",
                polls.len(),
                median(polls.iter().map(|p| p.1).collect()).unwrap_or(f64::NAN)
            );
        }
        let squeue: Vec<f64> = (0..10)
            .filter_map(|_| {
                let t = Instant::now();
                Command::new("squeue")
                    .args(["--json", "--states=all"])
                    .env("SLURM_CONF", conf)
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect();
        if let Some(m) = median(squeue) {
            println!("squeue --json --states=all alone: {m:.1} ms (median of 10)");
        }
        let jobs = ctl(&["sweep", "cancel", "bench"]);
        if let Err(e) = jobs {
            eprintln!("cancel: {e}");
        }
        Ok(())
    })();
    let _ = daemon.kill();
    let _ = daemon.wait();
    parse_split_tasks(trials);
    result
}

/// Parses an answer listing `n` array tasks one by one, as a running array's is.
fn parse_split_tasks(n: usize) {
    let jobs: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"job_id":{},"array_job_id":7,"array_task_id":{i},"name":"labd-b","job_state":"RUNNING","nodes":"node{}","exit_code":0,"start_time":1765000000,"end_time":1765003600}}"#,
                100 + i,
                i % 64
            )
        })
        .collect();
    let text = format!(r#"{{"jobs":[{}]}}"#, jobs.join(","));
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let tasks = labd::sweeps::slurm::queue::parse_squeue(&text, |job, _| job == "7");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(tasks.map(|t| t.len()).unwrap_or(0), n);
    }
    if let Some(m) = median(times) {
        println!(
            "parsing an squeue answer of {n} running tasks ({} KB): {m:.2} ms",
            text.len() / 1024
        );
    }
}

/// sbatch's time as labd logged it.
fn sbatch_time(log: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains("submitted as array job"))?;
    let at = line.rfind(" in ")?;
    Some(line[at + 4..].trim().to_string())
}

/// (poll ms, squeue ms) of each poll labd logged with `trials` trials in flight.
fn poll_times(log: &PathBuf, trials: usize) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let marker = format!("polled {trials} trials in flight in ");
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&marker)? + marker.len()..];
            let total: f64 = rest.split(" ms").next()?.parse().ok()?;
            let sq = rest
                .split("(squeue ")
                .nth(1)?
                .split(" ms")
                .next()?
                .parse()
                .ok()?;
            Some((total, sq))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
