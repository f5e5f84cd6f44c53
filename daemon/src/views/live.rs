//! The live views: one [`Views`] that every reader shares, applied by the log writer after each commit (the
//! hook [`LiveViews::on_commit`] makes), saved as a checkpoint every so often and at shutdown (the curve store
//! under its own key, less often: it is the larger), and after a start the curve store filled from the log
//! in the background from where its checkpoint left it.

use super::curves::CURVES_KEY;
use super::{CHECKPOINT_KEY, Views};
use labd_log::writer::OnCommit;
use labd_log::{EventLog, LogError, Seq};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A handle to the live views. Cheap to clone. The lock is a `std` lock: never held across `.await`, and a
/// poisoned one still holds consistent data (applying never panics midway).
#[derive(Clone)]
pub struct LiveViews {
    views: Arc<RwLock<Views>>,
    /// The newest sequence number applied (the SSE tail waits on it).
    applied: watch::Receiver<Seq>,
    applied_tx: Arc<watch::Sender<Seq>>,
    /// The chunk file the last saved curve checkpoint names.
    chunks_saved: Arc<Mutex<Option<PathBuf>>>,
}

impl LiveViews {
    pub fn new(views: Views) -> LiveViews {
        let (tx, rx) = watch::channel(views.applied);
        let chunks_saved = Arc::new(Mutex::new(views.curves.store.path()));
        LiveViews {
            chunks_saved,
            views: Arc::new(RwLock::new(views)),
            applied: rx,
            applied_tx: Arc::new(tx),
        }
    }

    /// Read access.
    pub fn read(&self) -> RwLockReadGuard<'_, Views> {
        self.views.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access (applying events, replacing the views after a replay).
    pub fn write(&self) -> RwLockWriteGuard<'_, Views> {
        self.views.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock itself, for those that take it as such (replay).
    pub fn lock(&self) -> &RwLock<Views> {
        &self.views
    }

    /// Follows the newest sequence number applied.
    pub fn applied(&self) -> watch::Receiver<Seq> {
        self.applied.clone()
    }

    /// The writer's hook: applies each committed batch, then announces its last sequence number.
    pub fn on_commit(&self) -> OnCommit {
        let me = self.clone();
        Box::new(move |first, events| {
            let mut v = me.write();
            v.apply_batch(first, events);
            let applied = v.applied;
            drop(v);
            me.applied_tx.send_replace(applied);
        })
    }

    /// Saves the views' checkpoint and the curve store's (blocking).
    pub fn save_checkpoint(&self, log: &EventLog) -> Result<(), LogError> {
        let bytes = self.read().encode_checkpoint()?;
        log.save_checkpoint(CHECKPOINT_KEY, &bytes)?;
        self.save_curves(log)
    }

    /// Saves the curve store (blocking), unless it is off: its chunks written out and synced, then its index
    /// and open tails (naming the chunk file and its length) committed to the log's database. A chunk file
    /// the previous checkpoint named and this one does not (a store replaced by a replay) is removed after.
    pub fn save_curves(&self, log: &EventLog) -> Result<(), LogError> {
        {
            let mut w = self.write();
            if w.curves.off {
                return Ok(());
            }
            let sealed = w.curves.seal_quiet();
            if sealed > 0 {
                tracing::debug!("curve store: {sealed} quiet series' tails sealed");
            }
        }
        let v = self.read();
        let encode = |reason: String| LogError::Encode {
            what: "curve store checkpoint",
            reason,
        };
        let store = v.curves.store.clone();
        let (chunks, file) = store
            .save()
            .map_err(|e| encode(format!("writing the chunk file: {e}")))?;
        let len = v.curves.checkpoint_len(&chunks).map_err(encode)?;
        // Written straight into the database's pages, the views' lock let go before the chunk file is synced
        // and the checkpoint committed (the file first: the checkpoint names only bytes on disk).
        log.save_checkpoint_with(CURVES_KEY, len, move |buf| {
            let written = v.curves.write_checkpoint(&chunks, buf);
            drop(v);
            written?;
            match file {
                Some(f) => f
                    .sync_data()
                    .map_err(|e| format!("syncing the chunk file: {e}")),
                None => Ok(()),
            }
        })?;
        store.mark_saved();
        let path = store.path();
        let mut last = self.chunks_saved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = last.take()
            && Some(&old) != path.as_ref()
        {
            match std::fs::remove_file(&old) {
                Ok(()) => tracing::info!("removed {} (a replaced curve store's)", old.display()),
                Err(e) => tracing::warn!("could not remove {}: {e}", old.display()),
            }
        }
        *last = path;
        Ok(())
    }

    /// Saves the views' checkpoint every `every` while something new was applied, and the curve store's when
    /// it grew by a quarter or ten ticks passed with new points, until the task is dropped.
    pub async fn checkpoint_every(self, log: EventLog, every: Duration) {
        let mut saved = self.read().applied;
        let mut curves_saved = self.read().curves.points;
        let mut ticks_since_curves = 0u32;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (applied, points) = {
                let v = self.read();
                (v.applied, v.curves.points)
            };
            ticks_since_curves += 1;
            if applied == saved {
                continue;
            }
            let curves = points != curves_saved
                && (points >= curves_saved + curves_saved / 4 || ticks_since_curves >= 10);
            let (me, log) = (self.clone(), log.clone());
            let saving = tokio::task::spawn_blocking(move || -> Result<(), LogError> {
                let bytes = me.read().encode_checkpoint()?;
                log.save_checkpoint(CHECKPOINT_KEY, &bytes)?;
                if curves {
                    me.save_curves(&log)?;
                }
                Ok(())
            });
            match saving.await {
                Ok(Ok(())) => {
                    saved = applied;
                    if curves {
                        curves_saved = points;
                        ticks_since_curves = 0;
                    }
                }
                Ok(Err(e)) => tracing::warn!("saving the views' checkpoint failed: {e}"),
                Err(_) => return,
            }
        }
    }

    /// Fills the curve store from the log, in order (blocking; run on a thread of its own). Batches committed
    /// meanwhile are applied by the writer once the store has caught up, or read here from the log.
    pub fn warm_curves(&self, log: &EventLog) {
        let started = Instant::now();
        let mut last_log = Instant::now();
        loop {
            let from = self.read().curves.applied + 1;
            let last = match log.last_seq() {
                Ok(l) => l,
                Err(e) => match retry(e) {
                    true => continue,
                    false => return,
                },
            };
            if from > last {
                break;
            }
            let chunk = match log.read(from, last, 65_536) {
                Ok(c) => c,
                Err(e) => match retry(e) {
                    true => continue,
                    false => return,
                },
            };
            let mut v = self.write();
            for (seq, event) in &chunk {
                v.curves.apply(*seq, event);
            }
            if last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!("curve store warm-up: {}/{last} events", v.curves.applied);
            }
        }
        let v = self.read();
        tracing::info!(
            "curve store ready: {} points ({:.0} MB in memory, {:.0} MB of chunks) in {:.2}s",
            v.curves.points,
            v.curves.bytes() as f64 / 1e6,
            v.curves.stored_bytes() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Whether the warm-up tries again after `e`: the log being reopened after an I/O error is waited out; any
/// other error ends the warm-up.
fn retry(e: LogError) -> bool {
    if e.is_io() {
        tracing::warn!("curve store warm-up: {e}; trying again");
        std::thread::sleep(Duration::from_secs(1));
        true
    } else {
        tracing::error!("curve store warm-up: {e}");
        false
    }
}
