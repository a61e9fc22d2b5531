//! Vector arithmetic with a fixed summation order, so that neither the thread count nor the CPU
//! changes a bit of any result: every replica of a federated round must agree on the aggregate.
//! Sums over coordinates follow the order `kernel` documents; sums over vectors run in index
//! order, coordinate by coordinate.

mod eigen;
pub mod kernel;
pub mod lanes;

pub use eigen::top_eigen;
use kernel::{Dist2, Dot, Pack, Path};
use rayon::prelude::*;

/// Coordinates per block of a parallel map or weighted sum.
const BLOCK: usize = 4096;
/// Below this many coordinates, threads cost more than they save.
pub(crate) const PARALLEL_FROM: usize = 1 << 15;

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    kernel::sum::<Dot>(Path::detect(), a, b)
}

pub fn dist2(a: &[f64], b: &[f64]) -> f64 {
    kernel::sum::<Dist2>(Path::detect(), a, b)
}

/// The squared distance of every vector to `z`, each with the bits of [`dist2`].
pub fn dist2_to_each(vectors: &[Vec<f64>], z: &[f64]) -> Vec<f64> {
    kernel::sum_each::<Dist2>(Path::detect(), vectors, z)
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Applies `g` to every coordinate index, in parallel for long vectors.
pub fn per_coordinate(d: usize, g: impl Fn(usize) -> f64 + Sync + Send) -> Vec<f64> {
    if d < PARALLEL_FROM {
        (0..d).map(g).collect()
    } else {
        (0..d).into_par_iter().with_min_len(BLOCK).map(g).collect()
    }
}

/// f64 bits as integers ordered as `f64::total_cmp` orders the values (applied twice, the
/// bits come back): selections compare integers, not floats.
pub fn ordered(bits: i64) -> i64 {
    bits ^ ((((bits >> 63) as u64) >> 1) as i64)
}

/// The value whose [`ordered`] key is `key`.
pub fn from_ordered(key: i64) -> f64 {
    f64::from_bits(ordered(key) as u64)
}

/// Coordinates [`per_column`] transposes at a time.
const COLUMNS: usize = 64;

/// For every coordinate, `g` of that coordinate's column as [`ordered`] keys (one per vector,
/// in vector order), in a scratch buffer `g` may reorder. Columns are transposed a tile at a
/// time, reading each vector's stretch of the tile in one go rather than one value per column.
pub fn per_column(vectors: &[Vec<f64>], g: impl Fn(&mut [i64]) -> f64 + Sync + Send) -> Vec<f64> {
    per_column_with(vectors, || (), |column, _| g(column))
}

/// [`per_column`], with a scratch value per thread (made by `init`) that `g` may use.
pub fn per_column_with<S>(
    vectors: &[Vec<f64>],
    init: impl Fn() -> S + Sync + Send,
    g: impl Fn(&mut [i64], &mut S) -> f64 + Sync + Send,
) -> Vec<f64> {
    let (n, d) = (vectors.len(), vectors.first().map_or(0, Vec::len));
    let tile = |(tile, scratch): &mut (Vec<i64>, S), (t, out): (usize, &mut [f64])| {
        let (start, len) = (t * COLUMNS, out.len());
        tile.resize(n * len, 0);
        for (i, v) in vectors.iter().enumerate() {
            for (k, x) in v[start..start + len].iter().enumerate() {
                tile[k * n + i] = ordered(x.to_bits() as i64);
            }
        }
        for (k, out) in out.iter_mut().enumerate() {
            *out = g(&mut tile[k * n..(k + 1) * n], scratch);
        }
    };
    let mut out = vec![0.0; d];
    if d < PARALLEL_FROM {
        let mut scratch = (Vec::new(), init());
        out.chunks_mut(COLUMNS).enumerate().for_each(|t| tile(&mut scratch, t));
    } else {
        out.par_chunks_mut(COLUMNS).enumerate().for_each_init(|| (Vec::new(), init()), tile);
    }
    out
}

/// Σ w_i x_i over the listed vectors, in list order for every coordinate. Blocks of
/// coordinates run in parallel; within a block each vector is streamed whole, which memory
/// prefetchers follow best when there is one sum ([`weighted_sums`] computes many).
pub fn weighted_sum(vectors: &[Vec<f64>], items: &[(usize, f64)]) -> Vec<f64> {
    by_blocks(vectors, |start, acc| {
        let len = acc.len();
        add_weighted(|i| &vectors[i][start..start + len], items, acc)
    })
}

/// acc[k] += Σ w·x_i[k] over the items in list order, with x_i = `rows(i)` (as long as `acc`),
/// each streamed whole.
#[inline(always)]
fn add_weighted<'a>(rows: impl Fn(usize) -> &'a [f64], items: &[(usize, f64)], acc: &mut [f64]) {
    let len = acc.len();
    let x = |i: usize| &rows(i)[..len];
    // Four vectors per sweep (four streams for the prefetcher, a quarter of the stores),
    // each coordinate still adding its terms one by one in list order.
    let mut quads = items.chunks_exact(4);
    for q in &mut quads {
        let (a, b, c, d) = (x(q[0].0), x(q[1].0), x(q[2].0), x(q[3].0));
        let (wa, wb, wc, wd) = (q[0].1, q[1].1, q[2].1, q[3].1);
        for k in 0..len {
            acc[k] = (((acc[k] + wa * a[k]) + wb * b[k]) + wc * c[k]) + wd * d[k];
        }
    }
    for &(i, w) in quads.remainder() {
        for (a, x) in acc.iter_mut().zip(x(i)) {
            *a += w * x;
        }
    }
}

/// v + Σ w_i (x_i − v) over the listed vectors: the sum in list order, then added to v,
/// coordinate by coordinate (a step of centered clipping).
pub fn step_towards(vectors: &[Vec<f64>], items: &[(usize, f64)], v: &[f64]) -> Vec<f64> {
    by_blocks(vectors, |start, acc| {
        let len = acc.len();
        add_step(|i| &vectors[i][start..start + len], items, &v[start..start + len], acc)
    })
}

/// acc[k] += Σ w·(x_i[k] − v[k]) over the items in list order, then v[k], with x_i = `rows(i)`
/// (as long as `acc`).
#[inline(always)]
fn add_step<'a>(rows: impl Fn(usize) -> &'a [f64], items: &[(usize, f64)], v: &[f64], acc: &mut [f64]) {
    for &(i, w) in items {
        for ((a, x), v) in acc.iter_mut().zip(rows(i)).zip(v) {
            *a += w * (x - v);
        }
    }
    acc.iter_mut().zip(v).for_each(|(a, v)| *a += v);
}

/// A vector of the input's dimension, from 0, filled by `fill(start, block)` a block of
/// coordinates at a time, the blocks in parallel.
fn by_blocks(vectors: &[Vec<f64>], fill: impl Fn(usize, &mut [f64]) + Sync) -> Vec<f64> {
    let d = vectors.first().map_or(0, Vec::len);
    let mut out = vec![0.0; d];
    let block = |(b, acc): (usize, &mut [f64])| fill(b * BLOCK, acc);
    if d < PARALLEL_FROM {
        out.chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        out.par_chunks_mut(BLOCK).enumerate().for_each(block);
    }
    out
}

/// Coordinates per block of [`weighted_sums`]: 100 input blocks take 400 KB, within L2.
const SUM_BLOCK: usize = 512;
/// Coordinates one pass over a list keeps in registers.
const SUM_TILE: usize = 16;

/// Several weighted sums of the same vectors, each with exactly the bits of [`weighted_sum`]
/// (every coordinate adds its terms in list order), from one pass over the input: blocks of
/// coordinates run in parallel, and each block of the input is read from memory once for all
/// the sums while it sits in cache. Nearest-neighbour mixing's n means cost about one.
pub fn weighted_sums(vectors: &[Vec<f64>], lists: &[Vec<(usize, f64)>]) -> Vec<Vec<f64>> {
    weighted_sums_on(Path::detect(), vectors, lists)
}

fn weighted_sums_on(path: Path, vectors: &[Vec<f64>], lists: &[Vec<(usize, f64)>]) -> Vec<Vec<f64>> {
    let d = vectors.first().map_or(0, Vec::len);
    let mut outs: Vec<Vec<f64>> = lists.iter().map(|_| vec![0.0; d]).collect();
    // For each block of coordinates, that block of every output.
    let mut blocks: Vec<Vec<&mut [f64]>> = (0..d.div_ceil(SUM_BLOCK)).map(|_| Vec::new()).collect();
    for out in outs.iter_mut() {
        for (b, block) in out.chunks_mut(SUM_BLOCK).enumerate() {
            blocks[b].push(block);
        }
    }
    let block = |(b, accs): (usize, Vec<&mut [f64]>)| {
        for (acc, items) in accs.into_iter().zip(lists) {
            add_terms_on(path, vectors, items, b * SUM_BLOCK, acc);
        }
    };
    if d < PARALLEL_FROM {
        blocks.into_iter().enumerate().for_each(block);
    } else {
        blocks.into_par_iter().enumerate().for_each(block);
    }
    outs
}

/// The weighted sum of [`weighted_sum`] and the squared distance of every vector to it, with
/// the bits of [`dist2_to_each`], from one pass over the input (a Weiszfeld step and the
/// distances the next step weighs by).
pub fn weighted_sum_and_dist2(vectors: &[Vec<f64>], items: &[(usize, f64)]) -> (Vec<f64>, Vec<f64>) {
    weighted_sum_and_dist2_on(Path::detect(), vectors, items)
}

fn weighted_sum_and_dist2_on(
    path: Path,
    vectors: &[Vec<f64>],
    items: &[(usize, f64)],
) -> (Vec<f64>, Vec<f64>) {
    kernel::make_and_sum_each::<Dist2>(path, vectors, |packed, _, acc| {
        add_weighted_packed(path, packed, items, acc)
    })
}

/// The step of [`step_towards`] and the squared distance of every vector to where it lands,
/// with the bits of [`dist2_to_each`], from one pass over the input (a step of centered
/// clipping and the distances the next step clips by).
pub fn step_towards_and_dist2(
    vectors: &[Vec<f64>],
    items: &[(usize, f64)],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    step_towards_and_dist2_on(Path::detect(), vectors, items, v)
}

fn step_towards_and_dist2_on(
    path: Path,
    vectors: &[Vec<f64>],
    items: &[(usize, f64)],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    kernel::make_and_sum_each::<Dist2>(path, vectors, |packed, start, acc| {
        add_step_packed(path, packed, items, &v[start..start + acc.len()], acc)
    })
}

// Each of the next three compiles an `#[inline(always)]` loop a second time for AVX2 and runs
// the copy the path asks for. (One AVX2 function taking a closure could serve all three, but
// whether the closure is inlined into it, and so compiled for AVX2, would be the compiler's
// choice.) SAFETY, for each: AVX2 is only chosen on CPUs that have it (`Path::detect`; tests
// check `available`).

/// [`add_weighted`] over the rows packed one after another in `packed`, each as long as `acc`.
fn add_weighted_packed(path: Path, packed: &[f64], items: &[(usize, f64)], acc: &mut [f64]) {
    #[inline(always)]
    fn run(packed: &[f64], items: &[(usize, f64)], acc: &mut [f64]) {
        let len = acc.len();
        add_weighted(|i| &packed[i * len..(i + 1) * len], items, acc)
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    #[target_feature(enable = "avx2")]
    fn avx2(packed: &[f64], items: &[(usize, f64)], acc: &mut [f64]) {
        run(packed, items, acc)
    }
    match path {
        Path::Portable => run(packed, items, acc),
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 | Path::Avx512 => unsafe { avx2(packed, items, acc) },
    }
}

/// [`add_step`] over the rows packed one after another in `packed`, each as long as `acc`.
fn add_step_packed(path: Path, packed: &[f64], items: &[(usize, f64)], v: &[f64], acc: &mut [f64]) {
    #[inline(always)]
    fn run(packed: &[f64], items: &[(usize, f64)], v: &[f64], acc: &mut [f64]) {
        let len = acc.len();
        add_step(|i| &packed[i * len..(i + 1) * len], items, v, acc)
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    #[target_feature(enable = "avx2")]
    fn avx2(packed: &[f64], items: &[(usize, f64)], v: &[f64], acc: &mut [f64]) {
        run(packed, items, v, acc)
    }
    match path {
        Path::Portable => run(packed, items, v, acc),
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 | Path::Avx512 => unsafe { avx2(packed, items, v, acc) },
    }
}

/// [`add_terms`], for the path.
fn add_terms_on(path: Path, vectors: &[Vec<f64>], items: &[(usize, f64)], start: usize, acc: &mut [f64]) {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    #[target_feature(enable = "avx2")]
    fn avx2(vectors: &[Vec<f64>], items: &[(usize, f64)], start: usize, acc: &mut [f64]) {
        add_terms(vectors, items, start, acc)
    }
    match path {
        Path::Portable => add_terms(vectors, items, start, acc),
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 | Path::Avx512 => unsafe { avx2(vectors, items, start, acc) },
    }
}

/// acc[k] = Σ w·x_i[start + k] over the items in order, a tile of coordinates at a time so
/// the running sums stay in registers.
#[inline(always)]
fn add_terms(vectors: &[Vec<f64>], items: &[(usize, f64)], start: usize, acc: &mut [f64]) {
    let mut k = 0;
    for tile in acc.chunks_mut(SUM_TILE) {
        let len = tile.len();
        let mut sums = [0.0f64; SUM_TILE];
        for &(i, w) in items {
            let x = &vectors[i][start + k..start + k + len];
            for (s, x) in sums.iter_mut().zip(x) {
                *s += w * x;
            }
        }
        tile.copy_from_slice(&sums[..len]);
        k += len;
    }
}

/// The mean of the listed vectors. Each term is divided before it is added, so vectors near
/// f64::MAX do not overflow the sum.
pub fn mean_of(vectors: &[Vec<f64>], indices: &[usize]) -> Vec<f64> {
    weighted_sum(vectors, &mean_weights(indices))
}

/// The means of several groups of the vectors, each with the bits of [`mean_of`], from one
/// pass ([`weighted_sums`]).
pub fn means_of(vectors: &[Vec<f64>], groups: &[impl AsRef<[usize]>]) -> Vec<Vec<f64>> {
    weighted_sums(vectors, &groups.iter().map(|g| mean_weights(g.as_ref())).collect::<Vec<_>>())
}

fn mean_weights(indices: &[usize]) -> Vec<(usize, f64)> {
    let w = 1.0 / indices.len() as f64;
    indices.iter().map(|&i| (i, w)).collect()
}

pub fn mean(vectors: &[Vec<f64>]) -> Vec<f64> {
    mean_of(vectors, &(0..vectors.len()).collect::<Vec<_>>())
}

pub fn scale(a: &[f64], s: f64) -> Vec<f64> {
    per_coordinate(a.len(), |k| a[k] * s)
}

/// All pairwise squared distances (symmetric, zero diagonal), each entry with the bits of
/// [`dist2`], from one pass over the input.
pub fn pairwise_dist2(vectors: &[Vec<f64>]) -> Vec<Vec<f64>> {
    kernel::pairwise::<Dist2>(Path::detect(), vectors, Pack::RAW, false)
}

/// Beyond this magnitude the Gram matrix, or the squares its eigen-solver forms, may overflow.
const GRAM_SAFE: f64 = 1e60;

/// The largest magnitude of any coordinate (max is exact, so any order gives the same).
fn largest(vectors: &[Vec<f64>]) -> f64 {
    let of = |v: &Vec<f64>| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    vectors.par_iter().map(of).reduce(|| 0.0, f64::max)
}

/// Whether some coordinate is so large that squares and sums of it may overflow.
pub fn huge(vectors: &[Vec<f64>]) -> bool {
    largest(vectors) > GRAM_SAFE
}

/// The Gram matrix of the vectors minus their mean, and the power of two `e` it was scaled by
/// (the vectors were multiplied by 2^-e; 0: not scaled). Inputs as large as f64::MAX would
/// overflow it, so when one is [`huge`] every vector is first scaled by the power of two that
/// brings the largest coordinate into [1, 4): the rules that use the matrix (CAF, SMEA) depend
/// only on its shape, and CAF compares eigenvalues across scales exactly with `e`. Other inputs
/// are not touched. (Scaled, small vectors lose their detail next to huge ones; CAF recomputes
/// the matrix once it has dropped the huge ones.)
pub fn centered_gram(vectors: &[Vec<f64>]) -> (Vec<Vec<f64>>, i64) {
    let largest = largest(vectors);
    // 2^-e, e the binary exponent of the largest coordinate (at most 1022, so that 2^-e is a
    // normal number), read from its bits: no libm, so every platform agrees. Powers of two scale
    // exactly, tiny values aside.
    let e =
        if largest > GRAM_SAFE { ((((largest.to_bits() >> 52) & 0x7ff) - 1023) as i64).min(1022) } else { 0 };
    let s = if e > 0 { f64::from_bits(((1023 - e) as u64) << 52) } else { 1.0 };
    // The mean of the scaled vectors (each term scaled exactly by the power of two), subtracted
    // as the kernel packs each panel: no scaled or centred copy of the input is made.
    let n = vectors.len();
    let center = weighted_sum(vectors, &(0..n).map(|i| (i, s / n as f64)).collect::<Vec<_>>());
    let gram =
        kernel::pairwise::<Dot>(Path::detect(), vectors, Pack { scale: s, center: Some(&center) }, true);
    (gram, e)
}

/// x·2^e (x ≥ 0) as (binary exponent, mantissa bits), ordered as the values are: compares
/// quantities kept at different scales exactly, without forming them (they may overflow).
pub fn magnitude(x: f64, e: i64) -> (i64, u64) {
    const MANTISSA: u64 = (1 << 52) - 1;
    if x.is_nan() || x <= 0.0 {
        return (i64::MIN, 0);
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    if exponent == 0 {
        // Subnormal: the leading one at bit p stands for 2^(p − 1074).
        let p = 63 - (bits & MANTISSA).leading_zeros() as i64;
        return (p - 1074 + e, ((bits & MANTISSA) << (52 - p)) & MANTISSA);
    }
    (exponent - 1023 + e, bits & MANTISSA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_weighted_sums_have_the_bits_of_one_each() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for d in [3, 700, PARALLEL_FROM + 17] {
            let v: Vec<Vec<f64>> =
                (0..9).map(|_| (0..d).map(|_| rng.random::<f64>() - 0.5).collect()).collect();
            let lists: Vec<Vec<(usize, f64)>> = (0..9)
                .map(|o| (0..9).filter(|i| (i + o) % 3 != 0).map(|i| (i, 1.0 / (o + 2) as f64)).collect())
                .collect();
            for &path in Path::ALL.iter().filter(|p| p.available()) {
                let many = weighted_sums_on(path, &v, &lists);
                for (list, sums) in lists.iter().zip(many) {
                    let one = weighted_sum(&v, list);
                    assert!(one.iter().zip(&sums).all(|(a, b)| a.to_bits() == b.to_bits()), "d={d} {path:?}");
                }
            }
        }
    }

    #[test]
    fn a_step_and_the_distances_to_where_it_lands_have_the_bits_of_each_alone() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let same = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
        };
        // Lengths that end mid-panel, at a chunk's end, and mid-chunk past several chunks (the
        // parallel path); counts that are and are not multiples of the four summed at once.
        for (n, d) in [(7, 1), (3, 300), (7, kernel::CHUNK), (7, 3 * kernel::CHUNK + kernel::PANEL + 5)] {
            let v: Vec<Vec<f64>> =
                (0..n).map(|_| (0..d).map(|_| rng.random::<f64>() - 0.5).collect()).collect();
            let items: Vec<(usize, f64)> =
                [3, 0, 6, 1, 5, 2].iter().filter(|&&i| i < n).map(|&i| (i, 1.0 / (i + 3) as f64)).collect();
            let from: Vec<f64> = (0..d).map(|_| rng.random::<f64>()).collect();
            let sum = weighted_sum(&v, &items);
            let step = step_towards(&v, &items, &from);
            let (to_sum, to_step) = (dist2_to_each(&v, &sum), dist2_to_each(&v, &step));
            for &path in Path::ALL.iter().filter(|p| p.available()) {
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let at = format!("n={n} d={d} {path:?} threads={threads}");
                    let (made, distances) = pool.install(|| weighted_sum_and_dist2_on(path, &v, &items));
                    assert!(same(&made, &sum) && same(&distances, &to_sum), "weighted sum, {at}");
                    let (made, distances) =
                        pool.install(|| step_towards_and_dist2_on(path, &v, &items, &from));
                    assert!(same(&made, &step) && same(&distances, &to_step), "step, {at}");
                }
            }
        }
    }

    #[test]
    fn mean_of_huge_values_does_not_overflow() {
        let m = mean(&[vec![f64::MAX], vec![f64::MAX]]);
        assert_eq!(m, vec![f64::MAX]);
    }
}
