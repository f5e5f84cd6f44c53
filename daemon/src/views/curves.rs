//! The curve store: every metric's points in columns, per run and metric, so curves and reductions over whole
//! curves answer in milliseconds. Rebuilt from the log (it is not part of the checkpoint): a daemon that starts
//! from a checkpoint answers from the registry at once while a background warm-up fills the store in order.

use labd_log::Seq;
use labd_schemas::{Event, EventKind, ExperimentId};
use std::collections::{BTreeMap, HashMap};

/// Steps as a column: 4 bytes a step while they fit in an i32 (almost always), 8 after.
#[derive(Clone, Debug, PartialEq)]
pub enum Steps {
    /// `i32::MIN` where a row had no step.
    Narrow(Vec<i32>),
    /// `i64::MIN` where a row had no step.
    Wide(Vec<i64>),
}

impl Default for Steps {
    fn default() -> Self {
        Steps::Narrow(Vec::new())
    }
}

impl Steps {
    fn push(&mut self, step: Option<i64>) {
        match self {
            Steps::Narrow(col) => match step {
                None => col.push(i32::MIN),
                Some(s) if s > i32::MIN as i64 && s <= i32::MAX as i64 => col.push(s as i32),
                Some(s) => {
                    let mut wide: Vec<i64> = col
                        .iter()
                        .map(|&v| if v == i32::MIN { i64::MIN } else { v as i64 })
                        .collect();
                    wide.push(s);
                    *self = Steps::Wide(wide);
                }
            },
            Steps::Wide(col) => col.push(step.unwrap_or(i64::MIN)),
        }
    }

    /// The step of point `i`, if it had one.
    pub fn get(&self, i: usize) -> Option<i64> {
        match self {
            Steps::Narrow(col) => Some(col[i]).filter(|v| *v != i32::MIN).map(i64::from),
            Steps::Wide(col) => Some(col[i]).filter(|v| *v != i64::MIN),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Steps::Narrow(col) => col.len() * 4,
            Steps::Wide(col) => col.len() * 8,
        }
    }
}

/// An optional x-axis as a column that gives back every value bit for bit: 4 bytes a point while each value is
/// exactly `base` plus an f32 (whole and binary-fraction epochs, wall times in steps of a power of two), 8 bytes
/// from the first value that is not. NaN marks a point without the axis.
#[derive(Clone, Debug)]
pub struct ExactColumn {
    base: f64,
    data: ExactData,
}

#[derive(Clone, Debug)]
enum ExactData {
    Narrow(Vec<f32>),
    Wide(Vec<f64>),
}

impl ExactColumn {
    /// `missing` points without the axis, the column's values to be near `base`.
    fn new(base: f64, missing: usize) -> Self {
        ExactColumn {
            base,
            data: ExactData::Narrow(vec![f32::NAN; missing]),
        }
    }

    fn push(&mut self, v: f64) {
        match &mut self.data {
            ExactData::Wide(col) => col.push(v),
            ExactData::Narrow(col) => {
                let narrow = (v - self.base) as f32;
                if v.is_nan() || (self.base + f64::from(narrow)).to_bits() == v.to_bits() {
                    col.push(if v.is_nan() { f32::NAN } else { narrow });
                } else {
                    let base = self.base;
                    let mut wide: Vec<f64> = col
                        .iter()
                        .map(|&o| {
                            if o.is_nan() {
                                f64::NAN
                            } else {
                                base + f64::from(o)
                            }
                        })
                        .collect();
                    wide.push(v);
                    self.data = ExactData::Wide(wide);
                }
            }
        }
    }

    /// The value of point `i` (NaN when the point lacks the axis).
    pub fn get(&self, i: usize) -> f64 {
        match &self.data {
            ExactData::Narrow(col) if col[i].is_nan() => f64::NAN,
            ExactData::Narrow(col) => self.base + f64::from(col[i]),
            ExactData::Wide(col) => col[i],
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            ExactData::Narrow(col) => col.len(),
            ExactData::Wide(col) => col.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bytes(&self) -> usize {
        match &self.data {
            ExactData::Narrow(col) => col.len() * 4,
            ExactData::Wide(col) => col.len() * 8,
        }
    }
}

impl PartialEq for ExactColumn {
    /// Bitwise, value by value (NaN equals NaN), however each side stores them.
    fn eq(&self, o: &Self) -> bool {
        self.len() == o.len()
            && (0..self.len()).all(|i| self.get(i).to_bits() == o.get(i).to_bits())
    }
}

/// The points of one metric of one run, as columns. Optional axes are allocated when first seen (NaN before).
/// Every value and x comes back with the bits it was logged with.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub step: Steps,
    pub value: Vec<f64>,
    pub epoch: Option<ExactColumn>,
    /// Wall time, Unix seconds (narrow as offsets from the first one).
    pub wall: Option<ExactColumn>,
    /// Custom axes, NaN where a row lacked them.
    pub custom: BTreeMap<String, Vec<f64>>,
}

impl PartialEq for Series {
    /// Bitwise, so NaN values compare equal to themselves (replayed views must equal live ones).
    fn eq(&self, o: &Self) -> bool {
        let bits64 = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        self.step == o.step
            && bits64(&self.value, &o.value)
            && self.epoch == o.epoch
            && self.wall == o.wall
            && self.custom.len() == o.custom.len()
            && self
                .custom
                .iter()
                .zip(&o.custom)
                .all(|((k, a), (l, b))| k == l && bits64(a, b))
    }
}

/// An x-axis to read a curve against.
#[derive(Clone, Debug, PartialEq)]
pub enum Axis {
    Step,
    Epoch,
    /// Wall time, Unix seconds.
    Wall,
    /// Position of the point in the run (0, 1, 2, ...).
    Index,
    Custom(String),
}

impl std::str::FromStr for Axis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "step" => Axis::Step,
            "epoch" => Axis::Epoch,
            "wall" | "wall_time" | "time" => Axis::Wall,
            "index" => Axis::Index,
            "" => {
                return Err(
                    "empty x-axis: use step, epoch, wall_time, index or a custom axis".into(),
                );
            }
            other => Axis::Custom(other.to_string()),
        })
    }
}

impl Series {
    fn push(
        &mut self,
        step: Option<i64>,
        epoch: Option<f64>,
        wall: Option<f64>,
        x: &BTreeMap<String, f64>,
        v: f64,
    ) {
        let n = self.value.len();
        self.step.push(step);
        self.value.push(v);
        if let Some(e) = epoch {
            self.epoch
                .get_or_insert_with(|| ExactColumn::new(0.0, n))
                .push(e);
        } else if let Some(col) = &mut self.epoch {
            col.push(f64::NAN);
        }
        if let Some(w) = wall {
            self.wall
                .get_or_insert_with(|| ExactColumn::new(w, n))
                .push(w);
        } else if let Some(col) = &mut self.wall {
            col.push(f64::NAN);
        }
        for (axis, col) in &mut self.custom {
            col.push(x.get(axis).copied().unwrap_or(f64::NAN));
        }
        for (axis, &val) in x {
            if !self.custom.contains_key(axis) {
                let mut col = vec![f64::NAN; n];
                col.push(val);
                self.custom.insert(axis.clone(), col);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The x value of point `i` on `axis` (NaN when the point lacks it).
    pub fn x(&self, axis: &Axis, i: usize) -> f64 {
        match axis {
            Axis::Step => self.step.get(i).map_or(f64::NAN, |s| s as f64),
            Axis::Epoch => self.epoch.as_ref().map_or(f64::NAN, |c| c.get(i)),
            Axis::Wall => self.wall.as_ref().map_or(f64::NAN, |c| c.get(i)),
            Axis::Index => i as f64,
            Axis::Custom(name) => self.custom.get(name).map_or(f64::NAN, |c| c[i]),
        }
    }

    /// `(x, y)` pairs on `axis`, points without that axis left out.
    pub fn pairs(&self, axis: &Axis) -> Vec<(f64, f64)> {
        (0..self.len())
            .map(|i| (self.x(axis, i), self.value[i]))
            .filter(|(x, _)| !x.is_nan())
            .collect()
    }

    /// Points `offset..offset + limit` copied out as plain columns, for a page of the metric; `None` when the
    /// series has custom axes (the log's page says which points lacked one, the store's NaN cannot).
    pub fn window(&self, offset: usize, limit: usize) -> Option<Window> {
        if !self.custom.is_empty() {
            return None;
        }
        let range = offset.min(self.len())..offset.saturating_add(limit).min(self.len());
        let column = |c: &Option<ExactColumn>| {
            c.as_ref()
                .map(|c| range.clone().map(|i| c.get(i)).collect::<Vec<f64>>())
        };
        Some(Window {
            step: range.clone().map(|i| self.step.get(i)).collect(),
            value: self.value[range.clone()].to_vec(),
            epoch: column(&self.epoch),
            wall: column(&self.wall),
        })
    }

    /// Bytes of point data held.
    pub fn bytes(&self) -> usize {
        self.len() * 8
            + self.step.bytes()
            + self.epoch.as_ref().map_or(0, ExactColumn::bytes)
            + self.wall.as_ref().map_or(0, ExactColumn::bytes)
            + self.custom.values().map(|c| c.len() * 8).sum::<usize>()
    }
}

/// A stretch of a series copied out of the store (see [`Series::window`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub step: Vec<Option<i64>>,
    pub value: Vec<f64>,
    /// NaN where a point had no epoch.
    pub epoch: Option<Vec<f64>>,
    pub wall: Option<Vec<f64>>,
}

impl Window {
    /// The points as the API pages them.
    pub fn points(&self) -> Vec<labd_schemas::api::Point> {
        let axis =
            |c: &Option<Vec<f64>>, i: usize| c.as_ref().map(|c| c[i]).filter(|v| !v.is_nan());
        (0..self.value.len())
            .map(|i| {
                labd_schemas::api::Point::new(
                    self.step[i],
                    axis(&self.epoch, i),
                    axis(&self.wall, i),
                    BTreeMap::new(),
                    self.value[i],
                )
            })
            .collect()
    }
}

/// All curves, as of `applied`. Events are applied strictly in order: one that does not follow `applied` is left
/// for the warm-up, which reads it from the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    /// Off where nothing asks for curves (`--once`, offline replay): saves the memory.
    pub off: bool,
    pub applied: Seq,
    pub runs: HashMap<ExperimentId, BTreeMap<String, Series>>,
    pub points: u64,
}

impl Curves {
    /// Applies `event` if it is the next one; answers whether it was.
    pub fn apply(&mut self, seq: Seq, event: &Event) -> bool {
        if self.off || seq != self.applied + 1 {
            return false;
        }
        self.applied = seq;
        if let EventKind::MetricsLogged(m) = &event.kind {
            let run = match self.runs.get_mut(&m.exp) {
                Some(r) => r,
                None => self.runs.entry(m.exp.clone()).or_default(),
            };
            let mut key = String::new();
            for (name, &v) in &m.values {
                super::registry::metric_key(m.split.as_deref(), name, &mut key);
                let series = match run.get_mut(key.as_str()) {
                    Some(s) => s,
                    None => run.entry(key.clone()).or_default(),
                };
                series.push(m.step, m.epoch, m.wall_time, &m.x, v);
                self.points += 1;
            }
        }
        true
    }

    pub fn series(&self, exp: &ExperimentId, key: &str) -> Option<&Series> {
        self.runs.get(exp)?.get(key)
    }

    /// Bytes of point data held.
    pub fn bytes(&self) -> usize {
        self.runs
            .values()
            .flat_map(|r| r.values())
            .map(Series::bytes)
            .sum()
    }
}

/// Reduces a curve to `target` points that keep its shape: the x range is cut into `target / 4` buckets and
/// each keeps its first, last, lowest and highest point (in x order). Curves already short enough are kept whole.
pub fn downsample(points: &[(f64, f64)], target: usize) -> Vec<(f64, f64)> {
    if points.len() <= target || target < 4 {
        return points.to_vec();
    }
    let buckets = target / 4;
    let (lo, hi) = (points[0].0, points[points.len() - 1].0);
    let width = (hi - lo) / buckets as f64;
    let mut out = Vec::with_capacity(target);
    let mut start = 0;
    while start < points.len() {
        let b = if width > 0.0 {
            (((points[start].0 - lo) / width) as usize).min(buckets - 1)
        } else {
            0
        };
        let mut end = start + 1;
        while end < points.len() {
            let bb = if width > 0.0 {
                (((points[end].0 - lo) / width) as usize).min(buckets - 1)
            } else {
                0
            };
            if bb != b {
                break;
            }
            end += 1;
        }
        let bucket = &points[start..end];
        let by_y = |a: &&(f64, f64), b: &&(f64, f64)| {
            a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal)
        };
        let mut keep: Vec<usize> = vec![0, bucket.len() - 1];
        if let Some((i, _)) = bucket
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.1.is_nan())
            .min_by(|a, b| by_y(&a.1, &b.1))
        {
            keep.push(i);
        }
        if let Some((i, _)) = bucket
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.1.is_nan())
            .max_by(|a, b| by_y(&a.1, &b.1))
        {
            keep.push(i);
        }
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| bucket[i]));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::Source;
    use labd_schemas::event::MetricsLogged;

    fn row(exp: &str, step: i64, epoch: Option<f64>, x: &[(&str, f64)], loss: f64) -> Event {
        Event::new(
            0,
            Source::Daemon,
            EventKind::MetricsLogged(MetricsLogged {
                exp: ExperimentId(exp.into()),
                split: Some("train".into()),
                step: Some(step),
                epoch,
                wall_time: Some(1_700_000_000.0 + step as f64 * 0.5),
                x: x.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                values: [("loss".to_string(), loss)].into(),
                extra: Default::default(),
            }),
        )
    }

    #[test]
    fn points_land_in_columns_and_read_back_on_any_axis() {
        let mut c = Curves::default();
        assert!(c.apply(1, &row("a", 0, None, &[], 2.0)));
        assert!(c.apply(2, &row("a", 10, Some(0.5), &[("tokens", 640.0)], 1.0)));
        assert!(
            !c.apply(4, &row("a", 20, None, &[], 0.5)),
            "out of order: left for the warm-up"
        );
        assert!(c.apply(3, &row("a", 20, Some(1.0), &[], f64::NAN)));
        let s = c.series(&ExperimentId("a".into()), "train/loss").unwrap();
        assert_eq!(
            s.pairs(&Axis::Step).iter().map(|p| p.0).collect::<Vec<_>>(),
            [0.0, 10.0, 20.0]
        );
        assert_eq!(
            s.pairs(&Axis::Epoch)
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            [0.5, 1.0],
            "points without an epoch are left out"
        );
        assert_eq!(s.pairs(&Axis::Custom("tokens".into())), [(640.0, 1.0)]);
        assert_eq!(s.x(&Axis::Wall, 2), 1_700_000_010.0);
        assert!(s.value[2].is_nan());
        assert_eq!(c.points, 3);
        assert_eq!(c.clone(), c, "NaN compares equal bitwise");
        let mut steps = Steps::default();
        for s in [Some(1), None, Some(5_000_000_000), Some(2)] {
            steps.push(s);
        }
        assert!(
            matches!(steps, Steps::Wide(_)),
            "widened when a step outgrew i32"
        );
        assert_eq!(
            (0..4).map(|i| steps.get(i)).collect::<Vec<_>>(),
            [Some(1), None, Some(5_000_000_000), Some(2)]
        );
    }

    #[test]
    fn a_window_pages_the_same_points_as_the_log() {
        let mut c = Curves::default();
        let events = [
            row("a", 0, None, &[], 2.0),
            row("a", 10, Some(0.5), &[], f64::INFINITY),
            row("a", 20, Some(1.0), &[], f64::NAN),
            row("a", 30, Some(1.5), &[], 0.1 + 0.2),
        ];
        for (i, e) in events.iter().enumerate() {
            assert!(c.apply(i as u64 + 1, e));
        }
        let from_log: Vec<labd_schemas::api::Point> = events
            .iter()
            .map(|e| {
                let EventKind::MetricsLogged(m) = &e.kind else {
                    unreachable!()
                };
                labd_schemas::api::Point::new(
                    m.step,
                    m.epoch,
                    m.wall_time,
                    BTreeMap::new(),
                    m.values["loss"],
                )
            })
            .collect();
        let s = c.series(&ExperimentId("a".into()), "train/loss").unwrap();
        let json = |p: &[labd_schemas::api::Point]| serde_json::to_string(p).unwrap();
        assert_eq!(json(&s.window(0, 100).unwrap().points()), json(&from_log));
        assert_eq!(
            json(&s.window(1, 2).unwrap().points()),
            json(&from_log[1..3])
        );
        assert!(s.window(9, 2).unwrap().points().is_empty());
        assert_eq!(
            s.window(3, 1).unwrap().points()[0].value.map(f64::to_bits),
            Some((0.1f64 + 0.2).to_bits())
        );
        // A custom axis: the log answers (it knows which points lacked it).
        c.apply(5, &row("a", 40, None, &[("tokens", 1.0)], 1.0));
        let s = c.series(&ExperimentId("a".into()), "train/loss").unwrap();
        assert!(s.window(0, 10).is_none());
    }

    #[test]
    fn epochs_and_wall_times_come_back_bit_for_bit() {
        let mut col = ExactColumn::new(1_700_000_000.0, 1);
        for w in [1_700_000_000.5, 1_700_000_100.25] {
            col.push(w);
        }
        assert!(
            matches!(col.data, ExactData::Narrow(_)),
            "offsets fit an f32"
        );
        // Python's time.time(): more bits than an f32 offset holds.
        let fine = 1_700_000_123.123_456_7;
        col.push(fine);
        col.push(f64::NAN);
        assert!(matches!(col.data, ExactData::Wide(_)));
        assert!(col.get(0).is_nan() && col.get(4).is_nan());
        assert_eq!(col.get(1), 1_700_000_000.5);
        assert_eq!(col.get(2), 1_700_000_100.25);
        assert_eq!(col.get(3).to_bits(), fine.to_bits());
        let mut epochs = ExactColumn::new(0.0, 0);
        for e in [0.0, -0.0, 0.1, 2.0] {
            epochs.push(e);
        }
        assert_eq!(
            (0..4).map(|i| epochs.get(i).to_bits()).collect::<Vec<_>>(),
            [0.0f64, -0.0, 0.1, 2.0].map(f64::to_bits)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_axis_values_come_back_bit_for_bit(
            base in proptest::num::f64::ANY,
            values in proptest::collection::vec(proptest::option::of(proptest::num::f64::ANY), 0..64),
        ) {
            let mut col = ExactColumn::new(base, 0);
            for v in &values {
                col.push(v.unwrap_or(f64::NAN));
            }
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(v) if !v.is_nan() => proptest::prop_assert_eq!(col.get(i).to_bits(), v.to_bits()),
                    _ => proptest::prop_assert!(col.get(i).is_nan()),
                }
            }
        }
    }

    #[test]
    fn downsampling_keeps_first_last_min_and_max_of_each_bucket() {
        let mut points: Vec<(f64, f64)> = (0..1000)
            .map(|i| (i as f64, (i as f64 / 50.0).sin()))
            .collect();
        points[500].1 = 10.0; // a spike must survive
        points[700].1 = -10.0;
        let d = downsample(&points, 100);
        assert!(d.len() <= 100, "{}", d.len());
        assert_eq!(d.first(), points.first());
        assert_eq!(d.last(), points.last());
        assert!(d.contains(&(500.0, 10.0)) && d.contains(&(700.0, -10.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "x order kept");
        assert_eq!(downsample(&points[..50], 100).len(), 50);
    }
}
