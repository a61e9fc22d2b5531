//! Coordinate-wise rules: each coordinate of the aggregate depends only on that coordinate of the
//! inputs.

use crate::linalg::kernel::Path;
use crate::linalg::{PARALLEL_FROM, from_ordered, ordered, per_column, per_column_with};
use rayon::prelude::*;

/// The middle value of a column of [`ordered`] keys; for an even count, the mean of the two
/// middle values.
pub fn median_of(keys: &mut [i64]) -> f64 {
    let n = keys.len();
    let (lower, mid, _) = keys.select_nth_unstable(n / 2);
    let mid = from_ordered(*mid);
    match lower.iter().max() {
        Some(&below) if n.is_multiple_of(2) => from_ordered(below) / 2.0 + mid / 2.0,
        _ => mid,
    }
}

pub fn median(vectors: &[Vec<f64>]) -> Vec<f64> {
    per_column(vectors, median_of)
}

/// Coordinates the trimmed mean handles together (its insertion network's width).
const STRIP: usize = 256;
/// Up to this many values a side (f + 1), the trimmed mean finds its bounds with an insertion
/// network, O(n·f) per coordinate but vectorised across coordinates; beyond, by selection.
const NETWORK_UP_TO: usize = 16;

/// How the trimmed mean finds, per coordinate, the smallest and largest values it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bounds {
    Network,
    Selection,
}

/// Drops the f lowest and f highest values of each coordinate and averages the rest.
///
/// No column is sorted. With lo and hi the smallest and largest kept values (the (f+1)-th from
/// each end), the mean is Σ w·x over the values strictly between them, in vector order, then
/// w·lo and w·hi added once per kept copy of each (w = 1/(n−2f)): exact ties make the kept set
/// a multiset, and that order does not depend on how lo and hi were found.
pub fn trimmed_mean(vectors: &[Vec<f64>], f: usize) -> Vec<f64> {
    let bounds = if f < NETWORK_UP_TO { Bounds::Network } else { Bounds::Selection };
    trimmed_mean_by(vectors, f, bounds, Path::detect())
}

fn trimmed_mean_by(vectors: &[Vec<f64>], f: usize, bounds: Bounds, path: Path) -> Vec<f64> {
    let d = vectors.first().map_or(0, Vec::len);
    let strip = |rows: &mut Vec<Strip>, (s, out): (usize, &mut [f64])| {
        // The strip of every vector, copied first: one run of reads per vector, which memory
        // prefetchers follow, instead of a line of each vector in turn; zeros pad the last.
        let (start, len) = (s * STRIP, out.len());
        rows.resize(vectors.len(), [0.0; STRIP]);
        for (row, v) in rows.iter_mut().zip(vectors) {
            row[..len].copy_from_slice(&v[start..start + len]);
        }
        match path {
            Path::Portable => trimmed_strip(rows, f, bounds, out),
            // SAFETY: the path is AVX2 only on CPUs that have it (`Path::detect`, tests check
            // `available`).
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Path::Avx2 => unsafe { trimmed_strip_avx2(rows, f, bounds, out) },
            // SAFETY: likewise for AVX-512.
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Path::Avx512 => unsafe { trimmed_strip_avx512(rows, f, bounds, out) },
        }
    };
    let mut out = vec![0.0; d];
    if d < PARALLEL_FROM {
        let mut rows = Vec::new();
        out.chunks_mut(STRIP).enumerate().for_each(|s| strip(&mut rows, s));
    } else {
        out.par_chunks_mut(STRIP).enumerate().for_each_init(Vec::new, strip);
    }
    out
}

/// The same code compiled for AVX2: min, max and compare are exact, so the bits are the same.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx2")]
fn trimmed_strip_avx2(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64]) {
    trimmed_strip(rows, f, bounds, out)
}

/// And for AVX-512, whose 32 registers hold both lists of the network (AVX2 spills them).
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx512f")]
fn trimmed_strip_avx512(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64]) {
    trimmed_strip(rows, f, bounds, out)
}

/// The trimmed means of one strip of coordinates (`out.len()` of them), one row per vector.
#[inline(always)]
fn trimmed_strip(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64]) {
    let n = rows.len();
    let w = 1.0 / (n - 2 * f) as f64;
    let (lo, hi) = match bounds {
        Bounds::Network => bounds_by_network(rows, f),
        Bounds::Selection => bounds_by_selection(rows, f, out.len()),
    };
    let mut sum = [0.0f64; STRIP];
    let mut at_most_lo = [0.0f64; STRIP];
    let mut at_least_hi = [0.0f64; STRIP];
    for x in rows {
        for k in 0..STRIP {
            // Adding −0.0 leaves every sum as it is: the same as skipping x.
            sum[k] += if x[k] > lo[k] && x[k] < hi[k] { w * x[k] } else { -0.0 };
            at_most_lo[k] += if x[k] <= lo[k] { 1.0 } else { 0.0 };
            at_least_hi[k] += if x[k] >= hi[k] { 1.0 } else { 0.0 };
        }
    }
    for (k, out) in out.iter_mut().enumerate() {
        let (copies_lo, copies_hi) = if lo[k] == hi[k] {
            (n - 2 * f, 0)
        } else {
            (at_most_lo[k] as usize - f, at_least_hi[k] as usize - f)
        };
        let s = (0..copies_lo).fold(sum[k], |s, _| s + w * lo[k]);
        *out = (0..copies_hi).fold(s, |s, _| s + w * hi[k]);
    }
}

type Strip = [f64; STRIP];

/// Coordinates one pass of the network carries in registers.
const GROUP: usize = 8;

/// Per coordinate of the strip, the (f+1)-th smallest and largest values, found by inserting
/// every value into two sorted lists of f+1 (a compare-exchange per level, eight coordinates at
/// a time). −0.0 comes out as +0.0: the two compare equal, and either may win a level.
#[inline(always)]
fn bounds_by_network(rows: &[Strip], f: usize) -> (Strip, Strip) {
    // The list length is a constant in each copy, so the lists can live in registers.
    macro_rules! lists {
        ($($levels:literal)*) => {
            match f + 1 {
                $($levels => network::<$levels>(rows),)*
                _ => unreachable!("the network is used for f < {NETWORK_UP_TO}"),
            }
        };
    }
    lists!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

#[inline(always)]
fn network<const LEVELS: usize>(rows: &[Strip]) -> (Strip, Strip) {
    let (mut lo, mut hi) = ([0.0; STRIP], [0.0; STRIP]);
    for g in (0..STRIP).step_by(GROUP) {
        let mut low = [[f64::INFINITY; GROUP]; LEVELS];
        let mut high = [[f64::NEG_INFINITY; GROUP]; LEVELS];
        for row in rows {
            let mut down: [f64; GROUP] = *row[g..].first_chunk().expect("a whole group");
            let mut up = down;
            // Each exchange keeps both values (one stays, the other moves on), in the form
            // compilers map onto single min and max instructions; the two lists are walked
            // together, two independent chains.
            for level in 0..LEVELS {
                for l in 0..GROUP {
                    let (old, new) = (low[level][l], down[l]);
                    low[level][l] = if new < old { new } else { old };
                    down[l] = if old > new { old } else { new };
                    let (old, new) = (high[level][l], up[l]);
                    high[level][l] = if new > old { new } else { old };
                    up[l] = if old < new { old } else { new };
                }
            }
        }
        for l in 0..GROUP {
            lo[g + l] = low[LEVELS - 1][l] + 0.0;
            hi[g + l] = high[LEVELS - 1][l] + 0.0;
        }
    }
    (lo, hi)
}

/// The same bounds by selecting in each column: for large f, where the network's O(n·f) costs
/// more than a selection.
#[inline(always)]
fn bounds_by_selection(rows: &[Strip], f: usize, len: usize) -> (Strip, Strip) {
    let n = rows.len();
    let (mut lo, mut hi) = ([0.0; STRIP], [0.0; STRIP]);
    let mut column = Vec::with_capacity(n);
    for k in 0..len {
        column.clear();
        column.extend(rows.iter().map(|row| row[k]));
        lo[k] = *column.select_nth_unstable_by(f, f64::total_cmp).1 + 0.0;
        hi[k] = *column.select_nth_unstable_by(n - f - 1, f64::total_cmp).1 + 0.0;
    }
    (lo, hi)
}

/// Mean around the median: per coordinate, the mean of the n−f values closest to the median,
/// ties in distance going to the smaller value. As for the trimmed mean, nothing is sorted:
/// the kept values strictly inside the threshold (distance, value) are summed in vector order,
/// then the threshold value once per kept copy.
pub fn meamed(vectors: &[Vec<f64>], f: usize) -> Vec<f64> {
    let keep = vectors.len() - f;
    let w = 1.0 / keep as f64;
    // (distance, value) as integers, compared as a pair: nearer first, then smaller.
    let key = |m: f64| move |x: f64| (ordered((x - m).abs().to_bits() as i64), ordered(x.to_bits() as i64));
    let column_of = |column: &mut [i64], (values, keys): &mut (Vec<i64>, Vec<(i64, i64)>)| {
        values.clear();
        values.extend_from_slice(column);
        let key = key(median_of(values));
        keys.clear();
        keys.extend(column.iter().map(|&c| key(from_ordered(c))));
        let threshold = *keys.select_nth_unstable(keep - 1).1;
        let mut inside = 0;
        let mut sum = 0.0;
        for x in column.iter().map(|&c| from_ordered(c)) {
            if key(x) < threshold {
                sum += w * x;
                inside += 1;
            }
        }
        let value = from_ordered(threshold.1);
        (inside..keep).fold(sum, |s, _| s + w * value)
    };
    per_column_with(vectors, || (Vec::new(), Vec::new()), column_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cols: &[&[f64]]) -> Vec<Vec<f64>> {
        // Input given column-major for readability: one slice per coordinate.
        let n = cols[0].len();
        (0..n).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
    }

    #[test]
    fn median_odd_even_and_outliers() {
        assert_eq!(median(&rows(&[&[3.0, 1.0, 2.0]])), vec![2.0]);
        assert_eq!(median(&rows(&[&[4.0, 1.0, 3.0, 2.0]])), vec![2.5]);
        assert_eq!(median(&rows(&[&[1.0, 2.0, 1e300], &[-5.0, 0.0, 5.0]])), vec![2.0, 0.0]);
        assert_eq!(median(&rows(&[&[f64::MAX, f64::MAX]])), vec![f64::MAX]);
    }

    #[test]
    fn trimmed_mean_drops_f_each_side() {
        // sorted 1,2,3,4,100 with f=1 → mean(2,3,4) = 3
        assert_eq!(trimmed_mean(&rows(&[&[100.0, 1.0, 3.0, 2.0, 4.0]]), 1), vec![3.0]);
        // f=0 is the plain mean.
        assert_eq!(trimmed_mean(&rows(&[&[1.0, 2.0, 6.0]]), 0), vec![3.0]);
        // f=2 of 5 leaves only the median.
        assert_eq!(trimmed_mean(&rows(&[&[9.0, -9.0, 1.0, 7.0, -7.0]]), 2), vec![1.0]);
    }

    #[test]
    fn meamed_keeps_values_nearest_the_median() {
        // values 0,1,2,3,100: median 2; the 4 nearest are 1,2,3,0 (0 and 4 tie... 0 is at 2, 100 far)
        // → mean(0,1,2,3) = 1.5
        assert_eq!(meamed(&rows(&[&[100.0, 0.0, 3.0, 1.0, 2.0]]), 1), vec![1.5]);
        // Ties at equal distance go to the smaller value: median of 1,2,3 is 2; 1 and 3 tie; keep 1,2.
        assert_eq!(meamed(&rows(&[&[3.0, 1.0, 2.0]]), 1), vec![1.5]);
    }

    /// Columns with many exact ties, ±0 and outliers, so the tie counts are exercised.
    fn awkward(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pick = [0.0, -0.0, 1.0, -1.0, 2.5, 1e300, -1e300];
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        if rng.random::<bool>() {
                            pick[rng.random_range(0..pick.len())]
                        } else {
                            rng.random()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The definition, by sorting each column: the mean of the middle n−2f values.
    fn sorted_trimmed_mean(vectors: &[Vec<f64>], f: usize) -> Vec<f64> {
        (0..vectors[0].len())
            .map(|k| {
                let mut col: Vec<f64> = vectors.iter().map(|v| v[k]).collect();
                col.sort_by(f64::total_cmp);
                let kept = &col[f..col.len() - f];
                kept.iter().map(|x| x / kept.len() as f64).sum()
            })
            .collect()
    }

    #[test]
    fn trimmed_mean_is_bit_identical_across_bounds_and_paths_and_matches_sorting() {
        for (n, f, d) in [(5, 0, 70), (5, 2, 130), (21, 3, 200), (40, 15, 65), (9, 4, 64)] {
            let v = awkward(n, d, (n * 100 + f) as u64);
            let network = trimmed_mean_by(&v, f, Bounds::Network, Path::Portable);
            let sorted = sorted_trimmed_mean(&v, f);
            for path in Path::ALL.iter().filter(|p| p.available()) {
                for bounds in [Bounds::Network, Bounds::Selection] {
                    let other = trimmed_mean_by(&v, f, bounds, *path);
                    let same = network.iter().zip(&other).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "n={n} f={f} {bounds:?} {path:?}");
                }
            }
            for k in 0..d {
                let close = (network[k] - sorted[k]).abs() <= 1e-12 * sorted[k].abs().max(1.0);
                assert!(close, "n={n} f={f} k={k}: {} vs sorted {}", network[k], sorted[k]);
            }
        }
    }

    #[test]
    fn meamed_matches_its_definition_by_sorting() {
        for (n, f) in [(5, 1), (6, 2), (21, 5)] {
            let v = awkward(n, 100, n as u64);
            let got = meamed(&v, f);
            for (k, got) in got.into_iter().enumerate() {
                let mut col: Vec<f64> = v.iter().map(|x| x[k]).collect();
                let mut keys: Vec<i64> = col.iter().map(|x| ordered(x.to_bits() as i64)).collect();
                let m = median_of(&mut keys);
                col.sort_by(|a, b| (a - m).abs().total_cmp(&(b - m).abs()).then(a.total_cmp(b)));
                let kept = &col[..n - f];
                let expect: f64 = kept.iter().map(|x| x / kept.len() as f64).sum();
                assert!(
                    (got - expect).abs() <= 1e-12 * expect.abs().max(1.0),
                    "n={n} f={f} k={k}: {got} vs {expect}"
                );
            }
        }
    }
}
