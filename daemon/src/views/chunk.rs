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

    /// Bytes of point data held.
    pub fn bytes(&self) -> usize {
        let opt = |c: &Option<Vec<f64>>| c.as_ref().map_or(0, |c| c.capacity() * 8);
        self.step.capacity() * 8
            + self.value.capacity() * 8
            + opt(&self.epoch)
            + opt(&self.wall)
            + self.custom.iter().map(|c| c.capacity() * 8).sum::<usize>()
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

/// A closed stretch of a series, compressed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub len: u32,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

const HAS_EPOCH: u8 = 1;
const HAS_WALL: u8 = 2;

impl Chunk {
    /// Compresses `c`.
    pub fn encode(c: &Columns) -> Chunk {
        let mut out = Vec::with_capacity(c.len() * 4 + 8);
        let flags = if c.epoch.is_some() { HAS_EPOCH } else { 0 }
            | if c.wall.is_some() { HAS_WALL } else { 0 };
        out.push(flags);
        put(&mut out, c.custom.len() as u64);
        let mut prev = 0i64;
        for &s in &c.step {
            put(&mut out, zigzag(s.wrapping_sub(prev)));
            prev = s;
        }
        let floats = |out: &mut Vec<u8>, col: &[f64]| {
            let mut state = FloatState::default();
            for &v in col {
                put_float(out, &mut state, v);
            }
        };
        for col in [&c.epoch, &c.wall].into_iter().flatten() {
            floats(&mut out, col);
        }
        for col in &c.custom {
            floats(&mut out, col);
        }
        floats(&mut out, &c.value);
        out.shrink_to_fit();
        Chunk {
            len: c.len() as u32,
            bytes: out,
        }
    }

    /// The chunk's points. An error means its bytes are damaged (a checkpoint that does not read is rebuilt).
    pub fn decode(&self) -> Result<Columns, String> {
        let n = self.len as usize;
        let mut r = Reader::new(&self.bytes, "curve chunk");
        let flags = r.byte()?;
        let customs = r.varint()?;
        if customs > self.bytes.len() as u64 {
            return Err(format!("curve chunk: {customs} custom axes"));
        }
        let mut step = Vec::with_capacity(n);
        let mut prev = 0i64;
        for _ in 0..n {
            prev = prev.wrapping_add(unzigzag(r.varint()?));
            step.push(prev);
        }
        let floats = |r: &mut Reader| -> Result<Vec<f64>, String> {
            let mut state = FloatState::default();
            (0..n).map(|_| r.float(&mut state)).collect()
        };
        let epoch = (flags & HAS_EPOCH != 0)
            .then(|| floats(&mut r))
            .transpose()?;
        let wall = (flags & HAS_WALL != 0)
            .then(|| floats(&mut r))
            .transpose()?;
        let custom = (0..customs)
            .map(|_| floats(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let value = floats(&mut r)?;
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

    pub fn bytes(&self) -> usize {
        self.bytes.capacity() + 16
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
        let chunk = Chunk::encode(&c);
        let back = chunk.decode().unwrap();
        assert_eq!(back.step, c.step);
        assert_eq!(
            bits(back.epoch.as_ref().unwrap()),
            bits(c.epoch.as_ref().unwrap())
        );
        assert!(back.wall.is_none());
        assert_eq!(bits(&back.custom[0]), bits(&c.custom[0]));
        assert_eq!(bits(&back.value), bits(&c.value));
        assert!(
            chunk.bytes.len() < n * 8,
            "{} bytes for {n} points",
            chunk.bytes.len()
        );
        let mut damaged = chunk.clone();
        damaged.bytes.truncate(damaged.bytes.len() / 2);
        assert!(damaged.decode().is_err());
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
