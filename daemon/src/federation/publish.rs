//! A host's publisher: its log, in order, to `<subject_prefix>.<host>`, from where JetStream last acknowledged.
//!
//! Each stored block goes out as one shipment (split where it exceeds the server's `max_payload`) with the
//! message id `<host>.<first>-<last>`: after a crash, the same blocks go out again under the same ids, and
//! JetStream's de-duplication drops them (a hub would skip them by position anyway). Shipments are pipelined
//! (a window of them awaits its acknowledgments at once); the acknowledged position is stored in the log every
//! [`STORE_EVERY`]. Ingestion never waits for any of this: a NATS that is down only makes the lag grow.

use super::{Deps, FederationError, backoff, connect, ensure_stream, pause};
use crate::mailbox::{HUB_PREFIX, PUBLISHED};
use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use labd_log::shipment;
use labd_log::writer::{Batch, PositionMove};
use labd_log::{RawBlock, Seq, block};
use labd_schemas::Event;
use std::time::{Duration, Instant};

/// Shipments sent before their acknowledgments are awaited.
const WINDOW: usize = 256;
/// Stored blocks read from the log at a time.
const BLOCKS_PER_READ: usize = 64;
/// How often the acknowledged position is stored while publishing.
const STORE_EVERY: Duration = Duration::from_millis(200);
/// How often the log is looked at for new events when all is published.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often a publisher behind says how far it is, in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Room left in a message for its headers.
const HEADER_ROOM: usize = 1024;

/// Publishes until labd stops; NATS failures are reported in `/health` and retried with backoff, from the last
/// acknowledged event.
pub async fn run(mut deps: Deps) {
    let mut wait = Duration::ZERO;
    let mut reported: Option<String> = None;
    loop {
        match session(&mut deps).await {
            Ok(()) => return,
            Err(e) => {
                let msg = e.to_string();
                if reported.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(
                        "federation: {msg}; publishing resumes from the last acknowledged event"
                    );
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

/// One connection's worth of publishing; returns `Ok` when labd stops.
async fn session(deps: &mut Deps) -> Result<(), FederationError> {
    let f = deps.settings.clone();
    let client = connect(&f).await?;
    let js = jetstream::new(client.clone());
    ensure_stream(&js, &f).await?;
    deps.status.update(|h| {
        h.connected = true;
        h.error = None;
    });
    let max = client
        .server_info()
        .max_payload
        .saturating_sub(HEADER_ROOM)
        .max(4096);
    let subject = f.subject();
    let log = deps.log.clone();
    let mut stored = log.position(PUBLISHED)?;
    let mut sent = stored.unwrap_or(0);
    tracing::info!(
        "federation: publishing to {subject} from event {} (connected to {})",
        sent + 1,
        f.shown_url()
    );
    let mut window: Vec<(Seq, PublishAckFuture)> = Vec::with_capacity(WINDOW);
    let mut acked = sent;
    // After a republish request: shipments up to this sequence number get ids JetStream has not seen.
    let mut again: Option<(Seq, String)> = None;
    let mut last_store = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        let stopping = *deps.stopping.borrow();
        let newest = log.last_seq()?;
        if !stopping && sent < newest {
            // A log without a hub's events holds only this host's: its blocks go out as they are stored.
            let own_only = log.positions(HUB_PREFIX)?.is_empty();
            let (reader, from) = (log.clone(), sent + 1);
            let blocks =
                tokio::task::spawn_blocking(move || reader.raw_blocks(from, BLOCKS_PER_READ))
                    .await
                    .map_err(|e| FederationError::Publish(e.to_string()))??;
            'blocks: for b in &blocks {
                for (first, last, bytes) in shipments(&f.host, b, sent + 1, own_only, max)? {
                    let publish = jetstream::message::PublishMessage::build()
                        .payload(bytes.into())
                        .message_id(match &again {
                            Some((upto, tag)) if first <= *upto => {
                                format!("{}.{first}-{last}.{tag}", f.host)
                            }
                            _ => format!("{}.{first}-{last}", f.host),
                        });
                    let ack = js
                        .send_publish(subject.clone(), publish)
                        .await
                        .map_err(|e| FederationError::Publish(e.to_string()))?;
                    window.push((last, ack));
                    sent = last;
                    if window.len() >= WINDOW {
                        break 'blocks;
                    }
                }
            }
        }
        // The window's acknowledgments, in order: the position moves to the last of them.
        for (last, ack) in window.drain(..) {
            let ack = ack
                .await
                .map_err(|e| FederationError::Publish(format!("event {last}: {e}")))?;
            if ack.duplicate {
                tracing::debug!("federation: events up to {last} were published already");
            }
            acked = last;
        }
        // A republish request moved the stored position back (`POST /federation/republish`).
        let now_stored = log.position(PUBLISHED)?;
        if now_stored != stored && !stopping {
            let from = now_stored.unwrap_or(0);
            tracing::info!("federation: publishing again from event {}", from + 1);
            again = Some((sent, format!("again-{}", labd_schemas::time::now_micros())));
            (stored, sent, acked) = (now_stored, from, from);
            continue;
        }
        let caught_up = sent >= newest;
        if stored.is_none_or(|s| acked > s)
            && acked > 0
            && (stopping || caught_up || last_store.elapsed() >= STORE_EVERY)
        {
            deps.appender
                .append_async(Batch {
                    events: Vec::new(),
                    cursors: Vec::new(),
                    positions: vec![PositionMove {
                        key: PUBLISHED.into(),
                        expected: stored,
                        to: acked,
                    }],
                })
                .await?;
            stored = Some(acked);
            last_store = Instant::now();
            if !caught_up && last_progress.elapsed() >= PROGRESS_EVERY {
                tracing::info!(
                    "federation: published up to event {acked} of {newest} ({} to go)",
                    newest - acked
                );
                last_progress = Instant::now();
            }
        }
        if stopping {
            return Ok(());
        }
        if caught_up && pause(&mut deps.stopping, IDLE_POLL).await {
            // One more pass stores what was acknowledged last.
            continue;
        }
    }
}

/// The shipments of one stored block, from `from` on: the block as stored when it holds only this host's
/// events from its start and fits; else its events (this host's own, their range covered whole) in as many
/// shipments as `max` bytes need.
fn shipments(
    host: &str,
    b: &RawBlock,
    from: Seq,
    own_only: bool,
    max: usize,
) -> Result<Vec<(Seq, Seq, Vec<u8>)>, FederationError> {
    let bad = |e: String| FederationError::Publish(format!("events {}..={}: {e}", b.first, b.last));
    if own_only && b.first >= from {
        let bytes = shipment::encode(&shipment::Shipment {
            format: shipment::format_for(&b.bytes),
            host: host.to_string(),
            first: b.first,
            last: b.last,
            seqs: None,
            block: b.bytes.clone(),
        })
        .map_err(bad)?;
        if bytes.len() <= max {
            return Ok(vec![(b.first, b.last, bytes)]);
        }
    }
    let events = block::decode(&b.bytes).map_err(bad)?;
    if events.len() as u64 != b.last + 1 - b.first {
        return Err(bad(format!(
            "the stored block holds {} events (damaged log?)",
            events.len()
        )));
    }
    let first = from.max(b.first);
    let items: Vec<(Seq, Event)> = (b.first..=b.last)
        .zip(events)
        .filter(|(seq, e)| *seq >= first && e.origin.is_none())
        .collect();
    let mut out = Vec::new();
    split(host, first, b.last, &items, max, &mut out).map_err(bad)?;
    Ok(out)
}

/// Shipments covering `first..=last` with `items`, halved until each fits in `max` bytes.
fn split(
    host: &str,
    first: Seq,
    last: Seq,
    items: &[(Seq, Event)],
    max: usize,
    out: &mut Vec<(Seq, Seq, Vec<u8>)>,
) -> Result<(), String> {
    let (seqs, events): (Vec<Seq>, Vec<Event>) = items.iter().cloned().unzip();
    let bytes = shipment::build(host, first, last, &seqs, &events)?;
    if bytes.len() <= max {
        out.push((first, last, bytes));
        return Ok(());
    }
    if items.len() <= 1 {
        return Err(format!(
            "event {first} alone takes {} bytes, more than the NATS server's max_payload allows ({max}): raise max_payload in nats-server's configuration",
            bytes.len()
        ));
    }
    let mid = items.len() / 2;
    let at = items[mid].0;
    split(host, first, at - 1, &items[..mid], max, out)?;
    split(host, at, last, &items[mid..], max, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::event::{MessageLogged, Origin};
    use labd_schemas::{EventKind, ExperimentId, Source};

    fn message(i: usize) -> Event {
        Event::new(
            1,
            Source::Daemon,
            EventKind::MessageLogged(MessageLogged {
                exp: ExperimentId("a".into()),
                // Text zstd cannot squeeze: pseudo-random hex.
                text: (0..8)
                    .map(|k| {
                        format!(
                            "{:016x}",
                            ((i * 8 + k) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        )
                    })
                    .collect(),
                level: "info".into(),
                extra: Default::default(),
            }),
        )
    }

    #[test]
    fn a_block_goes_as_stored_or_split_and_never_sends_on_another_hosts_events() {
        let mut events: Vec<Event> = (0..200).map(message).collect();
        let block = RawBlock {
            first: 11,
            last: 210,
            bytes: block::encode(&events).unwrap(),
        };
        let whole = shipments("gpu7", &block, 11, true, 1 << 20).unwrap();
        assert_eq!(whole.len(), 1);
        let (_, items) = shipment::decode(&whole[0].2).unwrap();
        assert_eq!(items.len(), 200);
        // Small messages: split, ranges back to back, every event once.
        let parts = shipments("gpu7", &block, 11, true, 2000).unwrap();
        assert!(parts.len() > 2);
        let mut next = 11;
        let mut seen = Vec::new();
        for (first, last, bytes) in &parts {
            assert_eq!(*first, next);
            assert!(bytes.len() <= 2000);
            next = last + 1;
            seen.extend(shipment::decode(bytes).unwrap().1.iter().map(|i| i.seq()));
        }
        assert_eq!(next, 211);
        assert_eq!(seen, (11..=210).collect::<Vec<_>>());
        // From the middle of the block, with events received from another host in it.
        events[150].origin = Some(Box::new(Origin {
            host: "gpu8".into(),
            seq: 3,
            id: None,
        }));
        let block = RawBlock {
            bytes: block::encode(&events).unwrap(),
            ..block
        };
        let rest = shipments("gpu7", &block, 100, false, 1 << 20).unwrap();
        assert_eq!((rest[0].0, rest[0].1), (100, 210));
        let (_, items) = shipment::decode(&rest[0].2).unwrap();
        let seqs: Vec<Seq> = items.iter().map(|i| i.seq()).collect();
        assert_eq!(seqs.len(), 110);
        assert!(!seqs.contains(&161));
    }
}
