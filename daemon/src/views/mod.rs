//! Views: state materialized from the event log, never written back to it. Each view has `apply(seq, event)`
//! for incremental updates; [`Views::rebuild`] replays the log into fresh views and gives the same result
//! (a test checks it). The views' checkpoint (their state and the last sequence number applied) is saved in
//! the log's database so a restart only catches up.

pub mod alerts;
pub mod benchmarks;
pub mod chunk;
pub mod chunk_store;
pub mod curves;
pub mod ingest;
pub mod live;
pub mod mlflow;
pub mod projects;
pub mod registry;
pub mod sweeps;

use labd_log::{EventLog, LogError, Seq};
use labd_schemas::Event;
use serde::{Deserialize, Serialize};

pub use curves::Curves;
pub use ingest::IngestView;
pub use registry::Registry;

/// Bump when the checkpoint's layout changes: an old checkpoint is then ignored and the views rebuilt.
const CHECKPOINT_VERSION: u32 = 9;
/// Key of the views' checkpoint in the log database.
pub const CHECKPOINT_KEY: &str = "views";

/// All views, as of `applied`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Views {
    /// Last sequence number applied.
    pub applied: Seq,
    pub registry: Registry,
    pub ingest: IngestView,
    pub sweeps: sweeps::Sweeps,
    pub benchmarks: benchmarks::Benchmarks,
    pub projects: projects::Projects,
    pub mlflow: mlflow::MlflowRuns,
    pub alerts: alerts::Alerts,
    /// Every metric's points in compressed columns. Checkpointed apart (`curves::CURVES_KEY`), see `Curves`.
    #[serde(skip)]
    pub curves: Curves,
    /// Events and metric points applied in all.
    pub events: u64,
    pub points: u64,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    views: Views,
}

impl Views {
    /// Applies one event. Events at or below `applied` are ignored, so catching up twice is harmless.
    pub fn apply(&mut self, seq: Seq, event: &Event) {
        if seq <= self.applied {
            return;
        }
        self.registry.apply(seq, event);
        self.ingest.apply(seq, event);
        self.sweeps.apply(seq, event);
        self.benchmarks.apply(seq, event);
        self.projects.apply(event);
        self.mlflow.apply(event);
        self.alerts.apply(seq, event, &self.registry, &self.sweeps);
        self.curves.apply(seq, event);
        self.applied = seq;
        self.events += 1;
        self.points += event.kind.points() as u64;
    }

    /// Applies a committed batch starting at `first`.
    pub fn apply_batch(&mut self, first: Seq, events: &[Event]) {
        // Events already applied are passed over, as `apply` does.
        let skip = (self.applied + 1)
            .saturating_sub(first)
            .min(events.len() as u64);
        let (first, events) = (first + skip, &events[skip as usize..]);
        if events.is_empty() {
            return;
        }
        // The views do not read one another (but the alerts view, which reads a run's name and a trial's status
        // after the others), so each takes the whole batch in turn.
        self.registry.apply_batch(first, events);
        self.ingest.apply_batch(first, events);
        self.curves.apply_batch(first, events);
        self.mlflow.apply_batch(events);
        for (i, e) in events.iter().enumerate() {
            let seq = first + i as u64;
            self.sweeps.apply(seq, e);
            self.benchmarks.apply(seq, e);
            self.projects.apply(e);
            self.alerts.apply(seq, e, &self.registry, &self.sweeps);
            self.points += e.kind.points() as u64;
        }
        self.events += events.len() as u64;
        self.applied = first + events.len() as u64 - 1;
    }

    /// Applies every event after `applied` up to `upto` (inclusive), or while `keep(seq, event)` holds.
    pub fn catch_up(
        &mut self,
        log: &EventLog,
        upto: Seq,
        mut keep: impl FnMut(Seq, &Event) -> bool,
    ) -> Result<(), LogError> {
        log.scan_blocks(self.applied + 1, upto, |first, events| {
            let n = events
                .iter()
                .enumerate()
                .take_while(|(i, e)| keep(first + *i as u64, e))
                .count();
            self.apply_batch(first, &events[..n]);
            n == events.len()
        })
    }

    /// Whether the curve store has every event the other views have.
    pub fn curves_ready(&self) -> bool {
        self.curves.applied >= self.applied
    }

    /// Fresh views built from the whole log up to `upto`.
    pub fn rebuild(log: &EventLog, upto: Seq) -> Result<Views, LogError> {
        let mut v = Views::default();
        v.catch_up(log, upto, |_, _| true)?;
        Ok(v)
    }

    /// The checkpoint's bytes.
    pub fn encode_checkpoint(&self) -> Result<Vec<u8>, LogError> {
        #[derive(Serialize)]
        struct Ref<'a> {
            version: u32,
            views: &'a Views,
        }
        rmp_serde::to_vec_named(&Ref {
            version: CHECKPOINT_VERSION,
            views: self,
        })
        .map_err(|e| LogError::Encode {
            what: "views checkpoint",
            reason: e.to_string(),
        })
    }

    /// Views from a checkpoint; `None` when it is from another version or does not decode (then rebuild).
    pub fn decode_checkpoint(bytes: &[u8]) -> Option<Views> {
        let c: Checkpoint = rmp_serde::from_slice(bytes).ok()?;
        (c.version == CHECKPOINT_VERSION).then_some(c.views)
    }

    /// The views as saved in the log's checkpoint (or empty), caught up to the end of the log. Without
    /// `with_curves` the curve store stays off (nothing will ask for curves).
    pub fn load(log: &EventLog, with_curves: bool) -> Result<Views, LogError> {
        let mut views = match log.checkpoint(CHECKPOINT_KEY)? {
            Some(bytes) => Views::decode_checkpoint(&bytes).unwrap_or_else(|| {
                tracing::warn!(
                    "views checkpoint is from another version; rebuilding the views from the log"
                );
                Views::default()
            }),
            None => Views::default(),
        };
        views.curves.off = !with_curves;
        let last = log.last_seq()?;
        if views.applied > last {
            tracing::warn!(
                "views checkpoint (seq {}) is ahead of the log (seq {last}); rebuilding",
                views.applied
            );
            views = Views::default();
            views.curves.off = !with_curves;
        }
        if with_curves {
            views.curves = load_curves(log, last)?;
        }
        if last > views.applied {
            tracing::info!("catching up views from seq {} to {last}", views.applied + 1);
        }
        views.catch_up(log, last, |_, _| true)?;
        Ok(views)
    }
}

/// The curve store as saved (or empty when there is none, it does not read, or the log is behind it), its
/// chunks in a file beside the log; the warm-up fills in what the log holds beyond it. Chunk files no
/// checkpoint names are removed.
fn load_curves(log: &EventLog, last: Seq) -> Result<Curves, LogError> {
    let dir = log
        .path()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let started = std::time::Instant::now();
    let loaded = match log.checkpoint(curves::CURVES_KEY)? {
        None => None,
        Some(bytes) => match Curves::decode_checkpoint(&bytes, &dir) {
            Ok(c) if c.applied <= last => {
                tracing::info!(
                    "curve store loaded: {} points as of seq {} ({:.0} MB index and tails, {:.0} MB of chunks, {:.0} MB of them no longer read) in {:.2}s",
                    c.points,
                    c.applied,
                    bytes.len() as f64 / 1e6,
                    c.stored_bytes() as f64 / 1e6,
                    c.store.unused() as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
                Some(c)
            }
            Ok(c) => {
                tracing::warn!(
                    "curve store checkpoint (seq {}) is ahead of the log (seq {last}); rebuilding it",
                    c.applied
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    "curve store checkpoint does not read ({e}); rebuilding it from the log"
                );
                None
            }
        },
    };
    let curves = match loaded {
        Some(c) => c,
        None => Curves::on_disk(&dir).unwrap_or_else(|e| {
            tracing::warn!(
                "curve store: no chunk file in {} ({e}); keeping its chunks in memory",
                dir.display()
            );
            Curves::default()
        }),
    };
    chunk_store::ChunkStore::remove_others(&dir, curves.store.path().as_deref());
    Ok(curves)
}

#[cfg(test)]
mod tests {
    use super::registry::Record;
    use super::*;
    use labd_schemas::event::{ExperimentCreated, IngestError, MetricsLogged, Severity};
    use labd_schemas::{EventKind, ExperimentId, Source};

    fn at(path: &str, line: u64, kind: EventKind) -> Event {
        let source = Source::File {
            path: path.into(),
            first_line: line,
            last_line: line,
        };
        Event::new(100 + line as i64, source, kind)
    }

    fn created(path: &str, id: &str) -> Event {
        at(
            path,
            1,
            EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                exp: ExperimentId(id.into()),
                name: id.into(),
                description: None,
                tags: vec![],
                config: serde_json::json!({"lr": 0.1}),
                config_hash: "h".into(),
                host: "host".into(),
                started: 5,
                extra: Default::default(),
                project: None,
            })),
        )
    }

    fn metrics(path: &str, id: &str, step: i64) -> Event {
        at(
            path,
            step as u64 + 2,
            EventKind::MetricsLogged(MetricsLogged {
                exp: ExperimentId(id.into()),
                split: (step % 3 != 0).then(|| "train".into()),
                step: Some(step),
                epoch: None,
                wall_time: None,
                x: Default::default(),
                values: [
                    ("loss".to_string(), 1.0 / (step as f64 + 1.0)),
                    ("acc".into(), 0.5),
                ]
                .into(),
                extra: Default::default(),
            }),
        )
    }

    fn problem(path: &str, line: u64) -> Event {
        at(
            path,
            line,
            EventKind::IngestError(IngestError {
                path: path.into(),
                line: Some(line),
                severity: Severity::Error,
                reason: "bad".into(),
                held: None,
            }),
        )
    }

    /// Applying a batch gives the views that applying its events one by one gives: runs interleaved, a run's
    /// events before its creation, problems, events from another file, and events already applied.
    #[test]
    fn a_batch_applies_as_its_events_one_by_one() {
        // A divergence rule on the loss, so the alerts view's state takes part too.
        let rule: labd_schemas::alert::AlertRule = serde_json::from_value(serde_json::json!({
            "name": "div", "kind": "divergence", "metric": "*loss", "factor": 1.5, "points": 2
        }))
        .unwrap();
        let rule = at(
            "/r",
            1,
            EventKind::AlertRuleSet(Box::new(labd_schemas::alert::AlertRuleSet {
                rule,
                from: labd_schemas::alert::RuleFrom::Api,
            })),
        );
        let mut events = vec![rule, metrics("/a", "early", 0), created("/a", "a")];
        for step in 0..20 {
            events.push(metrics("/a", "a", step));
            if step % 7 == 3 {
                events.push(problem("/a", step as u64));
                events.push(created("/b", &format!("b{step}")));
            }
            if step % 5 == 4 {
                events.push(metrics("/b", "b3", step));
                events.push(metrics("/a", "b3", step));
            }
        }
        events.push(created("/a", "early"));
        events.push(metrics("/a", "early", 1));
        let mut one = Views::default();
        for (i, e) in events.iter().enumerate() {
            one.apply(i as u64 + 1, e);
        }
        let mut batched = Views::default();
        let (head, tail) = events.split_at(10);
        batched.apply_batch(1, head);
        // The second batch starts over a few events already applied.
        batched.apply_batch(7, &events[6..]);
        batched.apply_batch(3, &events[2..4]);
        assert_eq!(batched.applied, events.len() as u64);
        assert_eq!(batched, one);
        assert!(!tail.is_empty());
        assert_eq!(one.registry.get("a").map(Record::points), Some(40));
        assert!(one.alerts.rules.contains_key("div"));
    }
}
