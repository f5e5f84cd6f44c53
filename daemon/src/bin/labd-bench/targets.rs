//! `labd-bench --targets`: every figure of issue #20 measured and printed beside its target.
//!
//! - the 4 M-point corpus (1,000 runs × 4 metrics × 1,000 steps): ingest (`--once` and live), replay, bytes on
//!   disk per point, 100 full curves over HTTP (as metric pages and as one `/analytics/curves?points=0`);
//!   three runs, each throughput and read figure the median of the three (all three shown);
//! - TensorBoard event files, 4 M points (500 runs × 2,000 steps × 4 scalars, `labd-formats-bench`), three
//!   runs, the median;
//! - 100 clients (wrk) querying while the 4 M points are ingested: p99 and the daemon's peak RSS;
//! - the 8 M-point corpus (2,000 runs): the live daemon's memory when idle, and a restart to a warm curve store;
//! - with `--big`, the 10 M-point corpus (2,500 runs): the 4 M figures again, each to be within 2×; and 100 M
//!   points simulated (25,000 runs' views built in this process from generated events, no disk): the memory
//!   they take and its growth per point.
//!
//! `--small` runs every part on corpora a hundred times smaller, so CI keeps the command working in a minute;
//! its figures are not comparable to the targets.

use crate::{Args, Figures, load, measure};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

struct Row {
    measure: String,
    now: String,
    target: &'static str,
    /// `None`: not measured here (why is in `now`).
    met: Option<bool>,
}

fn row(measure: impl Into<String>, now: String, target: &'static str, met: Option<bool>) -> Row {
    Row {
        measure: measure.into(),
        now,
        target,
        met,
    }
}

/// One figure measured in several runs: their median, and every run's value to show beside it.
struct Runs {
    median: f64,
    all: Vec<f64>,
}

impl Runs {
    fn of(all: Vec<f64>) -> Runs {
        let median = crate::median(&mut all.clone());
        Runs { median, all }
    }

    fn shown(&self, unit: &str) -> String {
        let median = self.median;
        if self.all.len() < 2 {
            return format!("{median:.2} {unit}");
        }
        let listed: Vec<String> = self.all.iter().map(|v| format!("{v:.2}")).collect();
        format!("{median:.2} {unit} (median of {})", listed.join(", "))
    }
}

/// A corpus of `runs` runs of the standard shape (4 metrics), `steps` steps each.
fn corpus(a: &Args, runs: usize, steps: usize, name: &str) -> Args {
    Args {
        runs,
        steps,
        metrics: 4,
        dir: a.dir.join(name),
        load: false,
        clients: a.clients,
        window: a.window,
        full_digits: false,
        targets: false,
        small: a.small,
        big: false,
        simulate: false,
        alerts: false,
    }
}

pub fn run(labd: &Path, a: &Args) -> Result<()> {
    // The small form: 100× fewer runs and a quarter of the steps.
    let scale = |runs: usize, steps: usize| {
        if a.small {
            ((runs / 100).max(3), steps / 4)
        } else {
            (runs, steps)
        }
    };
    let mut rows = Vec::new();
    let mpps = |points: u64, secs: f64| points as f64 / secs / 1e6;
    let pace_before = pace();

    // The throughput and read figures are medians of three runs (this shared machine varies by a quarter and
    // more from one minute to the next); each run is listed beside its median.
    let repeat = if a.small { 1 } else { 3 };
    let (runs, steps) = scale(1000, 1000);
    let mut fours = Vec::with_capacity(repeat);
    for i in 0..repeat {
        eprintln!("== the 4 M-point corpus ({} of {repeat})", i + 1);
        fours.push(measure(labd, &corpus(a, runs, steps, "4m"))?);
    }
    let median_of = |value: &dyn Fn(&Figures) -> f64| Runs::of(fours.iter().map(value).collect());
    let four = &fours[fours.len() - 1];
    let pts = four.points;
    let ingest = median_of(&|f| mpps(pts, f.ingest_wall));
    let live = median_of(&|f| mpps(pts, f.live.drop_secs));
    rows.push(row(
        "ingest, --once, 4 M points, durable",
        ingest.shown("M points/s"),
        "≥ 3 M points/s",
        Some(ingest.median >= 3.0),
    ));
    rows.push(row(
        "ingest, live (dropped into a running daemon)",
        live.shown("M points/s"),
        "≥ 3 M points/s",
        Some(live.median >= 3.0),
    ));

    eprintln!("== TensorBoard event files (labd-formats-bench)");
    let (tb_runs, tb_steps) = scale(500, 2000);
    let tb_runs_of = || -> Result<Vec<f64>> {
        (0..repeat)
            .map(|_| tensorboard(labd, tb_runs, tb_steps))
            .collect()
    };
    match tb_runs_of() {
        Ok(all) => {
            let tb = Runs::of(all);
            rows.push(row(
                "TensorBoard event files, 4 M points, durable",
                tb.shown("M points/s"),
                "≥ 4 M points/s",
                Some(tb.median >= 4.0),
            ))
        }
        Err(e) => rows.push(row(
            "TensorBoard event files, 4 M points, durable",
            format!("not measured: {e:#}"),
            "≥ 4 M points/s",
            None,
        )),
    }

    let replay = median_of(&|f| mpps(pts, f.replay_secs));
    rows.push(row(
        "replay of every view",
        replay.shown("M points/s"),
        "≥ 6 M points/s",
        Some(replay.median >= 6.0),
    ));
    let bpp = four.db_bytes as f64 / pts as f64;
    rows.push(row(
        "bytes on disk per point (database as it is)",
        format!(
            "{bpp:.1} (event blocks {:.1})",
            four.stored as f64 / pts as f64
        ),
        "≤ 8",
        Some(bpp <= 8.0),
    ));
    let pages = median_of(&|f| f.live.curves_secs * 1e3);
    let one = median_of(&|f| f.live.curves_one_request * 1e3);
    rows.push(row(
        "100 full curves of 1,000 points over HTTP: metric pages",
        pages.shown("ms"),
        "< 50 ms",
        Some(pages.median < 50.0),
    ));
    rows.push(row(
        "  the same as one /analytics/curves?points=0",
        one.shown("ms"),
        "< 50 ms",
        Some(one.median < 50.0),
    ));

    eprintln!("== 100 clients querying while the corpus is ingested (wrk)");
    let load_corpus = corpus(a, runs, steps, "load");
    let clients = "100 clients querying while 4 M points are ingested";
    if Command::new("wrk").arg("--version").output().is_err() {
        rows.push(row(
            clients,
            "not measured: wrk is not installed".into(),
            "p99 < 50 ms, peak RSS < 300 MB",
            None,
        ));
    } else {
        let dir = crate::fresh_corpus(&load_corpus)?;
        let opts = load::Options {
            connections: 100,
            window_s: if a.small { 3 } else { a.window },
        };
        let l = load::run(labd, &load_corpus.dir, &dir, (steps * 4) as u64, &opts)?;
        let mb = l.peak_rss as f64 / 1e6;
        rows.push(row(
            clients,
            format!(
                "p99 {:.0} ms, peak RSS {mb:.0} MB{}",
                l.p99_under_ingest_ms,
                if l.errors > 0 {
                    format!(", {} errors", l.errors)
                } else {
                    String::new()
                }
            ),
            "p99 < 50 ms, peak RSS < 300 MB",
            Some(l.p99_under_ingest_ms < 50.0 && mb < 300.0 && l.errors == 0),
        ));
    }

    eprintln!("== the 8 M-point corpus");
    let (runs8, steps8) = scale(2000, 1000);
    let eight = measure(labd, &corpus(a, runs8, steps8, "8m"))?;
    let idle = eight.live.idle_rss as f64 / 1e6;
    rows.push(row(
        "live daemon at 8 M points, idle",
        format!("{idle:.0} MB resident"),
        "< 250 MB",
        Some(idle < 250.0),
    ));
    let warm = eight.live.warm_secs;
    rows.push(row(
        "start to a warm curve store at 8 M points",
        format!(
            "{warm:.2} s{}",
            if eight.live.curves_503 {
                " (503 meanwhile)"
            } else {
                ", no 503"
            }
        ),
        "< 1 s, no 503 for curves",
        Some(warm < 1.0 && !eight.live.curves_503),
    ));

    if a.big {
        eprintln!("== the 10 M-point corpus");
        let (runs10, steps10) = scale(2500, 1000);
        let ten = measure(labd, &corpus(a, runs10, steps10, "10m"))?;
        rows.extend(within_twice(four, &ten));
    } else {
        rows.push(row(
            "10 M-point corpus (2,500 runs)",
            "not run (add --big)".into(),
            "each figure within 2× of 4 M",
            None,
        ));
    }
    if a.big {
        eprintln!("== 100 M points, simulated (views built in this process from generated events)");
        let (runs100, steps100) = scale(25_000, 1000);
        let sim = crate::simulate::run(runs100, steps100, 4)?;
        let per = |b: u64| b as f64 / sim.points.max(1) as f64;
        // Bounded: the points are on disk (the page cache holds what is read), memory holds each series'
        // index and open tail and each run's record, so it grows with the runs, not with their points.
        let in_memory = per(sim.curve_bytes);
        rows.push(row(
            format!(
                "{} M points ({} runs, simulated)",
                sim.points / 1_000_000,
                sim.runs
            ),
            format!(
                "curve store in memory {:.0} MB ({:.2} bytes/point: index and open tails), chunks on disk {:.0} MB ({:.2} bytes/point); views' memory +{:.0} MB ({:.1} KB a run), built in {:.0} s",
                sim.curve_bytes as f64 / 1e6,
                in_memory,
                sim.chunk_file_bytes as f64 / 1e6,
                per(sim.chunk_file_bytes),
                sim.rss_growth as f64 / 1e6,
                sim.rss_growth as f64 / 1e3 / sim.runs.max(1) as f64,
                sim.secs
            ),
            "memory bounded (growth stated)",
            Some(in_memory < 1.0),
        ));
    } else {
        rows.push(row(
            "100 M points (25,000 runs, simulated)",
            "not run (add --big)".into(),
            "memory bounded (growth stated)",
            None,
        ));
    }

    print(a, &rows);
    println!(
        "this machine's pace (a fixed single-threaded loop; lower is faster): {pace_before:.0} ms before, {:.0} ms after",
        pace()
    );
    Ok(())
}

/// The 10 M figures against the 4 M ones: each within 2× (rates at least half, sizes and times at most twice).
fn within_twice(four: &Figures, ten: &Figures) -> Vec<Row> {
    let rate = |f: &Figures, secs: f64| f.points as f64 / secs / 1e6;
    let pairs = [
        (
            "at 10 M: ingest --once",
            rate(four, four.ingest_wall),
            rate(ten, ten.ingest_wall),
            true,
            "M points/s",
        ),
        (
            "at 10 M: replay",
            rate(four, four.replay_secs),
            rate(ten, ten.replay_secs),
            true,
            "M points/s",
        ),
        (
            "at 10 M: bytes per point",
            four.db_bytes as f64 / four.points as f64,
            ten.db_bytes as f64 / ten.points as f64,
            false,
            "bytes",
        ),
        (
            "at 10 M: 100 full curves (pages)",
            four.live.curves_secs * 1e3,
            ten.live.curves_secs * 1e3,
            false,
            "ms",
        ),
        (
            "at 10 M: live daemon peak RSS",
            four.live.peak_rss as f64 / 1e6,
            ten.live.peak_rss as f64 / 1e6,
            false,
            "MB",
        ),
    ];
    pairs
        .into_iter()
        .map(|(name, at4, at10, higher_is_better, unit)| {
            let ok = if higher_is_better {
                at10 >= at4 / 2.0
            } else {
                at10 <= at4 * 2.0
            };
            row(
                name,
                format!("{at10:.2} {unit} (4 M: {at4:.2})"),
                "within 2× of 4 M",
                Some(ok),
            )
        })
        .collect()
}

/// `labd-formats-bench` beside this binary: its TensorBoard rate, M points/s.
fn tensorboard(labd: &Path, runs: usize, steps: usize) -> Result<f64> {
    let bench = labd.with_file_name("labd-formats-bench");
    let out = Command::new(&bench)
        .args(["--runs", &runs.to_string(), "--steps", &steps.to_string()])
        .output()
        .with_context(|| format!("running {}", bench.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            bench.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("TensorBoard:"))
        .context("no TensorBoard line in labd-formats-bench's output")?;
    let before = line
        .split(" M points/s")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .context("no M points/s in the TensorBoard line")?;
    Ok(before.parse()?)
}

/// Milliseconds a fixed single-threaded loop takes: how fast this shared machine runs at the moment (its pace
/// varies by a quarter and more over minutes), printed beside the figures to read them by.
fn pace() -> f64 {
    let started = std::time::Instant::now();
    let (mut x, mut acc) = (0x9E37_79B9_7F4A_7C15u64, 0f64);
    for i in 0..50_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += (x >> 11) as f64 * 1e-16 + i as f64 * 1e-20;
    }
    std::hint::black_box(acc);
    started.elapsed().as_secs_f64() * 1e3
}

fn print(a: &Args, rows: &[Row]) {
    println!(
        "labd-bench --targets{} on this {}-core machine",
        if a.small {
            " --small (corpora 100× smaller: the figures are not comparable to the targets)"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let w0 = rows
        .iter()
        .map(|r| r.measure.chars().count())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.now.chars().count())
        .max()
        .unwrap_or(0);
    let w2 = rows
        .iter()
        .map(|r| r.target.chars().count())
        .max()
        .unwrap_or(0);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    println!(
        "{} | {} | {} | met",
        pad("measure", w0),
        pad("now", w1),
        pad("target", w2)
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        println!(
            "{} | {} | {} | {met}",
            pad(&r.measure, w0),
            pad(&r.now, w1),
            pad(r.target, w2)
        );
    }
}
