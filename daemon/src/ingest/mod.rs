//! Ingestion, the first stage: discover files under the watched folders, look at each one (new bytes? replaced?
//! truncated?), hand new bytes to its source, and append the events together with the file's new cursor in
//! one batch, so a file's position moves only with the events read from it (exactly-once across crashes).
//!
//! - this module: the [`Ingestor`] (scans, batches to the writer, cursors as sent);
//! - [`discover`]: walking the watched folders, and the files read with a file;
//! - [`stream`]: reading a file that grows, chunk by chunk;
//! - [`whole`]: reading a file that is rewritten whole;
//! - [`pump`]: the ingest thread's loop (watcher triggers, on-demand jobs, rescans) and its mailbox.

mod discover;
pub mod pump;
mod stream;
mod whole;

use crate::ids::Ids;
use crate::jobs::Job;
use labd_log::writer::{Appender, Batch, CursorMove, Pending};
use labd_log::{EventLog, FileCursor, LogError};
use labd_schemas::api::IngestReport;
use labd_schemas::event::{IngestError, Severity};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use labd_sources::Format;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much of a file's head is hashed to notice it being rewritten in place.
const HEAD_BYTES: u64 = 4096;
/// Largest file of a format read whole (`trainer_state.json`, ...).
const WHOLE_FILE_LIMIT: u64 = 256 << 20;
/// Events in flight to the writer (in batches sent, not yet committed) while the next chunk is parsed, beyond
/// two batches of any size.
const IN_FLIGHT_EVENTS: usize = 2 * BATCH_EVENTS;
/// Events gathered (across files) before a batch goes to the writer.
const BATCH_EVENTS: usize = 8 * 1024;
/// A file's own batch of this many events or more goes to the writer as it is, not copied into the open one
/// (an event is a few hundred bytes, and they come by the million; the writer commits what is queued together).
const BIG_BATCH: usize = BATCH_EVENTS / 4;

/// Settings of ingestion.
#[derive(Clone, Debug)]
pub struct Options {
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// A last line without newline is taken once the file has been quiet this long.
    pub settle: Duration,
    /// Bytes read from a file at a time.
    pub chunk: usize,
    /// Artifacts up to this size get their sha256 computed when the line gives none.
    pub hash_limit: u64,
    /// The clock new experiment ids' times are read on (`id_time`).
    pub id_clock: labd_schemas::ids::IdClock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_line: 1 << 20,
            settle: Duration::from_secs(2),
            chunk: 8 << 20,
            hash_limit: 256 << 20,
            id_clock: Default::default(),
        }
    }
}

/// Reads files into the log. Lives on the ingest thread.
pub struct Ingestor {
    log: EventLog,
    appender: Appender,
    ids: Arc<Ids>,
    host: String,
    opts: Options,
    /// Cursors as of the batches sent (committed or in flight).
    cursors: HashMap<String, FileCursor>,
    /// Folders whose files are read as one format (longest match wins), instead of judged by name.
    pub formats: Vec<(PathBuf, Format)>,
    /// State of runs that span files, and the version of each as last sent.
    runs: labd_sources::Runs,
    run_sent: HashMap<String, u64>,
    /// Batches sent and not yet known committed, with their number of events.
    pending: VecDeque<(Pending, usize)>,
    /// The batch being gathered (sent at [`BATCH_EVENTS`] or on flush).
    open: Batch,
    /// Problems already reported by this process (symlink loops, unreadable paths), not to repeat them.
    reported: HashSet<String>,
    buf: Vec<u8>,
    /// Events of committed batches, handed back by the writer (through `spent_to`) to be dropped here.
    spent_to: std::sync::mpsc::Sender<Vec<Event>>,
    spent: std::sync::mpsc::Receiver<Vec<Event>>,
}

impl Ingestor {
    pub fn new(
        log: EventLog,
        appender: Appender,
        ids: Arc<Ids>,
        host: String,
        opts: Options,
    ) -> Result<Self, LogError> {
        let (spent_to, spent) = std::sync::mpsc::channel();
        let mut me = Ingestor {
            log,
            appender,
            ids,
            host,
            opts,
            cursors: HashMap::new(),
            formats: Vec::new(),
            runs: labd_sources::Runs::default(),
            run_sent: HashMap::new(),
            pending: VecDeque::new(),
            open: Batch::default(),
            reported: HashSet::new(),
            buf: Vec::new(),
            spent_to,
            spent,
        };
        me.reload()?;
        Ok(me)
    }

    /// The format a file is read as: its folder's, when one is set (and the file's name fits it), else judged
    /// by its name; `None` for files labd does not read.
    fn format_of(&self, path: &Path) -> Option<Format> {
        match self.forced(path) {
            Some(f) => f.accepts(path).then_some(f),
            None => Format::detect(path),
        }
    }

    /// The format set for the folder holding `path`, if any.
    fn forced(&self, path: &Path) -> Option<Format> {
        self.formats
            .iter()
            .filter(|(root, _)| path.starts_with(root))
            .max_by_key(|(root, _)| root.as_os_str().len())
            .map(|(_, f)| *f)
    }

    /// Reads `root` as `scan` does, with its files read as `format` (a one-off import of an old folder).
    pub fn scan_as(
        &mut self,
        root: &Path,
        format: Format,
        job: Option<&Job>,
    ) -> Result<IngestReport, LogError> {
        self.formats.push((root.to_path_buf(), format));
        let report = self.scan(std::slice::from_ref(&root.to_path_buf()), true, job);
        self.formats.pop();
        report
    }

    /// Takes the stored cursors (files and runs) as the truth again, after a start or a failed batch.
    fn reload(&mut self) -> Result<(), LogError> {
        self.cursors.clear();
        self.runs = labd_sources::Runs::default();
        self.run_sent.clear();
        for (key, cursor) in self.log.cursors()? {
            if key.starts_with(labd_sources::RUN_PREFIX) {
                self.run_sent.insert(key.clone(), cursor.offset);
                self.runs.map.insert(key, cursor);
            } else {
                self.cursors.insert(key, cursor);
            }
        }
        Ok(())
    }

    /// Discovers every file under `roots` and reads what is new. `finished`: the files are complete (take a
    /// last line without newline). Progress goes to `job` and, every few seconds, to the log.
    pub fn scan(
        &mut self,
        roots: &[PathBuf],
        finished: bool,
        job: Option<&Job>,
    ) -> Result<IngestReport, LogError> {
        let mut files = Vec::new();
        for root in roots {
            self.discover(root, &mut files);
        }
        let total: u64 = files
            .iter()
            .map(|(p, _, meta)| {
                let offset = self.cursors.get(&path_key(p)).map_or(0, |c| c.offset);
                meta.len().saturating_sub(offset)
            })
            .sum();
        if let Some(job) = job {
            job.set_total(total, "bytes");
        }
        let mut report = IngestReport::default();
        let started = Instant::now();
        let mut last_log = Instant::now();
        let mut bytes = 0u64;
        for (path, format, meta) in files {
            let before = bytes;
            bytes += self.load_file(&path, format, Some(meta), finished, &mut report)?;
            if let Some(job) = job {
                job.advance(bytes - before);
            }
            if total > 64 << 20 && last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!(
                    "ingest: {:.0}/{:.0} MiB, {} points ({:.0} points/s)",
                    bytes as f64 / 1048576.0,
                    total as f64 / 1048576.0,
                    report.points,
                    report.points as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        self.flush()?;
        Ok(report)
    }

    /// Reads what is new in the given paths (from the watcher): files of a known format, and folders
    /// (walked); paths that vanished are ignored.
    pub fn load_paths(&mut self, paths: &[PathBuf]) -> Result<IngestReport, LogError> {
        let mut report = IngestReport::default();
        let mut seen = HashSet::new();
        for path in paths {
            if !seen.insert(path.clone()) {
                continue;
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {
                    let mut files = Vec::new();
                    self.discover(path, &mut files);
                    for (p, f, meta) in files {
                        self.load_file(&p, f, Some(meta), false, &mut report)?;
                    }
                }
                Ok(m) => {
                    if let Some(format) = self.format_of(path) {
                        self.load_file(path, format, Some(m), false, &mut report)?;
                    }
                }
                Err(_) => {}
            }
        }
        self.flush()?;
        Ok(report)
    }

    /// Waits for every batch sent to be committed. After a failed commit the cursors are reloaded from the
    /// log, so what failed is read again.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let mut failed = self.send_open().err();
        while let Some((p, _)) = self.pending.pop_front() {
            if let Err(e) = wait(p) {
                failed = Some(e);
            }
        }
        self.spent.try_iter().for_each(drop);
        if let Some(e) = failed {
            self.reload()?;
            return Err(e);
        }
        Ok(())
    }

    /// Adds to the open batch, sending it once it is big enough; a big batch goes on its own, uncopied (after
    /// the open one, so that the order of events is kept).
    fn submit(&mut self, mut batch: Batch) -> Result<(), LogError> {
        if batch.events.len() >= BIG_BATCH {
            self.send_open()?;
            return self.hand_on(batch);
        }
        if self.open.events.is_empty() {
            // Room for a whole batch at once, so it is not grown (and copied) file by file.
            self.open.events.reserve(BATCH_EVENTS + batch.events.len());
        }
        self.open.events.append(&mut batch.events);
        self.open.cursors.append(&mut batch.cursors);
        if self.open.events.len() < BATCH_EVENTS {
            return Ok(());
        }
        self.send_open()
    }

    fn send_open(&mut self) -> Result<(), LogError> {
        if self.open.events.is_empty() && self.open.cursors.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.open);
        self.hand_on(batch)
    }

    /// Hands `batch` to the writer, then waits for the oldest batches while more than two are in flight and
    /// they hold more than [`IN_FLIGHT_EVENTS`].
    fn hand_on(&mut self, batch: Batch) -> Result<(), LogError> {
        self.spent.try_iter().for_each(drop);
        let n = batch.events.len();
        self.pending
            .push_back((self.appender.submit_returning(batch, &self.spent_to)?, n));
        while self.pending.len() > 2
            && self.pending.iter().map(|(_, n)| n).sum::<usize>() > IN_FLIGHT_EVENTS
        {
            if let Some(Err(e)) = self.pending.pop_front().map(|(p, _)| wait(p)) {
                self.flush().ok();
                self.reload()?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reports a problem with a path once per process.
    fn problem(&mut self, path: &Path, reason: String, severity: Severity) -> Result<(), LogError> {
        let key = format!("{}\u{0}{reason}", path.display());
        if !self.reported.insert(key) {
            return Ok(());
        }
        tracing::warn!("{}: {reason}", path.display());
        let event = file_problem(&path_key(path), severity, reason);
        self.submit(Batch {
            events: vec![event],
            cursors: vec![],
            positions: Vec::new(),
        })
    }

    /// Runs `format`'s source over `data`, the new bytes of the file at `path` (or all of it, for a format read
    /// whole), with the files read with it.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        path: &Path,
        key: &str,
        format: Format,
        cursor: &mut FileCursor,
        data: &[u8],
        sidecars: &[(String, String)],
        take_unterminated: bool,
        now: i64,
    ) -> labd_sources::Output {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ids = self.ids.clone();
        let mut unique = |id| ids.unique(id);
        let mut ctx = labd_sources::Context {
            path: key,
            default_name: &stem,
            host: &self.host,
            now,
            max_line: self.opts.max_line,
            take_unterminated,
            ids: &mut unique,
            id_clock: self.opts.id_clock,
            runs: &mut self.runs,
            sidecars,
        };
        labd_sources::read(format, cursor, data, &mut ctx)
    }

    /// Stores `cursor` for `key` with `events`, expecting the stored position to be `prior`, which then
    /// becomes the cursor's offset.
    fn send(
        &mut self,
        key: &str,
        prior: &mut Option<u64>,
        cursor: &FileCursor,
        events: Vec<Event>,
    ) -> Result<(), LogError> {
        self.cursors.insert(key.to_string(), cursor.clone());
        let expected = prior.replace(cursor.offset);
        let mut moves = vec![CursorMove {
            path: key.to_string(),
            expected,
            cursor: cursor.clone(),
        }];
        // Runs the source changed move with the file: their offset counts their versions.
        for run in std::mem::take(&mut self.runs.touched) {
            let Some(state) = self.runs.map.get_mut(&run) else {
                continue;
            };
            let expected = self.run_sent.get(&run).copied();
            state.offset = expected.map_or(1, |v| v + 1);
            self.run_sent.insert(run.clone(), state.offset);
            moves.push(CursorMove {
                path: run,
                expected,
                cursor: state.clone(),
            });
        }
        self.submit(Batch {
            events,
            cursors: moves,
            positions: Vec::new(),
        })
    }
}

fn file_problem(path: &str, severity: Severity, reason: String) -> Event {
    Event::new(
        now_micros(),
        Source::File {
            path: path.to_string(),
            first_line: 0,
            last_line: 0,
        },
        EventKind::IngestError(IngestError {
            path: path.to_string(),
            line: None,
            severity,
            reason,
            held: None,
        }),
    )
}

fn wait(p: Pending) -> Result<(), LogError> {
    p.blocking_recv().map_err(|_| LogError::WriterGone)??;
    Ok(())
}

/// The key of a file: its path as text.
pub fn path_key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
