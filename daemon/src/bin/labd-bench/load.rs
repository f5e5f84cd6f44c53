//! `labd-bench --load`: many clients query a running daemon (with wrk) while a backlog of run logs is dropped
//! into its inbox and ingested at full rate. Reports the latency the clients saw (p50, p90, p99), the ingest
//! rate with and without them, and the daemon's peak memory.
//!
//! Three windows of the same length on one daemon:
//! 1. quiet ingest: half the corpus dropped in, nobody querying;
//! 2. ingest under load: the other half dropped in while the clients query;
//! 3. load alone: the clients query an idle daemon.

use crate::ureq_agent::Agent;
use crate::{spawn_daemon, stop, total_points};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What one wrk run reported.
struct Latency {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    requests_per_s: f64,
    errors: u64,
}

/// What the targets table reads of a load run.
pub struct LoadFigures {
    /// p99 latency of the clients while the backlog was ingested, ms.
    pub p99_under_ingest_ms: f64,
    /// The daemon's peak RSS over that window, bytes.
    pub peak_rss: u64,
    pub errors: u64,
}

pub struct Options {
    pub connections: u32,
    pub window_s: u64,
}

/// Runs the three windows over the corpus written in `corpus` (its `group*` folders).
pub fn run(
    labd: &Path,
    dir: &Path,
    corpus: &Path,
    points_per_run: u64,
    opts: &Options,
) -> Result<LoadFigures> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (Debian: apt-get install wrk)");
    }
    let mut groups: Vec<PathBuf> = std::fs::read_dir(corpus)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    groups.sort();
    if groups.len() < 3 {
        bail!(
            "the corpus has {} groups; the load test needs 3 or more",
            groups.len()
        );
    }
    let runs_in = |gs: &[PathBuf]| -> Result<u64> {
        let mut n = 0;
        for g in gs {
            n += std::fs::read_dir(g)?.count() as u64;
        }
        Ok(n)
    };
    let data = dir.join("load-data");
    let inbox = dir.join("load-inbox");
    std::fs::create_dir_all(&inbox)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = spawn_daemon(labd, &data, &inbox, port)?;
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let agent = Agent;
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("{base}/health")).is_err() {
        if Instant::now() > deadline {
            bail!("labd did not answer within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // A first group, so the clients have runs to ask about.
    let (seed, rest) = groups.split_at(1);
    let half = rest.len() / 2;
    let (quiet, loaded) = rest.split_at(half);
    let seed_points = runs_in(seed)? * points_per_run;
    drop_groups(seed, &inbox)?;
    wait_points(&agent, &base, seed_points, 300)?;

    // 1. Quiet ingest.
    let quiet_points = runs_in(quiet)? * points_per_run;
    let window = Duration::from_secs(opts.window_s);
    let (quiet_rate, quiet_done) =
        ingest_window(&agent, &base, &inbox, quiet, seed_points, window)?;
    wait_points(&agent, &base, seed_points + quiet_points, 600)?;

    // The clients' requests: pages and details of real runs.
    let script = write_script(&agent, &base, dir)?;
    let url = format!("http://127.0.0.1:{port}");
    let wrk = |secs: u64| -> Result<std::process::Child> {
        Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{}", opts.connections),
                &format!("-d{secs}s"),
                "--latency",
                "--timeout",
                "10s",
                "-s",
            ])
            .arg(&script)
            .arg(&url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting wrk")
    };

    // 2. Ingest under load.
    let before = seed_points + quiet_points;
    let loaded_points = runs_in(loaded)? * points_per_run;
    let clients = wrk(opts.window_s)?;
    std::thread::sleep(Duration::from_millis(200));
    let peak = Peak::start(pid);
    let (loaded_rate, loaded_done) = ingest_window(&agent, &base, &inbox, loaded, before, window)?;
    let under_load = parse_wrk(&clients.wait_with_output()?.stdout)?;
    wait_points(&agent, &base, before + loaded_points, 600)?;
    let rss_ingest = peak.stop();

    // 3. Load alone.
    let peak = Peak::start(pid);
    let alone = parse_wrk(&wrk(opts.window_s)?.wait_with_output()?.stdout)?;
    let rss_alone = peak.stop();
    let total = before + loaded_points;
    let experiments = agent
        .get(&format!("{base}/health"))
        .ok()
        .and_then(|h| serde_json::from_str::<serde_json::Value>(&h).ok())
        .and_then(|h| h["experiments"].as_u64())
        .unwrap_or(0);
    stop(child)?;

    let done = |d: bool| {
        if d {
            " (the backlog was done before the window ended)"
        } else {
            ""
        }
    };
    println!(
        "labd-bench --load: {} clients (wrk, 2 threads) on this {}-core machine; {experiments} runs, {total} points at the end; windows of {} s",
        opts.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        opts.window_s
    );
    println!(
        "ingest of a dropped backlog, nobody querying: {quiet_rate:.0} points/s{}",
        done(quiet_done)
    );
    println!(
        "ingest of a dropped backlog, {} clients querying: {loaded_rate:.0} points/s{}",
        opts.connections,
        done(loaded_done)
    );
    for (what, l, rss) in [
        ("queries during that ingest", &under_load, rss_ingest),
        ("queries, idle daemon", &alone, rss_alone),
    ] {
        println!(
            "{what}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, {:.0} requests/s, {} errors; labd peak RSS {:.0} MB",
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.requests_per_s,
            l.errors,
            rss as f64 / 1e6
        );
    }
    Ok(LoadFigures {
        p99_under_ingest_ms: under_load.p99_ms,
        peak_rss: rss_ingest.max(rss_alone),
        errors: under_load.errors + alone.errors,
    })
}

fn drop_groups(groups: &[PathBuf], inbox: &Path) -> Result<()> {
    for g in groups {
        let name = g.file_name().context("group folder")?;
        std::fs::rename(g, inbox.join(name))?;
    }
    Ok(())
}

fn wait_points(agent: &Agent, base: &str, points: u64, secs: u64) -> Result<()> {
    let t = Instant::now();
    while total_points(agent, base)? < points {
        if t.elapsed() > Duration::from_secs(secs) {
            bail!("{points} points were not ingested within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Drops `groups` into the inbox and answers the points ingested per second over `window` (or until all
/// were in, if sooner), and whether they were all in.
fn ingest_window(
    agent: &Agent,
    base: &str,
    inbox: &Path,
    groups: &[PathBuf],
    before: u64,
    window: Duration,
) -> Result<(f64, bool)> {
    let expected: u64 = total_after(groups)?;
    let t = Instant::now();
    drop_groups(groups, inbox)?;
    let mut last = before;
    while t.elapsed() < window {
        std::thread::sleep(Duration::from_millis(250));
        last = total_points(agent, base)?;
        if last >= before + expected {
            return Ok(((last - before) as f64 / t.elapsed().as_secs_f64(), true));
        }
    }
    Ok(((last - before) as f64 / t.elapsed().as_secs_f64(), false))
}

/// Points in the groups' run logs (their `metrics` lines' values).
fn total_after(groups: &[PathBuf]) -> Result<u64> {
    let mut n = 0u64;
    for g in groups {
        for f in std::fs::read_dir(g)?.flatten() {
            let text = std::fs::read_to_string(f.path())?;
            for line in text.lines().filter(|l| l.contains("\"kind\":\"metrics\"")) {
                n += line
                    .split_once("\"values\":{")
                    .map_or(0, |(_, v)| v.matches(':').count() as u64);
            }
        }
    }
    Ok(n)
}

/// A wrk script: each request is one of the views a dashboard or labctl asks for, of a real run.
fn write_script(agent: &Agent, base: &str, dir: &Path) -> Result<PathBuf> {
    let ids = crate::run_ids(agent, base, 200)?;
    if ids.is_empty() {
        bail!("no runs to query");
    }
    let mut paths = vec![
        "/api/v1/health".to_string(),
        "/api/v1/table?limit=50".into(),
        "/api/v1/table?limit=50&offset=100&sort=started&desc=true".into(),
        "/api/v1/analytics/varying".into(),
    ];
    for id in ids.iter().take(50) {
        paths.push(format!("/api/v1/experiments/{id}"));
        paths.push(format!(
            "/api/v1/experiments/{id}/metrics/train/loss?limit=1000"
        ));
        paths.push(format!(
            "/api/v1/analytics/curves?metric=train/loss&points=500&ids={id}"
        ));
    }
    let list = paths
        .iter()
        .map(|p| format!("  {p:?},"))
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!(
        "-- Generated by labd-bench --load: requests cycle through these paths.\npaths = {{\n{list}\n}}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(\"GET\", paths[(counter % #paths) + 1])\nend\n"
    );
    let path = dir.join("load.lua");
    std::fs::write(&path, script)?;
    Ok(path)
}

fn parse_wrk(out: &[u8]) -> Result<Latency> {
    let text = String::from_utf8_lossy(out);
    let ms = |label: &str| -> Result<f64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .with_context(|| format!("wrk printed no {label} latency:\n{text}"))?;
        let value = line.split_whitespace().nth(1).unwrap_or("");
        let (num, unit) = value.split_at(
            value
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(value.len()),
        );
        let n: f64 = num.parse().with_context(|| format!("{label}: {value}"))?;
        Ok(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 6e4,
            _ => bail!("{label}: unit {unit}"),
        })
    };
    let requests_per_s = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    // "Non-2xx or 3xx responses: N" and "Socket errors: connect A, read B, write C, timeout D".
    let mut errors = 0;
    for l in text.lines() {
        if let Some(v) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(v) = l.trim().strip_prefix("Socket errors:") {
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(Latency {
        p50_ms: ms("50%")?,
        p90_ms: ms("90%")?,
        p99_ms: ms("99%")?,
        requests_per_s,
        errors,
    })
}

/// Samples a process's resident memory until stopped; answers the peak.
struct Peak {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Peak {
    fn start(pid: u32) -> Peak {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(crate::rss(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        Peak { done, thread }
    }

    fn stop(self) -> u64 {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
