//! The daemon's wiring, which reads as the table of contents of its stages (data flows one way: sources → log →
//! views → answers):
//! 1. open the event log and load the views (their checkpoint, then catching up from the log);
//! 2. start the log writer, whose commits feed the live views;
//! 3. with `--once`: ingest the watched folders, commit, save the checkpoint, and exit;
//! 4. start the ingest thread on the watched folders and the sweeps' and benchmarks' folders;
//! 5. start the workers, each with narrow handles: checkpoints, the curve warm-up, the sweep scheduler, the
//!    benchmark runner, the alerts worker, the federation's publisher and hub;
//! 6. serve the HTTP API until shutdown;
//! 7. stop: the scheduler's trials, intake, the writer; save the checkpoint.
//!
//! [`run`] is what `main` and tests call.

use crate::config::Config;
use crate::ids::Ids;
use crate::ingest::Ingestor;
use crate::ingest::pump::{self, IngestMsg};
use crate::jobs::Jobs;
use crate::mailbox;
use crate::state::AppState;
use crate::views::Views;
use crate::views::live::LiveViews;
use crate::{api, benchmarks, federation, sweeps};
use labd_log::writer::Writer;
use labd_log::{EventLog, LogError};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

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

/// Runs the daemon until `shutdown` resolves (or, with `config.once`, until the watched folders are ingested).
/// `listener`: an already bound listener (tests bind port 0), else `config.listen` is bound.
pub async fn run(
    config: Config,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    make_dir(&config.data_dir)?;
    let default_inbox = config.data_dir.join("inbox");
    if config.watch.contains(&default_inbox) {
        let _ = std::fs::create_dir_all(&default_inbox);
    }
    // 1, 2: the log, the views, the writer.
    let (log, views) = open(&config).await?;
    let writer = Writer::start(log.clone(), views.on_commit())?;
    let ids = Arc::new(Ids::new(views.read().registry.experiments.keys().cloned()));
    let mut ingestor = Ingestor::new(
        log.clone(),
        writer.appender(),
        ids.clone(),
        config.host.clone(),
        config.ingest.clone(),
    )?;
    ingestor.formats = config.formats.clone();
    // 3: one pass.
    if config.once {
        ingest_once(ingestor, config.watch.clone()).await?;
        return finish(writer, &log, &views).await;
    }
    let listener = listen(&config, listener).await?;
    // 4: intake.
    let (ingest, ingest_thread) = start_ingest(&config, ingestor)?;
    // 5: the workers.
    let (stop_tx, stopping) = watch::channel(false);
    let jobs = Jobs::default();
    let checkpoints = tokio::spawn(
        views
            .clone()
            .checkpoint_every(log.clone(), config.checkpoint_every),
    );
    if !views.read().curves_ready() {
        let (log, views) = (log.clone(), views.clone());
        std::thread::Builder::new()
            .name("labd-curves".into())
            .spawn(move || views.warm_curves(&log))
            .map_err(|_| DaemonError::IngestGone)?;
    }
    let (sweeps, sweep_requests) = mailbox::Sweeps::new();
    let scheduler = tokio::spawn(sweeps::runner::run(
        sweeps::Deps {
            views: views.clone(),
            appender: writer.appender(),
            ingest: ingest.clone(),
            stopping: stopping.clone(),
            heartbeat: config.sweep_heartbeat,
            budgets: sweeps.budgets.clone(),
        },
        Some(sweeps::slurm::Site {
            sbatch: config.slurm.sbatch.clone(),
            squeue: config.slurm.squeue.clone(),
            sacct: config.slurm.sacct.clone(),
            scancel: config.slurm.scancel.clone(),
            dir: config.slurm.dir.clone(),
            poll: config.slurm.poll,
        }),
        sweep_requests,
    ));
    let (benchmarks, bench_requests) = mailbox::Benchmarks::new();
    tokio::spawn(benchmarks::run(
        benchmarks::Deps {
            appender: writer.appender(),
            views: views.clone(),
            jobs: jobs.clone(),
            ingest: ingest.clone(),
            stopping: stopping.clone(),
            dir: config.benchmarks_dir(),
            host: config.host.clone(),
            runner: config.cmr_runner.clone(),
        },
        bench_requests,
    ));
    // Alerts: the rules' firings recorded and sent on.
    let alerts = tokio::spawn(crate::alerts::run(crate::alerts::Deps {
        views: views.clone(),
        appender: writer.appender(),
        stopping: stopping.clone(),
        settings: Arc::new(config.alerts.clone()),
        host: config.host.clone(),
    }));
    // The lab-wide ledger: publishing this log, consuming the hosts' (a hub).
    let (federation, federation_tasks) = match config.federation.clone() {
        Some(settings) => {
            let (status, tasks) = federation::start(
                settings,
                log.clone(),
                writer.appender(),
                views.clone(),
                ids.clone(),
                stopping.clone(),
            );
            (Some(status), tasks)
        }
        None => (None, Vec::new()),
    };
    // 6: answers.
    let state = Arc::new(AppState {
        log: log.clone(),
        views: views.clone(),
        appender: writer.appender(),
        ids,
        jobs,
        ingest: ingest.clone(),
        sweeps,
        benchmarks,
        federation,
        started: Instant::now(),
        stopping,
        mlflow_writes: tokio::sync::Mutex::new(()),
        mlflow_runs: Default::default(),
        config,
    });
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!("labd listening on http://{addr}");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let served = api::serve(listener, state.clone(), shutdown).await;
    // 7: stop.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("shutting down: stopping trials and intake");
    checkpoints.abort();
    // The scheduler stops running trials (recorded as interrupted; they run again on the next start).
    let _ = scheduler.await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), alerts).await;
    // The publisher stores what was acknowledged; the hub's appended batches are committed.
    for task in federation_tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    let _ = ingest.send(IngestMsg::Stop);
    let _ = tokio::task::spawn_blocking(move || ingest_thread.join()).await;
    drop(state);
    finish(writer, &log, &views).await?;
    tracing::info!("labd stopped");
    served.map_err(DaemonError::Serve)
}

fn make_dir(path: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(path).map_err(|source| DaemonError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Opens the event log and loads the views (from their checkpoint, caught up from the log).
async fn open(config: &Config) -> Result<(EventLog, LiveViews), DaemonError> {
    let log_path = config.log_path();
    let (once, min_free) = (config.once, config.min_free_bytes);
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
    Ok((log, LiveViews::new(views)))
}

/// `--once`: reads the watched folders as finished files.
async fn ingest_once(mut ingestor: Ingestor, roots: Vec<PathBuf>) -> Result<(), DaemonError> {
    let report = tokio::task::spawn_blocking(move || ingestor.scan(&roots, true, None))
        .await
        .map_err(|_| DaemonError::IngestGone)??;
    tracing::info!(
        "ingested {} files: {} lines, {} points, {} problems",
        report.files,
        report.lines,
        report.points,
        report.errors
    );
    Ok(())
}

/// The listener to serve on: the one given, else `config.listen` bound.
async fn listen(config: &Config, given: Option<TcpListener>) -> Result<TcpListener, DaemonError> {
    match given {
        Some(l) => Ok(l),
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.listen,
                source,
            }),
    }
}

/// Starts the ingest thread on the watched folders, and on the sweeps' trial folders (the Slurm sweeps' too) and
/// the benchmarks' folders, which are watched like any drop folder: trials' run logs and runners' result lines flow in as
/// they are written. Answers its mailbox and the thread.
fn start_ingest(
    config: &Config,
    ingestor: Ingestor,
) -> Result<(Sender<IngestMsg>, JoinHandle<()>), DaemonError> {
    let (sweeps_dir, benchmarks_dir) = (config.sweeps_dir(), config.benchmarks_dir());
    make_dir(&sweeps_dir)?;
    make_dir(&benchmarks_dir)?;
    let mut roots = config.watch.clone();
    // Slurm sweeps' trial folders, on storage the cluster's nodes share, are read like the local ones.
    if config.slurm.dir != sweeps_dir && std::fs::create_dir_all(&config.slurm.dir).is_ok() {
        roots.push(config.slurm.dir.clone());
    }
    roots.push(sweeps_dir);
    roots.push(benchmarks_dir);
    let rescan = config.rescan;
    let (tx, rx) = std::sync::mpsc::channel();
    let mailbox = tx.clone();
    let thread = std::thread::Builder::new()
        .name("labd-ingest".into())
        .spawn(move || pump::run(ingestor, roots, rescan, rx, mailbox))
        .map_err(|_| DaemonError::IngestGone)?;
    Ok((tx, thread))
}

/// Commits what is queued, stops the writer, saves the views' checkpoint.
async fn finish(writer: Writer, log: &EventLog, views: &LiveViews) -> Result<(), DaemonError> {
    let (log, views) = (log.clone(), views.clone());
    tokio::task::spawn_blocking(move || -> Result<(), LogError> {
        writer.close();
        views.save_checkpoint(&log)
    })
    .await
    .map_err(|_| DaemonError::IngestGone)??;
    Ok(())
}
