//! The number coding shared by the columnar blocks of the event log and the curve store's chunks: LEB128
//! varints, zigzag for signed differences, and floats written against the previous one of their stream.
//!
//! Numbers keep their bits. A float is written as a decimal `m × 10^-e` when dividing `m` by `10^e` gives back
//! exactly its bits (values that came from text with a few digits, as most logged values do; ALP works the same
//! way): `m` as the difference from the stream's previous `m`. Any other float (NaN, infinities, −0.0, full
//! 17-digit values) is written as its 8 bytes XOR the stream's previous bits.

/// Most powers of ten a decimal float may be scaled by (10^22 is the last exact f64 power of ten).
pub const MAX_EXPONENT: u8 = 18;
/// Decimals whose `m` is at most this are exact integers in an f64 and their differences fit the varint tag.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53
/// Below this a product `v * 10^e` is within a quarter of the integer it stands for (2^50).
const EXACT_PRODUCT: f64 = 1_125_899_906_842_624.0;

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The previous float of a stream (a metric, an axis), that the next is written against.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloatState {
    bits: u64,
    mantissa: i64,
    exponent: u8,
}

/// The mantissa `m` for which `m / 10^e` reads back to `v`'s bits, if one does (never for NaN, infinities or
/// −0.0: no integer over a power of ten reads back to their bits, which the last line checks).
fn fits(v: f64, e: u8) -> Option<i64> {
    let p = POW10[e as usize];
    let x = v * p;
    if x.abs() > MAX_MANTISSA {
        return None;
    }
    // `x.round()` (half away from zero) without a call into libm: below 2^53 the truncation is exact and
    // so is the fraction left.
    let t = x as i64;
    let frac = x - t as f64;
    let m = t + i64::from(frac >= 0.5) - i64::from(frac <= -0.5);
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// `v` as a decimal `m × 10^-e` that reads back to its bits, trying the stream's exponent first.
fn decimal(v: f64, prefer: u8) -> Option<(i64, u8)> {
    let fits = |e: u8| fits(v, e);
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    if let Some(m) = fits(prefer) {
        return Some((m, prefer));
    }
    // A quick no for values with no short decimal form (floats from binary, e.g. `f32` values widened): a value
    // that is `m / 10^e` is also `(m * 10^k) / 10^(e+k)` while that mantissa is an exact integer (both are the
    // correctly rounded quotient of the same number), so trying the largest exponents whose mantissas stay
    // exact (below 2^50, where `v * 10^e` rounds to the right integer, and the next one) tells whether any does.
    let a = v.abs();
    // No exponent above `(50 - log2 a) · log10 2` keeps `a · 10^e` within 2^50: the search starts one above.
    let log2 = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let highest =
        (((50 - log2) as f64 * std::f64::consts::LOG10_2) as i32 + 1).clamp(0, MAX_EXPONENT as i32);
    if let Some(cap) = (0..=highest as u8)
        .rev()
        .find(|&e| a * POW10[e as usize] <= EXACT_PRODUCT)
    {
        let next = cap + 1;
        let found = fits(cap).is_some()
            || (next <= MAX_EXPONENT
                && a * POW10[next as usize] <= MAX_MANTISSA
                && fits(next).is_some());
        if !found {
            return None;
        }
    }
    (0..=MAX_EXPONENT)
        .filter(|&e| e != prefer)
        .find_map(|e| fits(e).map(|m| (m, e)))
}

/// Writes a float against its stream's previous one: low two bits of the first varint say how.
/// 0: the same bits; 1: a decimal of the same exponent (zigzag difference of `m`); 2: a decimal of another
/// exponent (zigzag `m`, then the exponent); 3: by the next two bits, 0: the bits XOR the previous, 8 bytes
/// little endian; 1: `f64::NAN` (a missing axis) in that one byte; 2: the bits XOR the previous when that
/// leaves the low 29 bits zero, the XOR shifted right by 29 in the rest of the varint (an `f32` value widened,
/// as TensorBoard's are, after another: 4 bytes or fewer where 8 would be, and no search for a decimal).
pub fn put_float(out: &mut Vec<u8>, state: &mut FloatState, v: f64) {
    let bits = v.to_bits();
    if bits == state.bits {
        put(out, 0);
        return;
    }
    let xor = bits ^ state.bits;
    if xor & LOW_29 == 0 {
        let head = (xor >> 29) << 4 | F32_XOR;
        // A decimal of the stream's exponent wins where it is shorter (few digits that are also an f32: 0.5).
        match fits(v, state.exponent) {
            Some(m) if zigzag(m.wrapping_sub(state.mantissa)) << 2 < head => {
                put(out, zigzag(m.wrapping_sub(state.mantissa)) << 2 | 1);
                state.mantissa = m;
            }
            _ => put(out, head),
        }
        state.bits = bits;
        return;
    }
    match decimal(v, state.exponent) {
        Some((m, e)) if e == state.exponent => {
            put(out, zigzag(m.wrapping_sub(state.mantissa)) << 2 | 1);
            state.mantissa = m;
        }
        Some((m, e)) => {
            put(out, zigzag(m) << 2 | 2);
            out.push(e);
            state.mantissa = m;
            state.exponent = e;
        }
        // NaN as Rust and JSON parsers make it (a missing axis in a column): one byte.
        None if bits == CANONICAL_NAN => put(out, 1 << 2 | 3),
        None => {
            put(out, 3);
            out.extend_from_slice(&(bits ^ state.bits).to_le_bytes());
        }
    }
    state.bits = bits;
}

/// The bits of `f64::NAN`.
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;
/// The bits below an `f32`'s mantissa in an f64 (zero in every widened `f32`).
const LOW_29: u64 = (1 << 29) - 1;
/// The head's low four bits for an XOR that leaves the low 29 bits zero.
const F32_XOR: u64 = 2 << 2 | 3;

/// A cursor over bytes that says what ran out or is out of range instead of panicking.
pub struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    /// What is being read, for errors.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.bytes.split_first() else {
                return Err(format!("{} ends inside a number", self.what));
            };
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("{} has a number too long", self.what))
    }

    pub fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.bytes.len() as u64 {
            return Err(format!(
                "{} says {n} bytes, {} are left",
                self.what,
                self.bytes.len()
            ));
        }
        let (a, b) = self.bytes.split_at(n as usize);
        self.bytes = b;
        Ok(a)
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn float(&mut self, state: &mut FloatState) -> Result<f64, String> {
        let head = self.varint()?;
        match head & 3 {
            0 => {}
            1 => {
                let p = POW10[state.exponent as usize];
                state.mantissa = state.mantissa.wrapping_add(unzigzag(head >> 2));
                state.bits = (state.mantissa as f64 / p).to_bits();
            }
            2 => {
                let e = self.byte()?;
                if e > MAX_EXPONENT {
                    return Err(format!("exponent {e} in {}", self.what));
                }
                state.exponent = e;
                state.mantissa = unzigzag(head >> 2);
                state.bits = (state.mantissa as f64 / POW10[e as usize]).to_bits();
            }
            _ => match head >> 2 {
                0 => {
                    let raw: [u8; 8] = self.take(8)?.try_into().map_err(|_| "eight bytes")?;
                    state.bits ^= u64::from_le_bytes(raw);
                }
                1 => state.bits = CANONICAL_NAN,
                k if k & 3 == 2 && head >> 4 < 1 << 35 => state.bits ^= (head >> 4) << 29,
                k => return Err(format!("float kind {k} in {}", self.what)),
            },
        }
        Ok(f64::from_bits(state.bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn decimals_are_found_and_others_are_not() {
        assert_eq!(decimal(0.683147, 6), Some((683147, 6)));
        assert_eq!(
            decimal(0.5, 6),
            Some((500000, 6)),
            "the stream's exponent first"
        );
        assert_eq!(decimal(0.5, 0), Some((5, 1)));
        assert_eq!(decimal(1_760_000_000.5, 1), Some((17_600_000_005, 1)));
        assert_eq!(decimal(f64::NAN, 0), None);
        assert_eq!(decimal(-0.0, 0), None);
        assert_eq!(
            decimal(0.1 + 0.2, 0),
            None,
            "17 digits: not a short decimal"
        );
        assert_eq!(decimal(1e300, 0), None);
    }

    /// The exhaustive search the quick "no" stands in front of.
    fn decimal_by_search(v: f64) -> Option<(i64, u8)> {
        (0..=MAX_EXPONENT).find_map(|e| {
            let p = POW10[e as usize];
            let m = (v * p).round();
            (v.is_finite()
                && !(v == 0.0 && v.is_sign_negative())
                && m.abs() <= MAX_MANTISSA
                && (m / p).to_bits() == v.to_bits())
            .then_some((m as i64, e))
        })
    }

    proptest::proptest! {
        /// Values written as decimals of up to 15 digits (as logs print them) are found as the search finds
        /// them; `f32` values widened (TensorBoard's) are no short decimal either way.
        #[test]
        fn the_quick_no_misses_no_short_decimal(
            m in -999_999_999_999_999i64..=999_999_999_999_999,
            e in 0u32..=18,
            f in proptest::num::f32::NORMAL,
            bits in proptest::num::u64::ANY,
            int in -(1i64 << 54)..(1i64 << 54),
        ) {
            let v: f64 = format!("{m}e-{e}").parse().unwrap();
            proptest::prop_assert_eq!(decimal(v, 0), decimal_by_search(v), "{}", v);
            let w = f as f64;
            proptest::prop_assert_eq!(decimal(w, 0), decimal_by_search(w), "{}", w);
            // Any bits at all, and integers about the 2^53 edge, halves included.
            for x in [f64::from_bits(bits), int as f64, int as f64 + 0.5, int as f64 / 1024.0] {
                proptest::prop_assert_eq!(decimal(x, 0), decimal_by_search(x), "{:e}", x);
            }
        }
    }

    proptest::proptest! {
        /// Any stream of floats (widened `f32`s among them, of every kind: NaNs with payloads, infinities, −0)
        /// reads back bit for bit; an `f32` after an `f32` takes at most six bytes, and one near the last
        /// (the same sign and exponent) at most four.
        #[test]
        fn any_stream_reads_back_and_f32s_stay_short(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u64::ANY.prop_map(f64::from_bits),
                    proptest::num::u32::ANY.prop_map(|b| f64::from(f32::from_bits(b))),
                    proptest::num::f32::NORMAL.prop_map(f64::from),
                    (0i64..1_000_000).prop_map(|m| m as f64 / 1e4),
                ],
                0..200,
            ),
        ) {
            let mut out = Vec::new();
            let mut state = FloatState::default();
            let mut before = f64::from_bits(0);
            for &v in &values {
                let at = out.len();
                put_float(&mut out, &mut state, v);
                let is_f32 = |x: f64| x.to_bits() & LOW_29 == 0;
                if is_f32(v) && is_f32(before) && v.to_bits() != before.to_bits() {
                    proptest::prop_assert!(out.len() - at <= 6, "{} after {}: {} bytes", v, before, out.len() - at);
                    if (v.to_bits() ^ before.to_bits()) >> 52 == 0 {
                        proptest::prop_assert!(out.len() - at <= 4, "{} after {}: {} bytes", v, before, out.len() - at);
                    }
                }
                before = v;
            }
            let mut r = Reader::new(&out, "test");
            let mut state = FloatState::default();
            for &v in &values {
                proptest::prop_assert_eq!(r.float(&mut state).unwrap().to_bits(), v.to_bits());
            }
            proptest::prop_assert!(r.is_empty());
        }
    }

    #[test]
    fn a_float_kind_out_of_range_is_an_error_not_a_panic() {
        // Kind 2 of tag 3 with an XOR that would not fit 64 bits once shifted back.
        let mut out = Vec::new();
        put(&mut out, (1u64 << 35) << 4 | F32_XOR);
        let mut r = Reader::new(&out, "test floats");
        assert!(
            r.float(&mut FloatState::default())
                .unwrap_err()
                .contains("test floats")
        );
    }

    #[test]
    fn floats_keep_their_bits_through_every_tag() {
        let values = [
            0.683147,
            0.683147,
            0.5,
            0.51,
            f64::NAN,
            -0.0,
            0.1 + 0.2,
            f64::INFINITY,
            1e-300,
            -7.25,
            f64::from_bits(1),
            f64::MAX,
            123456789012345.6,
            f64::from(0.1f32),
            f64::from(0.11f32),
            f64::from(-3.5e30f32),
            0.5,
        ];
        let mut out = Vec::new();
        let mut state = FloatState::default();
        for &v in &values {
            put_float(&mut out, &mut state, v);
        }
        let mut r = Reader::new(&out, "test");
        let mut state = FloatState::default();
        for &v in &values {
            assert_eq!(r.float(&mut state).unwrap().to_bits(), v.to_bits(), "{v}");
        }
        assert!(r.bytes.is_empty());
    }
}
