//! Coordinate-wise rules: each coordinate of the aggregate depends only on that coordinate of the
//! inputs.

use super::median::median_of;
use crate::linalg::kernel::Path;
use crate::linalg::lanes::{Lanes, MAX_WIDTH};
use crate::linalg::{PARALLEL_FROM, from_ordered, ordered, per_column_with};
use rayon::prelude::*;
use std::ops::Range;

/// Coordinates the trimmed mean copies out of the vectors together.
const STRIP: usize = 256;
/// Up to this many values a side (f + 1), the trimmed mean finds its bounds with a merging
/// network vectorised across coordinates (12 min or max per value and end for f = 10, 19.5 at
/// the largest list); beyond, by selection.
const NETWORK_UP_TO: usize = 16;

/// How the trimmed mean finds, per coordinate, the smallest and largest values it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bounds {
    Network,
    Selection,
}

/// Drops the f lowest and f highest values of each coordinate and averages the rest, or None
/// if a value is not finite: the check rides on the copy every value goes through anyway, so
/// the input needs no pass of its own (see `Pipeline::aggregate`).
///
/// No column is sorted. With lo and hi the smallest and largest kept values (the (f+1)-th from
/// each end), the mean is Σ w·x over the values strictly between them, in vector order, then
/// w·lo and w·hi added once per kept copy of each (w = 1/(n−2f)): exact ties make the kept set
/// a multiset, and that order does not depend on how lo and hi were found.
pub fn trimmed_mean(vectors: &[Vec<f64>], f: usize) -> Option<Vec<f64>> {
    let bounds = if f < NETWORK_UP_TO { Bounds::Network } else { Bounds::Selection };
    trimmed_mean_by(vectors, f, bounds, Path::detect())
}

fn trimmed_mean_by(vectors: &[Vec<f64>], f: usize, bounds: Bounds, path: Path) -> Option<Vec<f64>> {
    by_strips(vectors, |rows, out, next| match path {
        Path::Portable => trimmed_strip::<[f64; 2]>(rows, f, bounds, out, next),
        // SAFETY: the path is AVX2 only on CPUs that have it (`Path::detect`, tests check
        // `available`).
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 => unsafe { trimmed_strip_avx2(rows, f, bounds, out, next) },
        // SAFETY: likewise for AVX-512.
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx512 => unsafe { trimmed_strip_avx512(rows, f, bounds, out, next) },
    })
}

/// Strips a thread takes at once, sharing one buffer.
const STRIPS_PER_TASK: usize = 16;

/// Computes a coordinate-wise rule a strip of [`STRIP`] coordinates at a time: `strip` gets
/// that strip of every vector as rows (one per vector), the outputs to fill, and where the next
/// strip starts. None if a value is not finite: the check rides on the copy every value goes
/// through anyway, so the input needs no pass of its own (see `Pipeline::aggregate`).
pub(super) fn by_strips(
    vectors: &[Vec<f64>],
    strip: impl Fn(&[Strip], &mut [f64], NextStrip) + Sync,
) -> Option<Vec<f64>> {
    let d = vectors.first().map_or(0, Vec::len);
    let task = |rows: &mut Vec<Strip>, (t, out): (usize, &mut [f64])| {
        rows.resize(vectors.len(), [0.0; ROW]);
        for (s, out) in out.chunks_mut(STRIP).enumerate() {
            // The strip of every vector, copied first: one run of reads per vector, which
            // memory prefetchers follow, instead of a line of each vector in turn. Lanes past
            // the end of the last strip hold what the previous strip left: computed, not kept.
            let (start, len) = ((t * STRIPS_PER_TASK + s) * STRIP, out.len());
            let mut finite = true;
            for (row, v) in rows.iter_mut().zip(vectors) {
                for (r, &x) in row[..len].iter_mut().zip(&v[start..start + len]) {
                    *r = x;
                    finite &= x.is_finite();
                }
            }
            if !finite {
                return None;
            }
            strip(rows, out, NextStrip { vectors, start: start + STRIP });
        }
        Some(())
    };
    let (mut out, size) = (vec![0.0; d], STRIP * STRIPS_PER_TASK);
    if d < PARALLEL_FROM {
        let mut rows = Vec::new();
        out.chunks_mut(size).enumerate().map(|t| task(&mut rows, t)).collect::<Option<()>>()?;
    } else {
        // One buffer per thread's run of tasks, not per task: each is fresh pages to clear.
        out.par_chunks_mut(size).enumerate().map_init(Vec::new, task).collect::<Option<()>>()?;
    }
    Some(out)
}

/// The strip after the one being computed, which may be asked of the memory meanwhile.
#[derive(Clone, Copy)]
pub(super) struct NextStrip<'a> {
    vectors: &'a [Vec<f64>],
    start: usize,
}

impl NextStrip<'_> {
    /// Asks the memory for a share of the strip, so that its copy finds it in cache: the
    /// share that the coordinates `share` are of a strip, so that the groups of any register
    /// width cover the strip between them. A hint; it changes no result.
    #[inline(always)]
    pub(super) fn prefetch(self, share: Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        {
            const LINE: usize = 8;
            let lines = self.vectors.len() * STRIP / LINE;
            for line in lines * share.start / STRIP..lines * share.end / STRIP {
                let (i, at) = (line / (STRIP / LINE), self.start + line % (STRIP / LINE) * LINE);
                if let Some(x) = self.vectors[i].get(at) {
                    // SAFETY: a prefetch only hints; the address is inside the vector.
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                            (x as *const f64).cast(),
                        )
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (self.vectors, self.start, share);
    }
}

/// The same code with AVX2 registers of four coordinates.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx2")]
fn trimmed_strip_avx2(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64], next: NextStrip) {
    trimmed_strip::<std::arch::x86_64::__m256d>(rows, f, bounds, out, next)
}

/// And compiled for AVX-512, eight to a register.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx512f")]
fn trimmed_strip_avx512(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64], next: NextStrip) {
    trimmed_strip::<[f64; 8]>(rows, f, bounds, out, next)
}

/// The trimmed means of one strip of coordinates (`out.len()` of them), one row per vector,
/// a register of coordinates at a time: the group's bounds, then its sums, while its rows are
/// still in the first-level cache.
#[inline(always)]
fn trimmed_strip<L: Lanes>(rows: &[Strip], f: usize, bounds: Bounds, out: &mut [f64], next: NextStrip) {
    let n = rows.len();
    let w = 1.0 / (n - 2 * f) as f64;
    let w_lanes = L::splat(w);
    let selected = (bounds == Bounds::Selection).then(|| bounds_by_selection(rows, f, out.len()));
    for (g, out) in (0..STRIP).step_by(L::WIDTH).zip(out.chunks_mut(L::WIDTH)) {
        next.prefetch(g..g + L::WIDTH);
        let (lo, hi) = match &selected {
            Some((lo, hi)) => (L::load(&lo[g..]), L::load(&hi[g..])),
            None => bounds_by_network::<L>(rows, g, f),
        };
        let (mut sum, mut above_lo, mut below_hi) = (L::splat(0.0), L::splat(0.0), L::splat(0.0));
        for row in rows {
            let x = L::load(&row[g..]);
            let (above, below) = (x.greater(lo), x.less(hi));
            // Adding +0.0 leaves every sum as it is (none is −0.0): the same as skipping x.
            sum = sum.add(above.and(below).and(w_lanes.mul(x)));
            above_lo = above_lo.tally(above);
            below_hi = below_hi.tally(below);
        }
        let mut lanes = [[0.0; MAX_WIDTH]; 5];
        for (value, lanes) in [sum, lo, hi, above_lo, below_hi].into_iter().zip(&mut lanes) {
            value.store(lanes);
        }
        let [sum, lo, hi, above_lo, below_hi] = lanes;
        for (l, out) in out.iter_mut().enumerate() {
            let (copies_lo, copies_hi) = if lo[l] == hi[l] {
                (n - 2 * f, 0)
            } else {
                // n − above is how many are at most lo, of which f are dropped; likewise hi.
                let (above, below) = (above_lo[l].to_bits() as usize, below_hi[l].to_bits() as usize);
                (n - above - f, n - below - f)
            };
            let s = (0..copies_lo).fold(sum[l], |s, _| s + w * lo[l]);
            *out = (0..copies_hi).fold(s, |s, _| s + w * hi[l]);
        }
    }
}

/// One vector's strip, padded by a cache line: rows a power of two apart would share a few sets
/// of the first-level cache and evict each other before the group's second pass.
pub(super) type Strip = [f64; ROW];
const ROW: usize = STRIP + 8;

/// Values a bounds network takes in at a time.
const BLOCK: usize = 4;

/// Per coordinate of a group, the (f+1)-th smallest and largest values.
#[inline(always)]
fn bounds_by_network<L: Lanes>(rows: &[Strip], g: usize, f: usize) -> (L, L) {
    // The list length is a constant in each copy, so the list can live in registers.
    macro_rules! lists {
        ($($k:literal)*) => {
            match f + 1 {
                $($k => (kth::<$k, L, true>(rows, g), kth::<$k, L, false>(rows, g)),)*
                _ => unreachable!("the network is used for f < {NETWORK_UP_TO}"),
            }
        };
    }
    lists!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// The K-th smallest (LOW) or largest value of each coordinate of a group, by a merging
/// network. The K most extreme values so far are kept sorted, most extreme first. Each block
/// of four values is sorted (five exchanges) and set against the list's tail, the list's i-th
/// against the block's (K−1−i)-th, keeping the more extreme: the list then holds the K most
/// extreme of both and is bitonic (Batcher), and a bitonic merger sorts it again, pruned of
/// the exchanges with the virtual extremes that pad it to a power of two. That is about half
/// the exchanges of inserting the values one by one, and one end's list fits the sixteen
/// registers of AVX2. −0.0 comes out as +0.0: the two compare equal, and either may come first.
#[inline(always)]
fn kth<const K: usize, L: Lanes, const LOW: bool>(rows: &[Strip], g: usize) -> L {
    let far = L::splat(if LOW { f64::INFINITY } else { f64::NEG_INFINITY });
    let mut list = [far; K];
    let load = |row: &Strip| L::load(&row[g..]);
    let mut blocks = rows.chunks_exact(BLOCK);
    for rows in &mut blocks {
        merge::<K, L, LOW>(&mut list, [load(&rows[0]), load(&rows[1]), load(&rows[2]), load(&rows[3])]);
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let value = |i: usize| rest.get(i).map_or(far, load);
        merge::<K, L, LOW>(&mut list, [value(0), value(1), value(2), value(3)]);
    }
    list[K - 1].add(L::splat(0.0))
}

#[inline(always)]
fn merge<const K: usize, L: Lanes, const LOW: bool>(list: &mut [L; K], block: [L; BLOCK]) {
    let [a, b, c, d] = block;
    let ((a, b), (c, d)) = (exchange::<L, LOW>(a, b), exchange::<L, LOW>(c, d));
    let ((a, c), (b, d)) = (exchange::<L, LOW>(a, c), exchange::<L, LOW>(b, d));
    let (b, c) = exchange::<L, LOW>(b, c);
    let block = [a, b, c, d];
    for i in K.saturating_sub(BLOCK)..K {
        list[i] = exchange::<L, LOW>(list[i], block[K - 1 - i]).0;
    }
    let (pairs, count) = Merger::<K>::PAIRS;
    for &(a, b) in &pairs[..count] {
        (list[a], list[b]) = exchange::<L, LOW>(list[a], list[b]);
    }
}

/// The exchanges of a bitonic merger of K values, in order.
struct Merger<const K: usize>;

impl<const K: usize> Merger<K> {
    const PAIRS: ([(usize, usize); NETWORK_UP_TO * 2], usize) = merger_pairs(K);
}

/// A bitonic merger's exchanges for `k` values padded to a power of two by virtual extremes in
/// front; the exchanges with those change nothing and are left out.
const fn merger_pairs(k: usize) -> ([(usize, usize); NETWORK_UP_TO * 2], usize) {
    let (mut pairs, mut count) = ([(0, 0); NETWORK_UP_TO * 2], 0);
    let (size, pad) = (k.next_power_of_two(), k.next_power_of_two() - k);
    let mut distance = size / 2;
    while distance > 0 {
        let mut i = pad;
        while i < size {
            if i & distance == 0 {
                pairs[count] = (i - pad, i + distance - pad);
                count += 1;
            }
            i += 1;
        }
        distance /= 2;
    }
    (pairs, count)
}

/// The pair in list order, the more extreme first (the smaller for LOW): one of each either
/// way, so values are only moved.
#[inline(always)]
fn exchange<L: Lanes, const LOW: bool>(x: L, y: L) -> (L, L) {
    if LOW { (y.min(x), x.max(y)) } else { (y.max(x), x.min(y)) }
}

/// The same bounds by selecting in each column: for large f, where the network's lists no longer
/// fit in registers.
#[inline(always)]
fn bounds_by_selection(rows: &[Strip], f: usize, len: usize) -> (Strip, Strip) {
    let n = rows.len();
    let (mut lo, mut hi) = ([0.0; ROW], [0.0; ROW]);
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
    fn trimmed_mean_drops_f_each_side() {
        // sorted 1,2,3,4,100 with f=1 → mean(2,3,4) = 3
        assert_eq!(trimmed_mean(&rows(&[&[100.0, 1.0, 3.0, 2.0, 4.0]]), 1), Some(vec![3.0]));
        // f=0 is the plain mean.
        assert_eq!(trimmed_mean(&rows(&[&[1.0, 2.0, 6.0]]), 0), Some(vec![3.0]));
        // f=2 of 5 leaves only the median.
        assert_eq!(trimmed_mean(&rows(&[&[9.0, -9.0, 1.0, 7.0, -7.0]]), 2), Some(vec![1.0]));
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
        // Every list length of the network (f + 1 = 1..16), block-aligned counts and not, and
        // strips cut short.
        let cases = (0..16).map(|f| (2 * f + 1 + f % 5, f, 70 + 37 * f));
        for (n, f, d) in cases.chain([(5, 2, 300), (100, 10, 260), (40, 15, 65), (9, 4, 64)]) {
            let v = awkward(n, d, (n * 100 + f) as u64);
            let network = trimmed_mean_by(&v, f, Bounds::Network, Path::Portable).expect("finite");
            let sorted = sorted_trimmed_mean(&v, f);
            for path in Path::ALL.iter().filter(|p| p.available()) {
                for bounds in [Bounds::Network, Bounds::Selection] {
                    let other = trimmed_mean_by(&v, f, bounds, *path).expect("finite");
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
