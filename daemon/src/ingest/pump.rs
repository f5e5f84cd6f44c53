//! The ingest thread's pump: a first scan, then the watcher's triggers (debounced), on-demand ingests of a path
//! (jobs) and a periodic rescan as the backstop, until told to stop. Others reach it through its mailbox
//! ([`IngestMsg`] on a channel): the watcher, the API's ingest jobs, the benchmark runner's final read.

use super::Ingestor;
use crate::jobs::Job;
use crate::watch::{Changed, Watch};
use labd_log::LogError;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Work for the ingest thread.
pub enum IngestMsg {
    /// The watcher saw these paths change.
    Changed(Vec<PathBuf>),
    /// Ingest a path now (file or folder, as finished files); with a format, its files are read as that
    /// format. The job reports progress and the result.
    Path(PathBuf, Job, Option<labd_sources::Format>),
    Stop,
}

impl From<Changed> for IngestMsg {
    fn from(c: Changed) -> Self {
        match c {
            Changed::Paths(p) => IngestMsg::Changed(p),
        }
    }
}

/// The ingest thread: a first scan, then notify's triggers (debounced), on-demand ingests, and a periodic
/// rescan as a backstop, until told to stop.
pub fn run(
    mut ingestor: Ingestor,
    roots: Vec<PathBuf>,
    rescan: Duration,
    rx: Receiver<IngestMsg>,
    tx: Sender<IngestMsg>,
) {
    let mut watch = Watch::start(&roots, tx);
    let report = |what: &str, r: Result<labd_schemas::api::IngestReport, LogError>| match r {
        Ok(r) if r.lines > 0 || r.errors > 0 => {
            tracing::info!(
                "{what}: {} files, {} lines, {} points, {} problems",
                r.files,
                r.lines,
                r.points,
                r.errors
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!("{what}: {e}"),
    };
    report("initial scan", ingestor.scan(&roots, false, None));
    let mut next_rescan = Instant::now() + rescan;
    loop {
        let wait = next_rescan.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(IngestMsg::Changed(mut paths)) => {
                // Debounce: gather what else arrives within 50 ms (at most 250 ms in all).
                let until = Instant::now() + Duration::from_millis(250);
                let mut stop = false;
                while let Ok(msg) = rx.recv_timeout(Duration::from_millis(50)) {
                    match msg {
                        IngestMsg::Changed(more) => paths.extend(more),
                        IngestMsg::Path(p, job, f) => run_job(&mut ingestor, p, job, f),
                        IngestMsg::Stop => stop = true,
                    }
                    if stop || Instant::now() > until {
                        break;
                    }
                }
                report("change", ingestor.load_paths(&paths));
                if stop {
                    break;
                }
            }
            Ok(IngestMsg::Path(p, job, f)) => run_job(&mut ingestor, p, job, f),
            Ok(IngestMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                watch.retry_missing(&roots);
                report("rescan", ingestor.scan(&roots, false, None));
                next_rescan = Instant::now() + rescan;
            }
        }
    }
    if let Err(e) = ingestor.flush() {
        tracing::error!("final ingest commit: {e}");
    }
}

fn run_job(ingestor: &mut Ingestor, path: PathBuf, job: Job, format: Option<labd_sources::Format>) {
    tracing::info!("ingesting {} (job {})", path.display(), job.id());
    let result = if path.exists() {
        match format {
            Some(f) => ingestor.scan_as(&path, f, Some(&job)),
            None => ingestor.scan(std::slice::from_ref(&path), true, Some(&job)),
        }
        .map_err(|e| e.to_string())
    } else {
        Err(format!("{} does not exist", path.display()))
    };
    match &result {
        Ok(r) => tracing::info!(
            "ingested {}: {} lines, {} points, {} problems",
            path.display(),
            r.lines,
            r.points,
            r.errors
        ),
        Err(e) => tracing::warn!("ingest of {} failed: {e}", path.display()),
    }
    job.finish(result.map(|r| serde_json::to_value(r).unwrap_or_default()));
}
