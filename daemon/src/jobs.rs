//! Long operations (ingest of a path, replay) as jobs whose progress labctl and the logs can follow.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One job's state, as `GET /api/v1/jobs/{id}` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobState {
    pub id: u64,
    pub kind: String,
    /// Work done so far, in `unit`s.
    pub done: u64,
    pub total: Option<u64>,
    pub unit: String,
    pub finished: bool,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// A running job; cheap to clone. A `std` mutex: never held across `.await`.
#[derive(Clone)]
pub struct Job {
    state: Arc<Mutex<JobState>>,
}

impl Job {
    pub fn id(&self) -> u64 {
        self.lock().id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_total(&self, total: u64, unit: &str) {
        let mut s = self.lock();
        s.total = Some(total);
        s.unit = unit.to_string();
    }

    pub fn advance(&self, by: u64) {
        self.lock().done += by;
    }

    pub fn finish(&self, result: Result<Value, String>) {
        let mut s = self.lock();
        s.finished = true;
        match result {
            Ok(v) => s.result = Some(v),
            Err(e) => s.error = Some(e),
        }
    }

    pub fn state(&self) -> JobState {
        self.lock().clone()
    }
}

/// All jobs of this daemon's life (the last few hundred are kept). A cheap handle: clones share the table.
#[derive(Clone, Default)]
pub struct Jobs {
    table: Arc<JobTable>,
}

#[derive(Default)]
struct JobTable {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Job>>,
}

impl Jobs {
    pub fn start(&self, kind: &str) -> Job {
        let id = self.table.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Job {
            state: Arc::new(Mutex::new(JobState {
                id,
                kind: kind.into(),
                ..Default::default()
            })),
        };
        let mut jobs = self.table.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.insert(id, job.clone());
        while jobs.len() > 256 {
            jobs.pop_first();
        }
        job
    }

    /// Starts a job of `kind` unless one is running; answers the running one's id otherwise. For jobs that
    /// each hold a copy of large state (a replay builds a second set of views).
    pub fn start_exclusive(&self, kind: &str) -> Result<Job, u64> {
        let running = self
            .table
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Job::state)
            .find(|s| s.kind == kind && !s.finished)
            .map(|s| s.id);
        match running {
            Some(id) => Err(id),
            None => Ok(self.start(kind)),
        }
    }

    pub fn get(&self, id: u64) -> Option<JobState> {
        self.table
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(Job::state)
    }
}
