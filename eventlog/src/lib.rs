//! The event log on redb: the truth of labd. Events are appended in blocks under increasing sequence numbers
//! and never updated or deleted. Beside them, in the same database and the same transactions: the read
//! position of every ingested file (so ingestion is exactly-once) and the views' checkpoints.
//!
//! This crate knows no input format and no view: it stores the events and the [`FileCursor`]s that the sources
//! make, as they are handed to it. [`writer`] is the single writer (group commit);
//! [`block`] is the stored encoding of a block of events.

pub mod block;
pub mod codec;
mod columns;
pub mod shipment;
pub mod writer;

use labd_schemas::Event;
pub use labd_sources::FileCursor;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Block of events: key = sequence number of the block's first event.
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `next_seq` and other counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// File path → [`FileCursor`] (msgpack).
pub(crate) const CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("file_cursors");
/// View name → checkpoint (msgpack, the view's own format).
pub(crate) const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// Where a source that is not a file stands (a sequence number of its own), moved in the same transactions as
/// the events read from it: how far this log is published to a federation, how far each host's events are
/// applied on a hub.
pub(crate) const POSITIONS: TableDefinition<&str, u64> = TableDefinition::new("positions");

/// redb's page cache.
const CACHE_BYTES: usize = 32 << 20;
/// Scans of at least this many events decode ahead on other threads ([`DECODERS`] of them).
const DECODE_AHEAD_FROM: u64 = 50_000;
const DECODERS: usize = 2;

/// Which stored blocks a decoding pass takes: every `of`th, from the `k`th.
#[derive(Clone, Copy)]
struct Share {
    k: usize,
    of: usize,
}

impl Share {
    const ALL: Share = Share { k: 0, of: 1 };
}

/// A sequence number: the position of an event in the log, from 1.
pub type Seq = u64;

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log {path}: {source}")]
    Open { path: PathBuf, source: redb::Error },
    #[error(
        "event log {path} is in use by another process (a running labd?); stop it first or use its HTTP API"
    )]
    Locked { path: PathBuf },
    #[error("event log storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("event block at seq {seq} does not decode: {reason}")]
    Corrupt { seq: Seq, reason: String },
    #[error("could not encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("writing to the event log failed: {0}")]
    WriteFailed(String),
    #[error("the log writer has stopped")]
    WriterGone,
    /// Refused before writing anything: the file system is nearly full.
    #[error("{0}")]
    DiskFull(String),
    /// A write failed with an I/O error (it crosses the writer's channel as text).
    #[error("{0}")]
    IoFailed(String),
    /// The database is closed after an I/O error and not open again yet.
    #[error("event log {path} is being reopened after an I/O error")]
    Reopening { path: PathBuf },
}

impl LogError {
    /// Whether this is a failed read or write of the database file, after which redb refuses every later
    /// operation until the database is closed and opened again.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            LogError::Storage(
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
            ) | LogError::Reopening { .. }
                | LogError::IoFailed(_)
        )
    }
}

/// How a refusal for lack of space begins.
pub const DISK_FULL: &str = "disk full";

/// How a write that failed with an I/O error is reported.
pub const IO_FAILED: &str = "event log I/O error";

/// The room kept free on the log's file system by default: intake pauses below it, before redb could hit a
/// failed write (after which the database must be reopened).
pub const DEFAULT_MIN_FREE: u64 = 64 << 20;

fn storage<E: Into<redb::Error>>(e: E) -> LogError {
    LogError::Storage(e.into())
}

/// The event log: a redb database. Cheap to clone; reads may run on any thread, writes go through the
/// [`writer::Writer`].
#[derive(Clone)]
pub struct EventLog {
    /// The open database; `None` while it is reopened after an I/O error. Readers clone the `Arc` for one
    /// call, so a reopen waits for them only briefly.
    db: Arc<RwLock<Option<Arc<Database>>>>,
    path: PathBuf,
    health: Arc<Health>,
}

/// The log's space reserve and its last write problem, shared by every clone.
#[derive(Debug)]
struct Health {
    min_free: AtomicU64,
    problem: Mutex<Option<String>>,
    /// Held while reopening, so two threads never race to open the file.
    reopening: Mutex<()>,
    /// An operation failed with an I/O error: the writer reopens the database.
    failed: std::sync::atomic::AtomicBool,
    /// Bumped by each reopen: an error from a read begun on an earlier database says nothing of this one.
    generation: AtomicU64,
}

/// How long a reopen waits for reads in flight to let go of the failed database.
const REOPEN_WAIT: Duration = Duration::from_secs(10);

impl EventLog {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let db = open_db(path)?;
        Ok(EventLog {
            db: Arc::new(RwLock::new(Some(Arc::new(db)))),
            path: path.to_path_buf(),
            health: Arc::new(Health {
                min_free: AtomicU64::new(DEFAULT_MIN_FREE),
                problem: Mutex::new(None),
                reopening: Mutex::new(()),
                failed: std::sync::atomic::AtomicBool::new(false),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// The open database, or why there is none.
    pub(crate) fn db(&self) -> Result<Arc<Database>, LogError> {
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(|| LogError::Reopening {
            path: self.path.clone(),
        })
    }

    /// Whether the database must be reopened: it is closed, or an operation failed with an I/O error.
    pub fn needs_reopen(&self) -> bool {
        self.health.failed.load(Ordering::Relaxed)
            || self.db.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Passes `e`, from an operation begun on database `generation`, on; a failed read or write of the
    /// current database is noted for the writer to reopen it. (Reads cut off by a reopen fail with
    /// `DatabaseClosed` or `Reopening`: those say nothing of the new database.)
    pub(crate) fn noted(&self, generation: u64, e: LogError) -> LogError {
        let failed_io = matches!(
            e,
            LogError::Storage(redb::Error::Io(_) | redb::Error::PreviousIo)
        );
        if failed_io && generation == self.health.generation.load(Ordering::Relaxed) {
            self.flag_failed();
        }
        e
    }

    /// Notes that the database must be reopened.
    pub(crate) fn flag_failed(&self) {
        self.health.failed.store(true, Ordering::Relaxed);
    }

    /// The current database's generation (see [`EventLog::noted`]).
    pub(crate) fn generation(&self) -> u64 {
        self.health.generation.load(Ordering::Relaxed)
    }

    /// Closes the database after an I/O error and opens it again: redb then refuses every operation until
    /// it is reopened, and reopening rolls back to the last durable commit (its repair). Waits for the
    /// reads in flight to let go of the old database; on failure the log stays closed (reads and writes
    /// answer [`LogError::Reopening`]) and the caller tries again later.
    pub fn reopen(&self) -> Result<(), LogError> {
        let _one = self
            .health
            .reopening
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let old = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            let deadline = Instant::now() + REOPEN_WAIT;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Dropping the last handle closes the file (and releases its lock); if a read still holds
            // it, the open below fails as "already open" and the next attempt succeeds.
            drop(old);
        }
        let db = open_db(&self.path)?;
        self.health.generation.fetch_add(1, Ordering::Relaxed);
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        self.health.failed.store(false, Ordering::Relaxed);
        tracing::warn!(
            "event log {} reopened after an I/O error",
            self.path.display()
        );
        Ok(())
    }

    /// Sets the free space writes keep on the log's file system (0: none).
    pub fn set_min_free(&self, bytes: u64) {
        self.health.min_free.store(bytes, Ordering::Relaxed);
    }

    /// Refuses a write when the file system holding the log has less than the reserve free.
    pub fn check_space(&self) -> Result<(), LogError> {
        let min = self.health.min_free.load(Ordering::Relaxed);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match free_bytes(dir) {
            Some(free) if min > 0 && free < min => Err(LogError::DiskFull(format!(
                "{DISK_FULL}: {} MiB free on the file system of {}, below the reserve of {} MiB \
                 (LABD_MIN_FREE_BYTES); intake is paused until space is freed, nothing committed is affected",
                free >> 20,
                dir.display(),
                min >> 20
            ))),
            _ => Ok(()),
        }
    }

    /// The last write's problem, while it lasts (cleared by the next successful write).
    pub fn problem(&self) -> Option<String> {
        self.health
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records how a write went.
    pub(crate) fn note_write(&self, problem: Option<String>) {
        let mut slot = self
            .health
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match (&*slot, &problem) {
            (None, Some(p)) => tracing::error!("event log: {p}"),
            (Some(_), None) => tracing::info!("event log: writes succeed again; intake resumes"),
            _ => {}
        }
        *slot = problem;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sequence number of the newest event; 0 when the log is empty.
    pub fn last_seq(&self) -> Result<Seq, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta
            .get("next_seq")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(1)
            - 1)
    }

    /// Calls `f(seq, event)` for every event with `from <= seq <= to`, in order, stopping early when `f`
    /// returns false. Reads one consistent snapshot.
    pub fn scan(
        &self,
        from: Seq,
        to: Seq,
        f: impl FnMut(Seq, Event) -> bool,
    ) -> Result<(), LogError> {
        let generation = self.generation();
        self.scan_inner(from, to, f)
            .map_err(|e| self.noted(generation, e))
    }

    fn scan_inner(
        &self,
        from: Seq,
        to: Seq,
        mut f: impl FnMut(Seq, Event) -> bool,
    ) -> Result<(), LogError> {
        self.blocks_inner(from, to, |first, events| {
            for (i, event) in events.drain(..).enumerate() {
                if !f(first + i as u64, event) {
                    return false;
                }
            }
            true
        })
    }

    /// Events `from..=to` a stored block at a time: `f` gets the first one's sequence number and the events
    /// (only those in the range), and answers whether to go on.
    pub fn scan_blocks(
        &self,
        from: Seq,
        to: Seq,
        mut f: impl FnMut(Seq, &[Event]) -> bool,
    ) -> Result<(), LogError> {
        let generation = self.generation();
        self.blocks_inner(from, to, |first, events| f(first, events))
            .map_err(|e| self.noted(generation, e))
    }

    fn blocks_inner(
        &self,
        from: Seq,
        to: Seq,
        mut f: impl FnMut(Seq, &mut Vec<Event>) -> bool,
    ) -> Result<(), LogError> {
        if from > to {
            return Ok(());
        }
        // A range open at the end (`to` = Seq::MAX, as a tail reads) is as long as what is there.
        let to = if to - from < DECODE_AHEAD_FROM {
            to
        } else {
            to.min(self.last_seq()?)
        };
        if from > to {
            return Ok(());
        }
        if to - from < DECODE_AHEAD_FROM {
            return self.decode_blocks(from, to, Share::ALL, |first, mut events| {
                f(first, &mut events)
            });
        }
        // A long scan (replay, catching up, export): blocks are decoded ahead on two threads, each taking every
        // other block (by its place from the first: the log only grows, and every block up to `to` is in both
        // threads' snapshots), while `f` takes them in order here. The events go back to the thread that made them to
        // be dropped: memory is freed fastest by the thread that allocated it.
        type Decoded = Result<(Seq, Vec<Event>), LogError>;
        std::thread::scope(|scope| {
            let mut decoded = Vec::new();
            let mut done = Vec::new();
            for k in 0..DECODERS {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(2);
                let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<Event>>();
                let share = Share { k, of: DECODERS };
                let spawned = std::thread::Builder::new()
                    .name(format!("labd-log-decode-{k}"))
                    .spawn_scoped(scope, move || {
                        let sent = self.decode_blocks(from, to, share, |first, events| {
                            done_rx.try_iter().for_each(drop);
                            tx.send(Ok((first, events))).is_ok()
                        });
                        if let Err(e) = sent {
                            let _ = tx.send(Err(e));
                        }
                        done_rx.try_iter().for_each(drop);
                    });
                if spawned.is_err() {
                    // No thread to be had: the ones started stop at their next block; decode here.
                    drop(decoded);
                    return self.decode_blocks(from, to, Share::ALL, |first, mut events| {
                        f(first, &mut events)
                    });
                }
                decoded.push(rx);
                done.push(done_tx);
            }
            // Block i comes from decoder i mod DECODERS; when that one has no more, there are no more.
            for k in (0..DECODERS).cycle() {
                let Ok(item) = decoded[k].recv() else {
                    break;
                };
                let (first, mut events) = item?;
                let go_on = events.is_empty() || f(first, &mut events);
                let _ = done[k].send(events);
                if !go_on {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Decodes the blocks holding `from..=to` (those of `share`), handing each one's events in the range to `f`
    /// until it answers false.
    fn decode_blocks(
        &self,
        from: Seq,
        to: Seq,
        share: Share,
        mut f: impl FnMut(Seq, Vec<Event>) -> bool,
    ) -> Result<(), LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        // The block holding `from` starts at or before it.
        let start = match events.range(..=from).map_err(storage)?.next_back() {
            Some(entry) => entry.map_err(storage)?.0.value(),
            None => from,
        };
        for (i, entry) in events.range(start..=to).map_err(storage)?.enumerate() {
            if i % share.of != share.k {
                continue;
            }
            let (key, value) = entry.map_err(storage)?;
            let first = key.value();
            let mut decoded = block::decode(value.value())
                .map_err(|reason| LogError::Corrupt { seq: first, reason })?;
            // The block's last event, and whether it runs past `to`.
            let last = (first + decoded.len() as u64).saturating_sub(1);
            let past = last > to;
            if past {
                decoded.truncate((to - first) as usize + 1);
            }
            let skip = from.saturating_sub(first).min(decoded.len() as u64) as usize;
            if skip > 0 {
                decoded.drain(..skip);
            }
            // Shared out, every block is handed on (empty too), so the reader can take the shares in turn.
            if decoded.is_empty() && share.of == 1 {
                continue;
            }
            if !f(first + skip as u64, decoded) || past {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Events `from..=to`, at most `limit` of them.
    pub fn read(&self, from: Seq, to: Seq, limit: usize) -> Result<Vec<(Seq, Event)>, LogError> {
        let mut out = Vec::new();
        self.scan(from, to, |seq, e| {
            out.push((seq, e));
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Every file cursor.
    pub fn cursors(&self) -> Result<Vec<(String, FileCursor)>, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let table = txn.open_table(CURSORS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let cursor: FileCursor =
                rmp_serde::from_slice(v.value()).map_err(|e| LogError::Corrupt {
                    seq: 0,
                    reason: format!("cursor of {}: {e}", k.value()),
                })?;
            out.push((k.value().to_string(), cursor));
        }
        Ok(out)
    }

    /// A source's stored position (see [`writer::PositionMove`]), if one was stored.
    pub fn position(&self, key: &str) -> Result<Option<u64>, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let table = txn.open_table(POSITIONS).map_err(storage)?;
        Ok(table.get(key).map_err(storage)?.map(|v| v.value()))
    }

    /// Every stored position whose key starts with `prefix`.
    pub fn positions(&self, prefix: &str) -> Result<Vec<(String, u64)>, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let table = txn.open_table(POSITIONS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// The stored blocks from the one holding `from`, at most `max` of them, as they are stored (see
    /// [`block`]): what a federation publishes without decoding them.
    pub fn raw_blocks(&self, from: Seq, max: usize) -> Result<Vec<RawBlock>, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let end = txn
            .open_table(META)
            .map_err(storage)?
            .get("next_seq")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(1);
        let start = match events.range(..=from).map_err(storage)?.next_back() {
            Some(entry) => entry.map_err(storage)?.0.value(),
            None => from,
        };
        let mut out: Vec<RawBlock> = Vec::new();
        for entry in events.range(start..).map_err(storage)? {
            let (key, value) = entry.map_err(storage)?;
            let first = key.value();
            if let Some(prev) = out.last_mut() {
                prev.last = first - 1;
            }
            if out.len() == max {
                break;
            }
            out.push(RawBlock {
                first,
                last: end - 1,
                bytes: value.value().to_vec(),
            });
        }
        out.retain(|b| b.last >= from);
        Ok(out)
    }

    /// A view's checkpoint, if one was saved.
    pub fn checkpoint(&self, view: &str) -> Result<Option<Vec<u8>>, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let table = txn.open_table(CHECKPOINTS).map_err(storage)?;
        Ok(table
            .get(view)
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }

    /// Saves a view's checkpoint (its own transaction; the view says in its bytes up to which seq it holds).
    pub fn save_checkpoint(&self, view: &str, bytes: &[u8]) -> Result<(), LogError> {
        self.check_space()?;
        let write = || -> Result<(), LogError> {
            let txn = self.db()?.begin_write().map_err(storage)?;
            {
                let mut table = txn.open_table(CHECKPOINTS).map_err(storage)?;
                table.insert(view, bytes).map_err(storage)?;
            }
            txn.commit().map_err(storage)
        };
        let generation = self.generation();
        write().map_err(|e| self.noted(generation, e))
    }

    /// Saves a checkpoint of `len` bytes that `fill` writes in place, in redb's own pages: a large checkpoint
    /// is not also held whole in memory beside them. If `fill` fails, nothing is saved.
    pub fn save_checkpoint_with(
        &self,
        view: &str,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
    ) -> Result<(), LogError> {
        self.check_space()?;
        let write = || -> Result<(), LogError> {
            let txn = self.db()?.begin_write().map_err(storage)?;
            {
                let mut table = txn.open_table(CHECKPOINTS).map_err(storage)?;
                let mut value = table.insert_reserve(view, len).map_err(storage)?;
                fill(value.as_mut()).map_err(|reason| LogError::Encode {
                    what: "checkpoint",
                    reason,
                })?;
            }
            txn.commit().map_err(storage)
        };
        let generation = self.generation();
        write().map_err(|e| self.noted(generation, e))
    }

    /// Bytes of the stored event blocks (what the events take, without redb's free and spare pages).
    pub fn stored_event_bytes(&self) -> Result<u64, LogError> {
        let txn = self.db()?.begin_read().map_err(storage)?;
        let events = txn.open_table(EVENTS).map_err(storage)?;
        let mut total = 0;
        for entry in events.iter().map_err(storage)? {
            total += entry.map_err(storage)?.1.value().len() as u64;
        }
        Ok(total)
    }

    /// Bytes the database file takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

/// A stored block of events `first..=last`, in its stored form.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBlock {
    pub first: Seq,
    pub last: Seq,
    pub bytes: Vec<u8>,
}

/// Opens (or creates) the database at `path` with its tables.
fn open_db(path: &Path) -> Result<Database, LogError> {
    // redb caches 1 GiB by default; views and checkpoints hold what labd reads often, so a small cache
    // keeps the daemon's memory low at no measurable cost to ingestion.
    let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(LogError::Locked {
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(LogError::Open {
                path: path.to_path_buf(),
                source: e.into(),
            });
        }
    };
    let txn = db.begin_write().map_err(storage)?;
    {
        txn.open_table(EVENTS).map_err(storage)?;
        txn.open_table(META).map_err(storage)?;
        txn.open_table(CURSORS).map_err(storage)?;
        txn.open_table(CHECKPOINTS).map_err(storage)?;
        txn.open_table(POSITIONS).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(db)
}

/// Bytes available to an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: all-zero is a valid `statvfs`, filled in by the call below.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid place for the answer.
    let ok = unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0;
    ok.then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use labd_schemas::event::{EventKind, MessageLogged};
    use labd_schemas::{ExperimentId, Source};

    /// A message event for tests.
    pub fn message(exp: &str, text: &str) -> Event {
        Event::new(
            1,
            Source::Daemon,
            EventKind::MessageLogged(MessageLogged {
                exp: ExperimentId(exp.into()),
                level: "info".into(),
                text: text.into(),
                extra: Default::default(),
            }),
        )
    }
}
