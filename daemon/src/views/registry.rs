//! The experiment registry: one record per run with its config, status, times, sources, summaries,
//! artifacts and per-metric statistics, plus the sequence ranges holding its events (to read its points
//! back from the log without an index of its own).

use labd_log::Seq;
use labd_schemas::api::{Artifact, Experiment, ExperimentRow, MetricStats, ShownStatus};
use labd_schemas::time::micros_to_rfc3339;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One run as the registry keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: ExperimentId,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub config: Value,
    pub config_hash: String,
    pub host: String,
    /// Unix microseconds.
    pub started: i64,
    pub status: RunStatus,
    pub status_notes: Option<String>,
    /// When a final status was recorded.
    pub ended: Option<i64>,
    /// Time of the newest event about this run.
    pub last_activity: i64,
    pub sources: Vec<String>,
    pub summaries: BTreeMap<String, Value>,
    pub artifacts: Vec<Artifact>,
    pub messages: u64,
    pub metrics: BTreeMap<String, MetricStats>,
    pub extra: Map<String, Value>,
    /// Inclusive sequence ranges holding this run's events, ascending.
    pub ranges: Vec<(Seq, Seq)>,
    /// On a hub, for another host's run: its id on that host, when it has another one here (see
    /// [`labd_schemas::Origin::id`]).
    #[serde(default)]
    pub origin_id: Option<ExperimentId>,
    /// On a hub: whether the run was recorded by another host's labd (`host` is then that host's name).
    #[serde(default)]
    pub foreign: bool,
    /// The project (an MLflow experiment) the run belongs to, by id.
    #[serde(default)]
    pub project: Option<String>,
}

/// The registry view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub experiments: BTreeMap<ExperimentId, Record>,
}

/// The key of a metric: `<split>/<name>`, or `<name>` without a split.
pub fn metric_key(split: Option<&str>, name: &str, buf: &mut String) {
    buf.clear();
    if let Some(s) = split {
        buf.push_str(s);
        buf.push('/');
    }
    buf.push_str(name);
}

impl Registry {
    pub fn apply(&mut self, seq: Seq, event: &Event) {
        let exp = match &event.kind {
            EventKind::ExperimentCreated(c) => {
                if self.experiments.contains_key(&c.exp) {
                    return;
                }
                let record = Record {
                    id: c.exp.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    tags: c.tags.clone(),
                    config: c.config.clone(),
                    config_hash: c.config_hash.clone(),
                    // On a hub, the host it was recorded on, by its name in the federation.
                    host: event
                        .origin
                        .as_ref()
                        .map_or_else(|| c.host.clone(), |o| o.host.clone()),
                    started: c.started,
                    status: RunStatus::Running,
                    status_notes: None,
                    ended: None,
                    last_activity: event.time,
                    sources: vec![source_name(&event.source)],
                    summaries: BTreeMap::new(),
                    artifacts: Vec::new(),
                    messages: 0,
                    metrics: BTreeMap::new(),
                    extra: c.extra.clone(),
                    ranges: vec![(seq, seq)],
                    origin_id: event
                        .origin
                        .as_ref()
                        .and_then(|o| o.id.clone())
                        .map(ExperimentId),
                    foreign: event.origin.is_some(),
                    project: c.project.clone(),
                };
                self.experiments.insert(c.exp.clone(), record);
                return;
            }
            other => match other.experiment() {
                Some(exp) => exp,
                None => return,
            },
        };
        if let Some(r) = self.experiments.get_mut(exp) {
            r.apply(seq, event, &mut String::new());
        }
    }

    /// Applies `events` (numbered from `first`) in order, as [`Registry::apply`] one by one does; a stretch of
    /// events of one run (what a file's batch mostly is) finds its record once.
    pub fn apply_batch(&mut self, first: Seq, events: &[Event]) {
        let mut key = String::new();
        let mut i = 0;
        while i < events.len() {
            let e = &events[i];
            let Some((exp, r)) =
                about(e).and_then(|exp| Some((exp, self.experiments.get_mut(exp)?)))
            else {
                self.apply(first + i as u64, e);
                i += 1;
                continue;
            };
            while let Some(e) = events.get(i).filter(|e| about(e) == Some(exp)) {
                r.apply(first + i as u64, e, &mut key);
                i += 1;
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.experiments.get(&ExperimentId(id.to_string()))
    }
}

impl Record {
    /// Applies an event about this run (not its creation); `key` is room to build a metric's key in.
    fn apply(&mut self, seq: Seq, event: &Event, key: &mut String) {
        let r = self;
        r.last_activity = r.last_activity.max(event.time);
        add_seq(&mut r.ranges, seq);
        let src = match &event.source {
            Source::File { path, .. } => path.as_str(),
            Source::Http { .. } => "http",
            Source::Daemon => "labd",
        };
        if !r.sources.iter().any(|s| s == src) {
            r.sources.push(src.to_string());
        }
        match &event.kind {
            EventKind::MetricsLogged(m) => {
                for (name, &v) in &m.values {
                    // Without a split the key is the name itself: nothing to build.
                    let k = match m.split.as_deref() {
                        Some(split) => {
                            metric_key(Some(split), name, key);
                            key.as_str()
                        }
                        None => name.as_str(),
                    };
                    let stats = match r.metrics.get_mut(k) {
                        Some(s) => s,
                        None => r.metrics.entry(k.to_string()).or_default(),
                    };
                    stats.points += 1;
                    if stats.first_step.is_none() {
                        stats.first_step = m.step;
                    }
                    if let Some(step) = m.step {
                        track_step(stats, step);
                    }
                    if m.epoch.is_some() {
                        stats.last_epoch = m.epoch;
                    }
                    stats.last = v.is_finite().then_some(v);
                    if v.is_finite() {
                        stats.min = Some(stats.min.map_or(v, |x| x.min(v)));
                        stats.max = Some(stats.max.map_or(v, |x| x.max(v)));
                    }
                }
            }
            EventKind::MessageLogged(_) => r.messages += 1,
            EventKind::SummaryRecorded(s) => {
                r.summaries.insert(s.group.clone(), s.values.clone());
            }
            EventKind::ArtifactRecorded(a) => r.artifacts.push(Artifact {
                role: a.role.clone(),
                path: a.path.clone(),
                size: a.size,
                sha256: a.sha256.clone(),
            }),
            EventKind::StatusChanged(s) => {
                r.status = s.status;
                r.status_notes = s.notes.clone();
                // An imported run says when it really ended (`ended`, Unix microseconds, in the event's extra).
                r.ended = s.status.is_final().then(|| {
                    s.extra
                        .get("ended")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(event.time)
                });
            }
            EventKind::RunChanged(c) => r.change(c),
            EventKind::ExperimentCreated(_)
            | EventKind::ProjectCreated(_)
            | EventKind::ProjectChanged(_)
            | EventKind::FileIngested(_)
            | EventKind::IngestError(_)
            | EventKind::SweepCreated(_)
            | EventKind::SweepChanged(_)
            | EventKind::TrialChanged(_)
            | EventKind::TrialAdded(_)
            | EventKind::AlertRuleSet(_)
            | EventKind::AlertRuleRemoved(_)
            | EventKind::AlertFired(_)
            | EventKind::AlertDelivered(_)
            | EventKind::BenchStarted(_)
            | EventKind::BenchMeasured(_)
            | EventKind::BenchChanged(_) => {}
        }
    }
}

impl Record {
    /// A later change of name, parameters or tags. Parameters join the config (typed as MLflow's stored
    /// parameters are: numbers that say exactly what their text says become numbers), and the config hash
    /// follows; tags are `key=value` labels, MLflow's own (`mlflow.*`) kept apart in `extra.mlflow_tags`, as
    /// the MLflow store importer keeps them.
    fn change(&mut self, c: &labd_schemas::event::RunChanged) {
        if let Some(name) = &c.name {
            self.name = name.clone();
        }
        if !c.params.is_empty() {
            if !self.config.is_object() {
                self.config = Value::Object(Map::new());
            }
            if let Value::Object(config) = &mut self.config {
                for (k, v) in &c.params {
                    config.insert(k.clone(), labd_sources::mlflow::typed(v));
                }
            }
            self.config_hash = labd_schemas::canonical::config_hash(&self.config);
        }
        for (k, v) in &c.set_tags {
            self.remove_tag(k);
            if k.starts_with("mlflow.") {
                if let Value::Object(t) = self
                    .extra
                    .entry("mlflow_tags")
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    t.insert(k.clone(), Value::String(v.clone()));
                }
            } else {
                self.tags.push(format!("{k}={v}"));
            }
        }
        for k in &c.removed_tags {
            self.remove_tag(k);
        }
    }

    fn remove_tag(&mut self, key: &str) {
        self.tags
            .retain(|t| t.split_once('=').is_none_or(|(k, _)| k != key));
        if let Some(Value::Object(t)) = self.extra.get_mut("mlflow_tags") {
            t.remove(key);
        }
    }
}

/// The run an event is about, when it is not the run's creation.
fn about(e: &Event) -> Option<&ExperimentId> {
    match &e.kind {
        EventKind::ExperimentCreated(_) => None,
        other => other.experiment(),
    }
}

/// Follows a metric's steps: stride, gaps (a jump over the stride) and restarts (a step going backwards).
fn track_step(stats: &mut MetricStats, step: i64) {
    if let Some(prev) = stats.last_step {
        let d = step - prev;
        if d < 0 {
            stats.restarts += 1;
        } else if d > 0 {
            match stats.stride {
                Some(s) if d > s => stats.gaps += 1,
                Some(s) if d >= s => {}
                _ => stats.stride = Some(d),
            }
        }
    }
    stats.last_step = Some(step);
    stats.max_step = Some(stats.max_step.map_or(step, |m| m.max(step)));
}

fn source_name(source: &Source) -> String {
    match source {
        Source::File { path, .. } => path.clone(),
        Source::Http { .. } => "http".into(),
        Source::Daemon => "labd".into(),
    }
}

fn add_seq(ranges: &mut Vec<(Seq, Seq)>, seq: Seq) {
    match ranges.last_mut() {
        Some(last) if last.1 + 1 == seq => last.1 = seq,
        Some(last) if last.1 >= seq => {}
        _ => ranges.push((seq, seq)),
    }
}

impl Record {
    /// The status to show: a running run silent for longer than `stale_after` is `stale`.
    pub fn shown_status(&self, now: i64, stale_after_micros: i64) -> ShownStatus {
        if self.status == RunStatus::Running && now - self.last_activity > stale_after_micros {
            ShownStatus::Stale
        } else {
            self.status.into()
        }
    }

    pub fn points(&self) -> u64 {
        self.metrics.values().map(|m| m.points).sum()
    }

    /// A number in the run's summaries, by `<group>.<path>` (`final.test_f1`, `bias.gmb.subgroup`; a leading
    /// `summary.` is allowed; the experiment manager's file names `final_summary`, `bias_metrics` and
    /// `xai_metrics` name its groups too). Integers come back as the nearest double, as metric values do.
    pub fn summary_value(&self, key: &str) -> Option<f64> {
        let key = key.strip_prefix("summary.").unwrap_or(key);
        let (group, path) = match key.split_once('.') {
            Some((g, p)) => (g, Some(p)),
            None => (key, None),
        };
        let mut v = self.summary_group(group)?;
        if let Some(path) = path {
            for part in path.split('.') {
                v = match v {
                    Value::Object(m) => m.get(part)?,
                    Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
        }
        v.as_f64()
    }

    /// A summary group by its name, or by the experiment manager's file name for it.
    pub fn summary_group(&self, group: &str) -> Option<&Value> {
        let group = match group {
            "final_summary" => "final",
            "bias_metrics" => "bias",
            "xai_metrics" => "xai",
            g => g,
        };
        self.summaries.get(group)
    }

    /// The dot paths of every number in the run's summaries (`final.test_f1`, ...), sorted.
    pub fn summary_keys(&self) -> Vec<String> {
        fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Number(_) => out.push(prefix.to_string()),
                Value::Object(m) => {
                    for (k, v) in m {
                        walk(&format!("{prefix}.{k}"), v, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (group, v) in &self.summaries {
            walk(group, v, &mut out);
        }
        out.sort();
        out
    }

    /// A metric's last value, or else a summary's number: what a table shows under `key`.
    pub fn value(&self, key: &str) -> Option<f64> {
        match self.metrics.get(key) {
            Some(m) => m.last,
            None => self.summary_value(key),
        }
    }

    /// Whether `key` names a metric or a number in the summaries of this run.
    pub fn has_value(&self, key: &str) -> bool {
        self.metrics.contains_key(key) || self.summary_value(key).is_some()
    }

    pub fn row(&self, now: i64, stale_after_micros: i64) -> ExperimentRow {
        ExperimentRow {
            id: self.id.clone(),
            name: self.name.clone(),
            status: self.shown_status(now, stale_after_micros),
            config_hash: self.config_hash.clone(),
            tags: self.tags.clone(),
            started: micros_to_rfc3339(self.started),
            last_activity: micros_to_rfc3339(self.last_activity),
            metrics: self.metrics.len(),
            points: self.points(),
            host: self.host.clone(),
        }
    }

    pub fn detail(&self, now: i64, stale_after_micros: i64) -> Experiment {
        Experiment {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            config: self.config.clone(),
            config_hash: self.config_hash.clone(),
            host: self.host.clone(),
            status: self.shown_status(now, stale_after_micros),
            status_notes: self.status_notes.clone(),
            started: micros_to_rfc3339(self.started),
            last_activity: micros_to_rfc3339(self.last_activity),
            ended: self.ended.map(micros_to_rfc3339),
            sources: self.sources.clone(),
            summaries: self.summaries.clone(),
            artifacts: self.artifacts.clone(),
            messages: self.messages,
            metrics: self.metrics.clone(),
            extra: self.extra.clone(),
            project: self.project.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::event::{ExperimentCreated, MetricsLogged, StatusChanged};
    use labd_schemas::float_map::FloatMap;

    fn created(id: &str) -> Event {
        Event::new(
            10,
            Source::File {
                path: "/a.jsonl".into(),
                first_line: 1,
                last_line: 1,
            },
            EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                exp: ExperimentId(id.into()),
                name: "n".into(),
                description: None,
                tags: vec![],
                config: serde_json::json!({}),
                config_hash: "h".into(),
                host: "host".into(),
                started: 5,
                extra: Map::new(),
                project: None,
            })),
        )
    }

    fn metrics(id: &str, step: i64, v: f64) -> Event {
        Event::new(
            20 + step,
            Source::File {
                path: "/a.jsonl".into(),
                first_line: 2,
                last_line: 2,
            },
            EventKind::MetricsLogged(MetricsLogged {
                exp: ExperimentId(id.into()),
                split: Some("train".into()),
                step: Some(step),
                epoch: None,
                wall_time: None,
                x: FloatMap::new(),
                values: [("loss".to_string(), v)].into(),
                extra: Map::new(),
            }),
        )
    }

    #[test]
    fn metrics_status_and_ranges_accumulate() {
        let mut reg = Registry::default();
        reg.apply(1, &created("e"));
        reg.apply(2, &metrics("e", 0, 2.0));
        reg.apply(3, &metrics("e", 1, f64::NAN));
        reg.apply(5, &metrics("e", 2, 1.0));
        let done = Event::new(
            30,
            Source::Daemon,
            EventKind::StatusChanged(StatusChanged {
                exp: ExperimentId("e".into()),
                status: RunStatus::Completed,
                notes: Some("ok".into()),
                extra: Map::new(),
            }),
        );
        reg.apply(6, &done);
        let r = reg.get("e").unwrap();
        let m = &r.metrics["train/loss"];
        assert_eq!(
            (m.points, m.first_step, m.last_step, m.last, m.min, m.max),
            (3, Some(0), Some(2), Some(1.0), Some(1.0), Some(2.0))
        );
        assert_eq!(r.ranges, vec![(1, 3), (5, 6)]);
        assert_eq!(
            (m.stride, m.gaps, m.restarts, m.max_step),
            (Some(1), 0, 0, Some(2))
        );
        assert_eq!(r.status, RunStatus::Completed);
        assert_eq!(r.ended, Some(30));
        assert_eq!(r.sources, vec!["/a.jsonl", "labd"]);
    }

    #[test]
    fn gaps_and_restarts_are_counted() {
        let mut stats = MetricStats::default();
        for step in [0, 10, 20, 40, 50, 30, 40, 50, 60] {
            track_step(&mut stats, step);
        }
        assert_eq!(stats.stride, Some(10));
        assert_eq!(stats.gaps, 1, "20 -> 40");
        assert_eq!(stats.restarts, 1, "50 -> 30");
        assert_eq!((stats.last_step, stats.max_step), (Some(60), Some(60)));
    }

    #[test]
    fn silence_makes_a_running_run_stale_but_not_a_finished_one() {
        let mut reg = Registry::default();
        reg.apply(1, &created("e"));
        let r = reg.get("e").unwrap();
        assert_eq!(r.shown_status(10 + 5, 10), ShownStatus::Running);
        assert_eq!(r.shown_status(10 + 11, 10), ShownStatus::Stale);
    }
}
