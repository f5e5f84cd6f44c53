//! The alerts worker: turns what the alerts view found into events and sends them on. At start it records the
//! configuration file's rules (`alert_rule_set` for a new or changed one, `alert_rule_removed` for one no
//! longer there). Then, woken by every commit (and four times a second, for stalls):
//! - each condition pending in the view becomes an `alert_fired` (the view then holds its episode open, so it
//!   fires once per episode); a stall rule's silent runs are found here, from the registry and the clock;
//! - each firing goes to the journal at once, and to the rule's webhooks and commands in tasks of their own,
//!   whose ends are recorded as `alert_delivered` (delivered, failed after its tries, or held back by the rule's
//!   `max_per_minute`). A firing of the last ten minutes without a recorded delivery is sent again after a
//!   restart (at least once; the payload's `seq` tells a repeat).

pub mod sinks;

use crate::config;
use crate::views::alerts::episode_key;
use crate::views::live::LiveViews;
use labd_log::Seq;
use labd_log::writer::{Appender, Batch};
use labd_schemas::alert::{
    AlertDelivered, AlertFired, AlertKind, AlertRuleRemoved, AlertRuleSet, DEFAULT_MAX_PER_MINUTE,
    Delivery, RuleFrom, Subject,
};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, RunStatus, Source};
use sinks::Payload;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How far back a restarted worker sends firings that have no recorded delivery.
const CATCH_UP: Duration = Duration::from_secs(600);

/// What the worker needs of the daemon.
#[derive(Clone)]
pub struct Deps {
    pub views: LiveViews,
    pub appender: Appender,
    pub stopping: watch::Receiver<bool>,
    /// The sinks and the file's rules.
    pub settings: Arc<config::Alerts>,
    /// This labd's host name, in every payload.
    pub host: String,
}

/// Runs until labd stops.
pub async fn run(deps: Deps) {
    if let Err(e) = record(&deps, config_rule_changes(&deps)).await {
        tracing::error!("alerts: recording the configuration's rules failed: {e}");
    }
    let mut applied = deps.views.applied();
    let mut stopping = deps.stopping.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (done_tx, mut done) = mpsc::unbounded_channel::<(Seq, String, sinks::Outcome)>();
    let mut sending: HashSet<(Seq, String)> = HashSet::new();
    let mut sent: HashMap<(String, String), VecDeque<Instant>> = HashMap::new();
    let mut journaled: Seq = deps.views.read().applied;
    loop {
        // Stalls are looked for at the ticks; pending conditions after every commit too.
        let mut ticked = false;
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = tick.tick() => ticked = true,
            Some((seq, sink, (outcome, attempts, error))) = done.recv() => {
                sending.remove(&(seq, sink.clone()));
                let delivered = EventKind::AlertDelivered(AlertDelivered { firing: seq, sink, outcome, attempts, error });
                if let Err(e) = record(&deps, vec![delivered]).await {
                    tracing::error!("alerts: recording a delivery failed: {e}");
                }
                continue;
            }
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        let fire = due(&deps, ticked);
        if !fire.is_empty()
            && let Err(e) = record(&deps, fire).await
        {
            tracing::error!("alerts: recording firings failed: {e}");
        }
        // Every firing recorded since the last look goes to the journal; those of the rules' webhooks and
        // commands without a delivery go out.
        let now = now_micros();
        let (fresh, undelivered) = {
            let v = deps.views.read();
            let a = &v.alerts;
            let fresh: Vec<Payload> = a
                .firings
                .iter()
                .rev()
                .take_while(|f| f.seq > journaled)
                .filter(|f| {
                    f.host.is_none()
                        && a.rules
                            .get(&f.fired.rule)
                            .is_none_or(|r| r.rule.sends_to("journal"))
                })
                .map(|f| Payload::new(f.seq, f.time, &deps.host, &f.fired))
                .collect();
            journaled = journaled.max(v.applied);
            let mut out = Vec::new();
            let sinks = sink_names(&deps.settings);
            for f in a.firings.iter().rev() {
                if now - f.time > CATCH_UP.as_micros() as i64 {
                    break;
                }
                if f.host.is_some() {
                    continue;
                }
                let rule = a.rules.get(&f.fired.rule).map(|r| &r.rule);
                for sink in &sinks {
                    let wanted = rule.is_none_or(|r| r.sends_to(sink));
                    if wanted
                        && !f.deliveries.contains_key(sink)
                        && !sending.contains(&(f.seq, sink.clone()))
                    {
                        let per_minute = rule
                            .and_then(|r| r.max_per_minute)
                            .unwrap_or(DEFAULT_MAX_PER_MINUTE);
                        out.push((
                            Payload::new(f.seq, f.time, &deps.host, &f.fired),
                            sink.clone(),
                            per_minute,
                        ));
                    }
                }
            }
            (fresh, out)
        };
        if deps.settings.journal {
            fresh.iter().rev().for_each(sinks::journal);
        }
        // Oldest first, so the rate limit holds back the newest.
        for (payload, sink, per_minute) in undelivered.into_iter().rev() {
            sending.insert((payload.seq, sink.clone()));
            let window = sent
                .entry((payload.fired.rule.clone(), sink.clone()))
                .or_default();
            let now = Instant::now();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                window.pop_front();
            }
            let tx = done_tx.clone();
            if window.len() >= per_minute as usize {
                let _ = tx.send((
                    payload.seq,
                    sink,
                    (
                        Delivery::HeldBack,
                        0,
                        Some(format!(
                            "the rule's max_per_minute ({per_minute}) was reached"
                        )),
                    ),
                ));
                continue;
            }
            window.push_back(now);
            let settings = deps.settings.clone();
            tokio::spawn(async move {
                let outcome = send(&settings, &sink, &payload).await;
                let _ = tx.send((payload.seq, sink, outcome));
            });
        }
    }
}

/// The webhooks' and commands' names (the journal takes its firings at once).
fn sink_names(settings: &config::Alerts) -> Vec<String> {
    settings
        .webhooks
        .iter()
        .map(|w| w.name.clone())
        .chain(settings.commands.iter().map(|c| c.name.clone()))
        .collect()
}

async fn send(settings: &config::Alerts, sink: &str, p: &Payload) -> sinks::Outcome {
    if let Some(hook) = settings.webhooks.iter().find(|w| w.name == sink) {
        return sinks::webhook(hook, p).await;
    }
    if let Some(cmd) = settings.commands.iter().find(|c| c.name == sink) {
        return sinks::command(cmd, p).await;
    }
    (
        Delivery::Failed,
        0,
        Some(format!("no sink {sink:?} is configured")),
    )
}

/// The firings to record now: the view's pending conditions, and (`stalls`) the runs that went silent under a
/// stall rule.
fn due(deps: &Deps, stalls: bool) -> Vec<EventKind> {
    let v = deps.views.read();
    let a = &v.alerts;
    let mut out: Vec<EventKind> = a
        .pending
        .values()
        .map(|p| EventKind::AlertFired(Box::new(p.fired.clone())))
        .collect();
    let now = now_micros();
    for state in a.rules.values().filter(|_| stalls) {
        let r = &state.rule;
        let Some(after) = r.after.filter(|_| r.kind == AlertKind::Stall) else {
            continue;
        };
        let after_us = (after * 1e6) as i64;
        for rec in v.registry.experiments.values() {
            if rec.status != RunStatus::Running
                || rec.foreign
                || rec.last_activity < state.since
                || now - rec.last_activity < after_us
                || !r.selects_run(&rec.id.0, &rec.name)
            {
                continue;
            }
            let subject = Subject {
                run: Some(rec.id.clone()),
                ..Default::default()
            };
            if a.in_episode(&episode_key(&r.name, &subject)) {
                continue;
            }
            let silent = (now - rec.last_activity) as f64 / 1e6;
            out.push(EventKind::AlertFired(Box::new(AlertFired {
                rule: r.name.clone(),
                kind: AlertKind::Stall,
                message: format!(
                    "run {} ({}) has logged nothing for {silent:.0} s (rule: {after} s)",
                    rec.id, rec.name
                ),
                subject,
                step: None,
                value: None,
                trigger: None,
            })));
        }
    }
    out
}

/// `alert_rule_set` for each rule of the file that is new or changed, `alert_rule_removed` for each rule the
/// file set before and no longer has.
fn config_rule_changes(deps: &Deps) -> Vec<EventKind> {
    let v = deps.views.read();
    let rules = &v.alerts.rules;
    let mut out = Vec::new();
    for rule in &deps.settings.rules {
        let same = rules
            .get(&rule.name)
            .is_some_and(|r| r.from == RuleFrom::Config && r.rule == *rule);
        if !same {
            out.push(EventKind::AlertRuleSet(Box::new(AlertRuleSet {
                rule: rule.clone(),
                from: RuleFrom::Config,
            })));
        }
    }
    for (name, r) in rules {
        if r.from == RuleFrom::Config && !deps.settings.rules.iter().any(|x| &x.name == name) {
            out.push(EventKind::AlertRuleRemoved(AlertRuleRemoved {
                name: name.clone(),
                from: RuleFrom::Config,
            }));
        }
    }
    out
}

/// Appends daemon events and waits for their commit (the view has them then).
async fn record(deps: &Deps, kinds: Vec<EventKind>) -> Result<(), labd_log::LogError> {
    if kinds.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    let batch = Batch {
        events: kinds
            .into_iter()
            .map(|k| Event::new(now, Source::Daemon, k))
            .collect(),
        cursors: Vec::new(),
        positions: Vec::new(),
    };
    deps.appender.append_async(batch).await.map(|_| ())
}
