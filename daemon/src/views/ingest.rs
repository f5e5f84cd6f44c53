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
            self.count(path, 1);
        }
        self.problem(seq, event);
    }

    /// Applies `events` (numbered from `first`) as [`IngestView::apply`] one by one does; a stretch of events
    /// from one file is counted with one lookup.
    pub fn apply_batch(&mut self, first: Seq, events: &[Event]) {
        let mut i = 0;
        while i < events.len() {
            if let Source::File { path, .. } = &events[i].source {
                let n = events[i..]
                    .iter()
                    .take_while(|e| matches!(&e.source, Source::File { path: p, .. } if p == path))
                    .count();
                self.count(path, n as u64);
                for (j, e) in events[i..i + n].iter().enumerate() {
                    self.problem(first + (i + j) as u64, e);
                }
                i += n;
            } else {
                self.problem(first + i as u64, &events[i]);
                i += 1;
            }
        }
    }

    fn count(&mut self, path: &str, n: u64) {
        let totals = match self.files.get_mut(path) {
            Some(t) => t,
            None => self.files.entry(path.to_string()).or_default(),
        };
        totals.events += n;
    }

    fn problem(&mut self, seq: Seq, event: &Event) {
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
