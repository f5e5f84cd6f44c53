//! The single writer of the log. Batches queue on a bounded channel; the writer thread takes every batch
//! waiting (group commit), writes their events and file cursors in one redb transaction, commits it durably,
//! then hands the committed events to `on_commit` (the views) and answers each batch. An event counts only
//! once that commit returned.

use super::{
    CURSORS, EVENTS, EventLog, FileCursor, LogError, META, POSITIONS, Seq, block, storage,
};
use labd_schemas::Event;
use redb::ReadableTable;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most events in one stored block (bounds the work of reading a short range).
const BLOCK_EVENTS: usize = 1024;
/// Most events grouped into one transaction.
const GROUP_EVENTS: usize = 256 * 1024;

/// Events to append, with the file cursors that must move in the same transaction.
#[derive(Default, Debug)]
pub struct Batch {
    pub events: Vec<Event>,
    pub cursors: Vec<CursorMove>,
    pub positions: Vec<PositionMove>,
}

/// A position of a source that is not a file (a sequence number of its own) to store, and the position stored
/// before it must be for the move to be valid (`None`: none stored yet). Like a [`CursorMove`], a batch whose
/// expectation fails is rejected whole: the events it carries were applied already, or some before them not.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionMove {
    pub key: String,
    pub expected: Option<u64>,
    pub to: u64,
}

/// A file cursor to store, and the offset the stored cursor must have for the move to be valid (`None`: no
/// cursor stored yet). A batch whose expectation fails is rejected whole: that happens when an earlier batch of
/// the same file failed to commit, and it keeps a later chunk from being committed past lines never stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CursorMove {
    pub path: String,
    pub expected: Option<u64>,
    pub cursor: FileCursor,
}

/// Where a committed batch landed: `first..=last` (empty when `last < first`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    pub first: Seq,
    pub last: Seq,
}

/// Why the writer refused a batch. A plain value, so it crosses the writer's channel; [`LogError`] has a
/// variant for each kind.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Nothing was written: the file system holding the log is nearly full.
    #[error("{0}")]
    DiskFull(String),
    /// The commit failed with an I/O error; intake pauses while the log is reopened.
    #[error("{0}")]
    IoFailed(String),
    /// The batch's cursor moves do not start where the stored cursors are (an earlier batch of the same file
    /// failed); the file is read again from its stored position.
    #[error("{0}")]
    CursorMoved(String),
    /// The batch's position moves do not start where the stored positions are.
    #[error("{0}")]
    PositionMoved(String),
    /// Any other failure of the commit.
    #[error("{0}")]
    Failed(String),
}

impl Refused {
    fn of(e: &LogError) -> Refused {
        match e {
            LogError::DiskFull(msg) => Refused::DiskFull(msg.clone()),
            e if e.is_io() => Refused::IoFailed(format!(
                "{}: {e}; intake is paused while the log is reopened, nothing committed is affected",
                super::IO_FAILED
            )),
            e => Refused::Failed(e.to_string()),
        }
    }
}

impl From<Refused> for LogError {
    fn from(r: Refused) -> LogError {
        match r {
            Refused::DiskFull(msg) => LogError::DiskFull(msg),
            Refused::IoFailed(msg) => LogError::IoFailed(msg),
            Refused::CursorMoved(msg) | Refused::PositionMoved(msg) | Refused::Failed(msg) => {
                LogError::WriteFailed(msg)
            }
        }
    }
}

/// What a committer waits on.
pub type Pending = oneshot::Receiver<Result<Committed, Refused>>;

/// Called on the writer thread after each commit with the batch's first sequence number and its events.
pub type OnCommit = Box<dyn FnMut(Seq, &[Event]) + Send>;

struct Request {
    batch: Batch,
    reply: oneshot::Sender<Result<Committed, Refused>>,
    /// Where the batch's events go once applied (to be dropped by the thread that made them), if anywhere.
    spent: Option<std::sync::mpsc::Sender<Vec<Event>>>,
}

/// Handle to the writer thread. Clone the [`Appender`] to append from several places.
pub struct Writer {
    appender: Appender,
    thread: Option<JoinHandle<()>>,
}

/// Sends batches to the writer.
#[derive(Clone)]
pub struct Appender {
    tx: SyncSender<Request>,
}

impl Writer {
    /// Starts the writer thread on `log`.
    pub fn start(log: EventLog, on_commit: OnCommit) -> Result<Writer, LogError> {
        let (tx, rx) = sync_channel::<Request>(64);
        let thread = std::thread::Builder::new()
            .name("labd-log-writer".into())
            .spawn(move || run(log, rx, on_commit))
            .map_err(|e| LogError::WriteFailed(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            appender: Appender { tx },
            thread: Some(thread),
        })
    }

    pub fn appender(&self) -> Appender {
        self.appender.clone()
    }

    /// Waits until every batch sent so far is committed, then stops the thread. Other appenders must be
    /// dropped first, or this waits for them.
    pub fn close(mut self) {
        let Writer { appender, thread } = &mut self;
        drop(std::mem::replace(
            appender,
            Appender {
                tx: sync_channel(0).0,
            },
        ));
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

impl Appender {
    /// Queues a batch; the returned receiver answers once it is committed (or failed).
    pub fn submit(&self, batch: Batch) -> Result<Pending, LogError> {
        self.submit_to(batch, None)
    }

    /// As [`Appender::submit`], and the batch's events come back on `spent` once committed and applied, for
    /// the thread that made them to drop (memory is freed fastest by the thread that allocated it).
    pub fn submit_returning(
        &self,
        batch: Batch,
        spent: &std::sync::mpsc::Sender<Vec<Event>>,
    ) -> Result<Pending, LogError> {
        self.submit_to(batch, Some(spent.clone()))
    }

    fn submit_to(
        &self,
        batch: Batch,
        spent: Option<std::sync::mpsc::Sender<Vec<Event>>>,
    ) -> Result<Pending, LogError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                batch,
                reply,
                spent,
            })
            .map_err(|_| LogError::WriterGone)?;
        Ok(rx)
    }

    /// Appends and waits for the commit (blocking; not for async code).
    pub fn append(&self, batch: Batch) -> Result<Committed, LogError> {
        let rx = self.submit(batch)?;
        Ok(rx.blocking_recv().map_err(|_| LogError::WriterGone)??)
    }

    /// Appends and waits for the commit, from async code.
    pub async fn append_async(&self, batch: Batch) -> Result<Committed, LogError> {
        let this = self.clone();
        let rx = tokio::task::spawn_blocking(move || this.submit(batch))
            .await
            .map_err(|_| LogError::WriterGone)??;
        Ok(rx.await.map_err(|_| LogError::WriterGone)??)
    }
}

fn run(log: EventLog, rx: Receiver<Request>, mut on_commit: OnCommit) {
    // The last sequence number handed to `on_commit`: after a reopen, events that a failed commit did make
    // durable are handed on from the log, so the views never miss one.
    let mut handed = log.last_seq().unwrap_or(0);
    let mut last_reopen: Option<Instant> = None;
    loop {
        let first = match rx.recv_timeout(REOPEN_EVERY) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                if log.needs_reopen() {
                    reopen(&log, &mut last_reopen, &mut handed, &mut on_commit);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        let mut count = group[0].batch.events.len();
        while count < GROUP_EVENTS {
            match rx.try_recv() {
                Ok(r) => {
                    count += r.batch.events.len();
                    group.push(r);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if log.needs_reopen() {
            reopen(&log, &mut last_reopen, &mut handed, &mut on_commit);
        }
        let result = log.check_space().and_then(|()| commit(&log, &group));
        if !result.as_ref().is_err_and(LogError::is_io) {
            log.note_write(result.as_ref().err().map(ToString::to_string));
        }
        match result {
            Ok(outcomes) => {
                for (mut req, outcome) in group.into_iter().zip(outcomes) {
                    match outcome {
                        Ok(first) => {
                            let n = req.batch.events.len() as u64;
                            if n > 0 {
                                // Events before this batch that the views have not had (a commit
                                // reported failed but durable, whose hand-off after the reopen failed).
                                if first > handed + 1 {
                                    hand_on(&log, &mut handed, first - 1, &mut on_commit);
                                }
                                on_commit(first, &req.batch.events);
                                handed = first + n - 1;
                            }
                            // Handed back before the answer, so whoever waited on it finds them there.
                            if let Some(spent) = req.spent.take() {
                                let _ = spent.send(std::mem::take(&mut req.batch.events));
                            }
                            let _ = req.reply.send(Ok(Committed {
                                first,
                                last: first + n - 1,
                            }));
                        }
                        Err(reason) => {
                            tracing::warn!("batch rejected: {reason}");
                            let _ = req.reply.send(Err(reason));
                        }
                    }
                }
            }
            Err(e) => {
                let refused = Refused::of(&e);
                if e.is_io() && !matches!(e, LogError::Reopening { .. }) {
                    log.note_write(Some(refused.to_string()));
                    // Reopened below, or by the next tick should the rate limit skip it now.
                    log.flag_failed();
                }
                for req in group {
                    let _ = req.reply.send(Err(refused.clone()));
                }
                if e.is_io() {
                    reopen(&log, &mut last_reopen, &mut handed, &mut on_commit);
                }
            }
        }
    }
}

/// How often a closed log is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Reopens the log after an I/O error (at most once per [`REOPEN_EVERY`]) and hands on the events a failed
/// commit made durable after all.
fn reopen(log: &EventLog, last: &mut Option<Instant>, handed: &mut Seq, on_commit: &mut OnCommit) {
    if last.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    if let Err(e) = log.reopen() {
        tracing::error!("event log: reopening after an I/O error failed ({e}); trying again");
        return;
    }
    match log.last_seq() {
        Ok(end) if end > *handed => {
            tracing::warn!(
                "event log: events {}..={end} were committed although their commit reported an error; the views take them",
                *handed + 1
            );
            hand_on(log, handed, end, on_commit);
        }
        Ok(_) => {}
        // The next commit hands the gap on (see `run`).
        Err(e) => tracing::error!("event log: reading the reopened log failed: {e}"),
    }
}

/// Hands the committed events after `handed` up to `upto` to the views, from the log.
fn hand_on(log: &EventLog, handed: &mut Seq, upto: Seq, on_commit: &mut OnCommit) {
    let from = *handed + 1;
    let mut events = Vec::new();
    match log.scan(from, upto, |_, e| {
        events.push(e);
        true
    }) {
        Ok(()) if events.len() as u64 == upto + 1 - from => {
            on_commit(from, &events);
            *handed = upto;
        }
        Ok(()) => tracing::error!(
            "event log: events {from}..={upto} are not all in the log; the views miss them"
        ),
        Err(e) => tracing::error!(
            "event log: reading events {from}..={upto} for the views failed: {e}; the views miss them"
        ),
    }
}

/// Writes the group in one durable transaction; answers, per request, the sequence number of its first event
/// or why it was rejected (a cursor expectation that does not hold).
fn commit(log: &EventLog, group: &[Request]) -> Result<Vec<Result<Seq, Refused>>, LogError> {
    let txn = log.db()?.begin_write().map_err(storage)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut meta = txn.open_table(META).map_err(storage)?;
        let first = meta
            .get("next_seq")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(1);
        let mut events = txn.open_table(EVENTS).map_err(storage)?;
        let mut cursors = txn.open_table(CURSORS).map_err(storage)?;
        let mut positions = txn.open_table(POSITIONS).map_err(storage)?;
        let mut next = first;
        // Offsets and positions as this transaction has left them so far.
        let mut staged: HashMap<&str, u64> = HashMap::new();
        let mut staged_positions: HashMap<&str, u64> = HashMap::new();
        for req in group {
            if let Some(reason) = broken_expectation(&req.batch.cursors, &staged, &cursors)? {
                outcomes.push(Err(Refused::CursorMoved(reason)));
                continue;
            }
            if let Some(reason) =
                broken_position(&req.batch.positions, &staged_positions, &positions)?
            {
                outcomes.push(Err(Refused::PositionMoved(reason)));
                continue;
            }
            outcomes.push(Ok(next));
            for chunk in req.batch.events.chunks(BLOCK_EVENTS) {
                let bytes = block::encode(chunk).map_err(|reason| LogError::Encode {
                    what: "event block",
                    reason,
                })?;
                events.insert(next, bytes.as_slice()).map_err(storage)?;
                next += chunk.len() as u64;
            }
            for m in &req.batch.cursors {
                let bytes = rmp_serde::to_vec_named(&m.cursor).map_err(|e| LogError::Encode {
                    what: "file cursor",
                    reason: e.to_string(),
                })?;
                cursors
                    .insert(m.path.as_str(), bytes.as_slice())
                    .map_err(storage)?;
                staged.insert(m.path.as_str(), m.cursor.offset);
            }
            for m in &req.batch.positions {
                positions.insert(m.key.as_str(), m.to).map_err(storage)?;
                staged_positions.insert(m.key.as_str(), m.to);
            }
        }
        meta.insert("next_seq", next).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(outcomes)
}

/// Why a request's cursor moves do not start where the stored cursors are, if they do not.
fn broken_expectation(
    moves: &[CursorMove],
    staged: &HashMap<&str, u64>,
    table: &redb::Table<&str, &[u8]>,
) -> Result<Option<String>, LogError> {
    let mut local: HashMap<&str, u64> = HashMap::new();
    for m in moves {
        let current = match local
            .get(m.path.as_str())
            .or_else(|| staged.get(m.path.as_str()))
        {
            Some(offset) => Some(*offset),
            None => match table.get(m.path.as_str()).map_err(storage)? {
                Some(v) => Some(
                    rmp_serde::from_slice::<FileCursor>(v.value())
                        .map_err(|e| LogError::Corrupt {
                            seq: 0,
                            reason: format!("cursor of {}: {e}", m.path),
                        })?
                        .offset,
                ),
                None => None,
            },
        };
        if current != m.expected {
            return Ok(Some(format!(
                "{}: stored read position is {current:?}, this batch expected {:?} (an earlier batch of this file failed); it will be read again",
                m.path, m.expected
            )));
        }
        local.insert(m.path.as_str(), m.cursor.offset);
    }
    Ok(None)
}

/// Why a request's position moves do not start where the stored positions are, if they do not.
fn broken_position(
    moves: &[PositionMove],
    staged: &HashMap<&str, u64>,
    table: &redb::Table<&str, u64>,
) -> Result<Option<String>, LogError> {
    let mut local: HashMap<&str, u64> = HashMap::new();
    for m in moves {
        let current = match local
            .get(m.key.as_str())
            .or_else(|| staged.get(m.key.as_str()))
        {
            Some(p) => Some(*p),
            None => table
                .get(m.key.as_str())
                .map_err(storage)?
                .map(|v| v.value()),
        };
        if current != m.expected {
            return Ok(Some(format!(
                "{}: stored position is {current:?}, this batch expected {:?}",
                m.key, m.expected
            )));
        }
        local.insert(m.key.as_str(), m.to);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::message;
    use std::sync::{Arc, Mutex};

    #[test]
    fn appends_get_consecutive_seqs_and_cursors_commit_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let writer = Writer::start(
            log.clone(),
            Box::new(move |first, events| {
                seen2.lock().unwrap().push((first, events.len()));
            }),
        )
        .unwrap();
        let app = writer.appender();
        let a = app
            .append(Batch {
                events: vec![message("x", "1"), message("x", "2")],
                cursors: vec![],
                positions: Vec::new(),
            })
            .unwrap();
        let cursor = FileCursor {
            offset: 42,
            line: 3,
            ..Default::default()
        };
        let b = app
            .append(Batch {
                events: vec![message("y", "3")],
                cursors: vec![CursorMove {
                    path: "/f".into(),
                    expected: None,
                    cursor: cursor.clone(),
                }],
                positions: Vec::new(),
            })
            .unwrap();
        assert_eq!(a, Committed { first: 1, last: 2 });
        assert_eq!(b, Committed { first: 3, last: 3 });
        drop(app);
        writer.close();
        assert_eq!(*seen.lock().unwrap(), vec![(1, 2), (3, 1)]);
        assert_eq!(log.last_seq().unwrap(), 3);
        assert_eq!(log.cursors().unwrap(), vec![("/f".to_string(), cursor)]);
        let texts: Vec<u64> = log
            .read(2, 3, 10)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(texts, vec![2, 3]);
    }

    #[test]
    fn a_batch_whose_file_position_does_not_follow_the_stored_one_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let writer = Writer::start(log.clone(), Box::new(|_, _| {})).unwrap();
        let app = writer.appender();
        let at = |offset| FileCursor {
            offset,
            ..Default::default()
        };
        let mv = |expected, offset| CursorMove {
            path: "/f".into(),
            expected,
            cursor: at(offset),
        };
        app.append(Batch {
            events: vec![message("x", "chunk 1")],
            cursors: vec![mv(None, 10)],
            positions: Vec::new(),
        })
        .unwrap();
        // Chunk 3 arrives while chunk 2 (10..20) was lost: rejected, nothing of it stored.
        let err = app
            .append(Batch {
                events: vec![message("x", "chunk 3")],
                cursors: vec![mv(Some(20), 30)],
                positions: Vec::new(),
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected Some(20)"), "{err}");
        // Moves chain within one batch, and other batches are unaffected.
        let ok = app
            .append(Batch {
                events: vec![message("x", "chunk 2"), message("x", "chunk 3")],
                cursors: vec![mv(Some(10), 20), mv(Some(20), 30)],
                positions: Vec::new(),
            })
            .unwrap();
        assert_eq!(ok, Committed { first: 2, last: 3 });
        drop(app);
        writer.close();
        assert_eq!(log.cursors().unwrap()[0].1.offset, 30);
        assert_eq!(log.last_seq().unwrap(), 3);
    }

    #[test]
    fn positions_move_with_their_events_and_only_from_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let writer = Writer::start(log.clone(), Box::new(|_, _| {})).unwrap();
        let app = writer.appender();
        let mv = |expected, to| PositionMove {
            key: "hub/gpu7".into(),
            expected,
            to,
        };
        let batch = |text: &str, positions| Batch {
            events: vec![message("x", text)],
            cursors: vec![],
            positions,
        };
        app.append(batch("1..=5", vec![mv(None, 5)])).unwrap();
        // The same events again (a redelivery): refused, nothing stored twice.
        let err = app.append(batch("1..=5", vec![mv(None, 5)])).unwrap_err();
        assert!(
            err.to_string().contains("stored position is Some(5)"),
            "{err}"
        );
        app.append(batch("6..=9", vec![mv(Some(5), 9)])).unwrap();
        drop(app);
        writer.close();
        assert_eq!(log.position("hub/gpu7").unwrap(), Some(9));
        assert_eq!(log.position("hub/gpu8").unwrap(), None);
        assert_eq!(
            log.positions("hub/").unwrap(),
            vec![("hub/gpu7".to_string(), 9)]
        );
        assert_eq!(log.last_seq().unwrap(), 2);
    }

    #[test]
    fn raw_blocks_are_the_stored_blocks_with_their_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let writer = Writer::start(log.clone(), Box::new(|_, _| {})).unwrap();
        let app = writer.appender();
        for n in [BLOCK_EVENTS + 10, 3] {
            let events = (0..n).map(|i| message("x", &i.to_string())).collect();
            app.append(Batch {
                events,
                ..Default::default()
            })
            .unwrap();
        }
        drop(app);
        writer.close();
        let blocks = log.raw_blocks(5, 10).unwrap();
        let ranges: Vec<(u64, u64)> = blocks.iter().map(|b| (b.first, b.last)).collect();
        let b = BLOCK_EVENTS as u64;
        assert_eq!(ranges, vec![(1, b), (b + 1, b + 10), (b + 11, b + 13)]);
        assert_eq!(block::decode(&blocks[1].bytes).unwrap().len(), 10);
        assert_eq!(log.raw_blocks(b + 1, 1).unwrap()[0].first, b + 1);
        assert_eq!(
            log.raw_blocks(b + 2, 1).unwrap()[0].first,
            b + 1,
            "the block holding it"
        );
        assert!(
            log.raw_blocks(b + 14, 10).unwrap().is_empty(),
            "nothing beyond the end"
        );
    }

    #[test]
    fn reads_cross_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let writer = Writer::start(log.clone(), Box::new(|_, _| {})).unwrap();
        let events: Vec<Event> = (0..BLOCK_EVENTS + 10)
            .map(|i| message("x", &i.to_string()))
            .collect();
        writer
            .appender()
            .append(Batch {
                events,
                cursors: vec![],
                positions: Vec::new(),
            })
            .unwrap();
        writer.close();
        let got = log
            .read(BLOCK_EVENTS as u64 - 1, BLOCK_EVENTS as u64 + 2, 100)
            .unwrap();
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (BLOCK_EVENTS as u64 - 1..=BLOCK_EVENTS as u64 + 2).collect::<Vec<_>>()
        );
        assert_eq!(
            log.read(1, u64::MAX, usize::MAX).unwrap().len(),
            BLOCK_EVENTS + 10
        );
    }

    /// A checkpoint written in place reads back as written; one whose filling fails leaves the last one.
    #[test]
    fn checkpoints_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        log.save_checkpoint_with("v", 5, |b| {
            b.copy_from_slice(b"hello");
            Ok(())
        })
        .unwrap();
        assert_eq!(log.checkpoint("v").unwrap().as_deref(), Some(&b"hello"[..]));
        let err = log
            .save_checkpoint_with("v", 3, |_| Err("no".into()))
            .unwrap_err();
        assert!(err.to_string().contains("no"), "{err}");
        assert_eq!(log.checkpoint("v").unwrap().as_deref(), Some(&b"hello"[..]));
    }

    /// A long scan decodes ahead on a second thread: every event comes, in order, once; ranges that start and
    /// end inside blocks are cut there; stopping early stops it.
    #[test]
    fn long_scans_decode_ahead_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("log.redb")).unwrap();
        let writer = Writer::start(log.clone(), Box::new(|_, _| {})).unwrap();
        let n = crate::DECODE_AHEAD_FROM as usize * 2 + 7;
        for chunk in (0..n).collect::<Vec<_>>().chunks(7_000) {
            let events = chunk.iter().map(|i| message("x", &i.to_string())).collect();
            writer
                .appender()
                .append(Batch {
                    events,
                    cursors: vec![],
                    positions: Vec::new(),
                })
                .unwrap();
        }
        writer.close();
        let text = |e: &Event| match &e.kind {
            labd_schemas::EventKind::MessageLogged(m) => m.text.clone(),
            other => panic!("{other:?}"),
        };
        let (from, to) = (5u64, n as u64 - 3);
        let mut seen = Vec::new();
        log.scan(from, to, |seq, e| {
            assert_eq!(text(&e), (seq - 1).to_string());
            seen.push(seq);
            true
        })
        .unwrap();
        assert_eq!(seen, (from..=to).collect::<Vec<_>>());
        let mut blocks = 0;
        log.scan_blocks(1, u64::MAX, |_, _| {
            blocks += 1;
            blocks < 3
        })
        .unwrap();
        assert_eq!(blocks, 3);
    }
}
