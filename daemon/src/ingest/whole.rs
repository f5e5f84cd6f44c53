//! Reading a file that is rewritten whole rather than appended to (`trainer_state.json`, Lightning's
//! `metrics.csv`, `mlflow.db`, the experiment manager's registry, MLflow's `meta.yaml`): the whole file each time
//! its content, or a file read with it, changed; the source keeps with the run what it read already. A file it
//! cannot parse yet waits while it is being written, and is reported once it is quiet.

use super::{Ingestor, WHOLE_FILE_LIMIT};
use labd_log::{FileCursor, LogError};
use labd_schemas::api::IngestReport;
use labd_schemas::event::{FileIngested, Severity};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use labd_sources::Format;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

impl Ingestor {
    /// Reads a whole-file format's file if it changed; returns the bytes read.
    pub(super) fn load_whole(
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
        let mtime = mtime_nanos(meta);
        if unchanged(format, &cursor, size, mtime) || size == 0 {
            // Size 0: just created, not yet written; nothing to read, nothing wrong.
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
        let sidecars = super::discover::sidecars(format, path);
        let hash = content_hash(&data, &sidecars);
        if cursor.head_len == data.len() as u64 && cursor.head_hash == hash {
            // Touched, not changed: remember its time so the next look does not read it again.
            cursor.mtime = mtime;
            self.cursors.insert(key.to_string(), cursor);
            return Ok(0);
        }
        let now = now_micros();
        let take = finished || self.quiet(meta);
        let out = self.run(path, key, format, &mut cursor, &data, &sidecars, take, now);
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
        events.push(read_whole(key, data.len() as u64, now));
        report.events += events.len() as u64;
        self.send(key, &mut prior, &cursor, events)?;
        Ok(data.len() as u64)
    }
}

/// The file's modification time in Unix nanoseconds (0 when unknown).
fn mtime_nanos(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Same size and time as when last read: nothing to do. The experiment manager's registry is looked at anyway,
/// since the files beside it change without it.
fn unchanged(format: Format, cursor: &FileCursor, size: u64, mtime: i64) -> bool {
    format != Format::ExpManager
        && mtime != 0
        && cursor.mtime == mtime
        && cursor.size == size
        && cursor.head_len == size
}

/// A hash of the file and the files read with it.
fn content_hash(data: &[u8], sidecars: &[(String, String)]) -> u64 {
    let mut h = Sha256::new();
    h.update(data);
    for (name, text) in sidecars {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

/// The `file_ingested` of a file read whole.
fn read_whole(key: &str, len: u64, now: i64) -> Event {
    Event::new(
        now,
        Source::File {
            path: key.to_string(),
            first_line: 0,
            last_line: 0,
        },
        EventKind::FileIngested(FileIngested {
            path: key.to_string(),
            from: 0,
            to: len,
            lines: 0,
            restarted: None,
        }),
    )
}
