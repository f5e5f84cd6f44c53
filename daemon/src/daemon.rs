//! The daemon's spine: open the log, load the views, start the writer, the ingest thread and the API, and
//! on shutdown stop intake, commit and save the views' checkpoint. [`run`] is what `main` and tests call.

use crate::config::Config;
use crate::ids::Ids;
use crate::ingest::Ingestor;
use crate::ingest::pump::IngestMsg;
use crate::jobs::Jobs;
use crate::views::{CHECKPOINT_KEY, Views};

use crate::{api, replay};
use labd_log::writer::{Appender, Writer};
use labd_log::{EventLog, LogError, Seq};
use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
    #[error("the ingest thread stopped unexpectedly")]
    IngestGone,
}

/// What the API and the background tasks share. Lock order: `views` only; it is a `std` lock, never held
/// across `.await`.
pub struct Shared {
    pub config: Config,
    pub log: EventLog,
    pub views: Arc<RwLock<Views>>,
    pub appender: Appender,
    pub ids: Arc<Ids>,
    pub jobs: Jobs,
    /// The newest committed sequence number (the SSE tail waits on it).
    pub last_seq: tokio::sync::watch::Receiver<Seq>,
    pub ingest: Sender<IngestMsg>,
    pub started: Instant,
    /// Turns true when the daemon begins to stop (long-lived responses such as the SSE tail end then).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The sweep scheduler.
    pub scheduler: crate::sweeps::runner::Scheduler,
    /// Benchmark runners this labd started.
    pub benches: crate::benchmarks::Runners,
}

impl Shared {
    /// Read access to the views (a poisoned lock still holds consistent data: apply never panics midway).
    pub fn views(&self) -> std::sync::RwLockReadGuard<'_, Views> {
        self.views.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the daemon until `shutdown` resolves (or, with `config.once`, until the watched folders are ingested).
/// `listener`: an already bound listener (tests bind port 0), else `config.listen` is bound.
pub async fn run(
    config: Config,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| DaemonError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let default_inbox = config.data_dir.join("inbox");
    if config.watch.contains(&default_inbox) {
        let _ = std::fs::create_dir_all(&default_inbox);
    }
    let log_path = config.log_path();
    let once = config.once;
    let min_free = config.min_free_bytes;
    let (log, views) = tokio::task::spawn_blocking(move || -> Result<_, LogError> {
        let log = EventLog::open(&log_path)?;
        log.set_min_free(min_free);
        let started = Instant::now();
        let views = Views::load(&log, !once)?;
        tracing::info!(
            "event log {} open: {} events, {} experiments (views ready in {:.2}s)",
            log_path.display(),
            views.applied,
            views.registry.experiments.len(),
            started.elapsed().as_secs_f64()
        );
        Ok((log, views))
    })
    .await
    .map_err(|_| DaemonError::IngestGone)??;

    let ids = Arc::new(Ids::new(views.registry.experiments.keys().cloned()));
    let (seq_tx, seq_rx) = tokio::sync::watch::channel(views.applied);
    let views = Arc::new(RwLock::new(views));
    let writer = {
        let views = views.clone();
        Writer::start(
            log.clone(),
            Box::new(move |first, events| {
                let mut v = views.write().unwrap_or_else(|p| p.into_inner());
                v.apply_batch(first, events);
                let applied = v.applied;
                drop(v);
                seq_tx.send_replace(applied);
            }),
        )?
    };
    let (ingest_tx, ingest_rx) = std::sync::mpsc::channel();
    let mut ingestor = Ingestor::new(
        log.clone(),
        writer.appender(),
        ids.clone(),
        config.host.clone(),
        config.ingest.clone(),
    )?;
    ingestor.formats = config.formats.clone();

    if config.once {
        let roots = config.watch.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut ingestor = ingestor;
            ingestor.scan(&roots, true, None)
        })
        .await
        .map_err(|_| DaemonError::IngestGone)??;
        tracing::info!(
            "ingested {} files: {} lines, {} points, {} problems",
            report.files,
            report.lines,
            report.points,
            report.errors
        );
        finish(writer, &log, &views).await?;
        return Ok(());
    }

    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    // Sweeps' trial folders are watched like any drop folder: their run logs flow in as runs.
    let sweeps_dir = config.sweeps_dir();
    std::fs::create_dir_all(&sweeps_dir).map_err(|source| DaemonError::DataDir {
        path: sweeps_dir.clone(),
        source,
    })?;
    // So are the benchmarks' folders: the runner's result lines flow in as they are written.
    let benchmarks_dir = config.benchmarks_dir();
    std::fs::create_dir_all(&benchmarks_dir).map_err(|source| DaemonError::DataDir {
        path: benchmarks_dir.clone(),
        source,
    })?;
    let ingest_thread = {
        let mut roots = config.watch.clone();
        roots.push(sweeps_dir);
        roots.push(benchmarks_dir);
        let rescan = config.rescan;
        let tx = ingest_tx.clone();
        std::thread::Builder::new()
            .name("labd-ingest".into())
            .spawn(move || crate::ingest::pump::run(ingestor, roots, rescan, ingest_rx, tx))
            .map_err(|_| DaemonError::IngestGone)?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (scheduler, scheduler_rx) = crate::sweeps::runner::Scheduler::new();
    let shared = Arc::new(Shared {
        scheduler: scheduler.clone(),
        benches: Default::default(),
        stopping: stop_rx,
        log: log.clone(),
        views: views.clone(),
        appender: writer.appender(),
        ids,
        jobs: Jobs::default(),
        last_seq: seq_rx,
        ingest: ingest_tx.clone(),
        started: Instant::now(),
        config,
    });
    let checkpoints = tokio::spawn(checkpoint_loop(shared.clone()));
    crate::benchmarks::recover(&shared);
    let sweeps = tokio::spawn(crate::sweeps::runner::run(
        shared.clone(),
        scheduler_rx,
        scheduler,
    ));
    if !shared.views().curves_ready() {
        let (log, views) = (log.clone(), views.clone());
        std::thread::Builder::new()
            .name("labd-curves".into())
            .spawn(move || warm_curves(&log, &views))
            .map_err(|_| DaemonError::IngestGone)?;
    }
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tracing::info!("labd listening on http://{addr}");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let served = api::serve(listener, shared.clone(), shutdown).await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: stopping trials and intake");
    checkpoints.abort();
    // The scheduler stops running trials (recorded as interrupted; they run again on the next start).
    let _ = sweeps.await;
    let _ = ingest_tx.send(IngestMsg::Stop);
    let _ = tokio::task::spawn_blocking(move || ingest_thread.join()).await;
    drop(shared);
    finish(writer, &log, &views).await?;
    tracing::info!("labd stopped");
    served.map_err(DaemonError::Serve)
}

/// Commits what is queued, stops the writer, saves the views' checkpoint.
async fn finish(
    writer: Writer,
    log: &EventLog,
    views: &Arc<RwLock<Views>>,
) -> Result<(), DaemonError> {
    let log = log.clone();
    let views = views.clone();
    tokio::task::spawn_blocking(move || -> Result<(), LogError> {
        writer.close();
        save_checkpoint(&log, &views)
    })
    .await
    .map_err(|_| DaemonError::IngestGone)??;
    Ok(())
}

/// Fills the curve store from the log, in order, after a start from a checkpoint (which does not hold curves).
/// Batches committed meanwhile are applied by the writer once the store has caught up, or read here from the log.
fn warm_curves(log: &EventLog, views: &RwLock<Views>) {
    let started = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let from = views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .curves
            .applied
            + 1;
        let last = match log.last_seq() {
            Ok(l) => l,
            Err(e) if e.is_io() => {
                // The log is being reopened after an I/O error: wait for it.
                tracing::warn!("curve store warm-up: {e}; trying again");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::error!("curve store warm-up: {e}");
                return;
            }
        };
        if from > last {
            break;
        }
        let chunk = match log.read(from, last, 65_536) {
            Ok(c) => c,
            Err(e) if e.is_io() => {
                tracing::warn!("curve store warm-up: {e}; trying again");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => {
                tracing::error!("curve store warm-up: {e}");
                return;
            }
        };
        let mut v = views.write().unwrap_or_else(|p| p.into_inner());
        for (seq, event) in &chunk {
            v.curves.apply(*seq, event);
        }
        if last_log.elapsed() > Duration::from_secs(2) {
            last_log = Instant::now();
            tracing::info!("curve store warm-up: {}/{last} events", v.curves.applied);
        }
    }
    let v = views.read().unwrap_or_else(|p| p.into_inner());
    tracing::info!(
        "curve store ready: {} points ({:.0} MB) in {:.2}s",
        v.curves.points,
        v.curves.bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}

/// Saves the views' checkpoint.
pub fn save_checkpoint(log: &EventLog, views: &RwLock<Views>) -> Result<(), LogError> {
    let bytes = views
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .encode_checkpoint()?;
    log.save_checkpoint(CHECKPOINT_KEY, &bytes)
}

async fn checkpoint_loop(shared: Arc<Shared>) {
    let mut saved = shared.views().applied;
    let mut tick = tokio::time::interval(shared.config.checkpoint_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let applied = shared.views().applied;
        if applied == saved {
            continue;
        }
        let s = shared.clone();
        match tokio::task::spawn_blocking(move || save_checkpoint(&s.log, &s.views)).await {
            Ok(Ok(())) => saved = applied,
            Ok(Err(e)) => tracing::warn!("saving the views' checkpoint failed: {e}"),
            Err(_) => return,
        }
    }
}

/// Offline replay for `labd replay`: rebuild the views of a stopped daemon's data directory.
pub fn replay_offline(
    config: &Config,
    as_of: Option<&str>,
) -> Result<labd_schemas::api::ReplayReport, DaemonError> {
    let log = EventLog::open(&config.log_path())?;
    let mut offline = Views::default();
    offline.curves.off = true;
    let views = Arc::new(RwLock::new(offline));
    let report = replay::replay(&log, &views, as_of, config.stale_after, None)?;
    if as_of.is_none() {
        save_checkpoint(&log, &views)?;
    }
    Ok(report)
}
