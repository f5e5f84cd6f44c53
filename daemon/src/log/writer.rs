//! The single writer of the log. Batches queue on a bounded channel; the writer thread takes every batch
//! waiting (group commit), writes their events and file cursors in one redb transaction, commits it durably,
//! then hands the committed events to `on_commit` (the views) and answers each batch. An event counts only
//! once that commit returned.

use super::{CURSORS, EVENTS, EventLog, FileCursor, LogError, META, Seq, block, storage};
use labd_schemas::Event;
use redb::ReadableTable;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Most events in one stored block (bounds the work of reading a short range).
const BLOCK_EVENTS: usize = 1024;
/// Most events grouped into one transaction.
const GROUP_EVENTS: usize = 256 * 1024;

/// Events to append, with the file cursors that must move in the same transaction.
#[derive(Default, Debug)]
pub struct Batch {
    pub events: Vec<Event>,
    pub cursors: Vec<(String, FileCursor)>,
}

/// Where a committed batch landed: `first..=last` (empty when `last < first`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    pub first: Seq,
    pub last: Seq,
}

/// What a committer waits on.
pub type Pending = oneshot::Receiver<Result<Committed, String>>;

/// Called on the writer thread after each commit with the batch's first sequence number and its events.
pub type OnCommit = Box<dyn FnMut(Seq, &[Event]) + Send>;

struct Request {
    batch: Batch,
    reply: oneshot::Sender<Result<Committed, String>>,
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
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { batch, reply })
            .map_err(|_| LogError::WriterGone)?;
        Ok(rx)
    }

    /// Appends and waits for the commit (blocking; not for async code).
    pub fn append(&self, batch: Batch) -> Result<Committed, LogError> {
        let rx = self.submit(batch)?;
        rx.blocking_recv()
            .map_err(|_| LogError::WriterGone)?
            .map_err(LogError::WriteFailed)
    }

    /// Appends and waits for the commit, from async code.
    pub async fn append_async(&self, batch: Batch) -> Result<Committed, LogError> {
        let this = self.clone();
        let rx = tokio::task::spawn_blocking(move || this.submit(batch))
            .await
            .map_err(|_| LogError::WriterGone)??;
        rx.await
            .map_err(|_| LogError::WriterGone)?
            .map_err(LogError::WriteFailed)
    }
}

fn run(log: EventLog, rx: Receiver<Request>, mut on_commit: OnCommit) {
    while let Ok(first) = rx.recv() {
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
        match commit(&log, &group) {
            Ok(mut next) => {
                for req in group {
                    let n = req.batch.events.len() as u64;
                    if n > 0 {
                        on_commit(next, &req.batch.events);
                    }
                    let _ = req.reply.send(Ok(Committed {
                        first: next,
                        last: next + n - 1,
                    }));
                    next += n;
                }
            }
            Err(e) => {
                tracing::error!("log commit failed: {e}");
                let msg = e.to_string();
                for req in group {
                    let _ = req.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// Writes the group in one durable transaction; returns the sequence number of its first event.
fn commit(log: &EventLog, group: &[Request]) -> Result<Seq, LogError> {
    let txn = log.db().begin_write().map_err(storage)?;
    let first;
    {
        let mut meta = txn.open_table(META).map_err(storage)?;
        first = meta
            .get("next_seq")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(1);
        let mut events = txn.open_table(EVENTS).map_err(storage)?;
        let mut cursors = txn.open_table(CURSORS).map_err(storage)?;
        let mut next = first;
        for req in group {
            for chunk in req.batch.events.chunks(BLOCK_EVENTS) {
                let bytes = block::encode(chunk).map_err(|reason| LogError::Encode {
                    what: "event block",
                    reason,
                })?;
                events.insert(next, bytes.as_slice()).map_err(storage)?;
                next += chunk.len() as u64;
            }
            for (path, cursor) in &req.batch.cursors {
                let bytes = rmp_serde::to_vec_named(cursor).map_err(|e| LogError::Encode {
                    what: "file cursor",
                    reason: e.to_string(),
                })?;
                cursors
                    .insert(path.as_str(), bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        meta.insert("next_seq", next).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::message;
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
                cursors: vec![("/f".into(), cursor.clone())],
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
}
