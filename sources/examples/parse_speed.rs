//! How fast the sources turn files into events, with nothing stored: `cargo run --release -p labd-sources
//! --example parse_speed -- DIR [FORMAT]` reads every file under DIR (as FORMAT, `runlog` by default) five
//! times and prints the best time, lines and points a second. A profiling aid for the parse side of ingest.

use labd_sources::{Context, FileCursor, Format, Runs};

// The daemon's allocator, so that what is measured is what labd does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: parse_speed DIR [FORMAT [ROUNDS]]");
        std::process::exit(2);
    };
    let format_name = args.next().unwrap_or_else(|| "runlog".into());
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let Some(format) = Format::from_name(&format_name) else {
        eprintln!("unknown format {format_name:?}");
        std::process::exit(2);
    };
    let mut paths = Vec::new();
    files(Path::new(&dir), &mut paths);
    paths.sort();
    let data: Vec<(String, Vec<u8>)> = paths
        .iter()
        .filter_map(|p| Some((p.to_string_lossy().into_owned(), std::fs::read(p).ok()?)))
        .collect();
    let mut best = f64::INFINITY;
    let (mut events, mut points) = (0usize, 0u64);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut runs = Runs::default();
        // Kept until timed: in labd the events are dropped on the writer's thread, not the parser's.
        let mut kept = Vec::with_capacity(data.len());
        (events, points) = (0, 0);
        for (path, bytes) in &data {
            let mut ids = |id| id;
            let mut cursor = FileCursor {
                format: format.name().into(),
                ..Default::default()
            };
            let mut ctx = Context {
                path,
                default_name: "run",
                host: "bench",
                now: 1_760_000_000_000_000,
                max_line: 1 << 20,
                take_unterminated: true,
                ids: &mut ids,
                id_clock: Default::default(),
                runs: &mut runs,
                sidecars: &[],
            };
            let out = labd_sources::read(format, &mut cursor, bytes, &mut ctx);
            events += out.events.len();
            points += out.points;
            kept.push(out);
        }
        best = best.min(start.elapsed().as_secs_f64());
        drop(kept);
    }
    println!(
        "{} files, {events} events, {points} points: best of {rounds} {:.3} s, {:.2} M points/s, {:.0} ns an event",
        data.len(),
        best,
        points as f64 / best / 1e6,
        best * 1e9 / events.max(1) as f64
    );
}
