//! A series' points as columns, and a closed stretch of them compressed: steps as zigzag varints of their
//! differences, floats against the previous one of their column (`labd_log::codec`: short decimals as scaled
//! integers, anything else XOR the previous bits), as Gorilla and Prometheus chunks hold time series. A chunk
//! decodes to the same bits that went in.

use labd_log::codec::{FloatState, Reader, put, put_float, unzigzag, zigzag};
use serde::{Deserialize, Serialize};

/// Points of a closed chunk. Small enough that a series' open tail stays small, large enough that a chunk's
/// first values (written whole) are a small share of it.
pub const CHUNK: usize = 128;

/// A step column's "no step" (the step of a row without one).
pub const NO_STEP: i64 = i64::MIN;

/// Points as plain columns: the open tail of a series, or a chunk decoded. Optional axes are `None` until a
/// point has them, NaN for the points without them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Columns {
    /// [`NO_STEP`] where a point had no step.
    pub step: Vec<i64>,
    pub epoch: Option<Vec<f64>>,
    /// Wall time, Unix seconds.
    pub wall: Option<Vec<f64>>,
    /// Custom axes by their index in the series' list of names.
    pub custom: Vec<Vec<f64>>,
    pub value: Vec<f64>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Appends `other`, filling the axes one side lacks with NaN.
    pub fn extend(&mut self, other: &Columns) {
        let n = self.len();
        let m = other.len();
        let join =
            |mine: &mut Option<Vec<f64>>, theirs: &Option<Vec<f64>>| match (&mut *mine, theirs) {
                (Some(a), Some(b)) => a.extend_from_slice(b),
                (Some(a), None) => a.resize(n + m, f64::NAN),
                (None, Some(b)) => {
                    let mut a = vec![f64::NAN; n];
                    a.extend_from_slice(b);
                    *mine = Some(a);
                }
                (None, None) => {}
            };
        join(&mut self.epoch, &other.epoch);
        join(&mut self.wall, &other.wall);
        if self.custom.len() < other.custom.len() {
            self.custom.resize(other.custom.len(), vec![f64::NAN; n]);
        }
        for (i, col) in self.custom.iter_mut().enumerate() {
            match other.custom.get(i) {
                Some(c) => col.extend_from_slice(c),
                None => col.resize(n + m, f64::NAN),
            }
        }
        self.step.extend_from_slice(&other.step);
        self.value.extend_from_slice(&other.value);
    }

    /// Points `range` of these columns.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Columns {
        let part = |c: &Option<Vec<f64>>| c.as_ref().map(|c| c[range.clone()].to_vec());
        Columns {
            step: self.step[range.clone()].to_vec(),
            epoch: part(&self.epoch),
            wall: part(&self.wall),
            custom: self
                .custom
                .iter()
                .map(|c| c[range.clone()].to_vec())
                .collect(),
            value: self.value[range.clone()].to_vec(),
        }
    }
}

const HAS_EPOCH: u8 = 1;
const HAS_WALL: u8 = 2;

/// A closed stretch of points compressed: a flag byte (which optional axes it has), the number of custom axes,
/// the steps, then each float column in turn (epoch, wall, customs, values). The reference that [`Open`]'s
/// incremental encoding is tested against.
#[cfg(test)]
pub fn encode(c: &Columns) -> Vec<u8> {
    // Column by column through the same streams the open tail writes point by point.
    let floats = |col: &[f64]| {
        let mut f = Floats::default();
        col.iter().for_each(|&v| f.push(v));
        f
    };
    let mut step = Vec::new();
    let mut prev_step = 0i64;
    for &s in &c.step {
        put(&mut step, zigzag(s.wrapping_sub(prev_step)));
        prev_step = s;
    }
    Open {
        n: c.len(),
        prev_step,
        step,
        epoch: c.epoch.as_deref().map(floats),
        wall: c.wall.as_deref().map(floats),
        custom: c.custom.iter().map(|c| floats(c)).collect(),
        value: floats(&c.value),
    }
    .close()
}

/// The `n` points of a chunk's bytes. An error means they are damaged.
pub fn decode(bytes: &[u8], n: usize) -> Result<Columns, String> {
    let mut r = Reader::new(bytes, "curve chunk");
    let flags = r.byte()?;
    let customs = r.varint()?;
    if customs > bytes.len() as u64 {
        return Err(format!("curve chunk: {customs} custom axes"));
    }
    let step = steps(&mut r, n)?;
    let epoch = (flags & HAS_EPOCH != 0)
        .then(|| floats(&mut r, n))
        .transpose()?;
    let wall = (flags & HAS_WALL != 0)
        .then(|| floats(&mut r, n))
        .transpose()?;
    let custom = (0..customs)
        .map(|_| floats(&mut r, n))
        .collect::<Result<Vec<_>, _>>()?;
    let value = floats(&mut r, n)?;
    if !r.is_empty() {
        return Err("curve chunk: bytes after its points".into());
    }
    Ok(Columns {
        step,
        epoch,
        wall,
        custom,
        value,
    })
}

fn steps(r: &mut Reader, n: usize) -> Result<Vec<i64>, String> {
    let mut step = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.varint()?));
        step.push(prev);
    }
    Ok(step)
}

fn floats(r: &mut Reader, n: usize) -> Result<Vec<f64>, String> {
    let mut state = FloatState::default();
    (0..n).map(|_| r.float(&mut state)).collect()
}

/// One float column being written: its bytes so far and the last value, that the next is written against.
#[derive(Clone, Debug, Default)]
struct Floats {
    bytes: Vec<u8>,
    state: FloatState,
}

impl Floats {
    fn nans(n: usize) -> Floats {
        let mut f = Floats::default();
        (0..n).for_each(|_| f.push(f64::NAN));
        f
    }

    fn push(&mut self, v: f64) {
        put_float(&mut self.bytes, &mut self.state, v);
    }

    fn read(&self, n: usize) -> Result<Vec<f64>, String> {
        let mut r = Reader::new(&self.bytes, "open curve tail");
        let out = floats(&mut r, n)?;
        if !r.is_empty() {
            return Err("open curve tail: bytes after its points".into());
        }
        Ok(out)
    }

    fn bytes(&self) -> usize {
        self.bytes.capacity() + std::mem::size_of::<Floats>()
    }
}

/// A series' open tail, compressed as it is written: each column a stream of its own, so a point costs its
/// coded bytes (not 8 a column) while the chunk fills, and closing it only joins the streams. Optional axes
/// start when a point first has them (NaN for the points before), as [`Columns`] does.
#[derive(Clone, Debug, Default)]
pub struct Open {
    n: usize,
    prev_step: i64,
    step: Vec<u8>,
    epoch: Option<Floats>,
    wall: Option<Floats>,
    custom: Vec<Floats>,
    value: Floats,
}

impl Open {
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Appends a point. `custom` gives one value per custom axis the series knows (NaN where the point has
    /// none); the list only grows.
    pub fn push(
        &mut self,
        step: i64,
        epoch: Option<f64>,
        wall: Option<f64>,
        custom: impl Iterator<Item = f64>,
        value: f64,
    ) {
        let n = self.n;
        put(&mut self.step, zigzag(step.wrapping_sub(self.prev_step)));
        self.prev_step = step;
        let axis = |col: &mut Option<Floats>, v: Option<f64>| match (col, v) {
            (Some(c), v) => c.push(v.unwrap_or(f64::NAN)),
            (c @ None, Some(v)) => {
                let mut new = Floats::nans(n);
                new.push(v);
                *c = Some(new);
            }
            (None, None) => {}
        };
        axis(&mut self.epoch, epoch);
        axis(&mut self.wall, wall);
        let mut k = 0;
        for v in custom {
            if k == self.custom.len() {
                self.custom.push(Floats::nans(n));
            }
            self.custom[k].push(v);
            k += 1;
        }
        for c in &mut self.custom[k..] {
            c.push(f64::NAN);
        }
        self.value.push(value);
        self.n += 1;
    }

    /// The tail as a closed chunk's bytes (see [`decode`]); the tail starts again empty, keeping the room of
    /// the columns every point has.
    pub fn close(&mut self) -> Vec<u8> {
        let flags = if self.epoch.is_some() { HAS_EPOCH } else { 0 }
            | if self.wall.is_some() { HAS_WALL } else { 0 };
        let optional = [&self.epoch, &self.wall].into_iter().flatten();
        let len = 12
            + self.step.len()
            + optional.clone().map(|f| f.bytes.len()).sum::<usize>()
            + self.custom.iter().map(|f| f.bytes.len()).sum::<usize>()
            + self.value.bytes.len();
        let mut out = Vec::with_capacity(len);
        out.push(flags);
        put(&mut out, self.custom.len() as u64);
        out.extend_from_slice(&self.step);
        for f in optional.chain(&self.custom) {
            out.extend_from_slice(&f.bytes);
        }
        out.extend_from_slice(&self.value.bytes);
        self.n = 0;
        self.prev_step = 0;
        self.step.clear();
        self.value.bytes.clear();
        self.value.state = FloatState::default();
        self.epoch = None;
        self.wall = None;
        self.custom = Vec::new();
        out
    }

    /// The tail's points. An error means a bug (the tail is only written here).
    pub fn columns(&self) -> Result<Columns, String> {
        let n = self.n;
        let mut r = Reader::new(&self.step, "open curve tail");
        let step = steps(&mut r, n)?;
        let opt = |f: &Option<Floats>| f.as_ref().map(|f| f.read(n)).transpose();
        Ok(Columns {
            step,
            epoch: opt(&self.epoch)?,
            wall: opt(&self.wall)?,
            custom: self
                .custom
                .iter()
                .map(|f| f.read(n))
                .collect::<Result<_, _>>()?,
            value: self.value.read(n)?,
        })
    }

    /// A tail holding the points of `c` (a tail saved as plain columns, loaded).
    pub fn from_columns(c: &Columns) -> Open {
        let mut open = Open::default();
        let at = |col: &Option<Vec<f64>>, i: usize| col.as_ref().map(|c| c[i]);
        for i in 0..c.len() {
            open.push(
                c.step[i],
                at(&c.epoch, i),
                at(&c.wall, i),
                c.custom.iter().map(|col| col[i]),
                c.value[i],
            );
        }
        open
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Open>()
            + self.step.capacity()
            + [&self.epoch, &self.wall]
                .into_iter()
                .flatten()
                .map(Floats::bytes)
                .sum::<usize>()
            + self.custom.iter().map(Floats::bytes).sum::<usize>()
            + self.value.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(c: &[f64]) -> Vec<u64> {
        c.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn a_chunk_gives_back_every_bit() {
        let n = CHUNK;
        let c = Columns {
            step: (0..n as i64)
                .map(|i| if i == 7 { NO_STEP } else { i * 10 })
                .collect(),
            epoch: Some((0..n).map(|i| (i / 10) as f64).collect()),
            wall: None,
            custom: vec![
                (0..n)
                    .map(|i| {
                        if i % 3 == 0 {
                            f64::NAN
                        } else {
                            512.0 * i as f64
                        }
                    })
                    .collect(),
            ],
            value: (0..n)
                .map(|i| match i {
                    3 => f64::INFINITY,
                    4 => -0.0,
                    5 => 0.1 + 0.2,
                    _ => ((1.0 / (1.0 + i as f64)) * 1e6).round() / 1e6,
                })
                .collect(),
        };
        let chunk = encode(&c);
        let back = decode(&chunk, n).unwrap();
        assert_eq!(back.step, c.step);
        assert_eq!(
            bits(back.epoch.as_ref().unwrap()),
            bits(c.epoch.as_ref().unwrap())
        );
        assert!(back.wall.is_none());
        assert_eq!(bits(&back.custom[0]), bits(&c.custom[0]));
        assert_eq!(bits(&back.value), bits(&c.value));
        assert!(chunk.len() < n * 8, "{} bytes for {n} points", chunk.len());
        assert!(decode(&chunk[..chunk.len() / 2], n).is_err());
        assert!(decode(&chunk, n + 1).is_err());
        // Written point by point, the open tail reads back the same and closes to the same bytes.
        let open = Open::from_columns(&c);
        let read = open.columns().unwrap();
        assert_eq!(read.step, c.step);
        assert_eq!(bits(&read.custom[0]), bits(&c.custom[0]));
        assert_eq!(bits(&read.value), bits(&c.value));
        let mut open = open;
        assert!(
            open.bytes() < chunk.len() * 2 + 512,
            "{} bytes held for {n} points ({} coded)",
            open.bytes(),
            chunk.len()
        );
        assert_eq!(open.close(), chunk);
        assert!(open.is_empty() && open.columns().unwrap().is_empty());
    }

    /// An axis that starts midway is NaN before, in the tail as in the columns; a closed tail starts afresh.
    #[test]
    fn the_open_tail_starts_axes_midway_and_afresh_after_closing() {
        let mut open = Open::default();
        open.push(1, None, None, std::iter::empty(), 0.5);
        open.push(2, Some(0.25), None, [7.0].into_iter(), 0.75);
        let c = open.columns().unwrap();
        assert!(c.epoch.as_ref().unwrap()[0].is_nan() && c.epoch.as_ref().unwrap()[1] == 0.25);
        assert!(c.custom[0][0].is_nan() && c.custom[0][1] == 7.0);
        assert!(c.wall.is_none());
        assert_eq!(encode(&c), open.clone().close());
        open.close();
        open.push(3, None, Some(9.0), std::iter::empty(), 1.0);
        let c = open.columns().unwrap();
        assert_eq!(c.step, [3]);
        assert!(c.epoch.is_none() && c.custom.is_empty() && c.wall == Some(vec![9.0]));
    }

    #[test]
    fn columns_join_with_axes_either_side_lacks() {
        let a = Columns {
            step: vec![1],
            epoch: None,
            wall: Some(vec![5.0]),
            custom: vec![],
            value: vec![0.5],
        };
        let b = Columns {
            step: vec![2],
            epoch: Some(vec![1.0]),
            wall: None,
            custom: vec![vec![9.0]],
            value: vec![0.25],
        };
        let mut j = a.clone();
        j.extend(&b);
        assert_eq!(j.step, [1, 2]);
        assert!(j.epoch.as_ref().unwrap()[0].is_nan());
        assert!(j.wall.as_ref().unwrap()[1].is_nan());
        assert!(j.custom[0][0].is_nan() && j.custom[0][1] == 9.0);
        assert_eq!(j.slice(1..2).value, [0.25]);
    }
}
