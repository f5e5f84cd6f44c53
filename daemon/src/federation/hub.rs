//! A hub's consumer: the hosts' shipments, through a durable JetStream consumer, into this log.
//!
//! For each host the log stores a position, `hub/<host>`: the last sequence number of that host's log applied
//! here. A shipment is appended (its events [`localize`]d, an unreadable one kept as an ingest problem with its
//! bytes) together with the move of that position, in one commit, and acknowledged to JetStream only after
//! it: a shipment delivered again (the hub died before its acknowledgment, the host republished after a
//! crash) ends at or before the position and is skipped; one that starts past it waits (negative
//! acknowledgment) for the shipments before it. So every host's events are here exactly once, in their order.

use super::localize::Names;
use super::{Deps, FederationError, backoff, connect, ensure_stream, pause};
use crate::mailbox::HUB_PREFIX;
use async_nats::jetstream;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::{FutureExt, StreamExt};
use labd_log::shipment::{self, Item};
use labd_log::writer::{Batch, PositionMove};
use labd_schemas::event::{IngestError, Severity};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Origin, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Messages taken at once (their batches reach the writer together and share its commits).
const CHUNK: usize = 256;
/// How long a shipment that arrived before the ones it follows waits to be delivered again.
const GAP_WAIT: Duration = Duration::from_millis(500);

/// Consumes until labd stops; NATS failures are reported in `/health` and retried with backoff.
pub async fn run(mut deps: Deps) {
    let mut wait = Duration::ZERO;
    let mut reported: Option<String> = None;
    loop {
        match session(&mut deps).await {
            Ok(()) => return,
            Err(e) => {
                let msg = e.to_string();
                if reported.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("federation hub: {msg}; consuming again shortly");
                    reported = Some(msg.clone());
                }
                deps.status.update(|h| {
                    h.connected = false;
                    h.error = Some(msg);
                });
                wait = backoff(wait);
                if pause(&mut deps.stopping, wait).await {
                    return;
                }
            }
        }
    }
}

/// What a session keeps between chunks.
struct Hub {
    /// Per host: the last sequence number applied (or on its way to the writer).
    positions: HashMap<String, u64>,
    names: Names,
    /// Events appended since the last progress line in the log, and when that was.
    progress: (u64, Instant),
    /// Hosts whose next shipment is missing (a later one came), at the position reported.
    gaps: HashMap<String, u64>,
}

/// How often a hub that is receiving says so in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

async fn session(deps: &mut Deps) -> Result<(), FederationError> {
    let f = deps.settings.clone();
    let client = connect(&f).await?;
    let js = jetstream::new(client);
    let stream = ensure_stream(&js, &f).await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(f.consumer.clone()),
            description: Some(format!("labd hub {}", f.host)),
            filter_subjects: f.hub_subjects(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await
        .map_err(|e| FederationError::Consume(format!("consumer {}: {e}", f.consumer)))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| FederationError::Consume(e.to_string()))?;
    // Every batch of an earlier session was committed (or failed) before its message was acknowledged, and
    // the views apply a commit before it is answered: positions and views agree here.
    let mut hub = Hub {
        positions: deps
            .log
            .positions(HUB_PREFIX)?
            .into_iter()
            .map(|(k, v)| (k[HUB_PREFIX.len()..].to_string(), v))
            .collect(),
        names: Names::from_views(&deps.views.read()),
        progress: (0, Instant::now()),
        gaps: HashMap::new(),
    };
    deps.status.update(|h| {
        h.connected = true;
        h.error = None;
    });
    tracing::info!(
        "federation hub: consuming {:?} through consumer {} ({} host(s) known)",
        f.hub_subjects(),
        f.consumer,
        hub.positions.len()
    );
    // Commits are awaited and messages acknowledged by a task of their own, so the next messages are decoded
    // while the writer commits the last ones.
    let failed: Arc<Mutex<Option<labd_log::LogError>>> = Arc::default();
    let (to_acker, from_hub) = tokio::sync::mpsc::channel::<Prepared>(2);
    let acker = tokio::spawn(acknowledge(from_hub, failed.clone(), deps.status.clone()));
    let mut stopping = deps.stopping.clone();
    let outcome = loop {
        if let Some(e) = lock(&failed).take() {
            // The positions this session assumed are not all stored: start again from the log's.
            break Err(e.into());
        }
        let first = tokio::select! {
            m = messages.next() => m,
            _ = stopping.changed() => break Ok(()),
        };
        let Some(first) = first else {
            break Err(FederationError::Consume(
                "the consumer's messages ended".into(),
            ));
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => break Err(FederationError::Consume(e.to_string())),
        };
        let mut chunk = vec![first];
        let mut broken = None;
        while chunk.len() < CHUNK {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => chunk.push(m),
                Some(Some(Err(e))) => {
                    broken = Some(FederationError::Consume(e.to_string()));
                    break;
                }
                _ => break,
            }
        }
        let prepared = prepare(deps, &mut hub, chunk).await;
        if to_acker.send(prepared).await.is_err() {
            break Err(FederationError::Consume(
                "the acknowledging task ended".into(),
            ));
        }
        if let Some(e) = broken {
            break Err(e);
        }
    };
    // What was handed to the writer is committed (or refused) and answered before the session ends.
    drop(to_acker);
    let _ = acker.await;
    match (outcome, lock(&failed).take()) {
        (Ok(()), Some(e)) => Err(e.into()),
        (outcome, _) => outcome,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A chunk of messages with what was decided for each and its batch handed to the writer.
struct Prepared {
    messages: Vec<jetstream::Message>,
    kinds: Vec<Kind>,
    pending: Vec<Option<Result<labd_log::writer::Pending, labd_log::LogError>>>,
    received: u64,
    duplicates: u64,
    held: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Skip,
    Later,
}

/// What to do with one message.
enum Plan {
    /// Append this batch, then acknowledge.
    Append(Batch),
    /// Acknowledge without appending (a duplicate, this hub's own events).
    Skip,
    /// Deliver again later: it came before the shipments it follows.
    Later,
}

/// Decides for each message of a chunk and hands the batches to the writer at once (it commits them together).
async fn prepare(deps: &Deps, hub: &mut Hub, messages: Vec<jetstream::Message>) -> Prepared {
    let mut kinds = Vec::with_capacity(messages.len());
    let mut batches = Vec::with_capacity(messages.len());
    let (mut received, mut duplicates, mut held) = (0u64, 0u64, 0u64);
    for msg in &messages {
        match plan(deps, hub, msg, &mut held) {
            Plan::Append(b) => {
                received += b.events.len() as u64;
                kinds.push(Kind::Append);
                batches.push(Some(b));
            }
            Plan::Skip => {
                duplicates += 1;
                kinds.push(Kind::Skip);
                batches.push(None);
            }
            Plan::Later => {
                kinds.push(Kind::Later);
                batches.push(None);
            }
        }
    }
    let appender = deps.appender.clone();
    let count = batches.len();
    let pending = tokio::task::spawn_blocking(move || {
        batches
            .into_iter()
            .map(|b| b.map(|b| appender.submit(b)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_else(|_| {
        (0..count)
            .map(|_| Some(Err(labd_log::LogError::WriterGone)))
            .collect()
    });
    hub.progress.0 += received;
    if hub.progress.0 > 0 && hub.progress.1.elapsed() >= PROGRESS_EVERY {
        let mut at: Vec<String> = hub
            .positions
            .iter()
            .map(|(h, p)| format!("{h} at {p}"))
            .collect();
        at.sort();
        tracing::info!(
            "federation hub: {} events received in {:.0}s ({})",
            hub.progress.0,
            hub.progress.1.elapsed().as_secs_f64(),
            at.join(", ")
        );
        hub.progress = (0, Instant::now());
    }
    Prepared {
        messages,
        kinds,
        pending,
        received,
        duplicates,
        held,
    }
}

/// Waits for each chunk's commits in order and acknowledges each message after its own; after a refusal every
/// message still unacknowledged is delivered again (and the session starts over from the stored positions).
async fn acknowledge(
    mut chunks: tokio::sync::mpsc::Receiver<Prepared>,
    failed: Arc<Mutex<Option<labd_log::LogError>>>,
    status: crate::mailbox::Federation,
) {
    let mut broken = false;
    while let Some(p) = chunks.recv().await {
        for ((msg, kind), submitted) in p.messages.iter().zip(&p.kinds).zip(p.pending) {
            if broken {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            let outcome = match submitted {
                Some(Ok(rx)) => match rx.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(refused)) => Err(labd_log::LogError::from(refused)),
                    Err(_) => Err(labd_log::LogError::WriterGone),
                },
                Some(Err(e)) => Err(e),
                None => Ok(()),
            };
            match (outcome, kind) {
                (Ok(()), Kind::Later) => {
                    let _ = msg.ack_with(AckKind::Nak(Some(GAP_WAIT))).await;
                }
                (Ok(()), _) => {
                    let _ = msg.ack().await;
                }
                (Err(e), _) => {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                    *lock(&failed) = Some(e);
                    broken = true;
                }
            }
        }
        if !broken {
            status.update(|h| {
                if let Some(hub) = &mut h.hub {
                    hub.received += p.received;
                    hub.duplicates += p.duplicates;
                    hub.held += p.held;
                }
            });
        }
    }
}

/// Decides what to do with one message, moving the host's position when it is to be appended.
fn plan(deps: &Deps, hub: &mut Hub, msg: &jetstream::Message, held: &mut u64) -> Plan {
    let f = &deps.settings;
    let subject = msg.subject.as_str();
    let from_subject = subject
        .strip_prefix(f.subject_prefix.as_str())
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or("");
    let payload = &msg.payload;
    let problem = |host: &str, seq: u64, reason: String, bytes: Option<Vec<u8>>| {
        let mut e = Event::new(
            now_micros(),
            Source::Daemon,
            EventKind::IngestError(IngestError {
                path: format!("nats:{subject}"),
                line: Some(seq),
                severity: Severity::Error,
                reason,
                held: bytes.map(serde_bytes::ByteBuf::from),
            }),
        );
        e.origin = Some(Box::new(Origin {
            host: host.to_string(),
            seq,
            id: None,
        }));
        e
    };
    let header = match shipment::header(payload) {
        Ok(h) => h,
        Err(reason) => {
            // Not a shipment at all: kept as a problem of the hub's own; nothing of any host's moves.
            tracing::warn!("federation hub: a message on {subject} is not a shipment: {reason}");
            *held += 1;
            return Plan::Append(Batch {
                events: vec![problem(from_subject, 0, reason, Some(payload.to_vec()))],
                ..Batch::default()
            });
        }
    };
    let host = header.host.clone();
    if host != from_subject {
        tracing::warn!("federation hub: a shipment on {subject} says it is from {host}: refused");
        return Plan::Skip;
    }
    if host == f.host && f.role.publishes() {
        // This labd's own events, published by itself: they are in this log already.
        return Plan::Skip;
    }
    let at = hub.positions.get(&host).copied();
    let pos = at.unwrap_or(0);
    if header.last <= pos {
        return Plan::Skip;
    }
    if header.first > pos + 1 {
        // The stream holds a host's shipments in order: one missing before this one was lost by NATS (a
        // single server after a power loss, a stream made again) or is being delivered again just now.
        if hub.gaps.get(&host) != Some(&pos) {
            let msg = format!(
                "{host}'s events {}..={} arrived but {}..{} did not: waiting for them; if the stream lost them, `labctl republish --from {}` on {host} sends them again",
                header.first,
                header.last,
                pos + 1,
                header.first,
                pos + 1
            );
            tracing::warn!("federation hub: {msg}");
            deps.status.update(|h| h.error = Some(msg));
            hub.gaps.insert(host, pos);
        }
        return Plan::Later;
    }
    if hub.gaps.remove(&host).is_some() {
        deps.status.update(|h| h.error = None);
    }
    let events = match shipment::decode(payload) {
        Ok((_, items)) => {
            let ids = deps.ids.clone();
            let views = deps.views.clone();
            let in_use = move |id: &str, sweep: bool| {
                let v = views.read();
                if sweep {
                    v.sweeps.sweeps.get(id).is_some_and(|s| s.host.is_none())
                } else {
                    v.benchmarks
                        .benches
                        .get(id)
                        .is_some_and(|b| b.origin.is_none())
                }
            };
            items
                .into_iter()
                .filter(|i| i.seq() > pos)
                .map(|i| match i {
                    Item::Event(seq, e) => hub.names.localize(&ids, &in_use, &host, seq, e),
                    Item::Held { seq, bytes, reason } => {
                        *held += 1;
                        tracing::warn!(
                            "federation hub: event {seq} of {host} kept unread: {reason}"
                        );
                        problem(
                            &host,
                            seq,
                            format!("event {seq} of {host}: {reason}; kept unread"),
                            Some(bytes),
                        )
                    }
                })
                .collect()
        }
        Err(reason) => {
            *held += 1;
            tracing::warn!(
                "federation hub: {host}'s events {}..={} kept unread: {reason}",
                header.first,
                header.last
            );
            vec![problem(
                &host,
                header.first,
                format!(
                    "events {}..={} of {host}: {reason}; kept unread",
                    header.first, header.last
                ),
                Some(payload.to_vec()),
            )]
        }
    };
    hub.positions.insert(host.clone(), header.last);
    Plan::Append(Batch {
        events,
        cursors: Vec::new(),
        positions: vec![PositionMove {
            key: format!("{HUB_PREFIX}{host}"),
            expected: at,
            to: header.last,
        }],
    })
}
