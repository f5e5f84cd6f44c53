//! `labd-formats-bench`: how fast labd ingests the formats other tools write (issue #5). Writes a corpus of
//! TensorBoard event files, one of Trainer `trainer_state.json` files and one of Lightning `metrics.csv` files, then times `labd --once` (parse, commit
//! durably, exit) on each, against the physical limit of reading the same bytes and, for TensorBoard, against
//! TensorBoard's own Rust loader (`tensorboard-data-server`, when `TB_DATA_SERVER` names its `server` binary or
//! it is on the PATH).
//!
//! `cargo build --release -p labd && target/release/labd-formats-bench [--runs N] [--steps N] [--keep]` (`--keep`
//! leaves the corpora in the temporary folder, to profile against)

use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() -> Result<()> {
    let (mut runs, mut steps, mut keep) = (500usize, 2000usize, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => runs = value()?.parse()?,
            "--steps" => steps = value()?.parse()?,
            "--keep" => keep = true,
            other => bail!("unknown flag {other}; flags: --runs --steps --keep"),
        }
    }
    let labd = std::env::current_exe()?.with_file_name("labd");
    if !labd.exists() {
        bail!(
            "{} not found: cargo build --release -p labd",
            labd.display()
        );
    }
    let dir = std::env::temp_dir().join("labd-formats-bench");
    let _ = std::fs::remove_dir_all(&dir);

    // TensorBoard: one folder per run, 4 scalars per step (train/loss, train/acc, val/loss, val/acc).
    let tb = dir.join("tb");
    let mut tb_bytes = 0u64;
    for r in 0..runs {
        let run = tb.join(format!("run_{r:04}"));
        std::fs::create_dir_all(&run)?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(
            run.join(format!("events.out.tfevents.1700000000.bench.{r}.0")),
        )?);
        for s in 0..steps {
            let x = s as f32 / steps as f32;
            let rec = labd_sources::tensorboard::scalar_record(
                s as i64,
                1_700_000_000.0 + s as f64,
                &[
                    ("train/loss", 2.0 - x),
                    ("train/acc", x),
                    ("val/loss", 2.1 - x),
                    ("val/acc", x * 0.9),
                ],
            );
            tb_bytes += rec.len() as u64;
            out.write_all(&rec)?;
        }
        out.flush()?;
    }
    let tb_points = (runs * steps * 4) as u64;

    // trainer_state.json: one output folder per run, a train entry (3 values) every step, eval every 10 steps.
    let hf = dir.join("hf");
    let mut hf_bytes = 0u64;
    let mut hf_points = 0u64;
    for r in 0..runs / 5 {
        let run = hf.join(format!("out_{r:04}"));
        std::fs::create_dir_all(&run)?;
        let mut history = Vec::with_capacity(steps);
        for s in 1..=steps {
            history.push(format!(
                "{{\"epoch\": {:.4}, \"grad_norm\": 1.25, \"learning_rate\": {:e}, \"loss\": {:.6}, \"step\": {s}}}",
                s as f64 / 100.0,
                5e-5 * (1.0 - s as f64 / steps as f64),
                2.0 - s as f64 / steps as f64
            ));
            hf_points += 3;
            if s % 10 == 0 {
                history.push(format!(
                    "{{\"epoch\": {:.4}, \"eval_accuracy\": {:.6}, \"eval_loss\": {:.6}, \"step\": {s}}}",
                    s as f64 / 100.0,
                    s as f64 / steps as f64,
                    2.1 - s as f64 / steps as f64
                ));
                hf_points += 2;
            }
        }
        let text = format!(
            "{{\n  \"global_step\": {steps},\n  \"log_history\": [\n    {}\n  ],\n  \"max_steps\": {steps}\n}}\n",
            history.join(",\n    ")
        );
        hf_bytes += text.len() as u64;
        std::fs::write(run.join("trainer_state.json"), text)?;
    }
    // Lightning's CSVLogger: one version folder per run, a train row every step, a val row every 10.
    let csv = dir.join("csv");
    let mut csv_bytes = 0u64;
    let mut csv_points = 0u64;
    for r in 0..runs / 5 {
        let run = csv.join(format!("lightning_logs/version_{r}"));
        std::fs::create_dir_all(&run)?;
        let mut text = String::from("epoch,step,train_acc,train_loss,val_acc,val_loss\n");
        for s in 0..steps {
            let x = s as f64 / steps as f64;
            text.push_str(&format!("{},{s},{:.6},{:.6},,\n", s / 100, x, 2.0 - x));
            csv_points += 2;
            if s % 10 == 9 {
                text.push_str(&format!(
                    "{},{s},,,{:.6},{:.6}\n",
                    s / 100,
                    x * 0.9,
                    2.1 - x
                ));
                csv_points += 2;
            }
        }
        csv_bytes += text.len() as u64;
        std::fs::write(run.join("metrics.csv"), text)?;
        std::fs::write(run.join("hparams.yaml"), format!("lr: 0.001\nseed: {r}\n"))?;
    }
    sync();

    println!(
        "labd-formats-bench: {runs} TensorBoard runs x {steps} steps x 4 scalars; {} Trainer runs and as many Lightning runs x {steps} steps",
        runs / 5
    );
    for (name, corpus, bytes, points) in [
        ("TensorBoard", &tb, tb_bytes, tb_points),
        ("trainer_state.json", &hf, hf_bytes, hf_points),
        ("Lightning metrics.csv", &csv, csv_bytes, csv_points),
    ] {
        let read_secs = read_all(corpus)?;
        let (secs, got) = ingest(&labd, &dir.join(format!("data-{}", name.len())), corpus)?;
        if got != points {
            bail!("{name}: labd counted {got} points, the corpus has {points}");
        }
        println!(
            "{name}: {:.0} MB, {points} points; reading the bytes {:.0} MB/s; labd --once {secs:.2}s = {:.0} MB/s, {:.2} M points/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / read_secs,
            bytes as f64 / 1e6 / secs,
            points as f64 / 1e6 / secs
        );
    }
    match data_server() {
        Some(server) => {
            let secs = rustboard(&server, &tb)?;
            println!(
                "TensorBoard's own loader (tensorboard-data-server, one load cycle, all scalars kept): {secs:.2}s = {:.0} MB/s, {:.2} M points/s",
                tb_bytes as f64 / 1e6 / secs,
                tb_points as f64 / 1e6 / secs
            );
        }
        None => println!(
            "tensorboard-data-server not found (set TB_DATA_SERVER to its `server` binary, from `pip install tensorboard`)"
        ),
    }
    if keep {
        eprintln!("corpora kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn sync() {
    let _ = Command::new("sync").status();
}

/// Seconds to read every file under `dir` (warm cache: the physical limit for a parser).
fn read_all(dir: &Path) -> Result<f64> {
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut f = std::fs::File::open(&p)?;
                while f.read(&mut buf)? > 0 {}
            }
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `labd --once` on `corpus`: seconds, and the points it reports.
fn ingest(labd: &Path, data: &PathBuf, corpus: &Path) -> Result<(f64, u64)> {
    let t = Instant::now();
    let out = Command::new(labd)
        .args(["--once", "--data-dir"])
        .arg(data)
        .arg("--watch")
        .arg(corpus)
        .env("RUST_LOG", "info")
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "labd --once failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = String::from_utf8_lossy(&out.stderr);
    let points = log
        .lines()
        .find_map(|l| {
            let l = l.split("ingested ").nth(1)?;
            l.split(", ")
                .find_map(|part| part.strip_suffix(" points")?.parse().ok())
        })
        .unwrap_or(0);
    Ok((secs, points))
}

fn data_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TB_DATA_SERVER") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("sh")
        .args(["-c", "command -v tensorboard-data-server || python3 -c 'import tensorboard_data_server as t; print(t.server_binary())'"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!path.is_empty() && Path::new(&path).exists()).then(|| PathBuf::from(path))
}

/// One load cycle of TensorBoard's Rust data server, from its own log line.
fn rustboard(server: &Path, logdir: &Path) -> Result<f64> {
    let out = Command::new(server)
        .arg("--logdir")
        .arg(logdir)
        .args([
            "--reload",
            "once",
            "--port",
            "0",
            "-v",
            "--samples-per-plugin",
            "scalars=all",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut child = out;
    let mut err = child.stderr.take().context("server stderr")?;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let secs = loop {
        let n = err.read(&mut buf)?;
        if n == 0 {
            bail!("tensorboard-data-server ended without finishing a load cycle: {text}");
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(line) = text.lines().find(|l| l.contains("Finished load cycle")) {
            let d = line.rsplit('(').next().unwrap_or("").trim_end_matches(')');
            break parse_duration(d).with_context(|| format!("cannot read {line:?}"))?;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(secs)
}

/// `1.234s`, `56.7ms`, `89µs` → seconds.
fn parse_duration(text: &str) -> Option<f64> {
    let t = text.trim();
    for (suffix, scale) in [
        ("ms", 1e-3),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ns", 1e-9),
        ("s", 1.0),
    ] {
        if let Some(n) = t.strip_suffix(suffix) {
            return n.trim().parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}
