//! The alerts view: the rules in force, every rule's state over the points and runs it watches, the firings and
//! their deliveries. It is a function of the log like every view: rules enter the log (`alert_rule_set`), a
//! condition met is *pending* here until the alerts worker records its `alert_fired`, and an episode ends when
//! the condition stops holding (a later good point, a new point after a stall), so after a restart or a replay
//! the same points give the same firings, none twice.
//!
//! Stalls are the one condition without an event (silence): the worker decides those from the registry's
//! last activity and the clock, and this view ends a stall's episode when the run is heard from again.

use super::registry::{Registry, metric_key};
use super::sweeps::Sweeps;
use labd_log::Seq;
use labd_schemas::alert::{
    AlertDelivered, AlertFired, AlertKind, AlertRule, Delivery, RuleFrom, Subject,
};
use labd_schemas::sweep::SweepState;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Firings kept (the oldest are let go; `fired` counts them all).
const KEEP_FIRINGS: usize = 10_000;

/// A rule in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub rule: AlertRule,
    pub from: RuleFrom,
    /// When it was set (Unix µs): a stall is only a stall of a run heard from since.
    pub since: i64,
    /// Firings of this rule.
    pub fired: u64,
    /// Metric keys → whether `metric` matches them (a glob per point would cost more than the point).
    #[serde(skip)]
    metrics: Cache<FxHashMap<String, bool>>,
    /// Runs → whether `runs` selects them.
    #[serde(skip)]
    runs: Cache<FxHashMap<ExperimentId, bool>>,
    /// Divergence: per run and metric key, the running minimum and the run of points above the limit.
    tracks: FxHashMap<ExperimentId, FxHashMap<String, Track>>,
    /// Runs → how many of this rule's episodes about them are pending or open (a good point can end one only
    /// where there is one: elsewhere it costs nothing).
    active: FxHashMap<ExperimentId, u32>,
}

impl RuleState {
    fn watches(&mut self, key: &str, name: &str) -> bool {
        if let Some(&m) = self.metrics.0.get(key) {
            return m;
        }
        let glob = self.rule.metric.as_deref().unwrap_or("");
        let m =
            labd_schemas::glob::glob_match(glob, key) || labd_schemas::glob::glob_match(glob, name);
        self.metrics.0.insert(key.to_string(), m);
        m
    }

    /// Whether `runs` selects the run (`name` is looked up only the first time).
    fn selects<'a>(&mut self, run: &ExperimentId, name: impl FnOnce() -> &'a str) -> bool {
        if let Some(&s) = self.runs.0.get(run) {
            return s;
        }
        let s = self.rule.runs.is_none() || self.rule.selects_run(&run.0, name());
        self.runs.0.insert(run.clone(), s);
        s
    }
}

/// What a point said under a rule.
enum Verdict {
    /// The condition holds: fire unless its episode is pending or open.
    Bad(String, AlertFired),
    /// It does not (an open episode ends).
    Good(String),
}

/// What a view keeps only to go faster: not part of its state (never saved, equal whatever it holds).
#[derive(Clone, Debug, Default)]
struct Cache<T>(T);

impl<T> PartialEq for Cache<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A metric's state under one rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Track {
    /// The smallest value so far (divergence).
    min: Option<f64>,
    /// Points in a row above the divergence limit.
    above: u32,
}

/// A condition met whose firing is not recorded yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub fired: AlertFired,
    /// The condition ended again before the firing was recorded: the episode ends with it.
    pub ended: bool,
}

/// An episode's state: pending (met, not recorded), open (recorded, still holding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Episode {
    Pending,
    Open(Seq),
}

/// One firing as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub seq: Seq,
    /// Unix µs.
    pub time: i64,
    pub fired: AlertFired,
    /// Whether its episode is still open (the condition still holds).
    pub open: bool,
    /// On a hub, another host's firing: that host.
    pub host: Option<String>,
    /// Sink name → how it fared.
    pub deliveries: BTreeMap<String, AlertDelivered>,
}

/// The alerts view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Alerts {
    pub rules: BTreeMap<String, RuleState>,
    /// The latest firings, oldest first.
    pub firings: VecDeque<Firing>,
    /// Firings recorded in all.
    pub fired: u64,
    /// Conditions met, not yet recorded, by episode key.
    pub pending: BTreeMap<String, Pending>,
    /// Episodes pending or open, by key (`rule`, then the subject's parts).
    episodes: HashMap<String, Episode>,
    /// Runs with an open stall episode → its keys (the run's next event ends it).
    stalled: HashMap<ExperimentId, Vec<String>>,
    /// Whether any rule watches points (else a metrics row costs one check).
    on_points: bool,
    /// Scratch: a metrics row's keys.
    #[serde(skip)]
    keys: Cache<Vec<String>>,
}

/// The key of an episode: the rule and what it is about.
pub fn episode_key(rule: &str, s: &Subject) -> String {
    fn part(p: Option<&str>) -> &str {
        p.unwrap_or("")
    }
    format!(
        "{rule}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        part(s.run.as_ref().map(|r| r.0.as_str())),
        part(s.metric.as_deref()),
        part(s.sweep.as_deref()),
        part(s.trial.as_deref())
    )
}

impl Alerts {
    /// Applies one event; `registry` and `sweeps` already have it (a failed trial is known by its status there).
    pub fn apply(&mut self, seq: Seq, event: &Event, registry: &Registry, sweeps: &Sweeps) {
        if self.rules.is_empty() && self.firings.is_empty() && !is_alert_event(&event.kind) {
            return;
        }
        if !self.stalled.is_empty()
            && let Some(run) = event.kind.experiment()
            && let Some(keys) = self.stalled.remove(run)
        {
            for key in keys {
                self.end(&key);
            }
        }
        let foreign = event.origin.as_ref().map(|o| o.host.clone());
        match &event.kind {
            EventKind::AlertRuleSet(r) if foreign.is_none() => {
                self.remove_rule(&r.rule.name);
                self.rules.insert(
                    r.rule.name.clone(),
                    RuleState {
                        rule: r.rule.clone(),
                        from: r.from,
                        since: event.time,
                        fired: 0,
                        metrics: Cache::default(),
                        runs: Cache::default(),
                        tracks: FxHashMap::default(),
                        active: FxHashMap::default(),
                    },
                );
                self.on_points = self.rules.values().any(|r| r.rule.kind.on_points());
            }
            EventKind::AlertRuleRemoved(r) if foreign.is_none() => {
                self.remove_rule(&r.name);
                self.on_points = self.rules.values().any(|r| r.rule.kind.on_points());
            }
            EventKind::AlertFired(f) => self.fired(seq, event.time, f, foreign),
            EventKind::AlertDelivered(d) if foreign.is_none() => {
                if let Some(f) = self.firing_mut(d.firing) {
                    f.deliveries.insert(d.sink.clone(), d.clone());
                }
            }
            EventKind::MetricsLogged(m) if self.on_points => {
                let name = || {
                    registry
                        .experiments
                        .get(&m.exp)
                        .map(|r| r.name.as_str())
                        .unwrap_or("")
                };
                // The values' keys (`split/name`), built once for every rule.
                let mut keys = std::mem::take(&mut self.keys.0);
                keys.resize_with(m.values.len(), String::new);
                for ((metric, _), key) in m.values.iter().zip(keys.iter_mut()) {
                    metric_key(m.split.as_deref(), metric, key);
                }
                let mut verdicts = Vec::new();
                for (rule, state) in self.rules.iter_mut() {
                    if !state.rule.kind.on_points() || !state.selects(&m.exp, name) {
                        continue;
                    }
                    for ((metric, &value), key) in m.values.iter().zip(&keys) {
                        if !state.watches(key, metric) {
                            continue;
                        }
                        let point = Point {
                            run: &m.exp,
                            key,
                            step: m.step,
                            value,
                            seq,
                        };
                        if let Some(v) = judge(rule, state, point) {
                            verdicts.push(v);
                        }
                    }
                }
                self.keys.0 = keys;
                for v in verdicts {
                    match v {
                        Verdict::Bad(key, fired) => {
                            if !self.episodes.contains_key(&key) {
                                self.begin(&key, Episode::Pending);
                                self.pending.insert(
                                    key,
                                    Pending {
                                        fired,
                                        ended: false,
                                    },
                                );
                            }
                        }
                        Verdict::Good(key) => self.end(&key),
                    }
                }
            }
            EventKind::StatusChanged(s) if s.status == RunStatus::Failed => {
                let name = registry
                    .experiments
                    .get(&s.exp)
                    .map(|r| r.name.as_str())
                    .unwrap_or("");
                let subject = Subject {
                    run: Some(s.exp.clone()),
                    ..Default::default()
                };
                let message = match &s.notes {
                    Some(n) => format!("run {} failed: {n}", s.exp),
                    None => format!("run {} failed", s.exp),
                };
                self.once(AlertKind::Failed, &subject, seq, message, |r| {
                    r.selects_run(&s.exp.0, name)
                });
            }
            EventKind::TrialChanged(t) => {
                let Some(trial) = sweeps
                    .sweeps
                    .get(&t.sweep)
                    .and_then(|s| s.trials.get(&t.trial))
                else {
                    return;
                };
                if !trial.status.is_failed() {
                    return;
                }
                let subject = Subject {
                    run: trial.experiment_id.clone(),
                    sweep: Some(t.sweep.clone()),
                    trial: Some(t.trial.clone()),
                    metric: None,
                };
                let message = format!(
                    "trial {} of sweep {} {}{}",
                    t.trial,
                    t.sweep,
                    if trial.status == super::sweeps::TrialStatus::TimedOut {
                        "timed out"
                    } else {
                        "failed"
                    },
                    trial
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                self.once(AlertKind::Failed, &subject, seq, message, |r| {
                    r.selects_sweep(&t.sweep)
                });
            }
            EventKind::SweepChanged(c)
                if matches!(
                    c.state,
                    SweepState::Finished | SweepState::Failed | SweepState::Cancelled
                ) =>
            {
                let subject = Subject {
                    sweep: Some(c.sweep.clone()),
                    ..Default::default()
                };
                let counts = sweeps
                    .sweeps
                    .get(&c.sweep)
                    .map(|s| {
                        s.counts()
                            .into_iter()
                            .map(|(k, n)| format!("{n} {}", format!("{k:?}").to_lowercase()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let message = format!(
                    "sweep {} {}{}{}",
                    c.sweep,
                    c.state.as_str(),
                    c.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                    if counts.is_empty() {
                        String::new()
                    } else {
                        format!(": {counts}")
                    }
                );
                self.once(AlertKind::SweepFinished, &subject, seq, message, |r| {
                    r.selects_sweep(&c.sweep)
                });
            }
            _ => {}
        }
    }

    /// A condition that holds once per subject (a failure, a sweep's end): pending unless it fired before.
    fn once(
        &mut self,
        kind: AlertKind,
        subject: &Subject,
        seq: Seq,
        message: String,
        selects: impl Fn(&AlertRule) -> bool,
    ) {
        let rules: Vec<String> = self
            .rules
            .values()
            .filter(|r| r.rule.kind == kind && selects(&r.rule))
            .map(|r| r.rule.name.clone())
            .collect();
        for rule in rules {
            let key = episode_key(&rule, subject);
            if self.episodes.contains_key(&key) {
                continue;
            }
            self.begin(&key, Episode::Pending);
            self.pending.insert(
                key,
                Pending {
                    fired: AlertFired {
                        rule,
                        kind,
                        subject: subject.clone(),
                        step: None,
                        value: None,
                        trigger: Some(seq),
                        message: message.clone(),
                    },
                    // Nothing ends a failure: once recorded, it is never pending again.
                    ended: false,
                },
            );
        }
    }

    /// An episode begins (pending) or is recorded (open); its rule counts it for its run.
    fn begin(&mut self, key: &str, episode: Episode) {
        if self.episodes.insert(key.to_string(), episode).is_none()
            && let Some((rule, run)) = rule_and_run(key)
            && let Some(state) = self.rules.get_mut(rule)
        {
            *state
                .active
                .entry(ExperimentId(run.to_string()))
                .or_default() += 1;
        }
    }

    /// An episode is over (ended, or its rule removed).
    fn forget(&mut self, key: &str) {
        if self.episodes.remove(key).is_some()
            && let Some((rule, run)) = rule_and_run(key)
            && let Some(state) = self.rules.get_mut(rule)
        {
            let run = ExperimentId(run.to_string());
            if let Some(n) = state.active.get_mut(&run) {
                *n -= 1;
                if *n == 0 {
                    state.active.remove(&run);
                }
            }
        }
    }

    /// The condition of an episode stopped holding.
    fn end(&mut self, key: &str) {
        match self.episodes.get(key) {
            Some(Episode::Pending) => {
                if let Some(p) = self.pending.get_mut(key) {
                    p.ended = true;
                }
            }
            Some(Episode::Open(seq)) => {
                let seq = *seq;
                self.forget(key);
                if let Some(f) = self.firing_mut(seq) {
                    f.open = false;
                }
            }
            None => {}
        }
    }

    fn fired(&mut self, seq: Seq, time: i64, f: &AlertFired, host: Option<String>) {
        let key = episode_key(&f.rule, &f.subject);
        let mut open = host.is_none();
        if host.is_none() {
            let ended = self.pending.remove(&key).is_some_and(|p| p.ended);
            // Failures and sweeps' ends stay recorded for good: their episode never ends.
            let lasting = matches!(f.kind, AlertKind::Failed | AlertKind::SweepFinished);
            if ended && !lasting {
                self.forget(&key);
                open = false;
            } else {
                self.begin(&key, Episode::Open(seq));
                if f.kind == AlertKind::Stall
                    && let Some(run) = &f.subject.run
                {
                    self.stalled.entry(run.clone()).or_default().push(key);
                }
            }
            if let Some(r) = self.rules.get_mut(&f.rule) {
                r.fired += 1;
            }
            open = open && !lasting;
        }
        self.fired += 1;
        self.firings.push_back(Firing {
            seq,
            time,
            fired: f.clone(),
            open,
            host,
            deliveries: BTreeMap::new(),
        });
        if self.firings.len() > KEEP_FIRINGS {
            self.firings.pop_front();
        }
    }

    fn remove_rule(&mut self, name: &str) {
        if !self.rules.contains_key(name) {
            return;
        }
        let prefix = format!("{name}\u{1f}");
        self.pending.retain(|k, _| !k.starts_with(&prefix));
        let open: Vec<String> = self
            .episodes
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in open {
            self.end(&key);
            self.forget(&key);
        }
        self.rules.remove(name);
        for keys in self.stalled.values_mut() {
            keys.retain(|k| !k.starts_with(&prefix));
        }
        self.stalled.retain(|_, keys| !keys.is_empty());
    }

    /// The firing recorded as `seq`, if still kept.
    pub fn firing(&self, seq: Seq) -> Option<&Firing> {
        let i = self.firings.binary_search_by_key(&seq, |f| f.seq).ok()?;
        self.firings.get(i)
    }

    fn firing_mut(&mut self, seq: Seq) -> Option<&mut Firing> {
        let i = self.firings.binary_search_by_key(&seq, |f| f.seq).ok()?;
        self.firings.get_mut(i)
    }

    /// Whether an episode of this key is pending or open (the worker asks before firing a stall).
    pub fn in_episode(&self, key: &str) -> bool {
        self.episodes.contains_key(key)
    }

    /// Firings whose episode is open.
    pub fn open(&self) -> usize {
        self.firings.iter().filter(|f| f.open).count()
    }

    /// Whether a delivery to `sink` was recorded for the firing `seq`.
    pub fn delivered(&self, seq: Seq, sink: &str) -> Option<Delivery> {
        self.firing(seq)
            .and_then(|f| f.deliveries.get(sink))
            .map(|d| d.outcome)
    }
}

/// A point of a run's metric.
#[derive(Clone, Copy)]
struct Point<'a> {
    run: &'a ExperimentId,
    /// The metric's key (`split/name`).
    key: &'a str,
    step: Option<i64>,
    value: f64,
    seq: Seq,
}

/// The rule and the run an episode's key names.
fn rule_and_run(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.split('\u{1f}');
    Some((parts.next()?, parts.next()?))
}

/// What a point says under a rule that watches its metric (divergence keeps its running state in the rule's
/// tracks). `None` when nothing can change: a good point where the rule has no episode about the run.
fn judge(name: &str, state: &mut RuleState, p: Point<'_>) -> Option<Verdict> {
    let (run, key, value) = (p.run, p.key, p.value);
    let r = &state.rule;
    let subject = || Subject {
        run: Some(run.clone()),
        metric: Some(key.to_string()),
        ..Default::default()
    };
    let shown = || {
        labd_schemas::floats::spell(value)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string())
    };
    let at = || p.step.map(|s| format!(" at step {s}")).unwrap_or_default();
    let bad: Option<String> = match r.kind {
        AlertKind::Nan => {
            (!value.is_finite()).then(|| format!("{key} of run {run} is {}{}", shown(), at()))
        }
        AlertKind::Threshold => match (r.above, r.below) {
            (Some(a), _) if value > a => Some(format!(
                "{key} of run {run} is {}{}, above {a}",
                shown(),
                at()
            )),
            (_, Some(b)) if value < b => Some(format!(
                "{key} of run {run} is {}{}, below {b}",
                shown(),
                at()
            )),
            _ => None,
        },
        AlertKind::Divergence => {
            if value.is_nan() {
                // NaN says nothing about divergence (a `nan` rule tells it): the state stays.
                return None;
            }
            let factor = r.factor.unwrap_or(2.0);
            let need = r.points.unwrap_or(1);
            let metrics = match state.tracks.get_mut(run) {
                Some(m) => m,
                None => state.tracks.entry(run.clone()).or_default(),
            };
            let track = match metrics.get_mut(key) {
                Some(t) => t,
                None => metrics.entry(key.to_string()).or_default(),
            };
            let bad = track.min.and_then(|min| {
                let limit = min + (factor - 1.0) * min.abs();
                track.above = if value > limit { track.above + 1 } else { 0 };
                (track.above >= need).then(|| {
                    format!(
                        "{key} of run {run} is {}{}, above {factor} × its minimum {min} for {} points in a row",
                        shown(),
                        at(),
                        track.above
                    )
                })
            });
            track.min = Some(track.min.map_or(value, |m| m.min(value)));
            bad
        }
        _ => None,
    };
    match bad {
        Some(message) => {
            let subject = subject();
            Some(Verdict::Bad(
                episode_key(name, &subject),
                AlertFired {
                    rule: name.to_string(),
                    kind: state.rule.kind,
                    subject,
                    step: p.step,
                    value: Some(value),
                    trigger: Some(p.seq),
                    message,
                },
            ))
        }
        None if state.active.contains_key(run) => {
            Some(Verdict::Good(episode_key(name, &subject())))
        }
        None => None,
    }
}

fn is_alert_event(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::AlertRuleSet(_)
            | EventKind::AlertRuleRemoved(_)
            | EventKind::AlertFired(_)
            | EventKind::AlertDelivered(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::alert::AlertRuleSet;
    use labd_schemas::event::{MetricsLogged, StatusChanged};
    use labd_schemas::{Event, Source};

    fn ev(kind: EventKind) -> Event {
        Event::new(1_000, Source::Daemon, kind)
    }

    fn rule(json: serde_json::Value) -> Event {
        let rule: AlertRule = serde_json::from_value(json).unwrap();
        rule.check().unwrap();
        ev(EventKind::AlertRuleSet(Box::new(AlertRuleSet {
            rule,
            from: RuleFrom::Api,
        })))
    }

    fn point(run: &str, step: i64, loss: f64) -> Event {
        ev(EventKind::MetricsLogged(MetricsLogged {
            exp: ExperimentId(run.into()),
            split: Some("train".into()),
            step: Some(step),
            epoch: None,
            wall_time: None,
            x: Default::default(),
            values: [("loss".to_string(), loss)].into(),
            extra: Default::default(),
        }))
    }

    /// Applies events in order; records each pending firing as the worker would, right after the event that
    /// made it (or never, with `record` false). Answers the firings' (step, open) in order.
    struct Log {
        alerts: Alerts,
        seq: Seq,
    }

    impl Log {
        fn new() -> Log {
            Log {
                alerts: Alerts::default(),
                seq: 0,
            }
        }
        fn apply(&mut self, e: Event) {
            self.seq += 1;
            self.alerts
                .apply(self.seq, &e, &Registry::default(), &Sweeps::default());
        }
        fn record(&mut self) {
            let pending: Vec<AlertFired> = self
                .alerts
                .pending
                .values()
                .map(|p| p.fired.clone())
                .collect();
            for f in pending {
                self.apply(ev(EventKind::AlertFired(Box::new(f))));
            }
        }
        fn steps(&self) -> Vec<(Option<i64>, bool)> {
            self.alerts
                .firings
                .iter()
                .map(|f| (f.fired.step, f.open))
                .collect()
        }
    }

    #[test]
    fn a_nan_fires_once_per_episode() {
        let mut log = Log::new();
        log.apply(rule(
            serde_json::json!({"name": "nan", "kind": "nan", "metric": "loss"}),
        ));
        log.apply(point("r", 1, 0.5));
        log.apply(point("r", 2, f64::NAN));
        log.record();
        log.apply(point("r", 3, f64::INFINITY));
        log.record();
        assert_eq!(log.steps(), [(Some(2), true)], "one episode so far");
        log.apply(point("r", 4, 0.4));
        log.apply(point("r", 5, f64::NAN));
        log.record();
        assert_eq!(log.steps(), [(Some(2), false), (Some(5), true)]);
        let f = &log.alerts.firings[1].fired;
        assert_eq!(f.subject.metric.as_deref(), Some("train/loss"));
        assert!(f.message.contains("NaN at step 5"), "{}", f.message);
        // Another run's NaN is its own episode.
        log.apply(point("s", 1, f64::NAN));
        log.record();
        assert_eq!(log.alerts.firings.len(), 3);
    }

    #[test]
    fn a_condition_that_ended_before_its_firing_was_recorded_still_fires_once_and_closes() {
        let mut log = Log::new();
        log.apply(rule(
            serde_json::json!({"name": "nan", "kind": "nan", "metric": "*loss"}),
        ));
        log.apply(point("r", 1, f64::NAN));
        log.apply(point("r", 2, 0.3));
        log.record();
        assert_eq!(log.steps(), [(Some(1), false)]);
        log.apply(point("r", 3, f64::NAN));
        log.record();
        assert_eq!(log.steps(), [(Some(1), false), (Some(3), true)]);
    }

    #[test]
    fn threshold_and_divergence() {
        let mut log = Log::new();
        log.apply(rule(serde_json::json!({
            "name": "div", "kind": "divergence", "metric": "loss", "factor": 2.0, "points": 3
        })));
        for (step, v) in [
            (1, 4.0),
            (2, 1.0),
            (3, 2.5),
            (4, 2.5),
            (5, 1.5),
            (6, 2.1),
            (7, 2.2),
        ] {
            log.apply(point("r", step, v));
        }
        log.record();
        assert!(
            log.alerts.firings.is_empty(),
            "two points above, then one below"
        );
        log.apply(point("r", 8, 3.0));
        log.record();
        assert_eq!(log.steps(), [(Some(8), true)]);
        log.apply(rule(serde_json::json!({
            "name": "big", "kind": "threshold", "metric": "loss", "above": 10.0, "runs": "s*"
        })));
        log.apply(point("r", 9, 11.0));
        log.apply(point("s1", 1, 11.0));
        log.record();
        let big: Vec<_> = log
            .alerts
            .firings
            .iter()
            .filter(|f| f.fired.rule == "big")
            .map(|f| f.fired.subject.run.clone().unwrap().0)
            .collect();
        assert_eq!(big, ["s1"], "the rule's runs glob");
    }

    #[test]
    fn a_failed_run_fires_once_and_a_removed_rule_stops() {
        let mut log = Log::new();
        log.apply(rule(serde_json::json!({"name": "f", "kind": "failed"})));
        let failed = || {
            ev(EventKind::StatusChanged(StatusChanged {
                exp: ExperimentId("r".into()),
                status: RunStatus::Failed,
                notes: Some("CUDA out of memory".into()),
                extra: Default::default(),
            }))
        };
        log.apply(failed());
        log.record();
        log.apply(failed());
        log.record();
        assert_eq!(log.alerts.firings.len(), 1);
        assert!(
            log.alerts.firings[0]
                .fired
                .message
                .contains("CUDA out of memory")
        );
        log.apply(ev(EventKind::AlertRuleRemoved(
            labd_schemas::alert::AlertRuleRemoved {
                name: "f".into(),
                from: RuleFrom::Api,
            },
        )));
        assert!(log.alerts.rules.is_empty() && log.alerts.pending.is_empty());
    }

    #[test]
    fn a_stall_ends_when_the_run_is_heard_from() {
        let mut log = Log::new();
        log.apply(rule(
            serde_json::json!({"name": "st", "kind": "stall", "after": 60}),
        ));
        let subject = Subject {
            run: Some(ExperimentId("r".into())),
            ..Default::default()
        };
        log.apply(ev(EventKind::AlertFired(Box::new(AlertFired {
            rule: "st".into(),
            kind: AlertKind::Stall,
            subject: subject.clone(),
            step: None,
            value: None,
            trigger: None,
            message: "silent".into(),
        }))));
        assert!(log.alerts.in_episode(&episode_key("st", &subject)));
        log.apply(point("r", 1, 0.5));
        assert!(!log.alerts.in_episode(&episode_key("st", &subject)));
        assert_eq!(log.steps(), [(None, false)]);
    }
}
