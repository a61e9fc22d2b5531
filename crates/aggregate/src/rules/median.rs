//! The coordinate-wise median, by a comparator network run on a register of coordinates at
//! once: no branch depends on the values, so it runs at the same speed on any input, Byzantine
//! or not.

use super::coordinate::{NextStrip, Strip, by_strips};
use crate::linalg::kernel::Path;
use crate::linalg::lanes::Lanes;
use crate::linalg::{from_ordered, per_column};
use rayon::prelude::*;

/// Up to this many vectors, the median is taken by a network (whose wires then fit in a byte);
/// beyond, by selection in each column.
const NETWORK_UP_TO: usize = 256;

/// The middle value of each coordinate; for an even count, the mean of the two middle values.
/// −0.0 counts as +0.0, so a median is never −0.0. None if a value is not finite.
pub fn median(vectors: &[Vec<f64>]) -> Option<Vec<f64>> {
    if (1..=NETWORK_UP_TO).contains(&vectors.len()) {
        median_by_network(vectors, Path::detect())
    } else {
        median_by_selection(vectors)
    }
}

fn median_by_network(vectors: &[Vec<f64>], path: Path) -> Option<Vec<f64>> {
    let network = Middle::new(vectors.len());
    by_strips(vectors, |rows, out, next| match path {
        Path::Portable => median_strip::<[f64; 2]>(rows, &network, out, next),
        // SAFETY: the path is AVX2 only on CPUs that have it (`Path::detect`, tests check
        // `available`).
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 => unsafe { median_strip_avx2(rows, &network, out, next) },
        // SAFETY: likewise for AVX-512.
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx512 => unsafe { median_strip_avx512(rows, &network, out, next) },
    })
}

/// Beyond the network's size: a pass of its own checks finiteness, then each column is selected.
fn median_by_selection(vectors: &[Vec<f64>]) -> Option<Vec<f64>> {
    let finite = vectors.par_iter().all(|v| v.iter().all(|x| x.is_finite()));
    finite.then(|| per_column(vectors, |c| median_of(c) + 0.0))
}

/// The middle value of a column of [`ordered`](crate::linalg::ordered) keys; for an even
/// count, the mean of the two middle values. Unlike [`median`], keeps a −0.0.
pub fn median_of(keys: &mut [i64]) -> f64 {
    let n = keys.len();
    let (lower, mid, _) = keys.select_nth_unstable(n / 2);
    let mid = from_ordered(*mid);
    match lower.iter().max() {
        Some(&below) if n.is_multiple_of(2) => from_ordered(below) / 2.0 + mid / 2.0,
        _ => mid,
    }
}

/// The same code with AVX2 registers of four coordinates.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx2")]
fn median_strip_avx2(rows: &[Strip], network: &Middle, out: &mut [f64], next: NextStrip) {
    median_strip::<std::arch::x86_64::__m256d>(rows, network, out, next)
}

/// And compiled for AVX-512, eight to a register.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
#[target_feature(enable = "avx512f")]
fn median_strip_avx512(rows: &[Strip], network: &Middle, out: &mut [f64], next: NextStrip) {
    median_strip::<[f64; 8]>(rows, network, out, next)
}

/// The medians of one strip of coordinates (`out.len()` of them), one row per vector, a
/// register of coordinates at a time.
#[inline(always)]
fn median_strip<L: Lanes>(rows: &[Strip], network: &Middle, out: &mut [f64], next: NextStrip) {
    let (zero, half) = (L::splat(0.0), L::splat(0.5));
    let mut wires = [zero; NETWORK_UP_TO];
    for (g, out) in (0..out.len()).step_by(L::WIDTH).zip(out.chunks_mut(L::WIDTH)) {
        next.prefetch(g..g + L::WIDTH);
        // x + 0.0 turns −0.0 into +0.0: equal values then have equal bits, so which of two
        // equal values min or max returns changes nothing.
        for (wire, row) in wires.iter_mut().zip(rows) {
            *wire = L::load(&row[g..]).add(zero);
        }
        for &(a, b) in &network.exchanges {
            let (x, y) = (wires[usize::from(a)], wires[usize::from(b)]);
            wires[usize::from(a)] = x.min(y);
            wires[usize::from(b)] = x.max(y);
        }
        let (lower, upper) = (wires[usize::from(network.lower)], wires[usize::from(network.upper)]);
        // x/2 and x·0.5 are the same correctly rounded value; + 0.0 again, as two halves of
        // −5e-324 round to −0.0.
        let median = if network.lower == network.upper {
            upper
        } else {
            lower.mul(half).add(upper.mul(half)).add(zero)
        };
        let mut lanes = [0.0; crate::linalg::lanes::MAX_WIDTH];
        median.store(&mut lanes);
        out.copy_from_slice(&lanes[..out.len()]);
    }
}

/// A comparator network that brings the middle values of n inputs (n ≤ 256) to known wires:
/// Batcher's odd–even merge sort for the next power of two, with the padding inputs (virtual
/// +∞) taken out and every exchange that neither middle value depends on dropped. For n = 100
/// that is 898 exchanges, 9 per value.
#[derive(Debug)]
struct Middle {
    /// In order: (a, b) puts the smaller value on wire a, the larger on wire b.
    exchanges: Vec<(u8, u8)>,
    /// The wires of the (n−1)/2-th and n/2-th smallest values, the same for odd n.
    lower: u8,
    upper: u8,
}

impl Middle {
    fn new(n: usize) -> Middle {
        assert!((1..=NETWORK_UP_TO).contains(&n), "a median network takes 1 to {NETWORK_UP_TO} inputs");
        let size = n.next_power_of_two();
        // wire → where its value is held; padding wires hold +∞ until a value moves onto them.
        let mut held: Vec<usize> = (0..size).collect();
        let mut padding: Vec<bool> = (0..size).map(|w| w >= n).collect();
        let mut exchanges = Vec::new();
        for (i, j) in odd_even_merge_sort(size) {
            match (padding[i], padding[j]) {
                // With +∞ on the larger side, nothing moves.
                (_, true) => {}
                // The value moves onto wire i, +∞ onto wire j: follow it, compare nothing.
                (true, false) => {
                    held.swap(i, j);
                    padding.swap(i, j);
                }
                (false, false) => exchanges.push((held[i], held[j])),
            }
        }
        // Real values are only ever held in the first n places, so the places fit in a byte.
        let byte = |place: usize| u8::try_from(place).expect("n ≤ 256 places");
        let (lower, upper) = (held[(n - 1) / 2], held[n / 2]);
        // Backwards from the outputs, keep an exchange if a kept place depends on it.
        let mut needed = vec![false; n];
        (needed[lower], needed[upper]) = (true, true);
        let mut kept: Vec<(u8, u8)> = Vec::new();
        for &(a, b) in exchanges.iter().rev() {
            if needed[a] || needed[b] {
                (needed[a], needed[b]) = (true, true);
                kept.push((byte(a), byte(b)));
            }
        }
        kept.reverse();
        Middle { exchanges: kept, lower: byte(lower), upper: byte(upper) }
    }
}

/// Batcher's odd–even merge sort of `size` (a power of two) wires: (i, j) with i < j puts the
/// smaller value on wire i.
fn odd_even_merge_sort(size: usize) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut p = 1;
    while p < size {
        let mut k = p;
        while k >= 1 {
            for j in (k % p..size - k).step_by(2 * k) {
                for i in 0..k.min(size - j - k) {
                    if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                        pairs.push((i + j, i + j + k));
                    }
                }
            }
            k /= 2;
        }
        p *= 2;
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::ordered;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn median_odd_even_and_outliers() {
        // One vector per value: columns of one coordinate, then one of two.
        let rows = |values: &[f64]| values.iter().map(|&x| vec![x]).collect::<Vec<_>>();
        assert_eq!(median(&rows(&[3.0, 1.0, 2.0])), Some(vec![2.0]));
        assert_eq!(median(&rows(&[4.0, 1.0, 3.0, 2.0])), Some(vec![2.5]));
        assert_eq!(median(&rows(&[f64::MAX, f64::MAX])), Some(vec![f64::MAX]));
        let two = vec![vec![1.0, -5.0], vec![2.0, 0.0], vec![1e300, 5.0]];
        assert_eq!(median(&two), Some(vec![2.0, 0.0]));
        // No vectors, no coordinates: nothing to fail on (the pipeline refuses it first).
        assert_eq!(median(&[]), Some(vec![]));
    }

    /// Runs the network on one column, as `median_strip` does per lane.
    fn run(network: &Middle, column: &[f64]) -> (f64, f64) {
        let mut wires = column.to_vec();
        for &(a, b) in &network.exchanges {
            let (x, y) = (wires[usize::from(a)], wires[usize::from(b)]);
            (wires[usize::from(a)], wires[usize::from(b)]) = (x.min(y), x.max(y));
        }
        (wires[usize::from(network.lower)], wires[usize::from(network.upper)])
    }

    #[test]
    fn batcher_sorts_every_zero_one_input() {
        // The zero-one principle: a comparator network that sorts every 0/1 input sorts all.
        for size in [1, 2, 4, 8, 16] {
            let pairs = odd_even_merge_sort(size);
            for bits in 0u32..1 << size {
                let mut w: Vec<u32> = (0..size).map(|i| bits >> i & 1).collect();
                for &(i, j) in &pairs {
                    if w[i] > w[j] {
                        w.swap(i, j);
                    }
                }
                assert!(w.is_sorted(), "size {size} input {bits:b}");
            }
        }
        // The known counts: 63 exchanges for 16 wires, 1,471 for 128.
        assert_eq!(odd_even_merge_sort(16).len(), 63);
        assert_eq!(odd_even_merge_sort(128).len(), 1471);
    }

    #[test]
    fn middle_network_finds_the_middle_of_every_zero_one_input() {
        // The zero-one principle holds for selection too: the k-th smallest of any input comes
        // out right if it does for every 0/1 input.
        for n in 1..=17 {
            let network = Middle::new(n);
            for bits in 0u32..1 << n {
                let column: Vec<f64> = (0..n).map(|i| f64::from(bits >> i & 1)).collect();
                let mut sorted = column.clone();
                sorted.sort_by(f64::total_cmp);
                let want = (sorted[(n - 1) / 2], sorted[n / 2]);
                assert_eq!(run(&network, &column), want, "n={n} input {bits:b}");
            }
        }
    }

    #[test]
    fn middle_network_matches_sorting_up_to_its_largest_size() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for n in (1..=NETWORK_UP_TO).step_by(5).chain([64, 100, 128, 129, 255, 256]) {
            let network = Middle::new(n);
            for _ in 0..20 {
                // Few distinct values, so ties are common.
                let column: Vec<f64> = (0..n).map(|_| f64::from(rng.random_range(0..7u8))).collect();
                let mut sorted = column.clone();
                sorted.sort_by(f64::total_cmp);
                assert_eq!(run(&network, &column), (sorted[(n - 1) / 2], sorted[n / 2]), "n={n}");
            }
        }
        assert_eq!(Middle::new(100).exchanges.len(), 898);
    }

    /// Columns with many exact ties, ±0 and outliers.
    fn awkward(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let pick = [0.0, -0.0, 1.0, -1.0, 2.5, 1e300, -1e300, f64::MAX, 5e-324, -5e-324];
        let value = |rng: &mut rand_chacha::ChaCha8Rng| {
            if rng.random::<bool>() { pick[rng.random_range(0..pick.len())] } else { rng.random() }
        };
        (0..n).map(|_| (0..d).map(|_| value(&mut rng)).collect()).collect()
    }

    #[test]
    fn network_and_selection_give_the_same_bits_on_every_path() {
        // Odd and even n, strips cut short.
        for (n, d) in [(1, 3), (2, 9), (3, 300), (4, 257), (7, 64), (10, 513), (100, 270), (256, 37)] {
            let mut v = awkward(n, d, (n * 1000 + d) as u64);
            // A column of −0.0, and one of −5e-324, whose halves round to −0.0.
            for x in &mut v {
                x[0] = -0.0;
                x[d - 1] = -5e-324;
            }
            let selected = median_by_selection(&v).expect("finite");
            assert_eq!(selected[0].to_bits(), 0.0f64.to_bits());
            let tiny: f64 = if n % 2 == 0 { 0.0 } else { -5e-324 };
            assert_eq!(selected[d - 1].to_bits(), tiny.to_bits(), "n={n}");
            for path in Path::ALL.iter().filter(|p| p.available()) {
                let network = median_by_network(&v, *path).expect("finite");
                let same = network.len() == d
                    && network.iter().zip(&selected).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "n={n} d={d} {path:?}");
            }
            // And both against the column sorted, by hand.
            for (k, got) in selected.iter().enumerate() {
                let mut keys: Vec<i64> = v.iter().map(|x| ordered(x[k].to_bits() as i64)).collect();
                keys.sort();
                let mid = |i: usize| from_ordered(keys[i]);
                let want = if n % 2 == 1 { mid(n / 2) } else { mid(n / 2 - 1) / 2.0 + mid(n / 2) / 2.0 };
                assert_eq!(got.to_bits(), (want + 0.0).to_bits(), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn a_value_that_is_not_finite_is_refused_wherever_it_is() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for (n, at) in [(5, 0), (5, 4095), (5, 4096 * 3 - 1), (300, 17)] {
                let mut v = vec![vec![1.0; 4096 * 3]; n];
                v[n - 1][at] = bad;
                assert_eq!(median(&v), None, "{bad} at {at}, n={n}");
                v[n - 1][at] = 2.0;
                assert!(median(&v).is_some());
            }
        }
    }
}
