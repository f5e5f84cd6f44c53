//! Replay: rebuild views from the log, either to replace the live views (catching up under the lock with
//! whatever was committed meanwhile) or as of a past point, without touching the live ones.

use crate::jobs::Job;
use crate::views::Views;
use labd_log::{EventLog, LogError, Seq};
use labd_schemas::api::ReplayReport;
use labd_schemas::time::{now_micros, parse_rfc3339_micros};
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("as-of {0:?}: expected a sequence number or an RFC 3339 time")]
    AsOf(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A past point of the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AsOf {
    /// Up to and including this sequence number.
    Seq(Seq),
    /// Every event recorded at or before this time (Unix microseconds).
    Time(i64),
}

impl std::str::FromStr for AsOf {
    type Err = ReplayError;
    fn from_str(s: &str) -> Result<Self, ReplayError> {
        let s = s.trim();
        if let Ok(seq) = s.parse::<u64>() {
            return Ok(AsOf::Seq(seq));
        }
        parse_rfc3339_micros(s)
            .map(AsOf::Time)
            .map_err(|_| ReplayError::AsOf(s.to_string()))
    }
}

/// Fresh views (curves included) as of a past point, for queries asked `as_of`.
pub fn views_as_of(log: &EventLog, as_of: &str) -> Result<Views, ReplayError> {
    let as_of: AsOf = as_of.parse()?;
    let last = log.last_seq()?;
    let upto = match as_of {
        AsOf::Seq(s) => s.min(last),
        AsOf::Time(_) => last,
    };
    let mut v = Views::default();
    v.catch_up(log, upto, |_, e| match as_of {
        AsOf::Time(t) => e.time <= t,
        AsOf::Seq(_) => true,
    })?;
    Ok(v)
}

/// Offline replay for `labd replay`: rebuilds the views of a stopped daemon's log (curves left out) and, without
/// `as_of`, saves them as its checkpoint.
pub fn offline(
    log_path: &std::path::Path,
    as_of: Option<&str>,
    stale_after: Duration,
) -> Result<ReplayReport, ReplayError> {
    let log = EventLog::open(log_path)?;
    let mut fresh = Views::default();
    fresh.curves.off = true;
    let views = crate::views::live::LiveViews::new(fresh);
    let report = replay(&log, views.lock(), as_of, stale_after, None)?;
    if as_of.is_none() {
        views.save_checkpoint(&log)?;
    }
    Ok(report)
}

/// Rebuilds the views from the log. Without `as_of` the result replaces `live`; with it, `live` is left alone
/// and the report lists the registry as it was then.
pub fn replay(
    log: &EventLog,
    live: &RwLock<Views>,
    as_of: Option<&str>,
    stale_after: Duration,
    job: Option<&Job>,
) -> Result<ReplayReport, ReplayError> {
    let as_of = as_of.map(str::parse::<AsOf>).transpose()?;
    let started = Instant::now();
    let last = log.last_seq()?;
    let upto = match as_of {
        Some(AsOf::Seq(s)) => s.min(last),
        _ => last,
    };
    if let Some(job) = job {
        job.set_total(upto, "events");
    }
    let mut fresh = Views::default();
    if as_of.is_none() {
        // It replaces the live store: its chunks go where the live store's do (a new file beside it).
        fresh.curves = live.read().unwrap_or_else(|p| p.into_inner()).curves.like();
    } else {
        // Only the registry is reported.
        fresh.curves.off = true;
    }
    let mut last_log = Instant::now();
    let mut done = 0u64;
    fresh.catch_up(log, upto, |seq, event| {
        if let Some(AsOf::Time(t)) = as_of
            && event.time > t
        {
            return false;
        }
        done += 1;
        if done.is_multiple_of(65_536) {
            if let Some(job) = job {
                job.advance(65_536);
            }
            if last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!("replay: {seq}/{upto} events");
            }
        }
        true
    })?;
    let live_replaced = as_of.is_none();
    if live_replaced {
        let mut live = live.write().unwrap_or_else(|p| p.into_inner());
        fresh.catch_up(log, log.last_seq()?, |_, _| true)?;
        *live = fresh.clone();
    }
    if let Some(job) = job {
        job.advance(done % 65_536);
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "replay: {} events, {} points in {seconds:.2}s ({:.0} points/s){}",
        fresh.events,
        fresh.points,
        fresh.points as f64 / seconds.max(1e-9),
        if live_replaced {
            "; live views replaced"
        } else {
            ""
        }
    );
    let now = now_micros();
    let stale = stale_after.as_micros() as i64;
    Ok(ReplayReport {
        upto: fresh.applied,
        events: fresh.events,
        points: fresh.points,
        seconds,
        live: live_replaced,
        differing: None,
        experiments: if live_replaced {
            Vec::new()
        } else {
            fresh
                .registry
                .experiments
                .values()
                .map(|r| r.row(now, stale))
                .collect()
        },
    })
}

/// Rebuilds the views from the log up to the live views' last event and compares them, view by view, with
/// the live ones (which are left alone). The curves are compared once they are warm.
pub fn verify(
    log: &EventLog,
    live: &RwLock<Views>,
    job: Option<&Job>,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let snapshot = live.read().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(job) = job {
        job.set_total(snapshot.applied, "events");
    }
    let mut fresh = Views::default();
    fresh.curves.off = snapshot.curves.off || !snapshot.curves_ready();
    let mut done = 0u64;
    fresh.catch_up(log, snapshot.applied, |_, _| {
        done += 1;
        if done.is_multiple_of(65_536)
            && let Some(job) = job
        {
            job.advance(65_536);
        }
        true
    })?;
    let mut differing = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            differing.push(name.to_string());
        }
    };
    check("registry", fresh.registry == snapshot.registry);
    check("ingest", fresh.ingest == snapshot.ingest);
    check("sweeps", fresh.sweeps == snapshot.sweeps);
    check("benchmarks", fresh.benchmarks == snapshot.benchmarks);
    check(
        "counts",
        (fresh.applied, fresh.events, fresh.points)
            == (snapshot.applied, snapshot.events, snapshot.points),
    );
    if !fresh.curves.off {
        check("curves", fresh.curves == snapshot.curves);
    }
    let seconds = started.elapsed().as_secs_f64();
    if differing.is_empty() {
        tracing::info!(
            "verify: the live views equal a replay of {} events ({seconds:.2}s)",
            fresh.events
        );
    } else {
        tracing::error!(
            "verify: the live views differ from a replay of the log in: {}",
            differing.join(", ")
        );
    }
    if let Some(job) = job {
        job.advance(done % 65_536);
    }
    Ok(ReplayReport {
        upto: fresh.applied,
        events: fresh.events,
        points: fresh.points,
        seconds,
        live: false,
        experiments: Vec::new(),
        differing: Some(differing),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Ids;
    use crate::ingest::{Ingestor, Options};
    use labd_log::writer::Writer;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    /// Views built incrementally while ingesting equal views replayed from the log, at the end and at every
    /// past point where the incremental views were snapshotted.
    #[test]
    fn incremental_views_equal_a_full_replay() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("labd.redb")).unwrap();
        let live = Arc::new(RwLock::new(Views::default()));
        let snapshots = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let live = live.clone();
            let snapshots = snapshots.clone();
            Writer::start(
                log.clone(),
                Box::new(move |first, events| {
                    let mut v = live.write().unwrap();
                    v.apply_batch(first, events);
                    snapshots.lock().unwrap().push(v.clone());
                }),
            )
            .unwrap()
        };
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/runs");
        let messy = dir.path().join("messy");
        std::fs::create_dir_all(&messy).unwrap();
        std::fs::write(messy.join("m.jsonl"), "{\"kind\":\"run\",\"name\":\"m\"}\nbad\n{\"kind\":\"metrics\",\"values\":{\"a\":NaN}}\n").unwrap();
        let mut ingestor = Ingestor::new(
            log.clone(),
            writer.appender(),
            Arc::new(Ids::default()),
            "h".into(),
            Options::default(),
        )
        .unwrap();
        ingestor.scan(&[messy], true, None).unwrap();
        ingestor.scan(&[examples], true, None).unwrap();
        drop(ingestor);
        writer.close();

        let live = live.read().unwrap().clone();
        assert!(live.registry.experiments.len() >= 8);
        assert_eq!(live.ingest.errors_total, 1);
        let replayed = Views::rebuild(&log, log.last_seq().unwrap()).unwrap();
        assert_eq!(replayed, live);

        let past = RwLock::new(Views::default());
        for snap in snapshots.lock().unwrap().iter() {
            let report = replay(
                &log,
                &past,
                Some(&snap.applied.to_string()),
                Duration::from_secs(600),
                None,
            )
            .unwrap();
            assert_eq!(report.upto, snap.applied);
            assert_eq!(report.points, snap.points);
            assert_eq!(report.experiments.len(), snap.registry.experiments.len());
        }
        assert_eq!(
            *past.read().unwrap(),
            Views::default(),
            "as-of replays leave the views they are given alone"
        );
    }

    #[test]
    fn as_of_parses_seqs_and_times_and_says_what_it_wants() {
        assert_eq!("42".parse::<AsOf>().unwrap(), AsOf::Seq(42));
        assert!(matches!(
            "2025-01-01T00:00:00Z".parse::<AsOf>().unwrap(),
            AsOf::Time(_)
        ));
        let err = "yesterday".parse::<AsOf>().unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
