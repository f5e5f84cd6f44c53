//! The curve of a group of runs: at each x, the mean across the runs and the band around it (std, min, max),
//! aggregated with Polars.

use polars::prelude::*;
use serde::Serialize;

/// One x of a group's curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BandPoint {
    pub x: f64,
    pub mean: f64,
    /// Sample standard deviation across the runs (null with one run).
    pub std: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// Runs with a finite value at this x.
    pub n: u64,
}

/// Aggregates `(x, y)` pairs of several runs per x (non-finite y left out), in x order.
pub fn band(pairs: &[(f64, f64)]) -> Result<Vec<BandPoint>, PolarsError> {
    let (xs, ys): (Vec<f64>, Vec<Option<f64>>) = pairs
        .iter()
        .map(|(x, y)| (*x, y.is_finite().then_some(*y)))
        .unzip();
    if xs.is_empty() {
        return Ok(Vec::new());
    }
    let df = DataFrame::new_infer_height(vec![
        Column::new("x".into(), xs),
        Column::new("y".into(), ys),
    ])?;
    let out = df
        .lazy()
        .group_by([col("x")])
        .agg([
            col("y").mean().alias("mean"),
            col("y").std(1).alias("std"),
            col("y").min().alias("min"),
            col("y").max().alias("max"),
            col("y").count().alias("n"),
        ])
        .sort(["x"], SortMultipleOptions::default())
        .collect()?;
    let f = |name: &str| -> Result<Vec<Option<f64>>, PolarsError> {
        Ok(out
            .column(name)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let (x, mean, std, min, max, n) = (
        f("x")?,
        f("mean")?,
        f("std")?,
        f("min")?,
        f("max")?,
        f("n")?,
    );
    Ok((0..out.height())
        .filter_map(|i| {
            Some(BandPoint {
                x: x[i]?,
                mean: mean[i]?,
                std: std[i].filter(|s| s.is_finite()),
                min: min[i]?,
                max: max[i]?,
                n: n[i].unwrap_or(0.0) as u64,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_band_per_x_across_runs() {
        // Two runs at steps 0 and 1; a third only at step 1 with a NaN (left out).
        let pairs = [
            (0.0, 1.0),
            (1.0, 3.0),
            (0.0, 3.0),
            (1.0, 5.0),
            (1.0, f64::NAN),
        ];
        let b = band(&pairs).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].x, b[0].mean, b[0].min, b[0].max, b[0].n),
            (0.0, 2.0, 1.0, 3.0, 2)
        );
        assert!((b[0].std.unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!((b[1].x, b[1].mean, b[1].n), (1.0, 4.0, 2));
        assert!(band(&[]).unwrap().is_empty());
    }
}
