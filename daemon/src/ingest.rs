//! The ingest loop's work: discover files under the watched folders, look at each one (new bytes? replaced?
//! truncated?), hand new bytes to its source, and append the events together with the file's new cursor in
//! one batch, so a file's position moves only with the events read from it (exactly-once across crashes).

use crate::ids::Ids;
use crate::jobs::Job;
use labd_log::writer::{Appender, Batch, CursorMove, Pending};
use labd_log::{EventLog, FileCursor, LogError};
use labd_schemas::api::IngestReport;
use labd_schemas::event::{FileIngested, IngestError, Severity};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use labd_sources::{Context, Format};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The files read with `path` (see [`Format::sidecars`]): name → content; missing ones are left out.
fn sidecars(format: Format, path: &Path) -> Vec<(String, String)> {
    if format == Format::ExpManager {
        return experiment_folders(path);
    }
    if format == Format::TensorBoard {
        // The names of the folder's event files (the run is known by the first).
        let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
            return Vec::new();
        };
        return entries
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                labd_sources::tensorboard::is_event_file(&n)
                    .then(|| (format!("tfevents:{n}"), String::new()))
            })
            .collect();
    }
    let base = match format {
        Format::MlflowMetric | Format::MlflowRun => labd_sources::mlflow::run_dir(path),
        _ => path.parent().map(Path::to_path_buf),
    };
    let Some(base) = base else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in format.sidecars() {
        if let Some(folder) = name.strip_suffix('/') {
            let Ok(entries) = std::fs::read_dir(base.join(folder)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.into_iter().filter(|f| f.is_file()) {
                if let (Some(n), Ok(text)) = (f.file_name(), std::fs::read_to_string(&f)) {
                    out.push((format!("{name}{}", n.to_string_lossy()), text));
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(base.join(name)) {
            out.push((name.to_string(), text));
        }
    }
    out
}

/// The experiment manager's folders beside its registry: each one's known files, and its checkpoints' names
/// (as `<folder>/checkpoints/<name>` with no content).
fn experiment_folders(registry: &Path) -> Vec<(String, String)> {
    let Some(base) = registry.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut folders: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for dir in folders {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in labd_sources::expmgr::FILES {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                out.push((format!("{name}/{file}"), text));
            }
        }
        if let Ok(ckpts) = std::fs::read_dir(dir.join("checkpoints")) {
            let mut names: Vec<String> = ckpts
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            out.extend(
                names
                    .into_iter()
                    .map(|c| (format!("{name}/checkpoints/{c}"), String::new())),
            );
        }
    }
    out
}

/// How much of a file's head is hashed to notice it being rewritten in place.
const HEAD_BYTES: u64 = 4096;
/// Largest file of a format read whole (`trainer_state.json`, ...).
const WHOLE_FILE_LIMIT: u64 = 256 << 20;
/// Batches in flight to the writer while the next chunk is parsed.
const IN_FLIGHT: usize = 2;
/// Events gathered (across files) before a batch goes to the writer.
const BATCH_EVENTS: usize = 8 * 1024;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_line: 1 << 20,
            settle: Duration::from_secs(2),
            chunk: 8 << 20,
            hash_limit: 256 << 20,
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
    pending: VecDeque<Pending>,
    /// The batch being gathered (sent at [`BATCH_EVENTS`] or on flush).
    open: Batch,
    /// Problems already reported by this process (symlink loops, unreadable paths), not to repeat them.
    reported: HashSet<String>,
    buf: Vec<u8>,
}

impl Ingestor {
    pub fn new(
        log: EventLog,
        appender: Appender,
        ids: Arc<Ids>,
        host: String,
        opts: Options,
    ) -> Result<Self, LogError> {
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
        while let Some(p) = self.pending.pop_front() {
            if let Err(e) = wait(p) {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            self.reload()?;
            return Err(e);
        }
        Ok(())
    }

    /// Adds to the open batch; sends it once it is big enough.
    fn submit(&mut self, mut batch: Batch) -> Result<(), LogError> {
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
        self.pending.push_back(self.appender.submit(batch)?);
        while self.pending.len() > IN_FLIGHT {
            if let Some(Err(e)) = self.pending.pop_front().map(wait) {
                self.flush().ok();
                self.reload()?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Where a file seen for the first time was renamed from, if it was: the key of a vanished file's
    /// cursor with the same device, inode and first bytes.
    fn renamed_from(&self, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let (dev, ino) = (meta.dev(), meta.ino());
        let (old, cursor) = self.cursors.iter().find(|(k, c)| {
            c.inode == ino && c.dev == dev && c.dead.is_none() && !Path::new(k.as_str()).exists()
        })?;
        let mut head = vec![0u8; cursor.head_len as usize];
        let same = File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|_| head_hash(&head) == cursor.head_hash);
        (same && meta.len() >= cursor.offset).then(|| old.clone())
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
        })
    }

    /// Walks `root` (following symlinks, noticing loops) and collects files of known formats with their
    /// metadata; only folders, symlinks and files of a known format are stat'ed.
    fn discover(&mut self, root: &Path, out: &mut Vec<(PathBuf, Format, std::fs::Metadata)>) {
        if let Ok(m) = std::fs::metadata(root)
            && m.is_file()
        {
            match self.format_of(root) {
                Some(f) => out.push((root.to_path_buf(), f, m)),
                None => {
                    let reason =
                        "not a file labd reads (run logs end in .jsonl or .ndjson)".to_string();
                    let _ = self.problem(root, reason, Severity::Warning);
                }
            }
            return;
        }
        let mut visited = HashSet::new();
        let mut stack = vec![root.to_path_buf()];
        let mut problems = Vec::new();
        while let Some(dir) = stack.pop() {
            let meta = match std::fs::metadata(&dir) {
                Ok(m) => m,
                Err(e) => {
                    if dir != root || root.exists() {
                        problems.push((dir.clone(), format!("cannot read folder: {e}")));
                    }
                    continue;
                }
            };
            if !visited.insert((meta.dev(), meta.ino())) {
                problems.push((
                    dir.clone(),
                    "symlink loop: this folder was already visited; not followed".into(),
                ));
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    problems.push((dir.clone(), format!("cannot list folder: {e}")));
                    continue;
                }
            };
            let mut children: Vec<(PathBuf, Option<std::fs::FileType>)> = entries
                .filter_map(|e| e.ok().map(|e| (e.path(), e.file_type().ok())))
                .collect();
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (path, file_type) in children.into_iter().rev() {
                let format = self.format_of(&path);
                if file_type.is_some_and(|t| t.is_file()) && format.is_none() {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => stack.push(path),
                    Ok(m) if m.is_file() => {
                        if let Some(f) = format {
                            out.push((path, f, m));
                        }
                    }
                    Ok(m) => {
                        // FIFOs, sockets and devices: opening one could block the intake forever.
                        if format.is_some() {
                            let kind = file_kind(&m);
                            problems.push((path, format!("{kind}, not a regular file; not read")));
                        }
                    }
                    Err(e) => {
                        if format.is_some() {
                            problems.push((path, format!("cannot read: {e}")));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, reason) in problems {
            let _ = self.problem(&path, reason, Severity::Warning);
        }
    }

    /// Reads what is new in one file; returns the bytes consumed.
    fn load_file(
        &mut self,
        path: &Path,
        format: Format,
        meta: Option<std::fs::Metadata>,
        finished: bool,
        report: &mut IngestReport,
    ) -> Result<u64, LogError> {
        let key = path_key(path);
        let meta = match meta.map_or_else(|| std::fs::metadata(path), Ok) {
            Ok(m) => m,
            Err(e) => {
                self.problem(path, format!("cannot read: {e}"), Severity::Warning)?;
                return Ok(0);
            }
        };
        if format.whole_file() {
            return self.load_whole(path, &key, format, &meta, finished, report);
        }
        // A file renamed within the watched folders continues where its old name left off.
        if !self.cursors.contains_key(&key)
            && let Some(old) = self.renamed_from(path, &meta)
            && let Some(cursor) = self.cursors.get(&old).cloned()
        {
            let reason = format!(
                "renamed from {old}; continuing at byte {} (nothing is read twice)",
                cursor.offset
            );
            tracing::info!("{key}: {reason}");
            let mut gone = cursor.clone();
            gone.dead = Some(format!("renamed to {key}"));
            self.cursors.insert(old.clone(), gone.clone());
            self.cursors.insert(key.clone(), cursor.clone());
            self.submit(Batch {
                events: vec![file_problem(&key, Severity::Warning, reason)],
                cursors: vec![
                    CursorMove {
                        path: old,
                        expected: Some(cursor.offset),
                        cursor: gone,
                    },
                    CursorMove {
                        path: key.clone(),
                        expected: None,
                        cursor,
                    },
                ],
            })?;
        }
        // The stored read position every batch of this file must start from, in order.
        let mut prior = self.cursors.get(&key).map(|c| c.offset);
        let mut cursor = self
            .cursors
            .get(&key)
            .cloned()
            .unwrap_or_else(|| FileCursor {
                format: format.name().into(),
                ..Default::default()
            });
        let size = meta.len();
        let mut events = Vec::new();
        if (cursor.inode != 0 || cursor.offset > 0)
            && let Some(why) = self.changed_under_us(path, &cursor, &meta)
        {
            events.push(file_problem(
                &key,
                Severity::Warning,
                format!("{why}; reading it again from the start as new runs"),
            ));
            cursor = FileCursor {
                errors: cursor.errors,
                format: cursor.format,
                ..Default::default()
            };
        }
        if cursor.dead.is_some() {
            return Ok(0);
        }
        cursor.dev = meta.dev();
        cursor.inode = meta.ino();
        if size == cursor.offset && events.is_empty() {
            return Ok(0);
        }
        let quiet = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|d| d >= self.opts.settle);
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(path, format!("cannot open: {e}"), Severity::Warning)?;
                return Ok(0);
            }
        };
        let restarted = (!events.is_empty()).then(|| "file replaced or truncated".to_string());
        let mut chunk = self.opts.chunk.max(self.opts.max_line + 1);
        let mut consumed_total = 0;
        loop {
            let from = cursor.offset;
            self.buf.clear();
            let read = file
                .seek(SeekFrom::Start(from))
                .and_then(|_| (&mut file).take(chunk as u64).read_to_end(&mut self.buf));
            if let Err(e) = read {
                self.problem(
                    path,
                    format!("read failed at byte {from}: {e}"),
                    Severity::Warning,
                )?;
                break;
            }
            let mut data = std::mem::take(&mut self.buf);
            let at_end = (data.len() as u64) < chunk as u64;
            // A NUL byte makes a text file binary: the complete lines before it are still read.
            let nul = if format.binary() {
                None
            } else {
                memchr::memchr(0, &data)
            };
            let binary_at = nul.map(|at| {
                let line_start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
                data.truncate(line_start);
                from + at as u64
            });
            if from == 0 && cursor.head_len < HEAD_BYTES.min(data.len() as u64) {
                cursor.head_len = HEAD_BYTES.min(data.len() as u64);
                cursor.head_hash = head_hash(&data[..cursor.head_len as usize]);
            }
            let now = now_micros();
            let lines_before = cursor.line;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stream_sidecars =
                if (from == 0 && !format.sidecars().is_empty()) || format == Format::TensorBoard {
                    sidecars(format, path)
                } else {
                    Vec::new()
                };
            let forced = self.forced(path).is_some();
            let ids = self.ids.clone();
            let mut unique = |id| ids.unique(id);
            let mut ctx = Context {
                path: &key,
                default_name: &stem,
                host: &self.host,
                now,
                max_line: self.opts.max_line,
                take_unterminated: (finished || quiet) && binary_at.is_none(),
                ids: &mut unique,
                runs: &mut self.runs,
                sidecars: &stream_sidecars,
            };
            // A file's format is settled by its first bytes (unless its folder's is set) and kept with its
            // cursor.
            let format = if from == 0 && cursor.line == 0 && !forced {
                let f = format.sniff(&data);
                cursor.format = f.name().into();
                f
            } else {
                Format::from_name(&cursor.format).unwrap_or(format)
            };
            let mut out = labd_sources::read(format, &mut cursor, &data, &mut ctx);
            let consumed = out.consumed;
            let wants = out.wants;
            self.buf = data;
            if consumed > 0 || !out.events.is_empty() {
                self.fill_artifacts(path, &mut out.events);
                let errors = out
                    .events
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::IngestError(_)))
                    .count() as u64;
                cursor.offset = from + consumed;
                cursor.size = size.max(cursor.offset);
                cursor.errors += errors;
                cursor.updated = now;
                report.lines += cursor.line - lines_before;
                report.points += out.points;
                report.errors += errors;
                events.append(&mut out.events);
                events.push(Event::new(
                    now,
                    Source::File {
                        path: key.clone(),
                        first_line: lines_before + 1,
                        last_line: cursor.line,
                    },
                    EventKind::FileIngested(FileIngested {
                        path: key.clone(),
                        from,
                        to: cursor.offset,
                        lines: cursor.line - lines_before,
                        restarted: restarted.clone().filter(|_| from == 0),
                    }),
                ));
                consumed_total += consumed;
            }
            if let Some(at) = binary_at {
                let reason = format!(
                    "binary file (NUL byte at byte {at}); the lines before it were read, the rest is skipped"
                );
                tracing::warn!("{key}: {reason}");
                events.push(file_problem(&key, Severity::Error, reason.clone()));
                cursor.dead = Some(reason);
                cursor.errors += 1;
                report.errors += 1;
                cursor.updated = now;
            }
            if !events.is_empty() {
                report.events += events.len() as u64;
                self.send(&key, &mut prior, &cursor, std::mem::take(&mut events))?;
            }
            if cursor.dead.is_some() {
                break;
            }
            // A record longer than a chunk: read again from here with room for it, once the file holds it.
            if consumed == 0
                && let Some(wants) = wants
                && wants > chunk as u64
                && wants <= labd_sources::tensorboard::MAX_RECORD + 16
                && size >= from + wants
            {
                chunk = wants as usize;
                continue;
            }
            if at_end || binary_at.is_some() || consumed == 0 {
                // Caught up (a partial last line, if any, waits for the rest), or the file is dead.
                break;
            }
        }
        report.files += 1;
        Ok(consumed_total)
    }

    /// Reads a file of a format that is rewritten whole (not appended to): the whole file each time its
    /// content changed; the source keeps, with the run, what it has read already. A file it cannot parse yet
    /// waits while it is being written, and is reported once it is quiet.
    fn load_whole(
        &mut self,
        path: &Path,
        key: &str,
        format: Format,
        meta: &std::fs::Metadata,
        finished: bool,
        report: &mut IngestReport,
    ) -> Result<u64, LogError> {
        let mut prior = self.cursors.get(key).map(|c| c.offset);
        let mut cursor = self
            .cursors
            .get(key)
            .cloned()
            .unwrap_or_else(|| FileCursor {
                format: format.name().into(),
                ..Default::default()
            });
        let size = meta.len();
        // Same size and time as when last read: nothing to do (the experiment manager's registry is looked at
        // anyway, since the files beside it change without it).
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        if format != Format::ExpManager
            && mtime != 0
            && cursor.mtime == mtime
            && cursor.size == size
            && cursor.head_len == size
        {
            return Ok(0);
        }
        if size == 0 {
            // Just created, not yet written: nothing to read, nothing wrong.
            return Ok(0);
        }
        if size > WHOLE_FILE_LIMIT {
            self.problem(
                path,
                format!(
                    "{size} bytes is more than the {WHOLE_FILE_LIMIT} read whole for a {} file; skipped",
                    format.name()
                ),
                Severity::Error,
            )?;
            return Ok(0);
        }
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                self.problem(path, format!("cannot read: {e}"), Severity::Warning)?;
                return Ok(0);
            }
        };
        // The files read with it count too: a change to one (an experiment's history beside its registry)
        // is news even when this file is the same.
        let sidecars = sidecars(format, path);
        let hash = {
            let mut h = Sha256::new();
            h.update(&data);
            for (name, text) in &sidecars {
                h.update(name.as_bytes());
                h.update([0]);
                h.update(text.as_bytes());
                h.update([0]);
            }
            let d = h.finalize();
            u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
        };
        if cursor.head_len == data.len() as u64 && cursor.head_hash == hash {
            // Touched, not changed: remember its time so the next look does not read it again.
            cursor.mtime = mtime;
            self.cursors.insert(key.to_string(), cursor);
            return Ok(0);
        }
        let quiet = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|d| d >= self.opts.settle);
        let now = now_micros();
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ids = self.ids.clone();
        let mut unique = |id| ids.unique(id);
        let mut ctx = Context {
            path: key,
            default_name: &stem,
            host: &self.host,
            now,
            max_line: self.opts.max_line,
            take_unterminated: finished || quiet,
            ids: &mut unique,
            runs: &mut self.runs,
            sidecars: &sidecars,
        };
        let out = labd_sources::read(format, &mut cursor, &data, &mut ctx);
        if out.consumed == 0 && out.events.is_empty() {
            return Ok(0);
        }
        let errors = out
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::IngestError(_)))
            .count() as u64;
        cursor.dev = meta.dev();
        cursor.inode = meta.ino();
        cursor.offset = data.len() as u64;
        cursor.size = data.len() as u64;
        cursor.head_len = data.len() as u64;
        cursor.head_hash = hash;
        cursor.mtime = mtime;
        cursor.errors += errors;
        cursor.updated = now;
        report.points += out.points;
        report.errors += errors;
        report.files += 1;
        let mut events = out.events;
        events.push(Event::new(
            now,
            Source::File {
                path: key.to_string(),
                first_line: 0,
                last_line: 0,
            },
            EventKind::FileIngested(FileIngested {
                path: key.to_string(),
                from: 0,
                to: data.len() as u64,
                lines: 0,
                restarted: None,
            }),
        ));
        report.events += events.len() as u64;
        self.send(key, &mut prior, &cursor, events)?;
        Ok(data.len() as u64)
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
        })
    }

    /// Why the file is no longer the one the cursor describes, if it is not.
    fn changed_under_us(
        &self,
        path: &Path,
        cursor: &FileCursor,
        meta: &std::fs::Metadata,
    ) -> Option<String> {
        let head_same = || {
            let mut head = vec![0u8; cursor.head_len as usize];
            File::open(path)
                .and_then(|mut f| f.read_exact(&mut head))
                .map(|_| head_hash(&head) == cursor.head_hash)
        };
        if cursor.inode != 0 && (meta.dev(), meta.ino()) != (cursor.dev, cursor.inode) {
            // rsync and editors write a new file and rename it over the old one: same content, new inode.
            let continued = cursor.head_len > 0
                && meta.len() >= cursor.offset
                && matches!(head_same(), Ok(true));
            if !continued {
                return Some("file was replaced (new inode, different content)".into());
            }
        }
        if meta.len() < cursor.offset {
            return Some(format!(
                "file shrank to {} bytes below the {} already read",
                meta.len(),
                cursor.offset
            ));
        }
        if cursor.head_len > 0 && meta.len() != cursor.size && matches!(head_same(), Ok(false)) {
            return Some(format!(
                "file was rewritten (its first {} bytes changed)",
                cursor.head_len
            ));
        }
        None
    }

    /// Completes artifact events with the file's size and sha256 when the file exists.
    fn fill_artifacts(&self, log_path: &Path, events: &mut [Event]) {
        for e in events {
            let EventKind::ArtifactRecorded(a) = &mut e.kind else {
                continue;
            };
            let p = Path::new(&a.path);
            let full = if p.is_absolute() {
                p.to_path_buf()
            } else {
                log_path.parent().unwrap_or(Path::new("/")).join(p)
            };
            let Ok(meta) = std::fs::metadata(&full) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            a.size.get_or_insert(meta.len());
            if a.sha256.is_none() && meta.len() <= self.opts.hash_limit {
                a.sha256 = sha256_file(&full);
            }
        }
    }
}

/// An ingest problem about a whole file (no line).
/// What kind of file system entry `m` is, in words.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
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

fn head_hash(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

fn sha256_file(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
