//! `labd-sweep-bench`: the rerunnable benchmark of the sweep scheduler (issue #4). Runs N trivial trials
//! (`true`), P at a time, through a real `labd`, and the same N processes started directly (`/bin/sh -c true`,
//! P at a time); the difference per trial is what labd adds: planning, the trial's folder,
//! config and run-log header, the exit-code wrapper, durable `started`/`exited` events, ingesting the run log.
//!
//! `cargo build --release -p labd -p labctl && target/release/labd-sweep-bench [--trials N] [--parallel P]`

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let (mut trials, mut parallel) = (1000usize, 2usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--trials" => trials = value()?.parse()?,
            "--parallel" => parallel = value()?.parse()?,
            other => bail!("unknown flag {other}; flags: --trials --parallel"),
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

    // The cost of starting the processes themselves, P at a time.
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < trials {
                    let _ = Command::new("/bin/sh")
                        .args(["-c", "true"])
                        .stdout(Stdio::null())
                        .status();
                }
            });
        }
    });
    let direct = t.elapsed().as_secs_f64();

    let dir = std::env::temp_dir().join("labd-sweep-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("http://127.0.0.1:{port}");
    let mut daemon = Command::new(&labd)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--watch")
        .arg(dir.join("inbox"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .spawn()?;
    let ctl = |args: &[String]| -> Result<serde_json::Value> {
        let out = Command::new(&labctl)
            .args(args)
            .arg("--json")
            .env("LABD_ADDR", &addr)
            .output()?;
        if !out.status.success() {
            bail!("labctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl(&["sweep".into(), "ls".into()]).is_err() {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            bail!("labd did not answer within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut args: Vec<String> = [
        "sweep",
        "run",
        "--id",
        "bench",
        "--command",
        "true",
        "--parallel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(parallel.to_string());
    args.push("--param".into());
    args.push("i".into());
    args.extend((0..trials).map(|i| i.to_string()));
    let t = Instant::now();
    ctl(&args)?;
    // Polled through `sweep ls` (progress only), which costs the daemon little.
    let status = loop {
        let list = ctl(&["sweep".into(), "ls".into()])?;
        let s = list
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == "bench"))
            .cloned()
            .unwrap_or_default();
        if s["state"] != "running" {
            break s;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            let _ = daemon.kill();
            bail!("the sweep did not finish within 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let completed = status["progress"]["completed"].as_u64().unwrap_or(0);
    if completed != trials as u64 {
        bail!(
            "{completed} of {trials} trials completed: {}",
            status["reason"]
        );
    }
    // From the log's own times: the sweep's submission to its `finished` event.
    let created = status["created"].as_i64().unwrap_or(0);
    let updated = status["updated"].as_i64().unwrap_or(0);
    let through_labd = (updated - created) as f64 / 1e6;
    let per_trial = |secs: f64| secs / trials as f64 * 1e3;
    println!("labd-sweep-bench: {trials} trivial trials, {parallel} at a time");
    println!(
        "started directly (/bin/sh -c true): {direct:.2}s = {:.2} ms per trial",
        per_trial(direct)
    );
    println!(
        "through labd (submitted to finished, from the log's times): {through_labd:.2}s = {:.2} ms per trial, {:.0} trials/s",
        per_trial(through_labd),
        trials as f64 / through_labd
    );
    println!(
        "labd's overhead per trial: {:.2} ms (each of the {parallel} slots is held {:.2} ms longer per trial)",
        per_trial(through_labd - direct),
        per_trial(through_labd - direct) * parallel as f64
    );
    let _ = std::fs::remove_dir_all(Path::new(&dir));
    Ok(())
}
