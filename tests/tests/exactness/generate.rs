//! What the property tests generate: doubles weighted toward what breaks parsers and printers, and cases that
//! write one run in every format.

use proptest::prelude::*;

/// Any finite double, weighted toward the cases that break parsers and printers.
pub fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Every bit pattern: all exponents, both signs, 17-digit values.
        4 => any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |f| f.is_finite()),
        // Losses and accuracies, as training writes them.
        3 => 0.0..10.0f64,
        // Subnormals and ±0.0.
        1 => any::<u64>().prop_map(|b| f64::from_bits(b & 0x800F_FFFF_FFFF_FFFF)),
        // Decimal texts with up to 19 significant digits, read as the nearest double.
        1 => (any::<i64>(), -40i32..40).prop_map(|(m, e)| format!("{m}e{e}").parse().unwrap_or(0.0)),
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::EPSILON,
            2.196_384_428_099_292_6,
            1.945_461_282_511_175_4,
            0.1,
            1.0 / 3.0,
        ]),
    ]
}

/// A finite f32 (TensorBoard's `simple_value` and DT_FLOAT tensors).
pub fn single() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>()
            .prop_map(f32::from_bits)
            .prop_filter("finite", |f| f.is_finite()),
        0.0..10.0f32,
    ]
}

/// One case: the same run written in every format.
#[derive(Clone, Debug)]
pub struct Case {
    pub values: Vec<f64>,
    pub epochs: Vec<f64>,
    pub walls: Vec<f64>,
    pub tokens: Vec<f64>,
    pub singles: Vec<f32>,
    /// Config integers: one anywhere in i64, one above i64::MAX.
    pub int: i64,
    pub wide: u64,
    pub float: f64,
}

pub fn case() -> impl Strategy<Value = Case> {
    (1usize..24)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(double(), n),
                prop::collection::vec(double(), n),
                // Unix seconds labd accepts (years 1970..9999), with every bit of their fraction.
                prop::collection::vec(0.0..253_402_300_799.0f64, n),
                prop::collection::vec(double(), n),
                prop::collection::vec(single(), n),
                any::<i64>(),
                (i64::MAX as u64 + 1)..=u64::MAX,
                double(),
            )
        })
        .prop_map(
            |(values, epochs, walls, tokens, singles, int, wide, float)| Case {
                values,
                epochs,
                walls,
                tokens,
                singles,
                int,
                wide,
                float,
            },
        )
}
