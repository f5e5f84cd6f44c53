//! `labd-bench`: the rerunnable benchmark of issue #2. Writes a corpus of run logs (default 1,000 runs ×
//! 4 metrics × 1,000 steps = 4 M points), then measures with the real `labd` binary:
//! - ingest: `labd --once` from start to exit (parsed, committed durably, views checkpointed);
//! - replay: `labd replay` of that log (the time labd reports for rebuilding the views, and wall time);
//! - bytes on disk per point, and each process's peak RSS;
//! - 100 full curves over HTTP from a running daemon;
//! - idle CPU of that daemon with nothing to do.
//!
//! `cargo run --release -p labd --bin labd-bench -- [--runs N] [--steps N] [--metrics N] [--dir D] [--full-digits]`
//!
//! The corpus writes values with 6 decimals and times to the millisecond; `--full-digits` writes every value and
//! time as Python's `json.dumps` writes a computed double (the shortest text that reads back to it, usually 16
//! or 17 significant digits), which is what real training scripts log.
//!
//! With `--simulate`, only the views of `--runs` runs are built in this process from generated events (no files,
//! no log): `--simulate --runs 25000` is the 100 M-point memory figure.
//!
//! With `--alerts`, what alert rules cost in ingest and replay, and how soon a NaN point reaches a webhook
//! (see `alerts.rs`).
//!
//! With `--load [--clients N] [--window S]` it measures instead the latency of N clients querying (wrk) while
//! a backlog is ingested, and the ingest rate with and without them (see `load.rs`).

mod alerts;
mod load;
mod simulate;
mod targets;
mod ureq_agent;

use anyhow::{Context, Result, bail};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    steps: usize,
    metrics: usize,
    dir: PathBuf,
    load: bool,
    clients: u32,
    window: u64,
    full_digits: bool,
    targets: bool,
    small: bool,
    big: bool,
    simulate: bool,
    alerts: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        runs: 1000,
        steps: 1000,
        metrics: 4,
        dir: std::env::temp_dir().join("labd-bench"),
        load: false,
        clients: 100,
        window: 10,
        full_digits: false,
        targets: false,
        small: false,
        big: false,
        simulate: false,
        alerts: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => a.runs = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--metrics" => a.metrics = value()?.parse()?,
            "--dir" => a.dir = PathBuf::from(value()?),
            "--load" => a.load = true,
            "--clients" => a.clients = value()?.parse()?,
            "--window" => a.window = value()?.parse()?,
            "--full-digits" => a.full_digits = true,
            "--targets" => a.targets = true,
            "--small" => a.small = true,
            "--big" => a.big = true,
            "--simulate" => a.simulate = true,
            "--alerts" => a.alerts = true,
            other => bail!(
                "unknown flag {other}; flags: --runs --steps --metrics --dir --load --clients --window --full-digits --targets [--small] [--big] --simulate --alerts"
            ),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let labd = std::env::current_exe()?.with_file_name("labd");
    if !labd.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p labd)",
            labd.display()
        );
    }
    if a.targets {
        return targets::run(&labd, &a);
    }
    if a.simulate {
        // `--runs` runs × `--metrics` × `--steps` (25,000 runs for the 100 M-point figure), views only.
        let s = simulate::run(a.runs, a.steps, a.metrics)?;
        println!(
            "simulated views of {} runs, {} points, in {:.0} s: curve store {:.0} MB in memory = {:.2} bytes/point, {:.0} MB of chunks on disk = {:.2} bytes/point; this process's RSS rose {:.0} MB = {:.2} bytes/point, {:.1} KB a run",
            s.runs,
            s.points,
            s.secs,
            s.curve_bytes as f64 / 1e6,
            s.curve_bytes as f64 / s.points.max(1) as f64,
            s.chunk_file_bytes as f64 / 1e6,
            s.chunk_file_bytes as f64 / s.points.max(1) as f64,
            s.rss_growth as f64 / 1e6,
            s.rss_growth as f64 / s.points.max(1) as f64,
            s.rss_growth as f64 / 1e3 / s.runs.max(1) as f64
        );
        return Ok(());
    }
    if a.alerts {
        let corpus = fresh_corpus(&a)?;
        let points = (a.runs * a.steps * a.metrics) as u64;
        return alerts::run(&labd, &a.dir, &corpus, points);
    }
    if a.load {
        let corpus = fresh_corpus(&a)?;
        let opts = load::Options {
            connections: a.clients,
            window_s: a.window,
        };
        load::run(&labd, &a.dir, &corpus, (a.steps * a.metrics) as u64, &opts)?;
        return Ok(());
    }
    let f = measure(&labd, &a)?;
    print_figures(&a, &f);
    Ok(())
}

/// Writes the corpus `a` describes into a fresh `<dir>/corpus`.
fn fresh_corpus(a: &Args) -> Result<PathBuf> {
    let corpus = a.dir.join("corpus");
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&corpus)?;
    let t = Instant::now();
    let (points, bytes) = write_corpus(&corpus, a)?;
    eprintln!(
        "corpus: {} runs x {} metrics x {} steps = {points} points, {:.0} MiB, written in {:.1}s",
        a.runs,
        a.metrics,
        a.steps,
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    sync();
    Ok(corpus)
}

/// Every figure of one corpus.
pub struct Figures {
    pub points: u64,
    pub ingest_wall: f64,
    pub ingest_rss: u64,
    pub replay_secs: f64,
    pub replay_wall: f64,
    pub replay_rss: u64,
    pub db_bytes: u64,
    pub stored: u64,
    pub live: Live,
}

/// Writes the corpus, then measures ingest (`--once`), replay, the disk, and a live daemon.
fn measure(labd: &Path, a: &Args) -> Result<Figures> {
    let corpus = fresh_corpus(a)?;
    let points = (a.runs * a.steps * a.metrics) as u64;
    let data = a.dir.join("data");
    // Ingest: drop to durable and queryable.
    let mut cmd = Command::new(labd);
    cmd.args(["--once", "--data-dir"])
        .arg(&data)
        .arg("--watch")
        .arg(&corpus)
        .env("RUST_LOG", "warn");
    let (ingest_wall, ingest_rss) = run_measured(cmd)?;
    let db = data.join("labd.redb");
    let db_bytes = std::fs::metadata(&db)?.len();
    let stored = labd_log::EventLog::open(&db)?.stored_event_bytes()?;

    // Replay of the whole log.
    let mut cmd = Command::new(labd);
    cmd.args(["replay", "--json", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn");
    let out_path = a.dir.join("replay.json");
    cmd.stdout(std::fs::File::create(&out_path)?);
    let (replay_wall, replay_rss) = run_measured(cmd)?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path)?)?;
    let replayed = report["points"].as_u64().unwrap_or(0);
    let replay_secs = report["seconds"].as_f64().unwrap_or(f64::NAN);
    if replayed != points {
        bail!(
            "the log holds {replayed} points, the corpus {points}: ingestion lost or duplicated points"
        );
    }

    // A running daemon: drop the corpus into its watched folder, then 100 full curves, then idle CPU.
    let live = serve_phase(labd, &a.dir, &corpus, points)?;
    Ok(Figures {
        points,
        ingest_wall,
        ingest_rss,
        replay_secs,
        replay_wall,
        replay_rss,
        db_bytes,
        stored,
        live,
    })
}

fn print_figures(a: &Args, f: &Figures) {
    let Figures {
        points,
        ingest_wall,
        ingest_rss,
        replay_secs,
        replay_wall,
        replay_rss,
        db_bytes,
        stored,
        ref live,
    } = *f;
    println!(
        "labd-bench: {} runs x {} metrics x {} steps = {points} points",
        a.runs, a.metrics, a.steps
    );
    println!(
        "ingest (labd --once, start to durable exit): {ingest_wall:.2}s = {:.0} points/s; peak RSS {:.0} MB",
        points as f64 / ingest_wall,
        ingest_rss as f64 / 1e6
    );
    println!(
        "replay (rebuild all views): {replay_secs:.2}s = {:.0} points/s ({replay_wall:.2}s wall with start-up = {:.0} points/s); peak RSS {:.0} MB",
        points as f64 / replay_secs,
        points as f64 / replay_wall,
        replay_rss as f64 / 1e6
    );
    println!(
        "disk: database file {db_bytes} bytes = {:.1} bytes/point (event blocks {stored} bytes = {:.1} bytes/point)",
        db_bytes as f64 / points as f64,
        stored as f64 / points as f64
    );
    println!(
        "ingest (live daemon, corpus dropped into its inbox until every point is queryable): {:.2}s = {:.0} points/s; daemon peak RSS {:.0} MB, {:.0} MB resident when idle",
        live.drop_secs,
        points as f64 / live.drop_secs,
        live.peak_rss as f64 / 1e6,
        live.idle_rss as f64 / 1e6
    );
    println!(
        "100 full curves ({} points each) over HTTP, one kept-alive connection (median of 5): {:.1} ms as 100 metric pages, {:.1} ms as one /analytics/curves?points=0",
        a.steps,
        live.curves_secs * 1e3,
        live.curves_one_request * 1e3
    );
    println!("idle daemon CPU over 10 s: {:.2}%", live.idle_cpu * 100.0);
    println!(
        "analytics: summary by varying keys {:.1} ms (mean_last:10 over curves {:.1} ms); curves of 100 runs at 500 points {:.1} ms (medians of 21)",
        live.summary_ms, live.summary_curves_ms, live.curve_ms
    );
    println!(
        "export of every point as CSV (streamed): {:.2}s = {:.0} rows/s, {:.0} MB; daemon RSS rose {:.0} MB meanwhile",
        live.export_secs,
        points as f64 / live.export_secs,
        live.export_bytes as f64 / 1e6,
        live.export_rise as f64 / 1e6
    );
    println!(
        "cold start from the checkpoint: first answer after {:.2}s; curve store warm after {:.2}s{}",
        live.cold_secs,
        live.warm_secs,
        if live.curves_503 {
            " (curves answered 503 meanwhile)"
        } else {
            ""
        }
    );
}

/// The corpus's metric names: `loss`, `acc`, `lr`, `grad_norm`, then `m4`, `m5`, ...
fn metric_names(metrics: usize) -> Vec<String> {
    ["loss", "acc", "lr", "grad_norm"]
        .iter()
        .map(|s| s.to_string())
        .chain((4..metrics).map(|i| format!("m{i}")))
        .take(metrics)
        .collect()
}

/// The corpus's noise: a fixed xorshift sequence of numbers in [0, 1).
fn noise() -> impl FnMut() -> f64 {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `runs` run logs; answers the points and bytes written.
fn write_corpus(dir: &Path, a: &Args) -> Result<(u64, u64)> {
    let (runs, steps, metrics) = (a.runs, a.steps, a.metrics);
    let names = metric_names(metrics);
    let mut points = 0u64;
    let mut bytes = 0u64;
    let mut rnd = noise();
    for r in 0..runs {
        let path = dir.join(format!("group{:02}/run{r:05}.jsonl", r % 50));
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        let mut f = BufWriter::new(std::fs::File::create(&path)?);
        let t0 = 1_760_000_000.0 + r as f64 * 3600.0;
        writeln!(
            f,
            r#"{{"kind":"run","name":"bench-{r}","time":{t0},"tags":["bench"],"config":{{"optim":{{"name":"adam","lr":{}}},"model":{{"layers":[256,256],"dropout":0.1}},"batch_size":64,"seed":{}}}}}"#,
            [1e-2, 1e-3, 1e-4][r % 3],
            r % 5
        )?;
        for step in 0..steps {
            let mut line = if a.full_digits {
                // A fractional epoch and a `time.time()` as Python writes them.
                format!(
                    r#"{{"kind":"metrics","split":"train","step":{step},"epoch":{},"time":{},"values":{{"#,
                    serde_json::to_string(&(step as f64 / 100.0))?,
                    serde_json::to_string(&(t0 + step as f64 * 0.5 + rnd() * 0.01))?
                )
            } else {
                format!(
                    r#"{{"kind":"metrics","split":"train","step":{step},"epoch":{},"time":{:.3},"values":{{"#,
                    step / 100,
                    t0 + step as f64 * 0.5
                )
            };
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let v = 1.0 / (1.0 + step as f64 * 0.01) + rnd() * 0.05;
                if a.full_digits {
                    line.push_str(&format!("\"{name}\":{}", serde_json::to_string(&v)?));
                } else {
                    line.push_str(&format!("\"{name}\":{v:.6}"));
                }
            }
            line.push_str("}}\n");
            f.write_all(line.as_bytes())?;
            bytes += line.len() as u64;
            points += names.len() as u64;
        }
        writeln!(f, r#"{{"kind":"status","status":"completed"}}"#)?;
    }
    Ok((points, bytes))
}

/// Runs a command to its end; answers its wall time and peak RSS (bytes).
fn run_measured(mut cmd: Command) -> Result<(f64, u64)> {
    let start = Instant::now();
    let child = cmd.spawn().context("starting labd")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage point to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (status {status})");
    }
    Ok((wall, usage.ru_maxrss as u64 * 1024))
}

pub struct Live {
    /// Warm `summary` grouped by varying keys (registry reduction), median ms.
    summary_ms: f64,
    /// The same with a reduction over whole curves (`mean_last:10`), median ms.
    summary_curves_ms: f64,
    /// Curves of one metric for 100 runs downsampled to 500 points, median ms.
    curve_ms: f64,
    /// Cold start from the checkpoint to the first summary answer.
    cold_secs: f64,
    /// Cold start until the curve store is warm.
    warm_secs: f64,
    /// Streaming CSV export of every point: seconds, bytes, and the daemon's RSS rise meanwhile.
    export_secs: f64,
    export_bytes: u64,
    export_rise: u64,
    drop_secs: f64,
    /// Peak RSS of the live daemon (VmHWM), bytes.
    peak_rss: u64,
    /// Resident memory after ten idle seconds with every point ingested, bytes.
    idle_rss: u64,
    /// Whether a curve request answered 503 (store warming up) during the cold start.
    curves_503: bool,
    curves_secs: f64,
    /// The same 100 curves in one `/analytics/curves?points=0` request.
    curves_one_request: f64,
    idle_cpu: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Points the daemon's views hold, from `/health` (cheap: the waiting loops poll it every 20 ms, and a poll
/// that listed every run would itself take a share of the two cores being measured).
fn total_points(agent: &ureq_agent::Agent, base: &str) -> Result<u64> {
    let health: serde_json::Value = serde_json::from_str(&agent.get(&format!("{base}/health"))?)?;
    health["points"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("/health has no points: {health}"))
}

/// The ids of the first `n` runs the daemon lists.
fn run_ids(agent: &ureq_agent::Agent, base: &str, n: usize) -> Result<Vec<String>> {
    let rows: serde_json::Value =
        serde_json::from_str(&agent.get(&format!("{base}/experiments"))?)?;
    Ok(rows
        .as_array()
        .map(|a| {
            a.iter()
                .take(n)
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// Starts a daemon on a fresh data folder watching an empty inbox, moves the corpus into the inbox, and times
/// until every point is queryable; then reads 100 curves and measures idle CPU.
fn serve_phase(labd: &Path, dir: &Path, corpus: &Path, points: u64) -> Result<Live> {
    let data = dir.join("live-data");
    let inbox = dir.join("live-inbox");
    std::fs::create_dir_all(&inbox)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = spawn_daemon(labd, &data, &inbox, port)?;
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let agent: ureq_agent::Agent = ureq_agent::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("{base}/health")).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("labd did not answer within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    std::fs::rename(corpus, inbox.join("corpus"))?;
    while total_points(&agent, &base)? < points {
        if t.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!("the dropped corpus was not ingested within 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let drop_secs = t.elapsed().as_secs_f64();
    let ids = run_ids(&agent, &base, 100)?;
    // 100 full curves over one kept-alive connection, as a browser fetches them: the median of 5 rounds, each
    // answer read whole (its bytes; parsing them is the client's business and is checked after the clock).
    let mut conn = ureq_agent::Conn::open(&base)?;
    let pages: Vec<String> = ids
        .iter()
        .map(|id| format!("/api/v1/experiments/{id}/metrics/train/loss"))
        .collect();
    let mut rounds = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        bodies.clear();
        for p in &pages {
            let (status, body) = conn.get(p)?;
            if status != 200 {
                bail!("{p}: HTTP {status}");
            }
            bodies.push(body);
        }
        rounds.push(t.elapsed().as_secs_f64());
    }
    let mut got = 0usize;
    for b in &bodies {
        let page: serde_json::Value = serde_json::from_slice(b)?;
        got += page["points"].as_array().map_or(0, Vec::len);
    }
    eprintln!("fetched {} curves, {got} points", ids.len());
    let curves = median(&mut rounds);
    let all_curves = format!(
        "/api/v1/analytics/curves?metric=train/loss&points=0&ids={}",
        ids.join(",")
    );
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (status, body) = conn.get(&all_curves)?;
        rounds.push(t.elapsed().as_secs_f64());
        if status != 200 {
            bail!(
                "{all_curves}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let curves_one_request = median(&mut rounds);

    // Analytics (issue #3): warm queries, each the median of 21.
    let summary_url = format!("{base}/analytics/summary?metric=train/loss&reduce=last&by=varying");
    let summary_curves_url =
        format!("{base}/analytics/summary?metric=train/loss&reduce=mean_last:10&by=varying");
    let curve_url = format!(
        "{base}/analytics/curves?metric=train/loss&points=500&ids={}",
        ids.join(",")
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    while agent.get(&curve_url).is_err() {
        if Instant::now() > deadline {
            bail!("the curve store was not ready within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let median_ms = |url: &str| -> Result<f64> {
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            agent.get(url)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    };
    let summary_ms = median_ms(&summary_url)?;
    let summary_curves_ms = median_ms(&summary_curves_url)?;
    let curve_ms = median_ms(&curve_url)?;

    // The streaming export of every point as CSV: its rate, and how far the daemon's RSS rises meanwhile.
    let pid = child.id();
    let before = rss(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let t = Instant::now();
    let export_bytes = agent.drain(&format!("{base}/analytics/points?format=csv"))?;
    let export_secs = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let export_peak = sampler.join().unwrap_or(0);
    let export_rise = export_peak.saturating_sub(before);
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = cpu_ticks(child.id())?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu1 = cpu_ticks(child.id())?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let idle = (cpu1 - cpu0) as f64 / hz / t.elapsed().as_secs_f64();
    let idle_rss = rss(child.id());
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    stop(child)?;

    // Cold start from the saved checkpoint: time to the first answer, and until the curve store is warm.
    let t = Instant::now();
    let child = spawn_daemon(labd, &data, &inbox, port)?;
    while agent.get(&summary_url).is_err() {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("no answer within 120 s of a cold start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cold_secs = t.elapsed().as_secs_f64();
    let mut curves_503 = false;
    loop {
        match agent.get(&curve_url) {
            Ok(_) => break,
            Err(e) => curves_503 |= e.to_string().contains(" 503"),
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the curve store was not warm within 300 s of a cold start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let warm_secs = t.elapsed().as_secs_f64();
    stop(child)?;
    Ok(Live {
        drop_secs,
        peak_rss,
        idle_rss,
        curves_503,
        curves_secs: curves,
        curves_one_request,
        idle_cpu: idle,
        summary_ms,
        summary_curves_ms,
        curve_ms,
        cold_secs,
        warm_secs,
        export_secs,
        export_bytes,
        export_rise,
    })
}

/// A process's resident memory now, bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Starts `labd` on `data`, watching `inbox`, on a loopback port.
fn spawn_daemon(labd: &Path, data: &Path, inbox: &Path, port: u16) -> Result<std::process::Child> {
    Ok(Command::new(labd)
        .arg("--data-dir")
        .arg(data)
        .arg("--watch")
        .arg(inbox)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .spawn()?)
}

/// SIGTERM, then wait for a clean exit.
fn stop(mut child: std::process::Child) -> Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait()?;
    if !status.success() {
        bail!("labd exited with {status} on SIGTERM");
    }
    Ok(())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    Ok(fields
        .get(11)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0))
}

fn sync() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}
