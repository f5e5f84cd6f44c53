//! `labd-bench --alerts`: what alert rules cost and how soon they speak. On the corpus, three times each:
//! `labd --once` into a fresh data folder without rules, and into one whose log already holds three rules
//! (recorded by a daemon started once with them: a NaN rule on every metric, a threshold and a divergence rule
//! on `loss`); then `labd replay` of both logs. Then the latency from a NaN point written into a watched run
//! log to the webhook's receiving it (a receiver in this process), over ten NaN episodes.

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RULES: &str = r#"
[[alerts.rules]]
name = "nan"
kind = "nan"
metric = "*"

[[alerts.rules]]
name = "big-loss"
kind = "threshold"
metric = "loss"
above = 1e9

[[alerts.rules]]
name = "diverging"
kind = "divergence"
metric = "loss"
factor = 10
points = 5
"#;

pub fn run(labd: &Path, dir: &Path, corpus: &Path, points: u64) -> Result<()> {
    let config = dir.join("alerts.toml");
    std::fs::write(&config, RULES)?;
    let mut ingest = [Vec::new(), Vec::new()];
    let mut replay = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (i, rules) in [false, true].into_iter().enumerate() {
            let data = dir.join(if rules { "alerts-rules" } else { "alerts-none" });
            let _ = std::fs::remove_dir_all(&data);
            if rules {
                record_rules(labd, &data, &config, dir)?;
            }
            let t = Instant::now();
            let status = Command::new(labd)
                .arg("--once")
                .arg("--data-dir")
                .arg(&data)
                .arg("--watch")
                .arg(corpus)
                .stderr(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("labd --once: {status}");
            }
            ingest[i].push(t.elapsed().as_secs_f64());
            let out = Command::new(labd)
                .arg("replay")
                .arg("--data-dir")
                .arg(&data)
                .arg("--json")
                .stderr(Stdio::null())
                .output()?;
            let r: serde_json::Value = serde_json::from_slice(&out.stdout)
                .context("labd replay --json printed no JSON")?;
            replay[i].push(r["seconds"].as_f64().unwrap_or(f64::NAN));
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (i0, i1, r0, r1) = (
        med(&mut ingest[0]),
        med(&mut ingest[1]),
        med(&mut replay[0]),
        med(&mut replay[1]),
    );
    // Rule-points: the NaN rule sees every point, the other two every `loss` point.
    let rule_points = points + 2 * points / 4;
    println!(
        "alerts: ingest of {points} points (labd --once, medians of 3): {i0:.2}s without rules, {i1:.2}s with three rules ({rule_points} rule-points) = +{:.0}%",
        (i1 / i0 - 1.0) * 100.0
    );
    println!(
        "alerts: replay of every view: {r0:.2}s without rules, {r1:.2}s with them = +{:.0}% ({:.0} ns a rule-point)",
        (r1 / r0 - 1.0) * 100.0,
        (r1 - r0) * 1e9 / rule_points as f64
    );
    latency(labd, dir)
}

/// Starts a daemon with the rules once, so that its log holds them, and stops it.
fn record_rules(labd: &Path, data: &Path, config: &Path, dir: &Path) -> Result<()> {
    let empty = dir.join("alerts-empty");
    std::fs::create_dir_all(&empty)?;
    let port = free_port()?;
    let mut d = Command::new(labd)
        .arg("--data-dir")
        .arg(data)
        .arg("--watch")
        .arg(&empty)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .stderr(Stdio::null())
        .spawn()?;
    let result = wait_for_rules(port, 3);
    stop(&mut d);
    result
}

/// Waits until the daemon on `port` lists `n` rules.
fn wait_for_rules(port: u16, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(body) = get(port, "/api/v1/alerts/rules")
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && v["rules"].as_array().is_some_and(|r| r.len() == n)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("labd did not list its {n} alert rules within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(d: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = d.wait();
}

/// From a NaN point written to the time the webhook gets it, over ten episodes (a good point between them).
fn latency(labd: &Path, dir: &Path) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let hook = listener.local_addr()?;
    let (tx, rx) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 65536];
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = conn.read(&mut buf);
            let _ = tx.send(Instant::now());
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let data = dir.join("alerts-latency");
    let inbox = dir.join("alerts-inbox");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&inbox);
    std::fs::create_dir_all(&inbox)?;
    let config = dir.join("alerts-hook.toml");
    std::fs::write(
        &config,
        format!(
            "[[alerts.webhooks]]\nname = \"hook\"\nurl = \"http://{hook}/\"\n\n[[alerts.rules]]\nname = \"nan\"\nkind = \"nan\"\nmetric = \"loss\"\nmax_per_minute = 100\n"
        ),
    )?;
    let port = free_port()?;
    let mut d = Command::new(labd)
        .arg("--data-dir")
        .arg(&data)
        .arg("--watch")
        .arg(&inbox)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| -> Result<Vec<f64>> {
        wait_for_rules(port, 1)?;
        let log = inbox.join("run.jsonl");
        let mut f = std::fs::File::create(&log)?;
        writeln!(f, r#"{{"kind":"run","name":"latency"}}"#)?;
        let mut times = Vec::new();
        for i in 0..10 {
            writeln!(
                f,
                r#"{{"kind":"metrics","step":{},"values":{{"loss":0.5}}}}"#,
                2 * i
            )?;
            f.sync_all()?;
            std::thread::sleep(Duration::from_millis(300));
            let written = Instant::now();
            writeln!(
                f,
                r#"{{"kind":"metrics","step":{},"values":{{"loss":NaN}}}}"#,
                2 * i + 1
            )?;
            f.sync_all()?;
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .context("the webhook got nothing within 10 s")?;
            times.push(got.duration_since(written).as_secs_f64() * 1e3);
        }
        Ok(times)
    })();
    stop(&mut d);
    let mut times = result?;
    times.sort_by(f64::total_cmp);
    println!(
        "alerts: a NaN point written → the webhook called: median {:.0} ms, worst {:.0} ms (10 episodes)",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn get(port: u16, path: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}
