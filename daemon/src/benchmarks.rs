//! Benchmark jobs. labd runs the CMR benchmark runner (`labd-cmr`, built with the `torch` feature) as a child
//! process in its own process group, in `<data>/benchmarks/<id>/`: the runner writes its measurements as
//! benchmark lines to `events.jsonl` there, a watched folder, so they enter the log through the ingest pipeline
//! like any dropped file (exactly once, live). labd follows the child, reports progress, and records the end
//! itself when the runner could not (a crash, a kill, a cancel). Running the model in a child keeps libtorch out
//! of the daemon, keeps the measured memory the benchmark's own, and lets a benchmark fail without labd.

use crate::ingest::pump::IngestMsg;
use crate::jobs::Jobs;
use crate::mailbox::{BenchError, BenchRequest, Started};
use crate::process_group;
use crate::views::live::LiveViews;
use labd_log::writer::{Appender, Batch};
use labd_schemas::bench::{BenchChanged, BenchStatus};
use labd_schemas::cmr::BenchConfig;
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the benchmark runner needs of the daemon: narrow handles, not the daemon's whole state.
pub struct Deps {
    pub appender: Appender,
    pub views: LiveViews,
    pub jobs: Jobs,
    /// The ingest thread's mailbox: the runner's file is read to its end once the runner exits.
    pub ingest: Sender<IngestMsg>,
    /// Turns true when labd begins to stop: the runner is stopped too.
    pub stopping: watch::Receiver<bool>,
    /// Where each benchmark's folder is made (`<data>/benchmarks`, a watched folder).
    pub dir: PathBuf,
    pub host: String,
    /// The runner configured (`--cmr-runner`); else `labd-cmr` beside labd.
    pub runner: Option<PathBuf>,
}

/// The benchmark runner's state: its handles and the runners it started.
struct Worker {
    deps: Deps,
    runners: Runners,
}

/// The benchmark runner, until labd stops: first records benchmarks a previous labd left running as
/// interrupted, then starts and cancels benchmarks as asked.
pub async fn run(deps: Deps, mut requests: mpsc::UnboundedReceiver<BenchRequest>) {
    let w = Arc::new(Worker {
        deps,
        runners: Runners::default(),
    });
    recover(&w).await;
    while let Some(request) = requests.recv().await {
        match request {
            BenchRequest::Start(config, reply) => {
                let _ = reply.send(start(&w, *config).await);
            }
            BenchRequest::Cancel(id, reply) => {
                let _ = reply.send(w.runners.cancel(&id));
            }
        }
    }
}

/// Benchmarks this labd is running: id → the runner's process group, and whether it was asked to stop.
#[derive(Default)]
struct Runners {
    children: Mutex<HashMap<String, (u32, bool)>>,
}

impl Runners {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, bool)>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the runner of `id` to stop; false when it is not running here.
    fn cancel(&self, id: &str) -> bool {
        let mut map = self.lock();
        match map.get_mut(id) {
            Some((pgid, cancelled)) => {
                *cancelled = true;
                process_group::kill(*pgid, libc::SIGTERM);
                true
            }
            None => false,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Takes the one place for a running benchmark: two at once would time each other.
    fn reserve(&self, id: &str) -> Result<(), BenchError> {
        let mut map = self.lock();
        if let Some(running) = map.keys().next() {
            return Err(BenchError::Busy(running.clone()));
        }
        map.insert(id.to_string(), (0, false));
        Ok(())
    }

    fn release(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The runner labd would start, or why there is none.
pub fn runner_path(configured: Option<&Path>) -> Result<PathBuf, BenchError> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("labd-cmr")))
            .unwrap_or_else(|| PathBuf::from("labd-cmr")),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::NoRunner(path.display().to_string()))
    }
}

fn new_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    format!("cmr-{}-{:04x}", now.format("%Y%m%d-%H%M%S"), nanos % 0xffff)
}

/// Starts the runner on `cfg`.
async fn start(w: &Arc<Worker>, cfg: BenchConfig) -> Result<Started, BenchError> {
    let runner = runner_path(w.deps.runner.as_deref())?;
    let id = new_id();
    reserve_when_free(w, &id).await?;
    let started = launch(w, cfg, &runner, &id).await;
    if started.is_err() {
        w.runners.release(&id);
    }
    started
}

/// How long a start waits for the runner of a benchmark whose end is already recorded to be let go.
const ENDING_GRACE: Duration = Duration::from_secs(10);

/// Takes the one place for a running benchmark. A benchmark whose end is recorded (its runner wrote its last
/// line, and a client following it has seen it end) while labd still waits for its runner to exit and reads
/// what it wrote last is waited for, [`ENDING_GRACE`] at most, instead of refused: otherwise the next start
/// right after the end would be told the ended one is running.
async fn reserve_when_free(w: &Worker, id: &str) -> Result<(), BenchError> {
    let deadline = std::time::Instant::now() + ENDING_GRACE;
    loop {
        match w.runners.reserve(id) {
            Err(BenchError::Busy(running))
                if std::time::Instant::now() < deadline
                    && measured(w, &running).1.is_some_and(BenchStatus::is_final) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

async fn launch(
    w: &Arc<Worker>,
    cfg: BenchConfig,
    runner: &Path,
    id: &str,
) -> Result<Started, BenchError> {
    let id = id.to_string();
    let dir = w.deps.dir.join(&id);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let config_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&cfg).unwrap_or_default();
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    let log_path = dir.join("runner.log");
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let events = dir.join("events.jsonl");
    let mut cmd = tokio::process::Command::new(runner);
    cmd.arg("run")
        .arg("--config")
        .arg(&config_path)
        .arg("--out")
        .arg(&events)
        .arg("--bench")
        .arg(&id)
        .arg("--runner")
        .arg("labd")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    // SAFETY: prctl and the limits in the child before exec, async-signal-safe; the runner ends if labd dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The OOM killer's first choice, before labd.
            crate::limits::apply_in_child(Default::default())
        });
    }
    let planned = cfg.planned();
    // Recorded before the runner starts, so the benchmark is known at once; the runner's own `bench` line
    // then adds what it measures with (device, libtorch).
    let started_event = Event::new(
        now_micros(),
        Source::Daemon,
        EventKind::BenchStarted(Box::new(labd_schemas::bench::BenchStarted {
            bench: id.clone(),
            suite: "cmr".into(),
            name: cfg.name.clone(),
            config: serde_json::to_value(&cfg).unwrap_or_default(),
            build: Default::default(),
            host: w.deps.host.clone(),
            planned: Some(planned),
            started: now_micros(),
            runner: Some("labd".into()),
        })),
    );
    w.deps
        .appender
        .append_async(Batch {
            events: vec![started_event],
            cursors: Vec::new(),
            positions: Vec::new(),
        })
        .await?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            record_end(
                w,
                &id,
                BenchStatus::Failed,
                format!("starting {}: {source}", runner.display()),
            )
            .await;
            return Err(BenchError::Spawn {
                runner: runner.display().to_string(),
                source,
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    let job = w.deps.jobs.start("benchmark");
    job.set_total(planned, "measurements");
    let job_id = job.id();
    {
        let mut map = w.runners.lock();
        let entry = map.entry(id.clone()).or_insert((pid, false));
        entry.0 = pid;
        if entry.1 {
            // Cancelled while starting.
            process_group::kill(pid, libc::SIGTERM);
        }
    }
    tracing::info!(
        "benchmark {id}: started {} (pid {pid}), {planned} measurements planned, in {}",
        runner.display(),
        dir.display()
    );
    tokio::spawn(follow(
        w.clone(),
        id.clone(),
        child,
        job,
        events,
        log_path,
        planned,
    ));
    Ok(Started {
        bench: id,
        job: job_id,
        planned,
        dir,
    })
}

fn measured(w: &Worker, id: &str) -> (u64, Option<BenchStatus>) {
    let v = w.deps.views.read();
    match v.benchmarks.benches.get(id) {
        // Utilization samples are labd's own, not the runner's planned measurements.
        Some(b) => (b.measured() as u64, Some(b.status)),
        None => (0, None),
    }
}

/// Seconds between two samples of what a running benchmark uses.
const UTILIZATION_EVERY: u64 = 2;

/// Records one sample of what the runner (its process tree) and the host use, as a `utilization` measurement at
/// `t` seconds.
async fn record_utilization(
    w: &Worker,
    id: &str,
    host: &mut crate::sweeps::resources::Host,
    pid: u32,
    t: f64,
) {
    let gpus: Vec<u32> = host.gpus().iter().map(|g| g.index).collect();
    let Some(u) = host.sample(&[(pid, gpus)]).pop() else {
        return;
    };
    let mut values = std::collections::BTreeMap::new();
    values.insert("cpu_cores".to_string(), u.cpu);
    values.insert("rss_bytes".to_string(), u.rss as f64);
    values.insert("host_cpu".to_string(), u.host_cpu);
    values.insert("host_ram_used".to_string(), u.host_ram_used as f64);
    if !u.gpus.is_empty() {
        let n = u.gpus.len() as f64;
        values.insert(
            "gpu_util".to_string(),
            u.gpus.iter().map(|g| g.util).sum::<f64>() / n,
        );
        values.insert(
            "gpu_memory_used".to_string(),
            u.gpus.iter().map(|g| g.memory_used as f64).sum(),
        );
    }
    let mut params = serde_json::Map::new();
    params.insert("t".into(), serde_json::json!((t * 10.0).round() / 10.0));
    let event = Event::new(
        now_micros(),
        Source::Daemon,
        EventKind::BenchMeasured(labd_schemas::bench::BenchMeasured {
            bench: id.to_string(),
            analysis: "utilization".into(),
            params,
            values,
            samples: Default::default(),
        }),
    );
    if let Err(e) = w
        .deps
        .appender
        .append_async(Batch {
            events: vec![event],
            cursors: Vec::new(),
            positions: Vec::new(),
        })
        .await
    {
        tracing::warn!("benchmark {id}: recording its utilization: {e}");
    }
}

/// The last lines of the runner's log, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

async fn follow(
    w: Arc<Worker>,
    id: String,
    mut child: tokio::process::Child,
    job: crate::jobs::Job,
    events: PathBuf,
    log_path: PathBuf,
    planned: u64,
) {
    let mut reported = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut stopping = w.deps.stopping.clone();
    // What the runner uses while it runs (CPU and memory of its processes, the host's CPU, the GPUs through
    // NVML when there are any), recorded every few seconds as `utilization` measurements.
    let started = std::time::Instant::now();
    let pid = child.id();
    let mut host = tokio::task::spawn_blocking(crate::sweeps::resources::Host::probe)
        .await
        .ok();
    let mut ticks = 0u64;
    let exit = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = ticker.tick() => {
                let (n, _) = measured(&w, &id);
                if n > reported {
                    job.advance(n - reported);
                    reported = n;
                    tracing::info!("benchmark {id}: {n}/{planned} measurements");
                }
                ticks += 1;
                if ticks % UTILIZATION_EVERY == 1
                    && let (Some(h), Some(pid)) = (host.as_mut(), pid)
                {
                    record_utilization(&w, &id, h, pid, started.elapsed().as_secs_f64()).await;
                }
            }
            _ = stopping.changed() => {
                // labd is stopping: the runner stops too; the next start records the benchmark as interrupted.
                if let Some((pgid, _)) = w.runners.lock().get(&id) {
                    process_group::kill(*pgid, libc::SIGTERM);
                }
                let _ = child.wait().await;
                w.runners.lock().remove(&id);
                job.finish(Err("labd stopped".into()));
                return;
            }
        }
    };
    // Read what the runner wrote last before deciding how it ended.
    let ingest = w.deps.jobs.start("ingest");
    if w.deps
        .ingest
        .send(IngestMsg::Path(events.clone(), ingest.clone(), None))
        .is_ok()
    {
        for _ in 0..300 {
            if ingest.state().finished {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let cancelled = w.runners.lock().remove(&id).is_some_and(|(_, c)| c);
    let (n, status) = measured(&w, &id);
    job.advance(n.saturating_sub(reported));
    let outcome = match &exit {
        Ok(e) if e.success() => None,
        Ok(e) => Some(format!("labd-cmr exited with {e}")),
        Err(e) => Some(format!("waiting for labd-cmr: {e}")),
    };
    let final_status = if status.is_some_and(BenchStatus::is_final) {
        status
    } else {
        let (st, message) = if cancelled {
            (BenchStatus::Cancelled, "cancelled".to_string())
        } else {
            let why = outcome
                .clone()
                .unwrap_or_else(|| "labd-cmr ended without a bench_end line".into());
            (
                BenchStatus::Failed,
                format!("{why}; runner.log: {}", tail(&log_path, 3)),
            )
        };
        record_end(&w, &id, st, message).await;
        Some(st)
    };
    let st = final_status.unwrap_or(BenchStatus::Failed);
    tracing::info!("benchmark {id}: {} ({n} measurements)", st.as_str());
    if st == BenchStatus::Completed {
        job.finish(Ok(
            serde_json::json!({"bench": id, "status": st, "measurements": n}),
        ));
    } else {
        let message = w
            .deps
            .views
            .read()
            .benchmarks
            .benches
            .get(&id)
            .and_then(|b| b.message.clone())
            .unwrap_or_default();
        job.finish(Err(format!("benchmark {id} {}: {message}", st.as_str())));
    }
}

async fn record_end(w: &Worker, id: &str, status: BenchStatus, message: String) {
    let event = Event::new(
        now_micros(),
        Source::Daemon,
        EventKind::BenchChanged(BenchChanged {
            bench: id.to_string(),
            status,
            message: Some(message),
        }),
    );
    if let Err(e) = w
        .deps
        .appender
        .append_async(Batch {
            events: vec![event],
            cursors: Vec::new(),
            positions: Vec::new(),
        })
        .await
    {
        tracing::error!("benchmark {id}: recording its end: {e}");
    }
}

/// After a start: benchmarks labd was running when it stopped are recorded as interrupted (their runner died
/// with labd).
async fn recover(w: &Worker) {
    let running = w.runners.ids();
    let stale: Vec<String> = w
        .deps
        .views
        .read()
        .benchmarks
        .running_by_labd()
        .filter(|b| !running.contains(&b.id))
        .map(|b| b.id.clone())
        .collect();
    if stale.is_empty() {
        return;
    }
    let events = stale
        .iter()
        .map(|id| {
            tracing::warn!("benchmark {id} was running when labd stopped: recorded as interrupted");
            Event::new(
                now_micros(),
                Source::Daemon,
                EventKind::BenchChanged(BenchChanged {
                    bench: id.clone(),
                    status: BenchStatus::Interrupted,
                    message: Some("labd stopped while it ran".into()),
                }),
            )
        })
        .collect();
    if let Err(e) = w
        .deps
        .appender
        .append_async(Batch {
            events,
            cursors: Vec::new(),
            positions: Vec::new(),
        })
        .await
    {
        tracing::error!("recording interrupted benchmarks: {e}");
    }
}
