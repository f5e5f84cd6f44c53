//! Quasi-random search: the Halton sequence (the radical inverse of the trial number in the d-th prime base
//! for the d-th parameter), scrambled (each dimension's digits through a random permutation that keeps 0,
//! which undoes the plain sequence's correlations between high dimensions) and shifted by a random offset
//! (Cranley–Patterson rotation), both drawn from the seed, so that two seeds give two different, equally even
//! designs. Points fill the unit cube more evenly than random draws, which helps small budgets.

use super::domain::Domain;
use super::rng::SplitMix64;
use serde_json::Value;
use std::collections::BTreeMap;

const PRIMES: [u64; 40] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173,
];

/// The radical inverse of `i` in `base`: its digits mirrored behind the point.
pub fn radical_inverse(i: u64, base: u64) -> f64 {
    scrambled_inverse(i, base, None)
}

/// The radical inverse with each digit `d` written as `perm[d]` (`perm[0] == 0`, so the infinitely many
/// leading zeros stay zeros).
fn scrambled_inverse(mut i: u64, base: u64, perm: Option<&[u64]>) -> f64 {
    let (mut out, mut f) = (0.0, 1.0 / base as f64);
    while i > 0 {
        let d = i % base;
        let d = perm.map_or(d, |p| p[d as usize]);
        out += d as f64 * f;
        i /= base;
        f /= base as f64;
    }
    out
}

/// Point `n` (0, 1, 2, ...) of the shifted Halton sequence in `dims` dimensions: the first `b^k` points of
/// the axis of base `b` fall one in each of `b^k` equal strips.
pub fn halton(n: u64, dims: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64(seed ^ 0x4a1f_7c3e_9b2d_5e81);
    (0..dims)
        .map(|d| {
            let base = PRIMES.get(d).copied().unwrap_or_else(|| nth_prime(d));
            // Fisher–Yates over the digits 1..base.
            let mut perm: Vec<u64> = (0..base).collect();
            for j in (2..base as usize).rev() {
                let k = 1 + (rng.next_u64() % j as u64) as usize;
                perm.swap(j, k);
            }
            (scrambled_inverse(n, base, Some(&perm)) + rng.unit()).fract()
        })
        .collect()
}

fn nth_prime(d: usize) -> u64 {
    let mut found = 0;
    let mut k = 1u64;
    loop {
        k += 1;
        if (2..k)
            .take_while(|p| p * p <= k)
            .all(|p| !k.is_multiple_of(p))
        {
            if found == d {
                return k;
            }
            found += 1;
        }
    }
}

/// The parameters of trial `n` of a quasi-random search over `space` (parameters in name order).
pub fn suggest(space: &BTreeMap<String, Domain>, n: u64, seed: u64) -> BTreeMap<String, Value> {
    let u = halton(n, space.len(), seed);
    space
        .iter()
        .zip(u)
        .map(|((k, d), u)| (k.clone(), d.from_unit(u)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_radical_inverse_mirrors_the_digits() {
        assert_eq!(radical_inverse(1, 2), 0.5);
        assert_eq!(radical_inverse(2, 2), 0.25);
        assert_eq!(radical_inverse(3, 2), 0.75);
        assert!((radical_inverse(5, 3) - 7.0 / 9.0).abs() < 1e-12);
        assert_eq!(nth_prime(40), 179);
    }

    /// Halton points are more even than random ones: the first 16 points fall one in each of 16 strips of the
    /// first axis (base 2), the first 9 one in each of 9 strips of the second (base 3), whatever the shift.
    #[test]
    fn points_fill_the_cube_evenly() {
        let pts: Vec<Vec<f64>> = (0..16).map(|n| halton(n, 2, 9)).collect();
        for axis in 0..2 {
            let base = [2u64, 3][axis] as usize;
            let strips = if base == 2 { 16 } else { 9 };
            let mut count = vec![0; strips];
            for p in pts.iter().take(strips) {
                count[(p[axis] * strips as f64) as usize % strips] += 1;
            }
            assert!(count.iter().all(|&c| c == 1), "axis {axis}: {count:?}");
        }
        assert_ne!(halton(0, 2, 1), halton(0, 2, 2), "seeds shift the design");
    }
}
