//! How the answers reach the workers without knowing them: each worker's requests, their replies, and a cheap
//! handle that sends them. A worker owns the receiving end and takes narrow handles of its own; the state the
//! HTTP handlers share holds only these senders. (The ingest thread's mailbox lives with ingestion, the first
//! stage, below this: [`crate::ingest::pump::IngestMsg`].)

use labd_log::LogError;
use labd_schemas::cmr::BenchConfig;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};

/// Requests to the sweep scheduler.
pub enum SweepRequest {
    /// Something changed (a sweep submitted or resumed): look again.
    Wake,
    /// Stop a sweep's running trials; the reply is how many were running.
    Cancel(String, oneshot::Sender<usize>),
}

/// The sweep scheduler's mailbox.
#[derive(Clone)]
pub struct Sweeps {
    tx: mpsc::UnboundedSender<SweepRequest>,
    /// What `parallel: auto` allows each sweep, as the scheduler last computed it (shown by `sweep show`).
    pub budgets: Budgets,
}

/// Sweep id → what `parallel: auto` allows it now.
#[derive(Clone, Default)]
pub struct Budgets(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, labd_schemas::sweep::ParallelBudget>>,
    >,
);

impl Budgets {
    pub fn set(&self, sweep: &str, budget: labd_schemas::sweep::ParallelBudget) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(sweep) != Some(&budget) {
            m.insert(sweep.to_string(), budget);
        }
    }

    pub fn get(&self, sweep: &str) -> Option<labd_schemas::sweep::ParallelBudget> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sweep)
            .cloned()
    }
}

impl Sweeps {
    /// A mailbox and the receiving end the scheduler takes.
    pub fn new() -> (Sweeps, mpsc::UnboundedReceiver<SweepRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Sweeps {
                tx,
                budgets: Budgets::default(),
            },
            rx,
        )
    }

    pub fn wake(&self) {
        let _ = self.tx.send(SweepRequest::Wake);
    }

    /// Stops a sweep's running trials; answers how many were running.
    pub async fn cancel(&self, sweep: &str) -> usize {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(SweepRequest::Cancel(sweep.to_string(), tx))
            .is_err()
        {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

/// What to do when there is no benchmark runner.
pub const HOW_TO_ENABLE: &str = "CMR benchmarks need the labd-cmr runner, which is built only with the `torch` \
feature: `export LIBTORCH=$(scripts/libtorch.sh) && cargo build --release -p labd-cmr --features torch`, then put \
target/release/labd-cmr beside labd or name it with --cmr-runner (LABD_CMR_RUNNER, or cmr_runner in the config \
file). Results measured elsewhere can still be dropped into a watched folder as benchmark lines \
(schemas/BENCHMARKS.md).";

/// Why a benchmark did not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{HOW_TO_ENABLE} (looked for {0})")]
    NoRunner(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {runner}: {source}")]
    Spawn {
        runner: String,
        source: std::io::Error,
    },
    #[error("benchmark {0} is running; wait for it to end or cancel it (labctl bench cancel {0})")]
    Busy(String),
    #[error("recording the benchmark: {0}")]
    Log(#[from] LogError),
    #[error("the benchmark runner has stopped (labd is stopping)")]
    Gone,
}

/// A started benchmark.
pub struct Started {
    pub bench: String,
    pub job: u64,
    pub planned: u64,
    pub dir: PathBuf,
}

/// Requests to the benchmark runner.
pub enum BenchRequest {
    /// Start a benchmark of this configuration.
    Start(
        Box<BenchConfig>,
        oneshot::Sender<Result<Started, BenchError>>,
    ),
    /// Ask a running benchmark to stop; the reply says whether this labd runs it.
    Cancel(String, oneshot::Sender<bool>),
}

/// The benchmark runner's mailbox.
#[derive(Clone)]
pub struct Benchmarks {
    tx: mpsc::UnboundedSender<BenchRequest>,
}

impl Benchmarks {
    /// A mailbox and the receiving end the runner takes.
    pub fn new() -> (Benchmarks, mpsc::UnboundedReceiver<BenchRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Benchmarks { tx }, rx)
    }

    /// Starts a benchmark (one at a time: a second is refused as busy).
    pub async fn start(&self, config: BenchConfig) -> Result<Started, BenchError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(BenchRequest::Start(Box::new(config), tx))
            .map_err(|_| BenchError::Gone)?;
        rx.await.map_err(|_| BenchError::Gone)?
    }

    /// Asks a running benchmark to stop; false when this labd is not running it.
    pub async fn cancel(&self, bench: &str) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(BenchRequest::Cancel(bench.to_string(), tx))
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// Where the federation's publisher stores how far this log is published (a position of the event log).
pub const PUBLISHED: &str = "federation/published";
/// Prefix of where a hub stores how far each host's log is applied here: `hub/<host>`.
pub const HUB_PREFIX: &str = "hub/";

/// What the federation's worker reports of its link to NATS and what it has received; `/health` adds the
/// publish lag, read from the log.
#[derive(Clone, Default)]
pub struct Federation(std::sync::Arc<std::sync::Mutex<labd_schemas::api::FederationHealth>>);

impl Federation {
    pub fn new(health: labd_schemas::api::FederationHealth) -> Self {
        Federation(std::sync::Arc::new(std::sync::Mutex::new(health)))
    }

    pub fn update(&self, f: impl FnOnce(&mut labd_schemas::api::FederationHealth)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The worker's report, with the publish lag and the hub's positions as the log has them now.
    pub fn health(
        &self,
        log: &labd_log::EventLog,
        now_micros: i64,
    ) -> Result<labd_schemas::api::FederationHealth, LogError> {
        let mut h = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(p) = &mut h.publish {
            p.log_seq = log.last_seq()?;
            p.published = log.position(PUBLISHED)?.unwrap_or(0);
            p.lag_events = p.log_seq.saturating_sub(p.published);
            p.lag_s = if p.lag_events > 0 {
                log.read(p.published + 1, p.published + 1, 1)?
                    .first()
                    .map_or(0.0, |(_, e)| (now_micros - e.time).max(0) as f64 / 1e6)
            } else {
                0.0
            };
        }
        if let Some(hub) = &mut h.hub {
            hub.hosts = log
                .positions(HUB_PREFIX)?
                .into_iter()
                .map(|(k, v)| (k[HUB_PREFIX.len()..].to_string(), v))
                .collect();
        }
        Ok(h)
    }
}
