//! The curve store: every metric's points per run and metric, so curves and reductions over whole curves
//! answer in milliseconds. A series keeps its points in compressed chunks of [`CHUNK`] points (steps as
//! differences, floats against the previous one: a few bytes a point, every bit kept), closed chunks in the
//! [`ChunkStore`] (a file beside the log: memory holds what is being written, the page cache what is read)
//! and an open tail compressed as it is written. The store's index and tails are saved beside the views'
//! checkpoint (their own key, their own sequence number) with the length of the chunk file they go with, so a
//! restart loads them instead of rebuilding; what the log holds beyond them is read in order by a background
//! warm-up.

use super::chunk::{self, CHUNK, Columns, NO_STEP, Open};
use super::chunk_store::{ChunkRef, ChunkStore, Saved};
use labd_log::Seq;
use labd_schemas::float_map::FloatMap;
use labd_schemas::{Event, EventKind, ExperimentId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The points of one metric of one run: where its closed chunks are, and its open tail. Read through a
/// [`SeriesRef`] (the series with its store). Every value and x comes back with the bits it was logged with.
#[derive(Clone, Debug, Default)]
pub struct Series {
    chunks: Vec<ChunkRef>,
    /// The last points (fewer than a chunk) closed into the store when the series went quiet (its run ended,
    /// or nothing came over [`QUIET_LOOKS`] checkpoints); read back into `open` if more points come (the
    /// sealed copy is then left unused in the chunk file).
    sealed: Option<ChunkRef>,
    /// The open tail; none while it is empty (a sealed or new series holds no tail's room).
    open: Option<Box<Open>>,
    /// Looks for quiet series (one a curve checkpoint) since a point last came.
    quiet: u8,
    /// Names of the custom axes (`tokens`, ...), in the order they first appeared.
    pub axes: Vec<String>,
    len: usize,
}

/// A series as its checkpoint holds it: the open tail as plain columns (it is small; its coding state is
/// rebuilt by writing it again).
#[derive(Serialize, Deserialize)]
struct SavedSeries<C, S> {
    chunks: C,
    sealed: S,
    open: Columns,
    axes: Vec<String>,
    len: usize,
}

impl Serialize for Series {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let open = self.open_columns().map_err(serde::ser::Error::custom)?;
        SavedSeries {
            chunks: &self.chunks,
            sealed: self.sealed,
            open,
            axes: self.axes.clone(),
            len: self.len,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Series {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved = SavedSeries::<Vec<ChunkRef>, Option<ChunkRef>>::deserialize(d)?;
        let c = &saved.open;
        let n = c.len();
        let fits = |col: &Option<Vec<f64>>| col.as_ref().is_none_or(|x| x.len() == n);
        if c.step.len() != n
            || !fits(&c.epoch)
            || !fits(&c.wall)
            || c.custom.iter().any(|x| x.len() != n)
            || c.custom.len() > saved.axes.len()
        {
            return Err(serde::de::Error::custom(
                "a series' open tail has columns of different lengths",
            ));
        }
        if saved.sealed.is_some() && n > 0 {
            return Err(serde::de::Error::custom(
                "a series has both a sealed and an open tail",
            ));
        }
        Ok(Series {
            chunks: saved.chunks,
            sealed: saved.sealed,
            quiet: 0,
            open: (n > 0).then(|| Box::new(Open::from_columns(c))),
            axes: saved.axes,
            len: saved.len,
        })
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
        store: &ChunkStore,
        step: Option<i64>,
        epoch: Option<f64>,
        wall: Option<f64>,
        x: &FloatMap,
        v: f64,
    ) {
        if let Some(sealed) = self.sealed.take() {
            store.release(sealed);
            self.open = match self.read_tail(store, sealed) {
                Ok(c) => Some(Box::new(Open::from_columns(&c))),
                Err(e) => {
                    // Checked by CRC and written by this process: damage here is shown, not hidden.
                    tracing::error!(
                        "curve store: a sealed tail does not read ({e}); its points are lost from the store (the log keeps them)"
                    );
                    self.len = self.chunks.len() * CHUNK;
                    None
                }
            };
        }
        self.quiet = 0;
        for name in x.keys() {
            if !self.axes.contains(name) {
                self.axes.push(name.clone());
            }
        }
        let custom = self
            .axes
            .iter()
            .map(|name| x.get(name).copied().unwrap_or(f64::NAN));
        let open = self.open.get_or_insert_default();
        open.push(step.unwrap_or(NO_STEP), epoch, wall, custom, v);
        self.len += 1;
        if open.len() == CHUNK {
            self.chunks.push(store.append(&open.close()));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Points after the closed chunks (in the open or the sealed tail).
    fn tail_len(&self) -> usize {
        self.len - self.chunks.len() * CHUNK
    }

    /// Points in the open tail.
    fn open_len(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.len())
    }

    fn open_columns(&self) -> Result<Columns, String> {
        self.open
            .as_ref()
            .map_or_else(|| Ok(Columns::default()), |o| o.columns())
    }

    fn read_tail(&self, store: &ChunkStore, sealed: ChunkRef) -> Result<Columns, String> {
        chunk::decode(&store.read(sealed)?, self.tail_len())
    }

    /// Closes the open tail into the store (its memory freed); nothing to do when it is empty.
    fn seal(&mut self, store: &ChunkStore) {
        if let Some(mut open) = self.open.take()
            && !open.is_empty()
        {
            self.sealed = Some(store.append(&open.close()));
        }
    }

    /// Bytes held in memory: where the chunks are, the open tail, the axes' names.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Series>()
            + self.chunks.capacity() * std::mem::size_of::<ChunkRef>()
            + self.open.as_ref().map_or(0, |o| o.bytes())
            + self.axes.iter().map(|a| a.capacity() + 24).sum::<usize>()
    }
}

/// A series with the store its chunks are in: what reads it.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pub series: &'a Series,
    store: &'a ChunkStore,
}

impl PartialEq for SeriesRef<'_> {
    /// Bitwise, point by point, so NaN values compare equal to themselves (replayed views must equal live ones).
    fn eq(&self, o: &Self) -> bool {
        if self.series.len != o.series.len || self.series.axes != o.series.axes {
            return false;
        }
        let (a, b) = (self.columns(), o.columns());
        let bits = |x: &[f64], y: &[f64]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        };
        let opt = |x: &Option<Vec<f64>>, y: &Option<Vec<f64>>| match (x, y) {
            (Some(x), Some(y)) => bits(x, y),
            (None, None) => true,
            _ => false,
        };
        a.step == b.step
            && bits(&a.value, &b.value)
            && opt(&a.epoch, &b.epoch)
            && opt(&a.wall, &b.wall)
            && a.custom.len() == b.custom.len()
            && a.custom.iter().zip(&b.custom).all(|(x, y)| bits(x, y))
    }
}

impl<'a> SeriesRef<'a> {
    pub fn len(&self) -> usize {
        self.series.len
    }

    pub fn is_empty(&self) -> bool {
        self.series.len == 0
    }

    /// Checks a loaded checkpoint's series: its chunks lie within the store and its counts agree (each chunk's
    /// bytes are checked against their CRC when read).
    pub fn check(&self) -> Result<(), String> {
        let s = self.series;
        if let Some(i) = s.chunks.iter().position(|c| !self.store.holds(*c)) {
            return Err(format!("chunk {i} lies past the end of the chunk file"));
        }
        if let Some(sealed) = s.sealed {
            if !self.store.holds(sealed) {
                return Err("the sealed tail lies past the end of the chunk file".into());
            }
            if s.len <= s.chunks.len() * CHUNK || s.tail_len() >= CHUNK {
                return Err(format!(
                    "{} points, {} chunks and a sealed tail",
                    s.len,
                    s.chunks.len()
                ));
            }
            return Ok(());
        }
        let n = s.chunks.len() * CHUNK + s.open_len();
        if n != s.len || s.open_len() >= CHUNK {
            return Err(format!("{n} points in chunks, {} counted", s.len));
        }
        Ok(())
    }

    /// Chunk `i` decoded (its points `i * CHUNK..`), or the open tail for `i == chunks`.
    fn part(&self, i: usize) -> Columns {
        let decoded = match (self.series.chunks.get(i), self.series.sealed) {
            (Some(c), _) => self
                .store
                .read(*c)
                .and_then(|bytes| chunk::decode(&bytes, CHUNK)),
            (None, Some(sealed)) => self.series.read_tail(self.store, sealed),
            (None, None) => self.series.open_columns(),
        };
        decoded.unwrap_or_else(|e| {
            // Checked by CRC and written by this process: damage here is shown, not hidden.
            tracing::error!("curve store: a chunk does not read ({e}); its points read as NaN");
            let n = if i < self.series.chunks.len() {
                CHUNK
            } else {
                self.series.tail_len()
            };
            Columns {
                step: vec![NO_STEP; n],
                value: vec![f64::NAN; n],
                ..Default::default()
            }
        })
    }

    /// Points `range` (clamped to the series) as columns, decoding only the chunks it touches.
    pub fn range(&self, range: std::ops::Range<usize>) -> Columns {
        let len = self.series.len;
        let (start, end) = (range.start.min(len), range.end.min(len));
        let mut out = Columns::default();
        if start >= end {
            return out;
        }
        for i in start / CHUNK..=(end - 1) / CHUNK {
            let part = self.part(i);
            let base = i * CHUNK;
            let from = start.max(base) - base;
            let to = end.min(base + part.len()) - base;
            out.extend(&part.slice(from..to));
        }
        // Axes that appeared after these points: NaN.
        while out.custom.len() < self.series.axes.len() {
            out.custom.push(vec![f64::NAN; out.len()]);
        }
        out
    }

    /// Every point, as columns.
    pub fn columns(&self) -> Columns {
        self.range(0..self.series.len)
    }

    /// `(x, y)` pairs on `axis`, points without that axis left out.
    pub fn pairs(&self, axis: &Axis) -> Vec<(f64, f64)> {
        let c = self.columns();
        let xs: Vec<f64> = match axis {
            Axis::Step => c
                .step
                .iter()
                .map(|&s| if s == NO_STEP { f64::NAN } else { s as f64 })
                .collect(),
            Axis::Epoch => c.epoch.unwrap_or_default(),
            Axis::Wall => c.wall.unwrap_or_default(),
            Axis::Index => (0..c.len()).map(|i| i as f64).collect(),
            Axis::Custom(name) => self
                .series
                .axes
                .iter()
                .position(|a| a == name)
                .and_then(|i| c.custom.get(i).cloned())
                .unwrap_or_default(),
        };
        xs.into_iter()
            .zip(c.value)
            .filter(|(x, _)| !x.is_nan())
            .collect()
    }

    /// The last `k` finite values, newest first, decoding chunks from the end only as far as needed.
    pub fn last_finite(&self, k: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(k);
        for i in (0..=self.series.chunks.len()).rev() {
            for &v in self.part(i).value.iter().rev() {
                if out.len() == k {
                    return out;
                }
                if v.is_finite() {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Points `offset..offset + limit` copied out as plain columns, for a page of the metric; `None` when the
    /// series has custom axes (the log's page says which points lacked one, the store's NaN cannot).
    pub fn window(&self, offset: usize, limit: usize) -> Option<Window> {
        if !self.series.axes.is_empty() {
            return None;
        }
        let c = self.range(offset.min(self.series.len)..offset.saturating_add(limit));
        Some(Window {
            step: c
                .step
                .iter()
                .map(|&s| (s != NO_STEP).then_some(s))
                .collect(),
            value: c.value,
            epoch: c.epoch,
            wall: c.wall,
        })
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
    /// The points as the API pages them, one struct each: the reference that `api::read::page_json` (which
    /// writes the same JSON straight from the columns) is tested against.
    #[cfg(test)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Curves {
    /// Off where nothing asks for curves (`--once`, offline replay): saves the memory.
    #[serde(skip)]
    pub off: bool,
    pub applied: Seq,
    pub runs: HashMap<ExperimentId, BTreeMap<String, Series>>,
    pub points: u64,
    /// Where the closed chunks are (memory unless made with [`Curves::on_disk`] or loaded).
    #[serde(skip)]
    pub store: ChunkStore,
}

impl PartialEq for Curves {
    /// The same points, bit for bit, wherever each side keeps its chunks.
    fn eq(&self, o: &Self) -> bool {
        self.off == o.off
            && self.applied == o.applied
            && self.points == o.points
            && self.runs.len() == o.runs.len()
            && self.runs.iter().all(|(exp, run)| {
                o.runs.get(exp).is_some_and(|other| {
                    run.len() == other.len()
                        && run
                            .iter()
                            .all(|(key, s)| other.get(key).is_some_and(|t| self.at(s) == o.at(t)))
                })
            })
    }
}

/// Looks (curve checkpoints, every few minutes while points come) a series stays quiet before its tail is
/// sealed.
pub const QUIET_LOOKS: u8 = 5;

/// Key of the curve store's checkpoint in the log database, and the layout's version (an old one is ignored
/// and the store rebuilt from the log).
pub const CURVES_KEY: &str = "curves";
const CURVES_VERSION: u32 = 2;

/// The checkpoint as written (borrowing the store) and as read.
#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    curves: &'a Curves,
    chunks: &'a Saved,
}

#[derive(Deserialize)]
struct SavedCurves {
    version: u32,
    curves: Curves,
    chunks: Saved,
}

impl Curves {
    /// An empty store whose chunks go to a new file in `dir`.
    pub fn on_disk(dir: &Path) -> std::io::Result<Curves> {
        Ok(Curves {
            store: ChunkStore::create(dir)?,
            ..Curves::default()
        })
    }

    /// An empty store that keeps its chunks where this one does (a new file beside its file, or memory), for a
    /// rebuild that will replace it.
    pub fn like(&self) -> Curves {
        let store = self.store.like().unwrap_or_else(|e| {
            tracing::warn!(
                "curve store: no new chunk file ({e}); the rebuilt store keeps its chunks in memory"
            );
            ChunkStore::default()
        });
        Curves {
            off: self.off,
            store,
            ..Curves::default()
        }
    }

    /// A series of this store, to read.
    pub fn at<'a>(&'a self, series: &'a Series) -> SeriesRef<'a> {
        SeriesRef {
            series,
            store: &self.store,
        }
    }

    /// The checkpoint's bytes, its chunks named by `chunks` (what [`ChunkStore::save`] gives: the daemon writes
    /// them in place instead, with [`Curves::write_checkpoint`]; the tests read this).
    #[cfg(test)]
    pub fn encode_checkpoint(&self, chunks: &Saved) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.write_checkpoint_to(chunks, &mut out)?;
        Ok(out)
    }

    /// How many bytes the checkpoint takes (counted by encoding into nothing).
    pub fn checkpoint_len(&self, chunks: &Saved) -> Result<usize, String> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut n = Count(0);
        self.write_checkpoint_to(chunks, &mut n)?;
        Ok(n.0)
    }

    /// Writes the checkpoint into `out`, which must be exactly [`Curves::checkpoint_len`] long (what
    /// `EventLog::save_checkpoint_with` reserves).
    pub fn write_checkpoint(&self, chunks: &Saved, out: &mut [u8]) -> Result<(), String> {
        let mut rest = out;
        self.write_checkpoint_to(chunks, &mut rest)?;
        if !rest.is_empty() {
            return Err(format!("{} bytes short of the length counted", rest.len()));
        }
        Ok(())
    }

    fn write_checkpoint_to(
        &self,
        chunks: &Saved,
        out: &mut impl std::io::Write,
    ) -> Result<(), String> {
        rmp_serde::encode::write_named(
            out,
            &SavedRef {
                version: CURVES_VERSION,
                curves: self,
                chunks,
            },
        )
        .map_err(|e| e.to_string())
    }

    /// The store from a checkpoint, its chunk file opened in `dir`; an error (with the reason) when it is of
    /// another version, does not read whole, or its chunk file is missing or short.
    pub fn decode_checkpoint(bytes: &[u8], dir: &Path) -> Result<Curves, String> {
        let saved: SavedCurves = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
        if saved.version != CURVES_VERSION {
            return Err(format!(
                "version {} (this labd reads {CURVES_VERSION})",
                saved.version
            ));
        }
        let mut c = saved.curves;
        c.store = ChunkStore::open(saved.chunks, dir)?;
        let mut points = 0u64;
        for (exp, run) in &c.runs {
            for (key, s) in run {
                c.at(s).check().map_err(|e| format!("{exp} {key}: {e}"))?;
                points += s.len() as u64;
            }
        }
        if points != c.points {
            return Err(format!("{points} points held, {} counted", c.points));
        }
        Ok(c)
    }

    /// Applies `event` if it is the next one; answers whether it was.
    pub fn apply(&mut self, seq: Seq, event: &Event) -> bool {
        self.apply_batch(seq, std::slice::from_ref(event)) == 1
    }

    /// Applies the events of `events` (numbered from `first`) that follow `applied`, as [`Curves::apply`] one
    /// by one does; a stretch of one run's rows finds the run once. Answers how many were applied.
    pub fn apply_batch(&mut self, first: Seq, events: &[Event]) -> usize {
        let next = self.applied + 1;
        if self.off || next < first || next - first >= events.len() as u64 {
            return 0;
        }
        let events = &events[(next - first) as usize..];
        self.applied += events.len() as u64;
        let mut key = String::new();
        let mut i = 0;
        while i < events.len() {
            let m = match &events[i].kind {
                EventKind::MetricsLogged(m) => m,
                EventKind::StatusChanged(s) if s.status.is_final() => {
                    // A run that ended writes no more points (as a rule): its tails go to the store.
                    if let Some(run) = self.runs.get_mut(&s.exp) {
                        run.values_mut().for_each(|series| series.seal(&self.store));
                    }
                    i += 1;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            let run = match self.runs.get_mut(&m.exp) {
                Some(r) => r,
                None => self.runs.entry(m.exp.clone()).or_default(),
            };
            while let Some(EventKind::MetricsLogged(m2)) = events.get(i).map(|e| &e.kind) {
                if m2.exp != m.exp {
                    break;
                }
                for (name, &v) in &m2.values {
                    super::registry::metric_key(m2.split.as_deref(), name, &mut key);
                    let series = match run.get_mut(key.as_str()) {
                        Some(s) => s,
                        None => run.entry(key.clone()).or_default(),
                    };
                    series.push(&self.store, m2.step, m2.epoch, m2.wall_time, &m2.x, v);
                    self.points += 1;
                }
                i += 1;
            }
        }
        events.len()
    }

    /// Seals the tails of the series no point came to over the last [`QUIET_LOOKS`] calls (runs gone quiet
    /// without a final status: crashed, killed, or read from files that never say); answers how many. The
    /// points read the same. (A run that only pauses is not sealed at every pause: a reopened tail leaves its
    /// sealed copy unused in the chunk file until a replay writes a new one.)
    pub fn seal_quiet(&mut self) -> usize {
        let mut sealed = 0;
        for series in self.runs.values_mut().flat_map(|r| r.values_mut()) {
            series.quiet = series.quiet.saturating_add(1);
            if series.quiet > QUIET_LOOKS && series.open_len() > 0 {
                series.seal(&self.store);
                sealed += 1;
            }
        }
        sealed
    }

    pub fn series(&self, exp: &ExperimentId, key: &str) -> Option<SeriesRef<'_>> {
        Some(self.at(self.runs.get(exp)?.get(key)?))
    }

    /// A run's series by key.
    pub fn run(&self, exp: &ExperimentId) -> impl Iterator<Item = (&String, SeriesRef<'_>)> {
        self.runs
            .get(exp)
            .into_iter()
            .flatten()
            .map(|(k, s)| (k, self.at(s)))
    }

    /// Bytes held in memory: the index, the open tails and chunks not yet written out.
    pub fn bytes(&self) -> usize {
        self.runs
            .values()
            .flat_map(|r| r.values())
            .map(Series::bytes)
            .sum::<usize>()
            + self.store.bytes().0
    }

    /// Bytes of closed chunks stored (in the chunk file, or memory).
    pub fn stored_bytes(&self) -> u64 {
        self.store.bytes().1
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
        assert_eq!(s.pairs(&Axis::Wall)[2].0, 1_700_000_010.0);
        assert!(s.columns().value[2].is_nan());
        assert_eq!(c.points, 3);
        assert_eq!(c.clone(), c, "NaN compares equal bitwise");
    }

    /// Across chunk boundaries, with axes that come and go, every bit comes back however it is read.
    #[test]
    fn chunks_give_back_every_point() {
        let mut c = Curves::default();
        let n = CHUNK * 3 + 17;
        let value = |i: usize| match i % 97 {
            0 => f64::NAN,
            1 => -0.0,
            2 => 0.1 + 0.2,
            _ => ((1.0 / (1.0 + i as f64)) * 1e6).round() / 1e6,
        };
        for i in 0..n {
            let epoch = (i >= 50).then_some(i as f64 / 128.0);
            let x: Vec<(&str, f64)> = if i >= 200 && i % 2 == 0 {
                vec![("tokens", 4096.0 * i as f64)]
            } else {
                vec![]
            };
            assert!(c.apply(i as u64 + 1, &row("a", i as i64, epoch, &x, value(i))));
        }
        let s = c.series(&ExperimentId("a".into()), "train/loss").unwrap();
        s.check().unwrap();
        assert_eq!(s.len(), n);
        let all = s.columns();
        for i in 0..n {
            assert_eq!(all.value[i].to_bits(), value(i).to_bits(), "{i}");
            assert_eq!(all.step[i], i as i64);
            let e = all.epoch.as_ref().unwrap()[i];
            assert!(if i >= 50 {
                e == i as f64 / 128.0
            } else {
                e.is_nan()
            });
            let t = all.custom[0][i];
            assert!(if i >= 200 && i % 2 == 0 {
                t == 4096.0 * i as f64
            } else {
                t.is_nan()
            });
        }
        // A range read decodes only what it needs and gives the same points.
        let part = s.range(CHUNK - 3..CHUNK * 2 + 5);
        assert_eq!(part.len(), CHUNK + 8);
        assert_eq!(part.step[0], (CHUNK - 3) as i64);
        assert_eq!(part.custom.len(), 1);
        assert_eq!(
            s.pairs(&Axis::Custom("tokens".into())).len(),
            (n - 200).div_ceil(2)
        );
        assert_eq!(s.last_finite(3).len(), 3);
        // Raw columns would take 32 bytes a point here: memory holds the open tail and where the chunks are.
        assert!(
            s.series.bytes() < 2 * 1024,
            "{} bytes held for {n} points",
            s.series.bytes()
        );
        // Saved and loaded (the checkpoint), equal bit for bit; damage is refused with a reason, never loaded.
        let dir = tempfile::tempdir().unwrap();
        let (chunks, _) = c.store.save().unwrap();
        let bytes = c.encode_checkpoint(&chunks).unwrap();
        // Written in place (as the daemon saves it) it is the same bytes; a buffer of another length is refused.
        let mut direct = vec![0u8; c.checkpoint_len(&chunks).unwrap()];
        c.write_checkpoint(&chunks, &mut direct).unwrap();
        assert_eq!(direct, bytes);
        assert!(
            c.write_checkpoint(&chunks, &mut vec![0u8; bytes.len() + 1])
                .is_err()
        );
        assert!(
            c.write_checkpoint(&chunks, &mut vec![0u8; bytes.len() - 1])
                .is_err()
        );
        let back = Curves::decode_checkpoint(&bytes, dir.path()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.applied, n as u64);
        assert!(Curves::decode_checkpoint(&bytes[..bytes.len() / 2], dir.path()).is_err());
        let mut wrong = c.clone();
        wrong.points += 1;
        let err = Curves::decode_checkpoint(&wrong.encode_checkpoint(&chunks).unwrap(), dir.path())
            .unwrap_err();
        assert!(err.contains("points"), "{err}");
        let mut damaged = c.clone();
        if let Some(s) = damaged
            .runs
            .values_mut()
            .flat_map(|r| r.values_mut())
            .next()
        {
            s.chunks[1].at += 1 << 20;
        }
        let err =
            Curves::decode_checkpoint(&damaged.encode_checkpoint(&chunks).unwrap(), dir.path())
                .unwrap_err();
        assert!(
            err.contains("train/loss") && err.contains("chunk 1"),
            "{err}"
        );
    }

    /// On disk: the chunks go to the file, the checkpoint names it, and a restart reads the same points; the
    /// chunks written after the checkpoint are cut off and written again by the warm-up.
    #[test]
    fn a_store_on_disk_saves_and_loads_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Curves::on_disk(dir.path()).unwrap();
        let n = CHUNK * 40 + 5;
        let rows: Vec<Event> = (0..n)
            .map(|i| row("a", i as i64, Some(i as f64 / 7.0), &[], (i as f64).sqrt()))
            .collect();
        let half = n / 2;
        assert_eq!(c.apply_batch(1, &rows[..half]), half);
        let (chunks, file) = c.store.save().unwrap();
        file.unwrap().sync_data().unwrap();
        c.store.mark_saved();
        let bytes = c.encode_checkpoint(&chunks).unwrap();
        assert!(
            bytes.len() < half * 2,
            "the checkpoint holds the index and the tail, not the points: {} bytes",
            bytes.len()
        );
        // More written after the checkpoint, then a "crash": the saved store loads as it was saved.
        assert_eq!(c.apply_batch(half as u64 + 1, &rows[half..]), n - half);
        c.store.save().unwrap();
        drop(c);
        let mut whole = Curves::default();
        whole.apply_batch(1, &rows);
        let mut back = Curves::decode_checkpoint(&bytes, dir.path()).unwrap();
        assert_eq!(back.applied, half as u64);
        assert_eq!(back.apply_batch(half as u64 + 1, &rows[half..]), n - half);
        assert!(back == whole, "the same points as a store in memory");
        let s = back
            .series(&ExperimentId("a".into()), "train/loss")
            .unwrap();
        assert_eq!(
            s.columns().value[n - 1].to_bits(),
            ((n - 1) as f64).sqrt().to_bits()
        );
        // The file left aside is refused by name, and the store rebuilt.
        let Saved::File { name, .. } = &chunks else {
            panic!("on disk")
        };
        std::fs::remove_file(dir.path().join(name)).unwrap();
        let err = Curves::decode_checkpoint(&bytes, dir.path()).unwrap_err();
        assert!(err.contains(name.as_str()), "{err}");
    }

    /// A run that ends, or goes quiet between two looks, has its tails sealed into the store: memory drops to
    /// the index, the points read the same, and a point that comes after reopens the tail.
    #[test]
    fn tails_of_ended_and_quiet_runs_are_sealed_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Curves::on_disk(dir.path()).unwrap();
        let mut reference = Curves::default();
        let status = |exp: &str, status| {
            Event::new(
                0,
                Source::Daemon,
                EventKind::StatusChanged(labd_schemas::event::StatusChanged {
                    exp: ExperimentId(exp.into()),
                    status,
                    notes: None,
                    extra: Default::default(),
                }),
            )
        };
        let mut events: Vec<Event> = (0..CHUNK + 40)
            .map(|i| {
                row(
                    "a",
                    i as i64,
                    None,
                    &[("tokens", i as f64)],
                    i as f64 * 0.25,
                )
            })
            .collect();
        events.extend((0..50).map(|i| row("b", i, None, &[], 1.0 / (i as f64 + 1.0))));
        events.push(status("a", labd_schemas::event::RunStatus::Running));
        events.push(status("a", labd_schemas::event::RunStatus::Completed));
        let n = events.len();
        c.apply_batch(1, &events);
        reference.apply_batch(1, &events);
        let a = &c.runs[&ExperimentId("a".into())]["train/loss"];
        assert!(
            a.sealed.is_some() && a.open.is_none(),
            "sealed when the run ended"
        );
        let b = &c.runs[&ExperimentId("b".into())]["train/loss"];
        assert!(b.sealed.is_none(), "a run still going keeps its tail open");
        assert!(c == reference, "the same points either way");
        // b had points just now; once it has been quiet over QUIET_LOOKS looks, it is sealed.
        for _ in 0..QUIET_LOOKS {
            assert_eq!(c.seal_quiet(), 0);
        }
        assert_eq!(c.seal_quiet(), 1);
        assert_eq!(c.seal_quiet(), 0);
        assert!(
            c.runs[&ExperimentId("b".into())]["train/loss"]
                .sealed
                .is_some()
        );
        assert!(c == reference);
        // Saved and loaded with sealed tails, then more points reopen them.
        let (chunks, _) = c.store.save().unwrap();
        let bytes = c.encode_checkpoint(&chunks).unwrap();
        let mut back = Curves::decode_checkpoint(&bytes, dir.path()).unwrap();
        let more = [
            row("a", 500, None, &[], 7.0),
            row("b", 50, Some(1.0), &[], 0.5),
        ];
        back.apply_batch(n as u64 + 1, &more);
        reference.apply_batch(n as u64 + 1, &more);
        assert!(back == reference, "reopened tails go on where they stopped");
        assert!(
            back.store.unused() > 0,
            "the sealed copies are counted unused"
        );
        let s = back
            .series(&ExperimentId("a".into()), "train/loss")
            .unwrap();
        assert_eq!(s.len(), CHUNK + 41);
        assert!(s.columns().custom[0][CHUNK + 40].is_nan());
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

    proptest::proptest! {
        #[test]
        fn any_axis_values_come_back_bit_for_bit(
            rows in proptest::collection::vec(
                (proptest::option::of(proptest::num::f64::ANY), proptest::option::of(proptest::num::f64::ANY),
                 proptest::num::f64::ANY, proptest::option::of(proptest::num::i64::ANY)),
                0..300,
            ),
        ) {
            let mut s = Series::default();
            let store = ChunkStore::default();
            for (epoch, wall, v, step) in &rows {
                s.push(&store, *step, *epoch, *wall, &FloatMap::new(), *v);
            }
            let c = SeriesRef { series: &s, store: &store }.columns();
            for (i, (epoch, wall, v, step)) in rows.iter().enumerate() {
                proptest::prop_assert_eq!(c.value[i].to_bits(), v.to_bits());
                proptest::prop_assert_eq!(c.step[i], step.unwrap_or(NO_STEP));
                for (col, x) in [(&c.epoch, epoch), (&c.wall, wall)] {
                    match x {
                        Some(x) if !x.is_nan() => proptest::prop_assert_eq!(col.as_ref().map(|c| c[i].to_bits()), Some(x.to_bits())),
                        _ => proptest::prop_assert!(col.as_ref().is_none_or(|c| c[i].is_nan())),
                    }
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
