//! The quickest path for the commonest line: a `metrics` line of plain fields (`kind`, `split`, `step`,
//! `epoch`, `time` in seconds, `values` of numbers and nulls), scanned byte by byte with no deserializer.
//! Anything else — another field, an escape, a NaN string, a field given twice, a number out of range — it
//! leaves to the serde fast path ([`super::fast`]), and on the lines it takes it gives exactly that path's row
//! (a property test holds the two together). Numbers are read by the standard library's correctly rounded
//! parser, as serde_json reads them with `float_roundtrip`: the same bits.

use super::fast::MetricsRow;
use crate::float_map::FloatMap;
use crate::time::TimeValue;
use serde_json::Map;

/// The row of `text` when it is a plain metrics line.
pub fn metrics_row(text: &str) -> Option<MetricsRow> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        at: 0,
    };
    s.byte(b'{')?;
    let mut kind = false;
    let (mut split, mut step, mut epoch, mut time) = (None, None, None, None);
    let mut values: Option<FloatMap> = None;
    if !s.peek_is(b'}') {
        loop {
            let key = s.string()?;
            s.byte(b':')?;
            match key {
                "kind" if !kind => {
                    if s.string()? != "metrics" {
                        return None;
                    }
                    kind = true;
                }
                "split" if split.is_none() => {
                    split = Some(s.null_or(|s| s.string().map(String::from))?)
                }
                "step" if step.is_none() => step = Some(s.null_or(Scanner::integer)?),
                "epoch" if epoch.is_none() => epoch = Some(s.null_or(Scanner::number)?),
                "time" if time.is_none() => time = Some(s.null_or(Scanner::number)?),
                "values" if values.is_none() => values = Some(s.numbers()?),
                _ => return None,
            }
            if !s.comma_or_end(b'}')? {
                break;
            }
        }
    } else {
        s.at += 1;
    }
    s.ws();
    if s.at != s.b.len() || !kind {
        return None;
    }
    let time = time.flatten().map(TimeValue::Seconds);
    if let Some(t) = &time {
        t.to_micros().ok()?;
    }
    Some(MetricsRow {
        split: split.flatten(),
        step: step.flatten(),
        epoch: epoch.flatten(),
        time,
        x: FloatMap::new(),
        values: values?,
        extra: Map::new(),
    })
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    at: usize,
}

/// A small number's parts: `±mantissa × 10^exp10`.
#[derive(Clone, Copy)]
struct Parts {
    negative: bool,
    mantissa: u64,
    exp10: i32,
    integer: bool,
}

impl Parts {
    /// Whether the mantissa, as an integer, fits `i64` (up to 18 digits always do).
    fn digits_fit_i64(self) -> bool {
        self.mantissa <= i64::MAX as u64
    }
}

/// The powers of ten a double holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace is `c`.
    fn peek_is(&mut self, c: u8) -> bool {
        self.ws();
        self.b.get(self.at) == Some(&c)
    }

    fn byte(&mut self, c: u8) -> Option<()> {
        if self.peek_is(c) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    /// After a member: `true` at a comma (another follows), `false` at `end`.
    fn comma_or_end(&mut self, end: u8) -> Option<bool> {
        self.ws();
        let c = *self.b.get(self.at)?;
        self.at += 1;
        match c {
            b',' => Some(true),
            c if c == end => Some(false),
            _ => None,
        }
    }

    /// A string with no escapes and no control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let len = self.b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Cut at ASCII quotes, so at character boundaries.
        self.text.get(start..start + len)
    }

    /// `null` (as `None`) or what `then` reads.
    fn null_or<T>(&mut self, then: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.ws();
        if self.b[self.at..].starts_with(b"null") {
            self.at += 4;
            return Some(None);
        }
        then(self).map(Some)
    }

    /// A JSON number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`): its text, and its value's parts when
    /// they are small (sign, up to 19 significant digits as an integer, a power of ten of at most 4 digits).
    fn number_parts(&mut self) -> Option<(&'a str, Option<Parts>)> {
        self.ws();
        let b = self.b;
        let start = self.at;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let (mut mantissa, mut digits, mut exp10) = (0u64, 0u32, 0i32);
        let mut take = |c: u8, exp10: &mut i32, fraction: bool| {
            if mantissa != 0 || c != b'0' {
                digits += 1;
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            }
            if fraction {
                *exp10 -= 1;
            }
        };
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(&c @ b'0'..=b'9') = b.get(i) {
                    take(c, &mut exp10, false);
                    i += 1;
                }
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let from = i;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                take(c, &mut exp10, true);
                i += 1;
            }
            if i == from {
                return None;
            }
            integer = false;
        }
        let mut small = true;
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let minus = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let from = i;
            let mut e = 0i32;
            while let Some(&c @ b'0'..=b'9') = b.get(i) {
                e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
                i += 1;
            }
            if i == from {
                return None;
            }
            small = i - from <= 4;
            exp10 += if minus { -e } else { e };
            integer = false;
        }
        self.at = i;
        let text = self.text.get(start..i)?;
        let parts = (small && digits <= 19).then_some(Parts {
            negative,
            mantissa,
            exp10,
            integer,
        });
        Some((text, parts))
    }

    /// A finite number (one out of a double's range is serde_json's error, left to it). Small ones by
    /// Clinger's exact path (an integer below 2^53 times or over a power of ten up to 10^22, both exact, is
    /// one correctly rounded operation); the rest by the standard library's parser.
    fn number(&mut self) -> Option<f64> {
        let (text, parts) = self.number_parts()?;
        if let Some(p) = parts
            && p.mantissa <= 1 << 53
            && (-22..=22).contains(&p.exp10)
        {
            let m = p.mantissa as f64;
            let v = if p.exp10 >= 0 {
                m * POW10[p.exp10 as usize]
            } else {
                m / POW10[(-p.exp10) as usize]
            };
            return Some(if p.negative { -v } else { v });
        }
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// An integer step in `i64` (a step written with a fraction or exponent is left to the serde path).
    fn integer(&mut self) -> Option<i64> {
        let (text, parts) = self.number_parts()?;
        match parts {
            Some(p) if p.integer && p.digits_fit_i64() => {
                let m = p.mantissa as i64;
                Some(if p.negative { -m } else { m })
            }
            Some(p) if !p.integer => None,
            _ => text.parse::<i64>().ok(),
        }
    }

    /// An object of numbers and nulls; a null takes out an earlier number for its key (a key given twice is
    /// left to the serde path).
    fn numbers(&mut self) -> Option<FloatMap> {
        self.byte(b'{')?;
        let mut out = FloatMap::new();
        if self.peek_is(b'}') {
            self.at += 1;
            return Some(out);
        }
        let mut nulls: Vec<&str> = Vec::new();
        loop {
            let key = self.string()?;
            self.byte(b':')?;
            match self.null_or(Scanner::number)? {
                Some(v) => {
                    if nulls.contains(&key) || out.insert(key.to_string(), v).is_some() {
                        return None;
                    }
                }
                None => {
                    if nulls.contains(&key) || out.contains_key(key) {
                        return None;
                    }
                    nulls.push(key);
                }
            }
            if !self.comma_or_end(b'}')? {
                return Some(out);
            }
        }
    }
}
