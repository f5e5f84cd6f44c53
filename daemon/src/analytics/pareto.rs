//! The Pareto front of trials with two or more objectives: the trials no other trial dominates (as good in
//! every objective and better in one, each objective in its direction). Trials missing an objective or with a
//! NaN in one are left out.

use labd_schemas::sweep::Direction;

/// Whether `a` dominates `b` (both as losses).
fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// The indices of the non-dominated points, in their order. `points[i]`: trial i's objective values.
pub fn front(points: &[Vec<f64>], directions: &[Direction]) -> Vec<usize> {
    let losses: Vec<Option<Vec<f64>>> = points
        .iter()
        .map(|p| {
            (p.len() == directions.len() && p.iter().all(|v| !v.is_nan()))
                .then(|| p.iter().zip(directions).map(|(v, d)| d.loss(*v)).collect())
        })
        .collect();
    (0..points.len())
        .filter(|&i| {
            let Some(a) = &losses[i] else { return false };
            !losses
                .iter()
                .enumerate()
                .any(|(j, b)| j != i && b.as_ref().is_some_and(|b| dominates(b, a)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_holds_the_trials_nothing_beats_everywhere() {
        // Maximize accuracy, minimize latency.
        let d = [Direction::Maximize, Direction::Minimize];
        let pts = vec![
            vec![0.90, 10.0], // front
            vec![0.85, 12.0], // dominated by 0
            vec![0.95, 20.0], // front
            vec![0.80, 5.0],  // front
            vec![0.90, 10.0], // equal to 0: neither dominates, both on the front
            vec![f64::NAN, 1.0],
            vec![0.99],
        ];
        assert_eq!(front(&pts, &d), [0, 2, 3, 4]);
    }
}
