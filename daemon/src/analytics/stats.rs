//! Statistics across seeds: the standard error and a 95% interval from Student's t distribution.

/// Two-sided 95% critical value of Student's t with `df` degrees of freedom (`t_{0.975, df}`); the normal
/// value 1.96 beyond the table.
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        31..=40 => 2.042 + (2.021 - 2.042) * (df - 30) as f64 / 10.0,
        41..=60 => 2.021 + (2.000 - 2.021) * (df - 40) as f64 / 20.0,
        61..=120 => 2.000 + (1.980 - 2.000) * (df - 60) as f64 / 60.0,
        _ => 1.960,
    }
}

/// Standard error and 95% interval of a mean from `n` values with sample standard deviation `std`.
/// With one value the interval is undefined (NaN), as it is for any estimate from a single seed.
pub fn interval(mean: f64, std: f64, n: usize) -> (f64, f64, f64) {
    if n < 2 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let sem = std / (n as f64).sqrt();
    let half = t975(n - 1) * sem;
    (sem, mean - half, mean + half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_matches_a_hand_computation() {
        // values 1, 2, 3, 4: mean 2.5, sample std sqrt(5/3) = 1.290994, sem = 0.645497, t(3) = 3.182
        let (sem, lo, hi) = interval(2.5, (5.0f64 / 3.0).sqrt(), 4);
        assert!((sem - 0.645497).abs() < 1e-6);
        assert!((lo - (2.5 - 3.182 * 0.645497)).abs() < 1e-5);
        assert!((hi - 4.554).abs() < 1e-3);
        assert!(interval(1.0, 0.0, 1).0.is_nan());
        assert_eq!(t975(1000), 1.96);
    }
}
