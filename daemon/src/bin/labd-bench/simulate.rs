//! The 100 M-point figure, simulated: the views a daemon holds for 25,000 runs × 4 metrics × 1,000 steps, built
//! in this process from generated events (the events the corpus's lines make — six-decimal values, millisecond
//! times — without the files and the log; the curve store's chunks go to a file in a scratch folder, as the
//! daemon's do), measured as the curve store's bytes in memory and on disk and this process's resident memory
//! before and after.

use labd::views::Views;
use labd_schemas::event::{ExperimentCreated, MetricsLogged, RunStatus, StatusChanged};
use labd_schemas::float_map::FloatMap;
use labd_schemas::{Event, EventKind, ExperimentId, Source};
use std::time::Instant;

/// What the simulated views hold.
pub struct Simulated {
    pub runs: usize,
    pub points: u64,
    /// Bytes the curve store holds in memory (index, open tails, chunks not yet written out).
    pub curve_bytes: u64,
    /// Bytes of closed chunks in its file.
    pub chunk_file_bytes: u64,
    /// Growth of this process's resident memory while the views were built.
    pub rss_growth: u64,
    pub secs: f64,
}

/// Builds the views of `runs` runs × `metrics` metrics × `steps` steps (progress on stderr every 5,000 runs).
pub fn run(runs: usize, steps: usize, metrics: usize) -> std::io::Result<Simulated> {
    let started = Instant::now();
    let before = crate::rss(std::process::id());
    let names = crate::metric_names(metrics);
    let mut rnd = crate::noise();
    let mut views = Views::default();
    let scratch = std::env::temp_dir().join(format!("labd-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    views.curves = labd::views::Curves::on_disk(&scratch)?;
    let mut seq = 1u64;
    for r in 0..runs {
        let path = format!("/sim/group{:02}/run{r:05}.jsonl", r % 50);
        let source = |line: u64| Source::File {
            path: path.clone(),
            first_line: line,
            last_line: line,
        };
        let exp = ExperimentId(format!("sim-{r:06}"));
        let t0 = 1_760_000_000.0 + r as f64 * 3600.0;
        let lr = [1e-2, 1e-3, 1e-4][r % 3];
        let mut events = Vec::with_capacity(steps + 1);
        events.push(Event::new(
            0,
            source(1),
            EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                exp: exp.clone(),
                name: format!("bench-{r}"),
                description: None,
                tags: vec!["bench".into()],
                config: serde_json::json!({"optim": {"name": "adam", "lr": lr}, "seed": r % 5}),
                config_hash: format!("{:x}", r % 15),
                host: "sim".into(),
                started: (t0 * 1e6) as i64,
                extra: Default::default(),
                project: None,
            })),
        ));
        for step in 0..steps {
            // The corpus writes values with six decimals and times to the millisecond: the same numbers.
            let values: FloatMap = names
                .iter()
                .map(|n| {
                    let v = 1.0 / (1.0 + step as f64 * 0.01) + rnd() * 0.05;
                    (n.clone(), (v * 1e6).round() / 1e6)
                })
                .collect();
            events.push(Event::new(
                (t0 * 1e6) as i64 + step as i64,
                source(step as u64 + 2),
                EventKind::MetricsLogged(MetricsLogged {
                    exp: exp.clone(),
                    split: Some("train".into()),
                    step: Some(step as i64),
                    epoch: Some((step / 100) as f64),
                    wall_time: Some(((t0 + step as f64 * 0.5) * 1e3).round() / 1e3),
                    x: FloatMap::new(),
                    values,
                    extra: Default::default(),
                }),
            ));
        }
        // The run ends, as the corpus's runs do (its tails are sealed into the chunk file).
        events.push(Event::new(
            (t0 * 1e6) as i64 + steps as i64,
            source(steps as u64 + 2),
            EventKind::StatusChanged(StatusChanged {
                exp: exp.clone(),
                status: RunStatus::Completed,
                notes: None,
                extra: Default::default(),
            }),
        ));
        views.apply_batch(seq, &events);
        seq += events.len() as u64;
        if (r + 1) % 5000 == 0 {
            eprintln!(
                "simulated {} of {runs} runs ({} M points) in {:.0}s",
                r + 1,
                views.points / 1_000_000,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let after = crate::rss(std::process::id());
    let simulated = Simulated {
        runs,
        points: views.points,
        curve_bytes: views.curves.bytes() as u64,
        chunk_file_bytes: views.curves.stored_bytes(),
        rss_growth: after.saturating_sub(before),
        secs: started.elapsed().as_secs_f64(),
    };
    drop(views);
    std::fs::remove_dir_all(&scratch)?;
    Ok(simulated)
}
