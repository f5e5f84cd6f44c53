//! The ingest view: ingest problems (all counted, the most recent kept) and per-file totals.

use labd_log::Seq;
use labd_schemas::event::IngestError;
use labd_schemas::{Event, EventKind, Source};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many recent problems are kept for `labctl errors`.
pub const RECENT_ERRORS: usize = 10_000;

/// Totals per source file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileTotals {
    pub events: u64,
    pub errors: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestView {
    pub errors_total: u64,
    /// `(seq, time, problem)`, oldest first.
    pub recent: VecDeque<(Seq, i64, IngestError)>,
    pub files: BTreeMap<String, FileTotals>,
}

impl IngestView {
    pub fn apply(&mut self, seq: Seq, event: &Event) {
        if let Source::File { path, .. } = &event.source {
            let totals = match self.files.get_mut(path.as_str()) {
                Some(t) => t,
                None => self.files.entry(path.clone()).or_default(),
            };
            totals.events += 1;
        }
        if let EventKind::IngestError(err) = &event.kind {
            self.errors_total += 1;
            self.files.entry(err.path.clone()).or_default().errors += 1;
            if self.recent.len() == RECENT_ERRORS {
                self.recent.pop_front();
            }
            self.recent.push_back((seq, event.time, err.clone()));
        }
    }
}
