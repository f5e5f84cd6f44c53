//! Reading a file that grows (run logs, TensorBoard, CSV, MLflow metric files): from its stored cursor, in
//! chunks, each chunk's complete records through its source, the events and the new cursor sent as one batch.
//! A file renamed within the watched folders continues where its old name left off; one replaced, truncated
//! or rewritten in place is read again from the start; a NUL byte ends it (the lines before it are kept).

use super::{HEAD_BYTES, Ingestor, file_problem, path_key};
use labd_log::writer::{Batch, CursorMove};
use labd_log::{FileCursor, LogError};
use labd_schemas::api::IngestReport;
use labd_schemas::event::{FileIngested, Severity};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use labd_sources::{Format, Output};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// Where one chunk of a file was read from, and how it ends.
struct Chunk {
    from: u64,
    data: Vec<u8>,
    /// The chunk reaches the end of the file.
    at_end: bool,
    /// The file turned binary here (a NUL byte); the chunk was cut at the line before it.
    binary_at: Option<u64>,
}

impl Ingestor {
    /// Reads what is new in one file; returns the bytes consumed.
    pub(super) fn load_file(
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
        self.follow_rename(path, &key, &meta)?;
        // The stored read position every batch of this file must start from, in order.
        let mut prior = self.cursors.get(&key).map(|c| c.offset);
        let (mut cursor, mut events) = self.cursor_for(path, &key, format, &meta);
        if cursor.dead.is_some() {
            return Ok(0);
        }
        let size = meta.len();
        if size == cursor.offset && events.is_empty() {
            return Ok(0);
        }
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(path, format!("cannot open: {e}"), Severity::Warning)?;
                return Ok(0);
            }
        };
        let take_last_line = finished || self.quiet(&meta);
        let restarted = (!events.is_empty()).then(|| "file replaced or truncated".to_string());
        let mut chunk_len = self.opts.chunk.max(self.opts.max_line + 1);
        let mut consumed_total = 0;
        loop {
            let Some(chunk) = self.read_chunk(&mut file, path, format, cursor.offset, chunk_len)?
            else {
                break;
            };
            note_head(&mut cursor, &chunk);
            let now = now_micros();
            let lines_before = cursor.line;
            let take = take_last_line && chunk.binary_at.is_none();
            let out = self.run_source(path, &key, format, &mut cursor, &chunk, take, now);
            let Chunk {
                from,
                data,
                at_end,
                binary_at,
            } = chunk;
            // The buffer's allocation serves the next chunk.
            self.buf = data;
            let (consumed, wants) = (out.consumed, out.wants);
            if consumed > 0 || !out.events.is_empty() {
                let read = (from, lines_before, restarted.clone().filter(|_| from == 0));
                let took = self.took(path, &key, &mut cursor, out, size, read, now, report);
                // Events are large: the source's vector is kept, not copied, when nothing came before.
                if events.is_empty() {
                    events = took;
                } else {
                    events.extend(took);
                }
                consumed_total += consumed;
            }
            if let Some(at) = binary_at {
                events.push(turned_binary(&key, &mut cursor, at, now, report));
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
                && wants > chunk_len as u64
                && wants <= labd_sources::tensorboard::MAX_RECORD + 16
                && size >= from + wants
            {
                chunk_len = wants as usize;
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

    /// A file seen for the first time that was renamed from a vanished one takes over its cursor (the old
    /// name's is closed), so nothing is read twice.
    fn follow_rename(
        &mut self,
        path: &Path,
        key: &str,
        meta: &std::fs::Metadata,
    ) -> Result<(), LogError> {
        if self.cursors.contains_key(key) {
            return Ok(());
        }
        let Some(old) = self.renamed_from(path, meta) else {
            return Ok(());
        };
        let Some(cursor) = self.cursors.get(&old).cloned() else {
            return Ok(());
        };
        let reason = format!(
            "renamed from {old}; continuing at byte {} (nothing is read twice)",
            cursor.offset
        );
        tracing::info!("{key}: {reason}");
        let mut gone = cursor.clone();
        gone.dead = Some(format!("renamed to {key}"));
        self.cursors.insert(old.clone(), gone.clone());
        self.cursors.insert(key.to_string(), cursor.clone());
        self.submit(Batch {
            events: vec![file_problem(key, Severity::Warning, reason)],
            cursors: vec![
                CursorMove {
                    path: old,
                    expected: Some(cursor.offset),
                    cursor: gone,
                },
                CursorMove {
                    path: key.to_string(),
                    expected: None,
                    cursor,
                },
            ],
            positions: Vec::new(),
        })
    }

    /// The cursor to read `path` from: the stored one, or a fresh one when the file is new or is no longer
    /// the file the cursor describes (then with a warning to record).
    fn cursor_for(
        &self,
        path: &Path,
        key: &str,
        format: Format,
        meta: &std::fs::Metadata,
    ) -> (FileCursor, Vec<Event>) {
        let mut events = Vec::new();
        let mut cursor = self
            .cursors
            .get(key)
            .cloned()
            .unwrap_or_else(|| FileCursor {
                format: format.name().into(),
                ..Default::default()
            });
        if (cursor.inode != 0 || cursor.offset > 0)
            && let Some(why) = self.changed_under_us(path, &cursor, meta)
        {
            events.push(file_problem(
                key,
                Severity::Warning,
                format!("{why}; reading it again from the start as new runs"),
            ));
            cursor = FileCursor {
                errors: cursor.errors,
                format: cursor.format,
                ..Default::default()
            };
        }
        if cursor.dead.is_none() {
            cursor.dev = meta.dev();
            cursor.inode = meta.ino();
        }
        (cursor, events)
    }

    /// Whether the file has not changed for the settle time (its last line, without newline, may be taken).
    pub(super) fn quiet(&self, meta: &std::fs::Metadata) -> bool {
        meta.modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|d| d >= self.opts.settle)
    }

    /// Reads up to `len` bytes from `from`, cut before the line of a NUL byte in a text format; `None` when
    /// the read failed (reported).
    fn read_chunk(
        &mut self,
        file: &mut File,
        path: &Path,
        format: Format,
        from: u64,
        len: usize,
    ) -> Result<Option<Chunk>, LogError> {
        self.buf.clear();
        let read = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| file.take(len as u64).read_to_end(&mut self.buf));
        if let Err(e) = read {
            self.problem(
                path,
                format!("read failed at byte {from}: {e}"),
                Severity::Warning,
            )?;
            return Ok(None);
        }
        let mut data = std::mem::take(&mut self.buf);
        let at_end = (data.len() as u64) < len as u64;
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
        Ok(Some(Chunk {
            from,
            data,
            at_end,
            binary_at,
        }))
    }

    /// Runs the file's source over a chunk. A file's format is settled by its first bytes (unless its
    /// folder's is set) and kept with its cursor.
    #[allow(clippy::too_many_arguments)]
    fn run_source(
        &mut self,
        path: &Path,
        key: &str,
        format: Format,
        cursor: &mut FileCursor,
        chunk: &Chunk,
        take_unterminated: bool,
        now: i64,
    ) -> Output {
        let sidecars = if (chunk.from == 0 && !format.sidecars().is_empty())
            || format == Format::TensorBoard
        {
            super::discover::sidecars(format, path)
        } else {
            Vec::new()
        };
        let format = if chunk.from == 0 && cursor.line == 0 && self.forced(path).is_none() {
            let f = format.sniff(&chunk.data);
            cursor.format = f.name().into();
            f
        } else {
            Format::from_name(&cursor.format).unwrap_or(format)
        };
        self.run(
            path,
            key,
            format,
            cursor,
            &chunk.data,
            &sidecars,
            take_unterminated,
            now,
        )
    }

    /// What a source took from a chunk, as events: its own (artifacts completed) and the `file_ingested` that
    /// moves the cursor. `read`: where the chunk began, the lines before it, and why reading restarted.
    #[allow(clippy::too_many_arguments)]
    fn took(
        &self,
        path: &Path,
        key: &str,
        cursor: &mut FileCursor,
        mut out: Output,
        size: u64,
        read: (u64, u64, Option<String>),
        now: i64,
        report: &mut IngestReport,
    ) -> Vec<Event> {
        let (from, lines_before, restarted) = read;
        self.fill_artifacts(path, &mut out.events);
        let errors = out
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::IngestError(_)))
            .count() as u64;
        cursor.offset = from + out.consumed;
        cursor.size = size.max(cursor.offset);
        cursor.errors += errors;
        cursor.updated = now;
        report.lines += cursor.line - lines_before;
        report.points += out.points;
        report.errors += errors;
        let mut events = out.events;
        events.push(Event::new(
            now,
            Source::File {
                path: key.to_string(),
                first_line: lines_before + 1,
                last_line: cursor.line,
            },
            EventKind::FileIngested(FileIngested {
                path: key.to_string(),
                from,
                to: cursor.offset,
                lines: cursor.line - lines_before,
                restarted,
            }),
        ));
        events
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

/// Keeps the hash of the file's first bytes with the cursor, to notice the file being rewritten in place.
fn note_head(cursor: &mut FileCursor, chunk: &Chunk) {
    if chunk.from == 0 && cursor.head_len < HEAD_BYTES.min(chunk.data.len() as u64) {
        cursor.head_len = HEAD_BYTES.min(chunk.data.len() as u64);
        cursor.head_hash = head_hash(&chunk.data[..cursor.head_len as usize]);
    }
}

/// Marks the file dead at a NUL byte; answers the event that says so.
fn turned_binary(
    key: &str,
    cursor: &mut FileCursor,
    at: u64,
    now: i64,
    report: &mut IngestReport,
) -> Event {
    let reason = format!(
        "binary file (NUL byte at byte {at}); the lines before it were read, the rest is skipped"
    );
    tracing::warn!("{key}: {reason}");
    cursor.dead = Some(reason.clone());
    cursor.errors += 1;
    report.errors += 1;
    cursor.updated = now;
    file_problem(key, Severity::Error, reason)
}

pub(super) fn head_hash(bytes: &[u8]) -> u64 {
    let d = Sha256::digest(bytes);
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

fn sha256_file(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
